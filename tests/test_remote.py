"""The remote estimator against real servers on loopback: same poses as in-process (both forms),
retries on 429/503 honouring Retry-After, no retry on a bad request, the retry budget, the
in-flight bound seen from the server, replies keyed by window id, TLS, options and layers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the inference server needs the [serve] extra: pip install -e '.[serve]'"
)

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.bagfactory import compress, synthetic_frames
from tests.estimators import StampEstimator, expected_pose
from tests.remote_server import LoopbackServer, Tally, count_requests, free_port, serve_app
from vidihand_ros.errors import EstimatorError, InputError
from vidihand_ros.estimators import create_estimator
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.estimators.remote import RemoteEstimator, RemoteOptions, retry_after_s
from vidihand_ros.server.settings import ServerSettings
from vidihand_ros.stream import PoseStream
from vidihand_ros.types import CameraModel, Frame, FramePoses, Window
from vidihand_ros.windowing import Windower
from vidihand_ros.wire import CONTENT_TYPE, WireLimits, decode_window, encode_poses

TOKEN = "test-token-0123456789"
CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
T0 = 1_700_000_000 * 1_000_000_000
STEP_NS = 33_000_000
Next = Callable[[Request], Awaitable[Response]]


def frames(n: int) -> list[Frame]:
    """n camera frames as the JPEG bytes a camera would send (the client must not decode them)."""
    return [
        Frame(T0 + i * STEP_NS, "cam", "jpeg", 64, 48, data=compress(rgb, "jpeg"), camera=CAMERA, index=i)
        for i, rgb in enumerate(synthetic_frames(n))
    ]


def windows(n_frames: int, window: int = 8, stride: int = 4) -> list[Window]:
    windower = Windower(window, stride)
    out = [w for f in frames(n_frames) for w in windower.push(f)]
    return out + windower.flush()  # the last one padded


def client(url: str, **overrides: object) -> RemoteEstimator:
    options: dict[str, object] = {"server": url, "token": TOKEN, "backoff_s": 0.02, "backoff_max_s": 0.2}
    options.update(overrides)
    return RemoteEstimator(RemoteOptions(**options))  # type: ignore[arg-type]


def assert_same_poses(got: list[list[FramePoses]], want: list[list[FramePoses]]) -> None:
    """Equal stamps, frame ids, and every value as the dataset stores it (float32)."""
    assert [[p.stamp_ns for p in w] for w in got] == [[p.stamp_ns for p in w] for w in want]
    assert [[p.frame_id for p in w] for w in got] == [[p.frame_id for p in w] for w in want]
    for got_window, want_window in zip(got, want, strict=True):
        for a, b in zip(got_window, want_window, strict=True):
            for side in ("left", "right"):
                ha, hb = a.hand(side), b.hand(side)
                assert (ha is None) == (hb is None)
                if ha is None or hb is None:
                    continue
                assert np.float32(ha.presence) == np.float32(hb.presence) and ha.filled == hb.filled
                for name in ha.ARRAY_FIELDS:
                    np.testing.assert_array_equal(getattr(ha, name), getattr(hb, name), err_msg=name)


def app(**options: str) -> FastAPI:
    """The real server (token TOKEN) around the tally estimator; `tally` names its Tally."""
    return serve_app(ServerSettings(token=TOKEN), **options)


@pytest.fixture
def server(tally: tuple[str, Tally]) -> Iterator[LoopbackServer]:
    with LoopbackServer(app(tally=tally[0])) as running:
        yield running


def flaky_front(app: FastAPI, status: int, times: int, retry_after: str | None) -> list[int]:
    """Answer the first `times` window requests with `status` (and Retry-After) before the real
    route sees them; returns the list of statuses answered, for the test to count."""
    answered: list[int] = []

    @app.middleware("http")
    async def refuse_first(request: Request, call_next: Next) -> Response:
        if request.url.path != "/v1/windows":
            return await call_next(request)
        if sum(1 for s in answered if s == status) < times:
            answered.append(status)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return JSONResponse({"error": "queue full", "field": ""}, status_code=status, headers=headers)
        response = await call_next(request)
        answered.append(response.status_code)
        return response

    return answered


# --------------------------------------------------------------------------------------------------
# Same answers as in-process


def test_both_forms_return_exactly_what_the_in_process_estimator_returns(server: LoopbackServer) -> None:
    batch = windows(120)  # 29 windows, the last padded
    want = StampEstimator().estimate(batch)
    with client(server.url, max_in_flight=3) as remote:
        assert_same_poses(remote.estimate(batch), want)
        futures = [remote.submit(batch[i : i + 4]) for i in range(0, len(batch), 4)]
        assert_same_poses([p for f in futures for p in f.result(timeout=60)], want)
        assert remote.submit([]).result(timeout=10) == []


def test_a_pose_stream_over_the_wire_gives_every_frame_once_with_its_pose(server: LoopbackServer) -> None:
    items = frames(70)
    with client(server.url, max_in_flight=4) as remote:
        stream = PoseStream(remote, window=8, stride=3, max_in_flight=6)
        out = [pair for f in items for pair in stream.push(f)] + stream.flush()
    assert [frame.stamp_ns for frame, _ in out] == [f.stamp_ns for f in items]
    for frame, poses in out:
        assert poses is not None and poses.left is not None
        np.testing.assert_array_equal(poses.left.joints_3d, expected_pose(frame.stamp_ns, "left").joints_3d)


def test_info_is_the_server_estimators_own(tally: tuple[str, Tally]) -> None:
    with (
        LoopbackServer(app(tally=tally[0], window="8", stride="4")) as running,
        client(running.url) as remote,
    ):
        assert (remote.info.name, remote.info.version) == ("stamp-test", "1")
        assert (remote.info.window, remote.info.stride, remote.info.stateful) == (8, 4, False)
        assert remote.info.options["server"] == running.url
        assert (PoseStream(remote).window, PoseStream(remote).stride) == (8, 4)


def test_a_client_started_while_the_server_warms_up_waits_for_it(tally: tuple[str, Tally]) -> None:
    # /v1/info says "ready": false until the estimator is warm; the client waits for it.
    served = app(tally=tally[0], window="8", startup_s="1.5")
    with LoopbackServer(served, ready=False) as running:
        started = time.monotonic()
        with client(running.url) as remote:
            assert time.monotonic() - started >= 1.0  # it waited for the estimator to load
            assert remote.info.window == 8
            assert_same_poses(remote.estimate(windows(8)), StampEstimator().estimate(windows(8)))


def test_the_registry_builds_it_from_string_options(server: LoopbackServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    remote = create_estimator(
        "remote", {"server": server.url + "/", "token_file": str(token_file), "max_in_flight": "2"}
    )
    assert isinstance(remote, RemoteEstimator)
    try:
        assert remote.max_in_flight == 2 and remote.options.timeout_s == 90.0
        assert_same_poses(remote.estimate(windows(8)), StampEstimator().estimate(windows(8)))
    finally:
        remote.close()


# --------------------------------------------------------------------------------------------------
# Retries


@pytest.mark.parametrize("form", ["estimate", "submit"])
def test_429_with_retry_after_is_retried_after_at_least_that_long(
    tally: tuple[str, Tally], form: str
) -> None:
    served = app(tally=tally[0])
    answered = flaky_front(served, 429, times=2, retry_after="1")
    batch = windows(8)
    with LoopbackServer(served) as running, client(running.url) as remote:
        started = time.monotonic()
        got = remote.estimate(batch) if form == "estimate" else remote.submit(batch).result(timeout=60)
        elapsed = time.monotonic() - started
    assert answered == [429, 429, 200]
    assert elapsed >= 2.0  # the client's own back-off here is 0.02..0.2 s: Retry-After won
    assert len(tally[1].starts) == len(batch)  # the refused tries never reached the estimator
    assert_same_poses(got, StampEstimator().estimate(batch))


def test_503_without_retry_after_backs_off_and_succeeds(tally: tuple[str, Tally]) -> None:
    served = app(tally=tally[0])
    answered = flaky_front(served, 503, times=3, retry_after=None)
    with LoopbackServer(served) as running, client(running.url) as remote:
        got = remote.submit(windows(8)).result(timeout=60)
    assert answered == [503, 503, 503, 200]
    assert_same_poses(got, StampEstimator().estimate(windows(8)))


@pytest.mark.parametrize("form", ["estimate", "submit"])
def test_a_timed_out_window_that_reached_the_server_is_sent_again_and_answered_once(
    tally: tuple[str, Tally], form: str
) -> None:
    served = app(tally=tally[0], slow_first_s="1.5")  # longer than the client's 1 s timeout
    batch = windows(8)
    with LoopbackServer(served) as running, client(running.url, timeout_s=1.0) as remote:
        got = remote.estimate(batch) if form == "estimate" else remote.submit(batch).result(timeout=60)
    first = batch[0].frames[0].stamp_ns
    assert tally[1].starts == [first, first]  # the server estimated it twice ...
    assert_same_poses(got, StampEstimator().estimate(batch))  # ... the caller got it once


def test_a_spent_retry_budget_is_one_line_naming_the_server_and_the_stamps(tally: tuple[str, Tally]) -> None:
    served = app(tally=tally[0])
    answered = flaky_front(served, 503, times=10**6, retry_after=None)
    window = windows(8)[0]
    with (
        LoopbackServer(served) as running,
        client(running.url, retry_s=0.5) as remote,
        pytest.raises(EstimatorError) as failed,
    ):
        remote.submit([window]).result(timeout=30)
    message = str(failed.value)
    assert "\n" not in message and running.url in message and "retry budget" in message
    first, last = window.frames[0].stamp_ns, window.frames[-1].stamp_ns
    assert f"stamps {first}..{last} ns" in message and "503 queue full" in message
    assert len(answered) >= 3 and tally[1].starts == []


def test_a_bad_request_is_reported_with_the_servers_message_and_field_not_retried(
    tally: tuple[str, Tally],
) -> None:
    settings = ServerSettings(token=TOKEN, limits=WireLimits(max_pixels=100))  # 64×48 is too many
    served = serve_app(settings, tally=tally[0])
    requests = count_requests(served)
    with (
        LoopbackServer(served) as running,
        client(running.url) as remote,
        pytest.raises(EstimatorError) as failed,
    ):
        remote.estimate(windows(8))
    assert requests.statuses == [400]
    assert failed.value.field == "frames[0].data" and "(400)" in failed.value.message
    assert "\n" not in str(failed.value) and tally[1].starts == []


def test_an_estimator_input_error_on_the_server_is_a_422_not_retried(tally: tuple[str, Tally]) -> None:
    served = app(tally=tally[0], fail="true")
    requests = count_requests(served)
    with (
        LoopbackServer(served) as running,
        client(running.url) as remote,
        pytest.raises(EstimatorError) as failed,
    ):
        remote.submit(windows(8)).result(timeout=30)
    assert requests.statuses == [422]
    assert "(422)" in str(failed.value) and "no intrinsics for this window" in str(failed.value)
    assert failed.value.field == "K"


def test_a_wrong_token_is_refused_with_a_hint(server: LoopbackServer) -> None:
    with pytest.raises(InputError) as failed, client(server.url, token="wrong") as remote:
        remote.estimate(windows(8))
    assert "401" in str(failed.value) and "--token-file" in str(failed.value)


def test_a_server_that_cannot_be_reached_is_one_line_at_construction() -> None:
    with pytest.raises(InputError) as failed:
        client(f"http://127.0.0.1:{free_port()}")
    assert "cannot reach the inference server" in str(failed.value) and "\n" not in str(failed.value)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_s("2") == 2.0
    assert retry_after_s("-3") == 0.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_s("soon") is None and retry_after_s(None) is None and retry_after_s("nan") is None


# --------------------------------------------------------------------------------------------------
# Exactly once, in flight, order


def test_a_reply_for_another_window_id_is_refused() -> None:
    """A confused proxy (or server) handing back another window's poses must not be stitched."""
    confused = FastAPI()

    @confused.get("/v1/info")
    async def info() -> dict[str, object]:
        attrs = EstimatorInfo("stamp-test").as_attrs()
        return {"ready": True, "estimator": attrs, "versions": {"wire": 1, "software": "test"}}

    @confused.post("/v1/windows")
    async def answer(request: Request) -> Response:
        _, _, window = decode_window(await request.body())
        poses = StampEstimator().estimate([window])[0]
        return Response(encode_poses("some-other-window", poses), media_type=CONTENT_TYPE)

    with (
        LoopbackServer(confused, ready=False) as running,
        client(running.url) as remote,
        pytest.raises(EstimatorError, match="bad reply") as failed,
    ):
        remote.submit(windows(8)).result(timeout=30)
    assert failed.value.field == "window_id"


