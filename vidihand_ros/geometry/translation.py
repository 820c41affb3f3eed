"""Closed-form camera-frame translation of a hand from its 3D joints and 2D keypoints.

Both estimators (MediaPipe baseline and the ViDiHand decoder) predict hand joints up to a
translation and 2D keypoints in the image; the metric translation t that makes the pinhole
projection of `joints + t` land on the keypoints is linear in t once the reprojection is written
in algebraic form. Per joint j with normalised coordinates x = (u - cx)/fx, y = (v - cy)/fy:

    [1, 0, -x] · t = x·Z - X        [0, 1, -y] · t = y·Z - Y

Weighted least squares over the joints gives 3x3 normal equations whose first two rows eliminate
t_x and t_y (Schur complement), leaving a scalar equation for t_z in terms of the weighted spread
of the keypoints about their weighted mean:

    t_z = -Σ w((x - x̄)·b_x + (y - ȳ)·b_y) / Σ w((x - x̄)² + (y - ȳ)²)
    t_x = mean_w(b_x) + x̄·t_z,    t_y = mean_w(b_y) + ȳ·t_z

with b_x = x·Z - X, b_y = y·Z - Y. Centring keeps the denominator free of cancellation, so no
ridge term is needed; the system is singular only when all weighted keypoints coincide (one
joint, or every joint on one ray), and those cases return NaN.

One implementation serves numpy (the baseline) and torch (the differentiable decoder): the array
namespace comes from `array_api_compat`, and NaN inputs are replaced *before* any arithmetic so that
gradients stay finite through the masked joints.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

__all__ = ["MIN_JOINTS", "solve_translation"]

#: Fewest joints with positive weight that determine t (2 joints give 4 equations for 3 unknowns).
MIN_JOINTS = 2

# Relative threshold on the weighted keypoint spread (normalised coordinates squared, per unit weight)
# below which the solve is declared degenerate. One pixel at f=1000 is 1e-6 in x², so this only
# catches keypoints that coincide to numerical precision.
_DEGENERATE_SPREAD = 1e-14


def solve_translation(joints_3d: Any, keypoints_2d: Any, K: Any, weights: Any = None) -> Any:
    """Camera-frame translation t (..., 3) such that project(joints_3d + t, K) ≈ keypoints_2d.

    Args:
        joints_3d: (..., J, 3) joints in metres, in any frame that differs from the camera frame by
            a translation only (root-relative, hand-centred, ...).
        keypoints_2d: (..., J, 2) pixel coordinates, already undistorted.
        K: (..., 3, 3) pinhole intrinsics (skew honoured).
        weights: (..., J) non-negative confidences, or None for all ones. Joints with a NaN keypoint
            or joint, or a weight that is not a positive finite number, get weight 0.

    Leading dimensions broadcast. Returns NaN where fewer than `MIN_JOINTS` joints have weight or
    the keypoints are degenerate. The result is an array of the inputs' namespace: numpy in, numpy
    out; torch in, torch out (differentiable; numpy arguments are moved to the tensors' device).
    """
    xp, (P, uv, K, w) = _common_namespace(joints_3d, keypoints_2d, K, weights)
    if P.shape[-1] != 3 or uv.shape[-1] != 2 or P.shape[-2] != uv.shape[-2]:
        raise ValueError(
            f"expected joints_3d (..., J, 3) and keypoints_2d (..., J, 2), got {P.shape} and {uv.shape}"
        )
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"expected K (..., 3, 3), got {K.shape}")

    fx, fy = K[..., 0, 0:1], K[..., 1, 1:2]
    s, cx, cy = K[..., 0, 1:2], K[..., 0, 2:3], K[..., 1, 2:3]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - s * y) / fx
    X, Y, Z = P[..., 0], P[..., 1], P[..., 2]

    ok = xp.isfinite(x) & xp.isfinite(y) & xp.isfinite(X) & xp.isfinite(Y) & xp.isfinite(Z)
    if w is None:
        w = xp.ones_like(x)
    ok = ok & xp.isfinite(w) & (w > 0)
    zero = xp.zeros_like(x)
    # Sanitise first: a NaN that only gets masked afterwards would still poison the gradients.
    x, y = xp.where(ok, x, zero), xp.where(ok, y, zero)
    X, Y, Z = xp.where(ok, X, zero), xp.where(ok, Y, zero), xp.where(ok, Z, zero)
    w = xp.where(ok, w, zero)

    count = xp.sum(xp.astype(ok, x.dtype), axis=-1)
    wsum = xp.sum(w, axis=-1)
    wsum_safe = xp.where(wsum > 0, wsum, xp.ones_like(wsum))
    x_mean = xp.sum(w * x, axis=-1) / wsum_safe
    y_mean = xp.sum(w * y, axis=-1) / wsum_safe
    dx, dy = x - x_mean[..., None], y - y_mean[..., None]
    bx, by = x * Z - X, y * Z - Y

    spread = xp.sum(w * (dx * dx + dy * dy), axis=-1)
    solvable = (count >= MIN_JOINTS) & (spread > _DEGENERATE_SPREAD * wsum)
    spread_safe = xp.where(solvable, spread, xp.ones_like(spread))
    tz = -xp.sum(w * (dx * bx + dy * by), axis=-1) / spread_safe
    tx = xp.sum(w * bx, axis=-1) / wsum_safe + x_mean * tz
    ty = xp.sum(w * by, axis=-1) / wsum_safe + y_mean * tz
    t = xp.stack([tx, ty, tz], axis=-1)
    return xp.where(solvable[..., None], t, xp.full_like(t, float("nan")))


def _common_namespace(*arrays: Any) -> tuple[Any, list[Any]]:
    """Namespace of the non-numpy arrays if any (torch wins over numpy), else numpy; convert the rest.

    Mixing is allowed because K usually comes from a numpy `CameraModel` while the joints may be
    tensors. The working dtype is the promoted floating dtype of the native arrays, at least float32.
    """
    given = [a for a in arrays if a is not None]
    native = [a for a in given if array_api_compat.is_array_api_obj(a) and not _is_numpy(a)]
    if native:
        xp = array_api_compat.array_namespace(*native)
        device = array_api_compat.device(native[0])
    else:
        xp = array_api_compat.array_namespace(np.empty(0))
        device = None
        native = [np.asarray(a) for a in given]

    float_dtypes = [a.dtype for a in native if xp.isdtype(a.dtype, "real floating")]
    dtype = xp.result_type(*float_dtypes) if float_dtypes else xp.float64
    if xp.finfo(dtype).bits < 32:
        dtype = xp.float32

    out: list[Any] = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        if not array_api_compat.is_array_api_obj(a) or xp is not array_api_compat.array_namespace(a):
            a = xp.asarray(np.asarray(a), device=device)
        out.append(xp.astype(a, dtype) if a.dtype != dtype else a)
    return xp, out


def _is_numpy(a: Any) -> bool:
    return bool(array_api_compat.is_numpy_array(a))
