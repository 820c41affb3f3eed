"""Checkpoint directories as safetensors + JSON: loading one never unpickles anything.

A pickle (`torch.save`) runs code on load, and checkpoints travel between machines and to the
inference server. A checkpoint is a directory with `model.safetensors` (the tensors) and
`state.json` (format, step, config, extra info); a training run adds its resume state
(`vidihand_ros.training.checkpoints`). It is written under a temporary name and renamed into
place, so a crash leaves the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from vidihand_ros.errors import InputError
from vidihand_ros.swap import swap_in

__all__ = ["MODEL_FILE", "STATE_FILE", "Checkpoint", "jsonable", "load_checkpoint", "save_checkpoint"]

FORMAT = "vidihand-checkpoint/1"
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.json"
#: `state.json` entries that hold a training run's resume state; null in a model checkpoint.
RESUME_ENTRIES = ("optimizer", "rng")


@dataclass
class Checkpoint:
    """A loaded checkpoint: its tensors and metadata (`state` is the whole `state.json`)."""

    path: Path
    model_state: dict[str, Tensor]
    step: int
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


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


def jsonable(value: Any, where: str) -> Any:
    """`value` as plain JSON values (tuples → lists); a `TypeError` naming `where` otherwise."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, where) for k, v in value.items()}
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in a checkpoint")


def save_checkpoint(
    directory: str | Path,
    model_state: Mapping[str, Tensor],
    step: int = 0,
    config: Mapping[str, Any] | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    tensor_files: Mapping[str, Mapping[str, Tensor]] | None = None,
    resume: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing an existing one); returns its path.

    `config` and `extra` must be JSON-able. `tensor_files` (file name → tensors) and `resume`
    (`RESUME_ENTRIES` of `state.json`, JSON-able) carry a training run's resume state.
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
            "config": jsonable(dict(config or {}), "config"),
            "extra": jsonable(dict(extra or {}), "extra"),
            **dict.fromkeys(RESUME_ENTRIES),
        }
        for name, tensors in (tensor_files or {}).items():
            save_file(_plain_tensors(tensors), str(tmp / name), metadata={"format": "pt"})
        for key, value in (resume or {}).items():
            if key not in RESUME_ENTRIES:
                raise ValueError(f"unknown resume entry {key!r}")
            meta[key] = value
        (tmp / STATE_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        swap_in(tmp, target)
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
    model_state = load_file(str(path / MODEL_FILE), device=str(device))
    return Checkpoint(
        path=path,
        model_state=model_state,
        step=int(meta["step"]),
        config=meta.get("config") or {},
        extra=meta.get("extra") or {},
        state=meta,
    )
