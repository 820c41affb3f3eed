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

from vidihand_ros.types import CameraModel

CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def camera_info_to_model(msg: Any) -> CameraModel | None:
    """CameraInfo (ROS 1 `K`/`D` or ROS 2 `k`/`d` field names) → CameraModel.

    None for an uncalibrated camera (a driver without calibration publishes K = 0), so that such
    messages do not count as intrinsics.
    """
    K = np.asarray(_field(msg, "k"), dtype=np.float64).ravel()
    if K.size != 9 or not np.all(np.isfinite(K)) or K[0] <= 0 or K[4] <= 0:
        return None
    return CameraModel(
        K=K.reshape(3, 3),
        width=int(msg.width),
        height=int(msg.height),
        distortion_model=str(msg.distortion_model),
        D=np.asarray(_field(msg, "d"), dtype=np.float64).ravel(),
    )


def _field(msg: Any, name: str) -> Any:
    return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())


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
