"""Real inference servers on loopback for the remote-client tests (test code, not the product).

`serve_app` builds the real server app (`vidihand_ros.server.factory.AppFactory`, as `vidihand
serve` does) around `tally_estimator`: the deterministic `tests.estimators.StampEstimator` that
also records, in a `Tally`, each client window it estimated. `Requests` counts, at the HTTP level,
the window requests in progress at once and their statuses. `LoopbackServer` runs an app under
uvicorn in a thread. `python -m tests.remote_server --port P --log F` serves the same in a process
of its own, so a test can kill -9 it mid-conversion and start it again on the same port.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from tests.estimators import StampEstimator
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.server.factory import AppFactory
from vidihand_ros.server.runner import EstimatorSpec
from vidihand_ros.server.settings import ServerSettings
from vidihand_ros.types import FramePoses, Window

#: Tallies by name: the server's estimator is built from string options, in this process.
TALLIES: dict[str, Tally] = {}


@dataclass
class Tally:
    """The client windows an estimator saw (first stamps, in arrival order)."""

    starts: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class TallyEstimator(StampEstimator):
    """StampEstimator with a given native window, statefulness, start-up time, per-call delay and
    failure; it records client windows (not the server's warm-up one) in its Tally and a file."""

    def __init__(self, **options: str) -> None:
        super().__init__()
        self.tally = TALLIES.setdefault(options.get("tally", ""), Tally())
        self.delay_s = float(options.get("delay_s", "0"))
        self.window = int(options["window"]) if options.get("window") else None
        self.stride = int(options["stride"]) if options.get("stride") else None
        self.stateful = options.get("stateful") == "true"
        self.fail = options.get("fail") == "true"
        self.log = Path(options["log"]) if options.get("log") else None
        self.slow_first_s = float(options.get("slow_first_s", "0"))  # the first client call only
        time.sleep(float(options.get("startup_s", "0")))  # a model that takes a while to load

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(
            "stamp-test", "1", window=self.window, stride=self.stride, stateful=self.stateful
        )

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        clients = [w for w in windows if w.frames[0].frame_id != "warmup"]
        if clients and self.fail:
            raise InputError("no intrinsics for this window", field="K")
        with self.tally.lock:
            self.tally.starts.extend(w.frames[0].stamp_ns for w in clients)
        if self.log is not None and clients:
            with self.log.open("a") as f:
                f.writelines(f"{w.frames[0].stamp_ns}\n" for w in clients)
        if clients:
            time.sleep(self.delay_s + self.slow_first_s)
            self.slow_first_s = 0.0
        return super().estimate(windows)


def tally_estimator(**options: str) -> TallyEstimator:
    """Factory for the server's `--estimator tests.remote_server:tally_estimator`."""
    return TallyEstimator(**options)


def serve_app(settings: ServerSettings | None = None, **options: str) -> FastAPI:
    """The real server app around `tally_estimator` with these options."""
    spec = EstimatorSpec("tests.remote_server:tally_estimator", dict(options))
    return AppFactory(spec, settings or ServerSettings())()


Next = Callable[[Request], Awaitable[Response]]


@dataclass
class Requests:
    """Window requests as the server's HTTP layer saw them: at most how many at once, statuses."""

    now: int = 0
    most: int = 0
    statuses: list[int] = field(default_factory=list)


def count_requests(app: FastAPI) -> Requests:
    requests = Requests()

    @app.middleware("http")
    async def count(request: Request, call_next: Next) -> Response:
        if request.url.path != "/v1/windows":
            return await call_next(request)
        requests.now += 1  # one event loop: no lock needed
        requests.most = max(requests.most, requests.now)
        try:
            response = await call_next(request)
        finally:
            requests.now -= 1
        requests.statuses.append(response.status_code)
        return response

    return requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout_s: float = 60.0, verify: Any = True) -> None:
    """Until `/readyz` answers 200 (the estimator is loaded and warm)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(verify=verify, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"{url} was not ready within {timeout_s} s")


class LoopbackServer:
    """`app` under uvicorn in a daemon thread on 127.0.0.1 (a fresh port), TLS when given a
    certificate; `url` is its base URL. Entering waits until it is ready, unless `ready=False`."""

    def __init__(
        self, app: Any, *, certfile: Path | None = None, keyfile: Path | None = None, ready: bool = True
    ) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"{'https' if certfile else 'http'}://127.0.0.1:{self.port}"
        self._ready = ready
        self._certfile = certfile
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            ssl_certfile=str(certfile) if certfile else None,
            ssl_keyfile=str(keyfile) if keyfile else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.01)
        if self._ready:
            ca = ssl.create_default_context(cafile=str(self._certfile)) if self._certfile else True
            wait_ready(self.url, verify=ca)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="serve tally_estimator on 127.0.0.1 (tests only)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True, help="one line per client window estimated")
    parser.add_argument("--delay", default="0", help="seconds per call")
    parser.add_argument("--window", default="")
    args = parser.parse_args()
    settings = ServerSettings(token=os.environ.get("VIDIHAND_TOKEN") or None)
    app = serve_app(settings, log=args.log, delay_s=args.delay, window=args.window)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