@pytest.mark.parametrize("how", ["one call", "many calls", "stream"])
def test_max_in_flight_windows_really_are_in_flight_at_once(tally: tuple[str, Tally], how: str) -> None:
    served = app(tally=tally[0], delay_s="0.3")
    requests = count_requests(served)
    batch = windows(9 * 8, window=8, stride=8)
    assert len(batch) == 9
    with LoopbackServer(served) as running, client(running.url, max_in_flight=3) as remote:
        if how == "one call":
            got = remote.submit(batch).result(timeout=60)
        elif how == "many calls":
            futures = [remote.submit([w]) for w in batch]
            got = [f.result(timeout=60)[0] for f in futures]
        else:
            stream = PoseStream(remote, window=8, max_in_flight=9)
            pairs = [p for w in batch for f in w.frames for p in stream.push(f)] + stream.flush()
            assert [f.stamp_ns for f, _ in pairs] == [f.stamp_ns for w in batch for f in w.frames]
            got = StampEstimator().estimate(batch)
    assert requests.most == 3  # never more than asked, and really that many at once
    assert sorted(tally[1].starts) == [w.frames[0].stamp_ns for w in batch]  # each window once
    assert requests.statuses == [200] * 9
    assert_same_poses(got, StampEstimator().estimate(batch))


