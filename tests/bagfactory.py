"""Write real ROS bags (ROS 1 .bag, ROS 2 sqlite3 and mcap) for tests and benchmarks.

Everything goes through `rosbags` writers, so the files are what `ros2 bag` / `rosbag` would read.

Quick use::

    from tests.bagfactory import write_image_bag, synthetic_frames, hand_photos

    bag = write_image_bag(tmp_path / "b", synthetic_frames(10), kind="mcap", compressed_format="jpeg",
                          camera_info=CameraModel.from_fxfycxcy(50, 50, 32, 24, 64, 48))
    bag.payloads   # the CompressedImage bytes written, in order
    bag.stamps_ns  # header stamps written, in order

`frames` may be a generator (benchmarks write thousands of frames without holding them); pass
`keep_payloads=False` then. For anything `write_image_bag` does not cover (several image topics,
odd message orders), use `BagWriter` directly and build messages with `make_image`,
`make_compressed_image`, `make_camera_info` and `make_header`.

Kinds: "rosbag1" (a single .bag file, ROS 1 Noetic types), "sqlite3" and "mcap" (ROS 2 bag
directories with metadata.yaml, Humble types). `path` for rosbag1 should end in ".bag" (added
when missing); the returned `WrittenBag.path` is what to open.

Compression (`compression=`): "zstd" for mcap (zstd chunks, rosbags' storage compression), "bz2"
or "lz4" for rosbag1 (compressed chunks). `set_mcap_chunk_crcs` fills in the chunk CRCs that the
ROS 2 mcap plugin writes and rosbags' writer leaves unset; `mcap_chunks` lists the chunks (to
damage one).
"""

from __future__ import annotations

import heapq
import inspect
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import imagecodecs
import numpy as np
from numpy.typing import NDArray
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from vidihand_ros.imaging import resize_rgb
from vidihand_ros.testing import shared_data
from vidihand_ros.types import CameraModel

BAG_KINDS = ("rosbag1", "sqlite3", "mcap")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
#: Default first stamp: a realistic epoch time (2023-11-14), so stamps are never near zero.
START_NS = 1_700_000_000_000_000_000

#: Raw `sensor_msgs/Image` encodings `encode_raw` can produce from RGB.
RAW_ENCODINGS = (
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    "mono8",
    "mono16",
    "rgb16",
    "bgr16",
    "rgba16",
    "bgra16",
    "uyvy",
    "yuv422",
    "yuyv",
    "yuv422_yuy2",
    "nv12",
    "nv21",
    "bayer_rggb8",
    "bayer_bggr8",
    "bayer_gbrg8",
    "bayer_grbg8",
    "bayer_rggb16",
    "bayer_bggr16",
    "bayer_gbrg16",
    "bayer_grbg16",
)


def typestore_for(kind: str) -> Typestore:
    """The typestore a bag of this kind is written with (ROS 1 Noetic or ROS 2 Humble)."""
    _check_kind(kind)
    return get_typestore(Stores.ROS1_NOETIC if kind == "rosbag1" else Stores.ROS2_HUMBLE)


def _check_kind(kind: str) -> None:
    if kind not in BAG_KINDS:
        raise ValueError(f"bag kind must be one of {BAG_KINDS}, got {kind!r}")


# --------------------------------------------------------------------------------------------
# Frames


