"""`vidihand eval`: score predicted poses against ground truth (the paper's table columns)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidihand_ros.cli.options import add_command, fraction, positive_number

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "eval",
        run=run,
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
    p.add_argument(
        "--fps", type=positive_number, help="frame rate for Acc-Err/Jitter in mm/s² (default: from stamps)"
    )
    p.add_argument(
        "--presence-threshold",
        type=fraction,
        default=0.5,
        help="presence (0..1) at which a hand counts as detected",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.evaluation import run_eval

    return run_eval(
        args.pred, args.gt, json_out=args.json, fps=args.fps, presence_threshold=args.presence_threshold
    )
