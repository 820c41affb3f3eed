"""Write episodes into a diffusion_policy / UMI replay-buffer Zarr dataset (zarr format 2).

Crash safety comes from the order of writes. While an episode is recorded, its images and rows go
into chunk files past the arrays' shape, so every array stays exactly `episode_ends[-1]` long (as
diffusion_policy's ReplayBuffer asserts) and the dataset opens at any moment. Committed episodes
are *published* in groups: one publish grows every array over the new rows, writes the episodes'
records into `meta` attrs, and appends their ends to `meta/episode_ends` last: its new chunks are
written atomically before the array's metadata grows to include them (the commit point).

`commit_interval_s` sets how often: 0 publishes every episode at its commit (what a live capture
wants); a batch conversion publishes at most every `commit_interval_s` (episodes committed sooner
wait, pending, and a publish costs ~30 file writes whatever their number), at `publish()` and at
`close()`. A writer killed at any moment leaves every published episode intact and loses only the
episode in progress and the pending ones, which were all committed within the last
`commit_interval_s`. Only a kill inside a publish leaves arrays longer than `episode_ends[-1]`
(readers ignore those rows); the next writer truncates such leftovers. An OSError (a full disk)
while publishing rolls the dataset back to its last published state and raises a `DatasetError`.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from vidihand_ros import __version__
from vidihand_ros.dataset import journal
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.attrs import to_json, utc_now
from vidihand_ros.dataset.episode import EpisodeWriter
from vidihand_ros.dataset.images import FaceFilter, ImageStore
from vidihand_ros.dataset.lock import LOCK_FILE, WriterLock, acquire_lock, os_reason
from vidihand_ros.dataset.rows import RowBuffer
from vidihand_ros.dataset.schema import (
    CAMERA_KEYS,
    DEFAULT_JPEG_QUALITY,
    EPISODE_ENDS,
    EPISODE_ENDS_CHUNK,
    IMAGE_KEY,
    LAYOUT,
    LAYOUT_VERSION,
    LOWDIM_BY_NAME,
    LOWDIM_CHUNK_ROWS,
    LOWDIM_SPECS,
    KeySpec,
    descriptions,
    lowdim_compressor,
)
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import Frame, FramePoses

#: Low-dim rows buffered between zarr writes: one chunk, ~1.6 MB for every key together.
DEFAULT_FLUSH_FRAMES = LOWDIM_CHUNK_ROWS
#: How long batch commands (convert, import) let committed episodes wait before publishing them.
BATCH_COMMIT_INTERVAL_S = 1.0
#: The clock of `commit_interval_s` (a module attribute, so tests can move time).
clock = time.monotonic


@dataclass(frozen=True)
class _Pending:
    """A committed episode not yet published: its meta record and end row."""

    record: dict[str, Any]
    end: int


class DatasetWriter:
    """Opens (or creates) a dataset and hands out one `EpisodeWriter` at a time.

    mode "w" creates a new dataset; it refuses to replace an existing dataset holding episodes
    (`dataset.staging.open_for_writing(..., overwrite=True)` replaces one safely) and never a
    directory that is not a zarr dataset. mode "a"
    appends (creating the dataset if there is none). `image_size` (width, height) resizes every
    frame to that size; None takes the first frame's size and rejects frames of other sizes.
    `attrs` is dataset-level provenance (software, estimator, ...), kept per writer session.
    `commit_interval_s` groups commits (module docstring); 0 publishes each episode at its commit.
    `face_blurrer` (owned by the caller, who closes it) blurs faces in every frame stored, and each
    episode's record gets a `privacy` entry counting them (`ImageStore`).
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
        commit_interval_s: float = 0.0,
        face_blurrer: FaceFilter | None = None,
    ) -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        if flush_frames < 1:
            raise ValueError("flush_frames must be >= 1")
        if not commit_interval_s >= 0:
            raise ValueError(f"commit_interval_s must be >= 0, got {commit_interval_s}")
        self.path = Path(path)
        self.flush_frames = flush_frames
        self.commit_interval_s = float(commit_interval_s)
        self.passthrough_frames = 0
        self.reencoded_frames = 0
        #: Frames of the published episodes in which faces were blurred, and the faces.
        self.frames_with_faces = 0
        self.faces_blurred = 0
        self._active: EpisodeWriter | None = None
        self._lock: WriterLock | None = None
        self._root: zc.Group | None = None
        self._pending: list[_Pending] = []
        #: Directories this writer made (innermost first), or the names in the empty folder it
        #: found: what `close(discard_if_new=True)` restores.
        self._created: list[Path] = []
        self._found_empty: set[str] | None = None
        self._face_blurrer = face_blurrer
        provenance = to_json(dict(attrs or {}))
        if image_size is not None:
            image_size = (int(image_size[0]), int(image_size[1]))
            if min(image_size) < 1:
                raise ValueError(f"image_size must be positive (width, height), got {image_size}")
        try:
            self._open(mode, image_size, jpeg_quality, reencode, provenance)
        except BaseException as err:
            with contextlib.suppress(OSError):
                self._undo_creation(removing=self._lock is not None)
            self._release_lock()
            self._root = None
            if isinstance(err, OSError):
                raise DatasetError(
                    f"cannot open for writing: {os_reason(err, self.path)}", source=self.path
                ) from err
            raise
        self._last_publish = clock()

    # -- public -------------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        """Committed episodes, published or pending (the next episode's index)."""
        return len(self._ends) + len(self._pending)

    @property
    def num_frames(self) -> int:
        """Frames of the committed episodes, published or pending (the next episode's first row)."""
        return self._pending[-1].end if self._pending else self.published_frames

    @property
    def published_episodes(self) -> int:
        """Episodes readers see (`meta/episode_ends` holds them)."""
        return len(self._ends)

    @property
    def published_frames(self) -> int:
        """Rows of every data array that readers see."""
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

    @property
    def extra_keys(self) -> dict[str, KeySpec]:
        """Keys beyond the schema's (co-recorded topics), found in the dataset or added."""
        return {spec.name: spec for spec in self._specs if spec.name not in LOWDIM_BY_NAME}

    def add_keys(self, specs: Sequence[KeySpec], attrs: Mapping[str, Mapping[str, Any]]) -> None:
        """Create `data/<key>` arrays beyond the schema (co-recorded topics), NaN (their fill) for
        every row written so far; a key already there must have the same per-row shape and dtype.

        `attrs[name]` describes the key (topic, type, field). The arrays start at the published
        length, so the dataset stays openable at every moment.
        """
        if self._root is None:
            raise DatasetError("the dataset writer is closed", source=self.path)
        for spec in specs:
            if spec.name in LOWDIM_BY_NAME or spec.name == IMAGE_KEY:
                raise DatasetError(f"data/{spec.name} is a key of the schema", source=self.path)
            known = self.extra_keys.get(spec.name)
            if known is not None:
                if (known.shape, known.dtype) != (spec.shape, spec.dtype):
                    raise DatasetError(
                        f"data/{spec.name} holds {known.dtype} rows of shape {known.shape}, "
                        f"this recording has {spec.dtype} rows of shape {spec.shape}",
                        source=self.path,
                    )
                continue
            try:
                self._arrays[spec.name] = zc.create_array(
                    self._root["data"],
                    spec.name,
                    shape=(self.published_frames, *spec.shape),
                    chunks=spec.chunks,
                    dtype=spec.dtype,
                    compressor=lowdim_compressor(),
                    fill_value=spec.fill,
                    attrs={"description": spec.description, **to_json(dict(attrs.get(spec.name, {})))},
                )
            except OSError as err:
                raise DatasetError(
                    f"cannot create data/{spec.name}: {os_reason(err, self.path)}", source=self.path
                ) from err
            self._specs.append(spec)
            self._rows.block.add_spec(spec)

    def publish(self) -> None:
        """Make every committed episode visible to readers now, in one group.

        On failure the pending episodes are dropped and the dataset rolled back to what readers saw
        before; an OSError becomes a `DatasetError` naming the dataset.
        """
        if not self._pending:
            return
        if self._root is None:
            raise DatasetError("the dataset writer is closed", source=self.path)
        try:
            self._publish_pending()
        except BaseException as err:
            lost = len(self._pending)
            self._roll_back()
            if isinstance(err, OSError):
                raise DatasetError(
                    f"could not commit {lost} episode(s): {os_reason(err, self.path)}; "
                    "the dataset keeps its earlier episodes",
                    source=self.path,
                ) from err
            raise

    def close(self, *, discard_if_new: bool = False) -> None:
        """Abort an episode still open, publish the committed ones, then release the dataset.

        `discard_if_new` (after a failure) removes the dataset again when this writer created it
        and published no episode: the directories it made, or the contents it put in an empty
        folder; a dataset that existed before is never removed.
        """
        if self._root is None:
            self._release_lock()
            return
        try:
            self._finish()
        finally:
            try:
                if discard_if_new and not self._ends:
                    self._discard_new()
            finally:
                self._root = None
                self._release_lock()

    def _finish(self) -> None:
        try:
            if self._active is not None:
                self._active.abort()
        finally:
            self.publish()

    def _discard_new(self) -> None:
        try:
            self._undo_creation()
        except OSError as err:
            raise DatasetError(
                f"could not remove the unfinished dataset: {os_reason(err, self.path)}", source=self.path
            ) from err

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the EpisodeStore an EpisodeWriter uses -----------------------------------------------

    def store_image(self, row: int, frame: Frame, index: int) -> tuple[bool, tuple[float, float]]:
        """Write one frame's image at `row` (past the committed length); (passed through, scale)."""
        try:
            return self._images.store(row, frame, index)
        except OSError as err:
            raise DatasetError(
                f"cannot write the frame's image: {os_reason(err, self.path)}",
                source=self.path,
                index=frame.index,
            ) from err

    def store_row(
        self,
        row: int,
        frame: Frame,
        poses: FramePoses | None,
        scale: tuple[float, float],
        extras: Mapping[str, np.ndarray | float] | None = None,
    ) -> None:
        """Buffer one frame's low-dim row at `row`; full chunks are written as they fill."""
        if row != self._rows.end:
            raise RuntimeError(f"row {row} stored out of order (expected {self._rows.end})")
        try:
            self._rows.append(frame, poses, scale, extras)
        except OSError as err:
            raise DatasetError(
                f"cannot write rows: {os_reason(err, self.path)}", source=self.path, index=frame.index
            ) from err
        if self._pending and self._publish_due():
            self.publish()

    def commit_episode(self, record: dict[str, Any], end: int) -> int:
        """Add a finished episode (rows and images written) to the pending ones; publish if due."""
        index = self.num_episodes
        privacy = self._images.privacy_record(int(record["start_row"]), end)
        if privacy is not None:
            record = {**record, "privacy": privacy}
        self._pending.append(_Pending(record, end))
        if self._publish_due():
            self.publish()
        return index

    def discard_uncommitted(self) -> None:
        """Drop what an aborted episode wrote past the committed (published or pending) rows."""
        rows = self.num_frames
        self._images.forget_faces_from(rows)
        try:
            self._rows.drop_from(rows)
            for array in self._arrays.values():
                zc.remove_chunks_from(array, -(-rows // int(array.chunks[0])))
            if rows == self.published_frames:
                self._images.truncate(rows)
            elif self._images.array is not None:
                zc.remove_chunks_from(self._images.array, rows)
        except OSError as err:
            raise DatasetError(
                f"cannot remove an aborted episode's files: {os_reason(err, self.path)}", source=self.path
            ) from err

    def episode_closed(self) -> None:
        self._active = None

    # -- opening ------------------------------------------------------------------------------

    def _open(
        self,
        mode: str,
        image_size: tuple[int, int] | None,
        jpeg_quality: int,
        reencode: bool,
        provenance: Any,
    ) -> None:
        self._prepare_directory(mode)
        appending = mode == "a" and zc.is_group_dir(self.path)
        if appending:  # before the lock file is made: a refused append writes nothing
            self._check_layout(zc.open_group(self.path, "r"))
        self._lock = acquire_lock(self.path)
        if appending:
            journal.recover(self.path)  # an interrupted `vidihand annotate`: finish (or drop) it
            self._root = zc.open_group(self.path, "r+")
        else:
            self._clear_directory()
            self._root = zc.open_group(self.path, "a")
            self._create_layout(image_size, jpeg_quality, provenance)
        self._open_layout(image_size, jpeg_quality, reencode)
        self._truncate(self.published_frames)
        self._start_session(mode, provenance)

    def _prepare_directory(self, mode: str) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise DatasetError("exists and is not a directory", source=path)
        if not path.is_dir():
            self._created = _missing_directories(path)
            path.mkdir(parents=True, exist_ok=True)
            return
        names = {p.name for p in path.iterdir()}
        if not names - {LOCK_FILE}:
            self._found_empty = names
            return
        if not zc.is_group_dir(path):
            raise DatasetError("exists and is not a zarr dataset; refusing to replace it", source=path)
        if mode == "w" and not _is_empty_dataset(path):
            raise DatasetError(
                "a dataset with data exists here; append to it, or replace it with overwrite", source=path
            )

    def _clear_directory(self) -> None:
        _remove_children(self.path, keep={LOCK_FILE})

    def _undo_creation(self, *, removing: bool = True) -> None:
        """Remove what this writer created: its directories, or the contents of the empty folder.

        Without the lock (`removing=False`) only directories it made that are still empty go: a
        writer holding the dataset always has its lock file in it.
        """
        if self._created:
            if removing:
                shutil.rmtree(self.path, ignore_errors=True)
            for directory in self._created:
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only if empty: a parent someone else filled meanwhile stays
            self._created = []
        elif self._found_empty is not None and removing:
            _remove_children(self.path, keep=self._found_empty)

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

    def _check_layout(self, root: zc.Group) -> None:
        """Refuse to append to anything but a dataset of this writer's layout version."""
        attrs = zc.get_attrs(root)
        if zc.zarr_format(root) != 2 or attrs.get("layout") != LAYOUT:
            raise DatasetError("not a vidihand_ros dataset; can only append to one", source=self.path)
        version = attrs.get("layout_version")
        if version != LAYOUT_VERSION:
            raise DatasetError(layout_refusal(version), source=self.path)

    def _open_layout(self, image_size: tuple[int, int] | None, jpeg_quality: int, reencode: bool) -> None:
        assert self._root is not None
        self._root_attrs = zc.get_attrs(self._root)
        try:
            data = self._root["data"]
            self._meta = self._root["meta"]
            self._specs: list[KeySpec] = [*LOWDIM_SPECS, *_extra_specs(data)]
            self._arrays = {spec.name: data[spec.name] for spec in self._specs}
            ends_array = self._meta[EPISODE_ENDS]
        except KeyError as err:
            raise DatasetError(f"dataset is missing {err}", source=self.path) from err
        self._ends_array = ends_array
        self._ends: list[int] = [int(v) for v in ends_array[:]]
        self._episodes: list[dict[str, Any]] = list(zc.get_attrs(self._meta).get("episodes", []))
        self._records_on_disk = len(self._episodes)
        self._rows = RowBuffer(self.flush_frames, self.published_frames, self._write_rows, tuple(self._specs))
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
            data,
            size,
            resize=image_size is not None,
            jpeg_quality=jpeg_quality,
            reencode=reencode,
            blurrer=self._face_blurrer,
        )

    def _truncate(self, rows: int) -> None:
        """Drop rows, chunk files and records beyond the first `rows` (the published ones).

        Rows of unpublished episodes live in chunk files past the arrays' shape, and only a crash
        (or a failure) inside a publish leaves arrays longer than `episode_ends[-1]`.
        """
        for spec in self._specs:
            array = self._arrays[spec.name]
            if array.shape[0] < rows:
                raise DatasetError(
                    f"data/{spec.name} has {array.shape[0]} rows but episodes end at {rows}", source=self.path
                )
            if array.shape[0] > rows:
                zc.resize(array, (rows, *spec.shape))
            zc.remove_chunks_from(array, -(-rows // int(array.chunks[0])))
        self._images.truncate(rows)
        self._rows.drop_from(rows)
        if len(self._episodes) != len(self._ends):
            self._episodes = self._episodes[: len(self._ends)]
            self._episodes += [{} for _ in range(len(self._ends) - len(self._episodes))]
        if self._records_on_disk != len(self._episodes):
            zc.update_attrs(self._meta, {"episodes": self._episodes})
            self._records_on_disk = len(self._episodes)

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

    # -- publishing ---------------------------------------------------------------------------

    def _publish_due(self) -> bool:
        return clock() - self._last_publish >= self.commit_interval_s

    def _write_rows(self, start: int, values: Mapping[str, np.ndarray]) -> None:
        """Write low-dim rows at `start`, beyond the published length (invisible until published)."""
        committed = self.published_frames
        for name, rows in values.items():
            zc.write_rows_direct(self._arrays[name], start, rows, committed)

    def _publish_pending(self) -> None:
        """Grow every array over the pending rows, write their records, append their ends last."""
        end = self._pending[-1].end
        self._rows.write_out()
        for spec in self._specs:
            zc.resize(self._arrays[spec.name], (end, *spec.shape))
        self._images.set_length(end)
        records = [p.record for p in self._pending]
        self._records_on_disk = -1  # unknown until the write returns
        zc.update_attrs(self._meta, {"episodes": [*self._episodes, *records]})
        self._records_on_disk = len(self._episodes) + len(records)
        size = list(self._images.size) if self._images.size else None
        if self._root_attrs.get("image_size") != size:  # fixed by the first frame ever committed
            zc.update_attrs(self._root, {"image_size": size})
            self._root_attrs["image_size"] = size
        self._append_episode_ends([p.end for p in self._pending])
        self._episodes += records
        self.passthrough_frames += sum(r["passthrough_frames"] for r in records)
        self.reencoded_frames += sum(r["reencoded_frames"] for r in records)
        privacy = [r["privacy"] for r in records if isinstance(r.get("privacy"), dict)]
        self.frames_with_faces += sum(int(p.get("frames_with_faces", 0)) for p in privacy)
        self.faces_blurred += sum(int(p.get("faces_blurred", 0)) for p in privacy)
        self._pending.clear()
        self._last_publish = clock()

    def _append_episode_ends(self, ends: list[int]) -> None:
        """Atomic append: write the chunks holding the new ends, then grow the array over them."""
        array = self._ends_array
        chunk_len = int(array.chunks[0])
        n = len(self._ends)
        values = [*self._ends, *ends]
        for k in range(n // chunk_len, (len(values) - 1) // chunk_len + 1):
            chunk = np.zeros(chunk_len, dtype=np.int64)
            part = values[k * chunk_len : (k + 1) * chunk_len]
            chunk[: len(part)] = part
            zc.write_chunk_bytes(array, (k,), zc.encode_chunk(array, chunk), atomic=True)
        zc.resize(array, (len(values),))  # the commit point: one atomic metadata replace
        self._ends = values

    def _roll_back(self) -> None:
        """After a failed publish: forget the pending episodes, undo what reached the disk.

        Best effort: what cannot be undone (a full disk refusing even metadata) is past
        `episode_ends[-1]`, which readers ignore and the next writer truncates.
        """
        self._pending.clear()
        self._rows.drop_from(self.published_frames)  # memory first: the disk may refuse the rest
        with contextlib.suppress(OSError):
            self._truncate(self.published_frames)
        with contextlib.suppress(OSError):
            size = list(self._images.size) if self._images.size else None
            if self._root_attrs.get("image_size") != size and self._root is not None:
                zc.update_attrs(self._root, {"image_size": size})
                self._root_attrs["image_size"] = size
        if self._active is not None:  # its rows were just removed: it cannot go on
            with contextlib.suppress(DatasetError):
                self._active.abort()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def layout_refusal(version: object) -> str:
    """Why a dataset of layout `version` cannot be appended to, and what to do, in one line."""
    if isinstance(version, int) and version < LAYOUT_VERSION:
        return (
            f"dataset layout version {version} is older than this writer's {LAYOUT_VERSION} "
            "(its hand_valid masks mean something else); appending is refused: convert again into "
            "a new dataset (reading this one works)"
        )
    return (
        f"dataset layout version {version}, this writer appends to version {LAYOUT_VERSION} only; "
        "append with the vidihand_ros that wrote it, or convert into a new dataset"
    )


def _extra_specs(data: zc.Group) -> list[KeySpec]:
    """The specs of `data/` arrays beyond the schema (co-recorded topics), read from the arrays."""
    specs = []
    for name in sorted(data.array_keys()):
        if name in LOWDIM_BY_NAME or name == IMAGE_KEY:
            continue
        array = data[name]
        attrs = zc.get_attrs(array)
        fill = array.fill_value
        specs.append(
            KeySpec(
                name,
                np.dtype(array.dtype),
                tuple(int(n) for n in array.shape[1:]),
                fill.item() if isinstance(fill, np.generic) else fill,
                str(attrs.get("description", "")),
            )
        )
    return specs


def _missing_directories(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, innermost first."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists() or directory.is_symlink():
            break
        missing.append(directory)
    return missing


def _remove_children(path: Path, *, keep: set[str]) -> None:
    """Delete everything in `path` except the names in `keep`, never following a symbolic link."""
    for child in path.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _is_empty_dataset(path: Path) -> bool:
    """A vidihand_ros dataset without committed episodes (safe to replace without asking)."""
    with contextlib.suppress(Exception):
        root = zc.open_group(path, "r")
        if zc.get_attrs(root).get("layout") == LAYOUT:
            return int(root["meta"][EPISODE_ENDS].shape[0]) == 0
    return False