def synthetic_frames(
    n: int, width: int = 64, height: int = 48, *, seed: int = 0
) -> Iterator[NDArray[np.uint8]]:
    """`n` RGB frames: a smooth colour gradient with a bright square moving across it.

    Smooth enough that lossy encodings (YUV 4:2:2, Bayer) stay close to the original away from
    the square's edges; every frame differs so frame order is checkable. A generator: no frame is
    kept after it is yielded.
    """
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 90 * np.sin(x / width * np.pi + phase[0]),
            128 + 90 * np.cos(y / height * np.pi + phase[1]),
            128 + 60 * np.sin((x + y) / (width + height) * 2 * np.pi + phase[2]),
        ],
        axis=-1,
    )
    side = max(2, min(width, height) // 4)
    for i in range(n):
        frame = base.copy()
        x0 = (i * 3) % max(1, width - side)
        y0 = (i * 2) % max(1, height - side)
        frame[y0 : y0 + side, x0 : x0 + side] = (230, 220, 40)
        frame[..., 2] += i % 7  # a per-frame offset so consecutive frames are never equal
        yield np.clip(frame, 0, 255).astype(np.uint8)


def hand_photo_paths(folder: Path | None = None) -> list[Path]:
    """The real hand photos (HaMeR examples, MIT), found by `vidihand_ros.testing.shared_data`."""
    return shared_data.hand_photo_paths(folder)


def hand_photos(width: int = 64, height: int = 48, folder: Path | None = None) -> list[NDArray[np.uint8]]:
    """The real hand photos decoded and resized (aspect not kept) to width×height RGB."""
    out = []
    for path in hand_photo_paths(folder):
        rgb = np.asarray(imagecodecs.jpeg8_decode(path.read_bytes()), dtype=np.uint8)
        out.append(resize_rgb(rgb, width, height))
    return out


def hand_photo_bytes() -> list[bytes]:
    """The original JPEG files' bytes (different sizes: 848×565, 1024×683, 1200×1799)."""
    return [p.read_bytes() for p in hand_photo_paths()]


# --------------------------------------------------------------------------------------------
# RGB → message payloads


def _grey(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _bayer(rgb: NDArray, pattern: str) -> NDArray:
    """Sample an RGB image through a colour filter array; `pattern` lists the 2×2 cell row-major."""
    out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    channel = {"r": 0, "g": 1, "b": 2}
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return out


def encode_raw(rgb: NDArray[np.uint8], encoding: str) -> NDArray:
    """The pixel array a camera driver would publish in `encoding` for this RGB image.

    16-bit encodings scale 8-bit values by 257 (so 255 → 65535). YUV 4:2:2 needs an even width,
    NV12/NV21 an even width and height.
    """
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return rgb[..., ::-1]
    if encoding in ("rgba8", "bgra8"):
        colour = rgb if encoding == "rgba8" else rgb[..., ::-1]
        alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
        return np.concatenate([colour, alpha], axis=-1)
    if encoding == "mono8":
        return _grey(rgb)
    if encoding in ("uyvy", "yuv422"):
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY))
    if encoding in ("yuyv", "yuv422_yuy2"):
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2))
    if encoding in ("nv12", "nv21"):
        return _nv(rgb, swap=encoding == "nv21")
    if encoding.startswith("bayer_") and encoding.endswith("8"):
        return _bayer(rgb, encoding[6:10])
    if encoding.endswith("16"):
        eight = encoding[:-2] + "8"
        return encode_raw(rgb, eight).astype(np.uint16) * np.uint16(257)
    raise ValueError(f"encode_raw: no encoder for {encoding!r}")


def _nv(rgb: NDArray[np.uint8], *, swap: bool) -> NDArray[np.uint8]:
    """NV12 (Y plane, then interleaved U,V at half resolution) or NV21 (V,U)."""
    h, w = rgb.shape[:2]
    i420 = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)).ravel()
    y, u, v = i420[: h * w], i420[h * w : h * w * 5 // 4], i420[h * w * 5 // 4 :]
    uv = np.stack([v, u] if swap else [u, v], axis=-1).ravel()
    return np.concatenate([y, uv]).reshape(h * 3 // 2, w)


def compress(rgb: NDArray[np.uint8], fmt: str, *, quality: int = 90) -> bytes:
    """Bytes a `compressed_image_transport` publisher would send for CompressedImage.format `fmt`.

    The codec is the word "png" or "jpeg"/"jpg" in `fmt`; a leading "mono8;"/"mono16;" makes a
    grey (8- or 16-bit) image. Like the real transport, colour JPEG/PNG bytes are ordinary files
    (the "bgr8" in "bgr8; jpeg compressed bgr8" is only the channel order handed to the encoder).
    """
    lowered = fmt.lower()
    source = lowered.split(";")[0].strip() if ";" in lowered else ""
    image: NDArray = rgb
    if source == "mono8":
        image = _grey(rgb)
    elif source in ("mono16", "16uc1"):
        image = _grey(rgb).astype(np.uint16) * np.uint16(257)
    if "png" in lowered:
        return bytes(imagecodecs.png_encode(image))
    if "jpeg" in lowered or "jpg" in lowered:
        return bytes(imagecodecs.jpeg8_encode(image, level=quality))
    raise ValueError(f"compress: no codec named in format {fmt!r}")


# --------------------------------------------------------------------------------------------
# Messages


def make_header(ts: Typestore, stamp_ns: int, frame_id: str, seq: int = 0) -> Any:
    """A std_msgs/Header for this typestore (ROS 1 headers also carry `seq`)."""
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    if "seq" in inspect.signature(Header).parameters:
        return Header(seq=seq, stamp=stamp, frame_id=frame_id)
    return Header(stamp=stamp, frame_id=frame_id)


def make_image(
    ts: Typestore,
    pixels: NDArray,
    encoding: str,
    *,
    stamp_ns: int,
    frame_id: str,
    seq: int = 0,
    is_bigendian: bool = False,
    row_padding: int = 0,
) -> Any:
    """A sensor_msgs/Image carrying `pixels` (already in `encoding`'s layout).

    `row_padding` adds that many zero bytes to each row (step > width × pixel size), as some
    drivers do for alignment. NV12/NV21 arrays are (1.5·H, W); the message height is H.
    """
    arr = np.ascontiguousarray(pixels)
    if arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder(">" if is_bigendian else "<"))
    rows = arr.reshape(arr.shape[0], -1).view(np.uint8)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((rows.shape[0], row_padding), np.uint8)], axis=1)
    height = arr.shape[0] * 2 // 3 if encoding in ("nv12", "nv21") else arr.shape[0]
    return ts.types[IMAGE](
        header=make_header(ts, stamp_ns, frame_id, seq),
        height=height,
        width=arr.shape[1],
        encoding=encoding,
        is_bigendian=int(is_bigendian),
        step=rows.shape[1],
        data=np.ascontiguousarray(rows).ravel(),
    )


