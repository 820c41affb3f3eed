"""Co-recorded topics: any message's numeric fields as named columns, resampled to camera time.

A demonstration records the robot beside the camera (joint states, gripper, end-effector pose,
wrench). The columns come from the messages themselves, at run time: nested fields are joined
with '.', array elements get their index (`position.0`), booleans become 0/1; text, and the
header (its stamp is the sample's time), are left out. rclpy's generated classes and rosbags'
dataclasses both work, so capture and bag conversion share this.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Method = Literal["nearest", "linear"]
METHODS: tuple[Method, ...] = ("nearest", "linear")
#: Fields that describe a message rather than measure something.
SKIPPED_FIELDS = ("header",)


def numeric_fields(message: Any, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of `message` by its dotted name (`pose.position.x`, `effort.2`)."""
    out: dict[str, float] = {}
    for name, value in _fields(message):
        if not prefix and name in SKIPPED_FIELDS:
            continue
        _collect(f"{prefix}{name}", value, out)
    return out


def _fields(message: Any) -> Iterator[tuple[str, Any]]:
    """(name, value) of a message's fields: rclpy's classes list them, rosbags' are dataclasses."""
    if hasattr(type(message), "get_fields_and_field_types"):
        for name in type(message).get_fields_and_field_types():
            yield name, getattr(message, name)
    elif dataclasses.is_dataclass(message):
        for field in dataclasses.fields(message):
            if not field.name.startswith("_"):  # rosbags' __msgtype__ and the like
                yield field.name, getattr(message, field.name)


def _collect(name: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):  # bool: 0/1
        out[name] = float(value)
    elif isinstance(value, (str, bytes)):
        return
    elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        for i, item in enumerate(value.ravel().tolist()):
            out[f"{name}.{i}"] = float(item)
    elif isinstance(value, (list, tuple)) or (hasattr(value, "typecode") and hasattr(value, "tolist")):
        for i, item in enumerate(value):
            _collect(f"{name}.{i}", item, out)
    else:
        out.update(numeric_fields(value, prefix=f"{name}."))


def resample(
    times_ns: NDArray[np.int64],
    values: NDArray[np.float64],
    at_ns: NDArray[np.int64],
    *,
    method: Method = "nearest",
    max_age_s: float = 0.1,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """`values` (N, K) sampled at `times_ns` (N, increasing) → (M, K) at `at_ns`, and a mask of
    the rows that are stale (NaN): no sample within `max_age_s` (nearest), or not both neighbours
    within it (linear; a time outside the samples is stale too)."""
    if method not in METHODS:
        raise ValueError(f"unknown resampling method {method!r}; expected one of {METHODS}")
    if not math.isfinite(max_age_s) or max_age_s < 0:
        raise ValueError(f"max_age_s must be a finite number >= 0, got {max_age_s}")
    times = np.asarray(times_ns, dtype=np.int64)
    at = np.asarray(at_ns, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    if len(values) != len(times):
        raise ValueError(f"{len(values)} rows of values for {len(times)} sample times")
    out = np.full((len(at), values.shape[1]), np.nan)
    if len(times) == 0:
        return out, np.ones(len(at), dtype=bool)
    if np.any(np.diff(times) < 0):
        raise ValueError("sample times must not decrease")
    max_age_ns = max_age_s * 1e9
    after = np.searchsorted(times, at, side="left")  # first sample at or after each time
    before = np.clip(after - 1, 0, len(times) - 1)
    after_c = np.clip(after, 0, len(times) - 1)
    age_before = np.where(after > 0, (at - times[before]).astype(np.float64), np.inf)
    age_after = np.where(after < len(times), (times[after_c] - at).astype(np.float64), np.inf)
    if method == "nearest":
        take_after = age_after < age_before
        index = np.where(take_after, after_c, before)
        fresh = np.minimum(age_before, age_after) <= max_age_ns
        out[fresh] = values[index[fresh]]
    else:
        exact = age_after == 0
        fresh = exact | ((age_before <= max_age_ns) & (age_after <= max_age_ns))
        span = age_before[fresh] + age_after[fresh]  # finite where fresh and not exact
        between = ~exact[fresh]  # exact rows take the sample at the time itself (weight 1)
        weight = np.divide(age_before[fresh], span, out=np.ones_like(span), where=between)[:, None]
        out[fresh] = values[before[fresh]] * (1.0 - weight) + values[after_c[fresh]] * weight
    return out, ~fresh
