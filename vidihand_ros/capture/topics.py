"""A co-recorded topic during capture: its samples, its `data/` keys, its values at camera time.

The first message fixes the topic's columns (`corecord.numeric_fields`, optionally narrowed to
the configured fields) and so its keys: the columns are grouped by their parent field, one key
per group (`robot0_joint_position` (6,) from `position.0`…`position.5`; `robot0_eef_pose_position`
(3,) from `pose.position.x/y/z`; a top-level scalar is a key of its own). `<name>_valid` marks the
rows whose values are fresh. Samples are kept only as long as an unwritten row may need them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.corecord import METHODS, Method, numeric_fields, resample
from vidihand_ros.dataset.schema import KeySpec
from vidihand_ros.errors import InputError

#: Key prefixes: what a zarr array name and a Python identifier both accept.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
VALUE_DTYPE = np.dtype(np.float64)


@dataclass(frozen=True)
class TopicSpec:
    """One co-recorded topic as configured: `data/<name>_<field>` keys from `topic`."""

    name: str
    topic: str
    #: Dotted field prefixes to keep (`position`, `pose.position`); empty: every numeric field.
    fields: tuple[str, ...] = ()
    method: Method = "nearest"
    max_age_s: float = 0.1

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise InputError(f"co-recorded topic name {self.name!r}: use letters, digits and _")
        if not self.topic:
            raise InputError(f"co-recorded topic {self.name}: no topic given")
        if self.method not in METHODS:
            raise InputError(
                f"co-recorded topic {self.name}: method {self.method!r} is not one of {', '.join(METHODS)}",
            )
        if not (math.isfinite(self.max_age_s) and self.max_age_s >= 0):
            raise InputError(f"co-recorded topic {self.name}: max_age_s must be a finite number >= 0")

    @property
    def valid_key(self) -> str:
        return f"{self.name}_valid"


@dataclass(frozen=True)
class KeyLayout:
    """One `data/` key of a topic: which columns of the flat sample vector it holds."""

    key: str
    field: str
    columns: tuple[str, ...]
    start: int
    scalar: bool

    @property
    def shape(self) -> tuple[int, ...]:
        return () if self.scalar else (len(self.columns),)


def _layout(spec: TopicSpec, columns: list[str]) -> list[KeyLayout]:
    groups: dict[str, list[str]] = {}
    for column in columns:
        parent, _, leaf = column.rpartition(".")
        groups.setdefault(parent or column, []).append(leaf if parent else column)
    keys, start = [], 0
    for field, leaves in groups.items():
        scalar = leaves == [field]
        key = f"{spec.name}_{field.replace('.', '_')}"
        keys.append(KeyLayout(key, field, tuple(leaves), start, scalar))
        start += len(leaves)
    return keys


class CorecordedTopic:
    """Samples of one topic, stamped; `values_at(times)` resamples them to camera time."""

    def __init__(self, spec: TopicSpec, msgtype: str = "") -> None:
        self.spec = spec
        self.msgtype = msgtype
        self.columns: tuple[str, ...] | None = None
        self.layout: list[KeyLayout] = []
        self.samples = 0
        self.refused = 0
        self._times: list[int] = []
        self._values: list[NDArray[np.float64]] = []

    @property
    def newest_ns(self) -> int | None:
        return self._times[-1] if self._times else None

    def add(self, stamp_ns: int, message: Any) -> bool:
        """Keep one sample; False (counted in `refused`) for one older than the newest or whose
        fields differ from the first message's. The first message's fields must hold numbers."""
        values = numeric_fields(message)
        if self.columns is None:
            self._fix_columns(values)
        assert self.columns is not None
        if (self._times and stamp_ns < self._times[-1]) or not all(c in values for c in self.columns):
            self.refused += 1
            return False
        self._times.append(int(stamp_ns))
        self._values.append(np.fromiter((values[c] for c in self.columns), VALUE_DTYPE, len(self.columns)))
        self.samples += 1
        return True

    def _fix_columns(self, values: Mapping[str, float]) -> None:
        wanted = self.spec.fields
        columns = [c for c in values if not wanted or any(c == f or c.startswith(f"{f}.") for f in wanted)]
        missing = [f for f in wanted if not any(c == f or c.startswith(f"{f}.") for c in values)]
        if missing or not columns:
            fields = sorted({c.split(".")[0] for c in values}) or ["none"]
            raise InputError(
                f"co-recorded topic {self.spec.topic} ({self.msgtype or 'message'}): no numeric field "
                f"{', '.join(missing) or 'at all'} (numeric fields: {', '.join(fields)})"
            )
        self.columns = tuple(columns)
        self.layout = _layout(self.spec, columns)

    def key_specs(self) -> list[KeySpec]:
        """The topic's `data/` keys (known once a message came) and its `<name>_valid` mask."""
        if self.columns is None:
            return []
        spec = self.spec
        about = (
            f"of {spec.topic} ({self.msgtype or 'message'}) resampled to camera time ({spec.method}, "
            f"max age {spec.max_age_s:g} s); NaN where stale ({spec.valid_key} False)."
        )
        keys = [
            KeySpec(k.key, VALUE_DTYPE, k.shape, math.nan, f"Field {k.field} {about}") for k in self.layout
        ]
        valid = f"True where every value of {spec.topic} is fresh (a sample within {spec.max_age_s:g} s)."
        return [*keys, KeySpec(spec.valid_key, np.dtype(np.bool_), (), False, valid)]

    def key_attrs(self) -> dict[str, dict[str, Any]]:
        """Attributes of each key: topic, type, field, columns and how it was resampled."""
        spec = self.spec
        common = {
            "topic": spec.topic,
            "type": self.msgtype,
            "method": spec.method,
            "max_age_s": spec.max_age_s,
        }
        attrs = {
            k.key: {**common, "field": k.field, "columns": list(k.columns), "corecorded": True}
            for k in self.layout
        }
        attrs[spec.valid_key] = {**common, "field": None, "columns": [], "corecorded": True}
        return attrs

    def values_at(self, at_ns: NDArray[np.int64]) -> tuple[dict[str, NDArray[Any]], int]:
        """Each key's values at `at_ns` (M rows) and the valid mask; also the number of stale rows."""
        if self.columns is None:
            return {}, len(at_ns)
        times = np.asarray(self._times, dtype=np.int64)
        values = np.stack(self._values) if self._values else np.empty((0, len(self.columns)))
        out, stale = resample(times, values, at_ns, method=self.spec.method, max_age_s=self.spec.max_age_s)
        result: dict[str, NDArray[Any]] = {
            k.key: out[:, k.start] if k.scalar else out[:, k.start : k.start + len(k.columns)]
            for k in self.layout
        }
        result[self.spec.valid_key] = ~stale
        return result, int(stale.sum())

    def covers(self, at_ns: int) -> bool:
        """True once no later sample can change the value at `at_ns` (one at or after it came)."""
        return bool(self._times) and self._times[-1] >= at_ns

    def forget_before(self, at_ns: int) -> None:
        """Drop samples no row at or after `at_ns` can use (keeping the last one before its window)."""
        limit = at_ns - int(self.spec.max_age_s * 1e9)
        keep = int(np.searchsorted(np.asarray(self._times, dtype=np.int64), limit, side="left")) - 1
        if keep > 0:
            del self._times[:keep]
            del self._values[:keep]