def make_compressed_image(ts: Typestore, data: bytes, fmt: str, *, stamp_ns: int, frame_id: str) -> Any:
    return ts.types[COMPRESSED_IMAGE](
        header=make_header(ts, stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, np.uint8)
    )


def make_camera_info(ts: Typestore, camera: CameraModel, *, stamp_ns: int, frame_id: str) -> Any:
    """A sensor_msgs/CameraInfo with K, D, distortion model and size from `camera` (ROS 1 names
    the fields K/D/R/P, ROS 2 k/d/r/p)."""
    cls = ts.types[CAMERA_INFO]
    upper = "K" in inspect.signature(cls).parameters
    K = np.asarray(camera.K, np.float64).reshape(3, 3)
    P = np.hstack([K, np.zeros((3, 1))]).ravel()
    fields = {
        "K" if upper else "k": K.ravel(),
        "D" if upper else "d": np.asarray(camera.D, np.float64).ravel(),
        "R" if upper else "r": np.eye(3).ravel(),
        "P" if upper else "p": P,
    }
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return cls(
        header=make_header(ts, stamp_ns, frame_id),
        height=camera.height,
        width=camera.width,
        distortion_model=camera.distortion_model,
        binning_x=0,
        binning_y=0,
        roi=roi,
        **fields,
    )


# --------------------------------------------------------------------------------------------
# Writing


class BagWriter:
    """A bag open for writing; connections are added on first use of a topic.

    Write messages in receive-time order (indexed readers sort anyway, but real recorders write
    that way and unindexed readers need it).
    """

    def __init__(self, path: Path | str, kind: str = "mcap", *, compression: str | None = None) -> None:
        _check_kind(kind)
        path = Path(path)
        if kind == "rosbag1" and path.suffix != ".bag":
            path = path.with_name(path.name + ".bag")
        self.path = path
        self.kind = kind
        self.ts = typestore_for(kind)
        self._writer: Writer1 | Writer2
        if kind == "rosbag1":
            self._writer = Writer1(path)
        else:
            plugin = StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer2(path, version=9, storage_plugin=plugin)
        if compression is not None:
            _set_compression(self._writer, kind, compression)
        self._connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.close()

    def write(self, topic: str, msgtype: str, time_ns: int, msg: Any) -> None:
        """Serialise and write one message with bag receive time `time_ns`."""
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.ts)
            self._connections[topic] = conn
        if self.kind == "rosbag1":
            raw = self.ts.serialize_ros1(msg, msgtype)
        else:
            raw = self.ts.serialize_cdr(msg, msgtype)
        self._writer.write(conn, time_ns, raw)

    def write_raw(self, topic: str, msgtype: str, time_ns: int, raw: bytes) -> None:
        """Write already-serialised bytes (to plant undeserialisable messages)."""
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.ts)
            self._connections[topic] = conn
        self._writer.write(conn, time_ns, raw)


def _set_compression(writer: Writer1 | Writer2, kind: str, compression: str) -> None:
    """zstd chunks for mcap; bz2 or lz4 chunks for rosbag1."""
    if kind == "rosbag1" and isinstance(writer, Writer1) and compression in ("bz2", "lz4"):
        writer.set_compression(Writer1.CompressionFormat[compression.upper()])
    elif kind == "mcap" and isinstance(writer, Writer2) and compression == "zstd":
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    else:
        raise ValueError(f"no {compression!r} compression for {kind} bags here")


