"""Wrist orientation from the palm's joints, for estimators that give joints but no MANO rotation.

The palm (wrist and the finger bases) is the most rigid part of the hand, so its frame is a stable
wrist orientation even when the fingers move. The frame, in the camera frame and the same for
both sides:

- x: wrist → middle-finger base (joint 9), along the fingers;
- z: the palm normal pointing out of the back of the hand, made orthogonal to x;
- y = z × x (a right-handed frame).

The back-of-hand normal is (wrist→pinky base) × (wrist→index base) for a right hand (a right palm
shown to a camera, fingers up, has its index base on the image's right, and the product then
points away from the camera, out of the back of the hand); a left hand is a mirror image, so
there the product is taken the other way round.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from vidihand_ros.types import HAND_SIDES

__all__ = ["INDEX_BASE", "MIDDLE_BASE", "PINKY_BASE", "WRIST", "palm_frame", "palm_orientation"]

WRIST, INDEX_BASE, MIDDLE_BASE, PINKY_BASE = 0, 5, 9, 17
# Below this length (metres) a palm vector is degenerate and the orientation undefined.
_MIN_LENGTH = 1e-6


def palm_frame(joints_3d: ArrayLike, side: str) -> NDArray[np.float64]:
    """Rotation matrices (..., 3, 3) whose columns are the palm's x, y, z axes in the joints' frame.

    `joints_3d` is (..., 21, 3). Frames whose palm joints are not finite or degenerate are NaN.
    """
    if side not in HAND_SIDES:
        raise ValueError(f"side must be one of {HAND_SIDES}, got {side!r}")
    j = np.asarray(joints_3d, dtype=np.float64)
    forward = j[..., MIDDLE_BASE, :] - j[..., WRIST, :]
    index = j[..., INDEX_BASE, :] - j[..., WRIST, :]
    pinky = j[..., PINKY_BASE, :] - j[..., WRIST, :]
    normal = np.cross(pinky, index) if side == "right" else np.cross(index, pinky)
    x = _unit(forward)
    z = _unit(normal - np.sum(normal * x, axis=-1, keepdims=True) * x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


def palm_orientation(joints_3d: ArrayLike, side: str) -> NDArray[np.float64]:
    """Axis-angle (..., 3) of `palm_frame`; NaN where the palm is not finite or degenerate."""
    frames = palm_frame(joints_3d, side)
    flat = frames.reshape(-1, 3, 3)
    ok = np.isfinite(flat).all(axis=(1, 2))
    out = np.full((flat.shape[0], 3), np.nan)
    if ok.any():
        out[ok] = Rotation.from_matrix(flat[ok]).as_rotvec()
    return out.reshape(*frames.shape[:-2], 3)


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > _MIN_LENGTH, v / norm, np.nan)
