"""`vidihand convert`: recordings → episodes → PoseStream → sinks (the dataset, a pose bag).

One pass, streaming: memory is bounded by the PoseStream's window buffer plus the sinks' small
buffers, whatever the length of the recording. Each input file becomes one episode by default;
episodes can also be split at stamp gaps or cut to given time ranges (`episodes`).
With `blur_faces`, faces are blurred in the stored frames only: the estimator sees the frames as
recorded (docs/privacy.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from vidihand_ros import __version__
from vidihand_ros.dataset.images import FaceFilter
from vidihand_ros.dataset.staging import open_for_writing
from vidihand_ros.dataset.validity import estimation_record
from vidihand_ros.episodes import Peekable, StampLog, checked_time_ranges, split_episodes
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import AnyPoseEstimator
from vidihand_ros.imaging import MAX_PIXELS
from vidihand_ros.sinks.base import Sink, episode_sinks, write_all
from vidihand_ros.sinks.dataset import DatasetSink
from vidihand_ros.sinks.pose_bag import PoseBagWriter
from vidihand_ros.sources import FrameSource, open_source
from vidihand_ros.stream import Pair, PoseStream, resolve_window
from vidihand_ros.types import CameraModel, Frame

log = logging.getLogger(__name__)


@dataclass
class ConvertOptions:
    """Everything `vidihand convert` can be told, with the CLI's defaults."""

    topic: str | None = None
    camera_info_topic: str | None = None
    #: Intrinsics to use when the recording has no CameraInfo.
    camera: CameraModel | None = None
    #: Frames per window; None: the estimator's own (`EstimatorInfo.window`), else 81.
    window: int | None = None
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
    #: Blur faces in stored frames (`vidihand_ros.privacy`; needs mediapipe).
    blur_faces: bool = False
    strict: bool = False
    #: The most pixels a frame may declare (checked before decoding: decompression bombs).
    max_pixels: int = MAX_PIXELS
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
    #: Frames dropped because they repeated the stamp before them.
    duplicates_dropped: int = 0


@dataclass
class ConvertReport:
    episodes: list[EpisodeReport] = field(default_factory=list)
    #: With `blur_faces`: frames in which faces were blurred, and how many faces (None: off).
    frames_with_faces: int | None = None
    faces_blurred: int | None = None

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.episodes)


ProgressCallback = Callable[[str, int | None], Callable[[int], None]]
"""Given (description, expected total), returns an `advance(n)` function."""


def convert(
    inputs: Sequence[Path],
    output: Path,
    *,
    estimator: AnyPoseEstimator | None = None,
    options: ConvertOptions | None = None,
    append: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    sinks: Sequence[Sink] = (),
) -> ConvertReport:
    """Convert recordings into episodes of the dataset at `output` (and into any further `sinks`).

    Every input is opened (paths, topics, intrinsics) before anything is written. Episodes are
    committed one by one: if input k fails, the episodes of inputs before k stay in the dataset
    and the failing one leaves no trace; the error propagates. With `overwrite`, the new dataset
    is built beside the old one and replaces it only once every input has converted, so a failed
    run leaves the old dataset as it was.
    """
    options = options or ConvertOptions()
    options = replace(options, time_ranges=checked_time_ranges(options.time_ranges))  # sorted
    stream_for = partial(
        PoseStream,
        estimator,
        window=options.window,
        stride=options.stride,
        segment_gap_s=options.segment_gap_s,
        batch_windows=options.batch_windows,
        # A remote estimator keeps several windows on the wire so the server never waits for a
        # round trip; in-process estimators run one call at a time.
        max_in_flight=getattr(estimator, "max_in_flight", 1),
    )
    window, stride = resolve_window(estimator, options.window, options.stride)  # before any input
    sources = [(Path(path), open_input(Path(path), options)) for path in inputs]
    if options.pose_bag is not None and options.pose_bag.exists():
        raise InputError("the pose bag exists already; choose a new path", source=options.pose_bag)
    if options.pose_bag is not None and estimator is None:
        raise InputError("--pose-bag needs an estimator (--estimator NAME): without one there are no poses")
    estimator_attrs = estimator.info.as_attrs() if estimator else None
    dataset_attrs = {
        "software": {"name": "vidihand_ros", "version": __version__},
        "estimator": estimator_attrs,
        "window": window,
        "stride": stride,
    }
    report = ConvertReport()
    with (
        _face_blurrer(
            options.blur_faces
        ) as blurrer,  # before the dataset: a missing mediapipe writes nothing
        open_for_writing(
            output,
            append=append,
            overwrite=overwrite,
            image_size=options.image_size,
            jpeg_quality=options.jpeg_quality,
            reencode=options.reencode,
            attrs=dataset_attrs,
            face_blurrer=blurrer,
        ) as writer,
        ExitStack() as stack,
    ):
        dataset = DatasetSink(writer)
        all_sinks: list[Sink] = [dataset, *sinks]
        if options.pose_bag is not None:
            bag = PoseBagWriter(
                options.pose_bag, storage=options.pose_bag_storage, topic=options.pose_bag_topic
            )
            all_sinks.append(stack.enter_context(bag))
        stack.callback(dataset.close)
        for path, source in sources:
            try:
                episodes = _convert_source(
                    path, source, all_sinks, dataset, stream_for, options, progress, estimator_attrs
                )
            except InputError as err:
                # Errors raised downstream (e.g. the dataset's image size) still name the input.
                err.source = err.source if err.source is not None else path
                err.topic = err.topic or getattr(source, "topic", None)
                raise
            if not episodes:
                raise InputError("no frames inside the given --time-range values", source=path)
            report.episodes.extend(episodes)
            dataset.publish()  # one group commit per input: a kill loses at most the input in progress
        if blurrer is not None:
            report.frames_with_faces, report.faces_blurred = writer.frames_with_faces, writer.faces_blurred
    return report


