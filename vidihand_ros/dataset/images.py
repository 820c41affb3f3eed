"""The `camera0_rgb` array: one JPEG per chunk, source JPEGs copied through untouched.

A source JPEG of the dataset's size with 3 channels *is* a valid chunk for the imagecodecs JPEG
codec, so it is written as the chunk file without decoding (the ≥1000 frames/s path). Everything
else (PNG, raw pixels, other sizes, grey JPEGs, or `reencode=True`) is decoded, resized if the
dataset asks for a fixed size, and encoded once.

With a face blurrer (`convert --blur-faces`) every frame is decoded and searched for faces; only a
frame in which faces were found is re-encoded (blurred), the others still go through as their own
bytes. The rows' face counts become the episode record's `privacy` entry (`privacy_record`).

Compressed bytes are trusted only as far as `imaging.checked_info` says: a source's CheckedImage
(structure and declared size checked where the frame was read, so that a bad frame was skipped
there) or, for bytes from anywhere else, the same check now, against `max_pixels`. So no bytes that
would not decode are copied, and no declared size is believed before it is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.schema import IMAGE_DESCRIPTION, IMAGE_KEY, image_shape
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.imaging import (
    MAX_PIXELS,
    CorruptImageError,
    SizeLimits,
    checked_info,
    encode_jpeg,
    resize_rgb,
)
from vidihand_ros.types import Frame


class FaceFilter(Protocol):
    """What the store needs of a face blurrer (`vidihand_ros.privacy.FaceBlurrer` is one)."""

    detector: str
    min_confidence: float

    def blur(self, rgb: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], int]: ...


class ImageStore:
    """Writes frames into `data/camera0_rgb`, creating it at the first frame when the size is open.

    `size` is the dataset's (width, height) once known; `resize=True` scales frames of other sizes
    to it, otherwise such a frame is an error. `max_pixels` bounds what unchecked bytes may declare.
    `blurrer` blurs faces before a frame is stored (module docstring).
    """

    def __init__(
        self,
        data: zc.Group,
        size: tuple[int, int] | None,
        *,
        resize: bool,
        jpeg_quality: int,
        reencode: bool,
        max_pixels: int = MAX_PIXELS,
        blurrer: FaceFilter | None = None,
    ) -> None:
        self._data = data
        self.blurrer = blurrer
        #: Faces blurred per row not yet in an episode record (rows past the committed ones).
        self._faces: dict[int, int] = {}
        self._limits = SizeLimits(max_pixels)
        self.array: zc.Array | None = None
        self._write_chunk: Callable[[Sequence[int], bytes], None] = _no_array
        if IMAGE_KEY in data:
            self._set_array(data[IMAGE_KEY])
        self.size = size
        self.resize = resize
        self.jpeg_quality = jpeg_quality
        self.reencode = reencode

    def _set_array(self, array: zc.Array) -> None:
        self.array = array
        self._write_chunk = zc.chunk_writer(array)

    def _ensure_array(self, width: int, height: int) -> None:
        if self.array is not None:
            return
        self.size = (width, height)
        shape = image_shape(width, height)
        array = zc.create_array(
            self._data,
            IMAGE_KEY,
            shape=(0, *shape),
            chunks=(1, *shape),
            dtype=np.uint8,
            compressor=zc.jpeg_codec(self.jpeg_quality),
            fill_value=0,
            attrs={"description": IMAGE_DESCRIPTION},
        )
        self._set_array(array)

    def store(self, row: int, frame: Frame, episode_index: int) -> tuple[bool, tuple[float, float]]:
        """Write `frame` as chunk `row`; returns (passed through?, (sx, sy) scale applied)."""
        try:
            if frame.data is not None:
                info = checked_info(frame.data, frame.encoding, self._limits)
                width, height = info.width, info.height
                # Only an 8-bit, 3-channel JPEG is what the dataset's codec decodes to (H, W, 3) uint8.
                copyable = frame.is_jpeg and info.channels == 3 and info.precision == 8
            else:
                width, height = _pixel_size(frame)
                copyable = False
        except CorruptImageError as err:
            raise InputError(str(err), index=frame.index, field="data") from err
        target = self.size or (width, height)
        if target != (width, height) and not self.resize:
            raise DatasetError(
                f"frame {episode_index} of the episode is {width}x{height}, but the dataset's images are "
                f"{target[0]}x{target[1]} (convert with --image-size WxH to resize)",
                index=frame.index,
            )
        self._ensure_array(*target)
        scale = (target[0] / width, target[1] / height)
        rgb: NDArray[np.uint8] | None = None
        if self.blurrer is not None:  # on the source pixels: small faces are found before a resize
            rgb, faces = self.blurrer.blur(_decoded(frame))
            self._faces[row] = faces
            copyable = copyable and faces == 0
        if copyable and scale == (1.0, 1.0) and not self.reencode:
            assert frame.data is not None
            self._write_chunk((row, 0, 0, 0), frame.data)
            return True, scale
        rgb = resize_rgb(_decoded(frame) if rgb is None else rgb, *target)
        self._write_chunk((row, 0, 0, 0), encode_jpeg(rgb, self.jpeg_quality))
        return False, scale

    def privacy_record(self, start: int, end: int) -> dict[str, Any] | None:
        """The `privacy` entry of the episode of rows [start, end), None without a blurrer; the
        rows' counts are forgotten (they are in the record now)."""
        if self.blurrer is None:
            return None
        counts = [self._faces.pop(row, 0) for row in range(start, end)]
        return {
            "blur_faces": True,
            "frames_with_faces": sum(1 for n in counts if n),
            "faces_blurred": sum(counts),
            "detector": self.blurrer.detector,
            "min_confidence": self.blurrer.min_confidence,
        }

    def forget_faces_from(self, row: int) -> None:
        """Drop the face counts of rows >= `row` (an aborted episode's, or rows truncated away)."""
        self._faces = {r: n for r, n in self._faces.items() if r < row}

    def set_length(self, rows: int) -> None:
        if self.array is not None:
            zc.resize(self.array, (rows, *self.array.shape[1:]))

    def truncate(self, rows: int) -> None:
        """Drop every row >= `rows`, including chunk files written beyond the array's shape.

        Back at zero rows with the size taken from the data (not given), the array goes too, so
        a failed first episode does not fix the image size of a dataset that has no episodes.
        """
        self.forget_faces_from(rows)
        if self.array is None:
            return
        if rows == 0 and not self.resize:
            del self._data[IMAGE_KEY]
            self.array, self.size, self._write_chunk = None, None, _no_array
            return
        if self.array.shape[0] != rows:
            self.set_length(rows)
        zc.remove_chunks_from(self.array, rows)


def _no_array(index: Sequence[int], data: bytes) -> None:
    raise RuntimeError("image array not created yet")


def _decoded(frame: Frame) -> NDArray[np.uint8]:
    """The frame's pixels; bytes that do not decode are the frame's bad input."""
    try:
        return frame.rgb()
    except CorruptImageError as err:
        raise InputError(str(err), index=frame.index, field="data") from err


def _pixel_size(frame: Frame) -> tuple[int, int]:
    """(width, height) of a pixel frame (its pixels exist already: nothing to bound)."""
    pixels = frame.pixels
    assert pixels is not None
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InputError(
            f"expected (H, W, 3) uint8 RGB pixels, got {pixels.dtype} {pixels.shape}",
            index=frame.index,
            field="pixels",
        )
    return pixels.shape[1], pixels.shape[0]
