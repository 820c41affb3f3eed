"""Decoder losses, each against a hand-computed value; masking of unknown (NaN) ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from vidihand_ros.model.decoder import DecoderOutput
from vidihand_ros.model.rotations import axis_angle_to_matrix, geodesic_angle
from vidihand_ros.training.losses import (
    DecoderTargets,
    LossWeights,
    acceleration_loss,
    anchor_loss,
    betas_loss,
    decoder_loss,
    depth_loss,
    heatmap_loss,
    joint_loss,
    masked_mean,
    presence_loss,
    reprojection_loss,
    rotation_loss,
    velocity_loss,
    visibility_loss,
)
from vidihand_ros.types import FramePoses, HandPose

B, T = 2, 5
NAN = float("nan")


def _rot(axis: tuple[float, float, float], angle: float) -> torch.Tensor:
    a = torch.tensor(axis, dtype=torch.float64)
    return axis_angle_to_matrix(a / a.norm() * angle)


def _targets(**overrides: torch.Tensor) -> DecoderTargets:
    g = torch.Generator().manual_seed(0)
    fields = dict(
        presence=torch.ones(B, T, 2),
        global_orient=torch.randn(B, T, 2, 3, generator=g) * 0.5,
        hand_pose=torch.randn(B, T, 2, 15, 3, generator=g) * 0.2,
        betas=torch.randn(B, T, 2, 10, generator=g),
        joints_3d=torch.randn(B, T, 2, 21, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.5]),
        keypoints_2d=torch.rand(B, T, 2, 21, 2, generator=g) * 100,
    )
    fields.update(overrides)
    return DecoderTargets(**fields)


def _output_like(targets: DecoderTargets, *, noise: float = 0.0, grad: bool = False) -> DecoderOutput:
    """A DecoderOutput whose fields are the targets (+ noise), as leaf tensors."""
    g = torch.Generator().manual_seed(1)

    def leaf(x: torch.Tensor) -> torch.Tensor:
        x = torch.nan_to_num(x.clone()) + noise * torch.randn(x.shape, generator=g)
        return x.requires_grad_(grad)

    go_mat = leaf(axis_angle_to_matrix(torch.nan_to_num(targets.global_orient)))
    pose_mat = leaf(axis_angle_to_matrix(torch.nan_to_num(targets.hand_pose)))
    presence_logit = leaf(torch.full((B, T, 2), 3.0))
    anchor_logit = leaf(torch.full((B, T, 2, 21), 3.0))
    return DecoderOutput(
        presence=torch.sigmoid(presence_logit),
        presence_logit=presence_logit,
        global_orient=torch.nan_to_num(targets.global_orient),
        hand_pose=torch.nan_to_num(targets.hand_pose),
        global_orient_mat=go_mat,
        hand_pose_mat=pose_mat,
        betas=leaf(targets.betas),
        transl=torch.zeros(B, T, 2, 3),
        joints_3d=leaf(targets.joints_3d),
        keypoints_2d=leaf(targets.keypoints_2d),
        anchors_2d=leaf(targets.keypoints_2d),
        anchor_conf=torch.sigmoid(anchor_logit),
        anchor_logit=anchor_logit,
        log_depth=leaf(torch.log(torch.nan_to_num(targets.joints_3d[..., 0, 2], nan=1.0))),
        wls_ok=torch.ones(B, T, 2, dtype=torch.bool),
        image_size=(100, 80),
        heatmap_cell=(10.0, 10.0),
        heatmap_logits=leaf(torch.zeros(B, T, 2, 21, 10, 8)),
    )


# -- geometry of rotations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axis", "a1", "a2"),
    [((0, 0, 1), 0.3, 1.0), ((1, 2, 3), -0.5, 1.2), ((1, 0, 0), 0.0, 3.1), ((0, 1, 1), 0.2, 0.2)],
)
def test_geodesic_of_rotations_about_one_axis_is_their_angle_difference(
    axis: tuple[float, float, float], a1: float, a2: float
) -> None:
    angle = geodesic_angle(_rot(axis, a1), _rot(axis, a2))
    assert float(angle) == pytest.approx(abs(a2 - a1), abs=1e-6)


def test_geodesic_is_symmetric_and_left_invariant() -> None:
    g = torch.Generator().manual_seed(2)
    R1, R2, Q = (axis_angle_to_matrix(torch.randn(8, 3, generator=g, dtype=torch.float64)) for _ in range(3))
    torch.testing.assert_close(geodesic_angle(R1, R2), geodesic_angle(R2, R1))
    torch.testing.assert_close(geodesic_angle(Q @ R1, Q @ R2), geodesic_angle(R1, R2))


def test_geodesic_gradient_is_finite_at_zero_error() -> None:
    R = _rot((1, 1, 0), 0.7).clone().requires_grad_(True)
    geodesic_angle(R, _rot((1, 1, 0), 0.7)).backward()
    assert R.grad is not None and torch.isfinite(R.grad).all()


def test_rotation_loss_is_the_mean_angle_over_known_entries() -> None:
    pred = torch.stack([_rot((1, 0, 0), 0.4), _rot((0, 1, 0), 0.2), _rot((0, 0, 1), 1.0)])
    gt = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [NAN, NAN, NAN]], dtype=torch.float64)
    mask = torch.tensor([True, True, True])
    assert float(rotation_loss(pred, gt, mask)) == pytest.approx(0.3, abs=1e-6)
    assert float(rotation_loss(pred, gt, torch.tensor([True, False, True]))) == pytest.approx(0.4, abs=1e-6)


# -- scalar and point terms --------------------------------------------------------------------------


def test_masked_mean_and_empty_mask() -> None:
    values = torch.tensor([1.0, 2.0, 3.0, NAN], requires_grad=True)
    assert float(masked_mean(values, torch.tensor([True, False, True, False])).detach()) == 2.0
    empty = masked_mean(values, torch.zeros(4, dtype=torch.bool))
    assert float(empty.detach()) == 0.0
    empty.backward()
    assert values.grad is not None and torch.all(values.grad == 0)


def test_presence_bce_ignores_unknown_labels_and_masked_frames() -> None:
    logit = torch.zeros(1, 2, 2)
    presence = torch.tensor([[[1.0, 0.0], [NAN, 1.0]]])
    assert float(presence_loss(logit, presence)) == pytest.approx(math.log(2))
    logit = torch.tensor([[[2.0, 0.0], [5.0, -1.0]]])
    expected = (math.log1p(math.exp(-2.0)) + math.log(2) + math.log1p(math.exp(1.0))) / 3
    assert float(presence_loss(logit, presence)) == pytest.approx(expected, rel=1e-6)
    frame_mask = torch.tensor([[True, False]])
    expected = (math.log1p(math.exp(-2.0)) + math.log(2)) / 2
    assert float(presence_loss(logit, presence, frame_mask)) == pytest.approx(expected, rel=1e-6)


def test_betas_loss_is_mean_squared_error() -> None:
    gt = torch.zeros(2, 10)
    gt[1] = NAN
    pred = torch.full((2, 10), 0.1)
    assert float(betas_loss(pred, gt, torch.tensor([True, True]))) == pytest.approx(0.01)


def test_joint_loss_camera_frame_and_root_relative() -> None:
    gt = torch.zeros(2, 21, 3)
    gt[..., 2] = 0.5
    pred = gt + torch.tensor([0.003, 0.004, 0.0])  # 5 mm everywhere: a pure translation error
    mask = torch.tensor([True, True])
    assert float(joint_loss(pred, gt, mask, root_relative=False)) == pytest.approx(0.005, rel=1e-5)
    assert float(joint_loss(pred, gt, mask, root_relative=True)) == pytest.approx(0.0, abs=1e-5)
    pred2 = pred.clone()
    pred2[:, 1] += torch.tensor([0.0, 0.0, 0.012])  # one joint 12 mm deeper
    # root-relative: (0 + 12 mm + 19 × 0) / 21 joints
    assert float(joint_loss(pred2, gt, mask, root_relative=True)) == pytest.approx(0.012 / 21, rel=1e-4)
    gt_partial = gt.clone()
    gt_partial[1] = NAN  # unknown joints of the second hand are ignored
    assert float(joint_loss(pred, gt_partial, mask, root_relative=False)) == pytest.approx(0.005, rel=1e-5)
    assert float(joint_loss(pred, gt, torch.tensor([False, False]), root_relative=False)) == 0.0


def test_depth_loss_is_absolute_log_ratio() -> None:
    gt = torch.zeros(3, 21, 3)
    gt[:, 0, 2] = torch.tensor([1.0, 0.25, NAN])
    log_depth = torch.log(torch.tensor([0.5, 0.5, 3.0]))
    expected = (math.log(2) + math.log(2)) / 2
    assert float(depth_loss(log_depth, gt, torch.ones(3, dtype=torch.bool))) == pytest.approx(
        expected, rel=1e-6
    )


def test_reprojection_and_anchor_losses_are_in_image_units() -> None:
    gt = torch.tensor([[10.0, 10.0], [50.0, 50.0], [NAN, NAN]])
    pred = gt + torch.tensor([3.0, 4.0])  # 5 px
    mask = torch.tensor([True, True, True])
    assert float(reprojection_loss(pred, gt, mask, 100.0)) == pytest.approx(0.05, rel=1e-5)
    assert float(anchor_loss(pred, gt, torch.tensor([True, False, True]), 50.0)) == pytest.approx(
        0.1, rel=1e-5
    )


def test_heatmap_loss_uniform_and_peaked() -> None:
    gt = torch.tensor([[24.5, 14.5]])  # the centre of cell (row 1, col 2) for 10-px cells
    mask = torch.tensor([True])
    uniform = torch.zeros(1, 4, 5)
    assert float(heatmap_loss(uniform, gt, mask, (10.0, 10.0))) == pytest.approx(math.log(20), rel=1e-6)
    peaked = torch.full((1, 4, 5), -50.0)
    peaked[0, 1, 2] = 50.0
    assert float(heatmap_loss(peaked, gt, mask, (10.0, 10.0))) == pytest.approx(0.0, abs=1e-6)
    # Half-way between two cells: the target splits 50/50, so the best heatmap does too.
    between = torch.tensor([[29.5, 14.5]])
    split = torch.full((1, 4, 5), -50.0)
    split[0, 1, 2] = split[0, 1, 3] = 50.0
    assert float(heatmap_loss(split, between, mask, (10.0, 10.0))) == pytest.approx(math.log(2), rel=1e-5)


def test_visibility_bce() -> None:
    logit = torch.tensor([2.0, -1.0, 0.0])
    visible = torch.tensor([1.0, 0.0, NAN])
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert float(visibility_loss(logit, visible, torch.ones(3, dtype=torch.bool))) == pytest.approx(expected)


def test_velocity_and_acceleration_losses() -> None:
    t = torch.arange(5, dtype=torch.float64)[None, :, None, None]  # (1, T, 1 hand, 1 joint)
    gt = torch.zeros(1, 5, 1, 1, 3, dtype=torch.float64)
    mask = torch.ones(1, 5, 1, dtype=torch.bool)
    # Constant 1 cm/frame drift along x against a static GT: velocity error 1 cm, no acceleration.
    drift = gt.clone()
    drift[..., 0] = 0.01 * t
    assert float(velocity_loss(drift, gt, mask)) == pytest.approx(0.01, rel=1e-6)
    assert float(acceleration_loss(drift, gt, mask)) == pytest.approx(0.0, abs=1e-6)
    # x = 1 mm · t²: second difference 2 mm/frame² everywhere.
    quad = gt.clone()
    quad[..., 0] = 0.001 * t**2
    assert float(acceleration_loss(quad, gt, mask)) == pytest.approx(0.002, rel=1e-6)
    # velocities 1, 3, 5, 7 mm/frame → mean 4 mm; dropping frame 4 leaves pairs (0,1), (1,2), (2,3).
    assert float(velocity_loss(quad, gt, mask)) == pytest.approx(0.004, rel=1e-6)
    mask[0, 4] = False
    assert float(velocity_loss(quad, gt, mask)) == pytest.approx(0.003, rel=1e-6)


# -- the weighted sum --------------------------------------------------------------------------------


def test_decoder_loss_is_the_weighted_sum_and_zero_for_perfect_predictions() -> None:
    targets = _targets()
    out = _output_like(targets, noise=0.01)
    weights = LossWeights(heatmap=0.0, visibility=2.0)
    total, terms = decoder_loss(out, targets, weights)
    assert "heatmap" not in terms
    expected = sum(getattr(weights, k) * float(v) for k, v in terms.items())
    assert float(total) == pytest.approx(expected, rel=1e-5)
    _, perfect_terms = decoder_loss(_output_like(targets), targets, LossWeights(heatmap=0.0))
    for name in ("global_orient", "hand_pose", "betas", "joints_rel", "joints_cam", "depth", "velocity"):
        assert float(perfect_terms[name]) == pytest.approx(0.0, abs=2e-4), name


def test_decoder_loss_ignores_absent_hands_and_unknown_values_with_finite_gradients() -> None:
    presence = torch.ones(B, T, 2)
    presence[0, :, 1] = 0.0
    presence[1, 2, 0] = NAN
    joints = _targets().joints_3d.clone()
    joints[0, :, 1] = NAN  # absent hand: no geometry
    joints[1, 3, 0, 5] = NAN  # one unknown joint
    betas = _targets().betas.clone()
    betas[1] = NAN  # a dataset without MANO parameters
    targets = _targets(presence=presence, joints_3d=joints, betas=betas)
    targets.visibility = torch.ones(B, T, 2, 21)
    targets.visibility[1, 1, 1, :3] = 0.0
    targets.frame_mask = torch.ones(B, T, dtype=torch.bool)
    targets.frame_mask[1, -1] = False
    out = _output_like(targets, noise=0.01, grad=True)
    total, terms = decoder_loss(out, targets)
    assert torch.isfinite(total)
    assert all(torch.isfinite(v) for v in terms.values())
    total.backward()
    for name in ("joints_3d", "betas", "keypoints_2d", "anchors_2d", "presence_logit", "heatmap_logits"):
        grad = getattr(out, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
    assert torch.all(out.betas.grad[1] == 0)  # type: ignore[index]
    assert torch.all(out.joints_3d.grad[0, :, 1] == 0)  # type: ignore[index]


def test_targets_from_frame_poses() -> None:
    hand = HandPose(
        presence=1.0,
        global_orient=np.zeros(3, np.float32),
        hand_pose=np.zeros((15, 3), np.float32),
        betas=np.zeros(10, np.float32),
        joints_3d=np.ones((21, 3), np.float32),
        keypoints_2d=np.ones((21, 2), np.float32),
    )
    windows = [[FramePoses(stamp_ns=i, frame_id="cam", left=hand, right=None) for i in range(3)]]
    targets = DecoderTargets.from_frame_poses(windows)
    assert targets.presence.shape == (1, 3, 2) and targets.joints_3d.shape == (1, 3, 2, 21, 3)
    assert torch.all(targets.presence[..., 0] == 1) and torch.isnan(targets.presence[..., 1]).all()
    assert torch.isnan(targets.joints_3d[:, :, 1]).all() and torch.all(targets.joints_3d[:, :, 0] == 1)
