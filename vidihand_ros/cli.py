"""The `vidihand` command line: convert recordings to datasets, inspect datasets."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidihand_ros import __version__
from vidihand_ros.errors import InputError
from vidihand_ros.model.train_cli import add_train_parser

EPILOG_CONVERT = """\
examples:
  vidihand convert run1.bag run2_mcap/ -o demos.zarr
      frames, stamps and intrinsics of two recordings (one episode each); poses marked missing
  vidihand convert rec.mcap -o demos.zarr --append --topic /cam/image_raw/compressed
  vidihand convert rec/ -o demos.zarr --split-gaps 2.0 --pose-bag rec_poses
  vidihand convert clip.mp4 -o demos.zarr --intrinsics 600,600,320,240
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if not args.verbose else logging.INFO, format="%(levelname)s: %(message)s"
    )
    try:
        result: int = args.run(args)
        return result
    except InputError as err:
        print(f"vidihand {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidihand {args.command}: interrupted; committed episodes are intact", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidihand",
        description="Egocentric video → two-hand 3D pose (MANO) → robot-learning datasets.",
    )
    parser.add_argument("--version", action="version", version=f"vidihand_ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is happening")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_convert(commands)
    _add_inspect(commands)
    _add_eval(commands)
    _add_import(commands)
    _add_model(commands)
    add_train_parser(commands)
    return parser


