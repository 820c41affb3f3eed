"""Every bad input to a bag source is an InputError naming file, topic, message index and field."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from tests.bagfactory import (
    BAG_KINDS,
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    START_NS,
    BagWriter,
    ExtraTopic,
    hand_photo_bytes,
    hand_photos,
    make_camera_info,
    make_compressed_image,
    make_image,
    typestore_for,
    write_image_bag,
)
from vidihand_ros.errors import InputError
from vidihand_ros.sources import BagFrameSource, open_source
from vidihand_ros.types import CameraModel

W, H = 64, 48
CAM = CameraModel.from_fxfycxcy(50.0, 50.0, 32.0, 24.0, W, H)
TOPIC = "/camera/image_raw"


def _located(
    err: InputError,
    path: Path,
    *,
    topic: str | None = TOPIC,
    index: int | None = None,
    field: str | None = None,
) -> str:
    """Assert the error names what it should, and return its text."""
    text = str(err)
    assert str(path) in text
    if topic is not None:
        assert f"topic {topic}" in text
    if index is not None:
        assert f"message {index}" in text and err.index == index
    if field is not None:
        assert f"field '{field}'" in text
    return text


def _raw_image_bag(path: Path, kind: str, msgs: list[object]) -> Path:
    with BagWriter(path, kind) as bag:
        for i, msg in enumerate(msgs):
            bag.write(TOPIC, IMAGE, START_NS + i * 33_000_000, msg)
    return bag.path


# --------------------------------------------------------------------------------------------
# Corrupt images


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_corrupt_jpeg_is_skipped_and_counted(tmp_path: Path, kind: str, jpegs, caplog) -> None:
    payloads = [jpegs[0], jpegs[1][: len(jpegs[1]) // 2], jpegs[2], b"\x00garbage", jpegs[0]]
    bag = write_image_bag(tmp_path / "bag", payloads, kind=kind, compressed_format="jpeg", camera_info=CAM)
    source = BagFrameSource(bag.path)
    with caplog.at_level(logging.WARNING):
        frames = list(source)
    assert [f.index for f in frames] == [0, 2, 4]
    assert [f.data for f in frames] == [payloads[0], payloads[2], payloads[4]]
    assert [s["index"] for s in source.skipped] == [1, 3]
    assert source.skipped[0]["stamp_ns"] == bag.stamps_ns[1]
    assert "truncated" in str(source.skipped[0]["reason"])
    assert "message 1" in caplog.text and "message 3" in caplog.text
    list(source)  # iterating again starts a fresh count
    assert len(source.skipped) == 2


def test_corrupt_jpeg_with_strict_is_an_error(tmp_path: Path, jpegs) -> None:
    bag = write_image_bag(
        tmp_path / "bag", [jpegs[0], jpegs[1][:-40]], kind="mcap", compressed_format="jpeg", camera_info=CAM
    )
    with pytest.raises(InputError) as err:
        list(BagFrameSource(bag.path, strict=True))
    _located(err.value, bag.path, index=1, field="data")


def test_corrupt_png_is_skipped(tmp_path: Path) -> None:
    import imagecodecs

    png = bytes(imagecodecs.png_encode(hand_photos(W, H)[0]))
    bag = write_image_bag(
        tmp_path / "bag", [png, png[:-30]], kind="sqlite3", compressed_format="png", camera_info=CAM
    )
    source = BagFrameSource(bag.path)
    assert len(list(source)) == 1 and source.skipped[0]["index"] == 1


def test_all_images_corrupt(tmp_path: Path) -> None:
    bag = write_image_bag(
        tmp_path / "bag",
        [b"\xff\xd8\xff\x00", b"\xff\xd8"],
        kind="mcap",
        compressed_format="jpeg",
        camera_info=CAM,
    )
    with pytest.raises(InputError, match="none of the 2 image messages"):
        list(BagFrameSource(bag.path))


def test_size_change_names_message_and_both_sizes(tmp_path: Path) -> None:
    """The original hand photos: 848×565, then 1024×683."""
    originals = hand_photo_bytes()
    bag = write_image_bag(tmp_path / "bag", originals[:2], kind="rosbag1", compressed_format="jpeg")
    source = BagFrameSource(bag.path, camera=CAM)
    with pytest.raises(InputError) as err:
        list(source)
    text = _located(err.value, bag.path, index=1)
    assert "848x565" in text and "1024x683" in text


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth", "32FC1; compressedDepth png", "theora"])
def test_unsupported_compressed_formats(tmp_path: Path, fmt: str, jpegs) -> None:
    bag = write_image_bag(tmp_path / "bag", [jpegs[0]], kind="mcap", compressed_format=fmt, camera_info=CAM)
    with pytest.raises(InputError) as err:
        list(BagFrameSource(bag.path))
    assert fmt in _located(err.value, bag.path, index=0, field="format")


def test_unknown_format_and_unknown_bytes(tmp_path: Path) -> None:
    bag = write_image_bag(
        tmp_path / "bag", [b"RIFF....WEBP"], kind="mcap", compressed_format="", camera_info=CAM
    )
    with pytest.raises(InputError) as err:
        list(BagFrameSource(bag.path))
    _located(err.value, bag.path, index=0, field="format")


# --------------------------------------------------------------------------------------------
# Bad raw Images


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_unknown_encoding_names_field_and_value(tmp_path: Path, kind: str) -> None:
    ts = typestore_for(kind)
    pixels = hand_photos(W, H)[0]
    msgs = [
        make_image(ts, pixels, "rgb8", stamp_ns=START_NS, frame_id="c"),
        make_image(ts, pixels, "hsv8", stamp_ns=START_NS + 1, frame_id="c"),
    ]
    path = _raw_image_bag(tmp_path / "bag", kind, msgs)
    with pytest.raises(InputError) as err:
        list(BagFrameSource(path, camera=CAM))
    assert "'hsv8'" in _located(err.value, path, index=1, field="encoding")


def test_unconvertible_encoding(tmp_path: Path) -> None:
    ts = typestore_for("mcap")
    depth = np.ones((H, W), np.float32)
    msg = make_image(ts, depth.view(np.uint8).reshape(H, W * 4), "32FC1", stamp_ns=START_NS, frame_id="c")
    msg.width = W
    path = _raw_image_bag(tmp_path / "bag", "mcap", [msg])
    with pytest.raises(InputError) as err:
        list(BagFrameSource(path, camera=CAM))
    assert "32FC1" in _located(err.value, path, index=0, field="encoding")


@pytest.mark.parametrize("kind", ["rosbag1", "sqlite3"])
def test_short_data_and_bad_step(tmp_path: Path, kind: str) -> None:
    ts = typestore_for(kind)
    pixels = hand_photos(W, H)[0]
    short = make_image(ts, pixels, "rgb8", stamp_ns=START_NS, frame_id="c")
    short.data = short.data[: short.data.size - 100]
    path = _raw_image_bag(tmp_path / "short", kind, [short])
    with pytest.raises(InputError) as err:
        list(BagFrameSource(path, camera=CAM))
    _located(err.value, path, index=0, field="data")

    narrow = make_image(ts, pixels, "rgb8", stamp_ns=START_NS, frame_id="c")
    narrow.step = W * 3 - 1
    path = _raw_image_bag(tmp_path / "narrow", kind, [narrow])
    with pytest.raises(InputError) as err:
        list(BagFrameSource(path, camera=CAM))
    _located(err.value, path, index=0, field="step")


# --------------------------------------------------------------------------------------------
# Topics and intrinsics


def test_given_topic_missing_lists_image_topics(tmp_path: Path, jpegs) -> None:
    bag = write_image_bag(
        tmp_path / "bag",
        jpegs,
        kind="mcap",
        topic="/cam/image/compressed",
        compressed_format="jpeg",
        camera_info=CAM,
    )
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path, topic="/cam/image_raw")
    assert "/cam/image/compressed" in _located(err.value, bag.path, topic="/cam/image_raw")
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path, topic="/cam/camera_info")
    assert "CameraInfo" in _located(err.value, bag.path, topic="/cam/camera_info")


def test_given_camera_info_topic_missing(tmp_path: Path, jpegs) -> None:
    bag = write_image_bag(tmp_path / "bag", jpegs, kind="mcap", compressed_format="jpeg", camera_info=CAM)
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path, camera_info_topic="/nope/camera_info")
    assert "/camera/camera_info" in _located(err.value, bag.path, topic="/nope/camera_info")


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_no_intrinsics(tmp_path: Path, kind: str, jpegs) -> None:
    bag = write_image_bag(tmp_path / "bag", jpegs, kind=kind, compressed_format="jpeg")
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path)
    text = _located(err.value, bag.path)
    assert "no intrinsics" in text and "--intrinsics" in text and "--camera-info-topic" in text


def test_several_camera_info_topics_elsewhere(tmp_path: Path, jpegs) -> None:
    ts = typestore_for("mcap")
    info = [(START_NS, make_camera_info(ts, CAM, stamp_ns=START_NS, frame_id="x"))]
    bag = write_image_bag(
        tmp_path / "bag",
        jpegs,
        kind="mcap",
        topic="/cam/image",
        compressed_format="jpeg",
        extra=[
            ExtraTopic("/a/camera_info", CAMERA_INFO, info),
            ExtraTopic("/b/camera_info", CAMERA_INFO, info),
        ],
    )
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path)
    assert "/a/camera_info, /b/camera_info" in _located(err.value, bag.path, topic="/cam/image")
    assert BagFrameSource(bag.path, camera_info_topic="/b/camera_info").camera_info_topic == "/b/camera_info"


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_bag_without_images(tmp_path: Path, kind: str) -> None:
    ts = typestore_for(kind)
    with BagWriter(tmp_path / "bag", kind) as bag:
        bag.write(
            "/cam/camera_info",
            CAMERA_INFO,
            START_NS,
            make_camera_info(ts, CAM, stamp_ns=START_NS, frame_id="c"),
        )
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path)
    assert "no image topic" in _located(err.value, bag.path, topic=None)
    assert "/cam/camera_info" in str(err.value)


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_empty_bag(tmp_path: Path, kind: str) -> None:
    with BagWriter(tmp_path / "bag", kind) as bag:
        pass
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path)
    _located(err.value, bag.path, topic=None)


# --------------------------------------------------------------------------------------------
# Damaged files and wrong paths


def _damage(bag: Path, keep: float | None) -> None:
    """Cut the storage file to `keep` of its size, or overwrite it with random bytes (None)."""
    file = bag if bag.is_file() else next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)] if keep is not None else os.urandom(len(data)))


@pytest.mark.parametrize("kind", BAG_KINDS)
@pytest.mark.parametrize("keep", [0.6, 0.0, None])
def test_truncated_or_garbage_bag(tmp_path: Path, kind: str, keep: float | None, jpegs) -> None:
    bag = write_image_bag(tmp_path / "bag", jpegs * 3, kind=kind, compressed_format="jpeg", camera_info=CAM)
    _damage(bag.path, keep)
    with pytest.raises(InputError) as err:
        list(BagFrameSource(bag.path))
    text = _located(err.value, bag.path, topic=None)
    assert "cannot read bag" in text
    if keep == 0.6 and kind != "sqlite3":
        assert "rosbag reindex" in text if kind == "rosbag1" else "mcap recover" in text


def test_undeserialisable_message_names_its_index(tmp_path: Path, jpegs) -> None:
    ts = typestore_for("mcap")
    with BagWriter(tmp_path / "bag", "mcap") as bag:
        for i, data in enumerate(jpegs):
            bag.write(
                TOPIC,
                COMPRESSED_IMAGE,
                START_NS + i,
                make_compressed_image(ts, data, "jpeg", stamp_ns=START_NS + i, frame_id="c"),
            )
        bag.write_raw(TOPIC, COMPRESSED_IMAGE, START_NS + 10, b"\x00\x01\x00\x00\x07")
    source = BagFrameSource(bag.path, camera=CAM)
    with pytest.raises(InputError) as err:
        list(source)
    assert "damaged" in _located(err.value, bag.path, index=len(jpegs))


def test_nonexistent_paths_and_unknown_files(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.bag", tmp_path / "missing_dir"):
        with pytest.raises(InputError) as err:
            open_source(path)
        _located(err.value, path, topic=None)
    with pytest.raises(InputError) as err:
        BagFrameSource(tmp_path / "missing.mcap")
    _located(err.value, tmp_path / "missing.mcap", topic=None)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a recording"):
        open_source(tmp_path / "notes.txt")
    (tmp_path / "plain_dir").mkdir()
    with pytest.raises(InputError) as err:
        open_source(tmp_path / "plain_dir")
    _located(err.value, tmp_path / "plain_dir", topic=None)
    with pytest.raises(InputError, match=r"metadata\.yaml"):
        BagFrameSource(tmp_path / "plain_dir")


def test_bag_directory_missing_its_storage_file(tmp_path: Path, jpegs) -> None:
    bag = write_image_bag(tmp_path / "bag", jpegs, kind="sqlite3", compressed_format="jpeg", camera_info=CAM)
    for file in bag.path.glob("*.db3"):
        file.unlink()
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path)
    _located(err.value, bag.path, topic=None)


def test_bag_directory_without_metadata_points_at_its_storage_file(tmp_path: Path, jpegs) -> None:
    """A ROS 2 recorder killed hard leaves the .mcap/.db3 but no metadata.yaml."""
    bag = write_image_bag(tmp_path / "bag", jpegs, kind="mcap", compressed_format="jpeg", camera_info=CAM)
    (bag.path / "metadata.yaml").unlink()
    with pytest.raises(InputError, match=r"pass that file") as err:
        open_source(bag.path)
    (storage,) = bag.path.glob("*.mcap")
    assert storage.name in _located(err.value, bag.path, topic=None)
    assert [f.data for f in open_source(storage)] == bag.payloads


@pytest.mark.parametrize(
    ("encoding", "width", "height", "field"), [("uyvy", 63, 48, "width"), ("nv12", 64, 47, "height")]
)
def test_subsampled_yuv_of_odd_size_names_the_field(
    tmp_path: Path, encoding: str, width: int, height: int, field: str
) -> None:
    """OpenCV asserts even sizes for 4:2:2/4:2:0 (a cv2.error traceback before)."""
    ts = typestore_for("mcap")
    rows = height * 3 // 2 if encoding == "nv12" else height
    shape = (rows, width) if encoding == "nv12" else (rows, width, 2)
    msg = make_image(ts, np.zeros(shape, np.uint8), encoding, stamp_ns=START_NS, frame_id="c")
    msg.height = height
    path = _raw_image_bag(tmp_path / "bag", "mcap", [msg])
    with pytest.raises(InputError) as err:
        list(BagFrameSource(path, camera=CAM))
    assert "even" in _located(err.value, path, index=0, field=field)
