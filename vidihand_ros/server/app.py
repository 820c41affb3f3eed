"""The FastAPI application: routes, authentication, limits and error replies around a Batcher.

`POST /v1/windows` takes a window in the wire format (`vidihand_ros.wire`) and answers its poses;
`GET /healthz`, `/readyz`, `/v1/info` and `/metrics` say how the server is. Every bad request is a
4xx with a JSON `{"error", "field"}` body, checked as early and as cheaply as possible (token, then
declared length, then the body as it streams in, then the wire format); nothing a client sends can
stop the server. The estimator starts in the background, so health checks answer while it warms up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import platform
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from vidihand_ros import __version__
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.server.batching import Batcher, Pending
from vidihand_ros.server.errors import Failure, Outcome, deadline_exceeded, not_ready
from vidihand_ros.server.metrics import CONTENT_TYPE as METRICS_TYPE
from vidihand_ros.server.metrics import ServerMetrics
from vidihand_ros.server.runner import Job
from vidihand_ros.server.schema import ERROR_SCHEMA, windows_operation
from vidihand_ros.server.settings import ServerSettings
from vidihand_ros.types import FramePoses, Window
from vidihand_ros.wire import CONTENT_TYPE, MAX_FRAMES, WIRE_VERSION, WireError, decode_window, encode_poses

__all__ = ["CallableLane", "EstimateWindow", "ServerSettings", "create_app", "in_thread"]

log = logging.getLogger(__name__)

#: Content types a window may be sent as (none given is taken as msgpack too).
ACCEPTED_TYPES = (
    "application/msgpack",
    "application/x-msgpack",
    "application/vnd.msgpack",
    "application/octet-stream",
)
#: Routes the metrics label by name; anything else is "other".
ROUTES = ("/v1/windows", "/v1/info", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
#: Bodies at most this large are decoded on the event loop; larger ones on a thread.
_INLINE_DECODE = 64 * 1024

#: Estimates one window of a stream off the event loop (the first app's interface, still accepted).
EstimateWindow = Callable[[str, Window], Awaitable[Sequence[FramePoses]]]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def error(status: int, message: str, field: str = "", retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def failure_response(failure: Failure) -> JSONResponse:
    return error(failure.status, failure.error, failure.field, failure.retry_after)


def create_app(
    engine: Batcher | EstimateWindow,
    info: EstimatorInfo | None = None,
    settings: ServerSettings | None = None,
    *,
    device: str = "cpu",
    decoder: str = "cpu",
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """The app serving `engine`; `on_fatal(message)` is called if the estimator cannot start.

    `engine` may also be a plain `estimate(stream_id, window)` coroutine function described by
    `info` (the first app's form): it is queued and bounded like any other, one window at a time.
    """
    if not isinstance(engine, Batcher):
        if info is None:
            raise ValueError("create_app(estimate, info): a plain estimate function needs its info")
        engine = Batcher([CallableLane(engine, info)], settings or ServerSettings())
    settings = settings or engine.settings
    metrics = ServerMetrics(
        queue_depth=engine.depth,
        ready=lambda: float(engine.ready),
        worker_restarts=lambda: float(sum(getattr(lane, "restarts", 0) for lane in engine.lanes)),
    )
    engine.on_batch = metrics.observe_batch

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def start() -> None:
            try:
                await engine.start()
            except Exception as err:
                if on_fatal is not None:
                    on_fatal(engine.failed or str(err))

        starting = asyncio.create_task(start())
        try:
            yield
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            await engine.stop()

    app = FastAPI(
        title="vidihand inference server",
        version=__version__,
        description=f"Two-hand poses for windows of camera frames; wire format version {WIRE_VERSION} "
        "(msgpack). Send `Authorization: Bearer TOKEN` when the server has a token.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.metrics = metrics

    def authorised(request: Request) -> bool:
        if settings.token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {settings.token}".encode())

    @app.post(
        "/v1/windows",
        response_class=Response,
        openapi_extra=windows_operation(),
        summary="Estimate both hands in one window of frames",
    )
    async def windows(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.deadline_s
        if not authorised(request):
            return error(401, "missing or wrong bearer token", "Authorization")
        if not engine.ready:
            return failure_response(not_ready(settings.retry_after_s))
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media and media not in ACCEPTED_TYPES:
            return error(415, f"send the window as {CONTENT_TYPE}, not {media[:60]!r}", "Content-Type")
        engine.arriving += 1
        try:
            body = await read_body(request, settings.limits.max_bytes)
            if isinstance(body, Response):
                return body
            try:
                if len(body) <= _INLINE_DECODE:
                    window_id, stream_id, window = decode_window(body, settings.limits)
                else:
                    window_id, stream_id, window = await asyncio.to_thread(
                        decode_window, body, settings.limits
                    )
                check_window(window)
            except WireError as err:
                return error(err.status, err.message, err.field or "")
        finally:
            engine.arriving -= 1
        submitted = engine.submit(Job(stream_id, window_id, window, body), deadline)
        if isinstance(submitted, Failure):
            return failure_response(submitted)
        return await answer(submitted, deadline)

    async def answer(pending: Pending, deadline: float) -> Response:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            outcome = await asyncio.wait_for(asyncio.shield(pending.future), max(remaining, 0.0))
        except asyncio.TimeoutError:
            engine.withdraw(pending)
            return failure_response(deadline_exceeded(settings.deadline_s))
        except asyncio.CancelledError:  # the client went away: its window need not be estimated
            engine.withdraw(pending)
            raise
        if isinstance(outcome, Failure):
            return failure_response(outcome)
        return Response(outcome, media_type=CONTENT_TYPE)

    @app.get("/healthz", summary="The process is up (it may still be warming up)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="The estimator is loaded and warmed up",
        responses={
            503: {"description": "warming up", "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        },
    )
    async def readyz() -> Any:
        if engine.ready:
            return {"ready": True}
        if engine.failed:
            return error(
                503, f"the estimator did not start: {engine.failed}", retry_after=settings.retry_after_s
            )
        return failure_response(not_ready(settings.retry_after_s))

    @app.get(
        "/v1/info",
        summary="Estimator, checkpoint, window, versions and limits",
        responses={401: {"description": "token", "content": {"application/json": {"schema": ERROR_SCHEMA}}}},
    )
    async def v1_info(request: Request) -> Any:
        if not authorised(request):
            return error(401, "missing or wrong bearer token", "Authorization")
        info = engine.info
        batch = settings.batch
        return {
            "ready": engine.ready,
            "estimator": info.as_attrs() if info is not None else None,
            "checkpoint_sha256": info.checkpoint_sha256 if info is not None else "",
            "window": info.window if info is not None else None,
            "stride": info.stride if info is not None else None,
            "stateful": info.stateful if info is not None else None,
            "versions": {
                "software": __version__,
                "wire": WIRE_VERSION,
                "python": platform.python_version(),
                "estimator": info.version if info is not None else "",
            },
            "limits": {
                "max_body_bytes": settings.limits.max_bytes,
                "max_pixels": settings.limits.max_pixels,
                "max_frames": MAX_FRAMES,
                "deadline_s": settings.deadline_s,
            },
            "batching": {
                "max_batch": batch.max_batch,
                "max_wait_ms": batch.max_wait_s * 1000,
                "queue": batch.queue,
                "workers": batch.workers,
                "max_streams": batch.max_streams,
            },
            "device": device,
            "jpeg_decoding": decoder,
        }

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus(request: Request) -> Response:
        if not authorised(request):
            return error(401, "missing or wrong bearer token", "Authorization")
        return Response(metrics.render(), media_type=METRICS_TYPE)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return error(status, str(detail))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s", request.url.path, exc_info=exc)
        return error(500, f"internal error ({type(exc).__name__})")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(_Observe, metrics=metrics)
    return app


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The body, refused (413) by its declared length before reading and by its size while reading."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            return error(400, f"Content-Length {declared[:40]!r} is not a number", "Content-Length")
        if int(declared) > limit:
            return error(413, f"body of {declared} bytes is over the {limit}-byte limit", "Content-Length")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            return error(413, f"body is over the {limit}-byte limit")
    return bytes(chunks)


def check_window(window: Window) -> None:
    """What the wire format leaves to the server: one size per window, the calibration's size."""
    first = window.frames[0]
    for i, frame in enumerate(window.frames):
        if (frame.width, frame.height) != (first.width, first.height):
            raise WireError(
                f"frame is {frame.width}x{frame.height}, frame 0 is {first.width}x{first.height} "
                "(one size per window)",
                field=f"frames[{i}].width",
            )
        camera = frame.camera
        if (
            camera is not None
            and camera.width > 0
            and (camera.width, camera.height) != (frame.width, frame.height)
        ):
            raise WireError(
                f"frame is {frame.width}x{frame.height}, its camera is {camera.width}x{camera.height}",
                field=f"frames[{i}].camera",
            )


class _Observe:
    """Counts every reply by route and status and times it (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def observed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            path = scope.get("path", "")
            route = path if path in ROUTES else "other"
            self.metrics.observe_request(route, status[0], time.perf_counter() - start)


class CallableLane:
    """A lane around a plain `estimate(stream_id, window)` coroutine function, one window at a time."""

    def __init__(self, estimate: EstimateWindow, info: EstimatorInfo) -> None:
        self.estimate = estimate
        self.info = info

    async def start(self) -> EstimatorInfo:
        return self.info

    async def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job in jobs:
            try:
                poses = await self.estimate(job.stream_id, job.window)
                outcomes.append(encode_poses(job.window_id, poses))
            except InputError as err:
                outcomes.append(Failure(422, err.message, err.field or ""))
            except Exception as err:
                log.error("estimate failed on window %r", job.window_id, exc_info=err)
                outcomes.append(Failure(500, f"the estimator failed on this window ({type(err).__name__})"))
        return outcomes

    async def stop(self) -> None:
        pass


def in_thread(estimate: Callable[[Window], Sequence[FramePoses]]) -> EstimateWindow:
    """A synchronous per-window estimate run in a worker thread, so the event loop keeps serving."""

    async def run(stream_id: str, window: Window) -> Sequence[FramePoses]:
        return await asyncio.to_thread(estimate, window)

    return run
