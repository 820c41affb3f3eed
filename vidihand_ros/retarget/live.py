"""Robot-hand joint angles for a live stream of hand poses: one answer per frame and hand, in order.

The node and any other front end feed each frame's `FramePoses` as the `PoseStream` delivers them
(in stamp order); each chosen hand is retargeted by its `HandSequence`, which starts afresh after
a frame without a usable hand, after a stamp jump larger than the stream's segment gap, and when
stamps go backwards (a bag played again). A frame without a usable hand gives no angles: a robot
is never sent a held or made-up pose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.retarget.robots import RetargetSetup
from vidihand_ros.retarget.sequence import HandSequence, usable_rows
from vidihand_ros.types import FramePoses, HandPose

__all__ = ["LiveRobotHands"]


class LiveRobotHands:
    """One robot hand per chosen side, retargeted frame by frame."""

    def __init__(self, setups: Sequence[RetargetSetup], *, min_presence: float, segment_gap_s: float) -> None:
        from vidihand_ros.retarget.solver import HandRetargeter

        retargeters = {setup.side: HandRetargeter(setup) for setup in setups}
        self._sequences = {side: HandSequence(r, side) for side, r in retargeters.items()}
        self._names = {side: r.joint_names for side, r in retargeters.items()}
        self._min_presence = min_presence
        self._gap_ns = int(segment_gap_s * 1e9)
        self._last_ns: dict[str, int] = {}

    @property
    def sides(self) -> tuple[str, ...]:
        return tuple(self._sequences)

    def joint_names(self, side: str) -> tuple[str, ...]:
        """The robot's joints, in the order of every angle vector `update` gives for `side`."""
        return self._names[side]

    def update(self, poses: FramePoses) -> dict[str, NDArray[np.float64]]:
        """{side: joint angles} for the hands of this frame that could be retargeted."""
        out = {}
        for side, sequence in self._sequences.items():
            last = self._last_ns.get(side)
            if last is not None and not 0 < poses.stamp_ns - last <= self._gap_ns:
                sequence.restart()
            self._last_ns[side] = poses.stamp_ns
            angles = sequence.step(self._joints(poses.hand(side)))
            if angles is not None:
                out[side] = angles
        return out

    def _joints(self, pose: HandPose | None) -> NDArray[np.float32] | None:
        if pose is None:
            return None
        usable = usable_rows([True], [pose.presence], pose.joints_3d[None], self._min_presence)
        return pose.joints_3d if usable[0] else None
