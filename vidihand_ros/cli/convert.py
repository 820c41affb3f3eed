"""`vidihand convert`: recordings (rosbags, videos) → one Zarr dataset, with or without poses."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vidihand_ros.cli.estimation import add_estimation
from vidihand_ros.cli.estimation import estimator_options as estimator_options_of
from vidihand_ros.cli.options import (
    add_command,
    image_size,
    jpeg_quality,
    positive,
    positive_number,
    time_range,
)

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  vidihand convert run1.bag run2_mcap/ -o demos.zarr
      frames, stamps and intrinsics of two recordings (one episode each); poses marked missing
  vidihand convert rec.mcap -o demos.zarr --append --topic /cam/image_raw/compressed
  vidihand convert rec/ -o demos.zarr --split-gaps 2.0 --pose-bag rec_poses
  vidihand convert rec/ -o demos.zarr --estimator mediapipe
  vidihand convert head_cam.mcap -o demos.zarr --blur-faces
      faces of people the camera filmed are blurred in the stored frames
  vidihand convert clip.mp4 -o demos.zarr --intrinsics 600,600,320,240
  vidihand convert recs/*.mcap -o demos.zarr --ray --estimator mediapipe
      one Ray task per recording (a local Ray instance; --address auto joins a cluster)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "convert",
        run=run,
        help="convert rosbags (ROS 1 .bag, ROS 2 sqlite3/mcap) or videos into a Zarr dataset",
        description=(
            "Read each recording's camera stream, estimate both hands' poses in overlapping windows "
            "(or none: frames-only), and write one episode per recording into a Zarr dataset in the "
            "diffusion_policy/UMI replay-buffer layout."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="RECORDING",
        help="rosbag (ROS 1 .bag, ROS 2 folder/.mcap/.db3) or video (mp4/mkv)",
    )
    p.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DATASET", help="dataset directory (.zarr)"
    )
    _add_input(p.add_argument_group("input"))
    _add_estimation(p.add_argument_group("pose estimation"))
    _add_output(p.add_argument_group("output"))
    _add_ray(p.add_argument_group("scale-out (needs the ray extra)"))


def _add_input(src: Any) -> None:
    src.add_argument("--topic", help="image topic (default: the only Image/CompressedImage topic)")
    src.add_argument("--camera-info-topic", help="CameraInfo topic (default: the one beside the image topic)")
    src.add_argument(
        "--intrinsics",
        metavar="FX,FY,CX,CY|YAML",
        help="intrinsics when the recording has no CameraInfo (required for videos)",
    )
    src.add_argument("--strict", action="store_true", help="fail on a corrupt frame instead of skipping it")
    src.add_argument(
        "--max-pixels",
        type=positive,
        metavar="N",
        help="a frame declaring more pixels (width x height) is corrupt, checked before decoding "
        "(default: 67108864 = 8192x8192)",
    )


def _add_estimation(est: Any) -> None:
    add_estimation(
        est,
        estimator_default="none",
        estimator_help="one of %(choices)s ('none' and 'frames-only' write no poses: they are marked "
        "missing, for `vidihand annotate`), or package.module:factory for your own (default: %(default)s)",
    )


def _add_output(out: Any) -> None:
    mode = out.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add episodes to an existing dataset")
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing dataset (only once the conversion succeeds)",
    )
    episodes = out.add_mutually_exclusive_group()
    episodes.add_argument(
        "--split-gaps",
        type=positive_number,
        metavar="SECONDS",
        help="start a new episode at a stamp gap longer than this",
    )
    episodes.add_argument(
        "--time-range",
        action="append",
        type=time_range,
        metavar="START:END",
        help="one episode from START to END seconds after the recording's first frame (repeatable)",
    )
    out.add_argument(
        "--image-size", type=image_size, metavar="WxH", help="resize frames (default: keep the source size)"
    )
    out.add_argument(
        "--jpeg-quality",
        type=jpeg_quality,
        default=90,
        help="JPEG quality for re-encoded frames, 1..100 (default 90)",
    )
    out.add_argument(
        "--reencode",
        action="store_true",
        help="decode and re-encode JPEG frames even when they could be copied",
    )
    out.add_argument(
        "--blur-faces",
        action="store_true",
        help="blur faces in the stored frames (MediaPipe face detection, needs the baseline extra); "
        "only frames with a face are re-encoded, the episode record counts them (docs/privacy.md)",
    )
    out.add_argument(
        "--pose-bag", type=Path, metavar="PATH", help="also write the HandPoses messages to a ROS 2 bag"
    )
    out.add_argument("--pose-bag-storage", choices=("mcap", "sqlite3"), default="mcap")


def _add_ray(ray: Any) -> None:
    ray.add_argument(
        "--ray",
        action="store_true",
        help="convert the recordings in parallel on Ray, one task per recording (retried if its "
        "worker dies), then merge them into the dataset in input order",
    )
    ray.add_argument(
        "--address",
        metavar="ADDR",
        help="with --ray: the cluster to join ('auto' after `ray start`, HOST:6379, ray://HOST:10001); "
        "default: start a local Ray instance",
    )


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.calibration import parse_intrinsics
    from vidihand_ros.cli.progress import ProgressBar
    from vidihand_ros.estimators import create_estimator
    from vidihand_ros.pipeline import ConvertOptions, convert

    options = ConvertOptions(
        topic=args.topic,
        camera_info_topic=args.camera_info_topic,
        camera=parse_intrinsics(args.intrinsics) if args.intrinsics else None,
        window=args.window,  # None: the estimator's own window
        stride=args.stride,
        segment_gap_s=args.segment_gap,
        split_gap_s=args.split_gaps,
        time_ranges=args.time_range,
        image_size=args.image_size,
        jpeg_quality=args.jpeg_quality,
        reencode=args.reencode,
        blur_faces=args.blur_faces,
        strict=args.strict,
        max_pixels=args.max_pixels or ConvertOptions.max_pixels,
        batch_windows=args.batch_windows,
        pose_bag=args.pose_bag,
        pose_bag_storage=args.pose_bag_storage,
    )
    estimator_options = estimator_options_of(args)
    if args.ray or args.address is not None:
        return _run_on_ray(args, options, estimator_options)
    estimator = create_estimator(args.estimator, estimator_options)
    try:
        with ProgressBar(enabled=not args.quiet) as progress:
            report = convert(
                args.inputs,
                args.output,
                estimator=estimator,
                options=options,
                append=args.append,
                overwrite=args.overwrite,
                progress=progress,
            )
    finally:
        if estimator is not None:
            estimator.close()
    _print_report(report, args.output)
    return 0


def _run_on_ray(args: argparse.Namespace, options: Any, estimator_options: dict[str, str]) -> int:
    """`--ray`: the estimator travels as its name and options; each task builds its own."""
    from vidihand_ros.cli.progress import ProgressBar
    from vidihand_ros.distributed.convert import EstimatorSpec, RayOptions, convert_on_ray
    from vidihand_ros.errors import InputError

    if not args.ray:
        raise InputError("--address needs --ray")
    for flag in ("mano_dir", "checkpoint", "token_file"):  # workers may run in another directory
        if getattr(args, flag) is not None:
            estimator_options[flag] = str(getattr(args, flag).absolute())
    with ProgressBar(enabled=not args.quiet) as progress:
        report = convert_on_ray(
            args.inputs,
            args.output,
            estimator=EstimatorSpec(args.estimator, estimator_options),
            options=options,
            append=args.append,
            overwrite=args.overwrite,
            ray_options=RayOptions(address=args.address, native_logs=bool(args.verbose)),
            progress=progress,
        )
    _print_report(report, args.output)
    return 0


def _print_report(report: Any, output: Path) -> None:
    skipped = sum(e.skipped for e in report.episodes)
    passthrough = sum(e.passthrough for e in report.episodes)
    duplicates = sum(e.duplicates_dropped for e in report.episodes)
    print(
        f"wrote {len(report.episodes)} episode(s), {report.frames} frames to {output} "
        f"({passthrough} JPEG frames copied unchanged, {skipped} corrupt frames skipped"
        + (f", {duplicates} frames with a repeated stamp dropped" if duplicates else "")
        + ")"
    )
    if getattr(report, "faces_blurred", None) is not None:
        print(f"blurred {report.faces_blurred} face(s) in {report.frames_with_faces} frame(s)")
