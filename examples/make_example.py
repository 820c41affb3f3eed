"""Regenerate the bundled example recording `examples/hands_demo/` (a ROS 2 mcap bag).

45 frames at 15 fps, 320×240 JPEG `sensor_msgs/CompressedImage` on /camera/image_raw/compressed
plus `sensor_msgs/CameraInfo` on /camera/camera_info: a slow pan over the real hand photographs in
tests/data (MIT licence, tests/data/LICENSE-hamer.md). Run from the repository root:

    PYTHONPATH=. python examples/make_example.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.bagfactory import hand_photos, write_image_bag
from vidihand_ros.calibration import load_calibration_yaml
from vidihand_ros.imaging import encode_jpeg

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "hands_demo"
WIDTH, HEIGHT, FRAMES, FPS = 320, 240, 45, 15.0


def frames() -> list[bytes]:
    photos = hand_photos(WIDTH + 60, HEIGHT + 45)
    out = []
    for i in range(FRAMES):
        photo = photos[(i // 15) % len(photos)]
        dx, dy = 4 * (i % 15), 3 * (i % 15)
        out.append(encode_jpeg(np.ascontiguousarray(photo[dy : dy + HEIGHT, dx : dx + WIDTH]), 85))
    return out


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    camera = load_calibration_yaml(ROOT / "config" / "example_camera.yaml")
    write_image_bag(
        OUT,
        frames(),
        kind="mcap",
        topic="/camera/image_raw/compressed",
        compressed_format="jpeg",
        fps=FPS,
        camera_info=camera,
        keep_payloads=False,
    )
    print(f"wrote {OUT} ({sum(f.stat().st_size for f in OUT.iterdir()) // 1024} KiB)")


if __name__ == "__main__":
    main()
