"""One camera's LeRobot v3.0 video files: episodes one after another in `file-NNN.mp4`, H.264.

LeRobot v3.0 concatenates episodes in one mp4 per camera until the file passes a size limit, and
finds an episode's frames by `from_timestamp + frame timestamp`; its decoders (torchcodec, or
PyAV where torchcodec cannot load) take frame `k` of a file at time `k / fps`. So frames are
encoded at a constant rate with `pts = k` in a `1/fps` time base, continuing across episodes.

Codec: H.264 (libx264, which PyAV's wheels carry), yuv420p, GOP 2 and CRF 23. lerobot's default
is AV1 (libsvtav1), but it lists `h264` among its codecs, and H.264 decodes everywhere and fast;
GOP 2 keeps a random frame one decode step from a key frame, as lerobot's default `g=2` does.
yuv420p needs an even width and height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError

__all__ = ["CODEC", "CRF", "GOP", "PIX_FMT", "VideoFiles", "chunk_file"]

CODEC = "libx264"
PIX_FMT = "yuv420p"
GOP = 2
CRF = 23
CHUNK_FILE = "chunk-{chunk:03d}/file-{file:03d}"


def chunk_file(chunk: int, file: int) -> str:
    return CHUNK_FILE.format(chunk=chunk, file=file)


@dataclass
class VideoFiles:
    """Appends episodes to `videos/<key>/chunk-CCC/file-FFF.mp4`, starting a new file past `max_mb`."""

    root: Path
    key: str
    fps: int
    width: int
    height: int
    max_mb: float
    chunks_size: int = 1000
    chunk: int = 0
    file: int = 0
    _container: Any = field(default=None, repr=False)
    _stream: Any = field(default=None, repr=False)
    _frames_in_file: int = 0

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise InputError(
                f"images of {self.width}x{self.height} pixels: H.264 ({PIX_FMT}) needs an even "
                "width and height"
            )

    @property
    def path(self) -> Path:
        return self.root / "videos" / self.key / f"{chunk_file(self.chunk, self.file)}.mp4"

    def add_episode(self, frames: Any) -> dict[str, Any]:
        """Encode one episode's (H, W, 3) uint8 frames; its `videos/<key>/...` episode columns."""
        import av

        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w")
            self._stream = self._container.add_stream(
                CODEC, rate=self.fps, options={"g": str(GOP), "crf": str(CRF)}
            )
            self._stream.width, self._stream.height = self.width, self.height
            self._stream.pix_fmt = PIX_FMT
            self._frames_in_file = 0
        first = self._frames_in_file
        time_base = Fraction(1, self.fps)
        for image in frames:
            self._encode(av.VideoFrame.from_ndarray(_rgb(image, self.height, self.width), format="rgb24"))
        done = self._frames_in_file
        columns = {
            f"videos/{self.key}/chunk_index": self.chunk,
            f"videos/{self.key}/file_index": self.file,
            f"videos/{self.key}/from_timestamp": float(first * time_base),
            f"videos/{self.key}/to_timestamp": float(done * time_base),
        }
        if self.path.stat().st_size >= self.max_mb * 1024**2:
            self.close()
            self.file += 1
            if self.file == self.chunks_size:
                self.chunk, self.file = self.chunk + 1, 0
        return columns

    def _encode(self, frame: Any) -> None:
        frame.pts = self._frames_in_file
        frame.time_base = Fraction(1, self.fps)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._frames_in_file += 1

    def close(self) -> None:
        """Flush the encoder and finish the current file (if one is open)."""
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = self._stream = None

    def info(self) -> dict[str, Any]:
        """The feature's `info` in meta/info.json, probed from the first file as lerobot does."""
        import av

        first = self.root / "videos" / self.key / f"{chunk_file(0, 0)}.mp4"
        with av.open(str(first)) as container:
            stream = container.streams.video[0]
            probed = {
                "video.height": stream.height,
                "video.width": stream.width,
                "video.codec": stream.codec.canonical_name,
                "video.pix_fmt": stream.pix_fmt,
                # a Fraction (PyAV 18) or an AVRational (PyAV 19): both have these two
                "video.fps": round(stream.base_rate.numerator / stream.base_rate.denominator),
                "video.channels": 3,
                "has_audio": bool(container.streams.audio),
            }
        return {**probed, "video.g": GOP, "video.crf": CRF, "is_depth_map": False}


def _rgb(image: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    if image.shape != (height, width, 3) or image.dtype != np.uint8:
        raise InputError(f"a frame of shape {image.shape} ({image.dtype}); the video is {width}x{height} RGB")
    return np.ascontiguousarray(image)
