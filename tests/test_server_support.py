"""Estimators and windows for the server tests (no tests here): real estimators with a twist each.

They are loaded by name through the registry (`tests.test_server_support:slow`), as `vidihand
serve --estimator` loads any `module:factory`, also inside spawned worker processes. Instances
built in this process are kept in `INSTANCES`, so a test can see what its server's estimator saw.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import imagecodecs
import numpy as np

from tests.bagfactory import synthetic_frames
from tests.estimators import StampEstimator
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.types import CameraModel, Frame, FramePoses, Window

INSTANCES: list[StampEstimator] = []
CAMERA = CameraModel.from_fxfycxcy(60.0, 60.0, 31.5, 23.5, width=64, height=48)


class SlowEstimator(StampEstimator):
    """Takes `delay` seconds per call and records every window it estimates (first stamp)."""

    def __init__(self, delay: str = "0.2", **options: str) -> None:
        super().__init__(**options)
        self.delay = float(delay)
        self.seen: list[int] = []

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        if not any(f.frame_id == "warmup" for w in windows for f in w.frames):
            time.sleep(self.delay)
            self.seen.extend(w.frames[0].stamp_ns for w in windows)
        return super().estimate(windows)


class PickyEstimator(StampEstimator):
    """Refuses (InputError) any batch holding a window whose frames are called "bad"."""

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        if any(f.frame_id == "bad" for w in windows for f in w.frames):
            raise InputError("this window has no usable intrinsics", field="K")
        return super().estimate(windows)


class OrderedEstimator(StampEstimator):
    """A stateful one: records (frame_id, start) of each window, to check one stream per instance
    and each stream's windows in order."""

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self.order: list[tuple[str, int]] = []

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(name="ordered-test", version="1", stateful=True, window=4, stride=2)

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        self.order.extend((w.frames[0].frame_id, w.start) for w in windows)
        return super().estimate(windows)


def _keep(estimator: StampEstimator) -> StampEstimator:
    INSTANCES.append(estimator)
    return estimator


def slow(**options: str) -> StampEstimator:
    return _keep(SlowEstimator(**options))


def picky(**options: str) -> StampEstimator:
    return _keep(PickyEstimator(**options))


def ordered(**options: str) -> StampEstimator:
    return _keep(OrderedEstimator(**options))


def slow_start(startup: str = "1.0", **options: str) -> StampEstimator:
    time.sleep(float(startup))
    return _keep(StampEstimator(**options))


def broken(**options: str) -> StampEstimator:
    raise InputError("no weights in this checkpoint", field="checkpoint")


# ----------------------------------------------------------------------------------------------
# Windows


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    return bytes(imagecodecs.jpeg8_encode(rgb, level=quality))


def jpeg_window(
    n: int = 3, *, stamp0: int = 1_000_000_000, frame_id: str = "cam", start: int = 0, seed: int = 0
) -> Window:
    """`n` 64×48 JPEG frames 33 ms apart, calibrated."""
    frames = [
        Frame(
            stamp0 + i * 33_000_000,
            frame_id,
            "jpeg",
            64,
            48,
            data=jpeg(rgb),
            camera=CAMERA,
            index=start + i,
        )
        for i, rgb in enumerate(synthetic_frames(n, seed=seed))
    ]
    return Window(frames=frames, start=start, num_valid=n, segment=0)
