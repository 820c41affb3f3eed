"""Image bytes ↔ pixels, and reading a JPEG's size without decoding it.

JPEG pass-through (copy a source JPEG straight into the dataset) needs the image size and a cheap
sanity check per frame at >1000 frames/s, so `jpeg_info` walks the marker segments only.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs
import numpy as np
from numpy.typing import NDArray

# Start-of-frame markers that carry the image size (baseline, extended, progressive, lossless…),
# excluding DHT (C4), JPG (C8) and DAC (CC), which share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class CorruptImageError(ValueError):
    """The bytes are not a decodable image of the declared format."""


@dataclass(frozen=True)
class JpegInfo:
    width: int
    height: int
    channels: int
    #: Bits per sample: 8 for ordinary JPEGs, 12 (or 16 lossless) for high-bit-depth ones.
    precision: int = 8


def jpeg_info(data: bytes) -> JpegInfo:
    """Size and channel count from a JPEG's headers; raises CorruptImageError on a broken file.

    Checks the SOI marker, walks segments up to the start-of-frame, and checks the EOI marker at
    the end (a truncated JPEG has none). Entropy-coded data is not decoded.
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise CorruptImageError("not a JPEG (no SOI marker)")
    if jpeg_end(data) is None:
        raise CorruptImageError("truncated JPEG (no EOI marker at the end)")
    pos = 2
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise CorruptImageError(f"bad JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _SOF_MARKERS:
            if pos + 10 > n:
                break
            precision = data[pos + 4]
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            channels = data[pos + 9]
            if width == 0 or height == 0 or channels not in (1, 3, 4):
                raise CorruptImageError(f"bad JPEG frame header ({width}x{height}, {channels} channels)")
            return JpegInfo(width, height, channels, precision)
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise CorruptImageError("JPEG has no frame header")


#: Bytes that cameras pad a JPEG with after its EOI marker (UVC/MJPEG encoders often do).
_PADDING = frozenset({0x00, 0xFF})
_MAX_PADDING = 4096


def jpeg_end(data: bytes) -> int | None:
    """Length of the JPEG proper: up to and including its EOI marker, ignoring trailing padding.

    None when no EOI marker ends the data (a truncated file).
    """
    if data[-2:] == b"\xff\xd9":
        return len(data)
    end = data.rfind(b"\xff\xd9", max(0, len(data) - _MAX_PADDING))
    if end < 0 or any(byte not in _PADDING for byte in data[end + 2 :]):
        return None
    return end + 2


def strip_jpeg_padding(data: bytes) -> bytes:
    """The JPEG without bytes after its EOI marker (unchanged when there are none)."""
    end = jpeg_end(data)
    return data if end is None or end == len(data) else data[:end]


def decode_rgb(data: bytes, encoding: str) -> NDArray[np.uint8]:
    """Decode JPEG/PNG bytes to an (H, W, 3) uint8 RGB array."""
    try:
        if encoding == "jpeg":
            img = imagecodecs.jpeg8_decode(data)
            if img.dtype == np.uint16:  # a 12-bit JPEG: scale 0..4095 to 0..255
                return to_rgb8((img >> 4).astype(np.uint8))
        elif encoding == "png":
            img = imagecodecs.png_decode(data)
        else:
            raise ValueError(f"cannot decode compressed format {encoding!r}")
    except (imagecodecs.Jpeg8Error, imagecodecs.PngError) as err:
        raise CorruptImageError(f"cannot decode {encoding}: {err}") from err
    return to_rgb8(np.asarray(img))


def to_rgb8(img: NDArray) -> NDArray[np.uint8]:
    """Bring a decoded image to (H, W, 3) uint8: grey is repeated, alpha dropped, 16-bit scaled."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise CorruptImageError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    return np.ascontiguousarray(img[:, :, :3])


def encode_jpeg(rgb: NDArray[np.uint8], quality: int) -> bytes:
    return bytes(imagecodecs.jpeg8_encode(rgb, level=quality))


def resize_rgb(rgb: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    """Area-averaged resize (OpenCV), the usual choice for downscaling camera frames."""
    import cv2

    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8)
