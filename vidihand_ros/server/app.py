"""The FastAPI application: routes, authentication and error replies around one estimator.

`POST /v1/windows` takes a window in the wire format (`vidihand_ros.wire`) and answers its poses;
`GET /healthz`, `/readyz`, `/v1/info` and `/metrics` say how the server is. Every bad request is a
4xx with a JSON `{"error", "field"}` body; nothing a client sends can stop the server.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from vidihand_ros import __version__
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.types import FramePoses, Window
from vidihand_ros.wire import CONTENT_TYPE, WIRE_VERSION, WireError, WireLimits, decode_window, encode_poses

__all__ = ["ServerSettings", "create_app"]

#: Estimates one window of a stream (off the event loop): what the batcher or a worker pool provides.
EstimateWindow = Callable[[str, Window], Awaitable[Sequence[FramePoses]]]


@dataclass
class ServerSettings:
    """What the app needs besides the estimator: who may call it and how big a request may be."""

    token: str | None = None
    limits: WireLimits = field(default_factory=WireLimits)


def create_app(
    estimate: EstimateWindow, info: EstimatorInfo, settings: ServerSettings | None = None
) -> FastAPI:
    """The app serving `estimate` (described by `info`)."""
    settings = settings or ServerSettings()
    app = FastAPI(title="vidihand inference server", version=__version__)
    state = {"ready": True}

    def error(status: int, message: str, field: str = "") -> JSONResponse:
        return JSONResponse({"error": message, "field": field}, status_code=status)

    def authorised(request: Request) -> bool:
        if settings.token is None:
            return True
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.token}"
        return hmac.compare_digest(given.encode(), expected.encode())

    @app.post("/v1/windows", response_class=Response)
    async def windows(request: Request) -> Response:
        if not authorised(request):
            return error(401, "missing or wrong bearer token")
        body = await request.body()
        try:
            window_id, stream_id, window = decode_window(body, settings.limits)
            poses = await estimate(stream_id, window)
        except WireError as err:
            return error(err.status, err.message, err.field or "")
        except InputError as err:
            return error(422, str(err))
        return Response(encode_poses(window_id, poses), media_type=CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Any:
        return {"ready": True} if state["ready"] else error(503, "warming up")

    @app.get("/v1/info")
    async def v1_info() -> dict[str, Any]:
        return {"estimator": info.as_attrs(), "wire": WIRE_VERSION, "software": __version__}

    return app


def in_thread(estimate: Callable[[Window], Sequence[FramePoses]]) -> EstimateWindow:
    """A synchronous per-window estimate run in a worker thread, so the event loop keeps serving."""

    async def run(stream_id: str, window: Window) -> Sequence[FramePoses]:
        return await asyncio.to_thread(estimate, window)

    return run
