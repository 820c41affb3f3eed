"""Read a replay-buffer dataset by episode, trusting only rows below `meta/episode_ends[-1]`.

Rows beyond the last committed end are leftovers of an interrupted writer and do not exist for
the reader. Works for any diffusion_policy / UMI replay buffer (directory or `.zarr.zip`); the
vidihand_ros attributes are used where present.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.schema import EPISODE_ENDS, IMAGE_KEY, hand_key
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import HAND_SIDES


class DatasetReader:
    """Episode-wise access to `data/<key>` arrays and the dataset / episode attributes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (zc.is_group_dir(self.path) or zc.is_zip_store(self.path)):
            raise DatasetError(
                "not a zarr dataset (no such directory, or no zarr group in it)", source=self.path
            )
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
        """The raw zarr array (all rows, including any uncommitted leftovers past `num_frames`)."""
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
        """Share of the episode's frames where the `side` hand was estimated and likely present."""
        if side not in HAND_SIDES:
            raise ValueError(f"hand side must be one of {HAND_SIDES}, got {side!r}")
        start, stop = self.bounds(i)
        if stop == start:
            return float("nan")
        valid = np.asarray(self._arrays[hand_key(side, "valid")][start:stop], dtype=bool)
        presence = np.asarray(self._arrays[hand_key(side, "presence")][start:stop])
        return float(np.mean(valid & (presence >= min_presence)))
