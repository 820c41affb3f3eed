"""Read a replay-buffer dataset by episode, trusting only rows below `meta/episode_ends[-1]`.

Rows beyond the last committed end are leftovers of an interrupted writer and do not exist for
the reader. Works for any diffusion_policy / UMI replay buffer (directory or `.zarr.zip`); the
vidihand_ros attributes are used where present. `<side>_hand_valid` always reads with the current
meaning (`dataset.validity`): the stored mask of layout 1, which also covers NaN rows, and that of
a dataset without our layout attributes are narrowed to the rows whose pose is finite. An
annotation committed but not finished (`dataset.journal`: the annotating process was killed) is
finished first when the writer lock is free and the dataset writable, else read as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset import journal
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.schema import EPISODE_ENDS, IMAGE_KEY, LAYOUT, hand_key
from vidihand_ros.dataset.validity import REQUIRED_FIELDS, episode_has_poses, honest_valid
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import HAND_SIDES

log = logging.getLogger(__name__)

#: The first layout whose stored `<side>_hand_valid` means "pose usable" (read as stored).
HONEST_VALID_LAYOUT = 2


class DatasetReader:
    """Episode-wise access to `data/<key>` arrays and the dataset / episode attributes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (zc.is_group_dir(self.path) or zc.is_zip_store(self.path)):
            raise DatasetError(
                "not a zarr dataset (no such directory, or no zarr group in it)", source=self.path
            )
        if not zc.is_zip_store(self.path):
            finished = journal.finish_committed(self.path)
            if finished:
                log.warning("%s: %s", self.path, finished)
        try:
            self._root = zc.open_group(self.path, "r")
            self._data = self._root["data"]
            self._meta = self._root["meta"]
            ends = np.asarray(self._meta[EPISODE_ENDS][:], dtype=np.int64)
        except (KeyError, FileNotFoundError, ValueError) as err:
            raise DatasetError(
                f"not a replay-buffer dataset (needs data/ and meta/episode_ends): {err}", source=self.path
            ) from err
        if len(ends) and (ends[0] < 0 or np.any(np.diff(ends) < 0)):
            raise DatasetError("meta/episode_ends is not non-decreasing", source=self.path)
        self._ends = ends
        self._arrays = {name: self._data[name] for name in sorted(self._data.array_keys())}
        for name, array in self._arrays.items():
            if array.shape[0] < self.num_frames:
                raise DatasetError(
                    f"data/{name} has {array.shape[0]} rows, episodes end at {self.num_frames}",
                    source=self.path,
                )
        self.attrs: dict[str, Any] = zc.get_attrs(self._root)
        self._records: list[Any] = list(zc.get_attrs(self._meta).get("episodes", []))
        version = self.layout_version
        if version is None or version < HONEST_VALID_LAYOUT:
            self._narrow_valid_masks()

    @property
    def layout_version(self) -> int | None:
        """The vidihand_ros layout version (`schema.LAYOUT_VERSION` when written now).

        None for a replay buffer written by another tool (no vidihand_ros layout attributes): its
        `<side>_hand_valid`, if it has one, is read like layout 1's, narrowed to finite poses.
        """
        if self.attrs.get("layout") != LAYOUT:
            return None
        version = self.attrs.get("layout_version")
        return version if isinstance(version, int) and not isinstance(version, bool) else None

    def _narrow_valid_masks(self) -> None:
        """Wrap each stored valid mask (and presence) of an older layout so every read is honest."""
        for side in HAND_SIDES:
            key = hand_key(side, "valid")
            if key in self._arrays:
                stored = self._arrays[key]
                fields = {f: self._arrays.get(hand_key(side, f)) for f in REQUIRED_FIELDS}
                self._arrays[key] = NarrowedValid(stored, fields)
                presence = hand_key(side, "presence")
                if presence in self._arrays:
                    self._arrays[presence] = NarrowedPresence(self._arrays[presence], stored)

    @property
    def episode_ends(self) -> NDArray[np.int64]:
        return self._ends.copy()

    @property
    def num_episodes(self) -> int:
        return len(self._ends)

    @property
    def num_frames(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def keys(self) -> list[str]:
        return list(self._arrays)

    @property
    def image_keys(self) -> list[str]:
        """Keys of (N, H, W, C) uint8 arrays (camera images)."""
        return [k for k, a in self._arrays.items() if len(a.shape) == 4 and a.dtype == np.uint8]

    def array(self, key: str) -> zc.Array:
        """The zarr array (all rows, including any uncommitted leftovers past `num_frames`).

        Raw, except `<side>_hand_valid` of an older layout: a `NarrowedValid` that indexes like it.
        """
        return self._arrays[key]

    def bounds(self, i: int) -> tuple[int, int]:
        """(first row, end row) of episode `i`; negative `i` counts from the end."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range (dataset has {self.num_episodes})")
        i %= self.num_episodes
        start = int(self._ends[i - 1]) if i > 0 else 0
        return start, int(self._ends[i])

    def episode(self, i: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays of episode `i`; by default every key except the (large) images."""
        start, stop = self.bounds(i)
        names = [k for k in self._arrays if k not in self.image_keys] if keys is None else list(keys)
        missing = [k for k in names if k not in self._arrays]
        if missing:
            raise KeyError(f"no such keys in data/: {missing}")
        return {k: np.asarray(self._arrays[k][start:stop]) for k in names}

    def frames(self, i: int, key: str = IMAGE_KEY) -> Iterator[NDArray[np.uint8]]:
        """Images of episode `i`, decoded one at a time (memory stays one frame)."""
        start, stop = self.bounds(i)
        array = self._arrays[key]
        for row in range(start, stop):
            yield np.asarray(array[row])

    def frame(self, i: int, t: int, key: str = IMAGE_KEY) -> NDArray[np.uint8]:
        """Image `t` of episode `i`."""
        start, stop = self.bounds(i)
        if not 0 <= t < stop - start:
            raise IndexError(f"frame {t} out of range (episode {i} has {stop - start})")
        return np.asarray(self._arrays[key][start + t])

    def episode_attrs(self, i: int) -> dict[str, Any]:
        """The episode's meta record ({} for datasets written by other tools)."""
        self.bounds(i)
        i %= self.num_episodes
        return dict(self._records[i]) if i < len(self._records) else {}

    def has_poses(self, i: int) -> bool | None:
        """Whether episode `i`'s hand keys hold poses (estimated or ground truth), from its record.

        False for a frames-only episode; None when the record does not say (other tools' datasets).
        """
        return episode_has_poses(self.episode_attrs(i))

    def fps(self, i: int) -> float:
        """Frame rate from the median stamp step (robust to dropped frames); NaN below 2 frames."""
        start, stop = self.bounds(i)
        if stop - start < 2:
            return float("nan")
        if "stamp_ns" in self._arrays:  # exact integers: differences lose nothing
            steps = np.diff(np.asarray(self._arrays["stamp_ns"][start:stop], dtype=np.int64)) * 1e-9
        else:
            steps = np.diff(np.asarray(self._arrays["timestamp"][start:stop], dtype=np.float64))
        step = float(np.median(steps))
        return 1.0 / step if step > 0 else float("nan")

    def hand_share(self, i: int, side: str, min_presence: float = 0.5) -> float:
        """Share of the episode's frames where the `side` hand's pose is valid and likely present."""
        if side not in HAND_SIDES:
            raise ValueError(f"hand side must be one of {HAND_SIDES}, got {side!r}")
        start, stop = self.bounds(i)
        if stop == start:
            return float("nan")
        valid = np.asarray(self._arrays[hand_key(side, "valid")][start:stop], dtype=bool)
        presence = np.asarray(self._arrays[hand_key(side, "presence")][start:stop])
        return float(np.mean(valid & (presence >= min_presence)))


class _DerivedRows:
    """A stored array read through a rule: shape, dtype, chunks and attrs stay the stored array's."""

    def __init__(self, stored: zc.Array) -> None:
        self.stored = stored

    def __getitem__(self, selection: Any) -> NDArray[Any]:
        raise NotImplementedError

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        values = self[...]
        return values if dtype is None else values.astype(dtype)

    def __len__(self) -> int:
        return int(self.stored.shape[0])

    def __getattr__(self, name: str) -> Any:
        if name == "stored":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.stored, name)


