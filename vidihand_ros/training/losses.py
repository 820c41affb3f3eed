"""Training losses of the pose decoder: MANO, 3D joints, camera, reprojection, presence, visibility, temporal.

Ground truth (`DecoderTargets`) follows the core types' convention that NaN means unknown; every
term is a masked mean over the known entries, with NaNs replaced before any arithmetic. Units and
default weights: docs/model.md, "Decoder training".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidihand_ros.model.decoder import DecoderOutput
from vidihand_ros.model.rotations import axis_angle_to_matrix, geodesic_angle
from vidihand_ros.training.config import LossWeights
from vidihand_ros.types import HAND_SIDES, NUM_BETAS, NUM_HAND_POSE_JOINTS, NUM_JOINTS, FramePoses

__all__ = [
    "DecoderTargets",
    "LossWeights",
    "acceleration_loss",
    "anchor_loss",
    "betas_loss",
    "decoder_loss",
    "depth_loss",
    "heatmap_loss",
    "joint_loss",
    "masked_mean",
    "point_distance",
    "presence_loss",
    "reprojection_loss",
    "rotation_loss",
    "velocity_loss",
    "visibility_loss",
]

#: Inside the square root of distances: keeps the gradient finite (zero) at exactly zero error while
#: biasing a distance by at most 1e-10.
_EPS = 1e-20


@dataclass
class DecoderTargets:
    """Ground truth for a batch of windows, (B, T, 2, ...) with hand 0 = left, 1 = right; NaN = unknown."""

    presence: Tensor  # (B, T, 2) 1 present, 0 absent
    global_orient: Tensor  # (B, T, 2, 3) axis-angle, camera frame
    hand_pose: Tensor  # (B, T, 2, 15, 3) axis-angle
    betas: Tensor  # (B, T, 2, 10)
    joints_3d: Tensor  # (B, T, 2, 21, 3) camera frame, metres
    keypoints_2d: Tensor  # (B, T, 2, 21, 2) pixels
    #: (B, T, 2, 21) 1 where the joint is visible, 0 occluded/outside, NaN unknown. None: every
    #: joint of a present hand with a finite keypoint counts as visible.
    visibility: Tensor | None = None
    #: (B, T) False for frames that must not count (a window's padding). None: all frames count.
    frame_mask: Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> DecoderTargets:
        moved: dict[str, Tensor | None] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                moved[f.name] = None
            elif value.dtype == torch.bool:
                moved[f.name] = value.to(device)
            else:
                moved[f.name] = value.to(device, dtype or value.dtype)
        return DecoderTargets(**moved)  # type: ignore[arg-type]

    @classmethod
    def from_frame_poses(cls, windows: Sequence[Sequence[FramePoses]]) -> DecoderTargets:
        """Targets from ground truth in the core types (a `None` hand: presence unknown, all NaN).

        Every window must have the same number of frames.
        """
        b, t = len(windows), len(windows[0])
        nan = np.float32(np.nan)
        presence = np.full((b, t, 2), nan, np.float32)
        go = np.full((b, t, 2, 3), nan, np.float32)
        pose = np.full((b, t, 2, NUM_HAND_POSE_JOINTS, 3), nan, np.float32)
        betas = np.full((b, t, 2, NUM_BETAS), nan, np.float32)
        joints = np.full((b, t, 2, NUM_JOINTS, 3), nan, np.float32)
        kp = np.full((b, t, 2, NUM_JOINTS, 2), nan, np.float32)
        for i, window in enumerate(windows):
            if len(window) != t:
                raise ValueError(f"window {i} has {len(window)} frames, window 0 has {t}")
            for j, frame in enumerate(window):
                for h, side in enumerate(HAND_SIDES):
                    hand = frame.hand(side)
                    if hand is None:
                        continue
                    presence[i, j, h] = hand.presence
                    go[i, j, h], pose[i, j, h], betas[i, j, h] = (
                        hand.global_orient,
                        hand.hand_pose,
                        hand.betas,
                    )
                    joints[i, j, h], kp[i, j, h] = hand.joints_3d, hand.keypoints_2d
        return cls(*(torch.from_numpy(a) for a in (presence, go, pose, betas, joints, kp)))


# --------------------------------------------------------------------------------------------------
# Building blocks


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` where `mask` is true; 0 (still attached to the graph) where nothing is."""
    mask = mask.expand_as(values)
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)


def _finite(x: Tensor, dims: int) -> Tensor:
    """True where the last `dims` axes are all finite."""
    ok = torch.isfinite(x)
    for _ in range(dims):
        ok = ok.all(dim=-1)
    return ok


