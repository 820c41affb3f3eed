"""Nothing corrupt enters a dataset from a damaged bag, and the damage is one line of error.

- JPEGs that would not decode are skipped and counted (or fail under --strict), checked where the
  frame is read (`imaging.check_image`, whole marker structure) and trusted by the dataset only
  as that evidence (`CheckedImage`).
- mcap chunk CRCs (set by the ROS 2 mcap plugin; rosbags verifies them): a mismatch stops the
  conversion, naming the file and the chunk's byte offset and time range.
- A truncated sqlite3 bag, damaged zstd/lz4/bz2 chunks: one-line InputErrors while iterating,
  never a traceback.
"""

from __future__ import annotations

import struct
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from tests.bagfactory import (
    BAG_KINDS,
    hand_photos,
    mcap_chunks,
    mcap_file,
    set_mcap_chunk_crcs,
    write_image_bag,
)
from vidihand_ros.cli import main
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.errors import InputError
from vidihand_ros.imaging import CheckedImage
from vidihand_ros.sources import BagFrameSource
from vidihand_ros.types import CameraModel

W, H = 640, 480
CAM = CameraModel.from_fxfycxcy(500.0, 500.0, 320.0, 240.0, W, H)


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    return [bytes(imagecodecs.jpeg8_encode(p, level=90)) for p in hand_photos(W, H)]


def _convert(bag: Path, out: Path, *options: str) -> int:
    return main(["convert", str(bag), "-o", str(out), "-q", *options])


