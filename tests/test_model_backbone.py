"""Backbone: configs and presets, parameter counts, freezing, the truncated pass, weight loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

import torch
from safetensors.torch import save_file

from vidihand_ros.errors import InputError
from vidihand_ros.model.backbone import (
    build_backbone,
    load_pretrained,
    load_prompt_embedding,
    parameter_counts,
    save_prompt_embedding,
)
from vidihand_ros.model.config import (
    BackboneConfig,
    DecoderConfig,
    ViDiHandConfig,
    preset,
    preset_names,
)
from vidihand_ros.model.features import Features, extract_features, latent_frame_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread (and much faster on a busy CI machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_in_context() -> BackboneConfig:
    """The tiny config as a plain Wan transformer with in-context conditioning and LoRA."""
    base = preset("tiny").backbone.to_dict()
    tf = dict(base["transformer"])
    tf.pop("vace_layers")
    tf.pop("vace_in_channels")
    base.update(transformer=tf, conditioning="in_context", trainable="lora", kind="tiny-in-context")
    return BackboneConfig.from_dict(base)


# Configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", preset_names())
def test_presets_round_trip_json_and_match_the_config_files(name: str) -> None:
    config = preset(name)
    again = ViDiHandConfig.from_json(config.to_json())
    assert again == config
    on_disk = ViDiHandConfig.from_json(REPO / "config" / "model" / f"{name}.json")
    assert on_disk == config, "config/model is stale: rerun write_preset_files('config/model')"
    assert preset(str(REPO / "config" / "model" / f"{name}.json")) == config


def test_published_configs_are_the_public_wan_configs() -> None:
    vace = preset("wan21-vace-1.3b")
    tf = vace.backbone.transformer
    assert (tf["num_layers"], vace.backbone.width, tf["num_attention_heads"], tf["ffn_dim"]) == (
        30,
        1536,
        12,
        8960,
    )
    assert tf["vace_layers"] == list(range(0, 30, 2)) and tf["vace_in_channels"] == 96
    assert (tf["in_channels"], tf["text_dim"], tf["patch_size"]) == (16, 4096, [1, 2, 2])
    assert vace.backbone.vae_scale == (4, 8, 8) and vace.latent_frames == 21
    assert (vace.backbone.feature_layer, vace.backbone.tau) == (15, 0.7)
    five = preset("wan22-5b-lora").backbone
    assert five.conditioning == "in_context" and five.trainable == "lora"
    assert (five.width, five.num_layers, five.latent_channels, five.vae_scale) == (3072, 30, 48, (4, 16, 16))


def test_config_validation_names_the_problem() -> None:
    good = preset("tiny").backbone.to_dict()
    with pytest.raises(InputError, match="feature_layer"):
        BackboneConfig.from_dict({**good, "feature_layer": 6})
    with pytest.raises(InputError, match="vace_in_channels"):
        BackboneConfig.from_dict({**good, "transformer": {**good["transformer"], "vace_in_channels": 96}})
    with pytest.raises(InputError, match="unknown backbone config keys: colour"):
        BackboneConfig.from_dict({**good, "colour": "red"})
    with pytest.raises(InputError, match="window"):
        ViDiHandConfig.from_dict({**preset("tiny").to_dict(), "window": 10})


@pytest.mark.parametrize("name", preset_names())
def test_the_decoder_is_a_typed_part_of_the_model_config(name: str) -> None:
    config = preset(name)
    expected = DecoderConfig.tiny if name == "tiny" else DecoderConfig.default
    assert config.decoder == expected(config.backbone.width)
    # Configs and checkpoints written before the decoder was typed hold `"decoder": {}`.
    legacy = {**config.to_dict(), "decoder": {}}
    assert ViDiHandConfig.from_dict(legacy) == config
    legacy.pop("decoder")
    assert ViDiHandConfig.from_dict(legacy) == config
    with pytest.raises(InputError, match="feature_dim"):
        ViDiHandConfig.from_dict({**config.to_dict(), "decoder": DecoderConfig.tiny(8).to_dict()})
    with pytest.raises(InputError, match="decoder"):
        ViDiHandConfig.from_dict({**config.to_dict(), "decoder": {"colour": "red"}})


# Parameter counts on the meta device ---------------------------------------------------------


def test_full_size_wan21_vace_counts_on_meta_device() -> None:
    backbone = build_backbone(preset("wan21-vace-1.3b"), empty=True)
    assert next(backbone.transformer.parameters()).device.type == "meta"
    counts = parameter_counts(backbone)
    # Published: ≈ 1.42 B base + ≈ 0.73 B VACE (exactly 1 418 996 800 + 734 975 232 here).
    assert counts.base == pytest.approx(1.42e9, rel=0.01)
    assert counts.vace == pytest.approx(0.73e9, rel=0.01)
    assert counts.lora == 0
    assert counts.trainable == counts.vace
    assert counts.vae == pytest.approx(127e6, rel=0.01)


def test_full_size_wan22_5b_lora_counts_on_meta_device() -> None:
    backbone = build_backbone(preset("wan22-5b-lora"), empty=True)
    counts = parameter_counts(backbone)
    assert counts.base == pytest.approx(5.0e9, rel=0.01)
    assert counts.vace == 0
    # rank 32 on q, k, v, o of both attentions in 30 blocks of width 3072: 30·8·2·32·3072.
    assert counts.lora == 30 * 8 * 2 * 32 * 3072
    assert counts.trainable == counts.lora


# Freezing ------------------------------------------------------------------------------------


def test_base_and_vae_frozen_vace_branch_trainable() -> None:
    backbone = build_backbone(preset("tiny"), seed=0)
    for name, p in backbone.transformer.named_parameters():
        assert p.requires_grad == name.startswith(("vace_blocks.", "vace_patch_embedding.")), name
    assert not any(p.requires_grad for p in backbone.vae.parameters())
    assert set(backbone.trainable_state_dict()) == {
        n
        for n, _ in backbone.named_parameters()
        if n.startswith(("transformer.vace_blocks", "transformer.vace_patch"))
    }


def test_lora_variant_trains_only_adapters() -> None:
    backbone = build_backbone(tiny_in_context(), seed=0)
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # LoRA on q, k, v, out of both attentions of all 6 blocks: 6·8 adapters × (A and B).
    assert len(trainable) == 6 * 8 * 2
    lora_vace = preset("tiny").backbone.to_dict() | {"trainable": "lora"}
    vace_backbone = build_backbone(BackboneConfig.from_dict(lora_vace), seed=0)
    names = [n for n, p in vace_backbone.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert any(".vace_blocks." in n for n in names) and any(".blocks." in n for n in names)


def test_bfloat16_keeps_diffusers_fp32_modules() -> None:
    cfg = BackboneConfig.from_dict(preset("tiny").backbone.to_dict() | {"dtype": "bfloat16"})
    backbone = build_backbone(cfg, seed=0)
    tf: Any = backbone.transformer
    assert tf.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert tf.blocks[0].scale_shift_table.dtype == torch.float32
    assert tf.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
    video = torch.randint(0, 256, (1, 3, 9, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        feats = extract_features(backbone, video, generator=torch.Generator().manual_seed(0))
    assert feats.tokens.dtype == torch.bfloat16 and torch.isfinite(feats.tokens.float()).all()


# The pass ------------------------------------------------------------------------------------


def test_velocity_equals_the_diffusers_forward() -> None:
    backbone = build_backbone(preset("tiny"), seed=0)
    video = torch.rand(2, 3, 9, 32, 32) * 2 - 1
    latents = backbone.encode(video)
    context = backbone.context(video, latents)
    assert latents.shape == (2, 4, 3, 4, 4) and context is not None and context.shape == (2, 72, 3, 4, 4)
    sigma = torch.tensor([0.25, 0.9])
    with torch.no_grad():
        ours = backbone.velocity(latents, sigma, context)
        ref = backbone.transformer(
            hidden_states=latents,
            timestep=sigma * 1000,
            encoder_hidden_states=backbone.prompt(2),
            control_hidden_states=context,
        ).sample
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_in_context_velocity_equals_diffusers_with_per_token_timesteps() -> None:
    backbone = build_backbone(tiny_in_context(), seed=0)
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    latents = backbone.encode(video)
    context = backbone.context(video, latents)
    assert context is not None and torch.equal(context, latents)
    sigma = torch.tensor([0.6])
    with torch.no_grad():
        ours = backbone.velocity(latents, sigma, context)
        tokens = 3 * 2 * 2
        t = torch.cat([torch.zeros(1, tokens), torch.full((1, tokens), 600.0)], 1)
        ref = backbone.transformer(
            hidden_states=torch.cat([context, latents], 2),
            timestep=t,
            encoder_hidden_states=backbone.prompt(1),
        ).sample[:, :, 3:]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_values_and_gradients() -> None:
    outputs = []
    for checkpointing in (False, True):
        cfg = BackboneConfig.from_dict(
            preset("tiny").backbone.to_dict() | {"gradient_checkpointing": checkpointing}
        )
        backbone = build_backbone(cfg, seed=0).train()
        video = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
        latents = backbone.encode(video)
        v = backbone.velocity(latents, torch.tensor([0.5]), backbone.context(video, latents))
        v.square().mean().backward()
        grad = backbone.transformer.vace_patch_embedding.weight.grad
        assert grad is not None
        outputs.append((v.detach(), grad.clone()))
    torch.testing.assert_close(outputs[0][0], outputs[1][0])
    torch.testing.assert_close(outputs[0][1], outputs[1][1])


def _count_calls(modules: torch.nn.ModuleList) -> list[int]:
    counts = [0] * len(modules)
    for i, module in enumerate(modules):
        module.register_forward_hook(lambda _m, _i, _o, i=i: counts.__setitem__(i, counts[i] + 1))
    return counts


@pytest.mark.parametrize("video_dtype", [torch.uint8, torch.float32])
def test_extract_features_shapes_and_truncation(video_dtype: torch.dtype) -> None:
    backbone = build_backbone(preset("tiny"), seed=0)
    base_calls = _count_calls(backbone.transformer.blocks)
    vace_calls = _count_calls(backbone.transformer.vace_blocks)
    video = torch.randint(0, 256, (2, 3, 9, 32, 32), dtype=torch.uint8)
    if video_dtype == torch.float32:
        video = video.float() / 127.5 - 1
    with torch.inference_mode():
        feats = extract_features(backbone, video, generator=torch.Generator().manual_seed(0))
    assert isinstance(feats, Features)
    assert feats.tokens.shape == (2, 3, 2, 2, 32) and feats.tokens.dtype == torch.float32
    assert (feats.num_frames, feats.image_size, feats.patch, feats.vae_scale) == (
        9,
        (32, 32),
        (1, 2, 2),
        (4, 8, 8),
    )
    assert (feats.tau, feats.layer, feats.grid, feats.pixels_per_token) == (0.7, 3, (3, 2, 2), (16, 16))
    assert feats.frames_per_latent == (1, 4, 4)
    assert [feats.token_frame_of(t) for t in range(9)] == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    # Feature layer 3: blocks 0-3 ran once, 4-5 never; VACE blocks of layers 0 and 2 ran, layer 4's not.
    assert base_calls == [1, 1, 1, 1, 0, 0]
    assert vace_calls == [1, 1, 0]


def test_features_are_block_L_of_the_full_forward() -> None:
    backbone = build_backbone(preset("tiny"), seed=0)
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    captured: list[torch.Tensor] = []
    backbone.transformer.blocks[3].register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        feats = extract_features(backbone, video, tau=0.4, generator=torch.Generator().manual_seed(5))
        latents = backbone.encode(video)
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(5))
        noisy = 0.6 * latents + 0.4 * noise
        backbone.transformer(
            hidden_states=noisy,
            timestep=torch.tensor([400.0]),
            encoder_hidden_states=backbone.prompt(1),
            control_hidden_states=backbone.context(video, latents),
        )
    torch.testing.assert_close(feats.tokens.reshape(1, -1, 32), captured[-1], rtol=1e-5, atol=1e-6)


def test_in_context_features_drop_the_context_tokens() -> None:
    backbone = build_backbone(tiny_in_context(), seed=0)
    calls = _count_calls(backbone.transformer.blocks)
    with torch.no_grad():
        feats = extract_features(backbone, torch.rand(2, 3, 5, 32, 64) * 2 - 1, layer=1)
    assert feats.tokens.shape == (2, 2, 2, 4, 32)
    assert calls == [1, 1, 0, 0, 0, 0]


def test_bad_video_is_rejected() -> None:
    backbone = build_backbone(preset("tiny"), seed=0)
    with pytest.raises(InputError, match="1 \\+ 4"):
        extract_features(backbone, torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(InputError, match="token size"):
        extract_features(backbone, torch.zeros(1, 3, 9, 24, 32))
    assert [latent_frame_of(t) for t in (0, 1, 4, 5, 80)] == [0, 1, 1, 2, 20]


# Weights -------------------------------------------------------------------------------------


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_load_pretrained_from_a_diffusers_directory(tmp_path: Path) -> None:
    source = build_backbone(preset("tiny"), seed=0)
    source.transformer.save_pretrained(tmp_path / "transformer", safe_serialization=True)
    source.vae.save_pretrained(tmp_path / "vae", safe_serialization=True)
    assert not list(tmp_path.rglob("*.bin"))

    other = build_backbone(preset("tiny"), seed=1)
    report = load_pretrained(other, tmp_path)
    assert report.loaded["transformer"] == len(source.transformer.state_dict())
    _assert_same_weights(other.transformer, source.transformer)
    _assert_same_weights(other.vae, source.vae)

    built = build_backbone(preset("tiny"), pretrained=tmp_path)
    _assert_same_weights(built.transformer, source.transformer)
    _assert_same_weights(built.vae, source.vae)
    assert sum(p.numel() for p in built.parameters() if p.requires_grad) == parameter_counts(source).vace

    # The base weights also load under LoRA wrappers (`base_layer`), adapters untouched.
    lora_cfg = BackboneConfig.from_dict(preset("tiny").backbone.to_dict() | {"trainable": "lora"})
    lora = build_backbone(lora_cfg, seed=3)
    load_pretrained(lora, tmp_path / "transformer")
    lora_tf: Any = lora.transformer
    source_tf: Any = source.transformer
    torch.testing.assert_close(
        lora_tf.blocks[0].attn1.to_q.base_layer.weight, source_tf.blocks[0].attn1.to_q.weight
    )


def test_load_pretrained_from_safetensors_files_and_refusals(tmp_path: Path) -> None:
    source = build_backbone(preset("tiny"), seed=0)
    combined = {f"transformer.{k}": v for k, v in source.transformer.state_dict().items()}
    combined |= {f"vae.{k}": v for k, v in source.vae.state_dict().items()}
    save_file({k: v.contiguous() for k, v in combined.items()}, str(tmp_path / "all.safetensors"))
    other = build_backbone(preset("tiny"), seed=1)
    load_pretrained(other, tmp_path / "all.safetensors")
    _assert_same_weights(other.transformer, source.transformer)
    _assert_same_weights(other.vae, source.vae)

    (tmp_path / "model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(InputError, match="pickle"):
        load_pretrained(other, tmp_path / "model.bin")
    # Weights of another architecture are refused by their config.json.
    wrong = tmp_path / "wrong" / "transformer"
    source.transformer.save_pretrained(wrong, safe_serialization=True)
    config = json.loads((wrong / "config.json").read_text())
    config["num_layers"] = 7
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="num_layers"):
        load_pretrained(other, wrong.parent)
    # Incomplete weights are refused rather than half-loaded.
    partial = {
        k: v.contiguous() for k, v in source.transformer.state_dict().items() if not k.startswith("blocks.5.")
    }
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(InputError, match="lack"):
        load_pretrained(other, tmp_path / "partial.safetensors")


def test_prompt_embedding_from_safetensors(tmp_path: Path) -> None:
    cfg = preset("tiny").backbone
    emb = torch.randn(1, 5, cfg.text_dim)
    path = save_prompt_embedding(tmp_path / "prompt.safetensors", emb)
    loaded = load_prompt_embedding(path, cfg)
    assert loaded.shape == (1, cfg.prompt_length, cfg.text_dim)
    torch.testing.assert_close(loaded[:, :5], emb)
    assert torch.count_nonzero(loaded[:, 5:]) == 0
    with_path = BackboneConfig.from_dict(cfg.to_dict() | {"prompt_embedding_path": str(path)})
    backbone = build_backbone(with_path, seed=0)
    torch.testing.assert_close(backbone.prompt(2)[1], loaded[0])
    with pytest.raises(InputError, match="text_dim"):
        build_backbone(cfg, prompt_embedding=torch.randn(1, 4, 7))
