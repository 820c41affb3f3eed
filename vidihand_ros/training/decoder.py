"""Decoder training on frozen backbone features: precomputed examples, monitors and the loop.

The backbone is frozen while the decoder trains, so each window's features are computed once
(`precompute_examples`), stored as safetensors (`DecoderExample`, `ExampleDirectory`), and the
decoder then trains at the speed of a small transformer (`DecoderTrainer`, on `training.loop`).
MANO layers are not decoder state and never enter a checkpoint.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from vidihand_ros.errors import InputError
from vidihand_ros.model.config import DecoderConfig
from vidihand_ros.model.decoder import DecoderOutput, PoseDecoder
from vidihand_ros.model.features import Features
from vidihand_ros.training.checkpoints import TrainingCheckpoint
from vidihand_ros.training.config import DecoderTrainConfig
from vidihand_ros.training.loop import Trainer, TrainResult
from vidihand_ros.training.losses import DecoderTargets, decoder_loss

if TYPE_CHECKING:
    from vidihand_ros.model.backbone import Backbone

__all__ = [
    "DecoderExample",
    "DecoderTrainResult",
    "DecoderTrainer",
    "ExampleDirectory",
    "collate_examples",
    "decoder_metrics",
    "precompute_examples",
    "train_decoder",
]

EXAMPLE_FORMAT = "vidihand-decoder-example/1"
_TARGET_FIELDS = tuple(f.name for f in fields(DecoderTargets))


# --------------------------------------------------------------------------------------------------
# Examples: one window of precomputed features with its ground truth


@dataclass
class DecoderExample:
    """One window: backbone tokens (F, Hp, Wp, C), its geometry, K (3, 3), targets (T, 2, ...)."""

    tokens: Tensor
    num_frames: int
    image_size: tuple[int, int]
    patch: tuple[int, int, int]
    vae_scale: tuple[int, int, int]
    K: Tensor
    targets: DecoderTargets

    @classmethod
    def from_batch(cls, features: Features, K: Tensor, targets: DecoderTargets) -> list[DecoderExample]:
        """Split a batch (features of B windows, K (B, 3, 3), batched targets) into examples."""
        b = features.tokens.shape[0]
        out = []
        for i in range(b):
            parts = {
                name: (None if getattr(targets, name) is None else getattr(targets, name)[i].detach().cpu())
                for name in _TARGET_FIELDS
            }
            out.append(
                cls(
                    tokens=features.tokens[i].detach().cpu(),
                    num_frames=int(features.num_frames),
                    image_size=(int(features.image_size[0]), int(features.image_size[1])),
                    patch=_triple(features.patch),
                    vae_scale=_triple(features.vae_scale),
                    K=K[i].detach().cpu(),
                    targets=DecoderTargets(**parts),  # type: ignore[arg-type]
                )
            )
        return out

    def _geometry(self) -> tuple[Any, ...]:
        return (self.num_frames, self.image_size, self.patch, self.vae_scale, tuple(self.tokens.shape))

    def save(self, path: str | Path) -> Path:
        """Write the example as one safetensors file (geometry in its metadata)."""
        tensors = {"tokens": self.tokens.contiguous(), "K": self.K.contiguous()}
        for name in _TARGET_FIELDS:
            value = getattr(self.targets, name)
            if value is not None:
                tensors[f"targets.{name}"] = value.contiguous()
        meta = {
            "format": EXAMPLE_FORMAT,
            "num_frames": str(self.num_frames),
            "image_size": json.dumps(list(self.image_size)),
            "patch": json.dumps(list(self.patch)),
            "vae_scale": json.dumps(list(self.vae_scale)),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> DecoderExample:
        from safetensors import safe_open

        path = Path(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != EXAMPLE_FORMAT:
            raise InputError(f"not a decoder example ({meta.get('format')!r})", source=path)
        tensors = load_file(str(path))
        parts = {name: tensors.get(f"targets.{name}") for name in _TARGET_FIELDS}
        return cls(
            tokens=tensors["tokens"],
            num_frames=int(meta["num_frames"]),
            image_size=_pair(json.loads(meta["image_size"])),
            patch=_triple(json.loads(meta["patch"])),
            vae_scale=_triple(json.loads(meta["vae_scale"])),
            K=tensors["K"],
            targets=DecoderTargets(**parts),  # type: ignore[arg-type]
        )


def _pair(x: Sequence[Any]) -> tuple[int, int]:
    return (int(x[0]), int(x[1]))


def _triple(x: Sequence[Any]) -> tuple[int, int, int]:
    return (int(x[0]), int(x[1]), int(x[2]))


class ExampleDirectory(Sequence[DecoderExample]):
    """The `*.safetensors` examples of a folder, loaded lazily in name order."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.paths = sorted(self.directory.glob("*.safetensors"))
        if not self.paths:
            raise InputError("no decoder examples (*.safetensors) found", source=self.directory)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecoderExample:  # type: ignore[override]
        return DecoderExample.load(self.paths[index])

    def __iter__(self) -> Iterator[DecoderExample]:
        for p in self.paths:
            yield DecoderExample.load(p)


