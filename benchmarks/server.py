"""Inference server speed on loopback: what HTTP + the wire format cost, and how it scales.

Rows (one table, one run):

- overhead: an 81-frame 640×480 JPEG window (a real photo, drifting; ~40 KB a frame) with a trivial
  estimator (every frame: no hands), sent by one client to `vidihand serve` in its own process:
  median round trip (client: POST the encoded body, decode the reply; server: read, check every
  JPEG's structure, queue, estimate, encode) minus the median of calling the estimator directly on
  the decoded window. Once with `--max-wait-ms 0` and once with the default 5 ms batching wait
  (which a lone client does not pay: a batch waits only while other requests are arriving).
  Target (issue #15): ≤ 5 ms.
- windows/s with 1, 4 and 16 concurrent clients (the same window, trivial estimator).
- MediaPipe served by 1 and 2 worker processes: two streams of consecutive 32-frame windows
  (on different workers), frames/s over all of them.
- Ray Serve: rows from `benchmarks.server_ray.ray_rows(...)` when that module exists (added by the
  lead; see RAY ROWS below), else 'skipped'.

The machine's cores are shared by the client, the server and its workers, so the rates are lower
bounds of what a dedicated server does. Run from the repository root:
    .venv/bin/python -m benchmarks.server [--seconds 3] [--mediapipe-windows 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import imagecodecs

from benchmarks.common import Row, print_rows
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.server.local import free_port
from vidihand_ros.types import CameraModel, Frame, FramePoses, Window
from vidihand_ros.wire import CONTENT_TYPE, decode_poses, decode_window, encode_window

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES = 640, 480, 81
CAMERA = CameraModel.from_fxfycxcy(520.0, 520.0, 319.5, 239.5, width=WIDTH, height=HEIGHT)
TARGET_MS = 5.0
HEADERS = {"content-type": CONTENT_TYPE}


class TrivialEstimator:
    """No hands in any frame, at once: what is left of a round trip is the server's own cost."""

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(name="trivial", version="1")

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        return [[FramePoses(f.stamp_ns, f.frame_id) for f in w.frames] for w in windows]

    def close(self) -> None:
        pass


def trivial(**options: str) -> TrivialEstimator:
    """Factory for `vidihand serve --estimator benchmarks.server:trivial`."""
    return TrivialEstimator()


def windows_row(name: str, rate: float) -> Row:
    """A windows/s row; its note gives the frames/s (FRAMES frames a window)."""
    return Row(name, f"{rate:.1f}", "windows/s", f"{rate * FRAMES:.0f} frames/s")


# ----------------------------------------------------------------------------------------------
# Frames and the server


def jpeg_window(frames: int, frame_id: str = "camera", start: int = 0) -> Window:
    """`frames` 640×480 JPEG frames of two real hands drifting a few pixels (benchmarks.baseline)."""
    from benchmarks.baseline import hand_frames

    rgbs = hand_frames(start + frames)[start:]
    return Window(
        frames=[
            Frame(
                1_700_000_000_000_000_000 + round((start + i) * 1e9 / 30),
                frame_id,
                "jpeg",
                WIDTH,
                HEIGHT,
                data=bytes(imagecodecs.jpeg8_encode(rgb, level=90)),
                camera=CAMERA,
                index=start + i,
            )
            for i, rgb in enumerate(rgbs)
        ],
        start=start,
        num_valid=frames,
        segment=0,
    )


