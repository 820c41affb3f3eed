"""Training checkpoints: a run's resume state beside its weights, and its step directories.

A training checkpoint is a model-format checkpoint (`vidihand_ros.model.checkpoint`) plus the state
that lets a run continue exactly where it stopped — still safetensors and JSON only:

- `optimizer.safetensors` — every tensor of the optimizer state (`state.<param>.<name>`, and any
  tensor-valued hyper-parameter as `group.<i>.<name>`);
- `state.json` `optimizer` — the optimizer's non-tensor state and param groups;
- `state.json` `rng` — python, numpy and torch CPU/CUDA RNG states (torch's as base64).

A run keeps them as `checkpoint_dir/step-XXXXXXXX/` (`step_directory`).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidihand_ros.model.checkpoint import (
    STATE_FILE,
    Checkpoint,
    jsonable,
    load_checkpoint,
    read_tensors,
    save_checkpoint,
)

__all__ = [
    "TrainingCheckpoint",
    "capture_rng",
    "latest_checkpoint",
    "list_checkpoints",
    "load_training_checkpoint",
    "restore_rng",
    "save_training_checkpoint",
    "step_directory",
]

OPTIMIZER_FILE = "optimizer.safetensors"
STEP_PREFIX = "step-"


@dataclass
class TrainingCheckpoint(Checkpoint):
    """A loaded training checkpoint: also the optimizer state, ready for `load_state_dict`, and
    the RNG states (`restore_rng`); None where the checkpoint has none."""

    optimizer_state: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None


# RNG -----------------------------------------------------------------------------------------


def _b64(t: Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def capture_rng() -> dict[str, Any]:
    """Python, numpy (global) and torch RNG states as JSON-able values."""
    version, state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    out: dict[str, Any] = {
        "python": [version, list(state), gauss],
        "numpy": [np_name, np.asarray(np_keys).tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Restore what `capture_rng` captured (CUDA states only if CUDA is available here)."""
    if "python" in rng:
        version, state, gauss = rng["python"]
        random.setstate((version, tuple(state), gauss))
    if "numpy" in rng:
        name, keys, pos, has_gauss, gauss = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "torch" in rng:
        torch.set_rng_state(_unb64(rng["torch"]))
    if "cuda" in rng and torch.cuda.is_available():
        states = [_unb64(s) for s in rng["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# Optimizer state ----------------------------------------------------------------------------


def _split_optimizer(state_dict: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Optimizer `state_dict()` → (tensors for safetensors, the rest for JSON)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in state_dict.get("state", {}).items():
        for name, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"state.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = jsonable(value, f"optimizer state {pid}.{name}")
    groups = []
    for i, group in enumerate(state_dict.get("param_groups", [])):
        g: dict[str, Any] = {}
        for name, value in group.items():
            if isinstance(value, Tensor):
                tensors[f"group.{i}.{name}"] = value
            else:
                g[name] = jsonable(value, f"optimizer group {i}.{name}")
        groups.append(g)
    return tensors, {"scalars": scalars, "param_groups": groups}


def _join_optimizer(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for pid, entries in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entries)
    groups = [dict(g) for g in meta.get("param_groups", [])]
    for key, value in tensors.items():
        kind, index, name = key.split(".", 2)
        if kind == "state":
            state.setdefault(int(index), {})[name] = value
        elif kind == "group":
            groups[int(index)][name] = value
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    return {"state": dict(sorted(state.items())), "param_groups": groups}


# Saving and loading -------------------------------------------------------------------------


def save_training_checkpoint(
    directory: str | Path,
    model_state: Mapping[str, Tensor],
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    step: int = 0,
    config: Mapping[str, Any] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    rng: bool = True,
) -> Path:
    """Write a checkpoint with resume state atomically (replacing an existing one); returns its path.

    `optimizer` is an optimizer or its `state_dict()`; `config` and `extra` must be JSON-able.
    """
    resume: dict[str, Any] = {"rng": capture_rng() if rng else None}
    files: dict[str, dict[str, Tensor]] = {}
    if optimizer is not None:
        sd = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
        files[OPTIMIZER_FILE], resume["optimizer"] = _split_optimizer(sd)
    return save_checkpoint(
        directory, model_state, step, config, extra=extra, tensor_files=files, resume=resume
    )


def load_training_checkpoint(
    directory: str | Path, *, device: torch.device | str = "cpu"
) -> TrainingCheckpoint:
    """Read a checkpoint with its resume state (safetensors and JSON only)."""
    ckpt = load_checkpoint(directory, device=device)
    optimizer_state = None
    if ckpt.state.get("optimizer") is not None:
        tensors = read_tensors(ckpt.path / OPTIMIZER_FILE, device=device)
        optimizer_state = _join_optimizer(tensors, ckpt.state["optimizer"])
    return TrainingCheckpoint(
        path=ckpt.path,
        model_state=ckpt.model_state,
        step=ckpt.step,
        config=ckpt.config,
        extra=ckpt.extra,
        state=ckpt.state,
        optimizer_state=optimizer_state,
        rng=ckpt.state.get("rng"),
    )


# Step directories of a run ------------------------------------------------------------------


def step_directory(root: str | Path, step: int) -> Path:
    """`root/step-00001234`: where a training run keeps the checkpoint of `step`."""
    return Path(root) / f"{STEP_PREFIX}{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete step checkpoints under `root`, oldest first (temporary directories are ignored)."""
    base = Path(root)
    if not base.is_dir():
        return []
    found = [
        p
        for p in base.iterdir()
        if p.is_dir()
        and p.name.startswith(STEP_PREFIX)
        and p.name[len(STEP_PREFIX) :].isdigit()
        and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX) :]))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None
