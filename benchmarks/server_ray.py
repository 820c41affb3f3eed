"""Ray Serve rows for the server benchmark: windows/s through 2 replicas at 1, 4 and 16 clients.

The workload is `benchmarks/server.py`'s: one 81-frame 640×480 JPEG window, posted again and again
by each client (its own connection), with a trivial estimator, so what is measured is the serving
path (HTTP, Ray Serve's proxy and router, the wire format, the app), not a model. `ray_rows`
returns (name, windows/s) rows for that table; `python -m benchmarks.server_ray` prints them.
Run from the repository root (a local Ray's replicas import `benchmarks` from there).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence

import httpx
import imagecodecs

from tests.bagfactory import synthetic_frames
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.server.local import free_port
from vidihand_ros.types import CameraModel, Frame, FramePoses, Window
from vidihand_ros.wire import CONTENT_TYPE, encode_window

__all__ = ["TRIVIAL_ESTIMATOR", "ray_rows", "trivial_estimator", "window_body"]

#: The registry name of `trivial_estimator`, for `EstimatorSpec` / `--estimator`.
TRIVIAL_ESTIMATOR = "benchmarks.server_ray:trivial_estimator"
FRAMES, WIDTH, HEIGHT = 81, 640, 480


class TrivialEstimator:
    """Answers every frame with no hands, at once: the serving path's cost alone."""

    info = EstimatorInfo(name="trivial", version="1")

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        return [[FramePoses(f.stamp_ns, f.frame_id) for f in w.frames] for w in windows]

    def close(self) -> None:
        pass


def trivial_estimator(**options: str) -> TrivialEstimator:
    return TrivialEstimator()


def window_body(frames: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The request body of one window of distinct JPEG frames (as a camera sends them)."""
    camera = CameraModel.from_fxfycxcy(500.0, 500.0, width / 2, height / 2, width, height)
    start = 1_700_000_000_000_000_000
    jpegs = [
        bytes(imagecodecs.jpeg8_encode(rgb, level=90)) for rgb in synthetic_frames(frames, width, height)
    ]
    window = Window(
        frames=[
            Frame(start + i * 33_333_333, "cam", "jpeg", width, height, data=data, camera=camera, index=i)
            for i, data in enumerate(jpegs)
        ],
        start=0,
        num_valid=frames,
        segment=0,
    )
    return encode_window(window, "bench", stream_id="bench")


def windows_per_second(url: str, body: bytes, clients: int, seconds: float) -> float:
    """`clients` threads posting `body` for `seconds`; completed windows per second overall."""
    done = [0] * clients
    deadline = time.monotonic() + seconds
    failures: list[str] = []

    def client(k: int) -> None:
        with httpx.Client(timeout=60.0) as http:
            while time.monotonic() < deadline:
                reply = http.post(f"{url}/v1/windows", content=body, headers={"content-type": CONTENT_TYPE})
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text[:200]}")
                    return
                done[k] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"the server refused a window: {failures[0]}")
    return sum(done) / (time.monotonic() - began)


def ray_rows(
    *,
    replicas: int = 2,
    clients: Sequence[int] = (1, 4, 16),
    seconds: float = 5.0,
    estimator: str = TRIVIAL_ESTIMATOR,
) -> list[tuple[str, float]]:
    """(name, windows/s) per client count, through Ray Serve with `replicas` replicas (a local
    Ray instance, started and shut down here)."""
    from vidihand_ros.server.factory import AppFactory
    from vidihand_ros.server.ray_serve import start
    from vidihand_ros.server.runner import EstimatorSpec

    body = window_body()
    url, shutdown = start(
        AppFactory(EstimatorSpec(estimator)), replicas=replicas, port=free_port(), access_log=False
    )
    try:
        windows_per_second(url, body, 1, 1.0)  # warm-up: connections, replicas' first requests
        return [
            (
                f"Ray Serve, {replicas} replicas, {n} client{'s' if n > 1 else ''}",
                windows_per_second(url, body, n, seconds),
            )
            for n in clients
        ]
    finally:
        shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0, help="per client count")
    args = parser.parse_args()
    rows = ray_rows(replicas=args.replicas, seconds=args.seconds)
    width = max(len(name) for name, _ in rows)
    print(f"{'serving path (81×640×480 JPEG window, trivial estimator)':<{width}}  windows/s")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:9.1f}")


if __name__ == "__main__":
    main()
