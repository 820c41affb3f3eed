"""`vidihand label`: UMI robot action keys (eef pose, gripper width) from a dataset's hand poses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vidihand_ros.cli.options import add_command

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  vidihand label demos.zarr --hand-to-gripper config/hand_to_gripper.yaml
      write robot0_* (right hand) and robot1_* (left hand): eef_pos, eef_rot_axis_angle,
      gripper_width, demo_start_pose, demo_end_pose, label_valid

Running it again replaces the labels (all keys at once, crash-safe). Episodes appended later are
unlabelled until the next run. Keys and conventions: docs/labels.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "label",
        run=run,
        help="write robot action labels (UMI keys: eef pose, gripper width) from the hand poses",
        description=(
            "Turn each configured hand's wrist pose and thumb-index aperture into the robot action "
            "keys UMI and diffusion_policy train on, and write them into the dataset."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", type=Path, metavar="DATASET", help="dataset directory (.zarr)")
    p.add_argument(
        "--hand-to-gripper",
        type=Path,
        required=True,
        metavar="CONFIG.yaml",
        help="which hand drives which robot, T_wrist_gripper per hand, aperture calibration "
        "(an example: config/hand_to_gripper.yaml)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.labels.config import load_config
    from vidihand_ros.labels.label import check_dataset, label_dataset

    config = load_config(args.hand_to_gripper)  # both checked before the lock file is made
    check_dataset(args.dataset)
    report = label_dataset(args.dataset, config)
    print(json.dumps(_as_json(report, args.dataset, config)) if args.json else _summary(report, args.dataset))
    return 0


def _summary(report: Any, path: Path) -> str:
    parts = [
        f"{r.robot} ({r.side} hand) {r.labelled} of {r.rows} rows ({100 * r.share:.1f}%)"
        for r in report.robots
    ]
    return f"labelled {path}: " + ", ".join(parts)


def _as_json(report: Any, path: Path, config: Any) -> dict[str, Any]:
    return {
        "dataset": str(path),
        "config": str(config.source),
        "config_sha256": config.sha256,
        "rows": report.rows,
        "robots": [
            {"robot": r.robot, "hand": r.side, "labelled": r.labelled, "share": r.share}
            for r in report.robots
        ],
        "recovered": report.recovered,
    }
