"""`vidihand annotate`: fill in the poses of rows nothing was estimated for, episode by episode.

A row is *missing* when both hands' `presence` is NaN: a frames-only conversion, or a live capture
that committed its episode before the last results arrived. Each run of missing rows is estimated
with up to one window of stored frames before and after it as context (so tracking and smoothing
warm up as in a conversion, and a long episode with a short gap is not estimated whole), through
the `PoseStream` loop `convert` runs (`pipeline.feed`); only the missing rows are written, every
`{side}_hand_*` key, and rows that hold an estimate stay bit for bit as they are. The estimator
gets the stored JPEG chunks unchanged, with each row's stored intrinsics (`dataset.stored_frames`).

Crash safety: the process holds the writer lock throughout, and each episode's change goes
through a redo journal (`dataset.journal`), so a kill leaves every episode as it was or fully
annotated. Every check (the episodes asked for, intrinsics, distortion models) is made before the
first episode is changed. Design notes: docs/dataset.md, "Annotating later".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros import __version__
from vidihand_ros.dataset import journal
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.attrs import to_json, utc_now
from vidihand_ros.dataset.lock import acquire_lock, os_reason
from vidihand_ros.dataset.rows import RowBlock
from vidihand_ros.dataset.schema import (
    EPISODE_ENDS,
    LAYOUT_VERSION,
    LOWDIM_BY_NAME,
    LOWDIM_CHUNK_ROWS,
    LOWDIM_SPECS,
    hand_key,
)
from vidihand_ros.dataset.stored_frames import StoredFrames
from vidihand_ros.dataset.writable import check_writable
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.estimators.base import AnyPoseEstimator
from vidihand_ros.pipeline import ProgressCallback, feed
from vidihand_ros.stream import PoseStream, resolve_window
from vidihand_ros.types import HAND_SIDES, Frame, FramePoses

__all__ = [
    "POSE_KEYS",
    "AnnotateOptions",
    "AnnotateReport",
    "EpisodeResult",
    "annotate",
    "check_dataset",
    "public_options",
]

log = logging.getLogger(__name__)

#: The keys annotate writes: every `{side}_hand_*` key of the schema.
POSE_KEYS: tuple[str, ...] = tuple(
    spec.name for spec in LOWDIM_SPECS if spec.name.startswith(tuple(f"{side}_hand_" for side in HAND_SIDES))
)
_PRESENCE = tuple(hand_key(side, "presence") for side in HAND_SIDES)
#: Option names whose values are never written into a record.
_SECRET_WORDS = ("token", "secret", "password", "credential")


@dataclass
class AnnotateOptions:
    """How the estimator runs over the stored frames (the `convert` options of the same names)."""

    #: Frames per window; None: the estimator's own (`EstimatorInfo.window`), else 81.
    window: int | None = None
    stride: int | None = None
    segment_gap_s: float = 0.5
    batch_windows: int = 1


@dataclass(frozen=True)
class EpisodeResult:
    index: int
    rows_filled: int
    #: Rows still without an estimate (the estimator returned neither hand for them).
    poses_missing: int


@dataclass
class AnnotateReport:
    annotated: list[EpisodeResult] = field(default_factory=list)
    #: (episode, why) of the episodes left as they were.
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: What `journal.recover` did first (it finished an interrupted annotation), or None.
    recovered: str | None = None

    @property
    def rows_filled(self) -> int:
        return sum(e.rows_filled for e in self.annotated)

    @property
    def poses_missing(self) -> int:
        return sum(e.poses_missing for e in self.annotated)


@dataclass(frozen=True)
class _Plan:
    """One episode to annotate: its rows, which are missing, and the row spans to estimate."""

    index: int
    start: int
    #: Per row of the episode: nothing estimated.
    missing: NDArray[np.bool_]
    #: [first, end) dataset rows given to the estimator, in order, disjoint.
    spans: list[tuple[int, int]]
    distortion_model: str
    frame_id: str

    @property
    def frames(self) -> int:
        return sum(b - a for a, b in self.spans)


def annotate(
    path: str | Path,
    estimator: AnyPoseEstimator,
    *,
    episodes: Sequence[int] | None = None,
    options: AnnotateOptions | None = None,
    progress: ProgressCallback | None = None,
) -> AnnotateReport:
    """Fill the missing rows of the chosen episodes (None: all) of the dataset at `path`.

    Refuses (a `DatasetError`, nothing changed) a path that is not a vidihand_ros dataset of this
    layout, a read-only one, one another writer holds, an episode that does not exist, or rows to
    estimate without intrinsics. An estimator error stops in the episode it happened in, which
    stays as it was; the episodes before it are annotated.
    """
    path = Path(path)
    options = options or AnnotateOptions()
    check_dataset(path, episodes)
    window = resolve_window(estimator, options.window, options.stride)
    lock = acquire_lock(path)
    try:
        report = AnnotateReport(recovered=journal.recover(path))
        if report.recovered:
            log.warning("%s: %s", path, report.recovered)
        dataset = _Dataset(path)
        plans = []
        for index in dataset.select(episodes):
            plan = dataset.plan(index, context=window[0])
            if isinstance(plan, str):
                report.skipped.append((index, plan))
            else:
                plans.append(plan)
        stream_for = _stream_factory(estimator, options)
        for plan in plans:
            report.annotated.append(dataset.annotate(plan, estimator, stream_for, window, progress))
    except OSError as err:
        raise DatasetError(f"cannot annotate: {os_reason(err, path)}", source=path) from err
    finally:
        lock.close()
    return report


def public_options(options: Mapping[str, object]) -> dict[str, object]:
    """`options` without the ones that may hold a secret (a token, a password)."""
    return {k: v for k, v in options.items() if not any(w in str(k).lower() for w in _SECRET_WORDS)}


def _stream_factory(estimator: AnyPoseEstimator, options: AnnotateOptions) -> Callable[[], PoseStream]:
    def stream() -> PoseStream:
        return PoseStream(
            estimator,
            window=options.window,
            stride=options.stride,
            segment_gap_s=options.segment_gap_s,
            batch_windows=options.batch_windows,
            max_in_flight=getattr(estimator, "max_in_flight", 1),  # as `convert` runs it
        )

    return stream


def check_dataset(path: Path, episodes: Sequence[int] | None = None) -> None:
    """Refuse, before the lock file is made, anything annotate must not write into
    (`dataset.writable`), and episode numbers the dataset does not have."""
    _check_episodes(path, episodes, check_writable(path, "annotate"))


def _check_episodes(path: Path, episodes: Sequence[int] | None, count: int) -> None:
    wrong = [i for i in episodes or () if not 0 <= i < count]
    if wrong:
        have = f"0-{count - 1}" if count else "none"
        raise DatasetError(
            f"no episode {wrong[0]} (the dataset has {count}: {have}); nothing was changed", source=path
        )


class _Dataset:
    """The dataset annotate works on (the caller holds the writer lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        root = zc.open_group(path, "r")
        try:
            data, meta = root["data"], root["meta"]
            self.arrays = {name: data[name] for name in POSE_KEYS}
            self.ends = [int(v) for v in meta[EPISODE_ENDS][:]]
            self.stored = StoredFrames(path, data) if self.ends else None
        except KeyError as err:
            raise DatasetError(f"dataset is missing {err}", source=path) from err
        self.records: list[dict[str, Any]] = list(zc.get_attrs(meta).get("episodes", []))
        if len(self.records) != len(self.ends):
            raise DatasetError(
                f"meta has {len(self.records)} episode records for {len(self.ends)} episodes", source=path
            )
        for name, array in self.arrays.items():
            spec = LOWDIM_BY_NAME[name]
            if (tuple(array.chunks), np.dtype(array.dtype)) != (spec.chunks, spec.dtype):
                raise DatasetError(f"data/{name} is not chunked as layout {LAYOUT_VERSION} is", source=path)

    def select(self, episodes: Sequence[int] | None) -> list[int]:
        if episodes is None:
            return list(range(len(self.ends)))
        _check_episodes(self.path, episodes, len(self.ends))
        return sorted(set(episodes))

    def plan(self, index: int, *, context: int) -> _Plan | str:
        """What to estimate in episode `index`, its intrinsics checked; or why it is skipped."""
        start, stop = (self.ends[index - 1] if index else 0), self.ends[index]
        record = self.records[index]
        if "ground_truth" in record:
            return "ground truth"
        missing = np.ones(stop - start, dtype=bool)
        for name in _PRESENCE:
            missing &= np.isnan(np.asarray(self.arrays[name][start:stop]))
        if not missing.any():
            return "nothing missing"
        models = list(record.get("camera0_distortion_models") or [])
        if len(models) > 1:
            raise DatasetError(
                f"episode {index} has several distortion models {models} and which row has which "
                "is not stored, so it cannot be annotated; nothing was changed",
                source=self.path,
            )
        model, frame_id = (str(models[0]) if models else ""), str(record.get("frame_id", ""))
        plan = _Plan(index, start, missing, _spans(missing, context, start), model, frame_id)
        assert self.stored is not None
        for a, b in plan.spans:
            for row, camera in enumerate(self.stored.cameras(a, b, model), start=a):
                where = f"episode {index}, frame {row - start}"
                if camera is None:
                    raise DatasetError(
                        f"{where}: no camera intrinsics (camera0_intrinsics is NaN); annotate needs "
                        "them to estimate metric poses; nothing was changed",
                        source=self.path,
                    )
                problem = camera.problem()
                if problem is not None:
                    key = "camera0_intrinsics" if problem.matrix == "K" else "camera0_distortion"
                    raise DatasetError(
                        f"{where}: {key}: {problem.message}; nothing was changed", source=self.path
                    )
        return plan

    def annotate(
        self,
        plan: _Plan,
        estimator: AnyPoseEstimator,
        stream_for: Callable[[], PoseStream],
        window: tuple[int, int],
        progress: ProgressCallback | None,
    ) -> EpisodeResult:
        """Estimate the plan's spans, journal the new chunks and record, commit, apply."""
        assert self.stored is not None
        change = journal.Journal(self.path)
        try:
            rows = _PoseRows(self.arrays, plan, change)
            advance = progress(f"episode {plan.index}", plan.frames) if progress else None
            for a, b in plan.spans:
                frames = self.stored.frames(
                    a, b, first_row=plan.start, frame_id=plan.frame_id, model=plan.distortion_model
                )
                stream = stream_for()
                try:
                    feed(frames, stream, [rows], advance)
                finally:
                    stream.close()
            rows.finish()
            missing = int(plan.missing.sum())
            result = EpisodeResult(plan.index, missing - rows.still_missing, rows.still_missing)
            record = self._record(plan.index, estimator, window, result)
            change.commit(plan.index, record)
        except BaseException as err:
            if not change.committed:
                change.discard()
            if isinstance(err, InputError):
                err.message = f"episode {plan.index}: {err.message}; the episode was left as it was"
                err.source = err.source if err.source is not None else self.path
            raise
        change.apply()
        self.records[plan.index] = record
        return result

    def _record(
        self, index: int, estimator: AnyPoseEstimator, window: tuple[int, int], result: EpisodeResult
    ) -> dict[str, Any]:
        """The episode's record, annotated: everything kept, what filled which rows appended."""
        info = estimator.info
        options = public_options(info.options)
        record = dict(self.records[index])
        record["estimated"] = True
        if record.get("estimator") is None:  # frames-only until now: the annotation's estimator
            record["estimator"] = {**info.as_attrs(), "options": options}
        entry = {
            "estimator": info.name,
            "estimator_version": info.version,
            "checkpoint_sha256": info.checkpoint_sha256,
            "options": options,
            "window": window[0],
            "stride": window[1],
            "rows_filled": result.rows_filled,
            "software": f"vidihand_ros {__version__}",
            "time": utc_now(),
        }
        record["annotations"] = [*list(record.get("annotations") or []), entry]
        record["poses_missing"] = result.poses_missing
        return dict(to_json(record))


class _PoseRows:
    """The Sink the stitched results go to: the missing rows' values, journalled a chunk at a time.

    Results come in row order, so each chunk of each pose key is read, changed and encoded once
    per episode; the rows of it that are not missing (neighbouring episodes' too) are kept as
    they are. `RowBlock` computes the rows, as the writer does.
    """

    name = "annotation"

    def __init__(self, arrays: Mapping[str, zc.Array], plan: _Plan, change: journal.Journal) -> None:
        self._arrays = arrays
        self._plan = plan
        self._journal = change
        self._block = RowBlock(LOWDIM_CHUNK_ROWS)
        self._offsets: list[int] = []
        self._chunk = -1
        self.still_missing = 0

    def write(self, frame: Frame, poses: FramePoses | None) -> None:
        if not self._plan.missing[frame.index]:
            return  # context, or a row that holds an estimate: left as it is
        row = self._plan.start + frame.index
        chunk = row // LOWDIM_CHUNK_ROWS
        if chunk != self._chunk:
            self._flush()
            self._chunk = chunk
        self._block.append(frame, poses, (1.0, 1.0))
        self._offsets.append(row - chunk * LOWDIM_CHUNK_ROWS)

    def finish(self) -> None:
        self._flush()

    def close(self) -> None:
        pass

    def _flush(self) -> None:
        if not self._offsets:
            return
        n, offsets, values = len(self._offsets), np.asarray(self._offsets), self._block.rows()
        for name, array in self._arrays.items():
            index = (self._chunk, *(0,) * (len(array.shape) - 1))
            chunk = zc.read_chunk(array, index)
            if chunk is None:
                chunk = np.full(array.chunks, array.fill_value, dtype=array.dtype)
            chunk[offsets] = values[name][:n]
            self._journal.add(zc.chunk_file(array, index), zc.encode_chunk(array, chunk))
        nothing = np.ones(n, dtype=bool)
        for name in _PRESENCE:
            nothing &= np.isnan(values[name])
        self.still_missing += int(nothing.sum())
        self._block.clear()
        self._offsets = []


def _spans(missing: NDArray[np.bool_], context: int, start: int) -> list[tuple[int, int]]:
    """Runs of missing rows widened by `context` rows each side (within the episode), merged."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(np.int8), [0]])))
    spans: list[tuple[int, int]] = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        lo, hi = max(0, a - context), min(len(missing), b + context)
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    return [(start + a, start + b) for a, b in spans]
