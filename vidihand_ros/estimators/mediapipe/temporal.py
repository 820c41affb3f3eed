"""Steady metric 3D from per-frame MediaPipe hands: one hand size, zero-lag smoothing, consistent 2D.

MediaPipe's per-frame "world" landmarks guess the hand's metric size anew in every frame (on real
footage their bone-length sum wanders by a factor of two within seconds), and the translation
solve turns every such guess into a depth jump: depth is proportional to the size. Three steps
make the depth as steady as the hand:

1. **One size per hand.** Each side's landmarks are rescaled to that side's running median size
   (`HandScale`), so only the hand's shape comes from the frame.
2. **Zero-lag smoothing over the window.** Keypoints, shape and log-depth are smoothed by a
   local-linear Gaussian-kernel regression in time (`local_linear`) within each run of frames in
   which the hand was tracked: a ramp passes through unchanged (no lag), noise is averaged over a
   few frames each side. Depth gets a running median first (`running_median`): single-frame
   outliers of 10–30 cm are common and would otherwise leak into the neighbours.
3. **3D on the 2D rays.** Each joint is placed on the ray through its (smoothed) keypoint at the
   depth of the smoothed 3D hand (`backproject`), so the stored 3D joints project exactly onto the
   stored 2D keypoints, smoothed or not.

Measured on real footage, with and without smoothing: `benchmarks/baseline.py`; design notes:
docs/mediapipe.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import median_filter

from vidihand_ros.geometry.distortion import undistort_points
from vidihand_ros.geometry.translation import solve_translation
from vidihand_ros.types import CameraModel

__all__ = [
    "HAND_BONES",
    "HAND_SIZE_PRIOR_M",
    "HandScale",
    "backproject",
    "hand_size",
    "local_linear",
    "running_median",
    "steady_joints",
    "tracked_runs",
]

F64 = NDArray[np.float64]

#: The 20 bones of the 21-joint hand (parent, child): the wrist to each finger base, then each finger.
HAND_BONES: tuple[tuple[int, int], ...] = tuple(
    pair
    for base in (1, 5, 9, 13, 17)
    for pair in ((0, base), (base, base + 1), (base + 1, base + 2), (base + 2, base + 3))
)
#: Sum of the 20 bone lengths of an adult hand in metres: MediaPipe's own median on real footage
#: (`../shared/data/video`), used as a weak prior until a hand has been seen a few times.
HAND_SIZE_PRIOR_M = 0.75
#: Weight of that prior, in observations.
_PRIOR_OBSERVATIONS = 3
#: Observations the running median keeps (10 s at 30 fps).
_SIZE_MEMORY = 300
#: Kernel widths (standard deviations, seconds) of the smoothing: 1.5, 2.5 and 4 frames at 30 fps.
#: Keypoints are precise (1–3 px), so they get the least; depth, the noisiest, the most. Chosen
#: on real footage and checked for lag on synthetic reaches (tests/test_temporal.py).
SIGMA_KEYPOINTS_S = 0.05
SIGMA_SHAPE_S = 0.083
SIGMA_DEPTH_S = 0.133
#: Running-median length (frames) applied to depth before smoothing: removes 1–2-frame outliers.
DEPTH_MEDIAN_FRAMES = 5
#: The kernel reaches this many standard deviations each side.
_KERNEL_REACH = 3.0


def hand_size(joints: F64) -> F64:
    """Sum of the 20 bone lengths of (..., 21, 3) joints: a scale that ignores pose and view."""
    parents, children = np.array(HAND_BONES).T
    return np.linalg.norm(joints[..., children, :] - joints[..., parents, :], axis=-1).sum(axis=-1)


class HandScale:
    """A hand's metric size: the running median of its per-frame sizes, with a weak prior."""

    def __init__(self) -> None:
        self._sizes: deque[float] = deque(maxlen=_SIZE_MEMORY)

    def reset(self) -> None:
        self._sizes.clear()

    def rescale(self, world: F64) -> F64:
        """`world` (21, 3) scaled about its origin to the hand's size, after adding its own size."""
        size = float(hand_size(world))
        if not np.isfinite(size) or size <= 0:
            return world
        self._sizes.append(size)
        prior = [HAND_SIZE_PRIOR_M] * max(0, _PRIOR_OBSERVATIONS - len(self._sizes) + 1)
        return world * (float(np.median([*self._sizes, *prior])) / size)


