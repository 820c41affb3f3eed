"""JSON helpers for zarr attributes (dataset and episode records): the one sanitiser."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_json(value: Any) -> Any:
    """`value` as plain, strict JSON types, so every zarr reader can parse the attributes.

    Numpy scalars and arrays, paths, tuples and sets are converted. NaN and ±inf become None
    (strict JSON has no spelling for them; in a record they mean "not known").
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_json(v) for v in value)
    raise TypeError(f"attribute value of type {type(value).__name__} is not JSON-serialisable")
