"""Bag/video → (windows → estimator → stitcher) → dataset and pose bag: the offline pipeline.

One pass, streaming: memory is bounded by one window of frames plus the writers' small buffers,
whatever the length of the recording. Each input file becomes one episode by default; episodes
can also be split at stamp gaps or cut to given time ranges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from vidihand_ros import __version__
from vidihand_ros.dataset.writer import DatasetWriter, EpisodeWriter
from vidihand_ros.estimators.base import PoseEstimator
from vidihand_ros.sinks.pose_bag import PoseBagWriter
from vidihand_ros.sources import open_source
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

    Episodes are committed one by one: if input k fails, the episodes of inputs before k stay in
    the dataset and the failing one leaves no trace; the error propagates.
    """
    options = options or ConvertOptions()
    report = ConvertReport()
    dataset_attrs = {
        "software": {"name": "vidihand_ros", "version": __version__},
        "estimator": estimator.info.as_attrs() if estimator else None,
        "window": options.window,
        "stride": options.stride or options.window,
    }
    with ExitStack() as stack:
        writer = stack.enter_context(
            DatasetWriter(
                output,
                mode="a" if append else "w",
                overwrite=overwrite,
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
        for path in inputs:
            source = open_source(
                Path(path),
                topic=options.topic,
                camera_info_topic=options.camera_info_topic,
                camera=options.camera,
                strict=options.strict,
            )
            advance = progress(str(path), getattr(source, "message_count", None)) if progress else None
            for episode_index, episode_frames in enumerate(_split_episodes(source, options)):
                frames = _Peekable(episode_frames)
                if frames.peek() is None:
                    log.warning("%s: episode %d has no frames; not written", path, episode_index)
                    continue
                attrs = {
                    "source": getattr(source, "source_description", {"path": str(path)}),
                    "split_index": episode_index,
                    "estimator": dataset_attrs["estimator"],
                }
                with writer.begin_episode(attrs) as episode:
                    count = _write_episode(frames, episode, estimator, pose_bag, options, advance)
                    episode.attrs["skipped_frames"] = _skipped(source)
                report.episodes.append(
                    EpisodeReport(str(path), count, episode.passthrough_frames, len(_skipped(source)))
                )
    return report


def _skipped(source: object) -> list[dict[str, object]]:
    return list(getattr(source, "skipped", []))


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
        if previous is not None and gap_ns is not None and frame.stamp_ns - previous.stamp_ns > gap_ns:
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
