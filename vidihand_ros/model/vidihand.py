"""The whole ViDiHand model (backbone + pose decoder) and its checkpoint directory.

A checkpoint is what `vidihand model init` writes and the estimator loads: `model.safetensors`
(backbone and decoder tensors, keys prefixed `backbone.` / `decoder.`) and `state.json` (the
`ViDiHandConfig`, the decoder's config, the step), via `model.checkpoint`, so loading never
unpickles. MANO is not part of it (licensed): the user's MANO files are attached at load time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidihand_ros.errors import InputError
from vidihand_ros.mano.layer import ManoLayer, load_mano_layers
from vidihand_ros.model.backbone import Backbone, build_backbone
from vidihand_ros.model.checkpoint import MODEL_FILE, STATE_FILE, Checkpoint, load_checkpoint, save_checkpoint
from vidihand_ros.model.config import DecoderConfig, ViDiHandConfig, preset
from vidihand_ros.model.decoder import DecoderOutput, PoseDecoder
from vidihand_ros.model.features import Features, extract_features

CHECKPOINT_KIND = "vidihand"
PROMPT_KEY = "prompt_embedding"


class ViDiHand(nn.Module):
    """Video window + intrinsics → both hands' MANO, joints and metric translation per frame."""

    def __init__(self, config: ViDiHandConfig, backbone: Backbone, decoder: PoseDecoder) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.decoder = decoder

    def features(self, video: Tensor, *, seed: int = 0) -> Features:
        """Block-L features; the noise is seeded so overlapping windows see the same noise."""
        generator = torch.Generator(device=self.backbone.device).manual_seed(seed)
        return extract_features(self.backbone, video, generator=generator)

    def forward(self, video: Tensor, K: Tensor, *, seed: int = 0) -> DecoderOutput:
        """video (B, 3, T, H, W) uint8 or [−1, 1] at `config.image_size`; K (B, 3, 3) for that size."""
        with torch.no_grad():
            features = self.features(video, seed=seed)
        return self.decoder(features, K.to(torch.float32))


def build_model(
    config: ViDiHandConfig | str,
    *,
    mano: Mapping[str, ManoLayer] | None = None,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    pretrained: str | Path | None = None,
) -> ViDiHand:
    """A model from a config or preset name: random weights (tests, `model init`, benchmarks), or
    the backbone's from a local diffusers folder / safetensors (`pretrained`)."""
    cfg = preset(config) if isinstance(config, str) else config
    backbone = build_backbone(cfg, device=device, seed=seed, pretrained=pretrained)
    decoder = PoseDecoder(cfg.decoder, mano).to(device)
    return ViDiHand(cfg, backbone, decoder).eval()


def save_model(model: ViDiHand, directory: str | Path, *, step: int = 0) -> Path:
    config = {"model": model.config.to_dict(), "decoder": model.decoder.config.to_dict()}
    state = {
        **{f"backbone.{k}": v for k, v in model.backbone.state_dict().items()},
        **{f"decoder.{k}": v for k, v in model.decoder.state_dict().items()},
        # The fixed text conditioning travels with the weights, so a checkpoint is self-contained.
        PROMPT_KEY: model.backbone.prompt_embedding,
    }
    return save_checkpoint(directory, state, step, config, extra={"kind": CHECKPOINT_KIND})


def load_model(
    directory: str | Path, *, mano_dir: str | Path | None = None, device: torch.device | str = "cpu"
) -> ViDiHand:
    """Load a checkpoint directory (safetensors + JSON); attach the user's MANO layers if given.

    A config that does not match the tensors is refused before anything of its size is allocated:
    the model is first built on the meta device and its shapes compared with the file's.
    """
    ckpt = load_checkpoint(directory, device=device)
    cfg = _checkpoint_config(ckpt)
    parts = {
        prefix: {k[len(prefix) :]: v for k, v in ckpt.model_state.items() if k.startswith(prefix)}
        for prefix in ("backbone.", "decoder.")
    }
    _check_against_meta_build(cfg, parts, Path(directory) / MODEL_FILE)
    backbone = build_backbone(cfg, empty=True)
    decoder = PoseDecoder(cfg.decoder)
    for prefix, module in (("backbone.", backbone), ("decoder.", decoder)):
        try:
            module.load_state_dict(parts[prefix], strict=True, assign=True)
        except RuntimeError as err:
            raise InputError(
                f"checkpoint does not match its config: {err}".splitlines()[0], source=directory
            ) from err
    _restore_buffers(backbone, ckpt.model_state.get(PROMPT_KEY))
    model = ViDiHand(cfg, backbone, decoder).to(device).eval()
    if mano_dir is not None:
        model.decoder.attach_mano(load_mano_layers(mano_dir))
        model.decoder.to(device)
    return model