@contextmanager
def _face_blurrer(enabled: bool) -> Iterator[FaceFilter | None]:
    """The run's one face blurrer (loading the model once), closed at the end; None when off."""
    if not enabled:
        yield None
        return
    from vidihand_ros.privacy import FaceBlurrer

    with FaceBlurrer() as blurrer:
        yield blurrer


def open_input(path: Path, options: ConvertOptions) -> FrameSource:
    """The frame source `convert` reads `path` through (topics, intrinsics, limits from `options`)."""
    return open_source(
        path,
        topic=options.topic,
        camera_info_topic=options.camera_info_topic,
        camera=options.camera,
        strict=options.strict,
        max_pixels=options.max_pixels,
    )


def _convert_source(
    path: Path,
    source: FrameSource,
    sinks: list[Sink],
    dataset: DatasetSink,
    stream_for: Callable[[], PoseStream],
    options: ConvertOptions,
    progress: ProgressCallback | None,
    estimator_attrs: dict[str, object] | None,
) -> list[EpisodeReport]:
    """One input file → its committed episodes."""
    reports = []
    advance = progress(str(path), source.message_count) if progress else None
    with_episodes = episode_sinks(sinks)
    stamps = StampLog(path)
    episodes = split_episodes(
        source, split_gap_s=options.split_gap_s, time_ranges=options.time_ranges, stamps=stamps
    )
    skipped_seen = duplicates_seen = resets_seen = 0  # what earlier episodes of this input took
    for episode_index, episode_frames in enumerate(episodes):
        frames = Peekable(episode_frames)
        first = frames.peek()
        if first is None:
            log.warning("%s: episode %d has no frames; not written", path, episode_index)
            continue
        attrs = {
            "source": source.source_description,
            "split_index": episode_index,
            **estimation_record(estimator_attrs),  # "estimated" and "estimator": ran or not, and which
            "starts_at_clock_reset": stamps.clock_resets > resets_seen,
        }
        resets_seen = stamps.clock_resets
        for sink in with_episodes:
            sink.begin_episode(attrs)
        stream = stream_for()
        try:
            count = feed(frames, stream, sinks, advance)
        except BaseException:
            for sink in with_episodes:
                sink.abort_episode()
            raise
        finally:
            stream.close()
        skipped = list(source.skipped[skipped_seen:])
        duplicates = stamps.duplicates_dropped - duplicates_seen
        skipped_seen, duplicates_seen = len(source.skipped), stamps.duplicates_dropped
        try:
            for sink in with_episodes:
                sink.end_episode({"skipped_frames": skipped, "duplicate_stamps_dropped": duplicates})
        except BaseException:
            for sink in with_episodes:
                sink.abort_episode()  # those already ended are committed; the rest are dropped
            raise
        passthrough = dataset.last_episode.passthrough_frames if dataset.last_episode else 0
        reports.append(EpisodeReport(str(path), count, passthrough, len(skipped), duplicates))
    return reports


def feed(
    frames: Iterable[Frame],
    stream: PoseStream,
    sinks: Sequence[Sink],
    advance: Callable[[int], None] | None = None,
) -> int:
    """The loop every front end runs: frames → PoseStream → sinks, then flush; returns the count.

    `advance(1)` follows each frame written, so progress counts frames, not the stream's batches.
    """
    count = 0
    for frame in frames:
        count += _deliver(sinks, stream.push(frame), advance)
    return count + _deliver(sinks, stream.flush(), advance)


def _deliver(sinks: Sequence[Sink], pairs: list[Pair], advance: Callable[[int], None] | None) -> int:
    """Write pairs to the sinks, advancing progress by 1 after each frame so the bar moves with the
    writes rather than a whole window at a time."""
    if advance is None:
        return write_all(sinks, pairs)
    for pair in pairs:
        write_all(sinks, (pair,))
        advance(1)
    return len(pairs)
