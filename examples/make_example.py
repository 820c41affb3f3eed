"""Build the example recording `examples/hands_demo/` (a ROS 2 mcap bag), which is not committed.

45 frames at 15 fps, 320×240 JPEG `sensor_msgs/CompressedImage` on /camera/image_raw/compressed
plus `sensor_msgs/CameraInfo` on /camera/camera_info: a slow pan over three real hand photographs,
HaMeR's example images (MIT licence), which are third-party and so kept outside the repository.
They are read from PHOTOS_DIR when given, else from `../shared/data/hands` beside the checkout (or
`$VIDIHAND_HANDS_DIR`), see `vidihand_ros.testing.shared_data`. `scripts/setup.sh` runs this when
the example is absent. Run from the repository root:

    PYTHONPATH=. python examples/make_example.py [PHOTOS_DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from tests.bagfactory import hand_photos, write_image_bag
from vidihand_ros.calibration import load_calibration_yaml
from vidihand_ros.imaging import encode_jpeg
from vidihand_ros.testing.shared_data import HandPhotosMissing

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "hands_demo"
WIDTH, HEIGHT, FRAMES, FPS = 320, 240, 45, 15.0


def frames(photos_dir: Path | None = None) -> list[bytes]:
    """The JPEG frames: 15 per photo, each panning down-right over a slightly larger copy."""
    photos = hand_photos(WIDTH + 60, HEIGHT + 45, photos_dir)
    out = []
    for i in range(FRAMES):
        photo = photos[(i // 15) % len(photos)]
        dx, dy = 4 * (i % 15), 3 * (i % 15)
        out.append(encode_jpeg(np.ascontiguousarray(photo[dy : dy + HEIGHT, dx : dx + WIDTH]), 85))
    return out


def build(photos_dir: Path | None = None, out: Path = OUT) -> Path:
    """Write the bag to `out`, replacing it; the photos are read first, so a failure leaves `out` alone."""
    jpegs = frames(photos_dir)
    shutil.rmtree(out, ignore_errors=True)
    camera = load_calibration_yaml(ROOT / "config" / "example_camera.yaml")
    write_image_bag(
        out,
        jpegs,
        kind="mcap",
        topic="/camera/image_raw/compressed",
        compressed_format="jpeg",
        fps=FPS,
        camera_info=camera,
        keep_payloads=False,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "photos_dir",
        nargs="?",
        type=Path,
        help="folder with hamer_test1.jpg, hamer_test3.jpg, hamer_test5.jpg (default: the shared folder)",
    )
    args = parser.parse_args(argv)
    try:
        out = build(args.photos_dir)
    except HandPhotosMissing as missing:
        print(f"make_example: {missing}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
