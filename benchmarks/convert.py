"""Bag → Zarr conversion speed, frames-only, on one core.

Generates a ROS 2 mcap bag of 640×480 JPEG CompressedImage frames (+ CameraInfo), then times in
one process, interleaved over several rounds (best round kept):

- raw floor:     read + deserialize each image message, write its bytes as a chunk file; nothing else
- pass-through:  `vidihand convert` (the JPEG bytes become the chunks unchanged)
- re-encode:     `vidihand convert --reencode` (decode + encode every frame)
- 300 episodes:  pass-through, the same frames cut into episodes of 10 by `--time-range`

Run from the repository root:  python -m benchmarks.convert [--frames 3000] [--rounds 3]
Targets (issue #2): pass-through ≥ 1000 frames/s and ≥ 50% of the raw floor; many short episodes
cost at most 3× the time of one long one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader

from benchmarks.common import pin_to_one_core
from tests.bagfactory import hand_photos, write_image_bag
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.imaging import encode_jpeg
from vidihand_ros.pipeline import ConvertOptions, convert
from vidihand_ros.types import CameraModel

WIDTH, HEIGHT = 640, 480
CAMERA = CameraModel.from_fxfycxcy(520.0, 520.0, 320.0, 240.0, width=WIDTH, height=HEIGHT)


def jpeg_stream(n: int) -> Iterator[bytes]:
    """n JPEG frames cycling through 24 distinct real-photo crops (encoding every frame is slow)."""
    photos = hand_photos(WIDTH + 48, HEIGHT + 36)
    distinct = []
    for i in range(24):
        photo = photos[i % len(photos)]
        dx, dy = 2 * i, (3 * i) % 36
        distinct.append(encode_jpeg(np.ascontiguousarray(photo[dy : dy + HEIGHT, dx : dx + WIDTH]), 90))
    for i in range(n):
        yield distinct[i % len(distinct)]


def raw_floor(bag: Path, out: Path) -> int:
    """The least any converter must do: read each message and write its bytes as a chunk."""
    root = zc.open_group(out, "a")
    data = zc.require_group(root, "data")
    with AnyReader([bag]) as reader:
        (conn,) = [c for c in reader.connections if c.msgtype == "sensor_msgs/msg/CompressedImage"]
        array = zc.create_array(
            data,
            "camera0_rgb",
            shape=(conn.msgcount, HEIGHT, WIDTH, 3),
            chunks=(1, HEIGHT, WIDTH, 3),
            dtype=np.uint8,
            compressor=zc.jpeg_codec(90),
            fill_value=0,
        )
        write = zc.chunk_writer(array)
        count = 0
        for _, _, raw in reader.messages([conn]):
            msg: Any = reader.deserialize(raw, conn.msgtype)
            write((count, 0, 0, 0), bytes(msg.data))
            count += 1
    return count


#: Frames per episode of the many-episodes row.
EPISODE_FRAMES = 10


def run_convert(bag: Path, out: Path, *, reencode: bool = False, episodes: int = 1) -> int:
    """`convert` of the whole bag, as one episode or cut into `episodes` ranges of `EPISODE_FRAMES`."""
    ranges = episode_ranges(episodes) if episodes > 1 else None
    report = convert([bag], out, options=ConvertOptions(reencode=reencode, time_ranges=ranges))
    assert len(report.episodes) == episodes, (episodes, len(report.episodes))
    return report.frames


def episode_ranges(episodes: int, fps: float = 30.0) -> list[tuple[float, float]]:
    """Time ranges (seconds from the first frame) of `EPISODE_FRAMES` frames each, cut between frames."""
    dt = 1.0 / fps
    ranges = [
        ((k * EPISODE_FRAMES - 0.5) * dt, (k * EPISODE_FRAMES + EPISODE_FRAMES - 0.5) * dt)
        for k in range(episodes)
    ]
    ranges[0] = (0.0, ranges[0][1])
    return ranges


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    where = pin_to_one_core()
    tmp = Path(tempfile.mkdtemp(prefix="vidihand-bench-"))
    try:
        bag = tmp / "bench_bag"
        started = time.perf_counter()
        write_image_bag(
            bag,
            jpeg_stream(args.frames),
            kind="mcap",
            compressed_format="jpeg",
            camera_info=CAMERA,
            keep_payloads=False,
        )
        size_mb = sum(f.stat().st_size for f in bag.rglob("*") if f.is_file()) / 1e6
        print(
            f"bag: {args.frames} frames {WIDTH}x{HEIGHT} JPEG, {size_mb:.0f} MB mcap, "
            f"written in {time.perf_counter() - started:.1f} s; timing on {where}"
        )

        episodes = args.frames // EPISODE_FRAMES
        many = f"pass-through, {episodes} episodes"
        modes: dict[str, Callable[[Path], int]] = {
            "raw floor (read + chunk write)": lambda out: raw_floor(bag, out),
            "pass-through (convert)": lambda out: run_convert(bag, out),
            "decode + re-encode (convert --reencode)": lambda out: run_convert(bag, out, reencode=True),
            many: lambda out: run_convert(bag, out, episodes=episodes),
        }
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, run in modes.items():
                out = tmp / "out.zarr"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                frames = run(out)
                elapsed = time.perf_counter() - t0
                assert frames == args.frames, (name, frames)
                best[name] = max(best.get(name, 0.0), frames / elapsed)
        floor = best["raw floor (read + chunk write)"]
        print()
        print(f"| {'mode':<40} | {'frames/s':>9} | {'vs raw floor':>12} |")
        print(f"|{'-' * 42}|{'-' * 11}|{'-' * 14}|")
        for name, fps in best.items():
            print(f"| {name:<40} | {fps:>9.0f} | {fps / floor:>11.0%} |")
        passthrough = best["pass-through (convert)"]
        print()
        print(
            f"target pass-through >= 1000 frames/s: {'met' if passthrough >= 1000 else 'NOT met'} "
            f"({passthrough:.0f})"
        )
        print(
            f"target pass-through >= 50% of raw floor: {'met' if passthrough >= 0.5 * floor else 'NOT met'} "
            f"({passthrough / floor:.0%})"
        )
        ratio = passthrough / best[many]  # time of many episodes / time of one
        print(
            f"target {episodes} episodes <= 3x the time of one: {'met' if ratio <= 3 else 'NOT met'} "
            f"({ratio:.1f}x)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
