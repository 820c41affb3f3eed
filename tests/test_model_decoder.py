"""Pose decoder: rotations, ray encoding, frame layout, shapes end to end, the translation solve,
gradients, checkpoints, and overfitting two windows through the training loop."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("smplx")
pytest.importorskip("safetensors")

import torch

from tests.mano_fixtures import mano_dir, mano_layers  # noqa: F401  (pytest fixtures)
from vidihand_ros.geometry.palm import palm_orientation
from vidihand_ros.mano.layer import ManoLayer
from vidihand_ros.model.config import DecoderConfig
from vidihand_ros.model.decoder import (
    HeadOutputs,
    PoseDecoder,
    frame_slots,
    project,
    to_frame_poses,
)
from vidihand_ros.model.features import Features
from vidihand_ros.model.ray_encoding import fourier_encode, pixel_rays
from vidihand_ros.model.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
)
from vidihand_ros.training.config import DecoderTrainConfig
from vidihand_ros.training.decoder import DecoderExample, DecoderTrainer, ExampleDirectory, collate_examples
from vidihand_ros.training.losses import DecoderTargets, decoder_loss
from vidihand_ros.types import FramePoses

B, T, F = 2, 9, 3
H = W = 128  # 8 × 8 tokens of 16 px
FOCAL = 100.0


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and much faster on a busy CI machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _K(batch: int = B) -> torch.Tensor:
    K = torch.tensor([[FOCAL, 0.0, (W - 1) / 2], [0.0, FOCAL, (H - 1) / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).contiguous()


def _features(seed: int = 0, feature_dim: int = 32) -> Features:
    g = torch.Generator().manual_seed(seed)
    return Features(
        tokens=torch.randn(B, F, H // 16, W // 16, feature_dim, generator=g),
        num_frames=T,
        image_size=(H, W),
        patch=(1, 2, 2),
        vae_scale=(4, 8, 8),
    )


def _ground_truth(mano: dict[str, ManoLayer], seed: int = 1) -> DecoderTargets:
    """Smoothly moving hands ~0.5 m in front of the camera; window 1 loses its left hand at frame 5."""
    g = torch.Generator().manual_seed(seed)
    tt = torch.linspace(0, 1, T)[None, :, None, None]
    go = (torch.randn(B, 1, 2, 3, generator=g) * 0.5 + torch.tensor([math.pi, 0, 0])) + tt * 0.2
    pose = torch.randn(B, 1, 2, 15, 3, generator=g) * 0.2 + tt[..., None] * 0.1
    betas = (torch.randn(B, 1, 2, 10, generator=g) * 0.5).expand(B, T, 2, 10).contiguous()
    root = (
        torch.tensor([[-0.1, 0.02, 0.45], [0.1, 0.0, 0.5]]) + tt * torch.tensor([0.03, -0.02, 0.05])
    ).expand(B, T, 2, 3)
    n = B * T
    joints = []
    for h, side in enumerate(("left", "right")):
        j = mano[side].joints(
            go[:, :, h].reshape(n, 3),
            pose[:, :, h].reshape(n, 15, 3),
            betas[:, :, h].reshape(n, 10),
            torch.zeros(n, 3),
        )
        joints.append((j - j[:, :1] + root[:, :, h].reshape(n, 1, 3)).reshape(B, T, 21, 3))
    joints_3d = torch.stack(joints, dim=2)
    presence = torch.ones(B, T, 2)
    presence[1, 5:, 0] = 0.0
    absent = presence == 0

    def hide(x: torch.Tensor) -> torch.Tensor:
        return x.masked_fill(absent.reshape(*absent.shape, *([1] * (x.ndim - 3))), float("nan"))

    return DecoderTargets(
        presence=presence,
        global_orient=hide(go),
        hand_pose=hide(pose),
        betas=hide(betas),
        joints_3d=hide(joints_3d),
        keypoints_2d=hide(project(joints_3d, _K()[:, None, None])),
    )


# -- rotations ----------------------------------------------------------------------------------------


def test_axis_angle_matrix_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(200, 1, generator=g, dtype=torch.float64) * (math.pi - 1e-3)
    angle[:3] = torch.tensor([[0.0], [1e-8], [math.pi - 1e-6]], dtype=torch.float64)
    aa = axis * angle
    R = axis_angle_to_matrix(aa)
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(200, dtype=torch.float64))
    torch.testing.assert_close(matrix_to_axis_angle(R), aa, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R)), R)


def test_rodrigues_matches_a_known_rotation() -> None:
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(R, expected)


def test_rot6d_maps_any_vector_to_a_rotation_with_finite_gradients() -> None:
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(3), requires_grad=True)
    R = rot6d_to_matrix(x)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(50), atol=1e-5, rtol=0)
    matrix_to_axis_angle(R).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_axis_angle_gradients_are_finite_at_identity() -> None:
    aa = torch.zeros(4, 3, requires_grad=True)
    matrix_to_axis_angle(axis_angle_to_matrix(aa)).sum().backward()
    assert aa.grad is not None and torch.isfinite(aa.grad).all()
    torch.testing.assert_close(aa.grad, torch.ones(4, 3))  # the round trip is the identity map


# -- ray encoding and the frame layout ----------------------------------------------------------------


def test_centre_token_ray_is_the_optical_axis() -> None:
    # 3 × 3 tokens of 16 px: the centre token's centre pixel is (23.5, 23.5).
    K = torch.tensor([[[50.0, 0.0, 23.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]]])
    rays = pixel_rays(K, (3, 3), (16.0, 16.0))
    assert rays.shape == (1, 3, 3, 3)
    torch.testing.assert_close(rays[0, 1, 1], torch.tensor([0.0, 0.0, 1.0]))
    # token (0, 2): pixel (39.5, 7.5) → direction ((39.5-23.5)/50, (7.5-23.5)/60, 1), normalised
    d = torch.tensor([16.0 / 50.0, -16.0 / 60.0, 1.0])
    torch.testing.assert_close(rays[0, 0, 2], d / d.norm())
    torch.testing.assert_close(rays.norm(dim=-1), torch.ones(1, 3, 3))


def test_fourier_encoding_layout() -> None:
    x = torch.tensor([[0.5, -0.25]])
    enc = fourier_encode(x, 2)
    assert enc.shape == (1, 2 * (2 * 2 + 1))
    torch.testing.assert_close(enc[0, :2], x[0])
    torch.testing.assert_close(enc[0, 2], torch.sin(torch.tensor(0.5 * math.pi)))


def test_frame_slots_follow_the_causal_vae() -> None:
    slots = frame_slots(81, 21, 4, 1)
    assert slots.group == 4
    assert slots.token_frame.tolist()[:10] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert slots.token_frame[-1] == 20
    assert slots.offset_class.tolist()[:6] == [0, 1, 2, 3, 4, 1]
    feats = Features(torch.zeros(1, 21, 1, 1, 1), 81, (16, 16), (1, 2, 2), (4, 8, 8))
    assert slots.token_frame.tolist() == [feats.token_frame_of(t) for t in range(81)]
    x = torch.arange(81.0)[None, :, None]
    grouped = slots.to_slots(x)
    assert grouped.shape == (1, 21, 4, 1)
    assert grouped[0, 2, :, 0].tolist() == [5.0, 6.0, 7.0, 8.0]
    torch.testing.assert_close(slots.from_slots(grouped), x)


def test_config_presets_and_json_round_trip(tmp_path: Path) -> None:
    default = DecoderConfig.default()
    assert default.feature_dim == 1536
    tiny = DecoderConfig.tiny()
    assert DecoderConfig.from_json(tiny.to_json()) == tiny
    tiny.save(tmp_path / "decoder.json")
    assert DecoderConfig.load(tmp_path / "decoder.json") == tiny
    with pytest.raises(ValueError):
        DecoderConfig.from_dict({"dim": 64, "bogus": 1})
    with pytest.raises(ValueError):
        DecoderConfig(dim=30, heads=4)
    assert sum(p.numel() for p in PoseDecoder(tiny).parameters()) < 500_000


# -- end to end ---------------------------------------------------------------------------------------


def test_shapes_end_to_end_and_frame_poses(mano_layers: dict[str, ManoLayer]) -> None:  # noqa: F811
    torch.manual_seed(0)
    decoder = PoseDecoder(DecoderConfig.tiny(), mano_layers).eval()
    with torch.no_grad():
        out = decoder(_features(), _K(), return_heatmaps=True)
    shapes = {
        "presence": (B, T, 2),
        "global_orient": (B, T, 2, 3),
        "hand_pose": (B, T, 2, 15, 3),
        "global_orient_mat": (B, T, 2, 3, 3),
        "hand_pose_mat": (B, T, 2, 15, 3, 3),
        "betas": (B, T, 2, 10),
        "transl": (B, T, 2, 3),
        "joints_3d": (B, T, 2, 21, 3),
        "keypoints_2d": (B, T, 2, 21, 2),
        "anchors_2d": (B, T, 2, 21, 2),
        "anchor_conf": (B, T, 2, 21),
        "log_depth": (B, T, 2),
        "wls_ok": (B, T, 2),
        "heatmap_logits": (B, T, 2, 21, 16, 16),
    }
    for name, shape in shapes.items():
        value = getattr(out, name)
        assert tuple(value.shape) == shape, name
        if name != "wls_ok":
            assert value.dtype == torch.float32 and torch.isfinite(value).all(), name
    assert ((out.presence > 0) & (out.presence < 1)).all()
    # MANO's own translation parameter reproduces the camera-frame joints.
    for h, side in enumerate(("left", "right")):
        n = B * T
        joints = mano_layers[side].joints(
            out.global_orient[:, :, h].reshape(n, 3),
            out.hand_pose[:, :, h].reshape(n, 15, 3),
            out.betas[:, :, h].reshape(n, 10),
            out.transl[:, :, h].reshape(n, 3),
        )
        torch.testing.assert_close(joints.reshape(B, T, 21, 3), out.joints_3d[:, :, h], atol=1e-5, rtol=1e-4)

    stamps = [[1000 * (b * T + t) for t in range(T)] for b in range(B)]
    poses = to_frame_poses(out, stamps, ["cam", [f"f{t}" for t in range(T)]])
    assert len(poses) == B and all(len(w) == T for w in poses)
    frame = poses[1][4]
    assert isinstance(frame, FramePoses) and frame.stamp_ns == 1000 * (T + 4) and frame.frame_id == "f4"
    assert poses[0][0].frame_id == "cam"
    for side in ("left", "right"):
        hand = frame.hand(side)
        assert hand is not None
        assert hand.joints_3d.shape == (21, 3) and hand.joints_3d.dtype == np.float32
        assert hand.hand_pose.shape == (15, 3) and hand.keypoints_2d.shape == (21, 2)
        assert 0.0 < hand.presence < 1.0
        assert np.isfinite(hand.transl).all()
        np.testing.assert_allclose(hand.wrist_orient, palm_orientation(hand.joints_3d, side), atol=1e-6)
    np.testing.assert_allclose(frame.right.joints_3d, out.joints_3d[1, 4, 1].numpy())  # type: ignore[union-attr]


def test_bf16_network_gives_float32_geometry(mano_layers: dict[str, ManoLayer]) -> None:  # noqa: F811
    decoder = PoseDecoder(DecoderConfig.tiny(), mano_layers).to(torch.bfloat16)
    with torch.no_grad():
        out = decoder(_features(), _K())
    assert out.joints_3d.dtype == torch.float32 and out.anchors_2d.dtype == torch.float32
    assert torch.isfinite(out.joints_3d).all()


def test_translation_is_exact_from_exact_anchors(mano_layers: dict[str, ManoLayer]) -> None:  # noqa: F811
    gt = _ground_truth(mano_layers)
    decoder = PoseDecoder(DecoderConfig.tiny(), mano_layers)
    known = torch.isfinite(gt.presence) & (gt.presence > 0)
    heads = HeadOutputs(
        presence_logit=torch.zeros(B, T, 2),
        global_orient_mat=axis_angle_to_matrix(torch.nan_to_num(gt.global_orient)),
        hand_pose_mat=axis_angle_to_matrix(torch.nan_to_num(gt.hand_pose)),
        betas=torch.nan_to_num(gt.betas),
        log_depth=torch.full((B, T, 2), math.log(0.3)),  # wrong on purpose: must not be used
        anchors_2d=torch.nan_to_num(gt.keypoints_2d),
        anchor_logit=torch.full((B, T, 2, 21), 10.0),
        image_size=(H, W),
        heatmap_cell=(8.0, 8.0),
    )
    out = decoder.assemble(heads, _K())
    assert out.wls_ok[known].all()
    torch.testing.assert_close(out.joints_3d[known], gt.joints_3d[known], atol=2e-5, rtol=0)
    torch.testing.assert_close(out.keypoints_2d[known], gt.keypoints_2d[known], atol=1e-2, rtol=0)

    # Coinciding anchors make the solve degenerate: the root goes to exp(log_depth) on its anchor's ray.
    heads.anchors_2d = torch.full((B, T, 2, 21, 2), 40.0)
    out = decoder.assemble(heads, _K())
    assert not out.wls_ok.any()
    ray = torch.tensor([(40.0 - (W - 1) / 2) / FOCAL, (40.0 - (H - 1) / 2) / FOCAL, 1.0])
    torch.testing.assert_close(out.root, (0.3 * ray).expand(B, T, 2, 3))


def test_gradients_reach_every_parameter(mano_layers: dict[str, ManoLayer]) -> None:  # noqa: F811
    torch.manual_seed(0)
    decoder = PoseDecoder(DecoderConfig.tiny(), mano_layers)
    out = decoder(_features(), _K(), return_heatmaps=True)
    loss, _ = decoder_loss(out, _ground_truth(mano_layers))
    loss.backward()
    for name, p in decoder.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_mano_is_not_decoder_state_and_wrong_inputs_are_rejected(
    mano_layers: dict[str, ManoLayer],  # noqa: F811
) -> None:
    decoder = PoseDecoder(DecoderConfig.tiny(), mano_layers)
    assert not any(k.startswith("mano") or "shapedirs" in k for k in decoder.state_dict())
    with pytest.raises(ValueError, match="tokens"):
        decoder(_features(feature_dim=16), _K())
    with pytest.raises(ValueError, match="K"):
        decoder(_features(), _K(1))
    with pytest.raises(RuntimeError, match="MANO"):
        PoseDecoder(DecoderConfig.tiny())(_features(), _K())


# -- training -----------------------------------------------------------------------------------------


def _examples(mano: dict[str, ManoLayer]) -> list[DecoderExample]:
    return DecoderExample.from_batch(_features(seed=5), _K(), _ground_truth(mano))


def test_examples_round_trip_through_safetensors(tmp_path: Path, mano_layers: dict[str, ManoLayer]) -> None:  # noqa: F811
    examples = _examples(mano_layers)
    for i, ex in enumerate(examples):
        ex.save(tmp_path / f"{i:04d}.safetensors")
    loaded = ExampleDirectory(tmp_path)
    assert len(loaded) == B
    features, K, targets = collate_examples(list(loaded))
    ref_features, ref_K, ref_targets = collate_examples(examples)
    torch.testing.assert_close(features.tokens, ref_features.tokens)
    assert (features.num_frames, features.image_size, features.patch) == (T, (H, W), (1, 2, 2))
    torch.testing.assert_close(K, ref_K)
    torch.testing.assert_close(targets.joints_3d, ref_targets.joints_3d, equal_nan=True)
    assert targets.visibility is None


def test_trainer_checkpoints_and_resumes(tmp_path: Path, mano_layers: dict[str, ManoLayer]) -> None:  # noqa: F811
    torch.manual_seed(0)
    config = DecoderTrainConfig(steps=3, batch_size=1, lr=1e-3, warmup_steps=1, checkpoint_every=2)
    decoder = PoseDecoder(DecoderConfig.tiny(), mano_layers)
    result = DecoderTrainer(decoder, _examples(mano_layers), config, checkpoint_dir=tmp_path).run()
    assert result.step == 3 and len(result.losses) == 3 and result.checkpoint is not None
    assert all(math.isfinite(v) for v in result.last_terms.values())

    loaded = PoseDecoder.from_checkpoint(result.checkpoint, mano_layers)
    for (k, a), (_, b) in zip(decoder.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)

    # A new trainer on the same directory resumes at step 3 and continues to 4.
    fresh = PoseDecoder(DecoderConfig.tiny(), mano_layers)
    trainer = DecoderTrainer(
        fresh,
        _examples(mano_layers),
        DecoderTrainConfig(**{**config.to_dict(), "steps": 4}),
        checkpoint_dir=tmp_path,
    )
    assert trainer.step == 3
    assert trainer.run().step == 4


def test_decoder_overfits_two_windows(mano_layers: dict[str, ManoLayer]) -> None:  # noqa: F811
    """Random features, fixed synthetic MANO ground truth: the decoder must memorise both windows,
    including the frames where a hand leaves the view (presence) and the metric translation."""
    torch.manual_seed(0)
    decoder = PoseDecoder(DecoderConfig.tiny(), mano_layers)
    config = DecoderTrainConfig(
        steps=250, batch_size=B, lr=5e-3, warmup_steps=20, min_lr_ratio=0.0, weight_decay=0.0
    )
    trainer = DecoderTrainer(decoder, _examples(mano_layers), config)
    before = trainer.evaluate()
    result = trainer.run()
    after = trainer.evaluate()
    assert result.losses[-1] < 0.2 * result.losses[0]
    assert before["mpjpe_mm"] > 50.0
    assert after["presence_acc"] == 1.0
    assert after["mpjpe_rel_mm"] < 10.0, after
    assert after["mpjpe_mm"] < 10.0, after