def test_a_stateful_server_gets_one_window_at_a_time_in_order(tally: tuple[str, Tally]) -> None:
    served = app(tally=tally[0], delay_s="0.05", stateful="true")
    requests = count_requests(served)
    batch = windows(6 * 8, window=8, stride=8)
    with LoopbackServer(served) as running, client(running.url, max_in_flight=4) as remote:
        assert remote.max_in_flight == 1 and remote.info.stateful
        futures = [remote.submit(batch[i : i + 2]) for i in range(0, 6, 2)]
        for future in futures:
            future.result(timeout=60)
    assert requests.most == 1 and tally[1].starts == [w.frames[0].stamp_ns for w in batch]


def test_close_stops_the_thread_and_cancels_what_is_on_the_wire(tally: tuple[str, Tally]) -> None:
    with LoopbackServer(app(tally=tally[0], delay_s="2")) as running:
        remote = client(running.url)
        future = remote.submit(windows(8))
        deadline = time.monotonic() + 10
        while not tally[1].starts and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        remote.close()
        assert time.monotonic() - started < 1.5  # did not wait for the 2 s estimate
        assert future.cancelled()
        assert not [t for t in threading.enumerate() if t.name == "vidihand-remote"]
        with pytest.raises(RuntimeError, match="closed"):
            remote.submit(windows(8))
        remote.close()  # twice is fine