@dataclass
class ExtraTopic:
    """Messages on some other topic: (receive time ns, message built with `typestore_for(kind)`)."""

    topic: str
    msgtype: str
    messages: Iterable[tuple[int, Any]]


@dataclass
class WrittenBag:
    """What `write_image_bag` wrote, for tests to compare against."""

    path: Path
    kind: str
    topic: str
    camera_info_topic: str | None
    stamps_ns: list[int] = field(default_factory=list)
    receive_ns: list[int] = field(default_factory=list)
    #: CompressedImage bytes in order (None when `keep_payloads=False` or for raw Images).
    payloads: list[bytes] | None = None

    @property
    def count(self) -> int:
        return len(self.stamps_ns)


def default_camera_info_topic(image_topic: str) -> str:
    """The camera_info topic beside an image topic (/cam/image_raw[/compressed] → /cam/camera_info)."""
    parts = image_topic.rstrip("/").split("/")
    if parts[-1] in ("compressed", "compressedDepth", "theora") and len(parts) > 2:
        parts = parts[:-1]
    return "/".join(parts[:-1]) + "/camera_info"


def write_image_bag(
    path: Path | str,
    frames: Iterable[NDArray[np.uint8] | bytes],
    *,
    kind: str = "mcap",
    topic: str = "/camera/image_raw",
    encoding: str = "rgb8",
    compressed_format: str | None = None,
    stamps_ns: Sequence[int] | None = None,
    fps: float = 30.0,
    start_ns: int = START_NS,
    receive_ns: Sequence[int] | None = None,
    frame_id: str = "camera_optical_frame",
    camera_info: CameraModel | Sequence[tuple[int, CameraModel]] | None = None,
    camera_info_topic: str | None = None,
    extra: Sequence[ExtraTopic] = (),
    jpeg_quality: int = 90,
    is_bigendian: bool = False,
    row_padding: int = 0,
    keep_payloads: bool = True,
    compression: str | None = None,
) -> WrittenBag:
    """Write a bag with one image topic (plus optional CameraInfo and extra topics).

    - `frames`: RGB uint8 arrays (encoded as `encoding`, or compressed as `compressed_format`), or
      for CompressedImage ready-made `bytes` written untouched (e.g. a corrupt JPEG).
    - `compressed_format` set → sensor_msgs/CompressedImage with that `format` string ("jpeg",
      "png", "bgr8; jpeg compressed bgr8", …); else sensor_msgs/Image with `encoding`.
    - Header stamps: `stamps_ns[i]` if given (0 allowed: an unstamped driver), else
      `start_ns + i/fps`. Receive times: `receive_ns[i]` if given, else the stamp (or the
      fps-based time when the stamp is 0).
    - `camera_info`: a CameraModel → one CameraInfo per frame at the frame's stamp; a list of
      (stamp_ns, CameraModel) → exactly those messages. Topic: `camera_info_topic` or the one
      beside the image topic (`default_camera_info_topic`).
    - `compression`: see the module docstring.
    """
    period = 1e9 / fps
    bag = BagWriter(path, kind, compression=compression)
    info_topic = (camera_info_topic or default_camera_info_topic(topic)) if camera_info is not None else None
    written = WrittenBag(
        bag.path, kind, topic, info_topic, payloads=[] if compressed_format and keep_payloads else None
    )
    ts = bag.ts

    def nominal(i: int) -> int:
        return start_ns + round(i * period)

    def image_events() -> Iterator[tuple[int, int, str, str, Callable[[], Any]]]:
        for i, frame in enumerate(frames):
            stamp = stamps_ns[i] if stamps_ns is not None else nominal(i)
            recv = receive_ns[i] if receive_ns is not None else (stamp if stamp > 0 else nominal(i))
            written.stamps_ns.append(stamp)
            written.receive_ns.append(recv)
            if compressed_format is not None:
                data = (
                    frame
                    if isinstance(frame, bytes)
                    else compress(frame, compressed_format, quality=jpeg_quality)
                )
                if written.payloads is not None:
                    written.payloads.append(data)
                msg = make_compressed_image(ts, data, compressed_format, stamp_ns=stamp, frame_id=frame_id)
                if isinstance(camera_info, CameraModel):
                    yield (
                        recv,
                        0,
                        info_topic or "",
                        CAMERA_INFO,
                        _info_factory(ts, camera_info, stamp, frame_id),
                    )
                yield recv, 1, topic, COMPRESSED_IMAGE, _const(msg)
                continue
            if isinstance(frame, bytes):
                raise ValueError("raw bytes frames need compressed_format")
            pixels = encode_raw(frame, encoding)
            msg = make_image(
                ts,
                pixels,
                encoding,
                stamp_ns=stamp,
                frame_id=frame_id,
                seq=i,
                is_bigendian=is_bigendian,
                row_padding=row_padding,
            )
            if isinstance(camera_info, CameraModel):
                yield recv, 0, info_topic or "", CAMERA_INFO, _info_factory(ts, camera_info, stamp, frame_id)
            yield recv, 1, topic, IMAGE, _const(msg)

    streams: list[Iterable[tuple[int, int, str, str, Callable[[], Any]]]] = [image_events()]
    if camera_info is not None and not isinstance(camera_info, CameraModel):
        streams.append(
            sorted(
                (
                    (t, 0, info_topic or "", CAMERA_INFO, _info_factory(ts, cam, t, frame_id))
                    for t, cam in camera_info
                ),
                key=lambda e: e[0],
            )
        )
    streams.extend(_extra_events(extra_topic) for extra_topic in extra)
    with bag:
        for time_ns, _, msg_topic, msgtype, factory in heapq.merge(*streams, key=lambda e: (e[0], e[1])):
            bag.write(msg_topic, msgtype, time_ns, factory())
    return written


