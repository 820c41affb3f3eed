"""MediaPipe Hands as a per-frame hand detector: image in, hands with keypoints and side out.

Uses the legacy `mediapipe.solutions.hands.Hands` of mediapipe 0.10.21, the last release whose
wheel carries the palm-detection and hand-landmark models, so nothing is downloaded at run time
(robots are often offline). In video mode (`static_image_mode=False`) the graph keeps state: after
a hand is found, the next frames track it from its previous landmarks and skip palm detection,
which is what makes it real time on one CPU core; frames must therefore arrive in stream order.

MediaPipe's handedness label assumes a mirrored (selfie) image. A head or chest camera is not
mirrored, so there the label names the *other* side; `mirrored=True` keeps the label as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.types import NUM_JOINTS

__all__ = ["MEDIAPIPE_VERSION", "MediaPipeHandDetector", "RawHand", "import_mediapipe"]

#: The one mediapipe release the baseline is built and tested against (see setup.py's `baseline`).
MEDIAPIPE_VERSION = "0.10.21"

_OTHER_SIDE = {"left": "right", "right": "left"}


def import_mediapipe() -> ModuleType:
    """Import mediapipe, or explain how to install it (an InputError the CLI prints as one line)."""
    # Errors only, for builds whose C++ code logs through glog. 0.10.21 logs through absl and
    # TFLite, which ignore this and write to fd 2 directly: the CLI filters those lines there
    # unless -v (`vidihand_ros.native_stderr`).
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe
    except ImportError as err:
        hint = ""
        if "libGL" in str(err) or "libgthread" in str(err) or "libSM" in str(err):
            hint = (
                " (OpenCV's GUI build needs system libraries: `apt-get install libgl1 libglib2.0-0`, or "
                "put the headless build back with `pip install --force-reinstall --no-deps "
                "opencv-python-headless==4.11.0.86`)"
            )
        raise InputError(
            f"the 'mediapipe' estimator needs mediapipe=={MEDIAPIPE_VERSION}: "
            f"pip install 'vidihand_ros[baseline]' ({err}){hint}"
        ) from err
    return mediapipe


@dataclass(frozen=True)
class RawHand:
    """One hand as MediaPipe reported it in one frame, with the side corrected for mirroring."""

    #: (21, 2) image keypoints in pixels (distorted, as in the image).
    keypoints_2d: NDArray[np.float64]
    #: (21, 3) MediaPipe "world" landmarks: metres, origin near the hand's centre, axes parallel
    #: to the camera's (x right, y down, z forward).
    world: NDArray[np.float64]
    #: 'left' or 'right' as the camera really sees it.
    side: str
    #: MediaPipe's confidence in its handedness label (0.5..1).
    score: float


class MediaPipeHandDetector:
    """Thin stateful wrapper around `mediapipe.solutions.hands.Hands` (up to two hands)."""

    def __init__(
        self,
        *,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        mirrored: bool = False,
        static_image_mode: bool = False,
        max_num_hands: int = 2,
    ) -> None:
        mp = import_mediapipe()
        if model_complexity not in (0, 1):
            raise InputError(f"model_complexity must be 0 or 1, got {model_complexity}")
        self.version: str = str(mp.__version__)
        self.mirrored = mirrored
        self._hands: Any = mp.solutions.hands.Hands(
            static_image_mode=static_image_mode,
            max_num_hands=max_num_hands,
            model_complexity=model_complexity,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, rgb: NDArray[np.uint8]) -> list[RawHand]:
        """Hands in one (H, W, 3) uint8 RGB frame; in video mode frames must come in stream order."""
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        height, width = image.shape[:2]
        result = self._hands.process(image)
        if not result.multi_hand_landmarks:
            return []
        scale = np.array([width, height], dtype=np.float64)
        hands = []
        for landmarks, world, handedness in zip(
            result.multi_hand_landmarks,
            result.multi_hand_world_landmarks,
            result.multi_handedness,
            strict=True,
        ):
            uv = np.array([(p.x, p.y) for p in landmarks.landmark], dtype=np.float64) * scale
            xyz = np.array([(p.x, p.y, p.z) for p in world.landmark], dtype=np.float64)
            if uv.shape != (NUM_JOINTS, 2) or xyz.shape != (NUM_JOINTS, 3):
                continue
            label = handedness.classification[0]
            side = str(label.label).lower()
            if side not in _OTHER_SIDE:
                continue
            hands.append(
                RawHand(
                    keypoints_2d=uv,
                    world=xyz,
                    side=side if self.mirrored else _OTHER_SIDE[side],
                    score=float(label.score),
                )
            )
        return hands

    def reset(self) -> None:
        """Forget tracked hands (a cut in the video: the next frame runs palm detection again)."""
        self._hands.reset()

    def close(self) -> None:
        self._hands.close()