#: Config numbers above this are not a model we can build (the largest preset's is 14336).
MAX_CONFIG_NUMBER = 1 << 16
#: Non-persistent buffers (rotary tables, offsets) a config may make us compute.
MAX_BUFFER_BYTES = 256 * 1024 * 1024


def _checkpoint_config(ckpt: Checkpoint) -> ViDiHandConfig:
    """The ViDiHandConfig in state.json; any wrong key, type or value is an InputError naming it."""
    state_path = ckpt.path / STATE_FILE
    if ckpt.extra.get("kind") != CHECKPOINT_KIND or not isinstance(ckpt.config.get("model"), dict):
        raise InputError(
            "not a ViDiHand checkpoint (expected `vidihand model init` layout)", source=state_path
        )
    _check_config_numbers(ckpt.config, "config", len(ckpt.model_state), state_path)
    try:
        # The decoder's own entry is authoritative (checkpoints from before the model config held
        # a typed decoder have an empty one there).
        cfg = ViDiHandConfig.from_dict(ckpt.config["model"])
        decoder = ckpt.config.get("decoder")
        if not isinstance(decoder, dict):
            raise InputError("must be an object", field="config.decoder")
        return replace(cfg, decoder=DecoderConfig.from_dict(decoder))
    except InputError as err:
        raise replace(err, source=state_path) from err
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        kind = "missing entry" if isinstance(err, KeyError) else type(err).__name__
        raise InputError(f"bad model config ({kind}: {err})", source=state_path) from err


def _check_config_numbers(value: Any, where: str, tensors: int, source: Path) -> None:
    """Sizes in a config are bounded before anything is built from them: numbers by
    MAX_CONFIG_NUMBER, counts of layers/blocks and lists by the tensors in the file (every layer has
    weights there), floats finite."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_config_numbers(item, f"{where}.{key}", tensors, source)
        return
    if isinstance(value, list):
        if len(value) > max(64, tensors):
            raise InputError(f"{len(value)} entries is too many", source=source, field=where)
        for i, item in enumerate(value):
            _check_config_numbers(item, f"{where}[{i}]", tensors, source)
        return
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{value} is not a finite number", source=source, field=where)
    if isinstance(value, int):
        name = where.rsplit(".", 1)[-1]
        if "layer" in name or "block" in name:
            limit, why = max(64, tensors), f"more than the {tensors} tensors in {MODEL_FILE} allow"
        else:
            limit, why = MAX_CONFIG_NUMBER, f"outside ±{MAX_CONFIG_NUMBER}"
        if abs(value) > limit:
            raise InputError(f"{value} is {why}", source=source, field=where)


def _check_against_meta_build(cfg: ViDiHandConfig, parts: dict[str, dict[str, Tensor]], source: Path) -> None:
    """Build the model on the meta device (no memory) and compare it with the file's tensors."""
    with torch.device("meta"):
        probes = {"backbone.": build_backbone(cfg, empty=True), "decoder.": PoseDecoder(cfg.decoder)}
    for prefix, probe in probes.items():
        expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in parts[prefix].items()}
        missing = sorted(expected.keys() - found.keys())
        extra = sorted(found.keys() - expected.keys())
        wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
        if missing or extra or wrong:
            detail = (
                f"missing {prefix}{missing[0]}"
                if missing
                else f"unexpected {prefix}{extra[0]}"
                if extra
                else f"{prefix}{wrong[0]} has shape {found[wrong[0]]}, the config needs {expected[wrong[0]]}"
            )
            count = len(missing) + len(extra) + len(wrong)
            raise InputError(
                f"checkpoint does not match its config: {detail} ({count} tensors differ)", source=source
            )
        buffers = sum(b.numel() * b.element_size() for b in probe.buffers())
        if buffers > MAX_BUFFER_BYTES:
            raise InputError(
                f"the config asks for {buffers} bytes of computed {prefix[:-1]} buffers", source=source
            )


def _restore_buffers(backbone: Backbone, prompt: Tensor | None) -> None:
    """Rebuild the non-persistent buffers that a meta-device build leaves empty: the latent
    normalisation (from the VAE config) and the prompt embedding (stored in the checkpoint)."""
    cfg = backbone.config
    z = cfg.latent_channels
    for name in ("latents_mean", "latents_std"):
        values = torch.tensor(backbone.vae.config[name], dtype=torch.float32).view(1, z, 1, 1, 1)
        setattr(backbone, name, values)
    if prompt is None:
        prompt = torch.zeros(1, cfg.prompt_length, cfg.text_dim)
    backbone.prompt_embedding = prompt.float()


def checkpoint_sha256(directory: str | Path) -> str:
    """sha256 of the weights file: the provenance a dataset records for its poses."""
    digest = hashlib.sha256()
    with open(Path(directory) / MODEL_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