def _safe(x: Tensor) -> Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def point_distance(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """Euclidean distance (...) between points (..., D) and where the ground truth is finite."""
    ok = _finite(gt, 1)
    diff = pred - _safe(gt)
    return torch.sqrt((diff * diff).sum(dim=-1) + _EPS), ok


def _present(targets: DecoderTargets) -> Tensor:
    """(B, T, 2): hand present (presence > 0.5) in a frame that counts."""
    present = _safe(targets.presence) > 0.5
    if targets.frame_mask is not None:
        present = present & targets.frame_mask[:, :, None].to(torch.bool)
    return present


def _visible(targets: DecoderTargets) -> Tensor:
    """(B, T, 2, 21): joints whose 2D keypoint is supervised."""
    ok = _present(targets)[..., None] & _finite(targets.keypoints_2d, 1)
    if targets.visibility is not None:
        ok = ok & (_safe(targets.visibility) > 0.5)
    return ok


def _image_scale(output: DecoderOutput) -> float:
    return float(max(output.image_size))


# --------------------------------------------------------------------------------------------------
# Terms


def presence_loss(logit: Tensor, presence: Tensor, frame_mask: Tensor | None = None) -> Tensor:
    """Binary cross-entropy of the presence logits (B, T, 2) where the presence label is known."""
    ok = torch.isfinite(presence)
    if frame_mask is not None:
        ok = ok & frame_mask[:, :, None].to(torch.bool)
    bce = F.binary_cross_entropy_with_logits(logit, _safe(presence).to(logit.dtype), reduction="none")
    return masked_mean(bce, ok)


def rotation_loss(pred_mat: Tensor, gt_axis_angle: Tensor, mask: Tensor) -> Tensor:
    """Mean geodesic angle (radians) between predicted matrices (..., 3, 3) and GT axis-angle (..., 3)."""
    ok = mask & _finite(gt_axis_angle, 1)
    gt = axis_angle_to_matrix(_safe(gt_axis_angle).to(pred_mat.dtype))
    return masked_mean(geodesic_angle(pred_mat, gt), ok)


def betas_loss(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error of the shape coefficients (..., 10)."""
    ok = mask[..., None] & torch.isfinite(gt)
    return masked_mean((pred - _safe(gt)) ** 2, ok)


def joint_loss(pred: Tensor, gt: Tensor, mask: Tensor, *, root_relative: bool) -> Tensor:
    """Mean per-joint position error (metres) of joints (..., 21, 3); `mask` (...) selects hands.

    Root-relative: both sides minus their own wrist (the MANO articulation and shape); otherwise
    camera-frame (adds the translation).
    """
    ok = mask[..., None] & _finite(gt, 1)
    if root_relative:
        ok = ok & _finite(gt[..., :1, :], 1)
        pred = pred - pred[..., :1, :]
        gt = gt - gt[..., :1, :]
    dist, _ = point_distance(pred, gt)
    return masked_mean(dist, ok)


def depth_loss(log_depth: Tensor, gt_joints: Tensor, mask: Tensor) -> Tensor:
    """|log z_pred - log z_gt| of the root (wrist) depth, where the GT wrist is finite and in front."""
    z = gt_joints[..., 0, 2]
    ok = mask & torch.isfinite(z) & (_safe(z) > 0)
    log_z = torch.log(torch.where(ok, z, torch.ones_like(z)))
    return masked_mean((log_depth - log_z).abs(), ok)


def reprojection_loss(keypoints: Tensor, gt: Tensor, mask: Tensor, scale: float) -> Tensor:
    """Mean 2D distance between points (..., 2) and GT, in units of `scale` pixels, where `mask`."""
    dist, ok = point_distance(keypoints, gt)
    return masked_mean(dist / scale, mask & ok)


def anchor_loss(anchors: Tensor, gt: Tensor, mask: Tensor, scale: float) -> Tensor:
    """The heatmap soft-argmax anchors against the GT keypoints (same measure as reprojection)."""
    return reprojection_loss(anchors, gt, mask, scale)


def heatmap_loss(logits: Tensor, gt: Tensor, mask: Tensor, cell: tuple[float, float]) -> Tensor:
    """Cross-entropy of heatmaps (..., Hh, Wh) against the GT keypoint splatted bilinearly onto the grid.

    The soft-argmax alone is satisfied by any distribution with the right mean (e.g. two modes either
    side of the joint); the cross-entropy makes the heatmap peak at the joint, which keeps the
    anchors stable and their confidences meaningful. Keypoints outside the grid are clamped to it.
    """
    hh, wh = logits.shape[-2:]
    logp = logits.flatten(-2).log_softmax(dim=-1)
    ok = mask & _finite(gt, 1)
    gt = _safe(gt)
    ch, cw = cell
    gx = ((gt[..., 0] - (cw - 1) / 2) / cw).clamp(0, wh - 1)
    gy = ((gt[..., 1] - (ch - 1) / 2) / ch).clamp(0, hh - 1)
    x0 = gx.floor().clamp(max=max(wh - 2, 0))
    y0 = gy.floor().clamp(max=max(hh - 2, 0))
    fx, fy = gx - x0, gy - y0
    x1 = (x0 + 1).clamp(max=wh - 1)
    y1 = (y0 + 1).clamp(max=hh - 1)
    ce = torch.zeros_like(gx)
    for yy, xx, w in (
        (y0, x0, (1 - fy) * (1 - fx)),
        (y0, x1, (1 - fy) * fx),
        (y1, x0, fy * (1 - fx)),
        (y1, x1, fy * fx),
    ):
        idx = (yy * wh + xx).long()[..., None]
        ce = ce - w * torch.gather(logp, -1, idx)[..., 0]
    return masked_mean(ce, ok)


def visibility_loss(logit: Tensor, visible: Tensor, mask: Tensor) -> Tensor:
    """BCE of the per-joint anchor confidence logits against visibility labels, where `mask`."""
    ok = mask & torch.isfinite(visible)
    bce = F.binary_cross_entropy_with_logits(logit, _safe(visible).to(logit.dtype), reduction="none")
    return masked_mean(bce, ok)


def velocity_loss(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """Error of the frame-to-frame displacement of joints (B, T, ..., J, 3), metres per frame.

    A pair of frames counts where `mask` (B, T, ...) holds for both and both GT joints are finite.
    Matching the GT motion (rather than just penalising motion) smooths jitter without damping
    real movement.
    """
    ok = mask[..., None] & _finite(gt, 1)
    ok = ok[:, 1:] & ok[:, :-1]
    dist, _ = point_distance(pred[:, 1:] - pred[:, :-1], _safe(gt[:, 1:]) - _safe(gt[:, :-1]))
    return masked_mean(dist, ok)


def acceleration_loss(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """Error of the second difference of joints over time (metres per frame²), like `velocity_loss`."""
    ok = mask[..., None] & _finite(gt, 1)
    ok = ok[:, 2:] & ok[:, 1:-1] & ok[:, :-2]
    g = _safe(gt)
    acc_pred = pred[:, 2:] - 2 * pred[:, 1:-1] + pred[:, :-2]
    acc_gt = g[:, 2:] - 2 * g[:, 1:-1] + g[:, :-2]
    dist, _ = point_distance(acc_pred, acc_gt)
    return masked_mean(dist, ok)


def decoder_loss(
    output: DecoderOutput, targets: DecoderTargets, weights: LossWeights | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of all terms, and each unweighted term (detached) by name.

    The heatmap term needs `output.heatmap_logits` (decode with `return_heatmaps=True`); without
    them it is skipped.
    """
    w = weights or LossWeights()
    present = _present(targets)
    visible = _visible(targets)
    scale = _image_scale(output)
    if targets.visibility is not None:
        vis_target = targets.visibility
    else:
        vis_target = torch.where(_finite(targets.keypoints_2d, 1), 1.0, 0.0).to(output.anchor_logit.dtype)
    terms: dict[str, Tensor] = {}
    if w.presence:
        terms["presence"] = presence_loss(output.presence_logit, targets.presence, targets.frame_mask)
    if w.global_orient:
        terms["global_orient"] = rotation_loss(output.global_orient_mat, targets.global_orient, present)
    if w.hand_pose:
        terms["hand_pose"] = rotation_loss(output.hand_pose_mat, targets.hand_pose, present[..., None])
    if w.betas:
        terms["betas"] = betas_loss(output.betas, targets.betas, present)
    if w.joints_rel:
        terms["joints_rel"] = joint_loss(output.joints_3d, targets.joints_3d, present, root_relative=True)
    if w.joints_cam:
        terms["joints_cam"] = joint_loss(output.joints_3d, targets.joints_3d, present, root_relative=False)
    if w.depth:
        terms["depth"] = depth_loss(output.log_depth, targets.joints_3d, present)
    if w.reprojection:
        terms["reprojection"] = reprojection_loss(output.keypoints_2d, targets.keypoints_2d, visible, scale)
    if w.anchors:
        terms["anchors"] = anchor_loss(output.anchors_2d, targets.keypoints_2d, visible, scale)
    if w.heatmap and output.heatmap_logits is not None:
        terms["heatmap"] = heatmap_loss(
            output.heatmap_logits, targets.keypoints_2d, visible, output.heatmap_cell
        )
    if w.visibility:
        terms["visibility"] = visibility_loss(output.anchor_logit, vis_target, present[..., None])
    if w.velocity:
        terms["velocity"] = velocity_loss(output.joints_3d, targets.joints_3d, present)
    if w.acceleration:
        terms["acceleration"] = acceleration_loss(output.joints_3d, targets.joints_3d, present)
    total = sum(
        (getattr(w, name) * value for name, value in terms.items()), output.presence_logit.new_zeros(())
    )
    return total, {name: value.detach() for name, value in terms.items()}
