"""The inference server over real HTTP on loopback: answers, batching, back-pressure, bad requests.

Each test runs a real uvicorn server on a free 127.0.0.1 port (`vidihand_ros.server.local`) with a
real estimator from the registry (`tests.estimators`, `tests.test_server_support`), and talks to it
with httpx as a robot would.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the inference server needs the [serve] extra: pip install -e '.[serve]'"
)

from fastapi import FastAPI

from tests import test_server_support as support
from tests.estimators import expected_pose
from vidihand_ros.server.factory import AppFactory
from vidihand_ros.server.local import running_server
from vidihand_ros.server.runner import EstimatorSpec
from vidihand_ros.server.settings import BatchSettings, ServerSettings
from vidihand_ros.types import HAND_SIDES, FramePoses, HandPose, Window
from vidihand_ros.wire import WIRE_VERSION, WireLimits, decode_poses, encode_window, pack

STAMP = "tests.estimators:stamp_estimator"
TOKEN = "s3cret-token-for-tests-0123456789"
MSGPACK = {"content-type": "application/msgpack"}


@contextmanager
def serving(
    name: str = STAMP, options: dict[str, str] | None = None, *, wait_ready: bool = True, **kwargs: Any
) -> Iterator[tuple[str, FastAPI]]:
    """A real server for `name`; kwargs are ServerSettings fields, or BatchSettings ones."""
    batch_fields = set(BatchSettings.__dataclass_fields__)
    batch = BatchSettings(**{k: v for k, v in kwargs.items() if k in batch_fields})
    settings = ServerSettings(batch=batch, **{k: v for k, v in kwargs.items() if k not in batch_fields})
    app = AppFactory(EstimatorSpec(name, options or {}), settings)()
    with running_server(app, wait_ready=wait_ready) as url:
        yield url, app


def message(window: Window, window_id: str = "w", stream_id: str = "s") -> dict[str, Any]:
    """The request as a dict, to be broken and re-packed."""
    value = msgpack.unpackb(encode_window(window, window_id, stream_id), raw=False)
    assert isinstance(value, dict)
    return value


async def post_window(
    client: httpx.AsyncClient, url: str, window: Window, window_id: str, stream_id: str
) -> httpx.Response:
    """POST one window of `stream_id` to `/v1/windows` as msgpack, as a robot would."""
    return await client.post(
        f"{url}/v1/windows", content=encode_window(window, window_id, stream_id), headers=MSGPACK
    )


def assert_poses_of(poses: list[FramePoses], window: Window) -> None:
    """Exactly this window's poses (the stamp estimator's value for each of its stamps)."""
    assert [p.stamp_ns for p in poses] == [f.stamp_ns for f in window.frames]
    assert [p.frame_id for p in poses] == [f.frame_id for f in window.frames]
    for pose in poses:
        for side in HAND_SIDES:
            hand = pose.hand(side)
            assert isinstance(hand, HandPose)
            expected = expected_pose(pose.stamp_ns, side)
            np.testing.assert_array_equal(hand.joints_3d, expected.joints_3d)
            np.testing.assert_array_equal(hand.keypoints_2d, expected.keypoints_2d)
            assert math.isclose(hand.presence, expected.presence, rel_tol=1e-6)


def post(client: httpx.Client, url: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(f"{url}/v1/windows", content=body, headers={**MSGPACK, **headers})


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if match and match.group(1) == name:
            got = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
            if got == wanted:
                return float(match.group(3))
    return 0.0


# ----------------------------------------------------------------------------------------------
# Answers


def test_a_window_gets_its_poses_back() -> None:
    window = support.jpeg_window(5)
    with serving() as (url, _), httpx.Client() as client:
        reply = post(client, url, encode_window(window, "w1", "robot-1"))
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/msgpack"
        assert_poses_of(decode_poses(reply.content, "w1"), window)


def test_concurrent_clients_each_get_exactly_their_own_poses_batched() -> None:
    windows = [support.jpeg_window(4, stamp0=1_000_000_000 + k * 7_000_000_000, seed=k) for k in range(48)]
    support.INSTANCES.clear()

    async def clients(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{url}/v1/windows", content=encode_window(w, f"w{k}", f"s{k % 16}"), headers=MSGPACK
                    )
                    for k, w in enumerate(windows)
                )
            )

    name = "tests.test_server_support:slow"
    with serving(name, {"delay": "0.02"}, max_batch=8, max_wait_s=0.02) as (url, _):
        replies = asyncio.run(clients(url))
        page = httpx.get(f"{url}/metrics").text
    for k, (window, reply) in enumerate(zip(windows, replies, strict=True)):
        assert reply.status_code == 200, reply.text
        assert_poses_of(decode_poses(reply.content, f"w{k}"), window)
    estimator = support.INSTANCES[-1]
    assert sum(estimator.calls[1:]) == len(windows)  # calls[0] is the warm-up
    assert max(estimator.calls) > 1  # windows of different clients shared a call
    assert metric(page, "vidihand_windows_total") == len(windows)
    assert metric(page, "vidihand_batch_windows_count") == len(estimator.calls) - 1
    assert metric(page, "vidihand_requests_total", route="/v1/windows", status="200") == len(windows)


def test_a_bad_window_in_a_batch_fails_alone() -> None:
    good = [support.jpeg_window(3, stamp0=2_000_000_000 + k * 10**9, seed=k) for k in range(6)]
    bad = support.jpeg_window(3, frame_id="bad")

    async def clients(url: str) -> list[httpx.Response]:
        bodies = [encode_window(w, f"g{k}", f"s{k}") for k, w in enumerate(good)]
        bodies.insert(3, encode_window(bad, "bad", "sb"))
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(client.post(f"{url}/v1/windows", content=b, headers=MSGPACK) for b in bodies)
            )

    with serving("tests.test_server_support:picky", max_batch=8, max_wait_s=0.05) as (url, _):
        replies = asyncio.run(clients(url))
    refused = replies.pop(3)
    assert refused.status_code == 422
    assert refused.json() == {"error": "this window has no usable intrinsics", "field": "K"}
    for k, (window, reply) in enumerate(zip(good, replies, strict=True)):
        assert reply.status_code == 200
        assert_poses_of(decode_poses(reply.content, f"g{k}"), window)


def test_a_stateful_estimator_gets_one_instance_per_stream_in_order() -> None:
    support.INSTANCES.clear()
    streams = {
        f"robot-{r}": [support.jpeg_window(4, frame_id=f"robot-{r}", start=2 * i) for i in range(6)]
        for r in range(3)
    }

    async def stream(client: httpx.AsyncClient, url: str, stream_id: str) -> list[int]:
        statuses = []
        for i, window in enumerate(streams[stream_id]):
            reply = await post_window(client, url, window, f"{stream_id}-{i}", stream_id)
            statuses.append(reply.status_code)
        return statuses

    async def clients(url: str) -> list[list[int]]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(stream(client, url, s) for s in streams))

    with serving("tests.test_server_support:ordered", max_streams=2, max_wait_s=0.01) as (url, _):
        statuses = asyncio.run(clients(url))
        info = httpx.get(f"{url}/v1/info").json()
    assert statuses == [[200] * 6] * 3
    assert info["stateful"] is True and info["window"] == 4 and info["stride"] == 2
    used = [e for e in support.INSTANCES if isinstance(e, support.OrderedEstimator) and e.order]
    seen: dict[str, list[int]] = {}
    for estimator in used:
        ids = {frame_id for frame_id, _ in estimator.order}
        assert len(ids) == 1 or ids == {"warmup"}  # never two streams in one instance
        for frame_id, start in estimator.order:
            seen.setdefault(frame_id, []).append(start)
    for stream_id in streams:
        assert seen[stream_id] == sorted(seen[stream_id]) == [0, 2, 4, 6, 8, 10]


# ----------------------------------------------------------------------------------------------
# Bad requests: each a 4xx with a JSON error naming the field, and the server keeps serving


def _patched_sof(data: bytes, width: int, height: int) -> bytes:
    at = data.index(b"\xff\xc0")
    out = bytearray(data)
    out[at + 5 : at + 7] = height.to_bytes(2, "big")
    out[at + 7 : at + 9] = width.to_bytes(2, "big")
    return bytes(out)


def _bad_requests() -> list[tuple[str, bytes, int, str]]:
    window = support.jpeg_window(3)
    good = message(window)
    cases: list[tuple[str, bytes, int, str]] = [
        ("not msgpack", b"\xc1 this is not msgpack", 400, ""),
        ("a list, not a map", pack({"x": 1})[:0] + msgpack.packb([1, 2, 3]), 400, ""),
        ("empty body", b"", 400, ""),
    ]

    def case(name: str, status: int, field: str, **changes: Any) -> None:
        value = {**good, **changes}
        cases.append(
            (
                name,
                msgpack.packb({k: v for k, v in value.items() if v is not ...}, use_bin_type=True),
                status,
                field,
            )
        )

    def frame_case(name: str, status: int, field: str, **changes: Any) -> None:
        frames = [dict(f) for f in good["frames"]]
        frames[1].update(changes)
        case(name, status, field, frames=frames)

    case("wrong wire version", 409, "wire", wire=WIRE_VERSION + 1)
    case("window_id of the wrong type", 400, "window_id", window_id=17)
    case("missing frames", 400, "frames", frames=...)
    case("missing stream_id", 400, "stream_id", stream_id=...)
    case("too many frames", 400, "frames", frames=good["frames"][:1] * 257, num_valid=1)
    case("num_valid past the frames", 400, "num_valid", num_valid=9)
    case("bad intrinsics", 400, "cameras[0].K", cameras=[{**good["cameras"][0], "K": [1.0] * 8}])
    frame_case("corrupt JPEG", 400, "frames[1].data", data=b"\xff\xd8\xff\xe0 broken" * 20)
    frame_case(
        "JPEG declaring 20000x20000",
        400,
        "frames[1].data",
        data=_patched_sof(good["frames"][1]["data"], 20000, 20000),
        width=20000,
        height=20000,
    )
    frame_case("JPEG not the declared size", 400, "frames[1].data", width=32, height=24)
    frame_case("rgb8 of the wrong length", 400, "frames[1].data", encoding="rgb8", data=b"\x00" * 100)
    frame_case(
        "a frame of another size",
        400,
        "frames[1].width",
        encoding="rgb8",
        width=32,
        height=24,
        data=b"\x00" * 32 * 24 * 3,
        camera=None,
    )
    case(
        "frame size not its camera's",
        400,
        "frames[0].camera",
        cameras=[{**good["cameras"][0], "width": 32, "height": 24}],
    )
    frame_case("stamp of the wrong type", 400, "frames[1].stamp_ns", stamp_ns="soon")
    frame_case("unknown encoding", 400, "frames[1].encoding", encoding="webp")
    frame_case("camera index out of range", 400, "frames[1].camera", camera=5)
    return cases


BAD_REQUESTS = _bad_requests()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(limits=WireLimits(max_bytes=1 << 20)) as (url, _):
        yield url


@pytest.mark.parametrize(("name", "body", "status", "field"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_a_bad_request_gets_a_json_4xx_naming_the_field(
    server: str, name: str, body: bytes, status: int, field: str
) -> None:
    window = support.jpeg_window(3, stamp0=5_000_000_000)
    with httpx.Client() as client:
        reply = post(client, server, body)
        assert reply.status_code == status, reply.text[:300]
        assert reply.headers["content-type"] == "application/json"
        error = reply.json()
        assert set(error) == {"error", "field"} and error["error"]
        assert error["field"] == field
        after = post(client, server, encode_window(window, "after"))  # still serving
        assert after.status_code == 200
        assert_poses_of(decode_poses(after.content, "after"), window)


def test_an_oversize_body_is_refused_by_its_length_and_while_streaming(server: str) -> None:
    big = b"\x00" * ((1 << 20) + 1)
    with httpx.Client() as client:
        declared = post(client, server, big)
        assert declared.status_code == 413 and declared.json()["field"] == "Content-Length"

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it arrives
            for _ in range(40):
                yield b"\x00" * 65536

        streamed = client.post(f"{server}/v1/windows", content=chunks(), headers=MSGPACK)
        assert streamed.status_code == 413
        assert "limit" in streamed.json()["error"]
        assert post(client, server, encode_window(support.jpeg_window(2), "w")).status_code == 200


def test_another_content_type_and_bad_lengths_are_refused(server: str) -> None:
    body = encode_window(support.jpeg_window(2), "w")
    with httpx.Client() as client:
        reply = client.post(
            f"{server}/v1/windows", content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 415 and reply.json()["field"] == "Content-Type"
        assert client.get(f"{server}/v1/windows").status_code == 405
        missing = client.get(f"{server}/no/such/route")
        assert missing.status_code == 404 and missing.json()["error"] == "Not Found"


def test_a_token_is_required_and_compared_exactly() -> None:
    body = encode_window(support.jpeg_window(2), "w")
    with serving(token=TOKEN) as (url, _), httpx.Client() as client:
        for headers in (
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": TOKEN},
            {"authorization": f"Bearer {TOKEN}x"},
        ):
            reply = post(client, url, body, **headers)
            assert reply.status_code == 401, headers
            assert reply.json()["field"] == "Authorization"
            assert reply.headers["www-authenticate"] == "Bearer"
        assert client.get(f"{url}/v1/info").status_code == 401
        assert client.get(f"{url}/metrics").status_code == 401
        assert client.get(f"{url}/healthz").status_code == 200  # probes need no token
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert post(client, url, body, **auth).status_code == 200
        assert client.get(f"{url}/v1/info", headers=auth).json()["ready"] is True


# ----------------------------------------------------------------------------------------------
# Back-pressure, deadlines, readiness


def test_a_full_queue_answers_429_with_retry_after() -> None:
    windows = [support.jpeg_window(2, stamp0=10**9 * (k + 1)) for k in range(8)]

    async def clients(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(f"{url}/v1/windows", content=encode_window(w, f"w{k}"), headers=MSGPACK)
                    for k, w in enumerate(windows)
                )
            )

    name = "tests.test_server_support:slow"
    with serving(name, {"delay": "0.3"}, max_batch=1, queue=2, max_wait_s=0.0, retry_after_s=3) as (url, _):
        replies = asyncio.run(clients(url))
        page = httpx.get(f"{url}/metrics").text
    statuses = sorted(r.status_code for r in replies)
    # at least the queue's two are served (a third when one was already in the estimator); the
    # rest are refused at once
    assert 2 <= statuses.count(200) <= 3 and statuses.count(429) >= 5
    assert set(statuses) == {200, 429}
    for reply in replies:
        if reply.status_code == 429:
            assert reply.headers["retry-after"] == "3"
            assert "queue is full" in reply.json()["error"]
    assert metric(page, "vidihand_requests_total", route="/v1/windows", status="429") == statuses.count(429)


def test_past_its_deadline_a_request_gets_504_and_its_queued_window_is_dropped() -> None:
    support.INSTANCES.clear()
    first, second = support.jpeg_window(2, stamp0=10**9), support.jpeg_window(2, stamp0=3 * 10**9)

    async def clients(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            one = asyncio.create_task(
                client.post(f"{url}/v1/windows", content=encode_window(first, "a"), headers=MSGPACK)
            )
            await asyncio.sleep(0.1)  # `first` is in the estimator; `second` queues behind it
            two = asyncio.create_task(
                client.post(f"{url}/v1/windows", content=encode_window(second, "b"), headers=MSGPACK)
            )
            return [await one, await two]

    with serving("tests.test_server_support:slow", {"delay": "0.8"}, max_batch=1, deadline_s=0.5) as (url, _):
        replies = asyncio.run(clients(url))
        time.sleep(1.0)  # let the estimator finish `first`
        depth = metric(httpx.get(f"{url}/metrics").text, "vidihand_queue_depth")
    for reply in replies:
        assert reply.status_code == 504
        assert "deadline" in reply.json()["error"]
    estimator = support.INSTANCES[-1]
    assert isinstance(estimator, support.SlowEstimator)
    assert estimator.seen == [first.frames[0].stamp_ns]  # `second` was never estimated
    assert depth == 0


def test_until_warmed_up_the_server_answers_503_with_retry_after() -> None:
    body = encode_window(support.jpeg_window(2), "w")
    with (
        serving("tests.test_server_support:slow_start", {"startup": "1.5"}, wait_ready=False) as (url, _),
        httpx.Client() as client,
    ):
        assert client.get(f"{url}/healthz").status_code == 200
        ready = client.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
        early = post(client, url, body)
        assert early.status_code == 503 and early.headers["retry-after"] == "1"
        assert client.get(f"{url}/v1/info").json()["ready"] is False
        deadline = time.monotonic() + 30
        while client.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert post(client, url, body).status_code == 200


def test_an_estimator_that_cannot_start_is_reported_by_readyz() -> None:
    with serving("tests.test_server_support:broken", wait_ready=False) as (url, _), httpx.Client() as client:
        deadline = time.monotonic() + 30
        while "did not start" not in (reply := client.get(f"{url}/readyz")).text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert reply.status_code == 503
        assert "no weights in this checkpoint" in reply.json()["error"]
        assert post(client, url, encode_window(support.jpeg_window(2), "w")).status_code == 503


# ----------------------------------------------------------------------------------------------
# Info, metrics, OpenAPI


def test_info_says_estimator_versions_and_limits() -> None:
    with serving(limits=WireLimits(max_pixels=1000, max_bytes=5000), max_batch=3, queue=7) as (url, _):
        info = httpx.get(f"{url}/v1/info").json()
        tiny = httpx.post(
            f"{url}/v1/windows", content=encode_window(support.jpeg_window(2), "w"), headers=MSGPACK
        )
    assert info["estimator"]["name"] == "stamp-test"
    assert info["checkpoint_sha256"] == ""
    assert info["versions"]["wire"] == WIRE_VERSION and info["versions"]["estimator"] == "1"
    assert info["versions"]["python"].count(".") == 2
    assert info["limits"] == {
        "max_body_bytes": 5000,
        "max_pixels": 1000,
        "max_frames": 256,
        "deadline_s": 60.0,
    }
    assert info["batching"]["max_batch"] == 3 and info["batching"]["queue"] == 7
    assert info["jpeg_decoding"] == "cpu"
    assert tiny.status_code == 400 and "pixels" in tiny.json()["error"]  # 64x48 > 1000 pixels


def test_metrics_count_routes_statuses_and_keep_unknown_paths_apart() -> None:
    with serving() as (url, _), httpx.Client() as client:
        for _ in range(3):
            post(client, url, encode_window(support.jpeg_window(2), "w"))
        post(client, url, b"junk")
        for k in range(5):
            client.get(f"{url}/scan/{k}")
        page = client.get(f"{url}/metrics").text
    assert metric(page, "vidihand_requests_total", route="/v1/windows", status="200") == 3
    assert metric(page, "vidihand_requests_total", route="/v1/windows", status="400") == 1
    assert metric(page, "vidihand_requests_total", route="other", status="404") == 5
    assert metric(page, "vidihand_request_seconds_count", route="/v1/windows") == 4
    assert metric(page, "vidihand_frames_total") == 6
    assert metric(page, "vidihand_ready") == 1
    assert "vidihand_queue_depth 0.0" in page
    assert "vidihand_device_memory_bytes" in page  # the family, empty without CUDA


def test_openapi_publishes_the_msgpack_wire_schema() -> None:
    with serving() as (url, _):
        document = httpx.get(f"{url}/openapi.json").json()
    operation = document["paths"]["/v1/windows"]["post"]
    request = operation["requestBody"]["content"]["application/msgpack"]["schema"]
    assert request["properties"]["wire"]["enum"] == [WIRE_VERSION]
    assert request["properties"]["frames"]["items"]["properties"]["data"]["format"] == "binary"
    assert set(request["required"]) >= {"wire", "window_id", "stream_id", "frames", "cameras"}
    reply = operation["responses"]["200"]["content"]["application/msgpack"]["schema"]
    assert "joints_3d" in reply["properties"]["left"]["properties"]
    for status in ("400", "401", "409", "413", "429", "503", "504"):
        error = operation["responses"][status]["content"]["application/json"]["schema"]
        assert error["required"] == ["error", "field"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_requests_from_many_threads_while_others_misbehave() -> None:
    """Good clients keep getting their own answers while bad ones hammer the same server."""
    errors: list[str] = []
    with serving(max_wait_s=0.002) as (url, _):

        def good(k: int) -> None:
            with httpx.Client(timeout=30) as client:
                for i in range(8):
                    window = support.jpeg_window(2, stamp0=(k * 100 + i + 1) * 10**9)
                    reply = post(client, url, encode_window(window, f"{k}-{i}", f"s{k}"))
                    try:
                        assert reply.status_code == 200
                        assert_poses_of(decode_poses(reply.content, f"{k}-{i}"), window)
                    except AssertionError as err:
                        errors.append(f"{k}-{i}: {err}")

        def bad() -> None:
            with httpx.Client(timeout=30) as client:
                for _, body, status, _ in BAD_REQUESTS * 2:
                    if post(client, url, body).status_code != status:
                        errors.append(f"bad request got another status than {status}")

        threads = [threading.Thread(target=good, args=(k,)) for k in range(6)] + [
            threading.Thread(target=bad) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
