"""Decompression bombs and forged sizes, in real bags: every declared size is checked before
anything is decoded or allocated for it (`imaging.check_declared_size`), for JPEG (SOF), PNG
(IHDR) and raw `sensor_msgs/Image` (width × height) alike, against `--max-pixels` and against the
size the stream already has."""

from __future__ import annotations

import struct
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from tests.bagfactory import (
    IMAGE,
    START_NS,
    BagWriter,
    hand_photos,
    make_image,
    typestore_for,
    write_image_bag,
    write_video,
)
from tests.test_imaging import _png_bomb
from tests.test_sources_errors import CAM, TOPIC, H, W
from vidihand_ros.cli import main
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.errors import InputError
from vidihand_ros.sources import BagFrameSource, open_source


def _declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header is rewritten to declare width × height."""
    sof = jpeg.find(b"\xff\xc0")
    data = bytearray(jpeg)
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _convert(bag: Path, out: Path, *options: str) -> int:
    return main(["convert", str(bag), "-o", str(out), "-q", *options])


def _one_error_line(capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("side", [20000, 65500])
def test_a_forged_jpeg_size_in_a_new_dataset_is_skipped_not_declared(
    tmp_path: Path, jpegs: list[bytes], side: int, capsys: pytest.CaptureFixture
) -> None:
    """The forged frame comes first, so nothing else would fix the dataset's size before it."""
    frames = [_declaring(jpegs[0], side, side), jpegs[1], jpegs[2]]
    bag = write_image_bag(tmp_path / "bag", frames, kind="mcap", compressed_format="jpeg", camera_info=CAM)
    out = tmp_path / "out.zarr"
    assert _convert(bag.path, out) == 0
    assert "1 corrupt frames skipped" in capsys.readouterr().out
    images = zc.open_group(out, "r")["data"]["camera0_rgb"]
    assert images.shape == (2, H, W, 3)  # not (N, side, side, 3)
    np.testing.assert_array_equal(images[0], imagecodecs.jpeg8_decode(jpegs[1]))

    assert _convert(bag.path, tmp_path / "strict.zarr", "--strict") == 2
    _one_error_line(capsys, str(bag.path), "message 0", "field 'data'", f"{side}x{side}", "--max-pixels")


def test_max_pixels_option_sets_the_limit(tmp_path: Path, jpegs: list[bytes], capsys) -> None:
    bag = write_image_bag(tmp_path / "bag", jpegs, kind="sqlite3", compressed_format="jpeg", camera_info=CAM)
    assert _convert(bag.path, tmp_path / "a.zarr", "--max-pixels", str(W * H)) == 0
    assert _convert(bag.path, tmp_path / "b.zarr", "--max-pixels", str(W * H - 1)) == 2
    _one_error_line(capsys, "none of the 3 image messages could be read", "over the limit of 3071")
    assert _convert(bag.path, tmp_path / "c.zarr", "--max-pixels", "0") == 2
    assert "--max-pixels" in capsys.readouterr().err


def test_a_png_bomb_is_refused_without_decoding(tmp_path: Path, jpegs, monkeypatch, capsys) -> None:
    """A real 20000×20000 PNG (about 1 MB; 1.2 GB decoded) between good PNG frames."""
    good = bytes(imagecodecs.png_encode(hand_photos(W, H)[0]))
    bag = write_image_bag(
        tmp_path / "bag",
        [good, _png_bomb(20000, 20000), good],
        kind="mcap",
        compressed_format="png",
        camera_info=CAM,
    )
    decoded: list[tuple[int, ...]] = []
    real_decode = imagecodecs.png_decode

    def recording_decode(data: bytes) -> np.ndarray:
        image = np.asarray(real_decode(data))
        decoded.append(image.shape)
        return image

    monkeypatch.setattr(imagecodecs, "png_decode", recording_decode)
    out = tmp_path / "out.zarr"
    assert _convert(bag.path, out) == 0
    assert "1 corrupt frames skipped" in capsys.readouterr().out
    assert decoded and all(shape[:2] == (H, W) for shape in decoded)  # the bomb was never decoded
    assert zc.open_group(out, "r")["data"]["camera0_rgb"].shape == (2, H, W, 3)


def test_a_raw_image_declaring_a_huge_size_is_refused_before_its_data_is_read(tmp_path: Path) -> None:
    ts = typestore_for("rosbag1")
    pixels = hand_photos(W, H)[0]
    good = make_image(ts, pixels, "rgb8", stamp_ns=START_NS, frame_id="c")
    huge = make_image(ts, pixels, "rgb8", stamp_ns=START_NS + 1, frame_id="c")
    huge.width, huge.height = 20000, 20000  # the data is still 64×48
    with BagWriter(tmp_path / "bag", "rosbag1") as bag:
        for i, msg in enumerate([good, huge, good]):
            bag.write(TOPIC, IMAGE, START_NS + i * 33_000_000, msg)
    source = BagFrameSource(bag.path, camera=CAM)
    assert [f.index for f in source] == [0, 2]
    assert source.skipped[0]["index"] == 1 and "400000000 pixels" in str(source.skipped[0]["reason"])
    with pytest.raises(InputError) as err:
        list(BagFrameSource(bag.path, camera=CAM, strict=True))
    assert err.value.index == 1 and err.value.field == "width"


def test_a_frame_of_another_size_is_an_error_naming_the_camera_info(
    tmp_path: Path, jpegs: list[bytes], capsys
) -> None:
    """Within the pixel limit, a frame declaring another size than the stream (confirmed by its
    CameraInfo) is an error before it is decoded, whatever its encoding."""
    forged = _declaring(jpegs[1], 640, 480)
    bag = write_image_bag(
        tmp_path / "bag",
        [jpegs[0], forged, jpegs[2]],
        kind="rosbag1",
        compressed_format="jpeg",
        camera_info=CAM,
    )
    assert _convert(bag.path, tmp_path / "out.zarr") == 2
    _one_error_line(
        capsys, str(bag.path), "message 1", "image is 640x480, not 64x48", "message 0) and its CameraInfo"
    )

    ts = typestore_for("mcap")
    pixels = hand_photos(W, H)[0]
    msgs = [
        make_image(ts, pixels, "rgb8", stamp_ns=START_NS, frame_id="c"),
        make_image(ts, np.ascontiguousarray(pixels[:24, :32]), "rgb8", stamp_ns=START_NS + 1, frame_id="c"),
    ]
    with BagWriter(tmp_path / "raw", "mcap") as raw:
        for i, msg in enumerate(msgs):
            raw.write(TOPIC, IMAGE, START_NS + i * 33_000_000, msg)
    with pytest.raises(InputError) as err:
        list(BagFrameSource(raw.path, camera=CAM))
    assert err.value.index == 1 and err.value.field == "width"
    assert "image is 32x24, not 64x48 as the stream's first frame (message 0)" in str(err.value)


def test_a_video_declaring_too_many_pixels_is_refused_when_opened(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", list(hand_photos(W, H))[:3])
    assert len(list(open_source(video, camera=CAM))) == 3
    with pytest.raises(InputError, match="over the limit of 100") as err:
        open_source(video, camera=CAM, max_pixels=100)
    assert str(video) in str(err.value)


def test_the_help_states_the_default_limit(capsys: pytest.CaptureFixture) -> None:
    """`--help` does not import imaging (numpy); the default it names must be the real one."""
    from vidihand_ros.imaging import MAX_PIXELS

    assert main(["convert", "--help"]) == 0
    assert f"default: {MAX_PIXELS} = 8192x8192" in " ".join(capsys.readouterr().out.split())
