"""`vidihand serve` as a user runs it: a real process, real port, real token rules, TLS."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytest.importorskip(
    "fastapi", reason="the inference server needs the [serve] extra: pip install -e '.[serve]'"
)


from tests import test_server_support as support
from vidihand_ros.cli import main
from vidihand_ros.cli.serve import TOKEN_ENV, is_loopback, read_token
from vidihand_ros.errors import InputError
from vidihand_ros.server.local import free_port
from vidihand_ros.wire import decode_poses, encode_window

REPO = Path(__file__).resolve().parents[1]
STAMP = "tests.estimators:stamp_estimator"
TOKEN = "a-long-enough-test-token-42"


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidihand_ros.cli", "serve", "--estimator", STAMP, *args]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def run_serve(command: list[str]) -> subprocess.CompletedProcess[str]:
    """`command` (a `vidihand serve` line) to its end, its output captured."""
    return subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=60)


@contextmanager
def served(
    *args: str, env: dict[str, str] | None = None, scheme: str = "http"
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        serve_command("--port", str(port), *args),
        cwd=REPO,
        env=env or environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=False) as client:
            while True:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "vidihand serve did not get ready"
                time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_public_host_without_a_token_is_refused_in_one_line() -> None:
    done = run_serve(serve_command("--host", "0.0.0.0", "--port", str(free_port())))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "vidihand serve: error: field '--host': binding to 0.0.0.0 needs a bearer token"
    )


def test_a_token_on_the_command_line_is_not_an_option() -> None:
    assert main(["serve", "--estimator", STAMP, "--token", "x" * 20]) == 2


def test_public_host_with_a_token_file_serves_and_checks_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    body = encode_window(support.jpeg_window(3), "w")
    with (
        served("--host", "0.0.0.0", "--token-file", str(token_file)) as (url, process),
        httpx.Client() as client,
    ):
        assert client.post(f"{url}/v1/windows", content=body).status_code == 401
        reply = client.post(f"{url}/v1/windows", content=body, headers={"authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200
        assert len(decode_poses(reply.content, "w")) == 3
    assert process.returncode == 0
    assert "bearer token required" in (process.stderr.read() if process.stderr else "")


def test_the_token_may_come_from_the_environment() -> None:
    with (
        served("--host", "0.0.0.0", env=environment(**{TOKEN_ENV: TOKEN})) as (url, _),
        httpx.Client() as client,
    ):
        assert client.get(f"{url}/v1/info").status_code == 401
        assert client.get(f"{url}/v1/info", headers={"authorization": f"Bearer {TOKEN}"}).json()["ready"]


def test_insecure_allows_a_public_host_without_a_token() -> None:
    with served("--host", "0.0.0.0", "--insecure", "--workers", "0", "--max-batch", "2") as (url, _):
        info = httpx.get(f"{url}/v1/info").json()
    assert info["batching"]["max_batch"] == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_through_uvicorns_certificate_options(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    with served("--ssl-certfile", str(cert), "--ssl-keyfile", str(key), scheme="https") as (url, _):
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            reply = client.post(f"{url}/v1/windows", content=encode_window(support.jpeg_window(2), "w"))
        assert reply.status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https", "http") + "/healthz")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssl-certfile", "cert.pem"], "TLS needs both"),
        (["--ssl-certfile", "nowhere.pem", "--ssl-keyfile", "nowhere.key"], "is not a file"),
        (["--token-file", "/nonexistent/token"], "cannot read the token file"),
    ],
)
def test_bad_security_options_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--estimator", STAMP, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_an_estimator_that_cannot_start_stops_the_command_in_one_line() -> None:
    done = run_serve(
        [sys.executable, "-m", "vidihand_ros.cli", "serve", "--estimator", "tests.test_server_support:broken"]
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "vidihand serve: error: field '--estimator': the estimator did not start: "
        "field 'checkpoint': no weights in this checkpoint"
    )


def test_token_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
        and is_loopback("127.0.0.2")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("gpu-box")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert read_token(None) is None
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert read_token(None) == TOKEN
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(InputError, match="at least 16"):
        read_token(short)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_token(empty)


def test_serve_help_imports_no_server_or_numpy() -> None:
    from tests.test_cli import imported_modules, loaded

    modules = imported_modules("serve", "--help")
    assert (
        loaded(modules, ("numpy", "fastapi", "uvicorn", "prometheus_client", "vidihand_ros.server", "torch"))
        == []
    )


def test_ray_replicas_refuse_a_stateful_estimator(capsys: pytest.CaptureFixture[str]) -> None:
    """MediaPipe's per-stream tracking is not shared between Ray Serve replicas."""
    from vidihand_ros.cli import main

    assert main(["serve", "--estimator", "mediapipe", "--ray", "--replicas", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--replicas" in err[0] and "per-stream tracking" in err[0]
