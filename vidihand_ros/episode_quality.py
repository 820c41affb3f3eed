"""Per-episode quality of a stored dataset: is each hand there, smooth, and free of jumps and flips?

`vidihand inspect` shows this so a user can drop bad episodes before training on them: a policy
learns whatever a hand track carries, gaps and jumps included. The numbers reuse
`vidihand_ros.quality` on the stored arrays; docs/quality.md says what each one means.

A hand is *found* on a frame when its pose is valid and its presence is at least
`FOUND_PRESENCE` (as `DatasetReader.hand_share` counts it). A *gap* is a maximal run of frames
without a found hand, wherever it is: runs at the start or end of the episode count too (a hand
that enters late is missing data for those frames just as much as one that drops out midway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros import quality
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.types import HAND_SIDES

__all__ = [
    "DEPTH_JUMP_FLAG_COUNT",
    "FOUND_PRESENCE",
    "JITTER_P90_FLAG_MM",
    "LONG_GAP_FLAG_S",
    "MISSING_FLAG_SHARE",
    "SIDE_FLIP_FLAG_COUNT",
    "HandSeries",
    "episode_quality",
    "gap_runs",
    "hand_series",
    "poses_stored",
]

#: Presence from which a valid hand counts as found (`DatasetReader.hand_share`'s default).
FOUND_PRESENCE = 0.5
#: Flag a hand missing on more than this share of the episode's frames.
MISSING_FLAG_SHARE = 0.5
#: Flag a gap longer than this, in seconds (at the episode's frame rate).
LONG_GAP_FLAG_S = 1.0
#: Flag a hand whose 90th-percentile wrist acceleration exceeds this (mm/frame²): at 30 fps,
#: 20 mm/frame² is 18 m/s², beyond what a hand does steadily; a jittery estimate does.
JITTER_P90_FLAG_MM = 20.0
#: Flag any unexplained depth jump (`quality.unexplained_depth_jumps`) at or above this count,
#: and any side flip (`quality.identity_swaps`) at or above this count.
DEPTH_JUMP_FLAG_COUNT = 1
SIDE_FLIP_FLAG_COUNT = 1


@dataclass(frozen=True)
class HandSeries:
    """One hand of one episode, as stored: what the quality numbers and the plots are made from."""

    found: NDArray[np.bool_]  # (T,) valid and present
    filled: NDArray[np.bool_]  # (T,) interpolated across a gap, not observed
    presence: NDArray[np.float32]  # (T,) NaN where nothing was estimated
    joints: NDArray[np.float64]  # (T, 21, 3) camera frame, metres
    keypoints: NDArray[np.float64]  # (T, 21, 2) pixels


def poses_stored(reader: DatasetReader, i: int) -> bool:
    """Whether episode `i` holds hand poses: its record says so, or (other tools) any row is valid."""
    valid = [hand_key(side, "valid") for side in HAND_SIDES if hand_key(side, "valid") in reader.keys]
    if not valid:
        return False
    has = reader.has_poses(i)
    if has is None:
        arrays = reader.episode(i, keys=valid)
        has = any(bool(a.any()) for a in arrays.values())
    return bool(has)


def hand_series(reader: DatasetReader, i: int, side: str) -> HandSeries | None:
    """The stored arrays of one hand in episode `i`; None when the dataset lacks that hand's keys."""
    fields = ("valid", "presence", "filled", "joints_3d", "keypoints_2d")
    keys = [hand_key(side, f) for f in fields]
    if any(k not in reader.keys for k in keys[:2] + keys[3:]):
        return None
    present = [k for k in keys if k in reader.keys]
    a = reader.episode(i, keys=present)
    valid = np.asarray(a[keys[0]], dtype=bool)
    presence = np.asarray(a[keys[1]], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        found = valid & (presence >= FOUND_PRESENCE)
    filled = np.asarray(a[keys[2]], dtype=bool) if keys[2] in a else np.zeros_like(valid)
    return HandSeries(
        found=found,
        filled=filled,
        presence=presence,
        joints=np.asarray(a[keys[3]], dtype=np.float64),
        keypoints=np.asarray(a[keys[4]], dtype=np.float64),
    )


def gap_runs(found: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, stop) frame ranges of the maximal runs where `found` is False, ends included."""
    missing = np.concatenate([[False], ~np.asarray(found, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(missing.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def episode_quality(reader: DatasetReader, i: int) -> dict[str, Any]:
    """The quality record of episode `i` (JSON-serialisable: None where a number does not exist).

    `left` / `right` are None for an episode without poses (frames-only) or without that
    hand's keys; such an episode gets no flags about hands.
    """
    start, stop = reader.bounds(i)
    fps = reader.fps(i)
    record: dict[str, Any] = {"episode": i, "frames": stop - start, "has_poses": poses_stored(reader, i)}
    series = {side: hand_series(reader, i, side) if record["has_poses"] else None for side in HAND_SIDES}
    for side in HAND_SIDES:
        s = series[side]
        record[side] = None if s is None else _hand_quality(s)
    left, right = series.get("left"), series.get("right")
    record["side_flips"] = None if left is None or right is None else _side_flips(left, right)
    record["flags"] = _flags(record, fps)
    return record


def _hand_quality(s: HandSeries) -> dict[str, Any]:
    frames = len(s.found)
    gaps = gap_runs(s.found)
    acceleration = quality.wrist_acceleration(s.joints, s.found)
    steps = quality.depth_steps(s.joints, s.found)
    return {
        "found_share": _round(float(s.found.mean())) if frames else None,
        "found_frames": int(s.found.sum()),
        "gaps": len(gaps),
        "longest_gap": max((b - a for a, b in gaps), default=0),
        "filled_frames": int(s.filled.sum()),
        "acceleration_median_mm": _percentile(acceleration, 50.0),
        "acceleration_p90_mm": _percentile(acceleration, 90.0),
        "depth_steps": int(np.sum(steps > quality.DEPTH_JUMP_M)),
        "depth_step_max_mm": _round(float(steps.max()) * 1000.0) if steps.size else None,
        "unexplained_depth_jumps": quality.unexplained_depth_jumps(s.joints, s.keypoints, s.found),
    }


def _side_flips(left: HandSeries, right: HandSeries) -> int:
    """Frames where the two wrists' image positions most likely swapped labels."""
    return quality.identity_swaps(left.keypoints[:, 0], right.keypoints[:, 0], left.found, right.found)


def _flags(record: dict[str, Any], fps: float) -> list[str]:
    """Short reasons this episode is likely bad for training; empty when nothing stands out."""
    flags = []
    frames = record["frames"]
    for side in HAND_SIDES:
        q = record.get(side)
        if q is None or frames == 0:
            continue
        missing = 1.0 - q["found_frames"] / frames
        if missing > MISSING_FLAG_SHARE:
            flags.append(f"{side} hand missing {missing:.0%} of frames")
        if math.isfinite(fps) and q["longest_gap"] / fps > LONG_GAP_FLAG_S and missing < 1.0:
            flags.append(f"{side} hand gap of {q['longest_gap']} frames ({q['longest_gap'] / fps:.1f} s)")
        jumps = q["unexplained_depth_jumps"]
        if jumps >= DEPTH_JUMP_FLAG_COUNT:
            flags.append(f"{side} hand {jumps} depth jump{'s' if jumps != 1 else ''}")
        p90 = q["acceleration_p90_mm"]
        if p90 is not None and p90 > JITTER_P90_FLAG_MM:
            flags.append(f"{side} hand jitter p90 {p90:.0f} mm/frame²")
    flips = record.get("side_flips")
    if flips is not None and flips >= SIDE_FLIP_FLAG_COUNT:
        flags.append(f"{flips} side flip{'s' if flips != 1 else ''}")
    return flags


def _percentile(values: NDArray[np.float64], q: float) -> float | None:
    return _round(float(np.percentile(values, q))) if values.size else None


def _round(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None
