"""Worker processes for CPU estimators: `vidihand serve --workers N`.

MediaPipe runs one graph on one thread, so a 16-core box serves many robots only with many
processes. Each worker is spawned (not forked: no inherited event loop, threads or native state)
and builds its own estimator(s) from the registry name and options. The server sends it a batch as
the requests' own msgpack bodies (already checked by the server; the worker decodes them again,
so nothing but the wire format crosses the pipe), and the worker answers each window's reply body
or failure. A worker that dies is replaced; the batch it held gets 503 + Retry-After, so clients
retry it on the new worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import msgpack

from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.server.batching import LaneLost
from vidihand_ros.server.errors import Failure, Outcome
from vidihand_ros.server.runner import EstimatorSpec, Job
from vidihand_ros.wire import WireLimits, pack

__all__ = ["ProcessLane"]

log = logging.getLogger(__name__)

#: How often an idle worker is checked for being alive (a dead one is replaced before it is needed).
WATCH_S = 0.25


def _unpack(data: bytes) -> dict[str, Any]:
    message = msgpack.unpackb(data, raw=False)
    assert isinstance(message, dict)
    return message


class ProcessLane:
    """One worker process; `run` sends it a batch and waits for its answers (off the event loop)."""

    def __init__(
        self,
        spec: EstimatorSpec,
        *,
        max_streams: int,
        limits: WireLimits,
        device: str = "cpu",
        name: str = "worker",
    ) -> None:
        self.spec = spec
        self.max_streams = max_streams
        self.limits = limits
        self.device = device
        self.name = name
        self.restarts = 0
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._busy = False
        self._spawning: asyncio.Task[EstimatorInfo] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> EstimatorInfo:
        info = await self._respawn()
        self._watch = asyncio.create_task(self._watchdog())
        return info

    async def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        if self._spawning is not None or not self._alive():
            try:
                await self._respawn()
            except Exception as err:
                raise LaneLost(f"{self.name} could not be restarted: {err}") from err
        conn = self._conn
        assert conn is not None
        request = pack(
            {"jobs": [{"stream_id": j.stream_id, "window_id": j.window_id, "body": j.body} for j in jobs]}
        )
        self._busy = True
        try:
            reply = await asyncio.to_thread(_exchange, conn, request)
        except (EOFError, OSError) as err:
            log.warning("%s (pid %s) stopped during a batch (%s); replacing it", self.name, self.pid, err)
            self._lost()
            raise LaneLost(str(err)) from None
        finally:
            self._busy = False
        outcomes = reply.get("outcomes")
        if not isinstance(outcomes, list) or len(outcomes) != len(jobs):
            raise RuntimeError(f"{self.name} answered {reply!r:.200} for {len(jobs)} windows")
        return [o["ok"] if "ok" in o else Failure.from_dict(o) for o in outcomes]

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.to_thread(self._terminate)

    # ------------------------------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and self._conn is not None

    def _lost(self) -> None:
        self.restarts += 1
        self._terminate()
        self._begin_spawn()

    def _begin_spawn(self) -> asyncio.Task[EstimatorInfo]:
        task = asyncio.get_running_loop().create_task(self._spawn())
        self._spawning = task

        def done(finished: asyncio.Task[EstimatorInfo]) -> None:
            if self._spawning is finished:
                self._spawning = None
            if not finished.cancelled() and finished.exception() is not None:
                log.error("%s did not start: %s", self.name, finished.exception())

        task.add_done_callback(done)
        return task

    async def _respawn(self) -> EstimatorInfo:
        task = self._spawning
        if task is None:
            if self._process is not None:  # it died while idle
                self.restarts += 1
                log.warning("%s (pid %s) stopped; replacing it", self.name, self.pid)
                await asyncio.to_thread(self._terminate)
            task = self._begin_spawn()
        return await asyncio.shield(task)

    async def _spawn(self) -> EstimatorInfo:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        process = context.Process(
            target=worker_main,
            args=(
                child,
                self.spec.name,
                dict(self.spec.options),
                self.max_streams,
                self.limits.max_pixels,
                self.limits.max_bytes,
                self.device,
            ),
            name=f"vidihand-{self.name}",
            daemon=True,
        )
        process.start()
        child.close()  # so that the worker's death reads as EOF here
        self._process, self._conn = process, parent
        try:
            hello = _unpack(await asyncio.to_thread(parent.recv_bytes))
        except (EOFError, OSError) as err:
            raise RuntimeError(f"{self.name} exited while starting (exit code {process.exitcode})") from err
        if "fatal" in hello:
            raise RuntimeError(str(hello["fatal"]))
        log.info("%s started (pid %s)", self.name, process.pid)
        return EstimatorInfo(**hello["ready"])

    async def _watchdog(self) -> None:
        while not self._stopping:
            await asyncio.sleep(WATCH_S)
            if not self._busy and self._spawning is None and not self._alive():
                try:
                    await self._respawn()
                except Exception:  # logged; the next batch tries again
                    log.exception("%s could not be restarted", self.name)

    def _terminate(self) -> None:
        process, conn = self._process, self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                if process is not None and process.is_alive():
                    conn.send_bytes(pack({"stop": True}))
            conn.close()
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        self._process, self._conn = None, None


def _exchange(conn: Connection, request: bytes) -> dict[str, Any]:
    conn.send_bytes(request)
    return _unpack(conn.recv_bytes())


# ----------------------------------------------------------------------------------------------
# The worker process


def worker_main(
    conn: Connection,
    name: str,
    options: dict[str, str],
    max_streams: int,
    max_pixels: int,
    max_bytes: int,
    device: str,
) -> None:
    """A worker's life: build and warm up, then answer batches until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    from vidihand_ros.server.decoding import choose_decoder
    from vidihand_ros.server.runner import WindowRunner
    from vidihand_ros.wire import WireError, decode_window

    try:
        runner = WindowRunner(
            EstimatorSpec(name, options), max_streams=max_streams, decoder=choose_decoder(device)
        )
        runner.warm_up()
    except Exception as err:
        conn.send_bytes(pack({"fatal": str(err) or type(err).__name__}))
        return
    conn.send_bytes(pack({"ready": _info_dict(runner.info)}))
    limits = WireLimits(max_pixels=max_pixels, max_bytes=max_bytes)
    try:
        while True:
            try:
                message = _unpack(conn.recv_bytes())
            except EOFError:
                return  # the server is gone
            if message.get("stop"):
                return
            jobs: list[Job] = []
            early: dict[int, Failure] = {}
            for i, item in enumerate(message["jobs"]):
                try:
                    window_id, stream_id, window = decode_window(item["body"], limits)
                except WireError as err:  # the server checked it already; never trust, though
                    early[i] = Failure(err.status, err.message, err.field or "")
                    continue
                jobs.append(Job(stream_id, window_id, window))
            outcomes = iter(runner.run(jobs))
            replies = []
            for i in range(len(message["jobs"])):
                outcome = early[i] if i in early else next(outcomes)
                replies.append({"ok": outcome} if isinstance(outcome, bytes) else outcome.as_dict())
            conn.send_bytes(pack({"outcomes": replies}))
    finally:
        runner.close()


def _info_dict(info: EstimatorInfo) -> dict[str, Any]:
    attrs = info.as_attrs()
    attrs["options"] = {
        str(k): v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in info.options.items()
    }
    return attrs
