"""Frames from ROS 1 .bag and ROS 2 sqlite3/mcap bags, streamed one message at a time.

Memory is bounded by one frame plus small indexes (the calibration timeline, the readers' own
indexes), never by the bag's length: CameraInfo is read in a first pass over its connection only,
and the image topic is then streamed in receive-time order.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag1 import ReaderError as Rosbag1ReaderError
from rosbags.rosbag2 import ReaderError as Rosbag2ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore

from vidihand_ros.errors import InputError
from vidihand_ros.imaging import MAX_PIXELS, CorruptImageError, SizeLimits, SizeMismatchError
from vidihand_ros.sources.camera_info import CAMERA_INFO_TYPE, CalibrationTimeline, camera_info_to_model
from vidihand_ros.sources.codec_errors import DATABASE_ERRORS, DECOMPRESSION_ERRORS
from vidihand_ros.sources.image_messages import IMAGE_TYPES, MessageRef, message_to_frame, stamp_ns
from vidihand_ros.sources.mcap_chunks import find_damaged_chunk, mcap_files
from vidihand_ros.types import CameraModel, Frame

log = logging.getLogger(__name__)

BAG_SUFFIXES = (".bag", ".db3", ".mcap")
#: What a damaged or foreign file makes rosbags (or the libraries under it) raise, when opening
#: and while iterating: rosbags' own errors, the databases' and decompressors' (`codec_errors`),
#: and what parsing garbage raises.
_BAG_ERRORS: tuple[type[Exception], ...] = (
    AnyReaderError,
    Rosbag1ReaderError,
    Rosbag2ReaderError,
    SerdeError,
    *DATABASE_ERRORS,
    *DECOMPRESSION_ERRORS,
    struct.error,
    KeyError,
    IndexError,
    UnicodeDecodeError,
    AssertionError,
    OverflowError,  # a forged record length: rosbags seeks past 2**63
    MemoryError,  # a forged record length: rosbags reads (allocates) that many bytes
)


def is_bag_path(path: Path) -> bool:
    """A directory (only ever a ROS 2 bag; opening says what is wrong with one that is not) or a
    .bag/.db3/.mcap file."""
    return path.is_dir() or path.suffix.lower() in BAG_SUFFIXES


def storage_format(path: Path) -> str:
    """'rosbag1', 'sqlite3' or 'mcap' (for provenance), '' if it cannot be told."""
    if path.is_file():
        return {".bag": "rosbag1", ".db3": "sqlite3", ".mcap": "mcap"}.get(path.suffix.lower(), "")
    names = [p.name for p in path.iterdir()] if path.is_dir() else []
    if any(".mcap" in n for n in names):
        return "mcap"
    if any(".db3" in n for n in names):
        return "sqlite3"
    return ""


@contextmanager
def open_bag(path: Path) -> Iterator[AnyReader]:
    """An open AnyReader; every way the file can be unreadable becomes an InputError on `path`."""
    if not path.exists():
        raise InputError("no such file or directory", source=path)
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        storage_files = sorted(p.name for p in path.iterdir() if p.suffix in (".db3", ".mcap"))
        hint = f"; to read {storage_files[0]} without it, pass that file" if storage_files else ""
        raise InputError(f"not a ROS 2 bag directory (no metadata.yaml){hint}", source=path)
    is_ros1 = path.suffix.lower() == ".bag"
    default_types = get_typestore(Stores.ROS1_NOETIC if is_ros1 else Stores.ROS2_HUMBLE)
    try:
        reader = AnyReader([path], default_typestore=default_types)
        reader.open()
    except _BAG_ERRORS as err:
        raise InputError(
            f"cannot read bag: {_damaged_chunk(path) or _describe(err)}{_repair_hint(path, err)}", source=path
        ) from err
    try:
        yield reader
    finally:
        reader.close()


def _repair_hint(path: Path, err: BaseException) -> str:
    """Recordings cut off by a crash lack their index/summary; the ROS tools can rebuild it."""
    text = str(err).lower()
    if path.suffix.lower() == ".bag" and "index" in text:
        return " (if the recording was cut off, `rosbag reindex` can repair it)"
    if "end magic" in text or "summary" in text:
        return " (if the recording was cut off, `mcap recover` can repair it)"
    return ""


def _damaged_chunk(path: Path) -> str:
    """'FILE: chunk at byte N (log times …): why' when the bag has a damaged mcap chunk, else ''.
    Looked for only after an error: it re-reads the file up to that chunk."""
    return (find_damaged_chunk(path) if mcap_files(path) else None) or ""


def _describe(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def list_image_topics(path: str | Path) -> dict[str, str]:
    """{topic: message type} of the Image/CompressedImage topics in a bag."""
    with open_bag(Path(path)) as reader:
        return _image_topics(reader)


def _image_topics(reader: AnyReader) -> dict[str, str]:
    return {name: str(info.msgtype) for name, info in reader.topics.items() if info.msgtype in IMAGE_TYPES}


def _topics_of_type(reader: AnyReader, msgtype: str) -> list[str]:
    return sorted(name for name, info in reader.topics.items() if info.msgtype == msgtype)


def _listing(topics: list[str] | dict[str, str]) -> str:
    return ", ".join(sorted(topics)) if topics else "none"


def _camera_info_beside(image_topic: str, info_topics: list[str]) -> str | None:
    """The CameraInfo topic in the image topic's namespace, or the nearest parent's.

    /cam/image_raw → /cam/camera_info; /cam/image_raw/compressed → /cam/image_raw/camera_info,
    then /cam/camera_info; finally /camera_info.
    """
    namespace = image_topic.rstrip("/").split("/")[:-1]
    while namespace:
        candidate = "/".join(namespace) + "/camera_info"
        if candidate in info_topics:
            return candidate
        namespace = namespace[:-1]
    return None


class BagFrameSource:
    """Iterable of Frames from one image topic of a bag, each with the calibration of its time.

    - Topic: `topic`, else the bag's only Image/CompressedImage topic.
    - Intrinsics: the CameraInfo nearest in time to each frame, from `camera_info_topic`, else
      the CameraInfo topic in the image topic's namespace (or a parent's), else the bag's only
      CameraInfo topic; `camera` is the fallback when there is none (config / --intrinsics).
    - Stamps: the image header stamp (the bag receive time when the header stamp is zero).
    - A corrupt frame is skipped, logged and listed in `skipped` (an InputError with
      `strict=True`): a JPEG/PNG that would not decode, or any frame declaring more than
      `max_pixels` pixels. Every other bad input raises InputError naming file, topic, message,
      field; so does a damaged bag (an mcap chunk whose CRC fails names the chunk).
    - Size: every frame must declare the first frame's size, checked before it is decoded; a
      frame of another size is an error (its header is damaged or the stream changed resolution,
      and which cannot be told; the dataset's array has one size). The message says when the
      CameraInfo confirms the first frame's size; a CameraInfo of another size is only warned
      about (a resized or binned stream: K is used as it is).

    Iterating again re-reads the bag from the start.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        topic: str | None = None,
        camera_info_topic: str | None = None,
        camera: CameraModel | None = None,
        strict: bool = False,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.path = Path(path)
        self.camera = camera
        self.strict = strict
        self.max_pixels = max_pixels
        #: Skipped messages: {"index", "stamp_ns", "reason"} (JSON-able, for dataset provenance).
        self.skipped: list[dict[str, object]] = []
        self._timeline = CalibrationTimeline()
        self._info_topics: list[str] = []
        with open_bag(self.path) as reader:
            self.topic, self.msgtype = self._choose_topic(reader, topic)
            self.message_count: int = reader.topics[self.topic].msgcount
            if self.message_count == 0:
                raise InputError("no messages on the image topic", source=self.path, topic=self.topic)
            self.camera_info_topic = self._choose_camera_info_topic(reader, camera_info_topic)
            if self.camera_info_topic is not None:
                self._read_calibration(reader, self.camera_info_topic)
        self._check_intrinsics()

    # -- setup ------------------------------------------------------------------------------

    def _choose_topic(self, reader: AnyReader, topic: str | None) -> tuple[str, str]:
        images = _image_topics(reader)
        if topic is not None:
            if topic not in reader.topics:
                raise InputError(
                    f"no such topic in the bag; image topics: {_listing(images)}",
                    source=self.path,
                    topic=topic,
                )
            if topic not in images:
                raise InputError(
                    f"topic has type {reader.topics[topic].msgtype}, not an image type; "
                    f"image topics: {_listing(images)}",
                    source=self.path,
                    topic=topic,
                )
            return topic, images[topic]
        if len(images) == 1:
            return next(iter(images.items()))
        if not images:
            raise InputError(
                f"no image topic (sensor_msgs/Image or CompressedImage) in the bag; "
                f"topics: {_listing(list(reader.topics))}",
                source=self.path,
            )
        raise InputError(
            f"several image topics, pass --topic to choose one of: {_listing(images)}", source=self.path
        )

    def _choose_camera_info_topic(self, reader: AnyReader, given: str | None) -> str | None:
        infos = self._info_topics = _topics_of_type(reader, CAMERA_INFO_TYPE)
        if given is not None:
            if given not in infos:
                what = "no such topic" if given not in reader.topics else "not a sensor_msgs/CameraInfo topic"
                raise InputError(
                    f"{what}; CameraInfo topics: {_listing(infos)}", source=self.path, topic=given
                )
            return given
        beside = _camera_info_beside(self.topic, infos)
        if beside is not None:
            return beside
        # The bag's only CameraInfo, unless it belongs to another image topic (a stereo pair's
        # other camera has other intrinsics).
        others = (t for t in _image_topics(reader) if t != self.topic)
        if len(infos) == 1 and all(_camera_info_beside(t, infos) is None for t in others):
            return infos[0]
        return None

    def _read_calibration(self, reader: AnyReader, info_topic: str) -> None:
        """First pass: the CameraInfo connection only, collapsed into calibration segments."""
        connections = [c for c in reader.connections if c.topic == info_topic]
        uncalibrated = 0
        for index, (_, recv_ns, msg) in enumerate(self._messages(reader, connections, info_topic)):
            camera = camera_info_to_model(msg, MessageRef(self.path, info_topic, index))
            if camera is None:
                uncalibrated += 1
                continue
            self._timeline.add(stamp_ns(msg.header.stamp) or recv_ns, camera)
        if uncalibrated:
            log.warning(
                "%s: %d CameraInfo messages on %s have K = 0 (uncalibrated) and are ignored",
                self.path,
                uncalibrated,
                info_topic,
            )

    def _check_intrinsics(self) -> None:
        if len(self._timeline) or self.camera is not None:
            return
        hint = "pass --intrinsics or --camera-info-topic"
        if self.camera_info_topic is not None:
            message = f"no intrinsics: every CameraInfo on {self.camera_info_topic} has K = 0; {hint}"
        elif self._info_topics:
            message = (
                f"no intrinsics: no CameraInfo topic beside {self.topic} and several elsewhere "
                f"({_listing(self._info_topics)}); {hint}"
            )
        else:
            message = f"no intrinsics: the bag has no sensor_msgs/CameraInfo; {hint}"
        raise InputError(message, source=self.path, topic=self.topic)

    # -- reading ------------------------------------------------------------------------------

    def _messages(
        self, reader: AnyReader, connections: list[Connection], topic: str
    ) -> Iterator[tuple[Connection, int, Any]]:
        """(connection, receive ns, message) with read/deserialise failures as InputErrors."""
        stream = reader.messages(connections=connections)
        index = 0
        while True:
            try:
                item = next(stream, None)
                if item is None:
                    return
                conn, recv_ns, raw = item
                msg = reader.deserialize(raw, conn.msgtype)
            except _BAG_ERRORS as err:
                chunk = _damaged_chunk(self.path)
                raise InputError(
                    f"bag is damaged: {chunk}"
                    if chunk
                    else f"bag is damaged, cannot read this message: {_describe(err)}",
                    source=self.path,
                    topic=topic,
                    index=index,
                ) from err
            yield conn, recv_ns, msg
            index += 1

    def __iter__(self) -> Iterator[Frame]:
        self.skipped = []
        produced = 0
        limits = SizeLimits(self.max_pixels)  # the first frame then fixes the stream's size
        with open_bag(self.path) as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for index, (conn, recv_ns, msg) in enumerate(self._messages(reader, connections, self.topic)):
                ref = MessageRef(self.path, self.topic, index)
                stamp = stamp_ns(msg.header.stamp) or recv_ns
                camera = self._timeline.at(stamp) or self.camera
                try:
                    frame = message_to_frame(msg, conn.msgtype, stamp, camera, ref, limits)
                except SizeMismatchError as err:
                    raise ref.error(str(err), err.field) from None
                except CorruptImageError as err:
                    self._skip(ref, stamp, err)
                    continue
                if limits.expected is None:
                    limits = self._stream_limits(frame)
                produced += 1
                yield frame
        if produced == 0:
            first = (
                f" (message {self.skipped[0]['index']}: {self.skipped[0]['reason']})" if self.skipped else ""
            )
            raise InputError(
                f"none of the {len(self.skipped)} image messages could be read{first}",
                source=self.path,
                topic=self.topic,
            )

    def _stream_limits(self, first: Frame) -> SizeLimits:
        """What every later frame must declare: the first frame's size (checked before decoding).

        A CameraInfo of another size than the first frame's is warned about (a resized or binned
        stream: K is used as it is); one of the same size confirms it, and the error says so.
        """
        cam = first.camera
        size = (first.width, first.height)
        info = self._timeline.at(first.stamp_ns)  # a CameraInfo's, not a given calibration
        confirmed = info is not None and (info.width, info.height) == size
        if cam is not None and cam.width and cam.height and (cam.width, cam.height) != size:
            log.warning(
                "%s: CameraInfo is for %dx%d images but %s has %dx%d; K is used as it is",
                self.path,
                cam.width,
                cam.height,
                self.topic,
                first.width,
                first.height,
            )
        by = f"the stream's first frame (message {first.index}){' and its CameraInfo' if confirmed else ''}"
        return SizeLimits(self.max_pixels, size, by)

    def _skip(self, ref: MessageRef, stamp: int, err: CorruptImageError) -> None:
        reason = str(err)
        if self.strict:
            raise ref.error(f"corrupt image: {reason}", err.field)
        log.warning(
            "%s, topic %s, message %d: skipping corrupt image (%s)", ref.source, ref.topic, ref.index, reason
        )
        self.skipped.append({"index": ref.index, "stamp_ns": stamp, "reason": reason})

    # -- description --------------------------------------------------------------------------

    @property
    def calibrations(self) -> int:
        """How many distinct calibrations (segments) the CameraInfo topic carried."""
        return len(self._timeline)

    @property
    def source_description(self) -> dict[str, object]:
        """Where the frames came from, for dataset provenance (JSON-able)."""
        return {
            "kind": "bag",
            "path": str(self.path),
            "storage": storage_format(self.path),
            "topic": self.topic,
            "msgtype": self.msgtype,
            "camera_info_topic": self.camera_info_topic,
            "intrinsics": "camera_info" if len(self._timeline) else "given",
            "message_count": self.message_count,
        }
