"""JSON helpers for zarr attributes (dataset and episode records)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_json(value: Any) -> Any:
    """`value` as plain, strict JSON types, so every zarr reader can parse the attributes.

    Numpy scalars and arrays, paths, tuples and sets are converted; NaN/inf are rejected (strict
    JSON has no spelling for them).
    """

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        if isinstance(obj, (set, frozenset)):
            return sorted(obj)
        raise TypeError(f"attribute value of type {type(obj).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(value, default=default, allow_nan=False))
    except ValueError as err:
        raise ValueError(f"attributes must be strict JSON (no NaN/inf): {err}") from err