@contextmanager
def server(*args: str) -> Iterator[str]:
    """`vidihand serve ARGS` in its own process on a free loopback port, until ready."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "vidihand_ros.cli", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# ----------------------------------------------------------------------------------------------
# Measurements


def median_seconds(call: Callable[[], object], seconds: float, at_least: int = 20) -> float:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < at_least:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def overhead_rows(body: bytes, window: Window, seconds: float) -> list[Row]:
    estimator = TrivialEstimator()
    _, _, decoded = decode_window(body)
    direct = median_seconds(lambda: estimator.estimate([decoded]), seconds / 4)
    rows = [Row("trivial estimator called directly", f"{direct * 1e3:.3f}", "ms / window")]
    for wait in ("0", "5"):
        with (
            server("--estimator", "benchmarks.server:trivial", "--max-wait-ms", wait) as url,
            httpx.Client() as client,
        ):

            def round_trip() -> None:
                reply = client.post(f"{url}/v1/windows", content=body, headers=HEADERS)
                assert reply.status_code == 200, reply.text
                decode_poses(reply.content, "w")

            for _ in range(5):
                round_trip()
            total = median_seconds(round_trip, seconds)
        over = (total - direct) * 1e3
        verdict = "meets" if over <= TARGET_MS else "misses"
        rows.append(
            Row(
                f"round trip overhead, --max-wait-ms {wait}",
                f"{over:.2f}",
                "ms / window",
                f"{verdict} ≤ {TARGET_MS:g} ms; round trip {total * 1e3:.2f} ms",
            )
        )
    return rows


async def _clients(url: str, body: bytes, clients: int, seconds: float) -> int:
    done = 0
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one() -> None:
            nonlocal done
            while time.perf_counter() < end:
                reply = await client.post(f"{url}/v1/windows", content=body, headers=HEADERS)
                assert reply.status_code == 200, reply.text
                decode_poses(reply.content, "w")
                done += 1

        await asyncio.gather(*(one() for _ in range(clients)))
    return done


def throughput_rows(body: bytes, seconds: float) -> list[Row]:
    rows = []
    with server("--estimator", "benchmarks.server:trivial", "--queue", "64") as url:
        asyncio.run(_clients(url, body, 4, 0.5))  # warm connections and caches
        for clients in (1, 4, 16):
            start = time.perf_counter()
            done = asyncio.run(_clients(url, body, clients, seconds))
            rate = done / (time.perf_counter() - start)
            rows.append(windows_row(f"{clients} concurrent client(s), trivial estimator", rate))
    return rows


def _streams(workers: int) -> list[str]:
    """Two stream ids that land on different workers (a stream is sticky to crc32(id) % workers)."""
    first = "robot-0"
    other = next(
        f"robot-{k}"
        for k in range(1, 100)
        if zlib.crc32(f"robot-{k}".encode()) % 2 != zlib.crc32(first.encode()) % 2
    )
    return [first, other]


def mediapipe_rows(windows: int) -> list[Row]:
    if importlib.util.find_spec("mediapipe") is None:
        return [Row("MediaPipe served", "-", "", "skipped: mediapipe is not installed ([baseline] extra)")]
    size = 32
    streams = _streams(2)
    bodies = {
        s: [
            encode_window(jpeg_window(size, frame_id=s, start=k * size), f"{s}/{k}", s)
            for k in range(windows)
        ]
        for s in streams
    }

    async def send(url: str) -> None:
        async with httpx.AsyncClient(timeout=300) as client:

            async def stream(stream_id: str) -> None:
                for k, body in enumerate(bodies[stream_id]):
                    reply = await client.post(f"{url}/v1/windows", content=body, headers=HEADERS)
                    assert reply.status_code == 200, reply.text
                    decode_poses(reply.content, f"{stream_id}/{k}")

            await asyncio.gather(*(stream(s) for s in streams))

    rows = []
    for workers in (1, 2):
        with server("--estimator", "mediapipe", "--workers", str(workers)) as url:
            start = time.perf_counter()
            asyncio.run(send(url))
            elapsed = time.perf_counter() - start
        frames = len(streams) * windows * size
        rows.append(
            Row(
                f"MediaPipe, {workers} worker process(es), 2 streams",
                f"{frames / elapsed:.1f}",
                "frames/s",
                f"{frames} frames of {size}-frame 640×480 JPEG windows in {elapsed:.1f} s",
            )
        )
    return rows


def ray_rows(seconds: float) -> list[Row]:
    # ---- RAY ROWS: benchmarks/server_ray.py (the lead's) provides
    #      `ray_rows(*, seconds=...) -> list[(name, windows/s)]` on the same workload (an 81-frame
    #      640×480 JPEG window, trivial estimator) through Ray Serve replicas.
    try:
        module = importlib.import_module("benchmarks.server_ray")
    except ImportError:
        return [Row("Ray Serve", "-", "", "skipped (benchmarks/server_ray.py not present)")]
    try:
        measured = module.ray_rows(seconds=seconds)
    except Exception as err:  # e.g. no ray here: the other rows still print
        return [Row("Ray Serve", "-", "", f"skipped ({type(err).__name__}: {str(err)[:80]})")]
    return [windows_row(str(name), float(rate)) for name, rate in measured]


def print_table(rows: list[Row], body: bytes) -> None:
    print(
        f"Inference server on loopback, {FRAMES}-frame {WIDTH}×{HEIGHT} JPEG windows "
        f"({len(body) / 1e6:.2f} MB), {os.cpu_count()} CPUs shared by client and server"
    )
    print()
    print_rows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row")
    parser.add_argument("--mediapipe-windows", type=int, default=3, help="32-frame windows per stream")
    args = parser.parse_args()
    window = jpeg_window(FRAMES)
    body = encode_window(window, "w", "bench")
    rows = overhead_rows(body, window, args.seconds)
    rows += throughput_rows(body, args.seconds)
    rows += mediapipe_rows(args.mediapipe_windows)
    rows += ray_rows(args.seconds)
    print_table(rows, body)


if __name__ == "__main__":
    main()