def collate_examples(
    examples: Sequence[DecoderExample], device: torch.device | str = "cpu"
) -> tuple[Features, Tensor, DecoderTargets]:
    """Stack examples of one geometry into (Features, K (B, 3, 3), DecoderTargets) on `device`.

    An optional target present in some examples only is filled for the others with its
    "unknown" value (NaN visibility, every frame counting).
    """
    first = examples[0]
    for ex in examples[1:]:
        if ex._geometry() != first._geometry():
            raise InputError("a batch mixes windows of different geometry; batch by window size")
    tokens = torch.stack([ex.tokens for ex in examples]).to(device)
    K = torch.stack([ex.K for ex in examples]).to(device=device, dtype=torch.float32)
    t = first.num_frames
    parts: dict[str, Tensor | None] = {}
    for name in _TARGET_FIELDS:
        values = [getattr(ex.targets, name) for ex in examples]
        if all(v is None for v in values):
            parts[name] = None
            continue
        if name == "frame_mask":
            filled = [torch.ones(t, dtype=torch.bool) if v is None else v.to(torch.bool) for v in values]
        elif name == "visibility":
            filled = [torch.full((t, 2, 21), float("nan")) if v is None else v.float() for v in values]
        else:
            if any(v is None for v in values):
                raise InputError(f"target {name!r} missing from some examples")
            filled = [v.float() for v in values if v is not None]
        parts[name] = torch.stack(filled).to(device)
    features = Features(
        tokens=tokens,
        num_frames=t,
        image_size=first.image_size,
        patch=first.patch,
        vae_scale=first.vae_scale,
    )
    return features, K, DecoderTargets(**parts)  # type: ignore[arg-type]


@torch.no_grad()
def precompute_examples(
    backbone: Backbone,
    video: Tensor,
    K: Tensor,
    targets: DecoderTargets,
    *,
    tau: float | None = None,
    layer: int | None = None,
    generator: torch.Generator | None = None,
) -> list[DecoderExample]:
    """Run the frozen backbone once on a batch of windows (B, 3, T, H, W) and keep the features."""
    from vidihand_ros.model.features import extract_features

    features = extract_features(backbone, video, tau=tau, layer=layer, generator=generator)
    return DecoderExample.from_batch(features, K, targets)


# --------------------------------------------------------------------------------------------------
# Metrics for monitoring (the evaluation protocol itself lives with the metrics)


@torch.no_grad()
def decoder_metrics(output: DecoderOutput, targets: DecoderTargets) -> dict[str, float]:
    """Quick training monitors: MPJPE (camera frame and root-relative, mm) over present hands with
    known joints, and presence accuracy over frames with a known label."""
    gt = targets.joints_3d.to(output.joints_3d.device)
    presence = targets.presence.to(output.presence.device)
    present = torch.nan_to_num(presence, nan=0.0) > 0.5
    if targets.frame_mask is not None:
        present = present & targets.frame_mask.to(present.device)[:, :, None]
    ok = present[..., None] & torch.isfinite(gt).all(dim=-1)
    pred = output.joints_3d
    err = (pred - torch.nan_to_num(gt)).norm(dim=-1)
    rel = ((pred - pred[..., :1, :]) - torch.nan_to_num(gt - gt[..., :1, :])).norm(dim=-1)
    ok_rel = ok & ok[..., :1]
    known = torch.isfinite(presence)
    correct = ((output.presence > 0.5) == (presence > 0.5)) & known

    def mean(x: Tensor, m: Tensor) -> float:
        n = int(m.sum())
        return float(x[m].sum() / n) if n else float("nan")

    return {
        "mpjpe_mm": 1000.0 * mean(err, ok),
        "mpjpe_rel_mm": 1000.0 * mean(rel, ok_rel),
        "presence_acc": mean(correct.float(), known),
    }


# --------------------------------------------------------------------------------------------------
# The loop


@dataclass
class DecoderTrainResult(TrainResult):
    """Losses of the steps run by this call (step numbers `first_step`…), and the last checkpoint."""

    #: Unweighted loss terms of the last step.
    last_terms: dict[str, float] = field(default_factory=dict)


