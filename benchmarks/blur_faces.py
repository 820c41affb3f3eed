"""What `--blur-faces` costs: `vidihand convert` frames/s with and without it, same bag, one core.

Generates a ROS 2 mcap bag of 640×480 JPEG frames cut from the real photos, half of them with a
face (hamer_test1 and hamer_test3, resized) and half without (the lower half of hamer_test5), then
times in one process, interleaved over several rounds (best round kept):

- pass-through:  `convert` (the JPEG bytes become the chunks unchanged)
- --blur-faces:  `convert --blur-faces` (every frame decoded and searched; the half with a face
                 blurred and re-encoded, the rest copied as they are)

The face blurrer is loaded once per run, inside the timing (as the CLI does).
Run from the repository root:  python -m benchmarks.blur_faces [--frames 600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
from numpy.typing import NDArray

from benchmarks.common import Row, pin_to_one_core, print_rows
from tests.bagfactory import write_image_bag
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.imaging import encode_jpeg
from vidihand_ros.pipeline import ConvertOptions, convert
from vidihand_ros.testing.shared_data import hand_photo_path
from vidihand_ros.types import CameraModel

WIDTH, HEIGHT = 640, 480
CAMERA = CameraModel.from_fxfycxcy(520.0, 520.0, 320.0, 240.0, width=WIDTH, height=HEIGHT)


def _photo(n: int) -> NDArray[np.uint8]:
    return np.asarray(imagecodecs.jpeg8_decode(hand_photo_path(n).read_bytes()), dtype=np.uint8)


def distinct_frames() -> list[bytes]:
    """Face, no face, face, no face: 640×480 JPEGs (shifted a little so no two are the same)."""
    with_face = [_photo(1), _photo(3)]
    without = _photo(5)[900:1800]
    frames = []
    for i in range(8):
        source = with_face[(i // 2) % 2] if i % 2 == 0 else without
        big = cv2.resize(source, (WIDTH + 16, HEIGHT + 12), interpolation=cv2.INTER_AREA)
        frames.append(encode_jpeg(np.ascontiguousarray(big[i : i + HEIGHT, 2 * i : 2 * i + WIDTH]), 90))
    return frames


def jpeg_stream(n: int) -> Iterator[bytes]:
    frames = distinct_frames()
    for i in range(n):
        yield frames[i % len(frames)]


def run_convert(bag: Path, out: Path, *, blur: bool) -> int:
    return convert([bag], out, options=ConvertOptions(blur_faces=blur)).frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    where = pin_to_one_core()
    tmp = Path(tempfile.mkdtemp(prefix="vidihand-bench-blur-"))
    try:
        bag = tmp / "bench_bag"
        write_image_bag(
            bag,
            jpeg_stream(args.frames),
            kind="mcap",
            compressed_format="jpeg",
            camera_info=CAMERA,
            keep_payloads=False,
        )
        print(f"bag: {args.frames} frames {WIDTH}x{HEIGHT} JPEG, half with a face; timing on {where}")
        best = {False: 0.0, True: 0.0}
        privacy: dict[str, object] = {}
        for _ in range(args.rounds):
            for blur in (False, True):
                out = tmp / "out.zarr"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                frames = run_convert(bag, out, blur=blur)
                elapsed = time.perf_counter() - t0
                assert frames == args.frames, frames
                best[blur] = max(best[blur], frames / elapsed)
                if blur:
                    privacy = DatasetReader(out).episode_attrs(0)["privacy"]
        plain, blurred = best[False], best[True]
        print()
        print_rows(
            [
                Row("convert (pass-through)", f"{plain:.0f}", "frames/s"),
                Row(
                    "convert --blur-faces",
                    f"{blurred:.0f}",
                    "frames/s",
                    f"{privacy['frames_with_faces']} frames with faces, {privacy['faces_blurred']} blurred",
                ),
                Row(
                    "ratio (--blur-faces / pass-through)",
                    f"{blurred / plain:.3f}",
                    "",
                    f"{plain / blurred:.0f}x slower",
                ),
                Row(
                    "--blur-faces per frame",
                    f"{1000 / blurred:.1f}",
                    "ms",
                    "decode + detect (+ blur, encode)",
                ),
            ]
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
