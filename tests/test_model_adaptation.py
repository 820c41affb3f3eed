"""Hand-overlay adaptation: the loss trains, both stages, resumable safetensors checkpoints."""

from __future__ import annotations

import json
import struct
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import torch

from vidihand_ros.errors import InputError
from vidihand_ros.model.backbone import Backbone, build_backbone
from vidihand_ros.model.checkpoint import load_checkpoint
from vidihand_ros.model.config import BackboneConfig, preset
from vidihand_ros.model.features import extract_features
from vidihand_ros.model.flow import add_noise, sample_sigmas, shift_sigma
from vidihand_ros.testing.synthetic_windows import SyntheticHandSet
from vidihand_ros.training.adaptation import AdaptationTrainer, make_batch, overlay_flow_loss
from vidihand_ros.training.checkpoints import (
    latest_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    save_training_checkpoint,
)
from vidihand_ros.training.config import AdaptationConfig, DecoderTrainConfig, LoopConfig, LossWeights
from vidihand_ros.training.overlay import OverlayRenderer

EVAL_STEPS = (10_000, 10_001, 10_002)  # fixed (batch, σ, ε) draws used only for evaluation


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def windows() -> SyntheticHandSet:
    return SyntheticHandSet(2, frames=9, size=(32, 32), seed=0, occlusion=1.0)


def _config(**changes: object) -> AdaptationConfig:
    base = AdaptationConfig(batch_size=2, lr=3e-3, steps=0, seed=0, checkpoint_every=0, cache_latents=True)
    return base.with_(**changes)


def _eval_loss(trainer: AdaptationTrainer) -> float:
    with torch.no_grad():
        return float(np.mean([trainer.loss_at(s).item() for s in EVAL_STEPS]))


def test_flow_schedule_conventions() -> None:
    x0, eps = torch.ones(2, 1, 1, 1, 1), torch.zeros(2, 1, 1, 1, 1)
    noisy = add_noise(x0, eps, torch.tensor([0.0, 0.7]))
    torch.testing.assert_close(noisy.flatten(), torch.tensor([1.0, 0.3]))
    assert float(shift_sigma(0.7, 1.0)) == pytest.approx(0.7)
    assert float(shift_sigma(0.5, 3.0)) == pytest.approx(0.75)  # 3·0.5 / (1 + 2·0.5)
    s = sample_sigmas(1000, generator=torch.Generator().manual_seed(0))
    assert float(s.min()) > 0 and float(s.max()) < 1 and abs(float(s.mean()) - 0.5) < 0.03


def test_both_trainings_share_one_loop_config_and_keep_their_json() -> None:
    loop = {f.name for f in fields(LoopConfig)}
    for cls in (AdaptationConfig, DecoderTrainConfig):
        assert issubclass(cls, LoopConfig) and loop < {f.name for f in fields(cls)}
    assert (AdaptationConfig().steps, DecoderTrainConfig().steps) == (1000, 20_000)
    # Checkpoints store a config as one flat JSON object; it reads back as the same config.
    for config in (
        AdaptationConfig(stage="mesh", lr=3e-3, betas=(0.8, 0.9), sigma_sampling="uniform"),
        DecoderTrainConfig(steps=5, warmup_steps=1, loss=LossWeights(heatmap=0.0)),
    ):
        stored = json.loads(json.dumps(config.to_dict()))
        assert loop < set(stored) and type(config).from_dict(stored) == config
    with pytest.raises(InputError, match="unknown decoder training config keys: colour"):
        DecoderTrainConfig.from_dict({"colour": "red"})
    with pytest.raises(InputError, match="lr > 0"):
        AdaptationConfig(lr=0.0)


def test_overlay_loss_is_finite_and_backpropagates_only_into_the_vace_branch(
    windows: SyntheticHandSet,
) -> None:
    backbone = build_backbone(preset("tiny"), seed=0)
    raw, overlaid = make_batch([windows[0], windows[1]], OverlayRenderer("skeleton"))
    with torch.inference_mode():  # serving first must not poison caches used by training
        extract_features(backbone, raw)
    assert raw.shape == overlaid.shape == (2, 3, 9, 32, 32) and not torch.equal(raw, overlaid)
    loss = overlay_flow_loss(
        backbone, raw, overlaid, sigma=torch.tensor([0.3, 0.7]), generator=torch.Generator().manual_seed(0)
    )
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in backbone.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert all(p.grad is not None for n, p in backbone.named_parameters() if ".vace_blocks.4." in n)


@pytest.mark.parametrize("stage", ["skeleton", "mesh"])
def test_training_reduces_the_loss(stage: str, windows: SyntheticHandSet) -> None:
    backbone = build_backbone(preset("tiny"), seed=0)
    frozen = {n: p.detach().clone() for n, p in backbone.named_parameters() if not p.requires_grad}
    trainer = AdaptationTrainer(backbone, windows, _config(stage=stage, steps=25))
    before = _eval_loss(trainer)
    result = trainer.run()
    after = _eval_loss(trainer)
    assert result.step == 25 and len(result.losses) == 25
    assert after < 0.85 * before, (before, after)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    for name, p in backbone.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), f"{name} changed although frozen"


