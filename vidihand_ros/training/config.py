"""Training hyper-parameters: the shared loop/optimiser settings and the two trainings built on them.

Plain dataclasses, no torch: checkpoints record them as JSON (flat dicts, as they always were) and
the CLI builds them before importing the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, TypeVar

from vidihand_ros.errors import InputError

__all__ = ["AdaptationConfig", "DecoderTrainConfig", "LoopConfig", "LossWeights"]

Stage = Literal["skeleton", "mesh"]
SigmaSampling = Literal["logit_normal", "uniform"]

_STAGES = ("skeleton", "mesh")

LoopT = TypeVar("LoopT", bound="LoopConfig")


@dataclass(frozen=True)
class LoopConfig:
    """What the resumable loop (`training.loop.Trainer`) and its AdamW read, for either training.

    The defaults are the adaptation run's; `DecoderTrainConfig` changes five of them. Each training
    adds its own fields by subclassing, so a config stays one flat set of keyword arguments and one
    flat JSON object.
    """

    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    grad_clip: float = 1.0
    bf16_autocast: bool = True
    seed: int = 0
    #: Steps between checkpoints (0: only at the end of a run).
    checkpoint_every: int = 500
    #: Newest checkpoints kept (0: all).
    keep_checkpoints: int = 2

    #: How error messages name the config (unknown keys).
    section: ClassVar[str] = "training loop"

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise InputError("need steps ≥ 0, batch_size ≥ 1 and lr > 0")
        object.__setattr__(self, "betas", (float(self.betas[0]), float(self.betas[1])))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls: type[LoopT], data: Mapping[str, Any]) -> LoopT:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown {cls.section} config keys: {', '.join(unknown)}")
        d = dict(data)
        if "betas" in d:
            d["betas"] = (float(d["betas"][0]), float(d["betas"][1]))
        return cls(**d)

    def with_(self: LoopT, **changes: Any) -> LoopT:
        return replace(self, **changes)


@dataclass(frozen=True)
class AdaptationConfig(LoopConfig):
    """Hand-overlay adaptation training (`training.adaptation`): the loop plus stage, σ and overlay.

    σ sampling: "logit_normal" draws σ = sigmoid(n), n ~ N(`logit_mean`, `logit_std`²) — the
    SD3 / flow-matching default that concentrates training on mid noise levels, where the
    features are read (τ = 0.7); "uniform" draws σ ~ U(0, 1). Either is then time-shifted with
    `shift` and clamped to [`sigma_min`, `sigma_max`].

    `cache_latents` keeps each window's VAE latents (raw and overlaid) after first use: rendering
    and encoding are deterministic, so this only trades memory for time (small sets, tests).
    """

    stage: Stage = "skeleton"
    sigma_sampling: SigmaSampling = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0
    sigma_min: float = 0.0
    sigma_max: float = 1.0
    overlay_alpha: float = 0.5
    cache_latents: bool = False

    section: ClassVar[str] = "adaptation"

    def __post_init__(self) -> None:
        if self.stage not in _STAGES:
            raise InputError(f"stage must be one of {_STAGES}, not {self.stage!r}")
        if self.sigma_sampling not in ("logit_normal", "uniform"):
            raise InputError(f"unknown sigma_sampling {self.sigma_sampling!r}")
        if not 0.0 <= self.sigma_min < self.sigma_max <= 1.0:
            raise InputError("need 0 <= sigma_min < sigma_max <= 1")
        super().__post_init__()


@dataclass
class LossWeights:
    """Weights of the decoder's loss terms (`training.losses.decoder_loss`; 0 disables a term)."""

    presence: float = 1.0
    global_orient: float = 1.0
    hand_pose: float = 1.0
    betas: float = 0.1
    joints_rel: float = 10.0
    joints_cam: float = 5.0
    depth: float = 1.0
    reprojection: float = 10.0
    anchors: float = 10.0
    heatmap: float = 0.1
    visibility: float = 0.5
    velocity: float = 10.0
    acceleration: float = 10.0


@dataclass(frozen=True)
class DecoderTrainConfig(LoopConfig):
    """Decoder training (`training.decoder`): the loop plus the loss weights; the learning rate
    follows linear warm-up, then cosine decay to `lr · min_lr_ratio` at `steps`."""

    steps: int = 20_000
    batch_size: int = 8
    lr: float = 3e-4
    warmup_steps: int = 500
    checkpoint_every: int = 1000
    #: The cosine schedule ends at lr × this at `steps`.
    min_lr_ratio: float = 0.01
    loss: LossWeights = field(default_factory=LossWeights)

    section: ClassVar[str] = "decoder training"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.loss, Mapping):
            object.__setattr__(self, "loss", LossWeights(**self.loss))
