"""Frame sources: recordings (bags, videos) as streams of Frames.

`open_source` picks the reader from the path; every source is an iterable of Frames with
`message_count` (for progress bars), `skipped` (messages left out, with reasons) and
`source_description` (provenance), and streams: memory is one frame plus small indexes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from vidihand_ros.errors import InputError
from vidihand_ros.imaging import MAX_PIXELS
from vidihand_ros.sources.bag import BAG_SUFFIXES, BagFrameSource, is_bag_path, list_image_topics
from vidihand_ros.sources.video import VIDEO_SUFFIXES, VideoFrameSource
from vidihand_ros.types import CameraModel, Frame

__all__ = [
    "BagFrameSource",
    "FrameSource",
    "VideoFrameSource",
    "list_image_topics",
    "open_source",
]


@runtime_checkable
class FrameSource(Protocol):
    """What the pipeline needs from a recording."""

    @property
    def message_count(self) -> int | None: ...

    @property
    def skipped(self) -> list[dict[str, object]]: ...

    @property
    def source_description(self) -> dict[str, object]: ...

    def __iter__(self) -> Iterator[Frame]: ...


def open_source(
    path: str | Path,
    *,
    topic: str | None = None,
    camera_info_topic: str | None = None,
    camera: CameraModel | None = None,
    strict: bool = False,
    frame_id: str | None = None,
    max_pixels: int = MAX_PIXELS,
) -> BagFrameSource | VideoFrameSource:
    """A bag source for a ROS 2 bag directory or a .bag/.db3/.mcap file, a video source for
    .mp4/.mkv/.avi/.mov/.webm/.m4v; InputError for anything else or bag-only options on a video.

    `max_pixels`: the most pixels a frame may declare (checked before anything is decoded).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", source=path)
    if is_bag_path(path):
        return BagFrameSource(
            path,
            topic=topic,
            camera_info_topic=camera_info_topic,
            camera=camera,
            strict=strict,
            max_pixels=max_pixels,
        )
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        for name, value in (("--topic", topic), ("--camera-info-topic", camera_info_topic)):
            if value is not None:
                raise InputError(f"{name} applies to bags, not to a video file", source=path)
        return VideoFrameSource(path, camera=camera, frame_id=frame_id or "camera", max_pixels=max_pixels)
    kinds = ", ".join((*BAG_SUFFIXES, *VIDEO_SUFFIXES))
    raise InputError(
        f"not a recording we can read: expected a ROS 2 bag directory (with metadata.yaml) or a file "
        f"ending in {kinds}",
        source=path,
    )
