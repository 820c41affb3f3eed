"""Hand-pose metrics of the ViDiHand paper and the HOT3D toolkit, in numpy only (no torch).

Conventions, shared by every function here:
- Joints are (T, J, 3) arrays in metres (J = 21 in the usual order: wrist, then thumb→pinky, each
  base→tip), camera frame; 2D keypoints are (T, J, 2) in pixels. Results are millimetres (pixels
  for 2D), converted with `M_TO_MM`.
- A frame is scored when `mask` (default: all frames) is True there and every value the metric
  reads is finite in both arrays; unscored frames are NaN in the `*_per_frame` arrays and ignored by
  the scalar metrics. A scalar metric with no scored frame is NaN, never 0.
- The `*_per_frame` functions exist so that an evaluation over many episodes can pool frames
  (concatenate, then `nanmean`) instead of averaging episode means.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidihand_ros.types import HAND_SIDES, NUM_JOINTS

F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]

M_TO_MM = 1000.0
#: The joint that root-aligned metrics subtract: the wrist.
ROOT_JOINT = 0
#: The 19 joints the HOT3D toolkit scores, in our 21-joint order. The toolkit maps MANO's joints to
#: its 21 "canonical" landmarks (5 fingertips, wrist, 14 finger frames, palm centre) and evaluates
#: all but the wrist ("MANO's wrist location is very different from UmeTrack's") and the palm centre
#: (not a MANO joint). Its landmarks have no thumb CMC joint, so ours are excluded too: joint 0
#: (wrist) and joint 1 (thumb CMC, MANO's thumb1). Source: facebookresearch/hand_tracking_toolkit,
#: `metrics.LANDMARKS_TO_EVAL` and `mano_hand_model.MANO_TO_CANONICAL_LANDMARK_MAPPING`.
HOT3D_JOINTS: tuple[int, ...] = tuple(range(2, NUM_JOINTS))
#: PCK thresholds of the HOT3D toolkit: 0 to 50 mm in 101 steps of 0.5 mm, "correct" meaning
#: error <= threshold. The AUC is the trapezoid area under PCK(threshold), divided by 50 mm.
PCK_THRESHOLDS_MM: F64 = np.linspace(0.0, 50.0, 101)

#: Placeholder prediction for a missed hand in the "-p" metrics: a flat right hand with its wrist at
#: the camera origin, fingers along +x, thumb towards +z, palm in the y = 0 plane, adult bone
#: lengths (metres). It is MANO-like rather than MANO's own template, which is licensed and not
#: shipped: the "-p" numbers depend on it (through its shape and orientation under root alignment,
#: its position too in absolute metrics), so pass the template a benchmark prescribes when it
#: prescribes one.
PLACEHOLDER_RIGHT: F64 = np.array(
    [
        [0.000, 0.0, 0.000],  # wrist
        [0.025, 0.0, 0.020],  # thumb CMC
        [0.050, 0.0, 0.040],  # thumb MCP
        [0.075, 0.0, 0.050],  # thumb IP
        [0.095, 0.0, 0.058],  # thumb tip
        [0.090, 0.0, 0.025],  # index MCP
        [0.130, 0.0, 0.027],  # index PIP
        [0.153, 0.0, 0.028],  # index DIP
        [0.175, 0.0, 0.028],  # index tip
        [0.095, 0.0, 0.005],  # middle MCP
        [0.140, 0.0, 0.005],  # middle PIP
        [0.166, 0.0, 0.005],  # middle DIP
        [0.190, 0.0, 0.005],  # middle tip
        [0.090, 0.0, -0.015],  # ring MCP
        [0.130, 0.0, -0.016],  # ring PIP
        [0.155, 0.0, -0.017],  # ring DIP
        [0.177, 0.0, -0.018],  # ring tip
        [0.082, 0.0, -0.033],  # pinky MCP
        [0.112, 0.0, -0.036],  # pinky PIP
        [0.130, 0.0, -0.038],  # pinky DIP
        [0.148, 0.0, -0.040],  # pinky tip
    ]
)
#: The left placeholder mirrors the right one through the x-y plane (thumb towards -z).
PLACEHOLDER_LEFT: F64 = PLACEHOLDER_RIGHT * np.array([1.0, 1.0, -1.0])


def placeholder(side: str) -> F64:
    """The default placeholder hand for `side` ("left" or "right"), a (21, 3) copy in metres."""
    if side not in HAND_SIDES:
        raise ValueError(f"hand side must be one of {HAND_SIDES}, got {side!r}")
    return (PLACEHOLDER_LEFT if side == "left" else PLACEHOLDER_RIGHT).copy()


# --- helpers -------------------------------------------------------------------------------------


def _f64(a: ArrayLike) -> F64:
    return np.asarray(a, dtype=np.float64)


def _scored(mask: ArrayLike | None, *arrays: F64) -> Bool:
    """Frames selected by `mask` where every array is finite (all axes but the first)."""
    n = arrays[0].shape[0]
    ok = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).copy()
    if ok.shape != (n,):
        raise ValueError(f"mask has shape {ok.shape}, expected ({n},)")
    for a in arrays:
        if a.shape[0] != n:
            raise ValueError(f"arrays disagree on the number of frames: {a.shape[0]} != {n}")
        ok &= np.isfinite(a.reshape(n, -1)).all(axis=1)
    return ok


def _mean_norm(diff: F64) -> F64:
    """Mean over joints of the Euclidean norm along the last axis: (T, J, D) → (T,)."""
    return np.asarray(np.linalg.norm(diff, axis=-1).mean(axis=-1))


def _per_frame(values: F64, ok: Bool) -> F64:
    out = np.full(ok.shape, np.nan)
    out[ok] = values
    return out


def _nanmean(values: F64) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _check_joints(pred: F64, gt: F64) -> None:
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"expected two (T, J, D) arrays of one shape, got {pred.shape} and {gt.shape}")


# --- alignment -----------------------------------------------------------------------------------


def procrustes_align(pred: ArrayLike, gt: ArrayLike) -> F64:
    """`pred` (..., J, 3) moved onto `gt` by the similarity (scale, rotation, translation) that
    minimises the squared joint distances, per leading index (Umeyama 1991).

    The rotation is proper (det = +1): when the best orthogonal fit is a reflection, the axis of
    the smallest singular value is flipped, so a mirrored hand is not "aligned" into its mirror
    image. All values must be finite. A prediction whose joints coincide gets scale 0 (the aligned
    joints collapse onto the GT centroid).
    """
    p_raw, g_raw = _f64(pred), _f64(gt)
    mu_p = p_raw.mean(axis=-2, keepdims=True)
    mu_g = g_raw.mean(axis=-2, keepdims=True)
    p, g = p_raw - mu_p, g_raw - mu_g
    cov = np.swapaxes(g, -1, -2) @ p  # sum_i g_i p_i^T, (..., 3, 3)
    u, s, vt = np.linalg.svd(cov)
    sign = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    d = np.ones_like(s)
    d[..., -1] = sign
    rot = u @ (d[..., :, None] * vt)
    var_p = (p**2).sum(axis=(-1, -2))
    scale = np.divide((s * d).sum(axis=-1), var_p, out=np.zeros_like(var_p), where=var_p > 1e-24)
    return np.asarray(scale[..., None, None] * (p @ np.swapaxes(rot, -1, -2)) + mu_g)


# --- 3D joint errors -----------------------------------------------------------------------------


def joint_errors(
    pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None, *, align: str = "none"
) -> F64:
    """Per-joint distances in mm, (T, J); rows of unscored frames are NaN.

    `align`: "none" (absolute, camera frame), "root" (both hands translated so that their wrists
    coincide) or "procrustes" (per-frame similarity alignment, `procrustes_align`).
    """
    p, g = _f64(pred), _f64(gt)
    _check_joints(p, g)
    ok = _scored(mask, p, g)
    out = np.full(p.shape[:2], np.nan)
    ps, gs = p[ok], g[ok]
    if align == "root":
        ps = ps - ps[:, ROOT_JOINT : ROOT_JOINT + 1]
        gs = gs - gs[:, ROOT_JOINT : ROOT_JOINT + 1]
    elif align == "procrustes":
        ps = procrustes_align(ps, gs) if len(ps) else ps
    elif align != "none":
        raise ValueError(f"align must be 'none', 'root' or 'procrustes', got {align!r}")
    out[ok] = np.linalg.norm(ps - gs, axis=-1) * M_TO_MM
    return out


def mpjpe_per_frame(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> F64:
    """Root-aligned MPJPE of each frame (mm): wrists made to coincide, then the mean distance over
    all J joints (the wrist's zero included, as in the FreiHAND / HaMeR evaluations)."""
    return np.asarray(joint_errors(pred, gt, mask, align="root").mean(axis=1))


def mpjpe(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Root-aligned mean per-joint position error in mm over the scored frames."""
    return _nanmean(mpjpe_per_frame(pred, gt, mask))


def pa_mpjpe_per_frame(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> F64:
    """Procrustes-aligned MPJPE of each frame (mm): scale, rotation and translation fitted per frame."""
    return np.asarray(joint_errors(pred, gt, mask, align="procrustes").mean(axis=1))


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Procrustes-aligned mean per-joint position error in mm over the scored frames."""
    return _nanmean(pa_mpjpe_per_frame(pred, gt, mask))


def hot3d_mpjpe_per_frame(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> F64:
    """HOT3D-toolkit MPJPE of each frame (mm): absolute (camera frame, no alignment), mean over the
    19 `HOT3D_JOINTS` (no wrist, no thumb CMC). Expects 21-joint arrays."""
    p, g = _f64(pred), _f64(gt)
    _check_joints(p, g)
    joints = list(HOT3D_JOINTS)
    return np.asarray(joint_errors(p[:, joints], g[:, joints], mask).mean(axis=1))


def hot3d_mpjpe(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """HOT3D-toolkit MPJPE (19 landmarks, absolute) in mm over the scored frames."""
    return _nanmean(hot3d_mpjpe_per_frame(pred, gt, mask))


# --- the paper's "-p" protocol --------------------------------------------------------------------


def fill_missed(pred: ArrayLike, gt_present: ArrayLike, pred_detected: ArrayLike, template: ArrayLike) -> F64:
    """`pred` with the placeholder `template` (J, 3) put in every frame where the hand is present
    in GT but the prediction missed it (not detected, or not finite)."""
    p = _f64(pred).copy()
    gt_present = np.asarray(gt_present, dtype=bool)
    detected = np.asarray(pred_detected, dtype=bool) & np.isfinite(p.reshape(len(p), -1)).all(axis=1)
    tmpl = _f64(template)
    if tmpl.shape != p.shape[1:]:
        raise ValueError(f"placeholder has shape {tmpl.shape}, expected {p.shape[1:]}")
    p[gt_present & ~detected] = tmpl
    return p


def mpjpe_p(
    pred: ArrayLike,
    gt: ArrayLike,
    gt_present: ArrayLike,
    pred_detected: ArrayLike,
    template: ArrayLike = PLACEHOLDER_RIGHT,
) -> float:
    """MPJPE-p (mm): root-aligned MPJPE over every frame where GT has the hand, a missed hand being
    scored as the placeholder `template` (so misses raise the error instead of being skipped)."""
    filled = fill_missed(pred, gt_present, pred_detected, template)
    return mpjpe(filled, gt, gt_present)


def pa_mpjpe_p(
    pred: ArrayLike,
    gt: ArrayLike,
    gt_present: ArrayLike,
    pred_detected: ArrayLike,
    template: ArrayLike = PLACEHOLDER_RIGHT,
) -> float:
    """PA-MPJPE-p (mm): as `mpjpe_p` with per-frame Procrustes alignment."""
    filled = fill_missed(pred, gt_present, pred_detected, template)
    return pa_mpjpe(filled, gt, gt_present)


# --- two hands, translation, 2D ------------------------------------------------------------------


def mrrpe_per_frame(
    pred_left: ArrayLike,
    pred_right: ArrayLike,
    gt_left: ArrayLike,
    gt_right: ArrayLike,
    mask: ArrayLike | None = None,
) -> F64:
    """Mean relative-root position error of each frame (mm): the distance between the predicted and
    the GT vector from the left wrist to the right wrist. Inputs are (T, J, 3) joints; pass as
    `mask` the frames where GT has both hands (frames a prediction lacks a hand are not scored)."""
    roots = [_f64(a)[:, ROOT_JOINT] for a in (pred_left, pred_right, gt_left, gt_right)]
    ok = _scored(mask, *roots)
    rel_pred = roots[1][ok] - roots[0][ok]
    rel_gt = roots[3][ok] - roots[2][ok]
    return _per_frame(np.linalg.norm(rel_pred - rel_gt, axis=-1) * M_TO_MM, ok)


def mrrpe(
    pred_left: ArrayLike,
    pred_right: ArrayLike,
    gt_left: ArrayLike,
    gt_right: ArrayLike,
    mask: ArrayLike | None = None,
) -> float:
    """Mean relative-root position error (mm) between the two hands over the scored frames."""
    return _nanmean(mrrpe_per_frame(pred_left, pred_right, gt_left, gt_right, mask))


def translation_error_per_frame(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> F64:
    """Camera-translation error (CT) of each frame (mm): distance between predicted and GT absolute
    root positions in the camera frame, (T, 3) each. The evaluation passes the wrist joint rather
    than MANO `transl`, because `transl` is an offset from the shape-dependent rest-pose wrist: two
    equally correct fits with different β (or MANO layers) have different `transl`."""
    p, g = _f64(pred), _f64(gt)
    ok = _scored(mask, p, g)
    return _per_frame(np.linalg.norm(p[ok] - g[ok], axis=-1) * M_TO_MM, ok)


def translation_error(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Camera-translation error CT (mm) over the scored frames."""
    return _nanmean(translation_error_per_frame(pred, gt, mask))


def epe_2d_per_frame(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> F64:
    """2D end-point error of each frame in pixels: mean distance over the (T, J, 2) keypoints."""
    p, g = _f64(pred), _f64(gt)
    _check_joints(p, g)
    ok = _scored(mask, p, g)
    return _per_frame(_mean_norm(p[ok] - g[ok]), ok)


def epe_2d(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """2D end-point error in pixels over the scored frames."""
    return _nanmean(epe_2d_per_frame(pred, gt, mask))


# --- temporal ------------------------------------------------------------------------------------


def _second_difference(x: F64, ok: Bool) -> tuple[F64, Bool]:
    """x[t-1] - 2 x[t] + x[t+1] for t = 1..T-2 and whether frames t-1, t, t+1 are all scored."""
    if len(x) < 3:
        return np.zeros((0, *x.shape[1:])), np.zeros(0, dtype=bool)
    return x[:-2] - 2.0 * x[1:-1] + x[2:], ok[:-2] & ok[1:-1] & ok[2:]


def _temporal(values: F64, ok3: Bool, n: int, fps: float | None) -> F64:
    """Per-frame array (centre frame t of each triple), scaled by fps² when fps is given."""
    out = np.full(n, np.nan)
    if n >= 3:
        out[1:-1] = np.where(ok3, values, np.nan)
    return out * (fps**2 if fps is not None else 1.0)


def accel_error_per_frame(
    pred: ArrayLike, gt: ArrayLike, fps: float | None = None, mask: ArrayLike | None = None
) -> F64:
    """Acceleration error at each frame t (the centre of frames t-1, t, t+1, all scored; NaN at the
    ends): mean over joints of |Δ²pred − Δ²gt|, with Δ²x = x[t-1] − 2x[t] + x[t+1] of the absolute
    camera-frame joints. mm/frame² when `fps` is None; mm/s² (× fps²) otherwise."""
    p, g = _f64(pred), _f64(gt)
    _check_joints(p, g)
    ok = _scored(mask, p, g)
    d2p, ok3 = _second_difference(np.where(ok[:, None, None], p, 0.0), ok)
    d2g, _ = _second_difference(np.where(ok[:, None, None], g, 0.0), ok)
    return _temporal(_mean_norm(d2p - d2g) * M_TO_MM, ok3, len(p), fps)


def accel_error(
    pred: ArrayLike, gt: ArrayLike, fps: float | None = None, mask: ArrayLike | None = None
) -> float:
    """Acceleration error: mm/frame² when `fps` is None, mm/s² (second difference × fps²) otherwise."""
    return _nanmean(accel_error_per_frame(pred, gt, fps, mask))


def jitter_per_frame(pred: ArrayLike, fps: float | None = None, mask: ArrayLike | None = None) -> F64:
    """Jitter at each frame t: mean over joints of |Δ²pred| (no GT needed), where frames t-1, t,
    t+1 are all scored. mm/frame² when `fps` is None; mm/s² (× fps²) otherwise."""
    p = _f64(pred)
    ok = _scored(mask, p)
    d2p, ok3 = _second_difference(np.where(ok[:, None, None], p, 0.0), ok)
    return _temporal(_mean_norm(d2p) * M_TO_MM, ok3, len(p), fps)


def jitter(pred: ArrayLike, fps: float | None = None, mask: ArrayLike | None = None) -> float:
    """Jitter of the prediction: mm/frame² when `fps` is None, mm/s² otherwise."""
    return _nanmean(jitter_per_frame(pred, fps, mask))


# --- presence and PCK ----------------------------------------------------------------------------


def presence_accuracy(
    pred_presence: ArrayLike, gt_present: ArrayLike, threshold: float = 0.5, mask: ArrayLike | None = None
) -> float:
    """FAcc: share of frames where "predicted presence >= threshold" equals GT presence. A NaN
    presence counts as absent (no estimate)."""
    presence = _f64(pred_presence)
    gt = np.asarray(gt_present, dtype=bool)
    sel = np.ones(gt.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if not sel.any():
        return float("nan")
    with np.errstate(invalid="ignore"):
        predicted = presence >= threshold
    return float(np.mean(predicted[sel] == gt[sel]))


def pck_curve(errors_mm: ArrayLike, thresholds: ArrayLike = PCK_THRESHOLDS_MM) -> F64:
    """Share of finite errors <= each threshold (NaN everywhere when there is no finite error)."""
    e = _f64(errors_mm).ravel()
    e = e[np.isfinite(e)]
    t = _f64(thresholds)
    if not e.size:
        return np.full(t.shape, np.nan)
    return np.asarray((e[None, :] <= t[:, None]).mean(axis=1))


def pck_auc(errors_mm: ArrayLike, thresholds: ArrayLike = PCK_THRESHOLDS_MM) -> float:
    """Normalised area under the PCK curve (0..1): trapezoid rule over `thresholds`, divided by
    their span, as the HOT3D toolkit computes it (which then reports it ×100).

    The curve is sampled, not exact: errors all equal to 25 mm give 0.505, not 0.5, because the
    step from 0 to 1 between the 24.5 and 25 mm samples contributes half a 0.5 mm trapezoid.
    """
    t = _f64(thresholds)
    y = pck_curve(errors_mm, t)
    area = float(np.sum(np.diff(t) * (y[1:] + y[:-1]) * 0.5))
    return area / float(t[-1] - t[0])


def hot3d_pck_auc(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """HOT3D-toolkit PCK-AUC over 0–50 mm of the absolute errors of the 19 `HOT3D_JOINTS`."""
    p, g = _f64(pred), _f64(gt)
    _check_joints(p, g)
    joints = list(HOT3D_JOINTS)
    return pck_auc(joint_errors(p[:, joints], g[:, joints], mask))
