"""`vidihand annotate`: estimate the poses a dataset's episodes are missing, crash-safe."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vidihand_ros.cli.estimation import add_estimation, estimator_options
from vidihand_ros.cli.options import add_command

__all__ = ["add_parser", "episode_list", "run"]

EPILOG = """\
examples:
  vidihand annotate demos.zarr --estimator mediapipe
      every episode's missing poses (frames-only conversions, captures whose last results were late)
  vidihand annotate demos.zarr --episodes 0,2,5-7 --server http://gpu-box:8000 --token-file token
      those episodes, on an inference server (`vidihand serve`)

A row is missing when neither hand was estimated (presence NaN); rows that hold an estimate are
never changed. An interrupted run leaves each episode as it was or fully annotated; the next
writer, reader or annotate run finishes an episode whose annotation was committed.
"""

#: The most episodes a `--episodes` range may name (more is a typo).
MAX_EPISODES = 10_000_000


def episode_list(text: str) -> list[int]:
    """'0,2,5-7' → [0, 2, 5, 6, 7] (sorted, each once)."""
    episodes: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected episode numbers and ranges like 0,2,5-7, got {text[:40]!r}"
            ) from None
        if lo < 0 or hi < lo:
            raise argparse.ArgumentTypeError(f"{part.strip()!r}: ranges go from a first to a later episode")
        if hi - lo >= MAX_EPISODES:
            raise argparse.ArgumentTypeError(f"{part.strip()!r}: more than {MAX_EPISODES} episodes")
        episodes.update(range(lo, hi + 1))
    return sorted(episodes)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "annotate",
        run=run,
        help="estimate the poses a dataset's episodes are missing (frames-only, late live results)",
        description=(
            "Run an estimator over the stored frames of each episode's rows that hold no estimate and "
            "write their poses, episode by episode, crash-safe; what filled them goes into the "
            "episode's record."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", type=Path, metavar="DATASET", help="dataset directory (.zarr)")
    p.add_argument(
        "--episodes",
        type=episode_list,
        metavar="LIST",
        help="only these episodes, e.g. 0,2,5-7 (default: every episode)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_estimation(
        p.add_argument_group("pose estimation"),
        estimator_default=None,
        estimator_help="one of %(choices)s, or package.module:factory for your own "
        "(default: remote when --server is given)",
    )


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.annotate import AnnotateOptions, annotate, check_dataset
    from vidihand_ros.cli.progress import ProgressBar
    from vidihand_ros.errors import InputError
    from vidihand_ros.estimators import FRAMES_ONLY, create_estimator

    name = args.estimator or ("remote" if args.server else None)
    if name is None or name in FRAMES_ONLY:
        raise InputError("annotate needs an estimator: --estimator NAME or --server URL")
    options = AnnotateOptions(
        window=args.window,
        stride=args.stride,
        segment_gap_s=args.segment_gap,
        batch_windows=args.batch_windows,
    )
    check_dataset(args.dataset, args.episodes)  # before an estimator (a model, a connection) is built
    estimator = create_estimator(name, estimator_options(args))
    assert estimator is not None
    try:
        with ProgressBar(enabled=not args.quiet) as progress:
            report = annotate(
                args.dataset, estimator, episodes=args.episodes, options=options, progress=progress
            )
    finally:
        estimator.close()
    print(json.dumps(_as_json(report, args.dataset)) if args.json else _summary(report, args.dataset))
    return 0


def _summary(report: Any, path: Path) -> str:
    line = f"annotated {len(report.annotated)} episode(s) of {path}, {report.rows_filled} rows filled"
    if report.poses_missing:
        line += f" ({report.poses_missing} rows still without poses: the estimator gave none)"
    reasons: dict[str, list[int]] = {}
    for index, reason in report.skipped:
        reasons.setdefault(reason, []).append(index)
    for reason, indices in reasons.items():
        line += f"; skipped {len(indices)} ({reason}): {_ranges(indices)}"
    return line


def _as_json(report: Any, path: Path) -> dict[str, Any]:
    return {
        "dataset": str(path),
        "annotated": [
            {"episode": e.index, "rows_filled": e.rows_filled, "poses_missing": e.poses_missing}
            for e in report.annotated
        ],
        "skipped": [{"episode": index, "reason": reason} for index, reason in report.skipped],
        "rows_filled": report.rows_filled,
        "recovered": report.recovered,
    }


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] → '0-2,5' (the --episodes form)."""
    parts: list[str] = []
    for i in sorted(indices):
        if parts and i == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)
