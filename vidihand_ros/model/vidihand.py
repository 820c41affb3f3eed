"""The whole ViDiHand model (backbone + pose decoder) and its checkpoint directory.

A checkpoint is what `vidihand model init` writes and the estimator loads: `model.safetensors`
(backbone and decoder tensors, keys prefixed `backbone.` / `decoder.`) and `state.json` (the
`ViDiHandConfig`, the decoder's config, the step), via `model.checkpoint`, so loading never
unpickles. MANO is not part of it (licensed): the user's MANO files are attached at load time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from vidihand_ros.errors import InputError
from vidihand_ros.mano.layer import ManoLayer, load_mano_layers
from vidihand_ros.model.backbone import Backbone, build_backbone
from vidihand_ros.model.checkpoint import MODEL_FILE, load_checkpoint, save_checkpoint
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
    """Load a checkpoint directory (safetensors + JSON); attach the user's MANO layers if given."""
    ckpt = load_checkpoint(directory, device=device)
    if ckpt.extra.get("kind") != CHECKPOINT_KIND or "model" not in ckpt.config:
        raise InputError(
            "not a ViDiHand checkpoint (expected `vidihand model init` layout)", source=directory
        )
    # The decoder's own entry is authoritative (checkpoints from before the model config held a
    # typed decoder have an empty one there).
    cfg = ViDiHandConfig.from_dict(ckpt.config["model"])
    cfg = replace(cfg, decoder=DecoderConfig.from_dict(ckpt.config["decoder"]))
    backbone = build_backbone(cfg, empty=True)
    decoder = PoseDecoder(cfg.decoder)
    for prefix, module in (("backbone.", backbone), ("decoder.", decoder)):
        part = {k[len(prefix) :]: v for k, v in ckpt.model_state.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part, strict=True, assign=True)
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
