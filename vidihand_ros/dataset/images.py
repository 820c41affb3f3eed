"""The `camera0_rgb` array: one JPEG per chunk, source JPEGs copied through untouched.

A source JPEG of the dataset's size with 3 channels *is* a valid chunk for the imagecodecs JPEG
codec, so it is written as the chunk file without decoding (the ≥1000 frames/s path). Everything
else (PNG, raw pixels, other sizes, grey JPEGs, or `reencode=True`) is decoded, resized if the
dataset asks for a fixed size, and encoded once.

Compressed bytes are trusted only as far as `imaging.checked_info` says: a source's CheckedImage
(structure and declared size checked where the frame was read, so that a bad frame was skipped
there) or, for bytes from anywhere else, the same check now, against `max_pixels`. So no bytes that
would not decode are copied, and no declared size is believed before it is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

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


class ImageStore:
    """Writes frames into `data/camera0_rgb`, creating it at the first frame when the size is open.

    `size` is the dataset's (width, height) once known; `resize=True` scales frames of other sizes
    to it, otherwise such a frame is an error. `max_pixels` bounds what unchecked bytes may declare.
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
    ) -> None:
        self._data = data
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
        if copyable and scale == (1.0, 1.0) and not self.reencode:
            assert frame.data is not None
            self._write_chunk((row, 0, 0, 0), frame.data)
            return True, scale
        try:
            rgb = frame.rgb()
        except CorruptImageError as err:
            raise InputError(str(err), index=frame.index, field="data") from err
        rgb = resize_rgb(rgb, *target)
        self._write_chunk((row, 0, 0, 0), encode_jpeg(rgb, self.jpeg_quality))
        return False, scale

    def set_length(self, rows: int) -> None:
        if self.array is not None:
            zc.resize(self.array, (rows, *self.array.shape[1:]))

    def truncate(self, rows: int) -> None:
        """Drop every row >= `rows`, including chunk files written beyond the array's shape.

        Back at zero rows with the size taken from the data (not given), the array goes too, so
        a failed first episode does not fix the image size of a dataset that has no episodes.
        """
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
