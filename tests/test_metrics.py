"""Metrics against values worked out by hand (the arithmetic is in the comments).

Joints are in metres, errors in millimetres. Small joint counts (J = 1..6) keep the arithmetic
checkable; the HOT3D metrics need the full 21 joints.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from vidihand_ros import metrics as m

NAN = float("nan")


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


# Points on the axes at distinct distances 3, 2, 1 cm (distinct, so the best rotation is unique).
OCTAHEDRON = np.array(
    [[0.03, 0, 0], [-0.03, 0, 0], [0, 0.02, 0], [0, -0.02, 0], [0, 0, 0.01], [0, 0, -0.01]], dtype=float
)
MIRRORED = OCTAHEDRON * np.array([-1.0, 1.0, 1.0])  # x negated: a reflection, not a rotation
# PA error of MIRRORED against OCTAHEDRON. Cross-covariance sum_i g_i p_i^T = diag(-2a², 2b², 2c²)
# (a, b, c = 3, 2, 1 cm); the best proper rotation flips the smallest singular value: R = diag(-1, 1,
# -1), scale s = (2a² + 2b² - 2c²) / (2a² + 2b² + 2c²) = 24/28 = 6/7, no translation. Errors: x
# points a(1 - s) = 3/7 cm, y points b(1 - s) = 2/7 cm, z points c(1 + s) = 13/7 cm (R sends +c to
# -c). Mean over six points: (3 + 3 + 2 + 2 + 13 + 13) / 7 / 6 = 6/7 cm = 60/7 mm.
MIRROR_PA_MM = 60.0 / 7.0


# --- MPJPE, PA-MPJPE ------------------------------------------------------------------------------


def test_mpjpe_root_aligned_is_exactly_10mm() -> None:
    gt = np.array(
        [
            [[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0]],
            [[0.0, 0.1, 0.4], [0.0, 0.2, 0.4], [0.0, 0.3, 0.4]],
        ]
    )
    pred = gt.copy()
    pred[0] += [0.5, 0.5, 0.5]  # a global shift disappears with root alignment
    pred[0, 1] += [0.0, 0.010, 0.0]  # 10 mm
    pred[0, 2] += [0.0, 0.0, 0.020]  # 20 mm
    pred[1] += [1.0, 2.0, 3.0]
    pred[1, 1] += [0.006, 0.008, 0.0]  # |(6, 8, 0)| = 10 mm
    pred[1, 2] += [0.012, 0.016, 0.0]  # 20 mm
    # each frame: (0 + 10 + 20) / 3 = 10 mm
    assert_allclose(m.mpjpe_per_frame(pred, gt), [10.0, 10.0], atol=1e-9)
    assert m.mpjpe(pred, gt) == pytest.approx(10.0, abs=1e-9)


def test_mpjpe_skips_masked_and_nan_frames() -> None:
    gt = np.zeros((4, 2, 3))
    pred = np.zeros((4, 2, 3))
    pred[:, 1, 0] = [0.002, 0.004, 0.100, 0.006]  # root-aligned frame errors 1, 2, 50, 3 mm
    pred[3, 0, 0] = NAN  # frame 3 unscorable
    mask = np.array([True, True, False, True])  # frame 2 not selected
    assert_allclose(m.mpjpe_per_frame(pred, gt, mask), [1.0, 2.0, NAN, NAN], atol=1e-12)
    assert m.mpjpe(pred, gt, mask) == pytest.approx(1.5)  # (1 + 2) / 2
    assert np.isnan(m.mpjpe(pred, gt, np.zeros(4, dtype=bool)))


def test_pa_mpjpe_zero_for_similar_copy() -> None:
    rng = np.random.default_rng(0)
    gt = rng.normal(scale=0.05, size=(3, 21, 3))
    pred = 1.3 * gt @ rot_z(30).T + np.array([0.2, -0.1, 0.6])  # scaled, rotated, translated
    assert_allclose(m.pa_mpjpe_per_frame(pred, gt), 0.0, atol=1e-9)
    assert m.mpjpe(pred, gt) > 1.0  # root alignment alone does not undo rotation and scale


def test_pa_mpjpe_does_not_reflect() -> None:
    assert m.pa_mpjpe(MIRRORED[None], OCTAHEDRON[None]) == pytest.approx(MIRROR_PA_MM, rel=1e-12)
    # vectorised over frames: a rotated copy (0) and the mirror (60/7) in one call
    pred = np.stack([OCTAHEDRON @ rot_z(50).T * 0.5, MIRRORED])
    gt = np.stack([OCTAHEDRON, OCTAHEDRON])
    assert_allclose(m.pa_mpjpe_per_frame(pred, gt), [0.0, MIRROR_PA_MM], atol=1e-9)
    aligned = m.procrustes_align(MIRRORED, OCTAHEDRON)
    assert_allclose(aligned[4], [0, 0, -0.01 * 6 / 7], atol=1e-12)  # +c sent to -s·c


# --- the "-p" protocol ----------------------------------------------------------------------------


def test_mpjpe_p_scores_missed_frame_with_placeholder() -> None:
    root = np.array([0.3, 0.2, 0.5])
    shape = np.array([[0, 0, 0], [0.03, 0, 0], [0, 0.04, 0]])
    gt = np.stack([shape + root] * 4)
    pred = gt.copy()
    pred[1, 1] += [0.0, 0.0, 0.010]  # frame 1: errors 0, 10, 20 mm → 10
    pred[1, 2] += [0.0, 0.0, 0.020]
    pred[2] = 99.0  # frame 2: garbage, but not detected → placeholder
    gt_present = np.array([True, True, True, False])
    detected = np.array([True, True, False, True])  # frame 3: a false positive, not in "-p"
    template = np.array([[0, 0, 0], [0.03, 0, 0], [0.03, 0.04, 0]])
    # frame 2 with the template, root-aligned: joints 0 and 1 exact, joint 2 (0.03, 0.04, 0) vs
    # (0, 0.04, 0) → 30 mm; frame error (0 + 0 + 30) / 3 = 10 mm.
    # MPJPE-p over GT-present frames 0, 1, 2: (0 + 10 + 10) / 3 = 20/3 mm
    assert m.mpjpe_p(pred, gt, gt_present, detected, template) == pytest.approx(20 / 3)
    # plain MPJPE over detected & present frames 0, 1: (0 + 10) / 2 = 5 mm
    assert m.mpjpe(pred, gt, gt_present & detected) == pytest.approx(5.0)
    filled = m.fill_missed(pred, gt_present, detected, template)
    assert_allclose(filled[2], template)
    assert_allclose(filled[[0, 1, 3]], pred[[0, 1, 3]])


def test_fill_missed_treats_nan_prediction_as_missed() -> None:
    pred = np.full((2, 3, 3), NAN)
    pred[0] = 0.0
    filled = m.fill_missed(pred, [True, True], [True, True], np.ones((3, 3)))
    assert_allclose(filled, [np.zeros((3, 3)), np.ones((3, 3))])


def test_pa_mpjpe_p_placeholder_case() -> None:
    gt = np.stack([OCTAHEDRON, OCTAHEDRON])
    pred = np.stack([OCTAHEDRON, np.zeros_like(OCTAHEDRON)])
    # frame 0 exact (0), frame 1 missed → the mirrored template (60/7 mm): (0 + 60/7) / 2 = 30/7
    value = m.pa_mpjpe_p(pred, gt, [True, True], [True, False], template=MIRRORED)
    assert value == pytest.approx(30 / 7, rel=1e-12)


def test_default_placeholder() -> None:
    right, left = m.placeholder("right"), m.placeholder("left")
    assert right.shape == (21, 3) and np.isfinite(right).all()
    assert_allclose(right[0], 0.0)  # the wrist at the camera origin
    assert_allclose(left, right * [1, 1, -1])
    assert right[12, 0] == pytest.approx(0.19)  # middle fingertip 19 cm from the wrist
    # a missed frame whose GT hand has the placeholder's shape (anywhere): root-aligned error 0
    gt = (right + np.array([0.1, 0.2, 0.5]))[None]
    assert m.mpjpe_p(np.full((1, 21, 3), NAN), gt, [True], [False]) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        m.placeholder("middle")


# --- two hands, translation, 2D -------------------------------------------------------------------


def test_mrrpe() -> None:
    gt_left = np.array([[[0.0, 0.0, 0.5]], [[0.0, 0.0, 0.5]]])
    gt_right = np.array([[[0.2, 0.0, 0.5]], [[0.2, 0.0, 0.5]]])  # right − left = (0.2, 0, 0)
    pred_left = np.array([[[0.01, 0.0, 0.5]], [[0.0, 0.0, 0.5]]])
    pred_right = np.array([[[0.21, 0.03, 0.54]], [[0.0, 0.0, 0.0]]])  # frame 0: (0.2, 0.03, 0.04)
    # frame 0: |(0, 0.03, 0.04)| = 50 mm; frame 1 masked out (GT has one hand only, say)
    mask = np.array([True, False])
    assert_allclose(m.mrrpe_per_frame(pred_left, pred_right, gt_left, gt_right, mask), [50.0, NAN])
    assert m.mrrpe(pred_left, pred_right, gt_left, gt_right, mask) == pytest.approx(50.0)


def test_translation_error() -> None:
    gt = np.array([[0.1, 0.2, 0.5], [0.0, 0.0, 0.4]])
    pred = gt + np.array([[0.0, 0.006, 0.008], [0.0, 0.0, -0.030]])  # 10 mm, 30 mm
    assert_allclose(m.translation_error_per_frame(pred, gt), [10.0, 30.0])
    assert m.translation_error(pred, gt) == pytest.approx(20.0)


def test_epe_2d() -> None:
    gt = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    pred = gt + np.array([[[0.0, 0.0], [6.0, 8.0]]])  # joint errors 0 and 10 px → 5 px
    assert m.epe_2d(pred, gt) == pytest.approx(5.0)
    assert np.isnan(m.epe_2d(np.full_like(gt, NAN), gt))


# --- temporal -------------------------------------------------------------------------------------


def test_accel_error_and_jitter_quadratic_trajectory() -> None:
    t = np.arange(5, dtype=float)
    gt = np.zeros((5, 1, 3))
    gt[:, 0, 0] = 0.01 * t  # uniform motion: second difference 0
    pred = gt.copy()
    pred[:, 0, 1] = 0.001 * t**2  # Δ² of t² is 2 → 0.002 m = 2 mm/frame² at every frame
    assert_allclose(m.accel_error_per_frame(pred, gt), [NAN, 2.0, 2.0, 2.0, NAN], atol=1e-9)
    assert m.accel_error(pred, gt) == pytest.approx(2.0)
    assert m.accel_error(pred, gt, fps=30.0) == pytest.approx(2.0 * 900.0)  # × fps²: 1800 mm/s²
    assert m.jitter(pred) == pytest.approx(2.0)  # |(0, 2, 0)| mm/frame²
    assert m.jitter(gt) == pytest.approx(0.0, abs=1e-9)
    assert m.jitter(pred, fps=10.0) == pytest.approx(200.0)
    # frame 3 unscored: only the triple (0, 1, 2) centred at frame 1 remains
    mask = np.array([True, True, True, False, True])
    assert_allclose(m.accel_error_per_frame(pred, gt, mask=mask), [NAN, 2.0, NAN, NAN, NAN], atol=1e-9)


def test_accel_error_of_a_single_jump() -> None:
    gt = np.zeros((3, 2, 3))
    pred = np.zeros((3, 2, 3))
    pred[1, :, 2] = 0.003  # middle frame 3 mm off: Δ² = 0 − 2·3 + 0 = −6 mm on both joints
    assert m.accel_error(pred, gt) == pytest.approx(6.0)
    assert np.isnan(m.accel_error(pred[:2], gt[:2]))  # fewer than 3 frames: nothing to score


# --- presence, PCK, HOT3D ------------------------------------------------------------------------


def test_presence_accuracy() -> None:
    pred = [0.9, 0.4, 0.6, 0.1, NAN]  # ≥ 0.5: T, F, T, F, F (NaN: no estimate)
    gt = [True, True, False, False, False]
    assert m.presence_accuracy(pred, gt) == pytest.approx(3 / 5)  # frames 0, 3, 4 agree
    assert m.presence_accuracy(pred, gt, threshold=0.35) == pytest.approx(4 / 5)  # frame 1 too
    assert m.presence_accuracy(pred, gt, mask=[True, True, False, False, False]) == pytest.approx(0.5)


def test_pck_auc_discrete_convention() -> None:
    # thresholds 0, 0.5, ..., 50 mm; PCK(t) = 1 from 25 mm on. Trapezoids: 24.5–25 gives
    # 0.5 · (0 + 1) / 2 = 0.25, 25–50 gives 25 → (25 + 0.25) / 50 = 0.505
    assert m.pck_auc(np.full(10, 25.0)) == pytest.approx(0.505)
    assert m.pck_auc(np.zeros(7)) == pytest.approx(1.0)  # "correct" is error <= threshold
    assert m.pck_auc([60.0, NAN]) == pytest.approx(0.0)  # NaN ignored
    assert m.pck_auc([0.0, 60.0]) == pytest.approx(0.5)
    assert_allclose(m.pck_curve([1.0, 3.0], [0.0, 2.0, 4.0]), [0.0, 0.5, 1.0])
    assert np.isnan(m.pck_auc([NAN]))


def test_hot3d_joints_match_toolkit() -> None:
    # HOT3D's 19 evaluated landmarks: 5 fingertips + thumb MCP, IP + 3 per other finger; no wrist,
    # no thumb CMC (not a HOT3D landmark)
    joints = m.HOT3D_JOINTS
    assert len(joints) == 19
    assert joints == (2, 3, 4, *range(5, 21))


def test_hot3d_mpjpe_and_pck_ignore_wrist_and_thumb_cmc() -> None:
    gt = np.tile(m.placeholder("right") + np.array([0.0, 0.0, 0.5]), (2, 1, 1))
    pred = gt + np.array([0.00315, 0.0042, 0.0])  # |(3.15, 4.2, 0)| = 5.25 mm everywhere, no alignment
    pred[:, :2] += 1.0  # wrist and thumb CMC far off: not scored
    assert_allclose(m.hot3d_mpjpe_per_frame(pred, gt), [5.25, 5.25])
    # errors all 5.25 mm, between the 5.0 and 5.5 mm samples: PCK 0 up to 5.0, 1 from 5.5; the
    # 5.0–5.5 trapezoid is 0.5 · (0 + 1) / 2 = 0.25, 5.5–50 is 44.5 → 44.75 / 50 = 0.895.
    # (Errors exactly on a sample are at the mercy of rounding; the toolkit has the same edge.)
    assert m.hot3d_pck_auc(pred, gt) == pytest.approx(0.895)
    pred25 = gt + np.array([0.0, 0.025, 0.0])
    assert m.hot3d_pck_auc(pred25, gt) == pytest.approx(0.505)
    assert m.hot3d_mpjpe(pred25, gt) == pytest.approx(25.0)


def test_joint_errors_rejects_unknown_alignment_and_shapes() -> None:
    with pytest.raises(ValueError):
        m.joint_errors(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), align="wrist")
    with pytest.raises(ValueError):
        m.mpjpe(np.zeros((1, 2, 3)), np.zeros((1, 3, 3)))
    with pytest.raises(ValueError):
        m.mpjpe(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)), mask=[True])
