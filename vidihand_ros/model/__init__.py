"""The ViDiHand model: a Wan video-diffusion backbone, hand-overlay adaptation and a pose decoder.

Module map (one job each):

- `config`      — dataclasses and named presets (`tiny`, `wan21-vace-1.3b`, `wan22-5b-lora`); JSON.
- `backbone`    — builds the diffusers transformer + VAE from a config, freezes the base, adds the
                  trainable part (VACE branch or LoRA), loads local safetensors weights, and runs the
                  transformer up to a chosen block.
- `flow`        — the flow-matching noise schedule shared by feature extraction and training.
- `features`    — one window of video → block-L hidden states at noise level τ (`Features`).
- `overlay`     — numpy/OpenCV renderer of semi-transparent skeleton / MANO-mesh hand overlays.
- `synthetic`   — a tiny synthetic "moving blob hands" set for tests and smoke runs.
- `adaptation`  — the hand-overlay flow-matching objective and its resumable training loop.
- `checkpoint`  — safetensors + JSON checkpoints (never pickles).
- `training`    — the resumable loop shared by adaptation and decoder training (`Trainer`: resume,
                  checkpoint with retention, step loop).
- `decoder`, `losses`, `ray_encoding`, `rotations` — the pose decoder and its parts.
- `train_decoder` — decoder training on precomputed features (`DecoderExample`, `DecoderTrainer`).
- `training_windows` — a ground-truth Zarr dataset → model-sized windows: `OverlayWindow`s for
                  adaptation, `DecoderTargets` and precomputed decoder examples.
- `train_cli`   — `vidihand train adapt|decoder` (the parser builds without torch).

This package `__init__` imports nothing heavy: `config`, `overlay` and `synthetic` work without
torch; the other modules need the `[model]` extra (torch, diffusers, peft, safetensors).
"""

from __future__ import annotations

from vidihand_ros.model.config import (
    AdaptationConfig,
    BackboneConfig,
    LoraSettings,
    ViDiHandConfig,
    preset,
    preset_names,
)

__all__ = [
    "AdaptationConfig",
    "BackboneConfig",
    "LoraSettings",
    "ViDiHandConfig",
    "preset",
    "preset_names",
]
