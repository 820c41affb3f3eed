"""`vidihand plot`: PNG plots of a dataset's hand tracks, per episode, and one summary figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidihand_ros.cli.options import add_command, non_negative_int

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "plot",
        run=run,
        help="PNG plots per episode (presence, wrist, speed, gripper width, jitter) and a summary",
        description=(
            "Write episode_NNN.png per episode (presence, wrist x/y/z, speed, gripper width when "
            "labelled, jitter over time) and summary.png (share found, jitter, flags per episode) "
            "into DIR. Episodes without poses (frames only) get no episode plot."
        ),
    )
    p.add_argument("dataset", type=Path, metavar="DATASET")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder (created)")
    p.add_argument("--episode", type=non_negative_int, metavar="N", help="only this episode (default: all)")


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.dataset.reader import DatasetReader
    from vidihand_ros.errors import InputError
    from vidihand_ros.plots import plot_dataset
    from vidihand_ros.render.selection import select_rows

    reader = DatasetReader(args.dataset)
    episodes = [rows.episode for rows in select_rows(reader, args.episode, None)]
    if args.output.exists() and not args.output.is_dir():
        raise InputError("not a folder", source=args.output)
    written, skipped = plot_dataset(reader, args.output, episodes)
    for i in skipped:
        print(f"episode {i}: no poses (frames only), not plotted")
    for figure in written:
        print(figure.path)
    return 0
