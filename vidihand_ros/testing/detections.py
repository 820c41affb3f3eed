"""Per-frame hands recorded from MediaPipe and replayed: one detection run, several estimator runs.

The MediaPipe estimator takes its detector as a parameter (`HandDetector`), so tests and the
baseline benchmark can run MediaPipe's graph once over real footage (`RecordingDetector`) and then
replay exactly those detections (`ScriptedDetector`) through the estimator with other options —
or script detections of synthetic hands, which have no pixels for MediaPipe to look at.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.estimators.mediapipe.detector import MediaPipeHandDetector, RawHand

__all__ = ["RecordingDetector", "ScriptedDetector"]


class ScriptedDetector:
    """Replays one list of hands per frame, in call order (the estimator calls it once per frame)."""

    version = "scripted"

    def __init__(self, frames: list[list[RawHand]]) -> None:
        self.frames = frames
        self.calls = 0

    def detect(self, rgb: NDArray[np.uint8]) -> list[RawHand]:
        hands = self.frames[self.calls]
        self.calls += 1
        return hands

    def reset(self) -> None:
        """MediaPipe's graph forgets its tracked hands; a script has nothing to forget."""

    def close(self) -> None:
        """Nothing to release."""


class RecordingDetector:
    """The real MediaPipe detector, keeping what it reported so that a later run can replay it."""

    def __init__(self, **options: object) -> None:
        self.detector = MediaPipeHandDetector(**options)  # type: ignore[arg-type]
        self.version = self.detector.version
        self.frames: list[list[RawHand]] = []

    def detect(self, rgb: NDArray[np.uint8]) -> list[RawHand]:
        hands = self.detector.detect(rgb)
        self.frames.append(hands)
        return hands

    def reset(self) -> None:
        self.detector.reset()

    def close(self) -> None:
        self.detector.close()
