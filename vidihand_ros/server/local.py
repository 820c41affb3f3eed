"""A real uvicorn server on a loopback port in a background thread: for tests and benchmarks.

Real HTTP on a real socket, so what is tested is what a robot talks to; `wait_ready` blocks until
`/readyz` says the estimator is warm.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

__all__ = ["free_port", "running_server"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    app: Any, *, ready_timeout_s: float = 120.0, wait_ready: bool = True, **config: Any
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        if wait_ready:
            _wait_ready(url, deadline)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_ready(url: str, deadline: float) -> None:
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            reply = client.get(f"{url}/readyz")
            if reply.status_code == 200:
                return
            if "did not start" in reply.text:
                raise RuntimeError(reply.json()["error"])
            time.sleep(0.02)
    raise RuntimeError(f"{url} was not ready in time")