def _const(msg: Any) -> Callable[[], Any]:
    return lambda: msg


def _info_factory(ts: Typestore, camera: CameraModel, stamp: int, frame_id: str) -> Callable[[], Any]:
    return lambda: make_camera_info(ts, camera, stamp_ns=stamp, frame_id=frame_id)


def _extra_events(extra: ExtraTopic) -> Iterator[tuple[int, int, str, str, Callable[[], Any]]]:
    for time_ns, msg in extra.messages:
        yield time_ns, 2, extra.topic, extra.msgtype, _const(msg)


# --------------------------------------------------------------------------------------------
# mcap chunks


@dataclass(frozen=True)
class McapChunk:
    """One Chunk record of an mcap file: where it starts, where its (compressed) records are."""

    offset: int
    records_offset: int
    records_length: int
    compression: str
    uncompressed_size: int

    @property
    def crc_offset(self) -> int:
        """Where the record's `uncompressed_crc` field is (opcode, length, 3 × u64 before it)."""
        return self.offset + 9 + 24


def mcap_file(bag: Path) -> Path:
    """The .mcap storage file of a bag (the file itself or the one in a ROS 2 bag directory)."""
    return bag if bag.is_file() else next(bag.glob("*.mcap"))


def mcap_chunks(bag: Path) -> list[McapChunk]:
    """The Chunk records of a bag's mcap file, in file order."""
    data = mcap_file(bag).read_bytes()
    chunks, pos = [], 8
    while pos + 9 <= len(data):
        opcode, length = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        if opcode == 0x06:
            (size,) = struct.unpack_from("<Q", data, pos + 9 + 16)
            (name_len,) = struct.unpack_from("<I", data, pos + 9 + 28)
            name = data[pos + 9 + 32 : pos + 9 + 32 + name_len].decode()
            (records_length,) = struct.unpack_from("<Q", data, pos + 9 + 32 + name_len)
            records = pos + 9 + 40 + name_len
            chunks.append(McapChunk(pos, records, records_length, name, size))
        if opcode == 0x02:  # footer
            break
        pos += 9 + length
    return chunks


def set_mcap_chunk_crcs(bag: Path) -> list[McapChunk]:
    """Write each chunk's `uncompressed_crc` (crc32 of its decompressed records), as the ROS 2
    mcap plugin (the mcap C++ writer) does and rosbags' writer does not; returns the chunks."""
    from backports import zstd

    file = mcap_file(bag)
    data = bytearray(file.read_bytes())
    chunks = mcap_chunks(bag)
    for chunk in chunks:
        records = bytes(data[chunk.records_offset : chunk.records_offset + chunk.records_length])
        raw = zstd.decompress(records) if chunk.compression == "zstd" else records
        struct.pack_into("<I", data, chunk.crc_offset, zlib.crc32(raw))
    file.write_bytes(bytes(data))
    return chunks


def write_video(
    path: Path, frames: Sequence[NDArray[np.uint8]], *, fps: int = 30, codec: str = "mpeg4"
) -> Path:
    """Encode RGB frames into an mp4/mkv with PyAV, at high quality (decoded frames stay close)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
