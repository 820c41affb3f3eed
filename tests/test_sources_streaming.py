"""Bag sources stream: memory stays at a few frames whatever the bag's length."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tests.bagfactory import BAG_KINDS, synthetic_frames, write_image_bag
from vidihand_ros.sources import BagFrameSource
from vidihand_ros.types import CameraModel

W, H = 320, 240
CAM = CameraModel.from_fxfycxcy(300.0, 300.0, 160.0, 120.0, W, H)


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.iterdir())


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_reading_a_bag_holds_a_few_frames_not_the_bag(tmp_path: Path, kind: str) -> None:
    # 100 raw 320×240 frames (~23 MB), written from a generator, one CameraInfo per frame.
    bag = write_image_bag(tmp_path / "bag", synthetic_frames(100, W, H), kind=kind, camera_info=CAM)
    assert _size(bag.path) > 20_000_000
    tracemalloc.start()
    try:
        source = BagFrameSource(bag.path)
        count = 0
        for frame in source:
            count += 1
            del frame
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 100
    assert source.calibrations == 1  # 100 identical CameraInfo messages, one segment
    assert peak < 10_000_000, f"peak {peak / 1e6:.1f} MB while reading a {_size(bag.path) / 1e6:.0f} MB bag"


def test_stopping_early_closes_the_reader_and_iteration_restarts(tmp_path: Path) -> None:
    bag = write_image_bag(
        tmp_path / "bag", synthetic_frames(10, 64, 48), kind="mcap", compressed_format="jpeg"
    )
    source = BagFrameSource(bag.path, camera=CAM)
    for frame in source:
        if frame.index == 3:
            break
    assert [f.index for f in source] == list(range(10))
