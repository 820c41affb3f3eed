"""Replace whole `data/<key>` arrays of an existing dataset, all keys or none (crash-safe).

Derived keys (`vidihand label`'s robot actions) are computed for every row at once and may be
recomputed later. Their new chunk files and attributes go through the dataset's redo journal
(`dataset.journal`, the one `vidihand annotate` uses): its manifest is the commit point, and the
next writer, `vidihand annotate`, `vidihand label` or `DatasetReader` finishes a journal that was
committed when the process died. Keys that do not exist yet are first created holding only their
fill value (NaN / False: "not computed"), so a kill before the commit leaves either no key or an
empty one, and readers never see a mix of old and new values.

A key is only ever replaced by the `owner` that created it: a co-recorded topic that happens to
have the same name is refused, not overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidihand_ros.dataset import journal
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.attrs import to_json
from vidihand_ros.dataset.schema import EPISODE_ENDS, IMAGE_KEY, LOWDIM_BY_NAME, KeySpec, lowdim_compressor
from vidihand_ros.errors import DatasetError

__all__ = ["OWNER_ATTR", "TRASH_DIR", "Column", "owned_keys", "remove_columns", "replace_columns"]

#: The array attribute naming the tool that owns (and may replace) the key.
OWNER_ATTR = "written_by"
#: Where removed keys go before they are deleted (zarr ignores it: no zarr metadata at its top).
TRASH_DIR = ".vidihand-removed-keys"


@dataclass(frozen=True)
class Column:
    """A whole key: its spec, a value for every committed row, and the attributes to record."""

    spec: KeySpec
    values: np.ndarray
    attrs: Mapping[str, Any] = field(default_factory=dict)


def replace_columns(path: Path, columns: Sequence[Column], *, owner: str) -> None:
    """Write `columns` into `path/data/`, replacing the same keys written before by `owner`.

    The caller holds the writer lock (`dataset.lock`) and has run `journal.recover(path)`. The
    dataset must hold at least one episode (the journal commits with an episode's record).
    """
    root = zc.open_group(path, "r+")
    data, meta = root["data"], root["meta"]
    rows = int(meta[EPISODE_ENDS][-1]) if meta[EPISODE_ENDS].shape[0] else 0
    records = list(zc.get_attrs(meta).get("episodes", []))
    if not records:
        raise DatasetError("the dataset holds no episodes; there is nothing to write keys for", source=path)
    existing = set(data.array_keys())
    for column in columns:  # every check before anything is created
        _check(path, data, column, rows, owner, existing)
    arrays = {}
    for column in columns:
        spec = column.spec
        if spec.name in existing:
            array = data[spec.name]
            if array.shape[0] < rows:  # episodes appended since: grow over them (fill values)
                zc.resize(array, (rows, *spec.shape))
        else:
            array = zc.create_array(
                data,
                spec.name,
                shape=(rows, *spec.shape),
                chunks=spec.chunks,
                dtype=spec.dtype,
                compressor=lowdim_compressor(),
                fill_value=spec.fill,
                attrs={"description": spec.description, OWNER_ATTR: owner},
            )
        arrays[spec.name] = array
    change = journal.Journal(path)
    try:
        for column in columns:
            _stage(change, arrays[column.spec.name], column, rows, owner)
        change.commit(0, records[0])  # the record is unchanged: the commit point only
    except BaseException:
        change.discard()
        raise
    change.apply()


def owned_keys(path: Path, owner: str) -> list[str]:
    """The `data/` keys `owner` wrote."""
    data = zc.open_group(path, "r")["data"]
    return sorted(name for name in data.array_keys() if zc.get_attrs(data[name]).get(OWNER_ATTR) == owner)


def remove_columns(path: Path, names: Sequence[str], *, owner: str) -> None:
    """Delete the keys `names` that `owner` wrote (the caller holds the writer lock).

    Each key's folder is first moved out of `data/` (one atomic rename), then deleted, so a kill
    leaves each key whole or gone; what is left in `TRASH_DIR` goes at the next call.
    """
    trash = path / TRASH_DIR
    if trash.is_symlink():
        trash.unlink()
    elif trash.exists():
        shutil.rmtree(trash)
    owned = set(owned_keys(path, owner))
    doomed = [name for name in names if name in owned]
    if not doomed:
        return
    trash.mkdir()
    for name in doomed:
        os.replace(path / "data" / name, trash / name)
    shutil.rmtree(trash)


def _check(path: Path, data: zc.Group, column: Column, rows: int, owner: str, existing: set[str]) -> None:
    spec = column.spec
    if spec.name in LOWDIM_BY_NAME or spec.name == IMAGE_KEY:
        raise DatasetError(f"data/{spec.name} is a key of the schema, not a derived one", source=path)
    values = np.asarray(column.values)
    if values.shape != (rows, *spec.shape):
        raise ValueError(f"{spec.name}: {values.shape} values for {rows} rows of shape {spec.shape}")
    if spec.name not in existing:
        return
    array = data[spec.name]
    written_by = zc.get_attrs(array).get(OWNER_ATTR)
    if written_by != owner:
        raise DatasetError(
            f"data/{spec.name} exists and was not written by {owner} (a co-recorded topic?); "
            "nothing was changed",
            source=path,
        )
    same = (tuple(array.shape[1:]), np.dtype(array.dtype), tuple(array.chunks)) == (
        spec.shape,
        spec.dtype,
        spec.chunks,
    )
    if not same:
        raise DatasetError(
            f"data/{spec.name} holds {array.dtype} rows of shape {tuple(array.shape[1:])}, chunks "
            f"{tuple(array.chunks)}; expected {spec.dtype} {spec.shape}; nothing was changed",
            source=path,
        )


def _stage(change: journal.Journal, array: zc.Array, column: Column, rows: int, owner: str) -> None:
    """Journal every chunk file of the key's committed rows, and its new `.zattrs`."""
    spec = column.spec
    values = np.asarray(column.values, dtype=spec.dtype)
    size = int(array.chunks[0])
    tail = (0,) * len(spec.shape)
    for k in range(-(-rows // size)):
        chunk = np.full(array.chunks, spec.fill, dtype=spec.dtype)
        part = values[k * size : (k + 1) * size]
        chunk[: len(part)] = part
        change.add(zc.chunk_file(array, (k, *tail)), zc.encode_chunk(array, chunk))
    # Replaced whole, not merged: nothing of an earlier run's attributes outlives its values.
    attrs = {**to_json(dict(column.attrs)), "description": spec.description, OWNER_ATTR: owner}
    folder = zc.chunk_file(array, (0, *tail)).parent
    text = json.dumps(to_json(attrs), indent=4, sort_keys=True, allow_nan=False)
    change.add(folder / ".zattrs", text.encode())
