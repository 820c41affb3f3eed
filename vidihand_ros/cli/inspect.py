"""`vidihand inspect`: summarise a dataset (episodes, lengths, keys, fps, share of frames per hand)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidihand_ros.cli.options import add_command

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "inspect",
        run=run,
        help="summarise a dataset: episodes, lengths, keys, fps, share of frames with each hand",
        description="Summarise a vidihand dataset (or any replay-buffer Zarr with meta/episode_ends).",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.summary import print_summary, summarise

    summary = summarise(args.dataset)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0
