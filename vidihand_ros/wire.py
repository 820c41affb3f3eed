"""The inference server's wire format (version 1): windows of frames in, per-frame poses out, msgpack.

One module both sides use, so the server (`vidihand serve`) and the client (`--estimator remote`)
cannot drift apart; it needs numpy and msgpack only (no web framework, no torch). Documented for
other clients in the README ("Inference server"); the server also publishes it in its OpenAPI
document.

Request body (`POST /v1/windows`, `Content-Type: application/msgpack`), a map:

- `wire` (int): `WIRE_VERSION`; anything else is refused (409) so old clients fail clearly.
- `window_id` (str, ≤ 128 chars): echoed in the reply.
- `stream_id` (str, ≤ 128 chars): which camera stream the window belongs to. A stateful estimator
  (`EstimatorInfo.stateful`, e.g. MediaPipe's tracking) keeps one state per stream, so windows of
  one stream must be sent in order; a new client stream should use a new id (e.g. a UUID).
- `segment`, `start`, `num_valid` (int): the `Window` fields (frames past `num_valid` are padding).
- `cameras` (list): calibrations used by the frames: `{"K": 9 floats, "D": floats (≤ 14),
  "distortion_model": str, "width": int, "height": int}`.
- `frames` (list, ≤ `MAX_FRAMES`): `{"stamp_ns": int, "frame_id": str, "camera": index or nil,
  "encoding": "jpeg" | "png" | "rgb8", "width": int, "height": int, "data": bytes, "index": int
  (optional: the frame's position in its stream, default `start` + its place in the window; a
  stateful estimator recognises frames shared by overlapping windows by stamp and index)}`. JPEG and PNG
  are the bytes the camera sent (the client never decodes them; the server checks the declared size
  before decoding); `rgb8` is H×W×3 uint8, row-major.

Reply (200), a map: `wire`, `window_id`, `stamp_ns` (array), and `left` / `right`, each `nil` (no
estimate in the whole window) or a map of arrays over the window's frames: `estimated` (bool:
False where that frame has no estimate for the hand), `presence`, `filled`, and every
`HandPose.ARRAY_FIELDS` field. An array is `{"dtype": "<f4" | "<i8" | "|b1", "shape": [...],
"data": bytes}` (little-endian, C order). Errors are JSON `{"error": message, "field": path}`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.imaging import MAX_PIXELS, CorruptImageError, SizeLimits, check_declared_size, check_image
from vidihand_ros.types import (
    COMPRESSED_FORMATS,
    HAND_SIDES,
    CameraModel,
    Frame,
    FramePoses,
    HandPose,
    Window,
)

__all__ = [
    "CONTENT_TYPE",
    "MAX_FRAMES",
    "WIRE_VERSION",
    "WireError",
    "WireLimits",
    "decode_poses",
    "decode_window",
    "encode_poses",
    "encode_window",
]

WIRE_VERSION = 1
CONTENT_TYPE = "application/msgpack"
#: Frames one window may carry (an 81-frame model window with room to spare).
MAX_FRAMES = 256
#: Longest window_id / stream_id.
MAX_ID = 128
_MAX_CAMERAS = 16
_MAX_DISTORTION = 14
_DTYPES = {"<f4": np.float32, "<f8": np.float64, "<i8": np.int64, "|b1": np.bool_}
_ENCODINGS = (*COMPRESSED_FORMATS, "rgb8")


@dataclass
class WireError(InputError):
    """A request or reply that does not follow the wire format; `field` names where (e.g.
    `frames[3].data`), `status` the HTTP status a server answers with."""

    status: int = 400


class WireLimits:
    """What a request may declare: a JPEG of at most `max_pixels`, a body of at most `max_bytes`."""

    def __init__(self, max_pixels: int = MAX_PIXELS, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes


# --------------------------------------------------------------------------------------------------
# Arrays


def _array(value: NDArray[Any]) -> dict[str, Any]:
    array = np.ascontiguousarray(value)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    return {"dtype": dtype.str, "shape": list(array.shape), "data": array.astype(dtype, copy=False).tobytes()}


def _from_array(value: Any, field: str, shape: tuple[int, ...] | None = None) -> NDArray[Any]:
    if not isinstance(value, Mapping):
        raise WireError("expected an array map {dtype, shape, data}", field=field)
    dtype, dims, data = value.get("dtype"), value.get("shape"), value.get("data")
    if dtype not in _DTYPES:
        raise WireError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}", field=f"{field}.dtype")
    if not (
        isinstance(dims, list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims)
    ):
        raise WireError("shape must be a list of non-negative integers", field=f"{field}.shape")
    if not isinstance(data, bytes):
        raise WireError("data must be bytes", field=f"{field}.data")
    np_dtype = np.dtype(dtype)
    if math.prod(dims) * np_dtype.itemsize != len(data):
        raise WireError(
            f"{len(data)} bytes do not make a {dtype} array of shape {dims}", field=f"{field}.data"
        )
    if shape is not None and tuple(dims) != shape:
        raise WireError(f"expected shape {list(shape)}, got {dims}", field=f"{field}.shape")
    return np.frombuffer(data, dtype=np_dtype).reshape(dims)


# --------------------------------------------------------------------------------------------------
# msgpack


def pack(message: Mapping[str, Any]) -> bytes:
    """msgpack bytes of a wire message (bytes stay bytes, strings UTF-8)."""
    return bytes(msgpack.packb(message, use_bin_type=True))


def unpack(body: bytes, limits: WireLimits | None = None) -> dict[str, Any]:
    """A wire message from msgpack bytes, with length limits so a small body cannot claim huge
    containers; anything else than a map is a WireError."""
    limits = limits or WireLimits()
    if len(body) > limits.max_bytes:
        raise WireError(f"body of {len(body)} bytes is over the {limits.max_bytes}-byte limit", status=413)
    try:
        message = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_str_len=1 << 16,
            max_bin_len=limits.max_bytes,
            max_array_len=1 << 16,
            max_map_len=1 << 10,
            max_ext_len=0,
        )
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as err:
        raise WireError(f"not a msgpack message: {err}") from None
    if not isinstance(message, dict):
        raise WireError(f"expected a msgpack map, got {type(message).__name__}")
    return message


def _field(message: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    path = f"{where}.{name}" if where else name
    if name not in message:
        raise WireError("missing", field=path)
    value = message[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = "/".join(k.__name__ for k in _kinds(kind))
        raise WireError(f"expected {names}, got {type(value).__name__}", field=path)
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def check_version(message: Mapping[str, Any]) -> None:
    """Refuse another wire version (409), so a client built for another server fails clearly."""
    version = _field(message, "wire", int)
    if version != WIRE_VERSION:
        raise WireError(
            f"wire version {version} is not served here (this server speaks {WIRE_VERSION})",
            field="wire",
            status=409,
        )


# --------------------------------------------------------------------------------------------------
# Windows (client → server)


def encode_window(window: Window, window_id: str, stream_id: str = "") -> bytes:
    """The request body for one window; compressed frames go as the bytes they came in."""
    cameras: list[CameraModel] = []
    frames = []
    for frame in window.frames:
        index = None
        if frame.camera is not None:
            for i, known in enumerate(cameras):
                if known.same_as(frame.camera):
                    index = i
                    break
            else:
                cameras.append(frame.camera)
                index = len(cameras) - 1
        data = frame.data if frame.data is not None else np.ascontiguousarray(frame.rgb(), np.uint8).tobytes()
        frames.append(
            {
                "stamp_ns": int(frame.stamp_ns),
                "frame_id": frame.frame_id,
                "camera": index,
                "encoding": frame.encoding if frame.data is not None else "rgb8",
                "width": int(frame.width),
                "height": int(frame.height),
                "data": bytes(data),
                "index": int(frame.index),
            }
        )
    return pack(
        {
            "wire": WIRE_VERSION,
            "window_id": window_id,
            "stream_id": stream_id,
            "segment": int(window.segment),
            "start": int(window.start),
            "num_valid": int(window.num_valid),
            "cameras": [_camera(c) for c in cameras],
            "frames": frames,
        }
    )


def _camera(camera: CameraModel) -> dict[str, Any]:
    return {
        "K": [float(v) for v in camera.K.ravel()],
        "D": [float(v) for v in camera.D],
        "distortion_model": camera.distortion_model,
        "width": int(camera.width),
        "height": int(camera.height),
    }


def decode_window(body: bytes, limits: WireLimits | None = None) -> tuple[str, str, Window]:
    """(window_id, stream_id, Window) from a request body, every field checked; JPEG/PNG sizes are
    checked from their headers before anything is decoded. WireError names the first bad field."""
    limits = limits or WireLimits()
    message = unpack(body, limits)
    check_version(message)
    window_id = _field(message, "window_id", str)
    if len(window_id) > MAX_ID:
        raise WireError(f"longer than {MAX_ID} characters", field="window_id")
    stream_id = _field(message, "stream_id", str)
    if len(stream_id) > MAX_ID:
        raise WireError(f"longer than {MAX_ID} characters", field="stream_id")
    segment = _non_negative(_field(message, "segment", int), "segment")
    start = _non_negative(_field(message, "start", int), "start")
    cameras = [_decode_camera(c, f"cameras[{i}]") for i, c in enumerate(_field(message, "cameras", list))]
    if len(cameras) > _MAX_CAMERAS:
        raise WireError(f"at most {_MAX_CAMERAS} cameras", field="cameras")
    raw_frames = _field(message, "frames", list)
    if not 1 <= len(raw_frames) <= MAX_FRAMES:
        raise WireError(f"a window has 1..{MAX_FRAMES} frames, got {len(raw_frames)}", field="frames")
    num_valid = _field(message, "num_valid", int)
    if not 1 <= num_valid <= len(raw_frames):
        raise WireError(f"must be in 1..{len(raw_frames)}, got {num_valid}", field="num_valid")
    frames = [_decode_frame(f, f"frames[{i}]", cameras, limits, start + i) for i, f in enumerate(raw_frames)]
    seen: set[tuple[int, int]] = set()
    for i, frame in enumerate(frames[:num_valid]):  # padding after num_valid repeats the last frame
        key = (frame.stamp_ns, frame.index)
        if key in seen:
            raise WireError("two frames of the window share stamp_ns and index", field=f"frames[{i}].index")
        seen.add(key)
    return window_id, stream_id, Window(frames=frames, start=start, num_valid=num_valid, segment=segment)


def _non_negative(value: int, field: str) -> int:
    if value < 0 or value >= 1 << 62:
        raise WireError(f"must be a non-negative 62-bit integer, got {value}", field=field)
    return value


def _decode_camera(value: Any, where: str) -> CameraModel:
    if not isinstance(value, Mapping):
        raise WireError("expected a map", field=where)
    K = _field(value, "K", list, where)
    D = _field(value, "D", list, where)
    if len(K) != 9 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in K):
        raise WireError("expected 9 numbers", field=f"{where}.K")
    if len(D) > _MAX_DISTORTION or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in D
    ):
        raise WireError(f"expected at most {_MAX_DISTORTION} numbers", field=f"{where}.D")
    camera = CameraModel(
        K=np.array(K, dtype=np.float64).reshape(3, 3),
        width=_non_negative(_field(value, "width", int, where), f"{where}.width"),
        height=_non_negative(_field(value, "height", int, where), f"{where}.height"),
        distortion_model=_field(value, "distortion_model", str, where)[:64],
        D=np.array(D, dtype=np.float64),
    )
    problem = camera.problem()
    if problem is not None:
        raise WireError(problem.message, field=f"{where}.{problem.matrix}")
    return camera


def _decode_frame(
    value: Any, where: str, cameras: Sequence[CameraModel], limits: WireLimits, index: int
) -> Frame:
    if not isinstance(value, Mapping):
        raise WireError("expected a map", field=where)
    stamp_ns = _non_negative(_field(value, "stamp_ns", int, where), f"{where}.stamp_ns")
    frame_id = _field(value, "frame_id", str, where)[:256]
    encoding = _field(value, "encoding", str, where)
    if encoding not in _ENCODINGS:
        raise WireError(
            f"must be one of {', '.join(_ENCODINGS)}, got {encoding!r}", field=f"{where}.encoding"
        )
    width = _field(value, "width", int, where)
    height = _field(value, "height", int, where)
    data = _field(value, "data", bytes, where)
    if value.get("index") is not None:  # the frame's position in its stream (default: start + i)
        index = _non_negative(_field(value, "index", int, where), f"{where}.index")
    camera_index = value.get("camera")
    camera = None
    if camera_index is not None:
        if (
            not isinstance(camera_index, int)
            or isinstance(camera_index, bool)
            or not 0 <= camera_index < len(cameras)
        ):
            raise WireError(f"must index cameras (0..{len(cameras) - 1}) or be nil", field=f"{where}.camera")
        camera = cameras[camera_index]
    try:
        check_declared_size(width, height, SizeLimits(limits.max_pixels))
        if encoding == "rgb8":
            if len(data) != width * height * 3:
                raise WireError(f"{len(data)} bytes are not {width}×{height}×3 rgb8", field=f"{where}.data")
            pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
            return Frame(stamp_ns, frame_id, "rgb8", width, height, pixels=pixels, camera=camera, index=index)
        image = check_image(
            data, encoding, SizeLimits(limits.max_pixels, expected=(width, height), expected_by="the frame")
        )
    except CorruptImageError as err:
        raise WireError(str(err), field=f"{where}.data") from None
    return Frame(stamp_ns, frame_id, encoding, width, height, data=image, camera=camera, index=index)


# --------------------------------------------------------------------------------------------------
# Poses (server → client)


def encode_poses(window_id: str, poses: Sequence[FramePoses]) -> bytes:
    """The reply body: each side's fields as arrays over the window's frames."""
    message: dict[str, Any] = {
        "wire": WIRE_VERSION,
        "window_id": window_id,
        "stamp_ns": _array(np.array([p.stamp_ns for p in poses], dtype=np.int64)),
        "frame_id": [p.frame_id for p in poses],
    }
    for side in HAND_SIDES:
        hands = [p.hand(side) for p in poses]
        if all(h is None for h in hands):
            message[side] = None
            continue
        empty = HandPose(presence=float("nan"))
        filled_in = [h if h is not None else empty for h in hands]
        arrays: dict[str, Any] = {
            "estimated": _array(np.array([h is not None for h in hands], dtype=np.bool_)),
            "presence": _array(np.array([h.presence for h in filled_in], dtype=np.float32)),
            "filled": _array(np.array([h.filled for h in filled_in], dtype=np.bool_)),
        }
        for name in HandPose.ARRAY_FIELDS:
            arrays[name] = _array(np.stack([getattr(h, name) for h in filled_in]).astype(np.float32))
        message[side] = arrays
    return pack(message)


def decode_poses(body: bytes, expected_id: str | None = None) -> list[FramePoses]:
    """The poses of a reply, checked (a server of another version is a WireError too)."""
    message = unpack(body)
    check_version(message)
    window_id = _field(message, "window_id", str)
    if expected_id is not None and window_id != expected_id:
        raise WireError(f"reply for window {window_id!r}, asked for {expected_id!r}", field="window_id")
    stamps = _from_array(message.get("stamp_ns"), "stamp_ns")
    frame_ids = _field(message, "frame_id", list)
    n = len(stamps)
    if len(frame_ids) != n:
        raise WireError(f"{len(frame_ids)} frame ids for {n} stamps", field="frame_id")
    sides: dict[str, list[HandPose | None]] = {}
    template = HandPose(presence=0.0)
    for side in HAND_SIDES:
        value = message.get(side)
        if value is None:
            sides[side] = [None] * n
            continue
        if not isinstance(value, Mapping):
            raise WireError("expected a map or nil", field=side)
        estimated = _from_array(value.get("estimated"), f"{side}.estimated", (n,))
        presence = _from_array(value.get("presence"), f"{side}.presence", (n,))
        filled = _from_array(value.get("filled"), f"{side}.filled", (n,))
        fields = {
            name: _from_array(value.get(name), f"{side}.{name}", (n, *getattr(template, name).shape))
            for name in HandPose.ARRAY_FIELDS
        }
        sides[side] = [
            HandPose(
                presence=float(presence[i]),
                filled=bool(filled[i]),
                **{name: array[i].copy() for name, array in fields.items()},
            )
            if estimated[i]
            else None
            for i in range(n)
        ]
    return [
        FramePoses(int(stamps[i]), str(frame_ids[i]), sides["left"][i], sides["right"][i]) for i in range(n)
    ]
