"""A small deterministic PoseEstimator for plumbing tests (test code, not a model).

It derives every value from the frame's stamp, so a frame gets the same estimate from every
window that contains it: after stitching, the result must equal `expected_pose(stamp)` exactly,
whatever the window/stride. The right hand is "absent" (low presence) on every third frame.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.types import FramePoses, HandPose, Window


def expected_pose(stamp_ns: int, side: str) -> HandPose:
    t = (stamp_ns % 10_000_000_000) / 1e9  # seconds, kept small for float32
    offset = 0.0 if side == "left" else 0.1
    joints = np.linspace(0.0, 0.02, 63, dtype=np.float32).reshape(21, 3) + np.float32(t + offset)
    return HandPose(
        presence=0.1 if side == "right" and (stamp_ns // 1_000_000) % 3 == 0 else 0.9,
        global_orient=np.array([0.1 * t, 0.0, 0.2], np.float32),
        hand_pose=np.full((15, 3), 0.05, np.float32),
        betas=np.full(10, offset, np.float32),
        transl=np.array([t, offset, 0.5], np.float32),
        joints_3d=joints,
        keypoints_2d=np.full((21, 2), 100.0 * t, np.float32),
        wrist_orient=np.array([0.1 * t, 0.0, 0.2], np.float32),
    )


class StampEstimator:
    """Implements PoseEstimator; counts calls so tests can check batching."""

    def __init__(self, **options: str) -> None:
        self.options = options
        self.calls: list[int] = []

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(name="stamp-test", version="1", options=dict(self.options))

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        self.calls.append(len(windows))
        return [
            [
                FramePoses(
                    f.stamp_ns,
                    f.frame_id,
                    expected_pose(f.stamp_ns, "left"),
                    expected_pose(f.stamp_ns, "right"),
                )
                for f in window.frames
            ]
            for window in windows
        ]

    def close(self) -> None:
        pass


def stamp_estimator(**options: str) -> StampEstimator:
    """Factory for `--estimator tests.estimators:stamp_estimator`."""
    return StampEstimator(**options)


class FailingStampEstimator(StampEstimator):
    """Fails on its `fail_call`-th call with an InputError naming a field, as a real one may."""

    def __init__(self, fail_call: str = "1", **options: str) -> None:
        super().__init__(**options)
        self.fail_call = int(fail_call)

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        if len(self.calls) == self.fail_call:
            raise InputError("no intrinsics for this window", field="K")
        return super().estimate(windows)


def failing_estimator(**options: str) -> FailingStampEstimator:
    """Factory for `--estimator tests.estimators:failing_estimator`."""
    return FailingStampEstimator(**options)


class SlowStampEstimator(StampEstimator):
    """StampEstimator taking `delay_s` seconds per call: slower than a camera, for drop tests."""

    def __init__(self, delay_s: str = "0.1", **options: str) -> None:
        super().__init__(**options)
        self.delay_s = float(delay_s)

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        time.sleep(self.delay_s)
        return super().estimate(windows)


def slow_estimator(**options: str) -> SlowStampEstimator:
    """Factory for `--estimator tests.estimators:slow_estimator` (option delay_s)."""
    return SlowStampEstimator(**options)


def right_hand_doubtful(stamp_ns: int) -> bool:
    """Frames (by stamp) on which `posed_estimator`'s right hand is barely present."""
    return (stamp_ns // 1_000_000) % 5 == 0


def posed_hand(stamp_ns: int, side: str) -> HandPose:
    """A hand in a known pose in front of the camera (right: pinching, left: open), turning slowly."""
    from scipy.spatial.transform import Rotation

    from vidihand_ros.testing.hand_poses import hand_in_pose, place

    t = (stamp_ns % 10_000_000_000) / 1e9
    turn = Rotation.from_rotvec([0.3, 0.1 + 0.2 * t, -0.2]).as_matrix()
    offset = 0.1 if side == "right" else -0.1
    joints = place(
        hand_in_pose("pinch" if side == "right" else "open", side), turn, np.array([offset, 0.0, 0.45])
    )
    doubtful = side == "right" and right_hand_doubtful(stamp_ns)
    return HandPose(presence=0.1 if doubtful else 0.9, joints_3d=joints.astype(np.float32))


class PosedEstimator(StampEstimator):
    """Both hands in known poses (`posed_hand`), for the robot-hand retargeting tests."""

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        self.calls.append(len(windows))
        return [
            [
                FramePoses(
                    f.stamp_ns, f.frame_id, posed_hand(f.stamp_ns, "left"), posed_hand(f.stamp_ns, "right")
                )
                for f in window.frames
            ]
            for window in windows
        ]


def posed_estimator(**options: str) -> PosedEstimator:
    """Factory for `--estimator tests.estimators:posed_estimator`."""
    return PosedEstimator(**options)