def tracked_runs(observed: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Run label per frame (consecutive observed frames share one), -1 where not observed."""
    observed = np.asarray(observed, dtype=bool)
    starts = np.r_[True, observed[1:] != observed[:-1]] if observed.size else np.zeros(0, bool)
    return np.where(observed, np.cumsum(starts), -1)


def local_linear(values: F64, times_s: F64, observed: NDArray[np.bool_], sigma_s: float) -> F64:
    """Local-linear Gaussian-kernel regression of (T, ...) values over time, within tracked runs.

    The estimate at each frame is the value at that time of the straight line fitted to the
    frames around it (weights exp(-dt²/2σ²), within ±3σ, same run only): a constant or a ramp is
    returned unchanged, so motion is not delayed, while noise is averaged. Where the frames around
    are one-sided (a run's first and last frames) a line is an extrapolation, and a wild one where
    a hand comes out of an occlusion, so there the estimate moves towards the weighted mean, in
    proportion to the imbalance of the kernel's weight before and after. Frames not observed come
    back NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0 or sigma_s <= 0:
        return np.where(_frames(observed, values.ndim), values, np.nan)
    runs = tracked_runs(observed)
    dt = times_s[None, :] - times_s[:, None]  # [i, j]: t_j - t_i
    same_run = (runs[:, None] == runs[None, :]) & (runs[:, None] >= 0)
    weights = np.where(
        same_run & (np.abs(dt) <= _KERNEL_REACH * sigma_s), np.exp(-0.5 * (dt / sigma_s) ** 2), 0.0
    )
    flat = np.where(_frames(observed, values.ndim), values, 0.0).reshape(n, -1)
    s0, s1, s2 = weights.sum(1), (weights * dt).sum(1), (weights * dt * dt).sum(1)
    m0, m1 = weights @ flat, (weights * dt) @ flat
    det = s0 * s2 - s1 * s1
    sloped = det > 1e-9 * np.maximum(s0 * s2, 1e-300)  # a lone frame has no slope to fit
    line = (s2[:, None] * m0 - s1[:, None] * m1) / np.where(sloped, det, 1.0)[:, None]
    mean = m0 / np.where(s0 > 0, s0, 1.0)[:, None]
    before, after = np.where(dt < 0, weights, 0.0).sum(1), np.where(dt > 0, weights, 0.0).sum(1)
    balance = np.minimum(before, after) / np.maximum(np.maximum(before, after), 1e-300)
    trust = np.where(sloped, balance, 0.0)[:, None]
    out = (trust * np.where(sloped[:, None], line, 0.0) + (1.0 - trust) * mean).reshape(values.shape)
    return np.where(_frames(observed, values.ndim), out, np.nan)


def running_median(values: F64, observed: NDArray[np.bool_], size: int) -> F64:
    """Median over `size` neighbouring frames of (T, ...) values, within tracked runs (edges held).

    A median keeps steps and ramps where they are and removes outliers shorter than half the size.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    runs = tracked_runs(observed)
    for run in np.unique(runs[runs >= 0]):
        rows = np.flatnonzero(runs == run)
        if len(rows) >= 3:
            window = min(size, len(rows) if len(rows) % 2 else len(rows) - 1)
            footprint = (window,) + (1,) * (out.ndim - 1)
            out[rows] = median_filter(out[rows], size=footprint, mode="nearest")
    return out


def backproject(keypoints: F64, depth: F64, K: F64) -> F64:
    """Camera-frame points on the rays through undistorted (..., J, 2) pixels at (..., J) depths."""
    K = np.asarray(K, dtype=np.float64)
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    skew, cx, cy = K[..., 0, 1, None], K[..., 0, 2, None], K[..., 1, 2, None]
    y = (keypoints[..., 1] - cy) / fy
    x = (keypoints[..., 0] - cx - skew * y) / fx
    return np.stack([x * depth, y * depth, depth], axis=-1)


def _frames(observed: NDArray[np.bool_], ndim: int) -> NDArray[np.bool_]:
    """`observed` shaped to broadcast over (T, ...) values."""
    return np.asarray(observed, dtype=bool).reshape((-1,) + (1,) * (ndim - 1))


def steady_joints(
    keypoints: F64,
    world: F64,
    observed: NDArray[np.bool_],
    times_s: F64,
    cameras: Sequence[CameraModel | None],
    *,
    smooth: bool,
) -> tuple[F64, F64]:
    """(keypoints, joints) of one hand over T frames: smoothed (or not), joints on the rays.

    Args:
        keypoints: (T, 21, 2) pixels as detected (distorted), NaN where not observed.
        world: (T, 21, 3) hand-centred landmarks already rescaled to the hand's size.
        observed: (T,) frames where the hand was tracked.
        times_s: (T,) increasing frame times.
        cameras: per frame; None gives keypoints but NaN joints (no intrinsics).
    """
    if smooth:
        keypoints = local_linear(keypoints, times_s, observed, SIGMA_KEYPOINTS_S)
        world = local_linear(world, times_s, observed, SIGMA_SHAPE_S)
    n = len(keypoints)
    undistorted = np.full_like(keypoints, np.nan)
    depth = np.full(n, np.nan)
    Ks = np.full((n, 3, 3), np.nan)
    for i in np.flatnonzero(observed):
        camera = cameras[i]
        if camera is None:
            continue
        undistorted[i] = undistort_points(keypoints[i], camera)
        Ks[i] = camera.K
        depth[i] = float(solve_translation(world[i], undistorted[i], camera.K)[2])
    solved = observed & np.isfinite(depth) & (depth > 0)
    log_depth = np.log(np.where(solved, depth, 1.0))
    if smooth:
        log_depth = running_median(log_depth, solved, DEPTH_MEDIAN_FRAMES)
        log_depth = local_linear(log_depth, times_s, solved, SIGMA_DEPTH_S)
    joints = backproject(undistorted, world[..., 2] + np.exp(log_depth)[:, None], Ks)
    joints[~solved] = np.nan
    return keypoints, joints
