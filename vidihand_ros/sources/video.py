"""Frames from a video file (mp4, mkv, avi, mov) with PyAV, decoded one at a time.

A video has no CameraInfo, so the intrinsics must be given (config or --intrinsics). Stamps are
the presentation timestamps in nanoseconds, offset by `start_ns` (0: relative to the video).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.imaging import MAX_PIXELS, CorruptImageError, SizeLimits, check_declared_size
from vidihand_ros.types import CameraModel, Frame

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")


def _import_av(path: Path) -> ModuleType:
    """PyAV is an optional extra; say how to get it instead of an ImportError trace."""
    try:
        import av
    except ImportError:
        raise InputError("reading video needs PyAV: pip install vidihand_ros[video]", source=path) from None
    return av


class VideoFrameSource:
    """Iterable of rgb8 Frames from the first video stream of a file.

    The stream's declared size is checked against `max_pixels` when the file is opened, before a
    frame is decoded.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        camera: CameraModel | None = None,
        frame_id: str = "camera",
        start_ns: int = 0,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("no such file", source=self.path)
        if camera is None:
            raise InputError("no intrinsics: a video has no CameraInfo; pass --intrinsics", source=self.path)
        self.camera = camera
        self.frame_id = frame_id
        self.start_ns = start_ns
        #: Frames that could not be decoded (kept for the same provenance as bag sources).
        self.skipped: list[dict[str, object]] = []
        self._av = _import_av(self.path)
        with self._open() as container:
            stream = self._stream(container)
            self.codec = str(stream.codec_context.name)
            #: Frame count from the container header; None when it does not say (e.g. mkv).
            self.message_count: int | None = int(stream.frames) or None
            self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
        try:
            if self.width and self.height:  # (0: the container does not say; frames tell)
                check_declared_size(self.width, self.height, SizeLimits(max_pixels))
        except CorruptImageError as err:
            raise InputError(f"video stream: {err}", source=self.path) from None

    def _open(self) -> Any:
        try:
            return self._av.open(str(self.path))
        except (self._av.FFmpegError, OSError, ValueError) as err:
            raise InputError(f"cannot read video: {err}", source=self.path) from err

    def _stream(self, container: Any) -> Any:
        if not container.streams.video:
            raise InputError("the file has no video stream", source=self.path)
        return container.streams.video[0]

    def __iter__(self) -> Iterator[Frame]:
        with self._open() as container:
            stream = self._stream(container)
            time_base = stream.time_base or Fraction(1, 1_000_000)
            rate = stream.average_rate or stream.guessed_rate or 30
            last_stamp: int | None = None
            index = 0
            decoder = container.decode(stream)
            while True:
                try:
                    video_frame = next(decoder, None)
                except self._av.FFmpegError as err:
                    raise InputError(f"cannot decode video: {err}", source=self.path, index=index) from err
                if video_frame is None:
                    return
                stamp = self._stamp(video_frame, time_base, rate, index, last_stamp)
                last_stamp = stamp
                pixels = np.ascontiguousarray(video_frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                yield Frame(
                    stamp_ns=stamp,
                    frame_id=self.frame_id,
                    encoding="rgb8",
                    width=pixels.shape[1],
                    height=pixels.shape[0],
                    pixels=pixels,
                    camera=self.camera,
                    index=index,
                )
                index += 1

    def _stamp(
        self, frame: Any, time_base: Fraction, rate: Fraction | int, index: int, last: int | None
    ) -> int:
        """pts → ns; frames without a pts get the previous stamp plus one frame period."""
        if frame.pts is not None:
            return self.start_ns + round(Fraction(frame.pts) * Fraction(time_base) * 1_000_000_000)
        period = round(1_000_000_000 / Fraction(rate))
        return (last + period) if last is not None else self.start_ns + index * period

    @property
    def source_description(self) -> dict[str, object]:
        return {
            "kind": "video",
            "path": str(self.path),
            "codec": self.codec,
            "frame_id": self.frame_id,
            "intrinsics": "given",
            "message_count": self.message_count,
        }
