"""Write episodes into a diffusion_policy / UMI replay-buffer Zarr dataset (zarr format 2).

Crash safety comes from the order of writes. While an episode is recorded, its images and rows go
into chunk files past the arrays' shape, so every array stays exactly `episode_ends[-1]` long (as
diffusion_policy's ReplayBuffer asserts) and the dataset opens at any moment. Commit then grows the
arrays over the new rows, adds the episode's record to `meta` attrs, and appends to
`meta/episode_ends` last: its new chunk is written atomically before the array's metadata grows to
include it. A writer killed at any moment leaves every committed episode intact, and only a kill
inside a commit leaves arrays longer than `episode_ends[-1]` (readers ignore those rows); the next
append truncates such leftovers.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from vidihand_ros import __version__
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.attrs import to_json, utc_now
from vidihand_ros.dataset.episode import EpisodeWriter
from vidihand_ros.dataset.images import ImageStore
from vidihand_ros.dataset.schema import (
    CAMERA_KEYS,
    DEFAULT_JPEG_QUALITY,
    EPISODE_ENDS,
    EPISODE_ENDS_CHUNK,
    IMAGE_KEY,
    LAYOUT,
    LAYOUT_VERSION,
    LOWDIM_CHUNK_ROWS,
    LOWDIM_SPECS,
    descriptions,
    lowdim_compressor,
)
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import Frame

try:  # advisory lock: one writer per dataset (released by the OS if the process dies)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".vidihand-writer.lock"
#: Low-dim rows buffered between zarr writes: one chunk, ~1.6 MB for every key together.
DEFAULT_FLUSH_FRAMES = LOWDIM_CHUNK_ROWS


class DatasetWriter:
    """Opens (or creates) a dataset and hands out one `EpisodeWriter` at a time.

    mode "w" creates a new dataset; it refuses to replace an existing dataset holding episodes
    (`dataset.staging.open_for_writing(..., overwrite=True)` replaces one safely) and never a
    directory that is not a zarr dataset. mode "a"
    appends (creating the dataset if there is none). `image_size` (width, height) resizes every
    frame to that size; None takes the first frame's size and rejects frames of other sizes.
    `attrs` is dataset-level provenance (software, estimator, ...), kept per writer session.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: Literal["w", "a"] = "w",
        image_size: tuple[int, int] | None = None,
        jpeg_quality: int = DEFAULT_JPEG_QUALITY,
        reencode: bool = False,
        attrs: Mapping[str, Any] | None = None,
        flush_frames: int = DEFAULT_FLUSH_FRAMES,
    ) -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        if flush_frames < 1:
            raise ValueError("flush_frames must be >= 1")
        self.path = Path(path)
        self.flush_frames = flush_frames
        self.passthrough_frames = 0
        self.reencoded_frames = 0
        self._active: EpisodeWriter | None = None
        self._lock: Any = None
        provenance = to_json(dict(attrs or {}))
        if image_size is not None:
            image_size = (int(image_size[0]), int(image_size[1]))
            if min(image_size) < 1:
                raise ValueError(f"image_size must be positive (width, height), got {image_size}")

        self._prepare_directory(mode)
        try:
            self._lock = acquire_lock(self.path)
            if mode == "w" or not zc.is_group_dir(self.path):
                self._clear_directory()
                self._root = zc.open_group(self.path, "a")
                self._create_layout(image_size, jpeg_quality, provenance)
            else:
                self._root = zc.open_group(self.path, "r+")
                self._check_layout()
            self._open_layout(image_size, jpeg_quality, reencode)
            self._truncate_to_committed()
            self._start_session(mode, provenance)
        except BaseException:
            self._release_lock()
            raise

    # -- public -------------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        return len(self._ends)

    @property
    def num_frames(self) -> int:
        """Committed frames (rows of every data array that readers see)."""
        return self._ends[-1] if self._ends else 0

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the stored images; None until the first frame when it was left open."""
        return self._images.size

    @property
    def jpeg_quality(self) -> int:
        """Quality of frames this writer encodes (pass-through frames keep their own)."""
        return self._images.jpeg_quality

    def begin_episode(self, attrs: Mapping[str, Any] | None = None) -> EpisodeWriter:
        """Start the next episode; `attrs` (task, source files, topics, ...) go into its meta record."""
        if self._root is None:
            raise DatasetError("the dataset writer is closed", source=self.path)
        if self._active is not None:
            raise DatasetError(
                "an episode is already being written; commit or abort it first", source=self.path
            )
        self._active = EpisodeWriter(self, to_json(dict(attrs or {})))
        return self._active

    def close(self) -> None:
        """Abort an episode still open, then release the dataset."""
        if self._active is not None:
            self._active.abort()
        self._root = None
        self._release_lock()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the EpisodeStore an EpisodeWriter uses -----------------------------------------------

    def store_image(self, row: int, frame: Frame, index: int) -> tuple[bool, tuple[float, float]]:
        """Write one frame's image at `row` (past the committed length); (passed through, scale)."""
        return self._images.store(row, frame, index)

    def put_rows(self, start: int, values: Mapping[str, np.ndarray]) -> None:
        """Write low-dim rows at `start`, beyond the committed length (invisible until commit)."""
        for spec in LOWDIM_SPECS:
            zc.write_rows_direct(self._arrays[spec.name], start, values[spec.name], self.num_frames)

    def commit_episode(self, record: dict[str, Any], end: int) -> int:
        """Publish an episode whose rows are written: grow the arrays over them, add its record,
        and append to `episode_ends` last."""
        index = len(self._ends)
        self._episodes.append(record)
        try:
            for spec in LOWDIM_SPECS:
                zc.resize(self._arrays[spec.name], (end, *spec.shape))
            self._images.set_length(end)
            zc.update_attrs(self._meta, {"episodes": self._episodes})
            size = list(self._images.size) if self._images.size else None
            if self._root_attrs.get("image_size") != size:  # fixed by the first frame ever committed
                self._root_attrs["image_size"] = size
                zc.update_attrs(self._root, {"image_size": size})
            self._append_episode_end(end)
        except BaseException:
            self._episodes.pop()
            raise
        self.passthrough_frames += record["passthrough_frames"]
        self.reencoded_frames += record["reencoded_frames"]
        return index

    def discard_uncommitted(self) -> None:
        """Drop what an aborted episode wrote past the committed length."""
        self._truncate_to_committed()

    def episode_closed(self) -> None:
        self._active = None

    # -- opening ------------------------------------------------------------------------------

    def _prepare_directory(self, mode: str) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise DatasetError("exists and is not a directory", source=path)
        if path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir()):
            if not zc.is_group_dir(path):
                raise DatasetError("exists and is not a zarr dataset; refusing to replace it", source=path)
            if mode == "w" and not _is_empty_dataset(path):
                raise DatasetError(
                    "a dataset with data exists here; append to it, or replace it with overwrite",
                    source=path,
                )
        path.mkdir(parents=True, exist_ok=True)

    def _clear_directory(self) -> None:
        for child in self.path.iterdir():
            if child.name == LOCK_FILE:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _create_layout(self, image_size: tuple[int, int] | None, jpeg_quality: int, provenance: Any) -> None:
        zc.update_attrs(
            self._root,
            {
                "layout": LAYOUT,
                "layout_version": LAYOUT_VERSION,
                "software": f"vidihand_ros {__version__}",
                "created": utc_now(),
                "camera_keys": list(CAMERA_KEYS),
                "image_size": list(image_size) if image_size else None,
                "jpeg_quality": jpeg_quality,
                "keys": descriptions(),
                "provenance": provenance,
                "sessions": [],
            },
        )
        data = zc.require_group(self._root, "data")
        for spec in LOWDIM_SPECS:
            zc.create_array(
                data,
                spec.name,
                shape=(0, *spec.shape),
                chunks=spec.chunks,
                dtype=spec.dtype,
                compressor=lowdim_compressor(),
                fill_value=spec.fill,
                attrs={"description": spec.description},
            )
        meta = zc.require_group(self._root, "meta")
        zc.create_array(
            meta,
            EPISODE_ENDS,
            shape=(0,),
            chunks=(EPISODE_ENDS_CHUNK,),
            dtype=np.int64,
            compressor=None,
            fill_value=0,
            attrs={"description": "Cumulative end row (exclusive) of each episode in data/*."},
        )
        zc.update_attrs(meta, {"episodes": []})

    def _check_layout(self) -> None:
        attrs = zc.get_attrs(self._root)
        if zc.zarr_format(self._root) != 2 or attrs.get("layout") != LAYOUT:
            raise DatasetError("not a vidihand_ros dataset; can only append to one", source=self.path)
        if attrs.get("layout_version") != LAYOUT_VERSION:
            raise DatasetError(
                f"dataset layout version {attrs.get('layout_version')}, this writer appends to "
                f"version {LAYOUT_VERSION} only",
                source=self.path,
            )

    def _open_layout(self, image_size: tuple[int, int] | None, jpeg_quality: int, reencode: bool) -> None:
        self._root_attrs = zc.get_attrs(self._root)
        try:
            data = self._root["data"]
            self._meta = self._root["meta"]
            self._arrays = {spec.name: data[spec.name] for spec in LOWDIM_SPECS}
            ends_array = self._meta[EPISODE_ENDS]
        except KeyError as err:
            raise DatasetError(f"dataset is missing {err}", source=self.path) from err
        self._ends_array = ends_array
        self._ends: list[int] = [int(v) for v in ends_array[:]]
        self._episodes: list[dict[str, Any]] = list(zc.get_attrs(self._meta).get("episodes", []))
        existing = data.get(IMAGE_KEY)
        size = image_size
        if existing is not None:
            height, width = existing.shape[1:3]
            if image_size is not None and image_size != (width, height):
                raise DatasetError(
                    f"dataset images are {width}x{height}, "
                    f"image_size asks for {image_size[0]}x{image_size[1]}",
                    source=self.path,
                )
            size = (width, height)
        self._images = ImageStore(
            data, size, resize=image_size is not None, jpeg_quality=jpeg_quality, reencode=reencode
        )

    def _truncate_to_committed(self) -> None:
        """Drop rows, chunk files and records left beyond the last committed episode.

        Rows of an unfinished episode live in chunk files past the arrays' shape, and only a crash
        during a commit leaves arrays longer than `episode_ends[-1]`.
        """
        rows = self.num_frames
        for spec in LOWDIM_SPECS:
            array = self._arrays[spec.name]
            if array.shape[0] < rows:
                raise DatasetError(
                    f"data/{spec.name} has {array.shape[0]} rows but episodes end at {rows}", source=self.path
                )
            if array.shape[0] > rows:
                zc.resize(array, (rows, *spec.shape))
            zc.remove_chunks_from(array, -(-rows // int(array.chunks[0])))
        self._images.truncate(rows)
        if len(self._episodes) != len(self._ends):
            self._episodes = self._episodes[: len(self._ends)]
            self._episodes += [{} for _ in range(len(self._ends) - len(self._episodes))]
            zc.update_attrs(self._meta, {"episodes": self._episodes})

    def _start_session(self, mode: str, provenance: Any) -> None:
        sessions = list(self._root_attrs.get("sessions", []))
        self.session = len(sessions)
        sessions.append(
            {
                "opened": utc_now(),
                "mode": mode,
                "software": f"vidihand_ros {__version__}",
                "zarr_python": zc.ZARR_VERSION,
                "provenance": provenance,
            }
        )
        self._root_attrs["sessions"] = sessions
        zc.update_attrs(self._root, {"sessions": sessions})

    # -- committing ---------------------------------------------------------------------------

    def _append_episode_end(self, end: int) -> None:
        """Atomic append: write the chunk holding the new end, then grow the array over it."""
        array = self._ends_array
        chunk_len = int(array.chunks[0])
        n = len(self._ends)
        first = (n // chunk_len) * chunk_len
        chunk = np.zeros(chunk_len, dtype=np.int64)
        values = [*self._ends[first:], end]
        chunk[: len(values)] = values
        zc.write_chunk_bytes(array, (n // chunk_len,), zc.encode_chunk(array, chunk), atomic=True)
        zc.resize(array, (n + 1,))  # the commit point: one atomic metadata replace
        self._ends.append(end)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _is_empty_dataset(path: Path) -> bool:
    """A vidihand_ros dataset without committed episodes (safe to replace without asking)."""
    with contextlib.suppress(Exception):
        root = zc.open_group(path, "r")
        if zc.get_attrs(root).get("layout") == LAYOUT:
            return int(root["meta"][EPISODE_ENDS].shape[0]) == 0
    return False


def acquire_lock(path: Path) -> Any:
    """Hold the advisory writer lock of the dataset at `path` (a handle to close), or refuse."""
    if fcntl is None:  # pragma: no cover
        return None
    handle = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the writer's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        handle.close()
        raise DatasetError("another writer has this dataset open", source=path) from err
    return handle
