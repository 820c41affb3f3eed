"""Configuration of the ViDiHand model (backbone, pose decoder, window geometry) and its presets.

Dataclasses of plain values and no torch, so that a checkpoint's JSON config can be read before
deciding to import torch, and the two published backbones are one config apart, not one code path
apart. Why each choice is a value here, and what the presets are: docs/model.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from vidihand_ros.errors import InputError

__all__ = [
    "BackboneConfig",
    "DecoderConfig",
    "LoraSettings",
    "ViDiHandConfig",
    "preset",
    "preset_names",
    "write_preset_files",
]

Conditioning = Literal["vace", "in_context", "none"]
Trainable = Literal["vace", "lora", "none"]
VaceMask = Literal["ones", "zeros"]
DTypeName = Literal["float32", "bfloat16", "float16"]

_CONDITIONINGS = ("vace", "in_context", "none")
_TRAINABLES = ("vace", "lora", "none")
_DTYPES = ("float32", "bfloat16", "float16")

#: Text-encoder width of every Wan model (umT5-XXL) and the pipelines' padded prompt length.
WAN_TEXT_DIM = 4096
WAN_PROMPT_LENGTH = 512


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown {where} config keys: {', '.join(unknown)}")


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA on the transformer's attention projections (used when `trainable == "lora"`).

    `targets` are module-name suffixes as peft matches them; the defaults are the query, key, value
    and output projections of every self- and cross-attention (`WanAttention`) in diffusers' Wan.
    """

    rank: int = 32
    alpha: int = 32
    dropout: float = 0.0
    targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoraSettings:
        _check_keys(cls, data, "lora")
        d = dict(data)
        if "targets" in d:
            d["targets"] = tuple(str(t) for t in d["targets"])
        return cls(**d)


