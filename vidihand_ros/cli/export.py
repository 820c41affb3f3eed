"""`vidihand export`: a dataset for other training stacks (`zarr-zip` for UMI, `lerobot` for LeRobot)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidihand_ros.cli.options import add_command, positive

__all__ = ["add_parser", "run"]

#: `export_lerobot`'s actions (`export.lerobot_features.ACTION_CHOICES`; not imported: numpy).
ACTION_CHOICES = ("auto", "robot_labels", "robot_hand_qpos", "next_state")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "export",
        help="export a dataset: a zarr ZipStore (UMI) or a LeRobot v3.0 folder",
        description="Export the committed episodes of a dataset for other training code (docs/export.md).",
    )
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")

    z = add_command(
        formats,
        "zarr-zip",
        run=run,
        help="one .zarr.zip file (zarr ZipStore), as UMI's training code reads it",
        description="Copy the dataset into a zarr ZipStore; image chunks are copied as they are.",
    )
    z.add_argument("dataset", type=Path, metavar="DATASET")
    z.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.zarr.zip")
    z.add_argument("--overwrite", action="store_true", help="replace an existing output")

    lr = add_command(
        formats,
        "lerobot",
        run=run,
        help="a LeRobot v3.0 dataset folder (parquet, mp4, meta/)",
        description="Write a LeRobot v3.0 dataset: hand poses as state/action, camera0 as H.264 video.",
    )
    lr.add_argument("dataset", type=Path, metavar="DATASET")
    lr.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    lr.add_argument("--repo-id", help="the dataset's LeRobot repo id (default: the output folder's name)")
    lr.add_argument(
        "--task",
        default="manipulation",
        help="task text of episodes whose record has none (default: %(default)s)",
    )
    lr.add_argument("--fps", type=positive, help="frame rate (default: the dataset's median, rounded)")
    lr.add_argument(
        "--action",
        choices=ACTION_CHOICES,
        default="auto",
        help="the action: robot_labels (vidihand label's gripper keys), robot_hand_qpos (vidihand "
        "retarget's robot-hand joints), next_state; auto: robot_labels when there are some, else "
        "next_state (default)",
    )
    lr.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args: argparse.Namespace) -> int:
    if args.format == "zarr-zip":
        from vidihand_ros.export.zarr_zip import export_zarr_zip

        print(export_zarr_zip(args.dataset, args.output, overwrite=args.overwrite).summary())
        return 0
    from vidihand_ros.export.lerobot import export_lerobot

    done = export_lerobot(
        args.dataset,
        args.output,
        repo_id=args.repo_id,
        task=args.task,
        fps=args.fps,
        action=args.action,
        overwrite=args.overwrite,
    )
    print(done.summary())
    return 0
