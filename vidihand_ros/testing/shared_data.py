"""Locate the real hand photos (and videos) that tests, benchmarks and the example builder use.

They are third-party (HaMeR's example images, MIT licence), so they are never committed: every
development machine and CI keeps them read-only beside the checkout, in `<repo>/../shared/data/hands`
(with their licence and README), and `VIDIHAND_HANDS_DIR` points anywhere else. This module is the
one place that knows where they are; anything that cannot find them gets `HandPhotosMissing`, whose
message names the folder and where to get the photos. Tests turn that into a skip, or a failure in
CI (see tests/conftest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the photos' folder instead of `<repo>/../shared/data/hands`.
HANDS_DIR_ENV = "VIDIHAND_HANDS_DIR"
#: Photo numbers: HaMeR's `example_data/test{n}.jpg`, saved as `hamer_test{n}.jpg`.
PHOTO_NUMBERS = (1, 3, 5)
#: Where the photos come from, for error messages and the README.
SOURCE = (
    "test1.jpg, test3.jpg and test5.jpg from the example_data/ folder of HaMeR "
    "(https://github.com/geopavlakos/hamer, MIT licence), saved as hamer_test1.jpg, hamer_test3.jpg "
    "and hamer_test5.jpg"
)


class SharedDataMissing(FileNotFoundError):
    """A shared third-party file (photo, video) is not where it was looked for."""


class HandPhotosMissing(SharedDataMissing):
    """The shared hand photos are not where they were looked for."""


def repo_root() -> Path:
    """The checkout this module lives in (vidihand_ros/testing/ is two levels below it)."""
    return Path(__file__).resolve().parents[2]


def hands_dir() -> Path:
    """The photos' folder: `$VIDIHAND_HANDS_DIR` when set, else `<repo>/../shared/data/hands`."""
    override = os.environ.get(HANDS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return repo_root().parent / "shared" / "data" / "hands"


def photo_name(n: int) -> str:
    """The file name of HaMeR's `test{n}.jpg` in the folder."""
    return f"hamer_test{n}.jpg"


def hand_photo_path(n: int, folder: Path | None = None) -> Path:
    """One photo (`n` in 1, 3, 5), checked to exist, so a missing folder is reported by name."""
    if n not in PHOTO_NUMBERS:
        raise ValueError(f"no hand photo {n}; there are {PHOTO_NUMBERS}")
    base = hands_dir() if folder is None else Path(folder)
    path = base / photo_name(n)
    if not path.is_file():
        raise HandPhotosMissing(
            f"hand photo {path} not found. The photos are {SOURCE}; put them in {base}, "
            f"or set {HANDS_DIR_ENV} to the folder that has them."
        )
    return path


def hand_photo_paths(folder: Path | None = None) -> list[Path]:
    """All three photos, in order (hamer_test1, 3, 5)."""
    return [hand_photo_path(n, folder) for n in PHOTO_NUMBERS]


#: The real two-hand video (Dyn-HaMR's test/videos/demo3.mp4, MIT), in `<repo>/../shared/data/video`.
TWO_HANDS_VIDEO = "two_hands_interacting.mp4"


def video_path(name: str = TWO_HANDS_VIDEO) -> Path:
    """A shared real video, checked to exist (the folder's README gives its source and licence)."""
    path = repo_root().parent / "shared" / "data" / "video" / name
    if not path.is_file():
        raise SharedDataMissing(
            f"video {path} not found: it is kept outside the repository in ../shared/data/video "
            "(see that folder's README for its source)."
        )
    return path


def robot_hands_dir() -> Path:
    """The robot-hand models (dex-urdf's Allegro with meshes, LEAP kinematics only), checked to exist.

    `<repo>/../shared/data/robot_hands`, laid out as dex-urdf's `robots/hands` (each model's folder
    gives its source and licence).
    """
    path = repo_root().parent / "shared" / "data" / "robot_hands"
    if not (path / "allegro_hand" / "allegro_hand_right.urdf").is_file():
        raise SharedDataMissing(
            f"robot hand models not found in {path}: they are kept outside the repository in "
            "../shared/data/robot_hands (dexsuite/dex-urdf's robots/hands: allegro_hand, leap_hand)."
        )
    return path
