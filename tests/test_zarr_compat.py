"""zarr_compat: the same calls and the same on-disk format 2 under zarr-python 3 and 2.18."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import imagecodecs
import numcodecs
import numpy as np
import pytest
import zarr
from numpy.testing import assert_array_equal

from vidihand_ros.dataset import zarr_compat as zc

#: Keywords accepted by the Jpeg codec vendored in diffusion_policy/UMI (plus the codec id).
DIFFUSION_POLICY_JPEG_KEYS = {
    "id",
    "bitspersample",
    "tables",
    "header",
    "colorspace_data",
    "colorspace_jpeg",
    "level",
    "subsampling",
    "optimize",
    "smoothing",
}


def zarray(path: Path) -> dict:
    return json.loads((path / ".zarray").read_text())


def test_version_detected() -> None:
    assert int(zarr.__version__.split(".")[0]) == zc.ZARR_MAJOR
    assert (3 if zarr.__version__ >= "3" else 2) == zc.ZARR_MAJOR


def test_create_resize_write_attrs_roundtrip(tmp_path: Path) -> None:
    root = zc.open_group(tmp_path / "g.zarr", "a")
    assert zc.zarr_format(root) == 2
    data = zc.require_group(root, "data")
    array = zc.create_array(
        data,
        "x",
        shape=(0, 3),
        chunks=(4, 3),
        dtype=np.float32,
        compressor=numcodecs.Blosc(cname="zstd", clevel=3),
        fill_value=np.nan,
        attrs={"description": "test"},
    )
    zc.resize(array, (6, 3))
    zc.write_rows(array, 0, np.arange(18, dtype=np.float32).reshape(6, 3))
    zc.update_attrs(root, {"a": 1})
    zc.update_attrs(root, {"b": [1, 2]})

    meta = zarray(tmp_path / "g.zarr" / "data" / "x")
    assert meta["zarr_format"] == 2 and meta["shape"] == [6, 3] and meta["chunks"] == [4, 3]
    assert meta["fill_value"] == "NaN" and meta["compressor"]["id"] == "blosc"
    assert meta.get("dimension_separator", ".") == "."
    assert sorted(
        p.name for p in (tmp_path / "g.zarr" / "data" / "x").iterdir() if not p.name.startswith(".")
    ) == [
        "0.0",
        "1.0",
    ]

    again = zc.open_group(tmp_path / "g.zarr", "r")
    assert zc.get_attrs(again) == {"a": 1, "b": [1, 2]}
    assert zc.get_attrs(again["data"]["x"]) == {"description": "test"}
    assert_array_equal(again["data"]["x"][:], np.arange(18).reshape(6, 3))

    zc.resize(array, (2, 3))  # shrinking drops chunk 1.0 entirely
    assert not (tmp_path / "g.zarr" / "data" / "x" / "1.0").exists()
    zc.resize(array, (5, 3))
    assert np.isnan(zc.open_group(tmp_path / "g.zarr", "r")["data"]["x"][4]).all()


def test_write_chunk_bytes_beyond_shape_then_resize(tmp_path: Path) -> None:
    root = zc.open_group(tmp_path / "g.zarr", "a")
    array = zc.create_array(
        root, "img", shape=(0, 2, 2, 3), chunks=(1, 2, 2, 3), dtype=np.uint8, compressor=None, fill_value=0
    )
    raw = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    zc.write_chunk_bytes(array, (0, 0, 0, 0), raw.tobytes())
    assert zc.chunk_file(array, (0, 0, 0, 0)) == tmp_path / "g.zarr" / "img" / "0.0.0.0"
    assert zc.open_group(tmp_path / "g.zarr", "r")["img"].shape == (0, 2, 2, 3)  # invisible until resized
    zc.resize(array, (1, 2, 2, 3))
    assert_array_equal(zc.open_group(tmp_path / "g.zarr", "r")["img"][0], raw)

    zc.write_chunk_bytes(array, (0, 0, 0, 0), (raw + 1).tobytes(), atomic=True)
    assert_array_equal(zc.open_group(tmp_path / "g.zarr", "r")["img"][0], raw + 1)
    assert [p.name for p in (tmp_path / "g.zarr" / "img").iterdir() if "partial" in p.name] == []


def test_encode_chunk_matches_zarr(tmp_path: Path) -> None:
    root = zc.open_group(tmp_path / "g.zarr", "a")
    for name, compressor in (("raw", None), ("blosc", numcodecs.Blosc(cname="zstd", clevel=3))):
        array = zc.create_array(
            root, name, shape=(8,), chunks=(8,), dtype=np.int64, compressor=compressor, fill_value=0
        )
        values = np.arange(8, dtype=np.int64) * 7
        array[:] = values
        on_disk = zc.chunk_file(array, (0,)).read_bytes()
        assert zc.compressor_of(array) == compressor
        ours = zc.encode_chunk(array, values)
        assert (compressor.decode(ours) if compressor else ours) == (
            compressor.decode(on_disk) if compressor else on_disk
        )


def test_remove_chunks_from(tmp_path: Path) -> None:
    root = zc.open_group(tmp_path / "g.zarr", "a")
    array = zc.create_array(
        root, "a", shape=(3, 2), chunks=(1, 2), dtype=np.uint8, compressor=None, fill_value=0
    )
    array[:] = 1
    for i in (3, 4, 10):  # leftovers beyond the shape
        zc.write_chunk_bytes(array, (i, 0), b"\x02\x02")
    assert zc.remove_chunks_from(array, 2) == 4
    assert sorted(
        p.name for p in zc.chunk_file(array, (0, 0)).parent.iterdir() if not p.name.startswith(".")
    ) == [
        "0.0",
        "1.0",
    ]


def test_remove_chunks_from_removes_links_without_following_them(tmp_path: Path) -> None:
    root = zc.open_group(tmp_path / "g.zarr", "a")
    array = zc.create_array(root, "a", shape=(1,), chunks=(1,), dtype=np.uint8, compressor=None, fill_value=0)
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    directory = zc.chunk_file(array, (0,)).parent
    (directory / "3").symlink_to(outside)
    (directory / "4").symlink_to(tmp_path / "missing")  # dangling: a later write would create it
    assert zc.remove_chunks_from(array, 1) == 2
    assert not (directory / "3").is_symlink() and not (directory / "4").is_symlink()
    assert outside.read_bytes() == b"keep"


def test_portable_jpeg_config_and_roundtrip(tmp_path: Path) -> None:
    zc.register_codecs()
    zc.register_codecs()  # idempotent
    root = zc.open_group(tmp_path / "g.zarr", "a")
    array = zc.create_array(
        root,
        "rgb",
        shape=(0, 16, 24, 3),
        chunks=(1, 16, 24, 3),
        dtype=np.uint8,
        compressor=zc.jpeg_codec(95),
        fill_value=0,
    )
    image = np.zeros((16, 24, 3), np.uint8)
    image[:, :, 0] = np.arange(24) * 10
    source = bytes(imagecodecs.jpeg8_encode(image, level=95))
    zc.write_chunk_bytes(array, (0, 0, 0, 0), source)
    zc.resize(array, (1, 16, 24, 3))
    config = zarray(tmp_path / "g.zarr" / "rgb")["compressor"]
    assert config["id"] == "imagecodecs_jpeg" and config["level"] == 95
    assert set(config) <= DIFFUSION_POLICY_JPEG_KEYS

    reopened = zc.open_group(tmp_path / "g.zarr", "r+")["rgb"]
    zc.resize(reopened, (2, 16, 24, 3))  # metadata rewritten by a reopened array stays portable
    assert set(zarray(tmp_path / "g.zarr" / "rgb")["compressor"]) <= DIFFUSION_POLICY_JPEG_KEYS
    assert_array_equal(reopened[0], imagecodecs.jpeg8_decode(source))


def test_is_group_dir_and_zip(tmp_path: Path) -> None:
    assert not zc.is_group_dir(tmp_path)
    root = zc.open_group(tmp_path / "g.zarr", "a")
    array = zc.create_array(root, "a", shape=(2,), chunks=(2,), dtype=np.int64, compressor=None, fill_value=0)
    array[:] = [5, 6]
    assert zc.is_group_dir(tmp_path / "g.zarr")

    zip_path = tmp_path / "g.zarr.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted((tmp_path / "g.zarr").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(tmp_path / "g.zarr").as_posix())
    assert zc.is_zip_store(zip_path)
    assert_array_equal(zc.open_group(zip_path, "r")["a"][:], [5, 6])
    with pytest.raises(ValueError, match="read-only"):
        zc.open_group(zip_path, "r+")


@pytest.mark.parametrize("dtype, fill", [(np.float32, np.nan), (np.bool_, False), (np.int64, 0)])
def test_write_rows_direct_past_the_shape(tmp_path: Path, dtype: type, fill: object) -> None:
    root = zc.open_group(tmp_path / "g.zarr", "a")
    array = zc.create_array(
        root,
        "x",
        shape=(0, 2),
        chunks=(4, 2),
        dtype=dtype,
        compressor=numcodecs.Blosc(cname="zstd", clevel=3),
        fill_value=fill,
    )
    values: np.ndarray = (np.arange(24).reshape(12, 2) % 5).astype(dtype)
    zc.resize(array, (3, 2))
    zc.write_rows(array, 0, values[:3])  # three committed rows through zarr itself
    zc.write_rows_direct(array, 3, values[3:5], committed=3)  # shares chunk 0 with committed rows
    zc.write_rows_direct(array, 5, values[5:10], committed=3)  # spans chunks 1 and 2
    assert zc.open_group(tmp_path / "g.zarr", "r")["x"].shape == (3, 2)  # invisible so far
    assert_array_equal(zc.open_group(tmp_path / "g.zarr", "r")["x"][:], values[:3])
    assert not [p for p in zc.chunk_file(array, (0, 0)).parent.iterdir() if "partial" in p.name]

    zc.resize(array, (12, 2))
    stored = zc.open_group(tmp_path / "g.zarr", "r")["x"][:]
    assert_array_equal(stored[:10], values[:10])
    assert_array_equal(stored[10:], np.full((2, 2), fill, dtype=dtype))  # never written: fill value
