"""A dataset made the way users make one: rosbags written by `rosbags`, then `vidihand convert`.

Shared by the tests of the tools that read a dataset (render, plot, inspect, label, export). The
frames are the real hand photos (resized) in a JPEG CompressedImage topic with CameraInfo; the
poses come from `tests.estimators:stamp_estimator`, so every stored value is known
(`tests.estimators.expected_pose(stamp_ns, side)`; the right hand is absent on every third frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.bagfactory import hand_photos, write_image_bag
from vidihand_ros.cli import main
from vidihand_ros.types import CameraModel

__all__ = ["CAMERA", "STAMP_ESTIMATOR", "convert_bags"]

CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
STAMP_ESTIMATOR = "tests.estimators:stamp_estimator"


def convert_bags(
    root: Path,
    lengths: Sequence[int] = (12, 9),
    *,
    estimator: str = STAMP_ESTIMATOR,
    extra_args: Sequence[str] = (),
) -> Path:
    """Write one MCAP bag per entry of `lengths` under `root` and convert them into
    `root/demos.zarr` (one episode per bag, in order). Returns the dataset's path."""
    photos = hand_photos(CAMERA.width, CAMERA.height)
    bags = []
    for i, n in enumerate(lengths):
        folder = root / f"bag{i}"
        folder.mkdir(parents=True, exist_ok=True)
        frames = [photos[(i + k) % len(photos)] for k in range(n)]
        start_ns = 1_700_000_000_000_000_000 + i * 60_000_000_000
        bag = write_image_bag(
            folder / "take.mcap",
            frames,
            compressed_format="jpeg",
            camera_info=CAMERA,
            start_ns=start_ns,
        )
        bags.append(str(bag.path))
    out = root / "demos.zarr"
    args = ["convert", *bags, "-o", str(out), "-q", "--estimator", estimator, *extra_args]
    assert main(args) == 0
    return out
