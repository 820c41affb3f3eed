"""`--blur-faces`: MediaPipe's face detector on the real photos, then convert and the capture
recorder / node storing blurred frames (only those with a face re-encoded) and counting them.

The photos (HaMeR's examples) show faces: a woman facing the camera in hamer_test1 and a man in
hamer_test3 (both in the upper middle), a woman behind her hands in hamer_test5. A frame without a
face is the lower half of hamer_test5 (torso, arms, jeans).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import pytest
from numpy.typing import NDArray

pytest.importorskip("mediapipe")

from tests.bagfactory import WrittenBag, write_image_bag
from tests.test_dataset import STEP, T0
from vidihand_ros.capture import Recorder
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.errors import InputError
from vidihand_ros.privacy import FaceBlurrer
from vidihand_ros.privacy.faces import MISSING
from vidihand_ros.testing.shared_data import hand_photo_path
from vidihand_ros.types import CameraModel, Frame

DETECTOR = "mediapipe face_detection full range 0.10.21"


def photo(n: int) -> NDArray[np.uint8]:
    return np.asarray(imagecodecs.jpeg8_decode(hand_photo_path(n).read_bytes()), dtype=np.uint8)


def faceless() -> NDArray[np.uint8]:
    """The lower half of hamer_test5: no face in it."""
    return photo(5)[900:1800]


def small(rgb: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def blurrer() -> Iterator[FaceBlurrer]:
    with FaceBlurrer() as b:
        yield b


@pytest.mark.parametrize("n", [1, 3, 5])
def test_the_faces_in_the_real_photos_are_found_and_only_they_are_blurred(
    blurrer: FaceBlurrer, n: int
) -> None:
    rgb = photo(n)
    before = rgb.copy()
    boxes = blurrer.boxes(rgb)
    out, faces = blurrer.blur(rgb)
    assert faces == len(boxes) >= 1
    np.testing.assert_array_equal(rgb, before)  # the input is left alone
    height, width = rgb.shape[:2]
    inside = np.zeros((height, width), dtype=bool)
    for box in boxes:
        inside[box.y0 : box.y1, box.x0 : box.x1] = True
        cx, cy = (box.x0 + box.x1) / 2 / width, (box.y0 + box.y1) / 2 / height
        assert 0.3 < cx < 0.75 and 0.15 < cy < 0.55, (n, box)  # where the face is in the photo
    changed = np.any(out != rgb, axis=2)
    assert not changed[~inside].any()  # not one pixel outside the (enlarged) face boxes
    assert changed[inside].mean() > 0.8
    for box in boxes:  # strong: the face's fine detail is gone
        detail = [
            cv2.Laplacian(img[box.y0 : box.y1, box.x0 : box.x1], cv2.CV_64F).var() for img in (rgb, out)
        ]
        assert detail[1] < detail[0] / 20, detail


def test_a_frame_without_a_face_comes_back_unchanged(blurrer: FaceBlurrer) -> None:
    rgb = faceless()
    out, faces = blurrer.blur(rgb)
    assert faces == 0 and out is rgb and blurrer.boxes(rgb) == []


def test_small_frames_still_have_their_faces_found(blurrer: FaceBlurrer) -> None:
    """The sizes the convert and capture tests store (160×120, 64×48)."""
    for width, height in ((160, 120), (64, 48)):
        assert blurrer.blur(small(photo(1), width, height))[1] == 1
        assert blurrer.blur(small(photo(3), width, height))[1] == 1
        assert blurrer.blur(small(faceless(), width, height))[1] == 0


W, H = 160, 120


def photo_frames() -> list[NDArray[np.uint8]]:
    """Face, face, no face; twice."""
    return [small(photo(1), W, H), small(photo(3), W, H), small(faceless(), W, H)] * 2


BAG_CAMERA = CameraModel.from_fxfycxcy(150.0, 150.0, 80.0, 60.0, width=W, height=H)


def bag_of_photos(path: Path) -> WrittenBag:
    return write_image_bag(path, photo_frames(), compressed_format="jpeg", camera_info=BAG_CAMERA)


def stored_chunk(dataset: Path, row: int) -> bytes:
    return (dataset / "data" / "camera0_rgb" / f"{row}.0.0.0").read_bytes()


def test_convert_blurs_faces_and_copies_the_other_frames_byte_for_byte(
    tmp_path: Path, blurrer: FaceBlurrer, capsys: pytest.CaptureFixture
) -> None:
    bag = bag_of_photos(tmp_path / "bag")
    assert bag.payloads is not None
    out = tmp_path / "blurred.zarr"
    assert main(["convert", str(bag.path), "-o", str(out), "-q", "--blur-faces"]) == 0
    assert "blurred 4 face(s) in 4 frame(s)" in capsys.readouterr().out
    for row, payload in enumerate(bag.payloads):
        stored = stored_chunk(out, row)
        if row % 3 == 2:
            assert stored == payload  # no face: the source JPEG, not re-encoded
            continue
        assert stored != payload
        source = np.asarray(imagecodecs.jpeg8_decode(payload), dtype=np.int16)
        kept = np.asarray(imagecodecs.jpeg8_decode(stored), dtype=np.int16)
        (box,) = blurrer.boxes(source.astype(np.uint8))
        diff = np.abs(kept - source).max(axis=2)
        face = np.zeros(diff.shape, dtype=bool)
        face[box.y0 : box.y1, box.x0 : box.x1] = True
        assert diff[face].mean() > 5 * diff[~face].mean()  # outside: re-encoding noise only
    record = DatasetReader(out).episode_attrs(0)
    assert record["privacy"] == {
        "blur_faces": True,
        "frames_with_faces": 4,
        "faces_blurred": 4,
        "detector": DETECTOR,
        "min_confidence": 0.5,
    }
    assert (record["passthrough_frames"], record["reencoded_frames"]) == (2, 4)

    plain = tmp_path / "plain.zarr"
    assert main(["convert", str(bag.path), "-o", str(plain), "-q"]) == 0
    assert "blurred" not in capsys.readouterr().out
    assert all(stored_chunk(plain, row) == payload for row, payload in enumerate(bag.payloads))
    assert "privacy" not in DatasetReader(plain).episode_attrs(0)


@pytest.fixture
def mediapipe_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test double: an environment without mediapipe (`import mediapipe` raises ImportError)."""
    monkeypatch.setitem(sys.modules, "mediapipe", None)


