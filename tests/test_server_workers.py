"""`--workers N`: worker processes for CPU estimators, real MediaPipe on real photos, and a killed
worker replaced while clients are served."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import httpx
import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the inference server needs the [serve] extra: pip install -e '.[serve]'"
)

from fastapi import FastAPI

from tests import test_server_support as support
from tests.test_server import MSGPACK, assert_poses_of, metric, post_window
from vidihand_ros.server.factory import AppFactory
from vidihand_ros.server.local import running_server
from vidihand_ros.server.runner import EstimatorSpec
from vidihand_ros.server.settings import BatchSettings, ServerSettings
from vidihand_ros.server.workers import ProcessLane
from vidihand_ros.types import HAND_SIDES, CameraModel, Frame, FramePoses, HandPose, Window
from vidihand_ros.wire import decode_poses, encode_window

WIDTH, HEIGHT = 320, 240
CAMERA = CameraModel.from_fxfycxcy(260.0, 260.0, 159.5, 119.5, width=WIDTH, height=HEIGHT)


@contextmanager
def workers(
    name: str, options: dict[str, str] | None = None, **batch: object
) -> Iterator[tuple[str, FastAPI]]:
    settings = ServerSettings(batch=BatchSettings(workers=2, **batch))  # type: ignore[arg-type]
    app = AppFactory(EstimatorSpec(name, options or {}), settings)()
    with running_server(app) as url:
        yield url, app


def lanes(app: FastAPI) -> list[ProcessLane]:
    found = app.state.engine.lanes
    assert all(isinstance(lane, ProcessLane) for lane in found)
    return list(found)


# ----------------------------------------------------------------------------------------------
# MediaPipe


def photo_windows(photo: bytes, frame_id: str, windows: int = 2, size: int = 8) -> list[Window]:
    """`windows` consecutive windows of one real photo drifting a few pixels, as JPEG frames."""
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(windows * size):
        shift = np.array([[1, 0, 3 * np.sin(i / 3)], [0, 1, 2 * np.cos(i / 3)]], dtype=np.float32)
        moved = cv2.warpAffine(rgb, shift, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
        frames.append(
            Frame(
                10**9 + i * 33_333_333,
                frame_id,
                "jpeg",
                WIDTH,
                HEIGHT,
                data=support.jpeg(moved),
                camera=CAMERA,
                index=i,
            )
        )
    return [
        Window(frames[k * size : (k + 1) * size], start=k * size, num_valid=size, segment=0)
        for k in range(windows)
    ]


def assert_same_poses(served: list[FramePoses], local: list[FramePoses]) -> None:
    assert [p.stamp_ns for p in served] == [p.stamp_ns for p in local]
    for a, b in zip(served, local, strict=True):
        for side in HAND_SIDES:
            ha, hb = a.hand(side), b.hand(side)
            assert (ha is None) == (hb is None)
            if isinstance(ha, HandPose) and isinstance(hb, HandPose):
                assert ha.filled == hb.filled
                np.testing.assert_allclose(ha.presence, hb.presence, rtol=1e-6, atol=1e-6)
                for name in HandPose.ARRAY_FIELDS:
                    np.testing.assert_allclose(getattr(ha, name), getattr(hb, name), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None, reason="needs the [baseline] extra (mediapipe)"
)
def test_two_mediapipe_workers_give_the_in_process_poses(hand_photo_paths: list) -> None:
    from vidihand_ros.estimators import create_estimator

    # Two streams that land on different workers (a stream is sticky to crc32(id) % workers).
    ids = [
        "robot-a",
        next(
            f"robot-{k}"
            for k in range(100)
            if zlib.crc32(f"robot-{k}".encode()) % 2 != zlib.crc32(b"robot-a") % 2
        ),
    ]
    streams = {
        ids[0]: photo_windows(hand_photo_paths[2].read_bytes(), "cam-a"),
        ids[1]: photo_windows(hand_photo_paths[0].read_bytes(), "cam-b"),
    }

    async def stream(client: httpx.AsyncClient, url: str, stream_id: str) -> list[list[FramePoses]]:
        out = []
        for k, window in enumerate(streams[stream_id]):
            reply = await post_window(client, url, window, f"{stream_id}/{k}", stream_id)
            assert reply.status_code == 200, reply.text
            out.append(decode_poses(reply.content, f"{stream_id}/{k}"))
        return out

    async def clients(url: str) -> list[list[list[FramePoses]]]:
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(*(stream(client, url, s) for s in ids))

    with workers("mediapipe") as (url, app):
        served = dict(zip(ids, asyncio.run(clients(url)), strict=True))
        pids = {lane.pid for lane in lanes(app)}
        info = httpx.get(f"{url}/v1/info").json()
    assert len(pids) == 2 and os.getpid() not in pids
    assert info["estimator"]["name"] == "mediapipe" and info["stateful"] is True
    detected = 0
    for stream_id, windows in streams.items():
        local = create_estimator("mediapipe")
        assert local is not None and hasattr(local, "estimate")
        try:
            expected = [local.estimate([w])[0] for w in windows]
        finally:
            local.close()
        for got, want in zip(served[stream_id], expected, strict=True):
            assert_same_poses(got, want)
            detected += sum(p.left is not None or p.right is not None for p in got)
    assert detected > 0  # the photos' hands were found: the comparison is not of empty results


# ----------------------------------------------------------------------------------------------
# Worker death


def test_a_killed_worker_is_replaced_and_its_window_gets_503_with_retry_after() -> None:
    slow = "tests.test_server_support:slow"
    window = support.jpeg_window(3)
    with workers(slow, {"delay": "2.0"}, max_batch=1) as (url, app):
        result: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: result.append(
                httpx.post(
                    f"{url}/v1/windows", content=encode_window(window, "w"), headers=MSGPACK, timeout=60
                )
            )
        )
        sender.start()
        deadline = time.monotonic() + 30
        while not any(lane._busy for lane in lanes(app)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        victim = next(lane for lane in lanes(app) if lane._busy)
        old_pid = victim.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        sender.join(timeout=60)
        (reply,) = result
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        assert "worker" in reply.json()["error"]
        # Replaced, and serving again.
        while victim.pid == old_pid or victim._spawning is not None:
            assert time.monotonic() < deadline + 60
            time.sleep(0.05)
        again = httpx.post(
            f"{url}/v1/windows", content=encode_window(window, "w2"), headers=MSGPACK, timeout=60
        )
        assert again.status_code == 200
        assert_poses_of(decode_poses(again.content, "w2"), window)
        assert metric(httpx.get(f"{url}/metrics").text, "vidihand_worker_restarts") == 1


def test_an_idle_worker_that_dies_is_replaced_before_it_is_needed() -> None:
    with workers("tests.estimators:stamp_estimator") as (url, app):
        lane = lanes(app)[0]
        old_pid = lane.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while lane.pid == old_pid or not lane._alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        window = support.jpeg_window(2)
        replies = [
            httpx.post(
                f"{url}/v1/windows",
                content=encode_window(window, f"w{k}", f"s{k}"),
                headers=MSGPACK,
                timeout=60,
            )
            for k in range(4)
        ]
        assert [r.status_code for r in replies] == [200] * 4
        assert lane.restarts == 1
