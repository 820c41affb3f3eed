"""Retarget a hand's rows episode by episode, and measure how smooth the joint actions are.

The optimiser warm-starts from the previous frame and the package's low-pass filter carries state
from frame to frame; both are reset where the motion really restarts: at every episode's first row
and at the first usable row after rows the hand was not usable on (out of view, not estimated,
degenerate palm). A row that is not usable gets NaN joints and a False mask: never a held or
extrapolated value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidihand_ros.retarget.wrist_frame import to_wrist_frame

__all__ = ["SequenceRetargeter", "Smoothness", "joint_accelerations", "retarget_rows", "usable_rows"]


class SequenceRetargeter(Protocol):
    """What `retarget_rows` needs of a retargeter (`solver.HandRetargeter` is one)."""

    @property
    def dof(self) -> int: ...

    def reset(self) -> None: ...

    def __call__(self, wrist_frame_joints: ArrayLike) -> NDArray[np.float64]: ...


def usable_rows(
    valid: ArrayLike, presence: ArrayLike, joints_3d: ArrayLike, min_presence: float
) -> NDArray[np.bool_]:
    """Rows with a hand to retarget: valid, present enough and all 21 joints finite."""
    joints = np.asarray(joints_3d, dtype=np.float64)
    return np.asarray(
        np.asarray(valid, dtype=bool)
        & (np.asarray(presence, dtype=np.float64) >= min_presence)  # NaN presence compares False
        & np.isfinite(joints).all(axis=(-2, -1)),
        dtype=bool,
    )


def retarget_rows(
    retargeter: SequenceRetargeter,
    joints_3d: ArrayLike,
    side: str,
    usable: ArrayLike,
    episode_ends: Sequence[int],
    progress: Callable[[int], None] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """(joint angles (N, DOF) float32, mask (N,)) for the camera-frame `joints_3d` (N, 21, 3)."""
    joints = np.asarray(joints_3d, dtype=np.float64)
    mask = np.asarray(usable, dtype=bool).copy()
    n = joints.shape[0]
    local = np.full((n, 21, 3), np.nan)
    local[mask] = to_wrist_frame(joints[mask], side)
    mask &= np.isfinite(local).all(axis=(1, 2))  # a degenerate palm has no wrist frame
    qpos = np.full((n, retargeter.dof), np.nan, dtype=np.float32)
    starts = {0, *(int(e) for e in episode_ends[:-1])}
    fresh = True
    for row in range(n):
        if row in starts:
            fresh = True
        if not mask[row]:
            fresh = True
        else:
            if fresh:
                retargeter.reset()
                fresh = False
            qpos[row] = retargeter(local[row])
        if progress is not None:
            progress(1)
    mask &= np.isfinite(qpos).all(axis=1)
    qpos[~mask] = np.nan
    return qpos, mask


@dataclass(frozen=True)
class Smoothness:
    """|Joint acceleration| (second differences × fps²; rad/s², m/s² for prismatic joints)."""

    samples: int
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, accelerations: Sequence[NDArray[np.float64]]) -> Smoothness:
        values = np.abs(np.concatenate([np.ravel(a) for a in accelerations])) if accelerations else []
        if len(values) == 0:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(
            len(values), float(np.median(values)), float(np.percentile(values, 95)), float(np.max(values))
        )


def joint_accelerations(qpos: ArrayLike, mask: ArrayLike, fps: float) -> NDArray[np.float64]:
    """(M, DOF) accelerations of one episode, from each triple of consecutive masked rows.

    Triples that span an unmasked row are left out: the motion restarts after a gap, and a
    difference across it would measure the cut, not the motion.
    """
    q = np.asarray(qpos, dtype=np.float64)
    ok = np.asarray(mask, dtype=bool)
    if len(ok) < 3:
        return np.zeros((0, q.shape[1] if q.ndim == 2 else 0))
    triple = ok[:-2] & ok[1:-1] & ok[2:]
    return np.asarray(((q[2:] - 2 * q[1:-1] + q[:-2]) * fps**2)[triple])
