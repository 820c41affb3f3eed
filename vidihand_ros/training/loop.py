"""The one resumable training loop (`Trainer`), shared by adaptation and decoder training.

AdamW with per-step learning rates, gradient clipping, bf16 autocast on CUDA, and resumable
checkpoints (`training.checkpoints`) under `checkpoint_dir/step-XXXXXXXX/` with retention. A
subclass says what its weights are, what its checkpoints record, and how one step's loss is
computed (`train_step`).
"""

from __future__ import annotations

import logging
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from vidihand_ros.errors import InputError
from vidihand_ros.model.checkpoint import load_checkpoint
from vidihand_ros.training.checkpoints import (
    TrainingCheckpoint,
    latest_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    restore_rng,
    save_training_checkpoint,
    step_directory,
)
from vidihand_ros.training.config import LoopConfig

__all__ = ["TrainResult", "Trainer"]


@dataclass
class TrainResult:
    """Losses of the steps run by this call (step numbers `first_step`…), and the last checkpoint."""

    losses: list[float] = field(default_factory=list)
    first_step: int = 0
    step: int = 0
    checkpoint: Path | None = None


ConfigT = TypeVar("ConfigT", bound=LoopConfig)
ResultT = TypeVar("ResultT", bound=TrainResult)


class Trainer(ABC, Generic[ConfigT, ResultT]):
    """Base of a resumable training loop.

    A subclass's `__init__` sets the attributes below (with `step = 0`), then calls `_start`.
    Everything random about step s must come from (seed, s), so that a resumed run continues
    with exactly the batches and noise it would have seen.
    """

    config: ConfigT
    checkpoint_dir: Path | None
    params: list[Tensor]
    optimizer: torch.optim.Optimizer
    step: int
    #: What `run` returns (a `TrainResult` or a subclass of it).
    result_type: type[ResultT]
    #: How log messages name this training ("adaptation", "decoder training").
    task_name: str

    # What a subclass provides --------------------------------------------------------------

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the trained model runs (decides autocast)."""

    @abstractmethod
    def train_step(self) -> float:
        """One optimisation step (see `_prepare_step` and `_optimise`); returns its loss."""

    @abstractmethod
    def _model_state(self) -> dict[str, Tensor]:
        """The weights a checkpoint stores."""

    @abstractmethod
    def _load_model_state(self, state: Mapping[str, Tensor]) -> None:
        """Load weights from a checkpoint (on resume or `init_from`)."""

    @abstractmethod
    def _checkpoint_config(self) -> dict[str, Any]:
        """The JSON-able configuration recorded in every checkpoint."""

    @abstractmethod
    def _checkpoint_extra(self) -> dict[str, Any]:
        """JSON-able extra information (kind, stage) recorded in every checkpoint."""

    def _check_checkpoint(self, ckpt: TrainingCheckpoint, path: str | Path) -> None:
        """Raise `InputError` if `ckpt` cannot continue this run; accepts anything by default."""

    def _load_device(self) -> torch.device | str:
        """Where a resumed checkpoint's tensors are loaded."""
        return "cpu"

    # The shared machinery --------------------------------------------------------------------

    def _start(self, init_from: str | Path | None) -> None:
        """Resume from the latest checkpoint in `checkpoint_dir`, else start from `init_from`'s
        weights (a new run: step 0, fresh optimizer), else from the current weights."""
        latest = latest_checkpoint(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        if latest is not None:
            self.resume(latest)
        elif init_from is not None:
            self._load_model_state(load_checkpoint(init_from).model_state)

    def _adamw(self, *, foreach: bool | None = None) -> torch.optim.Optimizer:
        """AdamW over `params` with the config's learning rate, betas, eps and weight decay."""
        cfg = self.config
        return torch.optim.AdamW(
            self.params,
            lr=cfg.lr,
            betas=cfg.betas,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            foreach=foreach,
        )

    def _autocast(self) -> Any:
        """bf16 autocast on CUDA when configured; a no-op context elsewhere."""
        device = self.device
        enabled = self.config.bf16_autocast and device.type == "cuda"
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)

    def _prepare_step(self, lr: float) -> None:
        """Set this step's learning rate and clear the gradients."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)

    def _optimise(self, loss: Tensor) -> None:
        """Backpropagate a (finite) `loss`, clip the gradients, update and count the step."""
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.step += 1

    def run(
        self, steps: int | None = None, *, on_step: Callable[[int, float], None] | None = None
    ) -> ResultT:
        """Train until `config.steps` (or `steps` more steps), checkpointing on the way."""
        end = self.config.steps if steps is None else self.step + steps
        result = self.result_type(first_step=self.step, step=self.step)
        every = self.config.checkpoint_every
        while self.step < end:
            loss = self.train_step()
            result.losses.append(loss)
            if on_step is not None:
                on_step(self.step, loss)
            if self.checkpoint_dir is not None and every > 0 and self.step % every == 0:
                result.checkpoint = self.save()
        if self.checkpoint_dir is not None and result.losses and (every <= 0 or self.step % every):
            result.checkpoint = self.save()
        result.step = self.step
        return result

    def save(self) -> Path:
        """Checkpoint the current state as `checkpoint_dir/step-XXXXXXXX`; prune old ones."""
        if self.checkpoint_dir is None:
            raise InputError("no checkpoint directory configured")
        path = save_training_checkpoint(
            step_directory(self.checkpoint_dir, self.step),
            self._model_state(),
            self.optimizer,
            self.step,
            self._checkpoint_config(),
            extra=self._checkpoint_extra(),
        )
        keep = self.config.keep_checkpoints
        if keep > 0:
            for old in list_checkpoints(self.checkpoint_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        return path

    def resume(self, path: str | Path) -> None:
        """Load weights, optimizer state, step and RNG from a checkpoint of this run."""
        ckpt = load_training_checkpoint(path, device=self._load_device())
        self._check_checkpoint(ckpt, path)
        self._load_model_state(ckpt.model_state)
        if ckpt.optimizer_state is not None:
            self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.step = ckpt.step
        if ckpt.rng is not None:
            restore_rng(ckpt.rng)
        # Log under the subclass's module, as each trainer did before sharing this code.
        logging.getLogger(type(self).__module__).info(
            "resumed %s at step %d from %s", self.task_name, self.step, path
        )