def test_lora_variant_trains(windows: SyntheticHandSet) -> None:
    cfg = BackboneConfig.from_dict(preset("tiny").backbone.to_dict() | {"trainable": "lora"})
    backbone = build_backbone(cfg, seed=0)
    trainer = AdaptationTrainer(backbone, windows, _config(steps=15, lr=1e-2))
    before = _eval_loss(trainer)
    trainer.run()
    assert _eval_loss(trainer) < before


def _file_kinds(root: Path) -> set[str]:
    """Check every file under `root` is JSON or safetensors (and no pickle or torch zip)."""
    kinds = set()
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        assert not data.startswith(b"\x80") and not data.startswith(b"PK"), f"{path} looks like a pickle"
        if path.suffix == ".json":
            json.loads(data)
        else:
            assert path.suffix == ".safetensors", path
            (header_len,) = struct.unpack("<Q", data[:8])
            json.loads(data[8 : 8 + header_len])
        kinds.add(path.suffix)
    return kinds


def test_resume_gives_the_identical_next_step(tmp_path: Path, windows: SyntheticHandSet) -> None:
    config = _config(steps=3, checkpoint_every=3)
    a = AdaptationTrainer(build_backbone(preset("tiny"), seed=0), windows, config, checkpoint_dir=tmp_path)
    result = a.run()
    assert (
        result.checkpoint == tmp_path / "step-00000003" and latest_checkpoint(tmp_path) == result.checkpoint
    )
    next_loss = a.train_step()  # step 4, not checkpointed

    b = AdaptationTrainer(build_backbone(preset("tiny"), seed=0), windows, config, checkpoint_dir=tmp_path)
    assert b.step == 3
    assert b.train_step() == pytest.approx(next_loss, rel=1e-6, abs=1e-7)
    for (name, pa), (_, pb) in zip(
        a.backbone.trainable_named_parameters(), b.backbone.trainable_named_parameters(), strict=True
    ):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7, msg=name)
    assert _file_kinds(tmp_path) == {".json", ".safetensors"}


def test_stage_two_starts_from_stage_one(tmp_path: Path, windows: SyntheticHandSet) -> None:
    stage1 = AdaptationTrainer(
        build_backbone(preset("tiny"), seed=0), windows, _config(steps=2), checkpoint_dir=tmp_path / "s1"
    )
    stage1.run()
    first = latest_checkpoint(tmp_path / "s1")
    assert first is not None
    with pytest.raises(InputError, match="stage"):
        AdaptationTrainer(
            build_backbone(preset("tiny"), seed=1),
            windows,
            _config(stage="mesh"),
            checkpoint_dir=tmp_path / "s1",
        )
    stage2 = AdaptationTrainer(
        build_backbone(preset("tiny"), seed=1),
        windows,
        _config(stage="mesh"),
        checkpoint_dir=tmp_path / "s2",
        init_from=first,
    )
    assert stage2.step == 0
    for key, value in load_checkpoint(first).model_state.items():
        torch.testing.assert_close(stage2.backbone.trainable_state_dict()[key], value)


def test_checkpoint_round_trip_optimizer_rng_and_pruning(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = save_training_checkpoint(
        tmp_path / "c", model.state_dict(), opt, 7, {"a": [1, 2]}, extra={"note": "x"}
    )
    expected_next = torch.rand(3)
    torch.rand(100)
    ckpt = load_training_checkpoint(path)
    assert (ckpt.step, ckpt.config, ckpt.extra) == (7, {"a": [1, 2]}, {"note": "x"})
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ckpt.model_state[key], value)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=5.0)
    assert ckpt.optimizer_state is not None
    fresh.load_state_dict(ckpt.optimizer_state)
    assert fresh.param_groups[0]["lr"] == 1e-3 and fresh.param_groups[0]["betas"] == (0.8, 0.95)
    for pid, entries in opt.state_dict()["state"].items():
        for name, value in entries.items():
            torch.testing.assert_close(fresh.state_dict()["state"][pid][name], value)
    from vidihand_ros.training.checkpoints import restore_rng

    assert ckpt.rng is not None
    restore_rng(ckpt.rng)
    torch.testing.assert_close(torch.rand(3), expected_next)
    # Overwriting is atomic and leaves no temporary directories.
    save_training_checkpoint(tmp_path / "c", {"w": torch.zeros(1)}, None, 8)
    assert load_checkpoint(tmp_path / "c").step == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert _file_kinds(tmp_path) == {".json", ".safetensors"}
    with pytest.raises(InputError):
        load_checkpoint(tmp_path)


def test_old_checkpoints_are_pruned(tmp_path: Path, windows: SyntheticHandSet) -> None:
    trainer = AdaptationTrainer(
        build_backbone(preset("tiny"), seed=0),
        windows,
        _config(steps=4, checkpoint_every=1, keep_checkpoints=2),
        checkpoint_dir=tmp_path,
    )
    trainer.run()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]


def test_unconditioned_backbone_cannot_adapt(windows: SyntheticHandSet) -> None:
    cfg = preset("tiny").backbone.to_dict()
    tf = {k: v for k, v in cfg["transformer"].items() if k not in ("vace_layers", "vace_in_channels")}
    none = BackboneConfig.from_dict(cfg | {"transformer": tf, "conditioning": "none", "trainable": "lora"})
    backbone: Backbone = build_backbone(none, seed=0)
    with pytest.raises(InputError, match="conditioning"):
        AdaptationTrainer(backbone, windows, _config())
