"""CameraInfo messages → CameraModel, and "which calibration was valid at time t".

A recording can carry thousands of identical CameraInfo messages, and occasionally a new
calibration (a zoom change, a re-calibration mid-session). `CalibrationTimeline` collapses runs of
identical calibration into segments, so its memory grows with the number of *distinct*
calibrations, not the bag length, and answers "nearest calibration in time" by bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.sources.image_messages import MessageRef
from vidihand_ros.types import CameraModel

CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def camera_info_to_model(msg: Any, where: MessageRef | None = None) -> CameraModel | None:
    """CameraInfo (ROS 1 `K`/`D` or ROS 2 `k`/`d` field names) → CameraModel.

    None for an uncalibrated camera (a driver without calibration publishes K = 0), so that such
    messages do not count as intrinsics. Any other unusable K or D (NaN, inf, a zero or negative
    focal length) is an InputError naming the field and value (and `where` the message is).
    """
    k_name, d_name = _name(msg, "k"), _name(msg, "d")
    K = np.asarray(getattr(msg, k_name), dtype=np.float64).ravel()
    if K.size != 9:
        raise _error(f"CameraInfo {k_name} has {K.size} entries, expected 9", k_name, where)
    if not np.any(K[[0, 2, 4, 5]]):  # fx, cx, fy, cy all zero: the uncalibrated convention
        return None
    camera = CameraModel(
        K=K.reshape(3, 3),
        width=int(msg.width),
        height=int(msg.height),
        distortion_model=str(msg.distortion_model),
        D=np.asarray(getattr(msg, d_name), dtype=np.float64).ravel(),
    )
    problem = camera.problem()
    if problem is not None:
        name = k_name if problem.matrix == "K" else d_name
        raise _error(f"CameraInfo {name}: {problem.message}", name, where)
    return camera


def _name(msg: Any, name: str) -> str:
    return name if hasattr(msg, name) else name.upper()


def _error(message: str, field: str, where: MessageRef | None) -> InputError:
    if where is None:
        return InputError(message, field=field)
    return where.error(message, field)


@dataclass(frozen=True)
class CalibrationSegment:
    """One calibration, seen from `first_ns` to `last_ns` (CameraInfo stamps) without a change."""

    first_ns: int
    last_ns: int
    camera: CameraModel


class CalibrationTimeline:
    """Calibrations over time; `at(t)` gives the one nearest in time to t."""

    def __init__(self) -> None:
        self.segments: list[CalibrationSegment] = []
        self._firsts: list[int] = []
        self._sorted = True

    def add(self, stamp_ns: int, camera: CameraModel) -> None:
        """Record a CameraInfo seen at `stamp_ns` (feed them in stream order)."""
        if self.segments:
            last = self.segments[-1]
            if camera.same_as(last.camera) and stamp_ns >= last.last_ns:
                self.segments[-1] = CalibrationSegment(last.first_ns, stamp_ns, last.camera)
                return
            self._sorted = self._sorted and stamp_ns >= last.last_ns
        self.segments.append(CalibrationSegment(stamp_ns, stamp_ns, camera))
        self._firsts.append(stamp_ns)

    def __len__(self) -> int:
        return len(self.segments)

    def at(self, stamp_ns: int) -> CameraModel | None:
        """The calibration whose segment contains `stamp_ns`, else the one with the nearest end."""
        if not self.segments:
            return None
        if not self._sorted:  # stamps went backwards somewhere: order once, then bisect
            self.segments.sort(key=lambda s: s.first_ns)
            self._firsts = [s.first_ns for s in self.segments]
            self._sorted = True
        i = bisect_right(self._firsts, stamp_ns) - 1
        best: tuple[int, CameraModel] | None = None
        for j in (i - 1, i, i + 1):  # neighbours suffice once segments are ordered by start
            if 0 <= j < len(self.segments):
                seg = self.segments[j]
                distance = max(seg.first_ns - stamp_ns, stamp_ns - seg.last_ns, 0)
                if best is None or distance < best[0]:
                    best = (distance, seg.camera)
        assert best is not None
        return best[1]
