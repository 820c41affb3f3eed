"""Bag/video → (windows → estimator → stitcher) → dataset and pose bag: the offline pipeline.

One pass, streaming: memory is bounded by one window of frames plus the writers' small buffers,
whatever the length of the recording. Each input file becomes one episode by default; episodes
can also be split at stamp gaps or cut to given time ranges.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Literal

from vidihand_ros import __version__
from vidihand_ros.dataset.writer import DatasetWriter, EpisodeWriter
from vidihand_ros.dataset.zarr_compat import is_group_dir
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.estimators.base import PoseEstimator
from vidihand_ros.sinks.pose_bag import PoseBagWriter
from vidihand_ros.sources import FrameSource, open_source
from vidihand_ros.stitching import Stitcher
from vidihand_ros.types import CameraModel, Frame, FramePoses
from vidihand_ros.windowing import Windower

log = logging.getLogger(__name__)

NS = 1_000_000_000


@dataclass
class ConvertOptions:
    """Everything `vidihand convert` can be told, with the CLI's defaults."""

    topic: str | None = None
    camera_info_topic: str | None = None
    #: Intrinsics to use when the recording has no CameraInfo.
    camera: CameraModel | None = None
    window: int = 81
    stride: int | None = None
    #: A stamp jump over this starts a new window segment (the estimator never sees across it).
    segment_gap_s: float = 0.5
    #: Start a new *episode* at a stamp jump over this many seconds (None: one episode per file).
    split_gap_s: float | None = None
    #: Episodes as [start, end) seconds from each file's first frame (None: the whole file).
    time_ranges: list[tuple[float, float]] | None = None
    image_size: tuple[int, int] | None = None
    jpeg_quality: int = 90
    reencode: bool = False
    strict: bool = False
    #: Windows per estimator call (estimators batch them on the GPU or over the wire).
    batch_windows: int = 1
    pose_bag: Path | None = None
    pose_bag_storage: str = "mcap"
    pose_bag_topic: str = "/vidihand/hand_poses"


@dataclass
class EpisodeReport:
    source: str
    frames: int
    passthrough: int
    skipped: int


@dataclass
class ConvertReport:
    episodes: list[EpisodeReport] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.episodes)


ProgressCallback = Callable[[str, int | None], Callable[[int], None]]
"""Given (description, expected total), returns an `advance(n)` function."""


