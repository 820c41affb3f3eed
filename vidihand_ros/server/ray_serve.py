"""`vidihand serve --ray`: the same FastAPI app as a Ray Serve application, one estimator per replica.

Ray Serve, not a home-made balancer, spreads requests over replicas on one box or a cluster and
restarts a replica that dies. A replica is a separate process (often on another node), so it cannot
be handed a live estimator: it gets an `AppFactory`, a picklable callable (e.g. a frozen dataclass
holding the registry name and options, `server.factory.AppFactory`) that builds the estimator and
its app inside the replica.
The app is attached late (`__serve_build_asgi_app__`), so nothing heavy is built in the driver.

`start` deploys and returns (url, shutdown) for tests and benchmarks; `run` is the command's
blocking form. Each reply carries `x-vidihand-replica` (the replica's process id), so a client or a
test can see which replica answered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request, Response

from vidihand_ros.distributed.session import import_ray, ray_session
from vidihand_ros.errors import InputError

__all__ = ["REPLICA_HEADER", "BuildApp", "run", "start"]

log = logging.getLogger(__name__)

#: Builds the app a replica serves (`server.factory.AppFactory` is one); called once in each replica,
#: so it must pickle: plain settings, no live objects.
BuildApp = Callable[[], FastAPI]
#: Response header naming the replica (its process id) that answered.
REPLICA_HEADER = "x-vidihand-replica"
#: The Serve application's name (`serve status` lists it).
APP_NAME = "vidihand"


class _Replica:
    """One Serve replica: builds its app, and so its estimator, from the factory when it starts."""

    def __init__(self, factory: BuildApp) -> None:
        self._factory = factory

    def __serve_build_asgi_app__(self) -> FastAPI:
        app = self._factory()
        replica = str(os.getpid())

        @app.middleware("http")
        async def name_replica(request: Request, call_next: Callable[[Request], Any]) -> Response:
            response: Response = await call_next(request)
            response.headers[REPLICA_HEADER] = replica
            return response

        return app


def start(
    app_factory: BuildApp,
    *,
    replicas: int = 1,
    address: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_gpus_per_replica: float | None = None,
    num_cpus_per_replica: float = 1.0,
    access_log: bool = True,
    ready_timeout_s: float = 120.0,
) -> tuple[str, Callable[[], None]]:
    """Deploy `app_factory`'s app on `replicas` replicas; returns (base URL, shutdown) once it
    answers `/readyz` (the estimator loaded and warm).

    `address` None starts a local Ray instance (shut down again by `shutdown`); otherwise the
    cluster there is joined and only this application is removed on shutdown. A Ray session the
    caller opened already is used as it is. `num_gpus_per_replica` None: one GPU per replica when
    the cluster has GPUs, none otherwise. HTTP listens on host:port (on every node of a cluster).
    `access_log` False keeps replicas from logging every request (tests, benchmarks).
    """
    if replicas < 1:
        raise InputError(f"--replicas must be at least 1, got {replicas}")
    ray = import_ray()
    from ray import serve
    from ray.serve.context import _get_global_client

    stack = contextlib.ExitStack()
    owned = stack.enter_context(ray_session(address))
    try:
        serve_was_running = _get_global_client(raise_if_no_controller_running=False) is not None
        gpus = num_gpus_per_replica
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        serve.start(http_options={"host": host, "port": port})
        stack.callback(_stop_serve, serve, stop_all=owned or not serve_was_running)
        deployment: Any = serve.deployment(  # typed as a decorator, is a Deployment here
            serve.ingress()(_Replica),
            name=APP_NAME,
            num_replicas=replicas,
            ray_actor_options={"num_cpus": num_cpus_per_replica, "num_gpus": gpus},
            logging_config={"enable_access_log": access_log},
        )
        serve.run(deployment.bind(app_factory), name=APP_NAME, route_prefix="/", blocking=False)
        url = _client_url(host, port, address)
        _wait_ready(url, ready_timeout_s)
    except BaseException:
        stack.close()
        raise
    return url, stack.close


def _stop_serve(serve: Any, *, stop_all: bool) -> None:
    """Serve shut down entirely if it was ours; on a shared cluster only our application goes."""
    with contextlib.suppress(Exception):
        if stop_all:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)


def _wait_ready(url: str, timeout_s: float) -> None:
    """Until a replica says it is ready through the HTTP proxy (`serve.run` returns when replicas
    are up; their estimator may still be warming, the proxy may take a moment more). An estimator
    that failed to start is reported at once, in its own words."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                reply = client.get(f"{url}/readyz")
                if reply.status_code == 200:
                    return
                if "did not start" in reply.text:
                    raise InputError(str(reply.json().get("error", reply.text)))
            if time.monotonic() > deadline:
                raise InputError(f"the Ray Serve application did not answer at {url} within {timeout_s:g} s")
            time.sleep(0.2)


def _client_url(host: str, port: int, address: str | None) -> str:
    """Where this process reaches the app: HTTP proxies run on every node, so on this one, unless
    it joined through Ray Client (`ray://HEAD:10001`) from outside the cluster: then the head's."""
    if address is not None and address.startswith("ray://"):
        host = urlsplit(address).hostname or host
    elif host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(
    app_factory: BuildApp,
    *,
    replicas: int = 1,
    address: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_gpus_per_replica: float | None = None,
    num_cpus_per_replica: float = 1.0,
) -> None:
    """`vidihand serve --ray`: deploy, then serve until Ctrl-C or SIGTERM; shuts down cleanly."""
    url, shutdown = start(
        app_factory,
        replicas=replicas,
        address=address,
        host=host,
        port=port,
        num_gpus_per_replica=num_gpus_per_replica,
        num_cpus_per_replica=num_cpus_per_replica,
    )
    print(f"serving on {url} with {replicas} Ray Serve replica(s); Ctrl-C stops", flush=True)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutdown()
