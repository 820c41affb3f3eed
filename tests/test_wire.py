"""The wire format (`vidihand_ros.wire`): round trips, and each way a message can be wrong."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from tests import test_server_support as support
from tests.estimators import StampEstimator
from vidihand_ros.types import Frame, FramePoses, HandPose, Window
from vidihand_ros.wire import (
    MAX_FRAMES,
    WIRE_VERSION,
    WireError,
    WireLimits,
    decode_poses,
    decode_window,
    encode_poses,
    encode_window,
    pack,
    unpack,
)


def as_dict(body: bytes) -> dict[str, Any]:
    value = msgpack.unpackb(body, raw=False)
    assert isinstance(value, dict)
    return value


def test_a_window_round_trips_bytes_calibration_and_fields() -> None:
    window = support.jpeg_window(4, stamp0=123_456_789, start=7)
    window.num_valid = 3
    window.segment = 2
    window_id, stream_id, back = decode_window(encode_window(window, "w-1", "robot"))
    assert (window_id, stream_id) == ("w-1", "robot")
    assert (back.start, back.num_valid, back.segment) == (7, 3, 2)
    for a, b in zip(window.frames, back.frames, strict=True):
        assert (a.stamp_ns, a.frame_id, a.encoding, a.width, a.height) == (
            b.stamp_ns,
            b.frame_id,
            b.encoding,
            b.width,
            b.height,
        )
        assert a.data == b.data  # the camera's bytes, not re-encoded
        assert b.camera is not None and b.camera.same_as(a.camera)
    assert len(as_dict(encode_window(window, "w"))["cameras"]) == 1  # one calibration, shared


def test_frames_keep_their_stream_index() -> None:
    """Overlapping windows share frames: a stateful estimator knows them by (stamp, index)."""
    window = support.jpeg_window(3, start=40)
    for k, frame in enumerate(window.frames):
        frame.index = 1000 + k  # e.g. the message's position in its bag
    _, _, back = decode_window(encode_window(window, "w"))
    assert [f.index for f in back.frames] == [1000, 1001, 1002]
    message = as_dict(encode_window(window, "w"))
    for frame in message["frames"]:
        del frame["index"]  # an older client: the position in the stream, from `start`
    _, _, back = decode_window(msgpack.packb(message, use_bin_type=True))
    assert [f.index for f in back.frames] == [40, 41, 42]


def test_raw_and_uncalibrated_frames_round_trip() -> None:
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    frames = [
        Frame(10, "f", "rgb8", 5, 4, pixels=pixels),
        Frame(20, "f", "rgb8", 5, 4, pixels=(pixels + 1).astype(np.uint8)),
    ]
    _, _, back = decode_window(encode_window(Window(frames, 0, 2, 0), "w"))
    assert back.frames[0].camera is None
    np.testing.assert_array_equal(back.frames[1].rgb(), pixels + 1)


def test_poses_round_trip_with_missing_hands_and_nans() -> None:
    window = support.jpeg_window(3)
    poses = StampEstimator().estimate([window])[0]
    poses[1].right = None
    poses[2].left = HandPose(presence=0.3, filled=True)  # NaN arrays
    poses.append(FramePoses(999, "x"))
    back = decode_poses(encode_poses("w", poses), expected_id="w")
    assert [p.stamp_ns for p in back] == [p.stamp_ns for p in poses]
    assert back[1].right is None and back[3].left is None and back[3].right is None
    left = back[2].left
    assert left is not None and left.filled and np.isnan(left.joints_3d).all()
    assert np.isclose(left.presence, 0.3)
    np.testing.assert_array_equal(back[0].left.joints_3d, poses[0].left.joints_3d)  # type: ignore[union-attr]
    none = decode_poses(encode_poses("e", [FramePoses(1, "a")]))
    assert none[0].left is None and as_dict(encode_poses("e", [FramePoses(1, "a")]))["left"] is None


def _window_message() -> dict[str, Any]:
    return as_dict(encode_window(support.jpeg_window(2), "w", "s"))


def _frame(**changes: Any) -> dict[str, Any]:
    message = _window_message()
    message["frames"][0].update(changes)
    return message


WINDOW_ERRORS: list[tuple[str, dict[str, Any] | bytes, int, str | None]] = [
    ("wire version", {**_window_message(), "wire": 2}, 409, "wire"),
    ("wire missing", {k: v for k, v in _window_message().items() if k != "wire"}, 400, "wire"),
    ("window_id type", {**_window_message(), "window_id": b"w"}, 400, "window_id"),
    ("window_id length", {**_window_message(), "window_id": "w" * 129}, 400, "window_id"),
    ("stream_id length", {**_window_message(), "stream_id": "s" * 129}, 400, "stream_id"),
    ("segment negative", {**_window_message(), "segment": -1}, 400, "segment"),
    ("start as bool", {**_window_message(), "start": True}, 400, "start"),
    ("no frames", {**_window_message(), "frames": []}, 400, "frames"),
    ("index negative", _frame(index=-1), 400, "frames[0].index"),
    ("index type", _frame(index="3"), 400, "frames[0].index"),
    (
        "too many frames",
        {**_window_message(), "frames": _window_message()["frames"][:1] * (MAX_FRAMES + 1)},
        400,
        "frames",
    ),
    ("num_valid 0", {**_window_message(), "num_valid": 0}, 400, "num_valid"),
    ("too many cameras", {**_window_message(), "cameras": _window_message()["cameras"] * 17}, 400, "cameras"),
    ("camera not a map", {**_window_message(), "cameras": [3]}, 400, "cameras[0]"),
    (
        "K of 8",
        {**_window_message(), "cameras": [{**_window_message()["cameras"][0], "K": [1.0] * 8}]},
        400,
        "cameras[0].K",
    ),
    (
        "D too long",
        {**_window_message(), "cameras": [{**_window_message()["cameras"][0], "D": [0.0] * 15}]},
        400,
        "cameras[0].D",
    ),
    (
        "K not finite",
        {**_window_message(), "cameras": [{**_window_message()["cameras"][0], "K": [float("nan")] * 9}]},
        400,
        "cameras[0].K",
    ),
    ("frame not a map", {**_window_message(), "frames": ["f", "g"]}, 400, "frames[0]"),
    ("encoding", _frame(encoding="bmp"), 400, "frames[0].encoding"),
    ("camera index", _frame(camera=1), 400, "frames[0].camera"),
    ("camera index bool", _frame(camera=True), 400, "frames[0].camera"),
    ("data type", _frame(data="text"), 400, "frames[0].data"),
    ("corrupt jpeg", _frame(data=b"\xff\xd8\xff garbage"), 400, "frames[0].data"),
    ("declared size", _frame(width=20000, height=20000), 400, "frames[0].data"),
    ("zero width", _frame(width=0), 400, "frames[0].data"),
    ("rgb8 length", _frame(encoding="rgb8", data=b"123"), 400, "frames[0].data"),
    ("not msgpack", b"\xc1", 400, None),
    ("trailing bytes", pack({"wire": 1}) + b"\x00", 400, None),
    ("not a map", msgpack.packb([1, 2]), 400, None),
    ("non-string keys", msgpack.packb({1: 2}), 400, None),
]


@pytest.mark.parametrize(
    ("name", "value", "status", "field"), WINDOW_ERRORS, ids=[e[0] for e in WINDOW_ERRORS]
)
def test_each_window_error_names_its_field_and_status(
    name: str, value: Any, status: int, field: str | None
) -> None:
    body = value if isinstance(value, bytes) else pack(value)
    with pytest.raises(WireError) as caught:
        decode_window(body)
    assert caught.value.status == status
    assert caught.value.field == field
    assert caught.value.message


def test_length_limits_hold_before_anything_is_built() -> None:
    body = encode_window(support.jpeg_window(2), "w")
    with pytest.raises(WireError) as caught:
        unpack(body, WireLimits(max_bytes=len(body) - 1))
    assert caught.value.status == 413
    with pytest.raises(WireError, match="not a msgpack message"):
        unpack(b"\xdd\xff\xff\xff\xff")  # an array claiming 4 billion items in 5 bytes
    small = WireLimits(max_pixels=64 * 48 - 1)
    with pytest.raises(WireError, match="pixels"):
        decode_window(body, small)


def _poses_message() -> dict[str, Any]:
    return as_dict(encode_poses("w", StampEstimator().estimate([support.jpeg_window(2)])[0]))


def _side(**changes: Any) -> dict[str, Any]:
    message = _poses_message()
    message["left"].update(changes)
    return message


POSE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("version", {**_poses_message(), "wire": 0}, "wire"),
    ("stamps", {**_poses_message(), "stamp_ns": [1, 2]}, "stamp_ns"),
    ("frame ids", {**_poses_message(), "frame_id": ["a"]}, "frame_id"),
    ("side type", {**_poses_message(), "left": [1]}, "left"),
    ("dtype", _side(presence={"dtype": "<f2", "shape": [2], "data": b"\x00" * 4}), "left.presence.dtype"),
    ("shape", _side(presence={"dtype": "<f4", "shape": [-1], "data": b""}), "left.presence.shape"),
    ("data type", _side(presence={"dtype": "<f4", "shape": [2], "data": "xx"}), "left.presence.data"),
    (
        "data length",
        _side(presence={"dtype": "<f4", "shape": [2], "data": b"\x00" * 7}),
        "left.presence.data",
    ),
    (
        "wrong shape",
        _side(joints_3d={"dtype": "<f4", "shape": [2, 20, 3], "data": b"\x00" * 480}),
        "left.joints_3d.shape",
    ),
    ("missing array", _side(betas=None), "left.betas"),
]


@pytest.mark.parametrize(("name", "message", "field"), POSE_ERRORS, ids=[e[0] for e in POSE_ERRORS])
def test_each_reply_error_names_its_field(name: str, message: dict[str, Any], field: str) -> None:
    with pytest.raises(WireError) as caught:
        decode_poses(pack(message))
    assert caught.value.field == field


def test_a_reply_for_another_window_is_refused() -> None:
    with pytest.raises(WireError) as caught:
        decode_poses(encode_poses("a", []), expected_id="b")
    assert caught.value.field == "window_id"
    assert WIRE_VERSION == 1


def test_big_endian_arrays_are_sent_little_endian() -> None:
    pose = HandPose(presence=0.5, joints_3d=np.ones((21, 3), dtype=">f4"))
    message = as_dict(encode_poses("w", [FramePoses(1, "f", left=pose)]))
    assert message["left"]["joints_3d"]["dtype"] == "<f4"


def test_frames_of_a_window_must_be_distinct() -> None:
    """Two frames with one (stamp, index) would make a stateful estimator misalign its poses."""
    message = as_dict(encode_window(support.jpeg_window(3), "w"))
    message["frames"][2]["index"] = message["frames"][1]["index"]
    message["frames"][2]["stamp_ns"] = message["frames"][1]["stamp_ns"]
    with pytest.raises(WireError) as caught:
        decode_window(msgpack.packb(message, use_bin_type=True))
    assert (caught.value.status, caught.value.field) == (400, "frames[2].index")