def _rows(selection: Any) -> Any:
    """The row part of an index (an int, a slice, `...`, or a 1-tuple of one)."""
    return selection[0] if isinstance(selection, tuple) and len(selection) == 1 else selection


class NarrowedValid(_DerivedRows):
    """A stored `<side>_hand_valid` that may be True on NaN rows, read as `validity.honest_valid`.

    Indexing along rows reads the stored mask and the same rows of the required fields.
    """

    def __init__(self, stored: zc.Array, fields: dict[str, zc.Array | None]) -> None:
        super().__init__(stored)
        self._fields = fields

    def __getitem__(self, selection: Any) -> NDArray[np.bool_]:
        rows = _rows(selection)
        values = {name: None if a is None else np.asarray(a[rows]) for name, a in self._fields.items()}
        return honest_valid(np.asarray(self.stored[selection]), values)


class NarrowedPresence(_DerivedRows):
    """A stored `<side>_hand_presence` of layout 1, which stored 0 where nothing was estimated:
    NaN there (the stored valid mask said so), as layout 2 stores it."""

    def __init__(self, stored: zc.Array, estimated: zc.Array) -> None:
        super().__init__(stored)
        self._estimated = estimated

    def __getitem__(self, selection: Any) -> NDArray[np.float32]:
        presence = np.asarray(self.stored[selection], dtype=np.float32)
        return np.where(
            np.asarray(self._estimated[_rows(selection)], dtype=bool), presence, np.float32(np.nan)
        )
