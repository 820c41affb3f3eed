"""BagFrameSource on real bags of every kind: pass-through, decoding, stamps, intrinsics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.bagfactory import (
    BAG_KINDS,
    CAMERA_INFO,
    IMAGE,
    START_NS,
    BagWriter,
    ExtraTopic,
    encode_raw,
    hand_photos,
    make_camera_info,
    make_image,
    synthetic_frames,
    typestore_for,
    write_image_bag,
)
from vidihand_ros.errors import InputError
from vidihand_ros.sources import BagFrameSource, list_image_topics, open_source
from vidihand_ros.types import CameraModel

W, H = 64, 48
CAM = CameraModel.from_fxfycxcy(50.0, 51.0, 32.0, 24.0, W, H)
CAM_B = CameraModel(
    K=np.array([[80.0, 0, 30], [0, 81, 22], [0, 0, 1]]),
    width=W,
    height=H,
    distortion_model="plumb_bob",
    D=np.array([0.1, -0.05, 0.001, 0.002, 0.0]),
)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """The real hand photos at 64×48, repeated to 6 frames."""
    return hand_photos(W, H) * 2


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


# --------------------------------------------------------------------------------------------
# CompressedImage


@pytest.mark.parametrize("kind", BAG_KINDS)
@pytest.mark.parametrize(
    "fmt, codec",
    [
        ("jpeg", "jpeg"),
        ("bgr8; jpeg compressed bgr8", "jpeg"),
        ("rgb8; jpeg compressed bgr8", "jpeg"),
        ("png", "png"),
        ("rgb8; png compressed", "png"),
    ],
)
def test_compressed_images_pass_through_unchanged(
    tmp_path: Path, kind: str, fmt: str, codec: str, photos
) -> None:
    bag = write_image_bag(
        tmp_path / "bag",
        photos,
        kind=kind,
        topic="/cam/image_raw/compressed",
        compressed_format=fmt,
        camera_info=CAM,
        frame_id="head_cam",
    )
    source = BagFrameSource(bag.path)
    frames = list(source)
    assert source.topic == "/cam/image_raw/compressed"
    assert source.camera_info_topic == "/cam/camera_info"
    assert source.message_count == len(photos) == len(frames)
    assert bag.payloads is not None
    for i, (frame, payload, photo) in enumerate(zip(frames, bag.payloads, photos, strict=True)):
        assert frame.data == payload  # bytes untouched
        assert frame.pixels is None
        assert frame.encoding == codec
        assert (frame.width, frame.height) == (W, H)
        assert frame.stamp_ns == bag.stamps_ns[i]
        assert frame.frame_id == "head_cam"
        assert frame.index == i
        assert frame.camera is not None and frame.camera.same_as(CAM)
        error = np.abs(frame.rgb().astype(int) - photo).mean()
        assert error == 0 if codec == "png" else error < 6  # the right colours, not BGR-swapped


def test_grey_and_16_bit_compressed(tmp_path: Path, photos) -> None:
    for fmt in ("mono8; jpeg compressed mono8", "mono16; png compressed mono16"):
        bag = write_image_bag(
            tmp_path / fmt[:6], photos[:2], kind="mcap", compressed_format=fmt, camera_info=CAM
        )
        assert bag.payloads is not None
        for frame, photo, payload in zip(BagFrameSource(bag.path), photos[:2], bag.payloads, strict=True):
            assert frame.data == payload
            assert np.abs(frame.rgb()[..., 0].astype(int) - _grey(photo)).mean() < 3


def test_format_string_empty_or_mislabelled_uses_the_bytes(tmp_path: Path, photos) -> None:
    png = cv2.imencode(".png", photos[0][..., ::-1])[1].tobytes()
    bag = write_image_bag(
        tmp_path / "b", [png, png], kind="sqlite3", compressed_format="jpeg", camera_info=CAM
    )
    assert [f.encoding for f in BagFrameSource(bag.path)] == ["png", "png"]
    bag = write_image_bag(tmp_path / "c", [png], kind="sqlite3", compressed_format="", camera_info=CAM)
    assert next(iter(BagFrameSource(bag.path))).encoding == "png"


# --------------------------------------------------------------------------------------------
# Raw Image

EXACT = ["rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"]
GREY = ["mono8", "mono16"]
#: Chroma-subsampled / mosaicked encodings: close to the input on a smooth image.
LOSSY = [
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
]


@pytest.fixture(scope="module")
def encoding_bags(tmp_path_factory: pytest.TempPathFactory, photos) -> dict[str, Path]:
    """One bag per kind with a topic per raw encoding (/<encoding>/image_raw): photos for the
    exactly-convertible encodings, smooth synthetic frames for the lossy ones."""
    smooth = list(synthetic_frames(3, W, H))
    bags = {}
    for kind in BAG_KINDS:
        ts = typestore_for(kind)
        with BagWriter(tmp_path_factory.mktemp(kind) / "encodings", kind) as bag:
            for i in range(3):
                for encoding in EXACT + GREY + LOSSY:
                    rgb = smooth[i] if encoding in LOSSY else photos[i]
                    msg = make_image(
                        ts, encode_raw(rgb, encoding), encoding, stamp_ns=START_NS + i, frame_id="c"
                    )
                    bag.write(f"/{encoding}/image_raw", IMAGE, START_NS + i, msg)
        bags[kind] = bag.path
    return bags


@pytest.mark.parametrize("kind", BAG_KINDS)
@pytest.mark.parametrize("encoding", EXACT + GREY)
def test_raw_encodings_decode_to_rgb(encoding_bags, kind: str, encoding: str, photos) -> None:
    frames = list(BagFrameSource(encoding_bags[kind], topic=f"/{encoding}/image_raw", camera=CAM))
    assert len(frames) == 3
    for frame, photo in zip(frames, photos[:3], strict=True):
        assert frame.encoding == "rgb8" and frame.data is None
        assert frame.pixels is not None and frame.pixels.shape == (H, W, 3) and frame.pixels.dtype == np.uint8
        if encoding in EXACT:
            np.testing.assert_array_equal(frame.pixels, photo)
        else:
            expected = np.repeat(_grey(photo)[..., None], 3, axis=2)
            np.testing.assert_array_equal(frame.pixels, expected)  # 16-bit: v·257·255/65535 = v


@pytest.mark.parametrize("kind", BAG_KINDS)
@pytest.mark.parametrize("encoding", LOSSY)
def test_yuv_and_bayer_decode_close_to_rgb(encoding_bags, kind: str, encoding: str) -> None:
    frames_in = list(synthetic_frames(3, W, H))
    frames = list(BagFrameSource(encoding_bags[kind], topic=f"/{encoding}/image_raw", camera=CAM))
    assert len(frames) == 3
    for frame, rgb in zip(frames, frames_in, strict=True):
        error = np.abs(frame.rgb().astype(int) - rgb).mean()
        swapped = np.abs(frame.rgb().astype(int) - rgb[..., ::-1]).mean()
        assert error < 4, f"{encoding}: mean error {error:.1f}"
        assert error < swapped / 3  # red and blue not exchanged (Bayer pattern naming is subtle)


def test_row_padding_and_big_endian(tmp_path: Path, photos) -> None:
    bag = write_image_bag(
        tmp_path / "a", photos[:2], kind="mcap", encoding="bgr8", row_padding=5, camera_info=CAM
    )
    np.testing.assert_array_equal(next(iter(BagFrameSource(bag.path))).rgb(), photos[0])
    bag = write_image_bag(
        tmp_path / "b",
        photos[:2],
        kind="rosbag1",
        encoding="rgb16",
        is_bigendian=True,
        row_padding=2,
        camera_info=CAM,
    )
    np.testing.assert_array_equal(next(iter(BagFrameSource(bag.path))).rgb(), photos[0])


def test_mono16_is_scaled_like_cv_bridge(tmp_path: Path) -> None:
    """cv_bridge converts 16 → 8 bit with convertTo(…, 255/65535): scaled and rounded."""
    ts = typestore_for("sqlite3")
    values = np.array([[0, 128, 129, 32767], [32768, 65279, 65534, 65535]], dtype=np.uint16)
    with BagWriter(tmp_path / "b", "sqlite3") as bag:
        bag.write(
            "/d/image", IMAGE, START_NS, make_image(ts, values, "mono16", stamp_ns=START_NS, frame_id="f")
        )
    frame = next(iter(BagFrameSource(bag.path, camera=CAM)))
    expected = np.rint(values * (255 / 65535)).astype(np.uint8)
    np.testing.assert_array_equal(frame.rgb()[..., 1], expected)


# --------------------------------------------------------------------------------------------
# Stamps, frame ids, topics


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_header_stamps_and_zero_stamp_fallback(tmp_path: Path, kind: str, photos) -> None:
    stamps = [START_NS, START_NS + 40_000_123, 0, START_NS + 95_000_000]
    receive = [START_NS + 5_000_000 + i * 33_000_000 for i in range(4)]
    bag = write_image_bag(
        tmp_path / "bag",
        photos[:4],
        kind=kind,
        compressed_format="jpeg",
        stamps_ns=stamps,
        receive_ns=receive,
        frame_id="left_cam_optical",
        camera_info=CAM,
    )
    frames = list(BagFrameSource(bag.path))
    assert [f.stamp_ns for f in frames] == [stamps[0], stamps[1], receive[2], stamps[3]]
    assert {f.frame_id for f in frames} == {"left_cam_optical"}


def test_topic_choice_among_several(tmp_path: Path, photos) -> None:
    ts = typestore_for("mcap")
    other = [
        (START_NS + i, make_image(ts, photos[i], "rgb8", stamp_ns=START_NS + i, frame_id="r"))
        for i in range(2)
    ]
    bag = write_image_bag(
        tmp_path / "bag",
        photos[:3],
        kind="mcap",
        topic="/left/image_raw",
        camera_info=CAM,
        extra=[ExtraTopic("/right/image_raw", IMAGE, other)],
    )
    assert list_image_topics(bag.path) == {"/left/image_raw": IMAGE, "/right/image_raw": IMAGE}
    with pytest.raises(InputError) as err:
        BagFrameSource(bag.path)
    assert "/left/image_raw" in str(err.value) and "/right/image_raw" in str(err.value)
    assert str(bag.path) in str(err.value)
    right = BagFrameSource(bag.path, topic="/right/image_raw", camera=CAM_B)
    assert right.message_count == 2
    assert [f.frame_id for f in right] == ["r", "r"]
    assert right.camera_info_topic is None  # /left/camera_info is not beside /right/image_raw
    assert next(iter(right)).camera is CAM_B


def test_single_mcap_and_db3_files(tmp_path: Path, photos) -> None:
    for kind, suffix in (("mcap", ".mcap"), ("sqlite3", ".db3")):
        bag = write_image_bag(
            tmp_path / kind, photos[:2], kind=kind, compressed_format="jpeg", camera_info=CAM
        )
        (file,) = bag.path.glob(f"*{suffix}")
        source = open_source(file)
        assert isinstance(source, BagFrameSource)
        assert [f.data for f in source] == bag.payloads
        assert source.source_description["storage"] == kind


def test_source_description(tmp_path: Path, photos) -> None:
    bag = write_image_bag(
        tmp_path / "bag.bag", photos[:2], kind="rosbag1", compressed_format="jpeg", camera_info=CAM
    )
    desc = BagFrameSource(bag.path).source_description
    assert desc == {
        "kind": "bag",
        "path": str(bag.path),
        "storage": "rosbag1",
        "topic": "/camera/image_raw",
        "msgtype": "sensor_msgs/msg/CompressedImage",
        "camera_info_topic": "/camera/camera_info",
        "intrinsics": "camera_info",
        "message_count": 2,
    }


# --------------------------------------------------------------------------------------------
# Intrinsics


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_intrinsics_nearest_in_time_when_calibration_changes(tmp_path: Path, kind: str) -> None:
    """CameraInfo at 1 Hz-ish with a re-calibration mid-bag; frames at 10 Hz take the nearest."""
    ms = 1_000_000
    infos = [
        (START_NS + t * ms, cam) for t, cam in [(0, CAM), (200, CAM), (400, CAM), (650, CAM_B), (900, CAM_B)]
    ]
    bag = write_image_bag(
        tmp_path / "bag",
        synthetic_frames(10),
        kind=kind,
        fps=10,
        compressed_format="jpeg",
        camera_info=infos,
        camera_info_topic="/camera/camera_info",
    )
    source = BagFrameSource(bag.path)
    assert source.calibrations == 2  # five messages, two distinct calibrations
    cams = [f.camera for f in source]
    # frames at 0..900 ms: ≤ 500 ms is nearer to 400 (CAM) than to 650 (CAM_B); 600 ms is nearer to 650
    expected = [CAM] * 6 + [CAM_B] * 4
    assert all(c is not None and c.same_as(e) for c, e in zip(cams, expected, strict=True))
    assert cams[9] is not None and cams[9].distortion_model == "plumb_bob"
    np.testing.assert_array_equal(cams[9].D, CAM_B.D)


def test_namespace_pairing_prefers_the_camera_info_beside_the_image(tmp_path: Path, photos) -> None:
    ts = typestore_for("sqlite3")
    right_info = [(START_NS, make_camera_info(ts, CAM_B, stamp_ns=START_NS, frame_id="r"))]
    bag = write_image_bag(
        tmp_path / "bag",
        photos[:2],
        kind="sqlite3",
        topic="/head/left/image_raw/compressed",
        compressed_format="jpeg",
        camera_info=CAM,
        camera_info_topic="/head/left/camera_info",
        extra=[ExtraTopic("/head/right/camera_info", CAMERA_INFO, right_info)],
    )
    source = BagFrameSource(bag.path)
    assert source.camera_info_topic == "/head/left/camera_info"
    assert all(f.camera is not None and f.camera.same_as(CAM) for f in source)
    override = BagFrameSource(bag.path, camera_info_topic="/head/right/camera_info")
    assert all(f.camera is not None and f.camera.same_as(CAM_B) for f in override)


def test_the_only_camera_info_topic_is_used_wherever_it_is(tmp_path: Path, photos) -> None:
    bag = write_image_bag(
        tmp_path / "bag",
        photos[:2],
        kind="mcap",
        topic="/cam/image",
        camera_info=CAM_B,
        camera_info_topic="/calib/info",
        compressed_format="png",
    )
    source = BagFrameSource(bag.path, camera=CAM)
    assert source.camera_info_topic == "/calib/info"
    assert all(f.camera is not None and f.camera.same_as(CAM_B) for f in source)  # CameraInfo beats fallback


def test_fallback_camera_without_camera_info(tmp_path: Path, photos) -> None:
    bag = write_image_bag(tmp_path / "bag", photos[:2], kind="rosbag1", compressed_format="jpeg")
    source = BagFrameSource(bag.path, camera=CAM_B)
    assert source.camera_info_topic is None
    assert [f.camera for f in source] == [CAM_B, CAM_B]
    assert source.source_description["intrinsics"] == "given"


def test_uncalibrated_camera_info_counts_as_none(tmp_path: Path, photos) -> None:
    zero = CameraModel(K=np.zeros((3, 3)), width=W, height=H)
    bag = write_image_bag(
        tmp_path / "bag", photos[:2], kind="mcap", compressed_format="jpeg", camera_info=zero
    )
    with pytest.raises(InputError, match=r"K = 0.*--intrinsics"):
        BagFrameSource(bag.path)
    assert next(iter(BagFrameSource(bag.path, camera=CAM))).camera is CAM
