"""`vidihand retarget`: robot-hand joint actions (Allegro, LEAP, ...) from a dataset's hand poses."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidihand_ros.cli.options import add_command, fraction

if TYPE_CHECKING:
    from vidihand_ros.retarget.dataset import RetargetReport

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  vidihand retarget demos.zarr --robot allegro --urdf-dir ~/dex-urdf/robots/hands
      both hands, vector mode: robot0_hand_qpos (right), robot1_hand_qpos (left), each with a
      robot{i}_hand_qpos_valid mask
  vidihand retarget demos.zarr --robot leap --hand right --mode dexpilot --urdf-dir DIR
  vidihand retarget demos.zarr --robot allegro --hand left --config my_allegro_left.yml

The robot models are not bundled: --urdf-dir is a folder laid out as dexsuite/dex-urdf's
robots/hands (each hand under its own licence). Running it again replaces the chosen hands' keys.
Needs the retarget extra (pip install 'vidihand_ros[retarget]'). Details: docs/retarget.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from vidihand_ros.retarget.robots import MODES, ROBOTS

    p = add_command(
        subparsers,
        "retarget",
        run=run,
        help="write robot-hand joint actions (Allegro, LEAP, ...) retargeted from the hand poses",
        description=(
            "Retarget each hand's 21 joints to a dexterous robot hand with dex-retargeting and write "
            "the joint positions into the dataset, beside vidihand label's gripper keys."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", type=Path, metavar="DATASET", help="dataset directory (.zarr)")
    p.add_argument(
        "--robot",
        required=True,
        help=f"robot hand: {', '.join(ROBOTS)} (with --config: the name recorded for it)",
    )
    p.add_argument(
        "--hand", choices=("left", "right", "both"), default="both", help="which hand(s) (default: both)"
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="vector",
        help="vector (teleoperation, default), dexpilot (vector with a pinch prior) or position "
        "(fingertip positions, offline)",
    )
    p.add_argument(
        "--urdf-dir", type=Path, metavar="DIR", help="folder of robot models (dex-urdf's robots/hands)"
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE.yml",
        help="a dex-retargeting configuration for one hand instead of the package's (with --hand "
        "left or right); its urdf_path is relative to --urdf-dir, else to the file's folder",
    )
    p.add_argument(
        "--low-pass-alpha",
        type=fraction,
        metavar="A",
        help="the package's temporal filter, 0 < A <= 1 (1: none; default: the configuration's)",
    )
    p.add_argument(
        "--min-presence",
        type=fraction,
        default=0.5,
        metavar="P",
        help="retarget a hand only where its presence is at least P (default: 0.5)",
    )
    p.add_argument(
        "--mano-dir",
        type=Path,
        metavar="DIR",
        help="MANO_RIGHT.pkl / MANO_LEFT.pkl: rows with MANO parameters are retargeted from the MANO "
        "layer's joints",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.cli.progress import ProgressBar
    from vidihand_ros.errors import InputError
    from vidihand_ros.retarget.dataset import check_dataset, retarget_dataset
    from vidihand_ros.retarget.robots import find_setups

    sides = ("right", "left") if args.hand == "both" else (args.hand,)
    if args.config is not None and len(sides) > 1:
        raise InputError(
            "--config is one hand's configuration: give --hand left or --hand right", source=args.config
        )
    if args.low_pass_alpha is not None and args.low_pass_alpha <= 0:
        raise InputError("--low-pass-alpha must be above 0 (0 would never move)")
    setups = find_setups(
        args.robot,
        sides,
        args.mode,
        urdf_dir=args.urdf_dir,
        config_file=args.config,
        low_pass_alpha=args.low_pass_alpha,
    )
    check_dataset(args.dataset)
    with ProgressBar(not getattr(args, "quiet", False)) as progress:
        report = retarget_dataset(
            args.dataset, setups, min_presence=args.min_presence, mano_dir=args.mano_dir, progress=progress
        )
    print(json.dumps(_as_json(report, args.dataset)) if args.json else _summary(report, args.dataset))
    return 0


def _summary(report: RetargetReport, path: Path) -> str:
    lines = [f"retargeted {path} ({report.rows} rows):"]
    for h in report.hands:
        s = h.smoothness
        lines.append(
            f"  {h.robot}_hand_qpos: {h.robot_model} {h.mode}, {h.side} hand, {h.dof} joints, "
            f"{h.retargeted} of {h.rows} rows ({_percent(h.retargeted, h.rows)}), "
            f"{h.frames_per_second:.0f} frames/s; |joint acceleration| median {s.median:.1f}, "
            f"p95 {s.p95:.1f}, max {s.max:.1f} rad/s²"
        )
    return "\n".join(lines)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _as_json(report: RetargetReport, path: Path) -> dict[str, Any]:
    def number(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {
        "dataset": str(path),
        "rows": report.rows,
        "hands": [
            {
                "key": f"{h.robot}_hand_qpos",
                "robot": h.robot_model,
                "hand": h.side,
                "mode": h.mode,
                "dof": h.dof,
                "retargeted": h.retargeted,
                "from_mano": h.from_mano,
                "frames_per_second": number(h.frames_per_second),
                "joint_acceleration": {
                    "samples": h.smoothness.samples,
                    "median": number(h.smoothness.median),
                    "p95": number(h.smoothness.p95),
                    "max": number(h.smoothness.max),
                },
            }
            for h in report.hands
        ],
        "recovered": report.recovered,
    }
