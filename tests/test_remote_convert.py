"""`vidihand convert --estimator remote --server URL --token-file F` end to end: the same dataset as
the in-process estimator, one-line errors (exit 2), and a server killed (-9) and restarted
mid-conversion leaving every frame exactly once with its poses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the inference server needs the [serve] extra: pip install -e '.[serve]'"
)


from tests.bagfactory import WrittenBag, synthetic_frames, write_image_bag
from tests.estimators import expected_pose
from tests.remote_server import (
    LoopbackServer,
    Tally,
    count_requests,
    free_port,
    serve_app,
    wait_ready,
)
from tests.test_remote import TOKEN, flaky_front
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.server.settings import ServerSettings
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDIHAND_TOKEN", raising=False)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def jpeg_bag(folder: Path, n: int) -> WrittenBag:
    return write_image_bag(folder / "rec", synthetic_frames(n), compressed_format="jpeg", camera_info=CAMERA)


def convert_args(bag: WrittenBag, out: Path, *extra: str) -> list[str]:
    """`vidihand convert` of `bag` into `out`, quiet, then `extra`."""
    return ["convert", str(bag.path), "-o", str(out), "-q", *extra]


def remote_args(url: str, token_file: Path, *extra: str) -> list[str]:
    return ["--estimator", "remote", "--server", url, "--token-file", str(token_file), *extra]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("vidihand convert: error: "), err
    return err


def assert_poses_are_the_stamp_estimators(out: Path, bag: WrittenBag) -> None:
    """Every frame once, in order, each with the poses the estimator gives its stamp."""
    reader = DatasetReader(out)
    assert reader.num_episodes == 1
    episode = reader.episode(0)
    np.testing.assert_array_equal(episode["stamp_ns"], bag.stamps_ns)
    for row, stamp in enumerate(bag.stamps_ns):
        for side in ("left", "right"):
            want = expected_pose(stamp, side)
            assert episode[f"{side}_hand_valid"][row]
            np.testing.assert_array_equal(episode[f"{side}_hand_joints_3d"][row], want.joints_3d)
            np.testing.assert_array_equal(episode[f"{side}_hand_transl"][row], want.transl)


def test_convert_over_the_wire_writes_the_same_dataset_as_in_process(
    tmp_path: Path, tally: tuple[str, Tally], token_file: Path
) -> None:
    bag = jpeg_bag(tmp_path, 37)
    local, remote = tmp_path / "local.zarr", tmp_path / "remote.zarr"
    argv = ["convert", str(bag.path), "-q"]
    in_process = ["--estimator", "tests.estimators:stamp_estimator", "--window", "8", "--stride", "4"]
    assert main([*argv, "-o", str(local), *in_process]) == 0
    served = serve_app(ServerSettings(token=TOKEN), tally=tally[0], window="8", stride="4")
    with LoopbackServer(served) as server:  # no --window: the server estimator's own, 8/4
        assert main([*argv, "-o", str(remote), *remote_args(server.url, token_file)]) == 0
    assert not [t for t in threading.enumerate() if t.name == "vidihand-remote"]  # the estimator was closed
    a, b = DatasetReader(local), DatasetReader(remote)
    assert b.num_frames == 37 and a.keys == b.keys and any("joints_3d" in key for key in a.keys)
    for key in a.keys:
        np.testing.assert_array_equal(a.array(key)[:], b.array(key)[:], err_msg=key)
    assert_poses_are_the_stamp_estimators(remote, bag)
    assert len(tally[1].starts) == len(set(tally[1].starts)) == 9  # 37 frames: windows of 8, stride 4


def test_a_wrong_or_missing_token_is_one_line_exit_2(
    tmp_path: Path, tally: tuple[str, Tally], capsys: pytest.CaptureFixture[str]
) -> None:
    bag = jpeg_bag(tmp_path, 8)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token\n")
    with LoopbackServer(serve_app(ServerSettings(token=TOKEN), tally=tally[0])) as server:
        argv = convert_args(bag, tmp_path / "x.zarr")
        assert main([*argv, *remote_args(server.url, wrong)]) == 2
        err = one_line_error(capsys)
        assert "401" in err and "--token-file" in err and server.url in err
        assert main([*argv, "--estimator", "remote", "--server", server.url]) == 2  # none at all
        assert "401" in one_line_error(capsys)
    assert tally[1].starts == []


def test_an_unreachable_server_is_one_line_exit_2(
    tmp_path: Path, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = jpeg_bag(tmp_path, 8)
    url = f"http://127.0.0.1:{free_port()}"
    assert main(convert_args(bag, tmp_path / "x.zarr", *remote_args(url, token_file))) == 2
    assert f"cannot reach the inference server at {url}" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--estimator", "remote"], "needs --server URL"),
        (["--estimator", "remote", "--server", "gpu-box:8000"], "http:// or https://"),
        (
            ["--estimator", "remote", "--server", "http://box", "--estimator-option", "token=abc"],
            "no token option",
        ),
        (
            ["--estimator", "remote", "--server", "http://box", "--token-file", "/nonexistent"],
            "cannot read the token",
        ),
        (
            ["--estimator", "remote", "--server", "http://box", "--estimator-option", "retry_s=-1"],
            "retry_s must be",
        ),
    ],
)
def test_bad_remote_options_are_one_line_exit_2(
    tmp_path: Path, extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = jpeg_bag(tmp_path, 8)
    assert main(convert_args(bag, tmp_path / "x.zarr", *extra)) == 2
    assert expected in one_line_error(capsys)


def test_a_server_that_stays_busy_past_the_retry_budget_is_one_line_naming_the_stamps(
    tmp_path: Path, tally: tuple[str, Tally], token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = jpeg_bag(tmp_path, 8)
    served = serve_app(ServerSettings(token=TOKEN), tally=tally[0])
    flaky_front(served, 503, times=10**6, retry_after=None)
    with LoopbackServer(served) as server:
        extra = ["--estimator-option", "retry_s=0.5", "--window", "8"]
        assert main(convert_args(bag, tmp_path / "x.zarr", *remote_args(server.url, token_file, *extra))) == 2
    err = one_line_error(capsys)
    assert server.url in err and "retry budget" in err
    assert f"stamps {bag.stamps_ns[0]}..{bag.stamps_ns[-1]} ns" in err


def test_a_bad_window_is_reported_not_retried(
    tmp_path: Path, tally: tuple[str, Tally], token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = jpeg_bag(tmp_path, 8)
    served = serve_app(ServerSettings(token=TOKEN), tally=tally[0], fail="true")
    requests = count_requests(served)
    with LoopbackServer(served) as server:
        assert main(convert_args(bag, tmp_path / "x.zarr", *remote_args(server.url, token_file))) == 2
    err = one_line_error(capsys)
    assert "(422)" in err and "no intrinsics for this window" in err and "field 'K'" in err
    assert requests.statuses == [422]


# --------------------------------------------------------------------------------------------------
# The server killed and restarted


class ServerProcess:
    """`python -m tests.remote_server` on a fixed port: killable, restartable on the same port."""

    def __init__(self, port: int, log: Path, delay_s: float) -> None:
        self.port, self.log, self.delay_s = port, log, delay_s
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "tests.remote_server", "--port", str(self.port)]
        command += ["--log", str(self.log), "--delay", str(self.delay_s), "--window", "8"]
        env = dict(os.environ, VIDIHAND_TOKEN=TOKEN)
        self.process = subprocess.Popen(command, cwd=REPO, env=env)
        wait_ready(self.url, timeout_s=120)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def windows_logged(self) -> list[int]:
        return [int(line) for line in self.log.read_text().split()] if self.log.exists() else []


def test_the_server_killed_and_restarted_mid_conversion_leaves_every_frame_once(
    tmp_path: Path, token_file: Path
) -> None:
    bag = jpeg_bag(tmp_path, 80)  # 10 windows of 8
    server = ServerProcess(free_port(), tmp_path / "windows.log", delay_s=0.2)
    server.start()
    restarted = threading.Event()
    problems: list[BaseException] = []

    def kill_mid_window_then_restart() -> None:
        try:
            deadline = time.monotonic() + 60
            while len(server.windows_logged()) < 4:  # window 4 is logged, then estimated for 0.2 s
                assert time.monotonic() < deadline, "the conversion did not reach the 4th window"
                time.sleep(0.005)
            server.kill()  # -9 while window 4's request waits for its reply
            time.sleep(0.5)  # the client meets a refused connection or two
            server.start()
            restarted.set()
        except BaseException as err:
            problems.append(err)

    killer = threading.Thread(target=kill_mid_window_then_restart, daemon=True)
    killer.start()
    try:
        out = tmp_path / "demo.zarr"
        assert main(convert_args(bag, out, *remote_args(server.url, token_file))) == 0
        killer.join(timeout=120)
    finally:
        server.stop()
    assert not problems and restarted.is_set()
    logged = server.windows_logged()
    assert len(logged) > len(set(logged)) == 10  # a window reached the killed server, and was sent again
    assert_poses_are_the_stamp_estimators(out, bag)
