"""VideoFrameSource on real mp4/mkv files written with PyAV, and open_source's dispatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.bagfactory import hand_photos, synthetic_frames, write_image_bag, write_video
from vidihand_ros.errors import InputError
from vidihand_ros.sources import BagFrameSource, FrameSource, VideoFrameSource, open_source
from vidihand_ros.types import CameraModel

av = pytest.importorskip("av")

W, H = 64, 48
CAM = CameraModel.from_fxfycxcy(50.0, 50.0, 32.0, 24.0, W, H)


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return hand_photos(W, H) + list(synthetic_frames(5, W, H))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_frames_stamps_and_pixels(tmp_path: Path, suffix: str, clip) -> None:
    path = write_video(tmp_path / f"clip{suffix}", clip)
    source = open_source(path, camera=CAM)
    assert isinstance(source, VideoFrameSource) and isinstance(source, FrameSource)
    frames = list(source)
    assert len(frames) == len(clip)
    # stamps are the pts: exact in mp4's 1/15360 s time base, whole milliseconds in mkv's 1/1000 s
    expected = np.array([i * 1e9 / 30 for i in range(len(clip))])
    assert np.abs(np.array([f.stamp_ns for f in frames]) - expected).max() <= 500_000
    assert frames[3].stamp_ns == 100_000_000
    for i, (frame, rgb) in enumerate(zip(frames, clip, strict=True)):
        assert frame.encoding == "rgb8" and frame.pixels is not None
        assert frame.pixels.shape == (H, W, 3) and frame.pixels.dtype == np.uint8
        assert frame.camera is CAM and frame.frame_id == "camera" and frame.index == i
        assert np.abs(frame.rgb().astype(int) - rgb).mean() < 8
    assert source.source_description["kind"] == "video"
    again = next(iter(source))  # iterating again starts over
    assert again.stamp_ns == 0 and again.index == 0


def test_video_frame_id_and_start(tmp_path: Path, clip) -> None:
    path = write_video(tmp_path / "clip.mp4", clip[:3], fps=10)
    source = VideoFrameSource(path, camera=CAM, frame_id="head", start_ns=5_000_000_000)
    assert [f.stamp_ns for f in source] == [5_000_000_000, 5_100_000_000, 5_200_000_000]
    assert next(iter(source)).frame_id == "head"
    assert source.message_count == 3


def test_video_needs_intrinsics(tmp_path: Path, clip) -> None:
    path = write_video(tmp_path / "clip.mp4", clip[:2])
    with pytest.raises(InputError, match="--intrinsics") as err:
        open_source(path)
    assert str(path) in str(err.value)


def test_bag_options_on_a_video(tmp_path: Path, clip) -> None:
    path = write_video(tmp_path / "clip.mp4", clip[:2])
    with pytest.raises(InputError, match="--topic"):
        open_source(path, camera=CAM, topic="/cam/image_raw")


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_broken_video_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        list(open_source(path, camera=CAM))
    assert str(path) in str(err.value)


def test_truncated_video(tmp_path: Path, clip) -> None:
    path = write_video(tmp_path / "clip.mkv", clip)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # A cut-off mkv is still playable up to the cut (as players treat it): fewer frames, no crash,
    # each one whole and in order.
    frames = list(open_source(path, camera=CAM))
    assert 0 < len(frames) < len(clip)
    assert all(f.rgb().shape == (H, W, 3) for f in frames)
    assert [f.stamp_ns for f in frames] == sorted(f.stamp_ns for f in frames)


def test_open_source_dispatch(tmp_path: Path, clip) -> None:
    bag = write_image_bag(tmp_path / "bag", clip[:2], kind="mcap", compressed_format="jpeg")
    source = open_source(bag.path, camera=CAM)
    assert isinstance(source, BagFrameSource) and isinstance(source, FrameSource)
    for name in ("x.txt", "x.png", "x.bagx"):
        (tmp_path / name).write_bytes(b"123")
        with pytest.raises(InputError, match="not a recording"):
            open_source(tmp_path / name)