def _add_convert(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "convert",
        help="convert rosbags (ROS 1 .bag, ROS 2 sqlite3/mcap) or videos into a Zarr dataset",
        description=(
            "Read each recording's camera stream, estimate both hands' poses in overlapping windows "
            "(or none: frames-only), and write one episode per recording into a Zarr dataset in the "
            "diffusion_policy/UMI replay-buffer layout."
        ),
        epilog=EPILOG_CONVERT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", type=Path, metavar="BAG", help="rosbag file/directory, or mp4/mkv video"
    )
    p.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DATASET", help="dataset directory (.zarr)"
    )
    src = p.add_argument_group("input")
    src.add_argument("--topic", help="image topic (default: the only Image/CompressedImage topic)")
    src.add_argument("--camera-info-topic", help="CameraInfo topic (default: the one beside the image topic)")
    src.add_argument(
        "--intrinsics",
        metavar="FX,FY,CX,CY|YAML",
        help="intrinsics when the recording has no CameraInfo (required for videos)",
    )
    src.add_argument("--strict", action="store_true", help="fail on a corrupt frame instead of skipping it")
    est = p.add_argument_group("pose estimation")
    est.add_argument(
        "--estimator",
        default="none",
        help="'none' (frames-only: poses marked missing), a built-in estimator, or package.module:factory",
    )
    est.add_argument(
        "--estimator-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the estimator",
    )
    est.add_argument(
        "--checkpoint",
        type=Path,
        help="model checkpoint directory for --estimator vidihand (`vidihand model init`)",
    )
    est.add_argument(
        "--mano-dir",
        type=Path,
        help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl: the estimator fills the MANO keys (same as "
        "--estimator-option mano_dir=...)",
    )
    est.add_argument("--window", type=int, default=81, help="frames per window (default 81)")
    est.add_argument(
        "--stride", type=int, help="frames between window starts (default: --window; smaller overlaps)"
    )
    est.add_argument(
        "--batch-windows", type=int, default=1, metavar="N", help="windows sent to the estimator at once"
    )
    est.add_argument(
        "--segment-gap",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="a stamp jump over this starts a new window",
    )
    out = p.add_argument_group("output")
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
        type=float,
        metavar="SECONDS",
        help="start a new episode at a stamp gap longer than this",
    )
    episodes.add_argument(
        "--time-range",
        action="append",
        metavar="START:END",
        help="one episode from START to END seconds after the recording's first frame (repeatable)",
    )
    out.add_argument("--image-size", metavar="WxH", help="resize frames (default: keep the source size)")
    out.add_argument(
        "--jpeg-quality", type=int, default=90, help="JPEG quality for re-encoded frames (default 90)"
    )
    out.add_argument(
        "--reencode",
        action="store_true",
        help="decode and re-encode JPEG frames even when they could be copied",
    )
    out.add_argument(
        "--pose-bag", type=Path, metavar="PATH", help="also write the HandPoses messages to a ROS 2 bag"
    )
    out.add_argument("--pose-bag-storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_convert)


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "inspect",
        help="summarise a dataset: episodes, lengths, keys, fps, share of frames with each hand",
        description="Summarise a vidihand dataset (or any replay-buffer Zarr with meta/episode_ends).",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(run=_run_inspect)


def _add_eval(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "eval",
        help="score predicted poses against ground truth (the paper's table columns)",
        description=(
            "Compare a dataset of predicted poses (e.g. from `vidihand convert --estimator ...`) with a "
            "dataset holding ground truth in the same keys (e.g. from `vidihand import`), matching frames "
            "by stamp. Prints MPJPE(-p), PA-MPJPE(-p), MRRPE, Acc-Err, Jitter, FAcc, 2D EPE, CT and the "
            "HOT3D-style MPJPE-19 and PCK-AUC."
        ),
    )
    p.add_argument("pred", type=Path, metavar="PRED", help="dataset with predicted poses")
    p.add_argument("gt", type=Path, metavar="GT", help="dataset with ground-truth poses")
    p.add_argument("--fps", type=float, help="frame rate for Acc-Err/Jitter in mm/s² (default: from stamps)")
    p.add_argument(
        "--presence-threshold", type=float, default=0.5, help="presence at which a hand counts as detected"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_run_eval)


def _add_import(commands: argparse._SubParsersAction) -> None:
    from vidihand_ros.training_data import LOADERS

    p = commands.add_parser(
        "import",
        help="import a public hand dataset's ground truth (ARCTIC, HOT3D, EgoDex, HOI4D) as a dataset",
        description=(
            "Read sequences of a public dataset in its published on-disk layout (see README, 'Training "
            "and evaluation data') and write frames and ground-truth poses, one episode per sequence, "
            "in the same Zarr layout `convert` writes; `vidihand eval PRED GT` compares against it."
        ),
    )
    p.add_argument(
        "kind", choices=sorted(LOADERS), metavar="KIND", help=f"one of {', '.join(sorted(LOADERS))}"
    )
    p.add_argument("root", type=Path, metavar="ROOT", help="the dataset's root folder")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DATASET")
    p.add_argument("--sequence", action="append", metavar="NAME", help="only this sequence (repeatable)")
    p.add_argument("--camera", help="camera/view to read (ARCTIC view index, HOT3D stream id)")
    p.add_argument(
        "--mano-dir",
        type=Path,
        help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (needed for some conversions)",
    )
    p.add_argument("--image-size", metavar="WxH", help="resize frames (needed when sequences differ in size)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true")
    mode.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from vidihand_ros.training_data import import_main

    camera: str | int | None = args.camera
    if isinstance(camera, str) and camera.isdigit():
        camera = int(camera)
    episodes = import_main(
        args.kind,
        args.root,
        args.output,
        args.sequence,
        camera=camera,
        mano_dir=args.mano_dir,
        image_size=_image_size(args.image_size) if args.image_size else None,
        mode="a" if args.append else "w",
        overwrite=args.overwrite,
    )
    print(f"wrote {len(episodes)} episode(s) of {args.kind} ground truth to {args.output}")
    return 0


def _add_model(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("model", help="ViDiHand model checkpoints (needs the [model] extra)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    init = verbs.add_parser(
        "init",
        help="write a randomly initialised checkpoint (safetensors + JSON) of a model config",
        description=(
            "Build the model from a preset (tiny, wan21-vace-1.3b, wan22-5b-lora) or a JSON config with "
            "random weights and save it as a checkpoint directory that `--estimator vidihand "
            "--checkpoint DIR` and training load. Real pretrained backbone weights can be loaded into "
            "it from a local diffusers folder with --pretrained."
        ),
    )
    init.add_argument("--config", required=True, help="preset name or JSON config file")
    init.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    init.add_argument(
        "--pretrained", type=Path, help="local diffusers-format folder or safetensors of the backbone"
    )
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=_run_model_init)


def _run_model_init(args: argparse.Namespace) -> int:
    from vidihand_ros.model.config import ViDiHandConfig, preset, preset_names

    config = (
        preset(args.config) if args.config in preset_names() else ViDiHandConfig.from_json(Path(args.config))
    )
    from vidihand_ros.model.vidihand import build_model, checkpoint_sha256, save_model

    model = build_model(config, seed=args.seed, pretrained=args.pretrained)
    path = save_model(model, args.output)
    print(f"wrote {config.name} checkpoint to {path} (sha256 {checkpoint_sha256(path)[:12]})")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from vidihand_ros.evaluation import run_eval

    return run_eval(
        args.pred, args.gt, json_out=args.json, fps=args.fps, presence_threshold=args.presence_threshold
    )


def _run_convert(args: argparse.Namespace) -> int:
    from vidihand_ros.calibration import parse_intrinsics
    from vidihand_ros.estimators import create_estimator, parse_options
    from vidihand_ros.pipeline import ConvertOptions, convert

    options = ConvertOptions(
        topic=args.topic,
        camera_info_topic=args.camera_info_topic,
        camera=parse_intrinsics(args.intrinsics) if args.intrinsics else None,
        window=_positive(args.window, "--window"),
        stride=_positive(args.stride, "--stride") if args.stride is not None else None,
        segment_gap_s=args.segment_gap,
        split_gap_s=args.split_gaps,
        time_ranges=[_time_range(t) for t in args.time_range] if args.time_range else None,
        image_size=_image_size(args.image_size) if args.image_size else None,
        jpeg_quality=args.jpeg_quality,
        reencode=args.reencode,
        strict=args.strict,
        batch_windows=_positive(args.batch_windows, "--batch-windows"),
        pose_bag=args.pose_bag,
        pose_bag_storage=args.pose_bag_storage,
    )
    if options.stride is not None and options.stride > options.window:
        raise InputError(
            f"--stride {options.stride} is larger than --window {options.window}: frames would be lost"
        )
    estimator_options = parse_options(args.estimator_option)
    for flag in ("mano_dir", "checkpoint"):
        if getattr(args, flag) is not None:
            estimator_options[flag] = str(getattr(args, flag))
    estimator = create_estimator(args.estimator, estimator_options)
    try:
        with _progress(enabled=not args.quiet) as progress:
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
    skipped = sum(e.skipped for e in report.episodes)
    passthrough = sum(e.passthrough for e in report.episodes)
    print(
        f"wrote {len(report.episodes)} episode(s), {report.frames} frames to {args.output} "
        f"({passthrough} JPEG frames copied unchanged, {skipped} corrupt frames skipped)"
    )
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from vidihand_ros.summary import print_summary, summarise

    summary = summarise(args.dataset)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise InputError(f"{flag} must be at least 1, got {value}")
    return value


def _time_range(text: str) -> tuple[float, float]:
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        lo, hi = float(start), float(end)
    except ValueError:
        raise InputError(f"--time-range {text!r}: expected START:END in seconds, e.g. 2.5:10") from None
    if hi <= lo:
        raise InputError(f"--time-range {text!r}: END must be after START")
    return lo, hi


def _image_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        size = int(w), int(h)
    except ValueError:
        raise InputError(f"--image-size {text!r}: expected WIDTHxHEIGHT, e.g. 224x224") from None
    if min(size) < 1:
        raise InputError(f"--image-size {text!r}: width and height must be positive")
    return size


class _progress:
    """A rich progress bar per input file, or nothing when quiet / not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> Callable[[str, int | None], Callable[[int], None]] | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        bar.__enter__()

        def start(description: str, total: int | None) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        return start

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