class DecoderTrainer(Trainer[DecoderTrainConfig, DecoderTrainResult]):
    """The resumable decoder training loop over precomputed `DecoderExample`s.

    Args:
        decoder: the decoder to train, with MANO layers attached; trained on its current device.
        dataset: examples (all of one window geometry per batch; the simplest is one geometry).
        config: hyper-parameters.
        checkpoint_dir: where `step-XXXXXXXX/` checkpoints go; if it already holds one, training
            resumes from the latest (weights, optimizer, step, RNG).
        init_from: a decoder checkpoint whose weights start a *new* run; ignored when resuming.
    """

    result_type = DecoderTrainResult
    task_name = "decoder training"

    def __init__(
        self,
        decoder: PoseDecoder,
        dataset: Sequence[DecoderExample],
        config: DecoderTrainConfig,
        *,
        checkpoint_dir: str | Path | None = None,
        init_from: str | Path | None = None,
    ) -> None:
        if len(dataset) == 0:
            raise InputError("the decoder training set is empty")
        self.decoder = decoder
        self.dataset = dataset
        self.config = config
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.params = [p for p in decoder.parameters() if p.requires_grad]
        self.optimizer = self._adamw(foreach=True)
        self.step = 0
        self.last_terms: dict[str, float] = {}
        self._start(init_from)

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    def _batch_indices(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.config.seed, step])
        n = len(self.dataset)
        size = self.config.batch_size
        if size >= n:
            return list(range(n))
        return rng.choice(n, size=size, replace=False).tolist()

    def lr_at(self, step: int) -> float:
        """Linear warm-up to `lr`, then cosine decay to `lr · min_lr_ratio` at `steps`."""
        cfg = self.config
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        span = max(cfg.steps - cfg.warmup_steps, 1)
        progress = min((step - cfg.warmup_steps) / span, 1.0)
        floor = cfg.lr * cfg.min_lr_ratio
        return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def batch(self, step: int) -> tuple[Features, Tensor, DecoderTargets]:
        return collate_examples([self.dataset[i] for i in self._batch_indices(step)], self.device)

    def loss_at(self, step: int) -> tuple[Tensor, dict[str, Tensor], DecoderOutput, DecoderTargets]:
        """Loss, its terms, the decoder output and the targets of `step`'s batch (no update)."""
        features, K, targets = self.batch(step)
        with self._autocast():
            output = self.decoder(features, K, return_heatmaps=self.config.loss.heatmap > 0)
        loss, terms = decoder_loss(output, targets, self.config.loss)
        return loss, terms, output, targets

    def train_step(self) -> float:
        """One optimisation step; returns its loss."""
        self.decoder.train()
        self._prepare_step(self.lr_at(self.step))
        loss, terms, _, _ = self.loss_at(self.step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite decoder loss at step {self.step}: {terms}")
        self._optimise(loss)
        self.last_terms = {k: float(v) for k, v in terms.items()}
        return float(loss.detach())

    def run(
        self, steps: int | None = None, *, on_step: Callable[[int, float], None] | None = None
    ) -> DecoderTrainResult:
        """Train until `config.steps` (or `steps` more steps), checkpointing on the way; the result
        also carries the last step's loss terms."""
        result = super().run(steps, on_step=on_step)
        result.last_terms = dict(self.last_terms)
        return result

    @torch.no_grad()
    def evaluate(self, dataset: Sequence[DecoderExample] | None = None) -> dict[str, float]:
        """`decoder_metrics` averaged over batches of `dataset` (default: the training set), eval mode."""
        data = self.dataset if dataset is None else dataset
        self.decoder.eval()
        sums: dict[str, float] = {}
        count = 0
        size = self.config.batch_size
        for start in range(0, len(data), size):
            features, K, targets = collate_examples(
                [data[i] for i in range(start, min(start + size, len(data)))], self.device
            )
            with self._autocast():
                output = self.decoder(features, K)
            for k, v in decoder_metrics(output, targets).items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        return {k: v / count for k, v in sums.items()}

    # Checkpoints: the decoder weights (MANO layers are not decoder state); only a decoder of the
    # same configuration can resume from one.

    def _load_device(self) -> torch.device:
        return self.device

    def _model_state(self) -> dict[str, Tensor]:
        return self.decoder.state_dict()

    def _load_model_state(self, state: Mapping[str, Tensor]) -> None:
        self.decoder.load_state_dict(state)

    def _checkpoint_config(self) -> dict[str, Any]:
        return {"decoder": self.decoder.config.to_dict(), "decoder_training": self.config.to_dict()}

    def _checkpoint_extra(self) -> dict[str, Any]:
        return {"kind": "decoder"}

    def _check_checkpoint(self, ckpt: TrainingCheckpoint, path: str | Path) -> None:
        if ckpt.extra.get("kind") not in (None, "decoder"):
            raise InputError(f"not a decoder checkpoint (kind {ckpt.extra.get('kind')!r})", source=path)
        saved = ckpt.config.get("decoder")
        if saved is not None and DecoderConfig.from_dict(saved) != self.decoder.config:
            raise InputError("checkpoint was written by a decoder of a different configuration", source=path)


def train_decoder(
    decoder: PoseDecoder,
    dataset: Sequence[DecoderExample],
    config: DecoderTrainConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    init_from: str | Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> DecoderTrainResult:
    """Run (or resume) decoder training to `config.steps`; see `DecoderTrainer`."""
    trainer = DecoderTrainer(decoder, dataset, config, checkpoint_dir=checkpoint_dir, init_from=init_from)
    return trainer.run(on_step=on_step)
