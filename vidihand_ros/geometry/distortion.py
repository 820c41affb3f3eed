"""Lens undistortion of 2D keypoints, for the camera models `sensor_msgs/CameraInfo` names.

Egocentric cameras are wide-angle: near the image border a plumb-bob or fisheye lens moves a
keypoint by tens of pixels, which the pinhole translation solve would read as a wrong depth.
Keypoints are therefore mapped to where an ideal pinhole camera with the same K would see them
before any geometry is done on them.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.types import CameraModel

__all__ = ["SUPPORTED_DISTORTION_MODELS", "undistort_points"]

_IDENTITY = ("", "none")
_RADTAN = ("plumb_bob", "rational_polynomial")
_FISHEYE = ("equidistant",)
SUPPORTED_DISTORTION_MODELS = (*_IDENTITY, *_RADTAN, *_FISHEYE)

# OpenCV's default for the iterative inverse is 5 iterations (radtan), too few for strong
# wide-angle distortion near the border; these converge to well below 1e-3 px.
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
# Coefficient counts OpenCV accepts for the radial-tangential family.
_RADTAN_LENGTHS = (4, 5, 8, 12, 14)


def undistort_points(uv: ArrayLike, camera: CameraModel) -> NDArray[np.float64]:
    """Pixel coordinates (..., 2) as an ideal pinhole camera with the same K would see them.

    Models: "" / "none" → unchanged; "plumb_bob", "rational_polynomial" → OpenCV radial-tangential;
    "equidistant" (the ROS name for the Kannala-Brandt fisheye model) → `cv2.fisheye`. A model with
    no or all-zero coefficients is the identity. NaN points stay NaN.
    """
    points = np.array(uv, dtype=np.float64)  # always a copy: callers keep their input
    if points.ndim == 0 or points.shape[-1] != 2:
        raise ValueError(f"expected points of shape (..., 2), got {points.shape}")
    model = camera.distortion_model.strip().lower()
    if model not in SUPPORTED_DISTORTION_MODELS:
        raise InputError(
            f"unsupported distortion model {camera.distortion_model!r}; "
            f"supported: {', '.join(repr(m) for m in SUPPORTED_DISTORTION_MODELS)}",
            field="distortion_model",
        )
    D = camera.D
    if model in _IDENTITY or D.size == 0 or not np.any(D):
        return points
    if not np.all(np.isfinite(D)):
        raise InputError(f"distortion coefficients are not finite: {D.tolist()}", field="D")
    if model in _FISHEYE and D.size != 4:
        raise InputError(f"'equidistant' needs 4 coefficients, got {D.size}", field="D")
    if model in _RADTAN and D.size not in _RADTAN_LENGTHS:
        raise InputError(
            f"{model!r} needs {', '.join(map(str, _RADTAN_LENGTHS))} coefficients, got {D.size}",
            field="D",
        )

    flat = points.reshape(-1, 2)
    finite = np.all(np.isfinite(flat), axis=1)
    if np.any(finite):
        src = np.ascontiguousarray(flat[finite]).reshape(-1, 1, 2)
        if model in _FISHEYE:
            out = _fisheye_undistort(src, camera.K, D)
        else:
            out = _radtan_undistort(src, camera.K, D)
        flat[finite] = out.reshape(-1, 2)
    return points


def _radtan_undistort(src: NDArray[np.float64], K: NDArray[np.float64], D: NDArray[np.float64]) -> NDArray:
    # OpenCV 4.x exposes the criteria only through undistortPointsIter; 5.x through undistortPoints.
    undistort_iter = getattr(cv2, "undistortPointsIter", None)
    if undistort_iter is not None:
        return np.asarray(undistort_iter(src, K, D, None, K, _CRITERIA))
    undistort: Any = cv2.undistortPoints  # OpenCV 4.x's stubs lack the 5.x `criteria` keyword
    return np.asarray(undistort(src, K, D, R=None, P=K, criteria=_CRITERIA))


def _fisheye_undistort(src: NDArray[np.float64], K: NDArray[np.float64], D: NDArray[np.float64]) -> NDArray:
    try:
        return np.asarray(cv2.fisheye.undistortPoints(src, K, D, R=None, P=K, criteria=_CRITERIA))
    except TypeError:  # OpenCV < 4.6: no criteria argument (fixed 10 iterations)
        return np.asarray(cv2.fisheye.undistortPoints(src, K, D, R=None, P=K))
