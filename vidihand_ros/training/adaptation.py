"""Hand-overlay adaptation: teach the video model to generate its input with the hands drawn on.

For a raw window V and its overlaid copy O (`overlay`), the trainable part of the backbone (VACE
branch or LoRA) learns with the model's own flow-matching loss to generate O conditioned on V, which
it can only do by learning where the hands are; the objective and the loop are explained in
docs/model.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from vidihand_ros.errors import InputError
from vidihand_ros.model.backbone import Backbone
from vidihand_ros.model.flow import add_noise, sample_sigmas, velocity_target
from vidihand_ros.training.checkpoints import TrainingCheckpoint
from vidihand_ros.training.config import AdaptationConfig
from vidihand_ros.training.loop import Trainer, TrainResult
from vidihand_ros.training.overlay import OverlayRenderer, OverlayWindow

__all__ = [
    "AdaptationTrainer",
    "TrainResult",
    "flow_matching_loss",
    "frames_to_video",
    "make_batch",
    "overlay_flow_loss",
    "train_adaptation",
]

logger = logging.getLogger(__name__)


def frames_to_video(frames: NDArray[np.uint8]) -> Tensor:
    """(T, H, W, 3) uint8 RGB → (3, T, H, W) float32 in [−1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return t.div_(127.5).sub_(1.0)


def make_batch(windows: Sequence[OverlayWindow], renderer: OverlayRenderer) -> tuple[Tensor, Tensor]:
    """Raw and overlaid videos of a batch of windows, each (B, 3, T, H, W) in [−1, 1]."""
    raw = torch.stack([frames_to_video(w.frames) for w in windows])
    overlaid = torch.stack([frames_to_video(renderer.render_window(w)) for w in windows])
    return raw, overlaid


def flow_matching_loss(
    backbone: Backbone, x0: Tensor, context: Tensor | None, *, sigma: Tensor, noise: Tensor
) -> Tensor:
    """Mean squared error between the full transformer's velocity and ε − x₀ at noise levels σ."""
    noise = noise.to(x0.device)
    sigma = sigma.to(x0.device)
    x_sigma = add_noise(x0, noise, sigma)
    prediction = backbone.velocity(x_sigma, sigma, context)
    return F.mse_loss(prediction.float(), velocity_target(x0, noise))


def overlay_flow_loss(
    backbone: Backbone,
    raw: Tensor,
    overlaid: Tensor,
    *,
    sigma: Tensor,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The flow-matching loss of generating `overlaid` conditioned on `raw` (both (B, 3, T, H, W)).

    `sigma` (B,) are the noise levels; `noise` ε (shaped like the latents) is drawn with
    `generator` on CPU if not given. Returns the mean squared velocity error (a scalar).
    """
    x0 = backbone.encode(overlaid)
    context = backbone.context(raw)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator)
    return flow_matching_loss(backbone, x0, context, sigma=sigma, noise=noise)


class AdaptationTrainer(Trainer[AdaptationConfig, TrainResult]):
    """The resumable adaptation loop over a sequence of `OverlayWindow`s.

    Args:
        backbone: the backbone to adapt (its trainable parameters are optimised).
        dataset: windows with hand annotations for the configured stage.
        config: training hyper-parameters and the stage.
        checkpoint_dir: where `step-XXXXXXXX/` checkpoints go; if it already holds one, training
            resumes from the latest (weights, optimizer, step, RNG).
        init_from: a checkpoint directory whose trainable weights start a *new* run (stage 2 from
            stage 1); ignored when resuming.
        model_config: JSON-able model description stored in the checkpoints.
    """

    result_type = TrainResult
    task_name = "adaptation"

    def __init__(
        self,
        backbone: Backbone,
        dataset: Sequence[OverlayWindow],
        config: AdaptationConfig,
        *,
        checkpoint_dir: str | Path | None = None,
        init_from: str | Path | None = None,
        model_config: dict[str, Any] | None = None,
    ) -> None:
        if len(dataset) == 0:
            raise InputError("the adaptation dataset is empty")
        if backbone.config.conditioning == "none":
            raise InputError("the adaptation objective needs a conditioning ('vace' or 'in_context')")
        self.backbone = backbone
        self.dataset = dataset
        self.config = config
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.model_config = (
            model_config if model_config is not None else {"backbone": backbone.config.to_dict()}
        )
        self.renderer = OverlayRenderer(config.stage, alpha=config.overlay_alpha)
        self.params = [p for _, p in backbone.trainable_named_parameters()]
        if not self.params:
            raise InputError("the backbone has no trainable parameters (trainable = 'none')")
        if any(p.dtype != torch.float32 for p in self.params):
            logger.warning("trainable weights are not float32; AdamW updates will lose precision")
        self.optimizer = self._adamw()
        self.step = 0
        self._cache: dict[int, tuple[Tensor, Tensor | None]] = {}
        self._start(init_from)

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    # Determinism: everything random about step s comes from (seed, s).

    def _batch_indices(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.config.seed, step])
        n = len(self.dataset)
        size = self.config.batch_size
        return rng.choice(n, size=size, replace=size > n).tolist()

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + step + 1)

    def _lr(self, step: int) -> float:
        if self.config.warmup_steps <= 0:
            return self.config.lr
        return self.config.lr * min(1.0, (step + 1) / self.config.warmup_steps)

    def _latents(self, index: int) -> tuple[Tensor, Tensor | None]:
        """(x₀ of the overlaid window, conditioning of the raw window) for dataset item `index`.

        Rendering and VAE encoding are deterministic, so with `cache_latents` they run once per
        window (memory: two latent videos per window, ≈ 14 MB at 81 × 480 × 672).
        """
        if index in self._cache:
            return self._cache[index]
        window = self.dataset[index]
        raw, overlaid = make_batch([window], self.renderer)
        with self._autocast():
            x0 = self.backbone.encode(overlaid)
            context = self.backbone.context(raw)
        if self.config.cache_latents:
            self._cache[index] = (x0, context)
        return x0, context

    def loss_at(self, step: int) -> Tensor:
        """The loss of `step`'s batch and noise with the current weights (no update)."""
        pairs = [self._latents(i) for i in self._batch_indices(step)]
        x0 = torch.cat([p[0] for p in pairs])
        context = None if pairs[0][1] is None else torch.cat([p[1] for p in pairs if p[1] is not None])
        gen = self._generator(step)
        cfg = self.config
        sigma = sample_sigmas(
            x0.shape[0],
            method=cfg.sigma_sampling,
            logit_mean=cfg.logit_mean,
            logit_std=cfg.logit_std,
            shift=cfg.shift,
            sigma_min=cfg.sigma_min,
            sigma_max=cfg.sigma_max,
            generator=gen,
        )
        noise = torch.randn(x0.shape, generator=gen)
        with self._autocast():
            return flow_matching_loss(self.backbone, x0, context, sigma=sigma, noise=noise)

    def train_step(self) -> float:
        """One optimisation step; returns its loss."""
        self.backbone.train()
        self._prepare_step(self._lr(self.step))
        loss = self.loss_at(self.step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite adaptation loss at step {self.step}")
        self._optimise(loss)
        return float(loss.detach())

    # Checkpoints: the trainable weights only; a stage-1 checkpoint cannot resume stage 2.

    def _model_state(self) -> dict[str, Tensor]:
        return self.backbone.trainable_state_dict()

    def _load_model_state(self, state: Mapping[str, Tensor]) -> None:
        self.backbone.load_trainable_state_dict(state)

    def _checkpoint_config(self) -> dict[str, Any]:
        return {"model": self.model_config, "adaptation": self.config.to_dict()}

    def _checkpoint_extra(self) -> dict[str, Any]:
        return {"stage": self.config.stage, "kind": "adaptation"}

    def _check_checkpoint(self, ckpt: TrainingCheckpoint, path: str | Path) -> None:
        stage = ckpt.extra.get("stage")
        if stage is not None and stage != self.config.stage:
            raise InputError(
                f"checkpoint is from stage {stage!r}, this run is {self.config.stage!r}; "
                "start stage 2 with init_from= and a new checkpoint directory",
                source=path,
            )


def train_adaptation(
    backbone: Backbone,
    dataset: Sequence[OverlayWindow],
    config: AdaptationConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    init_from: str | Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Run (or resume) adaptation training to `config.steps`; see `AdaptationTrainer`."""
    trainer = AdaptationTrainer(backbone, dataset, config, checkpoint_dir=checkpoint_dir, init_from=init_from)
    return trainer.run(on_step=on_step)