def test_without_mediapipe_blur_faces_is_one_line_and_writes_nothing(
    tmp_path: Path, mediapipe_missing: None, capsys: pytest.CaptureFixture
) -> None:
    bag = write_image_bag(
        tmp_path / "bag", [small(faceless(), W, H)], compressed_format="jpeg", camera_info=BAG_CAMERA
    )
    out = tmp_path / "out.zarr"
    assert main(["convert", str(bag.path), "-o", str(out), "-q", "--blur-faces"]) == 2
    assert capsys.readouterr().err == f"vidihand convert: error: {MISSING}\n"
    assert not out.exists()
    with pytest.raises(InputError, match="baseline"):
        Recorder(tmp_path / "capture.zarr", blur_faces=True)
    assert not (tmp_path / "capture.zarr").exists()


def jpeg(i: int, rgb: NDArray[np.uint8]) -> Frame:
    data = bytes(imagecodecs.jpeg8_encode(rgb, level=90))
    height, width = rgb.shape[:2]
    return Frame(T0 + i * STEP, "cam", "jpeg", width, height, data=data, index=i)


def test_the_capture_recorder_blurs_per_episode_and_counts_in_each_record(tmp_path: Path) -> None:
    faces, none = small(photo(1), 64, 48), small(faceless(), 64, 48)
    rec = Recorder(tmp_path / "ds.zarr", blur_faces=True)
    try:
        rec.start("first")
        frames = [jpeg(0, faces), jpeg(1, none), jpeg(2, none)]
        for frame in frames:
            assert rec.add_frame(frame, expect_poses=False)
        rec.stop(True)
        rec.start("discarded")  # its counts must not reach the next record
        rec.add_frame(jpeg(3, faces), expect_poses=False)
        rec.discard()
        rec.start("second")
        for i in range(4, 6):
            rec.add_frame(jpeg(i, none), expect_poses=False)
        rec.stop(True)
    finally:
        rec.close()
    reader = DatasetReader(tmp_path / "ds.zarr")
    first, second = reader.episode_attrs(0)["privacy"], reader.episode_attrs(1)["privacy"]
    assert (first["frames_with_faces"], first["faces_blurred"], first["detector"]) == (1, 1, DETECTOR)
    assert (second["frames_with_faces"], second["faces_blurred"]) == (0, 0)
    dataset = tmp_path / "ds.zarr"
    assert stored_chunk(dataset, 0) != frames[0].data
    assert [stored_chunk(dataset, r) for r in (1, 2)] == [frames[1].data, frames[2].data]


def test_the_capture_node_blurs_faces_when_its_parameter_says_so(tmp_path: Path) -> None:
    """The real node under rclpy: `blur_faces:=true` reaches the stored frames and the record."""
    node_tests = pytest.importorskip("tests.test_capture_node")
    from sensor_msgs.msg import CompressedImage

    from tests.capture_rig import to_time
    from tests.rosnode import RosGraph

    graph = RosGraph()
    try:
        node, rig = node_tests.start_capture(graph, tmp_path, blur_faces=True)
        assert node.recorder is not None and node.recorder.blur_faces
        assert rig.start("faces").accepted
        sent = []
        for i, rgb in enumerate([small(photo(3), 64, 48), small(faceless(), 64, 48)]):
            data = bytes(imagecodecs.jpeg8_encode(rgb, level=90))
            msg = CompressedImage(format="jpeg", data=data)
            msg.header.stamp = to_time(node_tests.T0 + i * node_tests.FRAME_NS)
            msg.header.frame_id = "head_camera"
            rig.image_pub.publish(msg)
            sent.append(data)
            time.sleep(0.01)
        node_tests.rows_written(node, 2)  # estimates back: nothing in flight at shutdown
        assert rig.stop(True).num_frames == 2
    finally:
        graph.shutdown()
    dataset = tmp_path / "demos.zarr"
    privacy = DatasetReader(dataset).episode_attrs(0)["privacy"]
    assert (privacy["frames_with_faces"], privacy["faces_blurred"]) == (1, 1)
    assert stored_chunk(dataset, 0) != sent[0] and stored_chunk(dataset, 1) == sent[1]
