"""Blurring faces in stored frames: head cameras film other people, datasets get shared.

The detector is MediaPipe's face detection, "full range" model (`model_selection=1`, for faces up
to ~5 m away, down to ~25 px high in a 640×480 frame), through the legacy
`mediapipe.solutions.face_detection` of mediapipe 0.10.21: its wheel carries the model
(`modules/face_detection/face_detection_full_range_sparse.tflite`), so nothing is downloaded and
robots offline can blur too. Every frame is searched on its own (no tracking: a stored frame must
not depend on which frames came before it).

Each detected box is enlarged by `margin` on every side (the detector's box runs from the brows to
the chin; hair, ears and forehead identify people too) and replaced by a strong Gaussian blur of
itself, whose sigma is a quarter of the box's longer side (computed on the region shrunk to 8 px,
`_blurred`): no facial detail survives, and the rest of the frame is left exactly as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError

__all__ = ["DEFAULT_MARGIN", "DEFAULT_MIN_CONFIDENCE", "FaceBlurrer", "FaceBox", "import_face_detection"]

#: Fraction of the detector's box width/height added on each side before blurring.
DEFAULT_MARGIN = 0.25
#: MediaPipe's own default; found faces on the test photos from 64×48 up (docs/privacy.md).
DEFAULT_MIN_CONFIDENCE = 0.5
#: Blur sigma as a fraction of the enlarged box's longer side.
SIGMA_FRACTION = 0.25
#: The blur runs on the region shrunk to this many pixels along its longer side (sigma 2 px
#: there): the same result as a full-size Gaussian of that sigma, at a few hundredths of the cost.
SMALL_SIDE = 8
MISSING = "--blur-faces needs mediapipe (the baseline extra): pip install 'vidihand_ros[baseline]'"


@dataclass(frozen=True)
class FaceBox:
    """One face's blurred region in pixels: [x0, x1) × [y0, y1), margin included, inside the image."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float


def import_face_detection() -> ModuleType:
    """Import mediapipe, or say in one line how to install it (an InputError: exit status 2)."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # see estimators.mediapipe.detector
    try:
        import mediapipe
    except ImportError as err:
        raise InputError(MISSING) from err
    return mediapipe


class FaceBlurrer:
    """Finds faces in RGB frames and blurs them; create once per run (loads the model), then `close()`.

    Not thread-safe: one caller at a time (the dataset writer's image step).
    """

    def __init__(
        self, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE, margin: float = DEFAULT_MARGIN
    ) -> None:
        if not 0.0 < min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in (0, 1], got {min_confidence}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        mp = import_face_detection()
        self.min_confidence = min_confidence
        self.margin = margin
        #: What the episode records name as the detector.
        self.detector = f"mediapipe face_detection full range {mp.__version__}"
        self._faces: Any = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence
        )

    def boxes(self, rgb: NDArray[np.uint8]) -> list[FaceBox]:
        """The regions `blur` replaces in an (H, W, 3) uint8 RGB frame (enlarged, clipped)."""
        if self._faces is None:
            raise RuntimeError("the face blurrer is closed")
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        height, width = image.shape[:2]
        result = self._faces.process(image)
        found = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            w, h = box.width * width, box.height * height
            x0 = max(0, int(np.floor(box.xmin * width - self.margin * w)))
            y0 = max(0, int(np.floor(box.ymin * height - self.margin * h)))
            x1 = min(width, int(np.ceil((box.xmin + box.width) * width + self.margin * w)))
            y1 = min(height, int(np.ceil((box.ymin + box.height) * height + self.margin * h)))
            if x1 > x0 and y1 > y0:
                found.append(FaceBox(x0, y0, x1, y1, float(detection.score[0])))
        return found

    def blur(self, rgb: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], int]:
        """(the frame with every face blurred, faces blurred); the input is never modified, and
        comes back itself when no face was found."""
        found = self.boxes(rgb)
        if not found:
            return rgb, 0
        import cv2

        out = np.array(rgb, dtype=np.uint8, copy=True)
        for box in found:
            out[box.y0 : box.y1, box.x0 : box.x1] = _blurred(out[box.y0 : box.y1, box.x0 : box.x1], cv2)
        return out, len(found)

    def close(self) -> None:
        if self._faces is not None:
            self._faces.close()
            self._faces = None

    def __enter__(self) -> FaceBlurrer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _blurred(region: NDArray[np.uint8], cv2: Any) -> NDArray[np.uint8]:
    """`region` under a Gaussian blur of sigma SIGMA_FRACTION × its longer side, computed small:
    shrink (area average), blur, stretch back (bilinear). A 180 px face costs ~0.1 ms, not ~200."""
    height, width = region.shape[:2]
    scale = SMALL_SIDE / max(height, width)
    if scale >= 1.0:  # already tiny: blur it as it is
        sigma = max(1.0, SIGMA_FRACTION * max(height, width))
        return np.asarray(cv2.GaussianBlur(region, (0, 0), sigma, borderType=cv2.BORDER_REFLECT))
    small = cv2.resize(
        region, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    sigma = SIGMA_FRACTION * SMALL_SIDE
    small = cv2.GaussianBlur(small, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
