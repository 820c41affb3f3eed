"""How trainable a hand track is, without ground truth: smoothness, depth steps, 2D/3D agreement, swaps.

A policy trained on end-effector targets learns whatever noise they carry, so these are measured
on what a dataset stores: per hand, (T, 21, 3) camera-frame joints in metres, (T, 21, 2) keypoints
in pixels and the (T,) `*_hand_valid` mask, at the recording's frame rate. Used by the baseline
benchmark's temporal-quality table and by the tests on real footage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidihand_ros.types import NUM_JOINTS, FramePoses

__all__ = [
    "DEPTH_JUMP_M",
    "TrackQuality",
    "depth_steps",
    "hand_arrays",
    "identity_swaps",
    "reprojection_px",
    "track_quality",
    "unexplained_depth_jumps",
    "wrist_acceleration",
]

F64 = NDArray[np.float64]

#: A single-frame change of the wrist's depth larger than this (metres) is a jump...
DEPTH_JUMP_M = 0.05
#: ...unless the 2D palm size changed by at least this share of what the jump implies.
_EXPLAINED_SHARE = 0.5
_PALM = [0, 5, 9, 13, 17]  # wrist and the four finger bases: the rigid part of the hand


def hand_arrays(poses: list[FramePoses], side: str) -> tuple[F64, F64, NDArray[np.bool_]]:
    """One side of a run of poses as arrays: joints (T, 21, 3), keypoints (T, 21, 2) and usable (T,)."""
    hands = [p.hand(side) for p in poses]
    joints = np.stack([h.joints_3d if h else np.full((NUM_JOINTS, 3), np.nan) for h in hands]).astype(
        np.float64
    )
    keypoints = np.stack([h.keypoints_2d if h else np.full((NUM_JOINTS, 2), np.nan) for h in hands])
    keypoints = keypoints.astype(np.float64)
    usable = np.isfinite(joints).all(axis=(1, 2)) & np.isfinite(keypoints).all(axis=(1, 2))
    return joints, keypoints, usable


def _valid(joints: F64, valid: ArrayLike) -> NDArray[np.bool_]:
    return np.asarray(valid, dtype=bool) & np.isfinite(joints[:, 0]).all(axis=-1)


def wrist_acceleration(joints: ArrayLike, valid: ArrayLike) -> F64:
    """|p[t+1] - 2 p[t] + p[t-1]| of the wrist in mm/frame², where three frames in a row are valid."""
    p = np.asarray(joints, dtype=np.float64)
    ok = _valid(p, valid)
    wrist = p[:, 0]
    both = ok[:-2] & ok[1:-1] & ok[2:]
    second = wrist[2:] - 2 * wrist[1:-1] + wrist[:-2]
    return np.asarray(np.linalg.norm(second[both], axis=-1) * 1000.0)


def depth_steps(joints: ArrayLike, valid: ArrayLike) -> F64:
    """|z[t] - z[t-1]| of the wrist in metres, where two frames in a row are valid."""
    p = np.asarray(joints, dtype=np.float64)
    ok = _valid(p, valid)
    both = ok[:-1] & ok[1:]
    return np.asarray(np.abs(np.diff(p[:, 0, 2]))[both])


def _palm_size_px(keypoints: F64) -> F64:
    palm = keypoints[:, _PALM]
    return np.asarray(np.linalg.norm(palm - palm.mean(axis=1, keepdims=True), axis=-1).mean(axis=-1))


def unexplained_depth_jumps(joints: ArrayLike, keypoints: ArrayLike, valid: ArrayLike) -> int:
    """Frames whose wrist depth jumps by more than `DEPTH_JUMP_M` without the 2D palm size following.

    Moving towards the camera from z to z' scales the palm's image by z / z'; a jump counts as
    explained when the observed size change accounts for at least half of the depth change.
    """
    p = np.asarray(joints, dtype=np.float64)
    uv = np.asarray(keypoints, dtype=np.float64)
    ok = _valid(p, valid)
    z, size = p[:, 0, 2], _palm_size_px(uv)
    both = ok[:-1] & ok[1:]
    step = np.diff(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = z[:-1] * (size[:-1] / size[1:] - 1.0)  # the depth change the size change implies
    big = both & (np.abs(step) > DEPTH_JUMP_M)
    explained = np.abs(step - implied) <= (1.0 - _EXPLAINED_SHARE) * np.abs(step)
    return int(np.sum(big & ~explained))


def reprojection_px(joints: ArrayLike, keypoints: ArrayLike, K: ArrayLike, valid: ArrayLike) -> F64:
    """Per valid frame, the mean pixel distance between the joints projected with K and the keypoints.

    K is (3, 3) or (T, 3, 3). Distortion is not applied: compare with undistorted keypoints, or
    on footage without distortion.
    """
    p = np.asarray(joints, dtype=np.float64)
    uv = np.asarray(keypoints, dtype=np.float64)
    ok = _valid(p, valid) & np.isfinite(uv).all(axis=(1, 2))
    K = np.broadcast_to(np.asarray(K, dtype=np.float64), (len(p), 3, 3))
    projected = np.einsum("tij,tkj->tki", K, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        image = projected[..., :2] / projected[..., 2:]
    return np.asarray(np.linalg.norm(image - uv, axis=-1).mean(axis=-1)[ok])


def identity_swaps(
    left: ArrayLike, right: ArrayLike, left_valid: ArrayLike, right_valid: ArrayLike, near_px: float = 100.0
) -> int:
    """Frames where a hand most likely changed its label, from (T, 2) image positions (e.g. wrists).

    With both hands valid in two frames in a row, a swap is counted when the crossed assignment
    moves them less than half as far as the straight one. A lone hand counts when it is on one
    side at t-1 and on the other at t, within `near_px` of where it was.
    """
    a, b = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    av = np.asarray(left_valid, dtype=bool) & np.isfinite(a).all(axis=-1)
    bv = np.asarray(right_valid, dtype=bool) & np.isfinite(b).all(axis=-1)
    swaps = 0
    for t in range(1, len(a)):
        if av[t] and bv[t] and av[t - 1] and bv[t - 1]:
            straight = np.linalg.norm(a[t] - a[t - 1]) + np.linalg.norm(b[t] - b[t - 1])
            crossed = np.linalg.norm(a[t] - b[t - 1]) + np.linalg.norm(b[t] - a[t - 1])
            swaps += bool(crossed < 0.5 * straight)
        elif av[t - 1] and not bv[t - 1] and bv[t] and not av[t]:
            swaps += bool(np.linalg.norm(b[t] - a[t - 1]) < near_px)
        elif bv[t - 1] and not av[t - 1] and av[t] and not bv[t]:
            swaps += bool(np.linalg.norm(a[t] - b[t - 1]) < near_px)
    return swaps


@dataclass(frozen=True)
class TrackQuality:
    """One hand's temporal quality: medians over the track, counts over all of it."""

    frames: int
    acceleration_mm: float  # median wrist acceleration, mm/frame²
    acceleration_p90_mm: float
    depth_step_mm: float  # median |Δz| of the wrist
    depth_step_max_mm: float
    unexplained_depth_jumps: int
    reprojection_px: float  # mean over frames


def _median(values: F64, q: float = 50.0) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def track_quality(joints: ArrayLike, keypoints: ArrayLike, K: ArrayLike, valid: ArrayLike) -> TrackQuality:
    """All of the above for one hand."""
    p = np.asarray(joints, dtype=np.float64)
    acceleration = wrist_acceleration(p, valid)
    steps = depth_steps(p, valid) * 1000.0
    reprojection = reprojection_px(p, keypoints, K, valid)
    return TrackQuality(
        frames=int(_valid(p, valid).sum()),
        acceleration_mm=_median(acceleration),
        acceleration_p90_mm=_median(acceleration, 90.0),
        depth_step_mm=_median(steps),
        depth_step_max_mm=float(steps.max()) if steps.size else float("nan"),
        unexplained_depth_jumps=unexplained_depth_jumps(p, keypoints, valid),
        reprojection_px=float(reprojection.mean()) if reprojection.size else float("nan"),
    )