def convert(
    inputs: Sequence[Path],
    output: Path,
    *,
    estimator: PoseEstimator | None = None,
    options: ConvertOptions | None = None,
    append: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ConvertReport:
    """Convert recordings into episodes of the dataset at `output`.

    Every input is opened (paths, topics, intrinsics) before anything is written. Episodes are
    committed one by one: if input k fails, the episodes of inputs before k stay in the dataset
    and the failing one leaves no trace; the error propagates. With `overwrite`, the new dataset
    is built beside the old one and replaces it only once every input has converted, so a failed
    run leaves the old dataset as it was.
    """
    options = options or ConvertOptions()
    ranges = _checked_time_ranges(options.time_ranges)
    if ranges != options.time_ranges:
        options = replace(options, time_ranges=ranges)
    sources = [(Path(path), _open(Path(path), options)) for path in inputs]
    if options.pose_bag is not None and options.pose_bag.exists():
        raise InputError("the pose bag exists already; choose a new path", source=options.pose_bag)
    output = Path(output)
    if overwrite and output.exists():
        return _replacing(
            output, lambda staging: _convert(sources, staging, estimator, options, "w", progress)
        )
    return _convert(sources, output, estimator, options, "a" if append else "w", progress)


def _open(path: Path, options: ConvertOptions) -> FrameSource:
    return open_source(
        path,
        topic=options.topic,
        camera_info_topic=options.camera_info_topic,
        camera=options.camera,
        strict=options.strict,
    )


def _replacing(output: Path, build: Callable[[Path], ConvertReport]) -> ConvertReport:
    """Build a dataset in a staging folder beside `output`, then swap it in."""
    if not is_group_dir(output):
        raise DatasetError("exists and is not a zarr dataset; not replacing it", source=output)
    staging = output.with_name(f".{output.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        report = build(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = output.with_name(f".{output.name}.old-{os.getpid()}")
    os.replace(output, retired)
    os.replace(staging, output)
    shutil.rmtree(retired, ignore_errors=True)
    return report


def _convert(
    sources: Sequence[tuple[Path, FrameSource]],
    output: Path,
    estimator: PoseEstimator | None,
    options: ConvertOptions,
    mode: Literal["w", "a"],
    progress: ProgressCallback | None,
) -> ConvertReport:
    report = ConvertReport()
    estimator_attrs = estimator.info.as_attrs() if estimator else None
    dataset_attrs = {
        "software": {"name": "vidihand_ros", "version": __version__},
        "estimator": estimator_attrs,
        "window": options.window,
        "stride": options.stride or options.window,
    }
    with ExitStack() as stack:
        writer = stack.enter_context(
            DatasetWriter(
                output,
                mode=mode,
                image_size=options.image_size,
                jpeg_quality=options.jpeg_quality,
                reencode=options.reencode,
                attrs=dataset_attrs,
            )
        )
        pose_bag = None
        if options.pose_bag is not None:
            pose_bag = stack.enter_context(
                PoseBagWriter(
                    options.pose_bag, storage=options.pose_bag_storage, topic=options.pose_bag_topic
                )
            )
        for path, source in sources:
            try:
                episodes = _convert_source(path, source, writer, estimator, pose_bag, options, progress)
            except InputError as err:
                # Errors raised downstream (e.g. the dataset's image size) still name the input.
                err.source = err.source if err.source is not None else path
                err.topic = err.topic or getattr(source, "topic", None)
                raise
            if not episodes:
                raise InputError("no frames inside the given --time-range values", source=path)
            report.episodes.extend(episodes)
    return report


def _convert_source(
    path: Path,
    source: FrameSource,
    writer: DatasetWriter,
    estimator: PoseEstimator | None,
    pose_bag: PoseBagWriter | None,
    options: ConvertOptions,
    progress: ProgressCallback | None,
) -> list[EpisodeReport]:
    """One input file → its committed episodes."""
    reports = []
    advance = progress(str(path), source.message_count) if progress else None
    for episode_index, episode_frames in enumerate(_split_episodes(source, options)):
        frames = _Peekable(episode_frames)
        if frames.peek() is None:
            log.warning("%s: episode %d has no frames; not written", path, episode_index)
            continue
        skipped_before = len(source.skipped)
        attrs = {
            "source": source.source_description,
            "split_index": episode_index,
            "estimator": estimator.info.as_attrs() if estimator else None,
        }
        with writer.begin_episode(attrs) as episode:
            count = _write_episode(frames, episode, estimator, pose_bag, options, advance)
            skipped = list(source.skipped[skipped_before:])
            episode.attrs["skipped_frames"] = skipped
        reports.append(EpisodeReport(str(path), count, episode.passthrough_frames, len(skipped)))
    return reports


def _checked_time_ranges(ranges: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
    """Sorted ranges; overlapping ones are refused (a frame belongs to one episode)."""
    if not ranges:
        return ranges
    ordered = sorted(ranges)
    for (a_start, a_end), (b_start, b_end) in pairwise(ordered):
        if b_start < a_end:
            raise InputError(f"--time-range {a_start}:{a_end} and {b_start}:{b_end} overlap")
    return ordered


def _write_episode(
    frames: Iterable[Frame],
    episode: EpisodeWriter,
    estimator: PoseEstimator | None,
    pose_bag: PoseBagWriter | None,
    options: ConvertOptions,
    advance: Callable[[int], None] | None,
) -> int:
    count = 0
    for frame, poses in _estimate(frames, estimator, options):
        episode.add(frame, poses)
        if pose_bag is not None and poses is not None:
            pose_bag.write(poses)
        count += 1
        if advance:
            advance(1)
    return count


def _estimate(
    frames: Iterable[Frame], estimator: PoseEstimator | None, options: ConvertOptions
) -> Iterator[tuple[Frame, FramePoses | None]]:
    """Pair each frame with its poses; frames-only mode pairs it with None."""
    if estimator is None:
        for frame in frames:
            yield frame, None
        return
    stride = options.stride or options.window
    windower = Windower(window=options.window, stride=stride, gap_ns=int(options.segment_gap_s * NS))
    stitcher = Stitcher(window=options.window, stride=stride)
    pending = []
    for frame in frames:
        pending.extend(windower.push(frame))
        if len(pending) >= options.batch_windows:
            yield from _run_batch(pending, estimator, stitcher)
            pending = []
    pending.extend(windower.flush())
    if pending:
        yield from _run_batch(pending, estimator, stitcher)
    yield from stitcher.flush()


def _run_batch(
    windows: list, estimator: PoseEstimator, stitcher: Stitcher
) -> Iterator[tuple[Frame, FramePoses]]:
    results = estimator.estimate(windows)
    if len(results) != len(windows):
        raise RuntimeError(f"estimator returned {len(results)} results for {len(windows)} windows")
    for window, poses in zip(windows, results, strict=True):
        if len(poses) != len(window.frames):
            raise RuntimeError(
                f"estimator returned {len(poses)} poses for a window of {len(window.frames)} frames"
            )
        yield from stitcher.add(window, poses)


def _split_episodes(frames: Iterable[Frame], options: ConvertOptions) -> Iterator[Iterator[Frame]]:
    """Cut one file's frame stream into episodes (lazily: each episode is itself a stream).

    The caller must consume each episode before asking for the next one.
    """
    stream = _Peekable(iter(frames))
    if options.time_ranges:
        first = stream.peek()
        if first is None:
            return
        origin = first.stamp_ns
        for start_s, end_s in options.time_ranges:
            start, end = origin + int(start_s * NS), origin + int(end_s * NS)
            yield _take_range(stream, start, end)
        return
    gap_ns = int(options.split_gap_s * NS) if options.split_gap_s else None
    while stream.peek() is not None:
        yield _take_until_gap(stream, gap_ns)


def _take_range(stream: _Peekable, start: int, end: int) -> Iterator[Frame]:
    while (frame := stream.peek()) is not None and frame.stamp_ns < end:
        next(stream)
        if frame.stamp_ns >= start:
            yield frame


def _take_until_gap(stream: _Peekable, gap_ns: int | None) -> Iterator[Frame]:
    previous: Frame | None = None
    while (frame := stream.peek()) is not None:
        if previous is not None and gap_ns is not None:
            step = frame.stamp_ns - previous.stamp_ns
            if step > gap_ns or step < 0:  # a gap, or the clock jumped back: a new episode
                return
        next(stream)
        previous = frame
        yield frame


class _Peekable(Iterator[Frame]):
    """An iterator with one frame of look-ahead (episode boundaries need to see the next stamp)."""

    def __init__(self, it: Iterator[Frame]) -> None:
        self._it = it
        self._head: Frame | None = None
        self._done = False

    def peek(self) -> Frame | None:
        if self._head is None and not self._done:
            try:
                self._head = next(self._it)
            except StopIteration:
                self._done = True
        return self._head

    def __next__(self) -> Frame:
        head = self.peek()
        if head is None:
            raise StopIteration
        self._head = None
        return head
