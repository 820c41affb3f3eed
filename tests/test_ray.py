"""Ray scale-out on a local CPU Ray instance: `serve --ray` with 2 replicas, `convert --ray` with 2
workers (equal to a plain convert), and a worker killed mid-task (every recording still once).

One Ray session for the module (starting Ray costs seconds); skipped where Ray is not installed
(the core venvs), run in the all-extras venv and CI.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")

import httpx  # noqa: E402

from tests.bagfactory import synthetic_frames  # noqa: E402
from tests.estimators import StampEstimator, expected_pose  # noqa: E402
from tests.test_ray_imports import CAMERA, STAMP_ESTIMATOR, assert_same_data, bag  # noqa: E402
from vidihand_ros.cli import main  # noqa: E402
from vidihand_ros.dataset.reader import DatasetReader  # noqa: E402
from vidihand_ros.types import Frame, FramePoses, Window  # noqa: E402
from vidihand_ros.wire import CONTENT_TYPE, decode_poses, encode_window  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


# --------------------------------------------------------------------------------------------------
# serve --ray


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def window(start: int, n: int = 8) -> Window:
    stamps = [1_700_000_000_000_000_000 + (start + i) * 33_333_333 for i in range(n)]
    jpegs = [bytes(imagecodecs.jpeg8_encode(rgb, level=90)) for rgb in synthetic_frames(n, seed=start)]
    frames = [
        Frame(s, "cam", "jpeg", 64, 48, data=data, camera=CAMERA, index=i)
        for i, (s, data) in enumerate(zip(stamps, jpegs, strict=True))
    ]
    return Window(frames=frames, start=start, num_valid=n, segment=0)


def test_serve_on_two_replicas_answers_windows_and_spreads_them() -> None:
    from vidihand_ros.server.factory import AppFactory
    from vidihand_ros.server.ray_serve import REPLICA_HEADER, start
    from vidihand_ros.server.runner import EstimatorSpec

    url, shutdown = start(
        AppFactory(EstimatorSpec(STAMP_ESTIMATOR)), replicas=2, port=free_port(), access_log=False
    )
    try:
        windows = [window(8 * k) for k in range(24)]

        def post(client: httpx.Client, k: int) -> tuple[str, list[FramePoses]]:
            body = encode_window(windows[k], f"w{k}", stream_id=f"s{k}")
            reply = client.post(f"{url}/v1/windows", content=body, headers={"content-type": CONTENT_TYPE})
            assert reply.status_code == 200, reply.text
            return reply.headers[REPLICA_HEADER], decode_poses(reply.content, expected_id=f"w{k}")

        with httpx.Client(timeout=30.0) as client, ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda k: post(client, k), range(len(windows))))
            info = client.get(f"{url}/v1/info").json()
    finally:
        shutdown()
    assert info["estimator"]["name"] == "stamp-test"
    assert len({replica for replica, _ in replies}) == 2  # both replicas answered
    for w, (_, poses) in zip(windows, replies, strict=True):
        assert [p.stamp_ns for p in poses] == [f.stamp_ns for f in w.frames]
        for p in poses:
            for side in ("left", "right"):
                hand, want = p.hand(side), expected_pose(p.stamp_ns, side)
                assert hand is not None
                np.testing.assert_array_equal(hand.joints_3d, want.joints_3d)
                assert hand.presence == pytest.approx(want.presence)


# --------------------------------------------------------------------------------------------------
# convert --ray


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("recordings")
    sizes = (20, 33, 7, 12)
    start = 1_700_000_000_000_000_000
    return [bag(root / f"r{i}", n, start_ns=start + i * 10**11) for i, n in enumerate(sizes)]


def convert(inputs: Sequence[Path], out: Path, *extra: str, estimator: str = STAMP_ESTIMATOR) -> int:
    args = ["convert", *map(str, inputs), "-o", str(out), "-q", "--estimator", estimator]
    return main([*args, "--window", "8", "--stride", "4", *extra])


def test_convert_on_ray_equals_a_plain_convert(recordings: list[Path], tmp_path: Path) -> None:
    plain, on_ray = tmp_path / "plain.zarr", tmp_path / "ray.zarr"
    assert convert(recordings, plain) == 0
    assert convert(recordings, on_ray, "--ray") == 0

    assert_same_data(plain, on_ray)
    a, b = DatasetReader(plain), DatasetReader(on_ray)
    assert a.attrs["provenance"] == b.attrs["provenance"]
    for i in range(a.num_episodes):
        want, got = a.episode_attrs(i), b.episode_attrs(i)
        assert {k for k in want if want[k] != got.get(k)} == {"committed"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.zarr", "ray.zarr"]  # no staging left


def test_convert_on_ray_appends_and_overwrites_like_convert(recordings: list[Path], tmp_path: Path) -> None:
    plain, on_ray = tmp_path / "plain.zarr", tmp_path / "ray.zarr"
    assert convert(recordings[:1], plain) == 0 and convert(recordings[1:3], plain, "--append") == 0
    assert convert(recordings[:1], on_ray) == 0 and convert(recordings[1:3], on_ray, "--ray", "--append") == 0
    assert_same_data(plain, on_ray)

    assert convert(recordings[3:], on_ray, "--ray", "--overwrite") == 0
    assert convert(recordings[3:], plain, "--overwrite") == 0
    assert_same_data(plain, on_ray)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.zarr", "ray.zarr"]


# -- a worker killed mid-task ----------------------------------------------------------------------


class DyingEstimator(StampEstimator):
    """The stamp estimator, except that the first instance anywhere to reach its second call kills
    its own process (SIGKILL: no clean-up, as a lost node), after it has written some frames."""

    def __init__(self, marker: str, **options: str) -> None:
        super().__init__(**options)
        self.marker = marker

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        if len(self.calls) == 1:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().estimate(windows)


def dying_estimator(marker: str, **options: str) -> DyingEstimator:
    """Factory for `--estimator tests.test_ray:dying_estimator --estimator-option marker=PATH`."""
    return DyingEstimator(marker, **options)


def test_a_worker_killed_mid_task_loses_and_repeats_no_recording(
    recordings: list[Path], tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    plain, on_ray = tmp_path / "plain.zarr", tmp_path / "ray.zarr"
    assert convert(recordings, plain) == 0
    rc = convert(
        recordings,
        on_ray,
        "--ray",
        "--estimator-option",
        f"marker={marker}",
        estimator="tests.test_ray:dying_estimator",
    )

    assert rc == 0
    assert marker.exists()  # a worker did die
    assert_same_data(plain, on_ray)  # every recording once, in order, frames and poses as plain
    assert [DatasetReader(on_ray).episode_attrs(i)["source"] for i in range(4)] == [
        DatasetReader(plain).episode_attrs(i)["source"] for i in range(4)
    ]
