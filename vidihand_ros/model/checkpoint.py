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
from safetensors import SafetensorError
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


#: Files that hold a pickled (code-running) checkpoint; refused, with a hint to convert them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def load_checkpoint(directory: str | Path, *, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint directory written by `save_checkpoint` (safetensors and JSON only).

    Every way the directory can be wrong is an InputError naming the file and what is wrong.
    """
    path = Path(directory)
    if not path.is_dir():
        raise InputError(
            "not a checkpoint directory" if path.exists() else "no such checkpoint directory", source=path
        )
    meta = read_state(path)
    model_state = read_tensors(path / MODEL_FILE, device=device)
    return Checkpoint(
        path=path,
        model_state=model_state,
        step=meta["step"],
        config=meta["config"],
        extra=meta["extra"],
        state=meta,
    )


def _missing(path: Path) -> InputError:
    """A missing checkpoint file; pickles beside it are named, since they are what users try."""
    pickles = sorted(p.name for p in path.parent.glob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        return InputError(
            f"no {path.name}, only {', '.join(pickles)}: pickle checkpoints are refused (loading one "
            "runs code); convert the weights to safetensors (safetensors.torch.save_file) or use "
            "`vidihand model init`",
            source=path,
        )
    return InputError(f"not a checkpoint: no {path.name} (see `vidihand model init`)", source=path)


def read_state(directory: Path) -> dict[str, Any]:
    """`state.json`, checked: a JSON object of our format with an int step and dict config/extra."""
    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise _missing(state_path)
    try:
        meta = json.loads(state_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=state_path) from exc
    except UnicodeDecodeError:
        raise InputError("not a text file (expected JSON)", source=state_path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", source=state_path) from exc
    if not isinstance(meta, dict):
        raise InputError(f"expected a JSON object, got {_json_type(meta)}", source=state_path)
    if meta.get("format") != FORMAT:
        found = meta.get("format")
        shown = repr(found)[:60] if isinstance(found, str) or found is None else _json_type(found)
        raise InputError(f"unknown checkpoint format {shown} (expected {FORMAT!r})", source=state_path)
    step = meta.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InputError(
            f"must be a whole number ≥ 0, got {_json_type(step)}", source=state_path, field="step"
        )
    for key in ("config", "extra"):
        value = meta.get(key)
        if value is None:
            meta[key] = {}
        elif not isinstance(value, dict):
            raise InputError(f"must be an object, got {_json_type(value)}", source=state_path, field=key)
    return meta


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), repr(value)[:40])


def read_tensors(path: Path, *, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """A safetensors file as tensors; a missing, pickled or damaged file is an InputError naming it."""
    if not path.is_file():
        raise _missing(path)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        if _looks_pickled(path):
            raise InputError(
                "a pickle (torch.save), not safetensors: pickle checkpoints are refused (loading one "
                "runs code); convert the weights to safetensors (safetensors.torch.save_file)",
                source=path,
            ) from exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"not a safetensors file ({reason})", source=path) from exc


def _looks_pickled(path: Path) -> bool:
    """torch.save output: a zip archive, or a bare pickle (protocol 2 and up)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)
