"""sensor_msgs/Image and sensor_msgs/CompressedImage → Frame, with cv_bridge's semantics.

CompressedImage JPEG/PNG bytes are passed through untouched (their structure is checked, nothing
is decoded: `imaging.check_image`), so a recording's JPEGs can be copied into a dataset without a
decode/encode round trip. Raw Images are converted to RGB the way `cv_bridge.imgmsg_to_cv2(msg,
"rgb8")` does, via `rosbags-image`. Every frame's declared size is checked against `SizeLimits`
(a pixel limit, the CameraInfo's size) before a pixel buffer is made for it.

About "bgr8; jpeg compressed bgr8": `compressed_image_transport` hands OpenCV's `imencode` a BGR
(or RGB converted to BGR) matrix, and `imencode` writes an ordinary YCbCr JPEG. The channel order
in the format string therefore describes the publisher's matrix, not the file: every standard
decoder (OpenCV, which returns BGR and is what rosbags-image and cv_bridge use; libjpeg/
imagecodecs, which return RGB) recovers the right colours. The same holds for PNG. So the format
string only tells us the codec; the source encoding before ';' is informational.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from rosbags.image import ImageConversionError, ImageFormatError
from rosbags.image.image import convert_color, to_cvtype

from vidihand_ros.errors import InputError
from vidihand_ros.imaging import (
    DEFAULT_LIMITS,
    CorruptImageError,
    SizeLimits,
    check_declared_size,
    check_image,
)
from vidihand_ros.types import CameraModel, Frame

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_CODEC_WORDS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
#: Codecs we recognise by name but do not read (named in the error instead of "unknown format").
_UNSUPPORTED_CODECS = (
    "compresseddepth",
    "theora",
    "h264",
    "h265",
    "hevc",
    "av1",
    "vp8",
    "vp9",
    "ffmpeg",
    "zstd",
    "tiff",
    "bmp",
    "webp",
    "jp2",
    "qoi",
    "rvl",
)
#: Raw encodings whose rows are (1.5·height) single-byte rows: Y plane then interleaved chroma.
_PLANAR_420 = ("nv12", "nv21")
#: Encodings whose chroma is shared by two columns (4:2:2 and 4:2:0): the width must be even.
_PAIRED_COLUMNS = ("uyvy", "yuv422", "yuyv", "yuv422_yuy2", *_PLANAR_420)


@dataclass(frozen=True)
class MessageRef:
    """Where a message came from, so that every error can name it."""

    source: str | Path
    topic: str
    index: int

    def error(self, message: str, field: str | None = None) -> InputError:
        return InputError(message, source=self.source, topic=self.topic, index=self.index, field=field)


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (ROS 1 and 2 alike in rosbags) → integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# --------------------------------------------------------------------------------------------
# CompressedImage


@lru_cache(maxsize=64)
def _format_words(fmt: str) -> tuple[bool, str | None]:
    """(names a codec we do not read, the codec it names); cached: a topic repeats its format."""
    words = [w for w in re.split(r"[;/\s]+", fmt.strip().lower()) if w]
    unsupported = any(w in _UNSUPPORTED_CODECS or w.startswith("compresseddepth") for w in words)
    return unsupported, next((_CODEC_WORDS[w] for w in words if w in _CODEC_WORDS), None)


def compressed_codec(fmt: str, data: bytes, ref: MessageRef) -> str:
    """'jpeg' or 'png' for a CompressedImage, from its `format` string and its magic bytes.

    Accepts the strings real publishers use: "jpeg", "png", "bgr8; jpeg compressed bgr8",
    "rgb8; png compressed", "mono8; jpeg compressed mono8"; an empty or unknown string falls back
    to the bytes' signature. When the bytes clearly are the other supported codec, the bytes win
    (mislabelled streams exist). Depth and video codecs raise an InputError on 'format'.
    """
    unsupported, named = _format_words(fmt)
    if unsupported:
        raise ref.error(f"unsupported CompressedImage format {fmt!r} (only JPEG and PNG images)", "format")
    sniffed = "png" if data.startswith(_PNG_MAGIC) else "jpeg" if data.startswith(_JPEG_MAGIC) else None
    if sniffed is not None:
        return sniffed
    if named is not None:
        return named  # declared but the bytes do not match: the caller's header check reports it
    raise ref.error(f"unknown CompressedImage format {fmt!r} and the data is neither JPEG nor PNG", "format")


def compressed_to_frame(
    msg: Any, stamp: int, camera: CameraModel | None, ref: MessageRef, limits: SizeLimits = DEFAULT_LIMITS
) -> Frame:
    """CompressedImage → Frame carrying the checked original bytes (a CheckedImage). Raises
    CorruptImageError for bytes that would not decode or declare a size `limits` refuse (the
    caller decides whether to skip), InputError for formats we cannot carry."""
    codec = compressed_codec(str(msg.format), bytes(msg.data[:8]), ref)
    data = check_image(msg.data, codec, limits)
    return Frame(
        stamp_ns=stamp,
        frame_id=str(msg.header.frame_id),
        encoding=codec,
        width=data.info.width,
        height=data.info.height,
        data=data,
        camera=camera,
        index=ref.index,
    )


# --------------------------------------------------------------------------------------------
# Image


def image_to_rgb(msg: Any, ref: MessageRef, limits: SizeLimits = DEFAULT_LIMITS) -> NDArray[np.uint8]:
    """Raw sensor_msgs/Image → (H, W, 3) uint8 RGB, as cv_bridge converts to "rgb8".

    Honours `step` (row padding) and `is_bigendian`, which rosbags-image alone ignores/needs
    packed rows for, and reads NV12/NV21 as their 1.5·H rows. 16-bit images are scaled by
    255/65535 and rounded, as cv_bridge's `convertTo` does. The declared width×height is checked
    against `limits` (CorruptImageError) and the data's length (InputError) before any copy.
    """
    encoding = str(msg.encoding)
    try:
        depth, _, typestr, nchan = to_cvtype(encoding)
    except ImageFormatError:
        raise ref.error(f"unsupported image encoding {encoding!r}", "encoding") from None
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ref.error(f"bad image size {width}x{height}", "width" if width <= 0 else "height")
    try:
        check_declared_size(width, height, limits)
    except CorruptImageError as err:
        err.field = "width"  # the declared size is the message's width/height
        raise
    _check_chroma_geometry(encoding, width, height, ref)
    pixels = _unpack_rows(msg, encoding, np.dtype(typestr), nchan, ref)
    target = "rgb16" if depth == 16 else "rgb8"
    try:
        rgb = np.asarray(convert_color(pixels, encoding, target))
    except (ImageConversionError, cv2.error) as err:
        reason = str(err).strip().splitlines()[-1] if isinstance(err, cv2.error) else ""
        raise ref.error(
            f"cannot convert image encoding {encoding!r} to RGB{f' ({reason})' if reason else ''}", "encoding"
        ) from None
    if rgb.dtype == np.uint16:
        rgb = np.rint(rgb.astype(np.float32) * np.float32(255.0 / 65535.0))
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ref.error(f"cannot convert image encoding {encoding!r} to RGB", "encoding")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _check_chroma_geometry(encoding: str, width: int, height: int, ref: MessageRef) -> None:
    """Subsampled YUV needs an even width (and NV12/NV21 an even height): OpenCV asserts it."""
    if encoding in _PAIRED_COLUMNS and width % 2:
        raise ref.error(f"a {encoding} image needs an even width, got {width}", "width")
    if encoding in _PLANAR_420 and height % 2:
        raise ref.error(f"a {encoding} image needs an even height, got {height}", "height")


def _unpack_rows(msg: Any, encoding: str, dtype: np.dtype, nchan: int, ref: MessageRef) -> NDArray:
    """The message's pixel rows as an (rows, W[, C]) array in native byte order."""
    width, height = int(msg.width), int(msg.height)
    rows = height * 3 // 2 if encoding in _PLANAR_420 else height
    row_bytes = width * nchan * dtype.itemsize
    step = int(msg.step) or row_bytes
    if step < row_bytes:
        raise ref.error(f"step {step} is less than width × pixel size = {row_bytes} bytes", "step")
    buf = np.asarray(msg.data, dtype=np.uint8).ravel()
    needed = step * (rows - 1) + row_bytes
    if buf.size < needed:
        raise ref.error(
            f"data has {buf.size} bytes, a {width}x{height} {encoding} image needs {needed}", "data"
        )
    if buf.size < step * rows:  # last row without its padding
        buf = np.concatenate([buf, np.zeros(step * rows - buf.size, np.uint8)])
    packed = np.ascontiguousarray(buf[: step * rows].reshape(rows, step)[:, :row_bytes])
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    arr = packed.view(wire)
    arr = arr.astype(dtype, copy=False)  # to native order
    return arr.reshape(rows, width) if nchan == 1 else arr.reshape(rows, width, nchan)


def image_to_frame(
    msg: Any, stamp: int, camera: CameraModel | None, ref: MessageRef, limits: SizeLimits = DEFAULT_LIMITS
) -> Frame:
    rgb = image_to_rgb(msg, ref, limits)
    return Frame(
        stamp_ns=stamp,
        frame_id=str(msg.header.frame_id),
        encoding="rgb8",
        width=rgb.shape[1],
        height=rgb.shape[0],
        pixels=rgb,
        camera=camera,
        index=ref.index,
    )


def message_to_frame(
    msg: Any,
    msgtype: str,
    stamp: int,
    camera: CameraModel | None,
    ref: MessageRef,
    limits: SizeLimits = DEFAULT_LIMITS,
) -> Frame:
    """Either image message → Frame (see `compressed_to_frame` for what it raises)."""
    if msgtype == COMPRESSED_IMAGE_TYPE:
        return compressed_to_frame(msg, stamp, camera, ref, limits)
    if msgtype == IMAGE_TYPE:
        return image_to_frame(msg, stamp, camera, ref, limits)
    raise ref.error(f"{msgtype} is not an image message type")
