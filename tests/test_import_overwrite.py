"""`vidihand import --overwrite` replaces a dataset only once the whole import succeeded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.errors import InputError
from vidihand_ros.training_data.base import Sequence
from vidihand_ros.training_data.to_dataset import write_sequences
from vidihand_ros.types import CameraModel, Frame, FramePoses

CAMERA = CameraModel.from_fxfycxcy(40.0, 40.0, 15.5, 11.5, 32, 24)
T0 = 1_700_000_000 * 1_000_000_000
STEP = 33_000_000


def sequence(name: str, n: int = 3, *, fail_at: int | None = None) -> Sequence:
    """A ground-truth sequence of `n` real JPEG frames; `fail_at` makes its reader fail there."""
    stamps = [T0 + i * STEP for i in range(n)]

    def read_frames() -> Iterator[Frame]:
        for i, stamp in enumerate(stamps):
            if i == fail_at:
                raise InputError("truncated image", source=name, index=i)
            pixels = np.full((24, 32, 3), 40 * i, dtype=np.uint8)
            data = bytes(imagecodecs.jpeg8_encode(pixels))
            yield Frame(stamp, "cam", "jpeg", 32, 24, data=data, camera=CAMERA, index=i)

    poses = [FramePoses(s, "cam") for s in stamps]
    return Sequence(name, "test", 30.0, poses, [CAMERA] * n, read_frames)


def test_a_failing_import_with_overwrite_keeps_the_old_dataset(tmp_path: Path) -> None:
    path = tmp_path / "gt.zarr"
    assert write_sequences([sequence("a"), sequence("b")], path) == [0, 1]
    with pytest.raises(InputError, match="truncated image"):
        write_sequences([sequence("c"), sequence("d", fail_at=1)], path, overwrite=True)
    reader = DatasetReader(path)
    assert [reader.episode_attrs(i)["task"] for i in range(reader.num_episodes)] == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.zarr"]

    assert write_sequences([sequence("e")], path, overwrite=True) == [0]  # a good one replaces it
    assert DatasetReader(path).num_episodes == 1


def test_non_finite_attributes_are_stored_as_null_by_every_writer(tmp_path: Path) -> None:
    seq = sequence("a")
    seq.attrs["note"] = {"offset": float("nan")}
    write_sequences([seq], tmp_path / "gt.zarr", attrs={"scale": float("inf")})
    reader = DatasetReader(tmp_path / "gt.zarr")
    assert reader.attrs["provenance"]["scale"] is None
    assert reader.episode_attrs(0)["ground_truth"]["note"] == {"offset": None}
