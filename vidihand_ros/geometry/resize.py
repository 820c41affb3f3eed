"""Pixel geometry under an image resize: intrinsics and keypoints follow the pixels.

Pixel centres sit at integer coordinates (OpenCV's and the dataset's convention), so a resize by
(sx, sy) maps u to (u + 0.5)·sx − 0.5, not u·sx.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def scale_intrinsics(K: NDArray[np.floating], sx: float, sy: float) -> NDArray[np.float64]:
    """K for an image resized by (sx, sy), with pixel centres at integer coordinates."""
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return np.asarray(S @ np.asarray(K, dtype=np.float64), dtype=np.float64)


def scale_pixels(uv: NDArray[np.floating], sx: float, sy: float) -> NDArray[np.floating]:
    """Pixel coordinates under the same resize as `scale_intrinsics`."""
    return (uv + 0.5) * np.array([sx, sy], dtype=uv.dtype) - 0.5
