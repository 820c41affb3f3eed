"""The ViDiHand model for inference: a Wan video-diffusion backbone and a pose decoder.

- `config`   — dataclasses and named presets (`tiny`, `wan21-vace-1.3b`, `wan22-5b-lora`); JSON.
- `backbone` — the diffusers transformer + VAE, truncated after the feature block.
- `flow`     — the flow-matching noise schedule.
- `features` — one window of video → block-L hidden states at noise level τ (`Features`).
- `decoder`, `ray_encoding`, `rotations` — the pose decoder and its parts.
- `vidihand` — backbone + decoder (`ViDiHand`): build, save and load a model checkpoint.
- `checkpoint` — the safetensors + JSON checkpoint format (never pickles).

Training lives in `vidihand_ros.training`, the estimator in `vidihand_ros.estimators.vidihand`.
This `__init__` and `config` import no torch; the rest needs the `[model]` extra. See docs/model.md.
"""

from __future__ import annotations

from vidihand_ros.model.config import (
    BackboneConfig,
    DecoderConfig,
    LoraSettings,
    ViDiHandConfig,
    preset,
    preset_names,
)

__all__ = [
    "BackboneConfig",
    "DecoderConfig",
    "LoraSettings",
    "ViDiHandConfig",
    "preset",
    "preset_names",
]