def _one_error_line(capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("vidihand convert: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def _garbled(jpeg: bytes, size: int = 2048, seed: int = 0) -> bytes:
    """The JPEG with `size` random bytes over its middle: SOI, frame header and EOI intact."""
    data = bytearray(jpeg)
    middle = len(data) // 2
    data[middle : middle + size] = np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()
    return bytes(data)


# --------------------------------------------------------------------------------------------
# JPEG pass-through


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_a_jpeg_with_garbage_inside_is_skipped_and_never_stored(
    tmp_path: Path, kind: str, jpegs: list[bytes], capsys
) -> None:
    """The field report: 2 KB of flipped bytes mid-JPEG converted with exit 0 (and --strict), and
    a stored frame then failed in `jpeg8_decode` ("Unsupported marker")."""
    payloads = [jpegs[0], _garbled(jpegs[1]), jpegs[2]]
    with pytest.raises(imagecodecs.Jpeg8Error):
        imagecodecs.jpeg8_decode(payloads[1])
    bag = write_image_bag(tmp_path / "bag", payloads, kind=kind, compressed_format="jpeg", camera_info=CAM)
    out = tmp_path / "out.zarr"
    assert _convert(bag.path, out) == 0
    assert "2 JPEG frames copied unchanged, 1 corrupt frames skipped" in capsys.readouterr().out
    images = zc.open_group(out, "r")["data"]["camera0_rgb"]
    assert images.shape == (2, H, W, 3)
    for row, payload in enumerate([payloads[0], payloads[2]]):
        np.testing.assert_array_equal(images[row], imagecodecs.jpeg8_decode(payload))  # every chunk decodes

    assert _convert(bag.path, tmp_path / "strict.zarr", "--strict") == 2
    _one_error_line(
        capsys, str(bag.path), "topic /camera/image_raw", "message 1", "field 'data'", "corrupt JPEG"
    )


def test_the_source_hands_out_the_checked_bytes(tmp_path: Path, jpegs: list[bytes]) -> None:
    """Frames carry a CheckedImage, so the dataset does not check the same bytes again."""
    bag = write_image_bag(tmp_path / "bag", jpegs, kind="mcap", compressed_format="jpeg", camera_info=CAM)
    frames = list(BagFrameSource(bag.path))
    assert all(isinstance(f.data, CheckedImage) and f.data.info.width == W for f in frames)
    assert [f.data for f in frames] == jpegs


def test_the_dataset_checks_bytes_that_come_without_evidence(tmp_path: Path, jpegs: list[bytes]) -> None:
    """Frames built elsewhere (plain bytes) are checked where the dataset decides to copy them."""
    from vidihand_ros.dataset.images import ImageStore
    from vidihand_ros.types import Frame

    root = zc.open_group(tmp_path / "d.zarr", "a")
    store = ImageStore(zc.require_group(root, "data"), None, resize=False, jpeg_quality=90, reencode=False)
    good = Frame(0, "c", "jpeg", W, H, data=jpegs[0])
    assert store.store(0, good, 0)[0] is True
    bad = Frame(1, "c", "jpeg", W, H, data=_garbled(jpegs[1]), index=7)
    with pytest.raises(InputError) as err:
        store.store(1, bad, 1)
    assert err.value.index == 7 and err.value.field == "data" and "corrupt JPEG" in str(err.value)


# --------------------------------------------------------------------------------------------
# mcap chunk CRCs


def _flip_inside_a_jpeg(bag: Path, chunk_index: int) -> None:
    """Flip one bit of Huffman-coded data of a JPEG inside the chunk: no marker appears, so only
    the chunk's CRC can tell."""
    file = mcap_file(bag)
    data = bytearray(file.read_bytes())
    chunk = mcap_chunks(bag)[chunk_index]
    sos = data.index(b"\xff\xda", chunk.records_offset)  # the first JPEG's scan in this chunk
    pos = sos + 2000
    while data[pos] in (0xFE, 0xFF) or data[pos - 1] == 0xFF:
        pos += 1
    data[pos] ^= 0x01
    file.write_bytes(bytes(data))


def test_an_mcap_chunk_crc_mismatch_names_the_chunk(tmp_path: Path, jpegs: list[bytes], capsys) -> None:
    bag = write_image_bag(
        tmp_path / "bag", jpegs * 20, kind="mcap", compressed_format="jpeg", camera_info=CAM
    )
    chunks = set_mcap_chunk_crcs(bag.path)  # as the ROS 2 mcap plugin writes them
    assert len(chunks) >= 3
    assert _convert(bag.path, tmp_path / "good.zarr") == 0  # CRCs that match are no obstacle
    capsys.readouterr()

    _flip_inside_a_jpeg(bag.path, 1)
    with open(mcap_file(bag.path), "rb") as f:  # the damaged JPEG itself still looks whole
        f.seek(chunks[1].offset + 9)
        start_ns, end_ns = struct.unpack("<QQ", f.read(16))
    assert _convert(bag.path, tmp_path / "bad.zarr") == 2
    _one_error_line(
        capsys,
        str(bag.path),
        f"{mcap_file(bag.path).name}: chunk at byte {chunks[1].offset}",
        f"log times {start_ns / 1e9:.3f}–{end_ns / 1e9:.3f} s",
        "Chunk checksum mismatch",
    )
    assert not (tmp_path / "bad.zarr").exists()


def test_without_crcs_the_same_flip_is_invisible(tmp_path: Path, jpegs: list[bytes]) -> None:
    """rosbags' own writer leaves the CRCs unset (0): the flipped Huffman bit then decodes to
    wrong pixels, which no structure check can see (what `imaging._check_jpeg` documents)."""
    bag = write_image_bag(
        tmp_path / "bag", jpegs * 20, kind="mcap", compressed_format="jpeg", camera_info=CAM
    )
    _flip_inside_a_jpeg(bag.path, 1)
    assert len(list(BagFrameSource(bag.path))) == 60


def test_damaged_zstd_chunks(tmp_path: Path, jpegs: list[bytes], capsys) -> None:
    """A zstd frame header that does not parse (ZstdError), and zstd data that decompresses to
    the wrong bytes (caught by the CRC): both name the chunk."""
    for case in ("header", "data"):
        bag = write_image_bag(
            tmp_path / case,
            jpegs * 20,
            kind="mcap",
            compressed_format="jpeg",
            camera_info=CAM,
            compression="zstd",
        )
        chunks = set_mcap_chunk_crcs(bag.path)
        chunk = chunks[1]
        assert chunk.compression == "zstd"
        file = mcap_file(bag.path)
        data = bytearray(file.read_bytes())
        if case == "header":
            data[chunk.records_offset : chunk.records_offset + 8] = b"\x28\xb5\x2f\xfd\xff\xff\xff\xff"
        else:
            middle = chunk.records_offset + chunk.records_length // 2
            data[middle] ^= 0x01
        file.write_bytes(bytes(data))
        assert _convert(bag.path, tmp_path / f"{case}.zarr") == 2
        _one_error_line(capsys, str(bag.path), f"chunk at byte {chunk.offset}", "is damaged")


# --------------------------------------------------------------------------------------------
# Errors while iterating: sqlite3 (apsw), ROS 1 chunk decompression


def test_a_truncated_sqlite3_bag_is_one_line(tmp_path: Path, jpegs: list[bytes], capsys) -> None:
    """Cut 50 bytes before its end: apsw raises CorruptError while rows are read (a traceback
    before), not when the bag is opened."""
    bag = write_image_bag(
        tmp_path / "bag", jpegs * 5, kind="sqlite3", compressed_format="jpeg", camera_info=CAM
    )
    (db,) = bag.path.glob("*.db3")
    db.write_bytes(db.read_bytes()[:-50])
    assert _convert(bag.path, tmp_path / "out.zarr") == 2
    _one_error_line(capsys, str(bag.path), "bag is damaged", "malformed")


@pytest.mark.parametrize(("compression", "magic"), [("lz4", b"\x04\x22\x4d\x18"), ("bz2", b"BZh")])
def test_damaged_ros1_chunks_are_one_line(
    tmp_path: Path, jpegs, compression: str, magic: bytes, capsys
) -> None:
    """lz4 raises a plain RuntimeError, bz2 an OSError: both are the bag's damage, not a bug."""
    bag = write_image_bag(
        tmp_path / "bag",
        jpegs * 20,
        kind="rosbag1",
        compressed_format="jpeg",
        camera_info=CAM,
        compression=compression,
    )
    data = bytearray(bag.path.read_bytes())
    second = data.index(magic, data.index(magic) + 1)  # the second chunk's compressed data
    data[second + len(magic) : second + len(magic) + 8] = b"\xff" * 8
    bag.path.write_bytes(bytes(data))
    assert _convert(bag.path, tmp_path / "out.zarr") == 2
    _one_error_line(capsys, str(bag.path), "damaged")
