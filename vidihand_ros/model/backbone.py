"""The video-diffusion backbone: diffusers' Wan transformer + VAE, built from a `BackboneConfig`.

Our own block loop over diffusers' submodules, so that a feature pass stops after block L (the
rest would be half the cost) while a full pass equals diffusers' forward. Base and VAE are frozen;
the VACE branch or LoRA trains. Weights load from local safetensors only (no pickles). Why and
how: docs/model.md, "Backbone".
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

# Imported from their modules, not the lazy `diffusers` namespace, so type checkers see the classes.
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from diffusers.models.transformers.transformer_wan_vace import WanVACETransformer3DModel
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from vidihand_ros.errors import InputError
from vidihand_ros.model.checkpoint import read_tensors
from vidihand_ros.model.config import BackboneConfig, ViDiHandConfig
from vidihand_ros.model.flow import sigma_to_timestep

__all__ = [
    "Backbone",
    "LoadReport",
    "ParameterCounts",
    "build_backbone",
    "load_pretrained",
    "load_prompt_embedding",
    "parameter_counts",
    "save_prompt_embedding",
    "torch_dtype",
]

logger = logging.getLogger(__name__)

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
#: Config keys that do not change the architecture (diffusers metadata).
_IGNORED_CONFIG_KEYS = {"_class_name", "_diffusers_version", "_name_or_path"}
#: The prompt embedding tensor name inside its safetensors file.
PROMPT_KEY = "prompt_embeds"

WanTransformer = WanVACETransformer3DModel | WanTransformer3DModel


def torch_dtype(name: str) -> torch.dtype:
    return _TORCH_DTYPES[name]


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """Inputs of the block loop, embedded once (what diffusers' forward computes before its loop)."""

    hidden: Tensor  # (B, N, C) tokens, context tokens first in in-context mode
    embedded: Tensor  # the patch-embedded input, VACE block 0 adds it to its control state
    encoder_hidden: Tensor  # (B, S, C) projected prompt
    temb: Tensor  # (B, C) or (B, N, C) time embedding (for the output head)
    timestep_proj: Tensor  # (B, 6, C) or (B, N, 6, C) block modulation
    rotary: tuple[Tensor, Tensor]
    control: Tensor | None  # (B, N, C) VACE control tokens
    context_tokens: int  # leading tokens that belong to the in-context raw video
    grid: tuple[int, int, int]  # (F/pt, h/ph, w/pw) of the target latents


class Backbone(nn.Module):
    """A Wan transformer and VAE with a fixed prompt embedding, runnable up to any block.

    Use `build_backbone` to make one. Shapes: video (B, 3, T, H, W); latents (B, z, F, h, w) with
    F = 1 + (T − 1)/4 and h, w = H/8, W/8 (Wan2.1; /16 for the Wan2.2 VAE); tokens (B, N, C)
    with N = F/pt · h/ph · w/pw in frame-major order.
    """

    prompt_embedding: Tensor
    latents_mean: Tensor
    latents_std: Tensor

    def __init__(
        self, config: BackboneConfig, transformer: WanTransformer, vae: AutoencoderKLWan, prompt: Tensor
    ) -> None:
        super().__init__()
        self.config = config
        self.transformer = transformer
        self.vae = vae
        self.register_buffer("prompt_embedding", prompt, persistent=False)
        z = config.latent_channels
        mean = torch.tensor(vae.config["latents_mean"], dtype=torch.float32).view(1, z, 1, 1, 1)
        std = torch.tensor(vae.config["latents_std"], dtype=torch.float32).view(1, z, 1, 1, 1)
        self.register_buffer("latents_mean", mean, persistent=False)
        self.register_buffer("latents_std", std, persistent=False)
        self._blank_latents: dict[tuple[Any, ...], Tensor] = {}

    # Properties ---------------------------------------------------------------------------

    @property
    def is_vace(self) -> bool:
        return self.config.conditioning == "vace"

    @property
    def device(self) -> torch.device:
        return self.transformer.patch_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The transformer's compute dtype (that of its patch embedding)."""
        return self.transformer.patch_embedding.weight.dtype

    @property
    def num_blocks(self) -> int:
        return len(self.transformer.blocks)

    def train(self, mode: bool = True) -> Backbone:
        """Train mode for the transformer only: the frozen VAE stays in eval mode."""
        super().train(mode)
        self.vae.eval()
        return self

    # Inputs ---------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """VAE latents of a video in [−1, 1], normalised with the VAE's per-channel mean/std.

        (B, 3, T, H, W) → (B, z, F, h, w), float32. Uses the posterior mode (as diffusers' Wan
        pipelines do with `sample_mode="argmax"`), so encoding is deterministic.
        """
        self._check_video(video)
        x = video.to(device=self.vae_device, dtype=self.vae_dtype)
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mode().float()
        return (z - self.latents_mean) / self.latents_std

    @torch.no_grad()
    def context(self, video: Tensor, latents: Tensor | None = None) -> Tensor | None:
        """How the raw video conditions the transformer (`config.conditioning`).

        "vace": the VACE context of `WanVACEPipeline` — [inactive latents, reactive latents,
        mask], 2·z + 64 channels (96 for Wan2.1). With `vace_mask == "ones"` (the pipeline's
        behaviour for a video without a mask) the reactive stream is the video and the inactive
        stream is an all-zero (mid-grey) video; with "zeros" the two swap and the mask is 0.
        "in_context": the clean raw latents, prepended along time by the block loop.
        "none": no conditioning.

        `latents` may pass already-computed `encode(video)` to save a VAE pass.
        """
        if self.config.conditioning == "none":
            return None
        z = self.encode(video) if latents is None else latents
        if self.config.conditioning == "in_context":
            return z
        blank = self._blank(video).expand_as(z)
        ones = self.config.vace_mask == "ones"
        inactive, reactive = (blank, z) if ones else (z, blank)
        b, _, f, h, w = z.shape
        mask = z.new_full((b, self.config.mask_channels, f, h, w), 1.0 if ones else 0.0)
        return torch.cat([inactive, reactive, mask], dim=1)

    def _blank(self, video: Tensor) -> Tensor:
        """Latents of an all-zero video of the same size, cached: it only depends on the size."""
        _, _, t, h, w = video.shape
        key = (t, h, w, str(self.vae_device), self.vae_dtype)
        if key not in self._blank_latents:
            # Not an inference tensor even when first needed under `inference_mode`: the cached
            # latents must stay usable by a later training step that saves them for backward.
            with torch.inference_mode(False):
                zeros = torch.zeros(1, 3, t, h, w, device=self.vae_device, dtype=self.vae_dtype)
                self._blank_latents[key] = self.encode(zeros)
        return self._blank_latents[key]

    def _check_video(self, video: Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != 3:
            raise InputError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
        st = self.config.vae_scale[0]
        t, h, w = video.shape[2:]
        if (t - 1) % st:
            raise InputError(f"video has {t} frames; the VAE needs 1 + {st}·k")
        ph, pw = self.config.pixels_per_token
        if h % ph or w % pw:
            raise InputError(f"video size {h}×{w} is not a multiple of the token size {ph}×{pw}")

    @property
    def vae_device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def prompt(self, batch: int) -> Tensor:
        """The fixed prompt embedding repeated over the batch, (B, S, text_dim)."""
        return self.prompt_embedding.to(self.dtype).expand(batch, -1, -1)

    # Transformer ---------------------------------------------------------------------------

    def hidden_states(
        self, latents: Tensor, sigma: Tensor, context: Tensor | None, *, layer: int | None = None
    ) -> Tensor:
        """Tokens after block `layer` (default `config.feature_layer`); later blocks never run.

        Returns (B, N, C) for the target latents only (in-context tokens are dropped).
        """
        layer = self.config.feature_layer if layer is None else layer
        if not 0 <= layer < self.num_blocks:
            raise ValueError(f"layer {layer} outside 0..{self.num_blocks - 1}")
        prep = self._prepare(latents, sigma, context)
        hidden = self._run_blocks(prep, layer + 1)
        return hidden[:, prep.context_tokens :]

    def velocity(self, latents: Tensor, sigma: Tensor, context: Tensor | None) -> Tensor:
        """The full transformer's flow-matching prediction v ≈ ε − x₀, shaped like `latents`."""
        prep = self._prepare(latents, sigma, context)
        hidden = self._run_blocks(prep, self.num_blocks)
        return self._head(hidden, prep)

    def _prepare(self, latents: Tensor, sigma: Tensor, context: Tensor | None) -> _Prepared:
        tf = self.transformer
        dtype = self.dtype
        b = latents.shape[0]
        pt, ph, pw = self.config.patch_size
        grid = (latents.shape[2] // pt, latents.shape[3] // ph, latents.shape[4] // pw)
        sigma = sigma.to(device=latents.device, dtype=torch.float32).reshape(-1).expand(b)
        x = latents.to(dtype)
        context_tokens = 0
        if self.config.conditioning == "in_context":
            if context is None:
                raise ValueError("in-context conditioning needs the raw video latents")
            context_tokens = grid[0] * grid[1] * grid[2]
            x = torch.cat([context.to(dtype), x], dim=2)
        elif self.config.conditioning == "vace" and context is None:
            raise ValueError("VACE conditioning needs a context")

        rotary = tf.rope(x)
        embedded = tf.patch_embedding(x).flatten(2).transpose(1, 2).contiguous()
        n = embedded.shape[1]

        timestep = sigma_to_timestep(sigma)
        seq_len = None
        if context_tokens:
            # Per-token timesteps: the clean raw video at t = 0, the target at t = 1000·σ (Wan2.2 TI2V).
            timestep = torch.cat(
                [timestep.new_zeros(b, context_tokens), timestep[:, None].expand(b, n - context_tokens)], 1
            )
            seq_len = n
            timestep = timestep.flatten()
        temb, timestep_proj, encoder_hidden, _ = tf.condition_embedder(
            timestep, self.prompt(b), None, **({"timestep_seq_len": seq_len} if seq_len else {})
        )
        timestep_proj = timestep_proj.unflatten(2 if seq_len else 1, (6, -1))

        control = None
        if self.config.conditioning == "vace":
            assert context is not None
            c = tf.vace_patch_embedding(context.to(dtype)).flatten(2).transpose(1, 2)
            if c.shape[1] != n:
                raise ValueError(f"VACE context has {c.shape[1]} tokens, the latents {n}")
            control = c
        return _Prepared(
            hidden=embedded,
            embedded=embedded,
            encoder_hidden=encoder_hidden,
            temb=temb,
            timestep_proj=timestep_proj,
            rotary=rotary,
            control=control,
            context_tokens=context_tokens,
            grid=grid,
        )

    def _call(self, module: nn.Module, *args: Any) -> Any:
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return activation_checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _run_blocks(self, prep: _Prepared, count: int) -> Tensor:
        """Run base blocks 0..count−1, adding each VACE hint after its layer; nothing beyond."""
        tf = self.transformer
        hidden = prep.hidden
        vace_index = {layer: k for k, layer in enumerate(self.config.vace_layers)} if self.is_vace else {}
        control = prep.control
        for i in range(count):
            hint = None
            if i in vace_index:
                block = tf.vace_blocks[vace_index[i]]
                hint, control = self._call(
                    block, prep.embedded, prep.encoder_hidden, control, prep.timestep_proj, prep.rotary
                )
            hidden = self._call(tf.blocks[i], hidden, prep.encoder_hidden, prep.timestep_proj, prep.rotary)
            if hint is not None:
                hidden = hidden + hint.to(hidden.device)
        return hidden

    def _head(self, hidden: Tensor, prep: _Prepared) -> Tensor:
        """diffusers' output norm, projection and unpatchify, on the target tokens."""
        tf = self.transformer
        c = prep.context_tokens
        hidden = hidden[:, c:]
        temb = prep.temb
        if temb.dim() == 3:  # per-token time embedding
            temb = temb[:, c:]
            shift, scale = (tf.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:
            shift, scale = (tf.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
        hidden = (tf.norm_out(hidden.float()) * (1 + scale) + shift).type_as(hidden)
        hidden = tf.proj_out(hidden)
        b = hidden.shape[0]
        f, h, w = prep.grid
        pt, ph, pw = self.config.patch_size
        hidden = hidden.reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return hidden.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    # Trainable part ------------------------------------------------------------------------

    def trainable_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, p in self.named_parameters():
            if p.requires_grad:
                yield name, p

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """The weights that adaptation changes (VACE branch or LoRA), keyed like `named_parameters`."""
        return {name: p.detach() for name, p in self.trainable_named_parameters()}

    def load_trainable_state_dict(self, state: Mapping[str, Tensor], *, strict: bool = True) -> None:
        params = dict(self.trainable_named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise InputError(
                f"trainable weights do not match this backbone: {len(missing)} missing "
                f"({', '.join(missing[:3])}…), {len(unexpected)} unexpected ({', '.join(unexpected[:3])}…)"
            )
        with torch.no_grad():
            for name, value in state.items():
                if name in params:
                    if params[name].shape != value.shape:
                        raise InputError(f"{name}: shape {tuple(value.shape)} != {tuple(params[name].shape)}")
                    params[name].copy_(value)


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------


def _transformer_class(config: BackboneConfig) -> type[WanTransformer]:
    return WanVACETransformer3DModel if config.conditioning == "vace" else WanTransformer3DModel


def _cast(model: nn.Module, dtype: torch.dtype) -> None:
    """Cast parameters like diffusers' `from_pretrained(torch_dtype=…)`.

    Parameters inside `_keep_in_fp32_modules` (time embedder, modulation tables, norms) become
    float32, the others `dtype`; buffers (the float64 rotary tables) are left as they are.
    """
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, param in model.named_parameters():
        target = torch.float32 if any(k in name.split(".") for k in keep) else dtype
        if param.dtype != target:
            param.data = param.data.to(target)


def _configure_trainable(backbone: Backbone) -> None:
    """Freeze the VAE and the base transformer; unfreeze the VACE branch or add LoRA adapters."""
    config = backbone.config
    backbone.vae.requires_grad_(False)
    backbone.vae.eval()
    tf = backbone.transformer
    tf.requires_grad_(False)
    if config.trainable == "vace":
        tf.vace_blocks.requires_grad_(True)
        tf.vace_patch_embedding.requires_grad_(True)
    elif config.trainable == "lora":
        from peft import LoraConfig

        lora = config.lora
        tf.add_adapter(
            LoraConfig(
                r=lora.rank,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=list(lora.targets),
                init_lora_weights=True,
            )
        )
        for name, param in tf.named_parameters():
            param.requires_grad_("lora_" in name)


@contextlib.contextmanager
def _empty_weights(enabled: bool) -> Iterator[None]:
    """Allocate no parameter storage (accelerate's meta-device init; buffers stay real)."""
    if not enabled:
        yield
        return
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        yield


def build_backbone(
    config: BackboneConfig | ViDiHandConfig,
    *,
    device: torch.device | str | None = None,
    empty: bool = False,
    pretrained: str | Path | Sequence[str | Path] | None = None,
    prompt_embedding: Tensor | None = None,
    seed: int | None = None,
) -> Backbone:
    """Build the backbone from a config; random weights unless `pretrained` names local weights.

    Args:
        config: a `BackboneConfig` (or a `ViDiHandConfig`, whose backbone is used).
        device: where to put the result (default CPU).
        empty: build on the meta device — no memory, no init; for counting parameters and
            inspecting the architecture of the full-size configs. The result cannot run.
        pretrained: a local diffusers-format directory or safetensors file(s); the parts it holds
            are created without init and filled from it (see `load_pretrained`), the rest is
            random.
        prompt_embedding: the fixed text conditioning (1, S, text_dim); default: the config's
            `prompt_embedding_path`, else zeros (an empty prompt).
        seed: seeds the random init (for reproducible tests).
    """
    cfg = config.backbone if isinstance(config, ViDiHandConfig) else config
    if seed is not None:
        torch.manual_seed(seed)
    sources = _locate_weights(pretrained) if pretrained is not None and not empty else {}
    tf_cls = _transformer_class(cfg)
    with _empty_weights(empty or "transformer" in sources):
        transformer = tf_cls(**cfg.transformer)
    with _empty_weights(empty or "vae" in sources):
        vae = AutoencoderKLWan(**cfg.vae)
    for part, model in (("transformer", transformer), ("vae", vae)):
        if part in sources:
            state = _read_part(sources[part], part)
            _check_config(sources[part], part, cfg)
            _load_into(model, state, part, assign=True)

    if prompt_embedding is None:
        if cfg.prompt_embedding_path:
            prompt_embedding = load_prompt_embedding(cfg.prompt_embedding_path, cfg)
        else:
            prompt_embedding = torch.zeros(1, cfg.prompt_length, cfg.text_dim)
    elif prompt_embedding.dim() == 2:
        prompt_embedding = prompt_embedding[None]
    if prompt_embedding.shape[-1] != cfg.text_dim:
        raise InputError(f"prompt embedding width {prompt_embedding.shape[-1]} != text_dim {cfg.text_dim}")

    if empty:
        prompt_embedding = prompt_embedding.to("meta")
    else:
        _cast(transformer, torch_dtype(cfg.dtype))
        _cast(vae, torch_dtype(cfg.vae_dtype))
    backbone = Backbone(cfg, transformer, vae, prompt_embedding.float())
    _configure_trainable(backbone)
    if device is not None and not empty:
        backbone.to(device)
    return backbone


# --------------------------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterCounts:
    """Parameters by role: base transformer, VACE branch, LoRA adapters, VAE, and trainable."""

    base: int
    vace: int
    lora: int
    vae: int
    trainable: int

    @property
    def transformer(self) -> int:
        return self.base + self.vace + self.lora


def parameter_counts(backbone: Backbone) -> ParameterCounts:
    """Count parameters (works on a meta-device backbone from `build_backbone(empty=True)`)."""
    base = vace = lora = 0
    for name, p in backbone.transformer.named_parameters():
        if "lora_" in name:
            lora += p.numel()
        elif name.startswith("vace_"):
            vace += p.numel()
        else:
            base += p.numel()
    vae = sum(p.numel() for p in backbone.vae.parameters())
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    return ParameterCounts(base=base, vace=vace, lora=lora, vae=vae, trainable=trainable)


# --------------------------------------------------------------------------------------------
# Local weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    """What `load_pretrained` filled: tensors per part, and keys of the file that were not used."""

    loaded: dict[str, int]
    unused: tuple[str, ...]


def _refuse_pickles(paths: Sequence[Path]) -> None:
    bad = [p for p in paths if p.suffix.lower() in _PICKLE_SUFFIXES]
    if bad:
        raise InputError(
            "pickle-based weight files are not loaded (they can run code): "
            + ", ".join(str(p) for p in bad)
            + "; convert them to .safetensors first"
        )


def _part_files(folder: Path) -> list[Path]:
    """The safetensors files of one diffusers model folder (all shards of an index)."""
    index = sorted(folder.glob("*.safetensors.index.json"))
    if index:
        weight_map = json.loads(index[0].read_text(encoding="utf-8")).get("weight_map", {})
        return [folder / name for name in sorted(set(weight_map.values()))]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        _refuse_pickles(sorted(p for p in folder.iterdir() if p.is_file()))
        raise InputError("no .safetensors weights found", source=folder)
    return files


def _classify_file(path: Path) -> str:
    """'transformer', 'vae' or 'combined' (keys prefixed `transformer.` / `vae.`) from the keys."""
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    if any(k.startswith(("transformer.", "vae.")) for k in keys):
        return "combined"
    if any(k.startswith(("encoder.", "decoder.")) for k in keys) and not any(
        ".blocks." in f".{k}" for k in keys
    ):
        return "vae"
    return "transformer"


def _locate_weights(source: str | Path | Sequence[str | Path]) -> dict[str, list[Path]]:
    """Which files hold which part: {"transformer": [...], "vae": [...]} (a part may be absent)."""
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    found: dict[str, list[Path]] = {}
    for path in paths:
        if not path.exists():
            raise InputError("weights not found", source=path)
        if path.is_dir():
            subfolders = [p for p in ("transformer", "vae") if (path / p).is_dir()]
            if subfolders:
                for part in subfolders:
                    found.setdefault(part, []).extend(_part_files(path / part))
                continue
            config = path / "config.json"
            part = "transformer"
            if config.is_file():
                cls = json.loads(config.read_text(encoding="utf-8")).get("_class_name", "")
                part = "vae" if "Autoencoder" in cls else "transformer"
            found.setdefault(part, []).extend(_part_files(path))
            continue
        _refuse_pickles([path])
        if path.suffix != ".safetensors":
            raise InputError("expected a .safetensors file or a diffusers model directory", source=path)
        kind = _classify_file(path)
        if kind == "combined":
            found.setdefault("transformer", []).append(path)
            found.setdefault("vae", []).append(path)
        else:
            found.setdefault(kind, []).append(path)
    return found


def _read_part(files: Sequence[Path], part: str) -> dict[str, Tensor]:
    """Read and merge safetensors files; strip `part.` prefixes; convert Wan's original key names."""
    state: dict[str, Tensor] = {}
    for path in files:
        tensors = read_tensors(Path(path))
        prefixed = any(k.startswith(("transformer.", "vae.")) for k in tensors)
        for key, value in tensors.items():
            if prefixed:
                if not key.startswith(part + "."):
                    continue
                key = key[len(part) + 1 :]
            state[key] = value
    if part == "transformer" and any(".self_attn." in k or k.startswith("head.") for k in state):
        from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

        state = convert_wan_transformer_to_diffusers(state)
    if part == "vae" and any(k.startswith(("encoder.downsamples.", "encoder.conv1.")) for k in state):
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        state = convert_wan_vae_to_diffusers(state)
    return state


def _check_config(files: Sequence[Path], part: str, config: BackboneConfig) -> None:
    """A diffusers `config.json` next to the weights must describe the configured architecture."""
    folder = files[0].parent
    path = folder / "config.json"
    if not path.is_file():
        return
    theirs = json.loads(path.read_text(encoding="utf-8"))
    ours = config.transformer if part == "transformer" else config.vae
    diffs = []
    for key, value in theirs.items():
        if key in _IGNORED_CONFIG_KEYS or key.startswith("_") or key not in ours:
            continue
        a, b = json.loads(json.dumps(value)), json.loads(json.dumps(ours[key]))
        if a != b:
            diffs.append(f"{key}: file {a!r} vs config {b!r}")
    if diffs:
        raise InputError(f"{part} weights are for a different architecture: " + "; ".join(diffs), source=path)


def _load_into(
    model: nn.Module, state: Mapping[str, Tensor], part: str, *, assign: bool
) -> tuple[int, list[str]]:
    """Load `state` into `model`, mapping plain keys onto peft-wrapped (`base_layer`) ones.

    Every non-LoRA parameter and persistent buffer must be present (the partial load of a model
    would silently mix real and random weights); keys diffusers itself ignores are skipped.
    """
    own = model.state_dict()
    mapped: dict[str, Tensor] = {}
    unused = []
    for key, value in state.items():
        if key in own:
            mapped[key] = value
            continue
        head, _, leaf = key.rpartition(".")
        wrapped = f"{head}.base_layer.{leaf}"
        if wrapped in own:
            mapped[wrapped] = value
        else:
            unused.append(key)
    ignore = tuple(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or ())
    unused = [k for k in unused if not any(p in k for p in ignore)]
    missing = sorted(k for k in own if k not in mapped and "lora_" not in k)
    if missing:
        raise InputError(f"{part} weights lack {len(missing)} tensors, e.g. {', '.join(missing[:4])}")
    for key, value in mapped.items():
        if own[key].shape != value.shape:
            raise InputError(
                f"{part} weight {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}"
            )
    if assign:
        # assign=True keeps the file's dtype; `build_backbone` casts afterwards.
        model.load_state_dict(mapped, strict=False, assign=True)
    else:
        with torch.no_grad():
            for key, value in mapped.items():
                own[key].copy_(value)
    return len(mapped), unused


def load_pretrained(backbone: Backbone, source: str | Path | Sequence[str | Path]) -> LoadReport:
    """Copy local weights into an existing backbone (keeps its dtypes, devices and adapters).

    `source`: a diffusers pipeline directory (`transformer/`, `vae/` subfolders), one diffusers
    model folder (`config.json` + `*.safetensors`, sharded or not), or `.safetensors` files with
    diffusers keys, Wan's original keys, or keys prefixed `transformer.` / `vae.`. A part the
    source does not hold is left as it is. Never unpickles.
    """
    sources = _locate_weights(source)
    if not sources:
        raise InputError("no weights found", source=str(source))
    loaded: dict[str, int] = {}
    unused: list[str] = []
    for part, files in sources.items():
        model = cast(nn.Module, getattr(backbone, part))
        _check_config(files, part, backbone.config)
        n, extra = _load_into(model, _read_part(files, part), part, assign=False)
        loaded[part] = n
        unused.extend(f"{part}.{k}" for k in extra)
    if unused:
        logger.warning("ignored %d tensors not in the model, e.g. %s", len(unused), unused[:3])
    backbone._blank_latents.clear()
    return LoadReport(loaded=loaded, unused=tuple(unused))


# --------------------------------------------------------------------------------------------
# Prompt embedding
# --------------------------------------------------------------------------------------------


def load_prompt_embedding(path: str | Path, config: BackboneConfig | None = None) -> Tensor:
    """The fixed text conditioning from a safetensors file: (1, S, text_dim), float32.

    The file holds one tensor (named `prompt_embeds`, or the only one): the umT5 output of the
    prompt, (S, D) or (1, S, D). Shorter sequences are zero-padded to `config.prompt_length`,
    as Wan pipelines pad prompts to 512 tokens.
    """
    path = Path(path)
    _refuse_pickles([path])
    try:
        tensors = read_tensors(Path(path))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"cannot read prompt embedding: {exc}", source=path) from exc
    if PROMPT_KEY in tensors:
        emb = tensors[PROMPT_KEY]
    elif len(tensors) == 1:
        emb = next(iter(tensors.values()))
    else:
        raise InputError(f"expected one tensor or '{PROMPT_KEY}', found {sorted(tensors)}", source=path)
    if emb.dim() == 2:
        emb = emb[None]
    if emb.dim() != 3 or emb.shape[0] != 1:
        raise InputError(f"prompt embedding must be (S, D) or (1, S, D), got {tuple(emb.shape)}", source=path)
    emb = emb.float()
    if config is not None:
        if emb.shape[2] != config.text_dim:
            raise InputError(
                f"prompt embedding width {emb.shape[2]} != text_dim {config.text_dim}", source=path
            )
        if emb.shape[1] < config.prompt_length:
            emb = torch.cat([emb, emb.new_zeros(1, config.prompt_length - emb.shape[1], emb.shape[2])], 1)
    return emb


def save_prompt_embedding(path: str | Path, embedding: Tensor) -> Path:
    """Write a prompt embedding (e.g. computed once with umT5 elsewhere) for `load_prompt_embedding`."""
    path = Path(path)
    save_file({PROMPT_KEY: embedding.detach().float().contiguous().cpu()}, str(path))
    return path
