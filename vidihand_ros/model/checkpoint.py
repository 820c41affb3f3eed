"""Training checkpoints as safetensors + JSON — loading one never unpickles anything.

Why not `torch.save`: a pickle runs code on load, and checkpoints travel between machines (and
to the inference server). A checkpoint is a directory:

- `model.safetensors`      — the model tensors given (for adaptation: the trainable weights);
- `optimizer.safetensors`  — every tensor of the optimizer state (`state.<param>.<name>`, and
                             any tensor-valued hyper-parameter as `group.<i>.<name>`);
- `state.json`             — step, config, the optimizer's non-tensor state and param groups,
                             RNG states (python, numpy, torch CPU/CUDA as base64), extra info.

The directory is written under a temporary name and renamed into place, so a crash leaves either
the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from vidihand_ros.errors import InputError

__all__ = [
    "Checkpoint",
    "capture_rng",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "restore_rng",
    "save_checkpoint",
    "step_directory",
]

FORMAT = "vidihand-checkpoint/1"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
STEP_PREFIX = "step-"


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors, optimizer state ready for `load_state_dict`, and metadata."""

    path: Path
    model_state: dict[str, Tensor]
    optimizer_state: dict[str, Any] | None
    step: int
    config: dict[str, Any]
    rng: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# RNG ----------------------------------------------------------------------------------------


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


# Saving -------------------------------------------------------------------------------------


def _plain_tensors(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors; storage shared between entries is cloned apart."""
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in tensors.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"{key}: expected a tensor, got {type(value).__name__}")
        t = value.detach().cpu().contiguous()
        ident = (t.untyped_storage().data_ptr(), int(t.storage_offset())) if t.numel() else (id(t), 0)
        if ident in seen:
            t = t.clone()
        seen.add(ident)
        out[key] = t
    return out


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in a checkpoint")


def _split_optimizer(state_dict: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Optimizer `state_dict()` → (tensors for safetensors, the rest for JSON)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in state_dict.get("state", {}).items():
        for name, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"state.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = _jsonable(value, f"optimizer state {pid}.{name}")
    groups = []
    for i, group in enumerate(state_dict.get("param_groups", [])):
        g: dict[str, Any] = {}
        for name, value in group.items():
            if isinstance(value, Tensor):
                tensors[f"group.{i}.{name}"] = value
            else:
                g[name] = _jsonable(value, f"optimizer group {i}.{name}")
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


def save_checkpoint(
    directory: str | Path,
    model_state: Mapping[str, Tensor],
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    step: int = 0,
    config: Mapping[str, Any] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    rng: bool = True,
) -> Path:
    """Write a checkpoint directory atomically (replacing an existing one); returns its path.

    `optimizer` is an optimizer or its `state_dict()`; `config` and `extra` must be JSON-able.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        save_file(_plain_tensors(model_state), str(tmp / MODEL_FILE), metadata={"format": "pt"})
        meta: dict[str, Any] = {
            "format": FORMAT,
            "step": int(step),
            "config": _jsonable(dict(config or {}), "config"),
            "extra": _jsonable(dict(extra or {}), "extra"),
            "optimizer": None,
            "rng": capture_rng() if rng else None,
        }
        if optimizer is not None:
            sd = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
            tensors, opt_meta = _split_optimizer(sd)
            save_file(_plain_tensors(tensors), str(tmp / OPTIMIZER_FILE), metadata={"format": "pt"})
            meta["optimizer"] = opt_meta
        (tmp / STATE_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# Loading ------------------------------------------------------------------------------------


def load_checkpoint(directory: str | Path, *, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint directory written by `save_checkpoint` (safetensors and JSON only)."""
    path = Path(directory)
    state_path = path / STATE_FILE
    try:
        meta = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a checkpoint ({exc})", source=path) from exc
    if meta.get("format") != FORMAT:
        raise InputError(f"unknown checkpoint format {meta.get('format')!r}", source=path)
    dev = str(device)
    model_state = load_file(str(path / MODEL_FILE), device=dev)
    optimizer_state = None
    if meta.get("optimizer") is not None:
        tensors = load_file(str(path / OPTIMIZER_FILE), device=dev)
        optimizer_state = _join_optimizer(tensors, meta["optimizer"])
    return Checkpoint(
        path=path,
        model_state=model_state,
        optimizer_state=optimizer_state,
        step=int(meta["step"]),
        config=meta.get("config") or {},
        rng=meta.get("rng"),
        extra=meta.get("extra") or {},
    )


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