@dataclass(frozen=True)
class BackboneConfig:
    """The video-diffusion backbone: which diffusers models, with which sizes, read where.

    Attributes:
        kind: a label for reports and checkpoints ("wan21-vace", "wan22-ti2v-lora", "tiny", …).
        transformer: keyword arguments of `WanVACETransformer3DModel` (`conditioning == "vace"`)
            or `WanTransformer3DModel` (otherwise), exactly as in a diffusers `config.json`.
        vae: keyword arguments of `AutoencoderKLWan`.
        conditioning: how the raw video conditions the transformer — "vace" (VACE context),
            "in_context" (clean latents prepended along time at timestep 0) or "none" (features
            from the noised raw latents only; the adaptation objective needs a conditioning).
        vace_mask: the VACE mask for the raw video. "ones" mirrors `WanVACEPipeline(video=…)`
            without a mask: the video is a control signal and every pixel may change (this is
            what generating an *overlaid* copy of the video asks for). "zeros" marks every pixel
            as "keep" (the pipeline's inpainting semantics).
        feature_layer: L, the transformer block whose output is the feature (blocks > L never run
            at inference).
        tau: normalised noise level of the single feature pass (σ before `shift`, see `flow`).
        shift: the flow-matching time shift applied to τ (1.0 = σ is τ).
        trainable: "vace" (VACE blocks + VACE patch embedding), "lora" or "none".
        lora: LoRA settings when `trainable == "lora"`.
        prompt_embedding_path: a safetensors file with the fixed prompt embedding (umT5 output,
            (1, S, text_dim) or (S, text_dim)); None = zeros, i.e. an empty prompt.
        prompt_length: tokens of the prompt embedding after zero padding (Wan pads to 512).
        dtype: transformer parameter dtype; modules diffusers keeps in float32 stay float32.
        vae_dtype: VAE parameter dtype.
        gradient_checkpointing: recompute blocks in backward (training the full-size model).
    """

    kind: str
    transformer: dict[str, Any]
    vae: dict[str, Any]
    conditioning: Conditioning = "vace"
    vace_mask: VaceMask = "ones"
    feature_layer: int = 15
    tau: float = 0.7
    shift: float = 1.0
    trainable: Trainable = "vace"
    lora: LoraSettings = field(default_factory=LoraSettings)
    prompt_embedding_path: str | None = None
    prompt_length: int = WAN_PROMPT_LENGTH
    dtype: DTypeName = "float32"
    vae_dtype: DTypeName = "float32"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.conditioning not in _CONDITIONINGS:
            raise InputError(f"conditioning must be one of {_CONDITIONINGS}, not {self.conditioning!r}")
        if self.trainable not in _TRAINABLES:
            raise InputError(f"trainable must be one of {_TRAINABLES}, not {self.trainable!r}")
        if self.vace_mask not in ("ones", "zeros"):
            raise InputError(f"vace_mask must be 'ones' or 'zeros', not {self.vace_mask!r}")
        for name in ("dtype", "vae_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise InputError(f"{name} must be one of {_DTYPES}, not {getattr(self, name)!r}")
        has_vace = "vace_layers" in self.transformer
        if (self.conditioning == "vace") != has_vace:
            raise InputError(
                "conditioning 'vace' needs a VACE transformer config (with 'vace_layers') and the "
                "other conditionings a plain one"
            )
        if self.trainable == "vace" and not has_vace:
            raise InputError("trainable 'vace' needs a VACE transformer; use 'lora' for a plain one")
        if not 0 <= self.feature_layer < self.num_layers:
            raise InputError(f"feature_layer {self.feature_layer} outside 0..{self.num_layers - 1}")
        if not 0.0 <= self.tau <= 1.0:
            raise InputError(f"tau must lie in [0, 1], got {self.tau}")
        if self.shift <= 0:
            raise InputError(f"shift must be positive, got {self.shift}")
        if int(self.transformer.get("in_channels", 16)) != self.latent_channels:
            raise InputError(
                f"transformer in_channels {self.transformer.get('in_channels')} != VAE z_dim "
                f"{self.latent_channels}"
            )
        if has_vace and self.vace_in_channels != 2 * self.latent_channels + self.mask_channels:
            raise InputError(
                f"vace_in_channels {self.vace_in_channels} != 2 × z_dim + mask channels "
                f"({2 * self.latent_channels} + {self.mask_channels})"
            )

    # Derived sizes -------------------------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return int(self.transformer.get("num_layers", 40))

    @property
    def width(self) -> int:
        """Hidden size of the transformer tokens (heads × head dim)."""
        return int(self.transformer.get("num_attention_heads", 40)) * int(
            self.transformer.get("attention_head_dim", 128)
        )

    @property
    def text_dim(self) -> int:
        return int(self.transformer.get("text_dim", WAN_TEXT_DIM))

    @property
    def patch_size(self) -> tuple[int, int, int]:
        p = self.transformer.get("patch_size", (1, 2, 2))
        return (int(p[0]), int(p[1]), int(p[2]))

    @property
    def vace_layers(self) -> tuple[int, ...]:
        return tuple(int(i) for i in self.transformer.get("vace_layers", ()))

    @property
    def vace_in_channels(self) -> int:
        return int(self.transformer.get("vace_in_channels", 96))

    @property
    def latent_channels(self) -> int:
        return int(self.vae.get("z_dim", 16))

    @property
    def vae_scale(self) -> tuple[int, int, int]:
        """(temporal, height, width) compression of the VAE: T = 1 + 4·(F - 1), H = 8·h (Wan2.1)."""
        t = int(self.vae.get("scale_factor_temporal", 4))
        s = int(self.vae.get("scale_factor_spatial", 8))
        return (t, s, s)

    @property
    def mask_channels(self) -> int:
        """Channels of the VACE mask latent: one per pixel of a VAE cell (8 × 8 = 64 for Wan2.1)."""
        return self.vae_scale[1] * self.vae_scale[2]

    @property
    def pixels_per_token(self) -> tuple[int, int]:
        return (self.vae_scale[1] * self.patch_size[1], self.vae_scale[2] * self.patch_size[2])

    # JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["lora"] = self.lora.to_dict()
        d["transformer"] = json.loads(json.dumps(self.transformer))
        d["vae"] = json.loads(json.dumps(self.vae))
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackboneConfig:
        _check_keys(cls, data, "backbone")
        d = dict(data)
        if "lora" in d:
            d["lora"] = LoraSettings.from_dict(d["lora"])
        d["transformer"] = dict(d.get("transformer", {}))
        d["vae"] = dict(d.get("vae", {}))
        return cls(**d)


@dataclass
class DecoderConfig:
    """Sizes of the pose decoder. `tiny()` for tests, `default()` for the 1536-wide Wan2.1 features."""

    #: Channel width C of the backbone tokens.
    feature_dim: int = 1536
    #: Decoder width.
    dim: int = 512
    heads: int = 8
    #: Spatial decoder layers (memory cross-attention + hand/joint fusion + FFN).
    layers: int = 4
    #: Temporal self-attention layers over the window, per hand token and per joint token.
    temporal_layers: int = 2
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    #: Fourier bands of the ray positional encoding.
    ray_bands: int = 8
    #: Width of the per-pixel heatmap features and joint embeddings.
    heatmap_dim: int = 64
    #: The heatmap grid is the token grid × this factor (pixel shuffle).
    heatmap_upsample: int = 2
    #: Video frames per token frame after the first (VAE time stride × temporal patch): 4 for Wan.
    frames_per_token: int = 4
    #: Depth range (m) in which a WLS translation is trusted; outside it the log-depth head is used.
    min_depth: float = 0.05
    max_depth: float = 5.0
    #: Root depth (m) the log-depth head predicts at initialisation.
    init_depth: float = 0.5

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.heatmap_upsample < 1 or self.frames_per_token < 1:
            raise ValueError("heatmap_upsample and frames_per_token must be ≥ 1")
        if not 0 < self.min_depth < self.init_depth < self.max_depth:
            raise ValueError("need 0 < min_depth < init_depth < max_depth")

    @classmethod
    def tiny(cls, feature_dim: int = 32) -> DecoderConfig:
        """A ≈0.2 M-parameter decoder for CPU tests (32 = the tiny backbone's width).

        Small enough for a training step in ~0.1 s on one CPU core, big enough to overfit two
        windows in a few hundred steps (narrower or single-layer variants learn much slower).
        """
        return cls(
            feature_dim=feature_dim,
            dim=64,
            heads=4,
            layers=2,
            temporal_layers=1,
            mlp_ratio=2.0,
            ray_bands=4,
            heatmap_dim=32,
            heatmap_upsample=2,
        )

    @classmethod
    def default(cls, feature_dim: int = 1536) -> DecoderConfig:
        """The full decoder for Wan2.1-VACE-1.3B block features (width 1536)."""
        return cls(feature_dim=feature_dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DecoderConfig keys: {unknown}")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DecoderConfig:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DecoderConfig:
        return cls.from_json(Path(path).read_text())


def _preset_decoder(name: str, backbone: BackboneConfig) -> DecoderConfig:
    """The decoder a model config without one gets: `tiny` for the tiny model, else `default`."""
    width = backbone.width
    return DecoderConfig.tiny(width) if name == "tiny" else DecoderConfig.default(width)


@dataclass(frozen=True)
class ViDiHandConfig:
    """The whole model: backbone, pose decoder and window geometry.

    `window` is the number of frames per clip (81 → 21 latent frames); `image_size` is the
    (height, width) the frames are resized to before the VAE. The decoder reads the backbone's
    tokens, so its `feature_dim` is the backbone width. In JSON an empty or missing `decoder` (as
    configs and checkpoints written before it was typed have) means the decoder preset for the
    backbone: `DecoderConfig.tiny` for the "tiny" model, `DecoderConfig.default` otherwise.
    """

    name: str
    backbone: BackboneConfig
    decoder: DecoderConfig
    window: int = 81
    image_size: tuple[int, int] = (480, 672)

    def __post_init__(self) -> None:
        st = self.backbone.vae_scale[0]
        if self.window < 1 or (self.window - 1) % st:
            raise InputError(f"window {self.window} is not 1 + {st}·k frames")
        ph, pw = self.backbone.pixels_per_token
        h, w = self.image_size
        if h % ph or w % pw:
            raise InputError(f"image size {h}×{w} is not a multiple of the token size {ph}×{pw}")
        if self.decoder.feature_dim != self.backbone.width:
            raise InputError(
                f"decoder feature_dim {self.decoder.feature_dim} != backbone width {self.backbone.width}"
            )
        object.__setattr__(self, "image_size", (int(h), int(w)))

    @property
    def latent_frames(self) -> int:
        return 1 + (self.window - 1) // self.backbone.vae_scale[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backbone": self.backbone.to_dict(),
            "decoder": self.decoder.to_dict(),
            "window": self.window,
            "image_size": list(self.image_size),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ViDiHandConfig:
        _check_keys(cls, data, "model")
        d = dict(data)
        d["backbone"] = backbone = BackboneConfig.from_dict(d["backbone"])
        decoder = d.get("decoder") or {}
        try:
            d["decoder"] = (
                DecoderConfig.from_dict(decoder) if decoder else _preset_decoder(str(d["name"]), backbone)
            )
        except ValueError as exc:
            raise InputError(f"bad decoder config: {exc}") from exc
        if "image_size" in d:
            d["image_size"] = (int(d["image_size"][0]), int(d["image_size"][1]))
        return cls(**d)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> ViDiHandConfig:
        """Parse JSON text, or read a file (a `Path`, or a string naming an existing file)."""
        if isinstance(text_or_path, Path) or not str(text_or_path).lstrip().startswith("{"):
            path = Path(text_or_path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot read model config: {exc}", source=path) from exc
        else:
            text = str(text_or_path)
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"bad model config: {exc}") from exc


# Presets ---------------------------------------------------------------------------------------

# fmt: off
#: `AutoencoderKLWan` defaults = the Wan2.1 VAE (diffusers' Wan2.1-*-diffusers vae/config.json).
WAN21_VAE: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    "latents_mean": [
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
    ],
    "latents_std": [
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
    ],
}

#: The Wan2.2 VAE of TI2V-5B (diffusers' scripts/convert_wan_to_diffusers.py `vae22_diffusers_config`).
WAN22_VAE: dict[str, Any] = {
    "base_dim": 160,
    "decoder_base_dim": 256,
    "z_dim": 48,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    "is_residual": True,
    "in_channels": 12,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_temporal": 4,
    "scale_factor_spatial": 16,
    "latents_mean": [
        -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
        -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
        -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
        -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
        -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
        0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
    ],
    "latents_std": [
        0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
        0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
        0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
        0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
        0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
        0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
    ],
}

# fmt: on

#: Wan-AI/Wan2.1-VACE-1.3B-diffusers transformer/config.json (as in diffusers' conversion script).
WAN21_VACE_13B_TRANSFORMER: dict[str, Any] = {
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "image_dim": None,
    "in_channels": 16,
    "num_attention_heads": 12,
    "num_layers": 30,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "pos_embed_seq_len": None,
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,
    "text_dim": 4096,
    "vace_in_channels": 96,
    "vace_layers": [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28],
}

#: Wan-AI/Wan2.2-TI2V-5B-Diffusers transformer/config.json.
WAN22_TI2V_5B_TRANSFORMER: dict[str, Any] = {
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-06,
    "ffn_dim": 14336,
    "freq_dim": 256,
    "image_dim": None,
    "in_channels": 48,
    "num_attention_heads": 24,
    "num_layers": 30,
    "out_channels": 48,
    "patch_size": [1, 2, 2],
    "pos_embed_seq_len": None,
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,
    "text_dim": 4096,
}


def _tiny() -> ViDiHandConfig:
    """Test size: 6 blocks of width 32, VACE at 0, 2, 4, features from block 3, a 4-channel VAE.

    Runs a forward on 9 frames × 32 × 32 (3 latent frames, 2 × 2 tokens) on CPU in well under a
    second; block 3 as the feature layer leaves blocks 4–5 (and VACE block 4) unexecuted.
    """
    z = 4
    backbone = BackboneConfig(
        kind="tiny",
        transformer={
            "added_kv_proj_dim": None,
            "attention_head_dim": 16,
            "cross_attn_norm": True,
            "eps": 1e-06,
            "ffn_dim": 64,
            "freq_dim": 32,
            "image_dim": None,
            "in_channels": z,
            "num_attention_heads": 2,
            "num_layers": 6,
            "out_channels": z,
            "patch_size": [1, 2, 2],
            "pos_embed_seq_len": None,
            "qk_norm": "rms_norm_across_heads",
            "rope_max_seq_len": 64,
            "text_dim": 16,
            "vace_in_channels": 2 * z + 64,
            "vace_layers": [0, 2, 4],
        },
        vae={
            "base_dim": 8,
            "z_dim": z,
            "dim_mult": [1, 1, 2, 2],
            "num_res_blocks": 1,
            "attn_scales": [],
            "temperal_downsample": [False, True, True],
            "dropout": 0.0,
            "latents_mean": [0.0] * z,
            "latents_std": [1.0] * z,
        },
        conditioning="vace",
        feature_layer=3,
        trainable="vace",
        lora=LoraSettings(rank=4, alpha=4),
        prompt_length=8,
    )
    return ViDiHandConfig(
        name="tiny",
        backbone=backbone,
        decoder=DecoderConfig.tiny(backbone.width),
        window=9,
        image_size=(32, 32),
    )


def _wan21_vace_13b() -> ViDiHandConfig:
    """ViDiHand as published: Wan2.1-VACE-1.3B, block 15 at τ = 0.7, VACE branch trained."""
    backbone = BackboneConfig(
        kind="wan21-vace",
        transformer=dict(WAN21_VACE_13B_TRANSFORMER),
        vae=dict(WAN21_VAE),
        conditioning="vace",
        feature_layer=15,
        tau=0.7,
        trainable="vace",
        dtype="bfloat16",
        vae_dtype="bfloat16",
    )
    return ViDiHandConfig(
        name="wan21-vace-1.3b",
        backbone=backbone,
        decoder=DecoderConfig.default(backbone.width),
        window=81,
        image_size=(480, 672),
    )


def _wan22_5b_lora() -> ViDiHandConfig:
    """ACE-Ego-Hand-style: Wan2.2-TI2V-5B one-pass encoder, LoRA, raw video in context.

    The successor's block index, τ and LoRA rank are not public; block 15 of 30, τ = 0.7 and
    rank 32 mirror the ViDiHand choices and are meant to be tuned.
    """
    backbone = BackboneConfig(
        kind="wan22-ti2v-lora",
        transformer=dict(WAN22_TI2V_5B_TRANSFORMER),
        vae=dict(WAN22_VAE),
        conditioning="in_context",
        feature_layer=15,
        tau=0.7,
        trainable="lora",
        lora=LoraSettings(rank=32, alpha=32),
        dtype="bfloat16",
        vae_dtype="bfloat16",
    )
    return ViDiHandConfig(
        name="wan22-5b-lora",
        backbone=backbone,
        decoder=DecoderConfig.default(backbone.width),
        window=81,
        image_size=(480, 672),
    )


_PRESETS: dict[str, Callable[[], ViDiHandConfig]] = {
    "tiny": _tiny,
    "wan21-vace-1.3b": _wan21_vace_13b,
    "wan22-5b-lora": _wan22_5b_lora,
}


def preset_names() -> tuple[str, ...]:
    return tuple(_PRESETS)


def preset(name: str) -> ViDiHandConfig:
    """A named configuration ("tiny", "wan21-vace-1.3b", "wan22-5b-lora") or a JSON file path."""
    if name in _PRESETS:
        return _PRESETS[name]()
    if name.endswith(".json") or Path(name).is_file():
        return ViDiHandConfig.from_json(Path(name))
    raise InputError(f"unknown model config {name!r}; presets: {', '.join(_PRESETS)}")


def write_preset_files(directory: str | Path) -> list[Path]:
    """Write every preset as `<name>.json`.

    The files under `config/model/` come from here (a test checks they are current):
    `python -c "from vidihand_ros.model.config import write_preset_files as w; w('config/model')"`.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in _PRESETS:
        path = out / f"{name}.json"
        preset(name).to_json(path)
        paths.append(path)
    return paths