# --------------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            [
                *["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
                *["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                *["-addext", "subjectAltName=IP:127.0.0.1"],
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot make a test certificate with openssl: {err}")
    return cert, key


def test_https_is_verified_against_the_given_ca_file_and_refused_without(
    tally: tuple[str, Tally], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    with LoopbackServer(app(tally=tally[0]), certfile=cert, keyfile=key) as running:
        assert running.url.startswith("https://")
        with pytest.raises(InputError, match=r"cannot reach the inference server.*CERTIFICATE_VERIFY_FAILED"):
            client(running.url)
        with client(running.url, ca_file=str(cert)) as remote:
            assert_same_poses(remote.estimate(windows(8)), StampEstimator().estimate(windows(8)))


# --------------------------------------------------------------------------------------------------
# Options and layers


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "needs --server URL"),
        ({"server": "ftp://box"}, "http:// or https://"),
        ({"server": "http://user:pw@box:8000"}, "must not carry credentials"),
        ({"server": "http://box", "token": "x"}, "takes no token option"),
        ({"server": "http://box", "colour": "red"}, "unknown remote option(s) colour"),
        ({"server": "http://box", "timeout_s": "nan"}, "timeout_s must be a positive finite number"),
        ({"server": "http://box", "max_in_flight": "0"}, "max_in_flight must be a positive"),
        ({"server": "http://box", "max_in_flight": "2.5"}, "max_in_flight must be a number"),
        ({"server": "http://box", "stream_id": "s" * 200}, "stream_id is longer than 128"),
        ({"server": "http://box", "ca_file": "ca.pem"}, "ca_file is for https:// servers"),
        ({"server": "http://box", "token_file": "/nonexistent/token"}, "cannot read the token file"),
    ],
)
def test_bad_options_are_one_line_before_any_connection(options: dict[str, str], expected: str) -> None:
    with pytest.raises(InputError) as failed:
        RemoteOptions.parse(options, env={})
    assert expected in str(failed.value) and "\n" not in str(failed.value)


def test_the_token_comes_from_the_file_else_the_environment(tmp_path: Path) -> None:
    assert RemoteOptions.parse({"server": "http://box"}, env={"VIDIHAND_TOKEN": "abc\n"}).token == "abc"
    assert RemoteOptions.parse({"server": "http://box"}, env={}).token is None
    (tmp_path / "t").write_text("from-file\n")
    parsed = RemoteOptions.parse(
        {"server": "http://box", "token_file": str(tmp_path / "t")}, env={"VIDIHAND_TOKEN": "e"}
    )
    assert parsed.token == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InputError, match="empty"):
        RemoteOptions.parse({"server": "http://box", "token_file": str(tmp_path / "empty")}, env={})
    (tmp_path / "two").write_text("a b\n")
    with pytest.raises(InputError, match="one line of printable ASCII"):
        RemoteOptions.parse({"server": "http://box", "token_file": str(tmp_path / "two")}, env={})


def test_each_estimator_gets_its_own_stream_id() -> None:
    a, b = (RemoteOptions.parse({"server": "http://box"}, env={}) for _ in range(2))
    assert a.stream_id != b.stream_id and len(a.stream_id) == 36
    assert (
        RemoteOptions.parse({"server": "http://box", "stream_id": "cam-left"}, env={}).stream_id == "cam-left"
    )


def test_the_client_imports_no_web_framework_torch_or_ros() -> None:
    code = (
        "import sys, vidihand_ros.estimators.remote\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'fastapi', 'starlette', 'uvicorn', 'torch', 'rclpy', 'mediapipe', 'ray'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
