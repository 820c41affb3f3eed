"""Write RGB frames as an H.264 mp4 (yuv420p, so every player and browser shows it) with PyAV.

yuv420p needs even sizes: an odd width or height gets one black column or row. The frame rate is
the episode's (a fraction close to it, e.g. 30000/1001), one picture per stored frame.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError

__all__ = ["Mp4Writer", "even_size"]

#: x264 constant rate factor: visually lossless for overlays, a few MB a minute at 720p.
CRF = 20


def even_size(width: int, height: int) -> tuple[int, int]:
    return width + width % 2, height + height % 2


class Mp4Writer:
    """`with Mp4Writer(path, fps) as video: video.write(rgb)`; the size is set by the first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        import av

        if not np.isfinite(fps) or fps <= 0:
            fps = 30.0
        self.path = path
        self.rate = Fraction(fps).limit_denominator(1001)
        try:
            self._container: Any = av.open(str(path), mode="w")
        except OSError as err:
            raise InputError(f"cannot write the video: {err.strerror or err}", source=path) from None
        self._stream: Any = None
        self.frames = 0

    def write(self, rgb: NDArray[np.uint8]) -> None:
        import av

        height, width = rgb.shape[:2]
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self.rate)
            self._stream.width, self._stream.height = even_size(width, height)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(CRF)}
        padded = np.zeros((self._stream.height, self._stream.width, 3), np.uint8)
        padded[:height, :width] = rgb
        frame = av.VideoFrame.from_ndarray(padded, format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
