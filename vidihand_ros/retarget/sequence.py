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

__all__ = [
    "HandSequence",
    "SequenceRetargeter",
    "Smoothness",
    "joint_accelerations",
    "retarget_rows",
    "usable_rows",
]


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


class HandSequence:
    """One hand retargeted frame after frame: a fresh sequence after any frame it could not use.

    The one place the restart rule lives, for a dataset's rows (`retarget_rows`) and for a live
    stream (`live.LiveRobotHands`).
    """

    def __init__(self, retargeter: SequenceRetargeter, side: str) -> None:
        self.retargeter = retargeter
        self.side = side
        self._fresh = True

    def restart(self) -> None:
        """The next usable frame starts a new sequence (an episode or a stream segment begins)."""
        self._fresh = True

    def step(self, joints_3d: ArrayLike | None) -> NDArray[np.float64] | None:
        """Joint angles for one frame's 21 camera-frame joints, or None (and a restart) without them."""
        if joints_3d is None:
            self._fresh = True
            return None
        local = to_wrist_frame(joints_3d, self.side)
        if not np.isfinite(local).all():  # no joints, or a degenerate palm: no wrist frame
            self._fresh = True
            return None
        if self._fresh:
            self.retargeter.reset()
            self._fresh = False
        qpos = np.asarray(self.retargeter(local), dtype=np.float64)
        if not np.isfinite(qpos).all():
            self._fresh = True
            return None
        return qpos


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
    usable = np.asarray(usable, dtype=bool)
    n = joints.shape[0]
    qpos = np.full((n, retargeter.dof), np.nan, dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    starts = {0, *(int(e) for e in episode_ends[:-1])}
    sequence = HandSequence(retargeter, side)
    for row in range(n):
        if row in starts:
            sequence.restart()
        angles = sequence.step(joints[row] if usable[row] else None)
        if angles is not None:
            qpos[row], mask[row] = angles, True
        if progress is not None:
            progress(1)
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
