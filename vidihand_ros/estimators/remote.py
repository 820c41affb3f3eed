"""`--estimator remote`: windows sent to an inference server (`vidihand serve`), poses back.

The client half of the wire format (`vidihand_ros.wire`). It imports httpx and msgpack only (no
web framework, no torch, no ROS), so the ROS node on a robot can use it as `convert` does.

Why it is built this way:

- One window is one `POST /v1/windows` tagged with a `window_id` that its retries reuse; a reply
  is accepted only for its own id and its own frames' stamps, and each window's result is handed
  back once, so a retry whose first attempt did reach the server cannot duplicate frames.
- `submit` keeps up to `max_in_flight` windows on the wire at once (one `AsyncClient` on an
  asyncio loop in a background thread), so the server's accelerator gets the next window while
  the last reply travels back. A stateful server (tracking per stream) gets one window at a time,
  in order, since HTTP requests in flight may arrive in any order.
- 429/502/503/504, dropped connections and timeouts are retried with capped exponential back-off
  and jitter, never sooner than Retry-After asks, until the window's `retry_s` budget is spent;
  any other 4xx is the request's fault, so it is reported at once and not retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import math
import os
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from vidihand_ros import __version__
from vidihand_ros.errors import EstimatorError, InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.types import FramePoses, Window
from vidihand_ros.wire import CONTENT_TYPE, MAX_ID, WIRE_VERSION, WireError, decode_poses, encode_window

__all__ = ["TOKEN_ENV", "RemoteEstimator", "RemoteOptions", "ServerUnreachable", "create", "retry_after_s"]

log = logging.getLogger(__name__)

#: Where the bearer token comes from when no `token_file` is given (never the command line).
TOKEN_ENV = "VIDIHAND_TOKEN"
#: Answers that mean "busy or briefly away, try again": never the request's own fault.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_KEYS = ("server", "token_file", "timeout_s", "retry_s", "max_in_flight", "stream_id", "ca_file")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # one line of printable ASCII: safe in a header
_T = TypeVar("_T")
Poses = list[list[FramePoses]]


# --------------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class RemoteOptions:
    """How to reach the server and how long to keep trying; `parse` reads the registry's strings."""

    server: str
    token: str | None = None
    #: One HTTP attempt (connect, send, the server's queue and estimate, reply): longer than the
    #: server's own deadline (60 s by default), so its 504 comes first and is retried.
    timeout_s: float = 90.0
    #: Total time one window may spend on retries before it is an error (covers a server restart).
    retry_s: float = 120.0
    #: Windows on the wire at once (1 for a stateful server, whatever is given).
    max_in_flight: int = 4
    #: The camera stream a stateful server keeps tracking for; a fresh one per estimator.
    stream_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ca_file: str | None = None
    #: First back-off, doubled after every failed try up to `backoff_max_s`.
    backoff_s: float = 0.1
    backoff_max_s: float = 5.0

    @classmethod
    def parse(cls, options: Mapping[str, str], env: Mapping[str, str] | None = None) -> RemoteOptions:
        """Options from strings; an unknown key or bad value is a one-line InputError naming it."""
        if "token" in options:
            raise InputError(
                "the remote estimator takes no token option (it would show in the process list and "
                f"shell history); put the token in a file (--token-file) or {TOKEN_ENV}"
            )
        unknown = sorted(set(options) - set(_KEYS))
        if unknown:
            raise InputError(f"unknown remote option(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}")
        if not options.get("server"):
            raise InputError("--estimator remote needs --server URL (e.g. http://gpu-box:8000)")
        env = os.environ if env is None else env
        stream_id = options.get("stream_id") or str(uuid.uuid4())
        if len(stream_id) > MAX_ID:
            raise InputError(f"remote option stream_id is longer than {MAX_ID} characters")
        server = server_url(options["server"])
        ca_file = options.get("ca_file") or None
        if ca_file is not None and not server.startswith("https://"):
            raise InputError(f"remote option ca_file is for https:// servers; {server} is not one")
        return cls(
            server=server,
            token=read_token(options.get("token_file") or None, env),
            timeout_s=_positive(options.get("timeout_s", "90"), "timeout_s", float),
            retry_s=_positive(options.get("retry_s", "120"), "retry_s", float, zero=True),
            max_in_flight=_positive(options.get("max_in_flight", "4"), "max_in_flight", int),
            stream_id=stream_id,
            ca_file=str(Path(ca_file).expanduser()) if ca_file else None,
        )


def server_url(value: str) -> str:
    """The server's base URL without a trailing slash; only http(s), no credentials in it."""
    try:
        url = httpx.URL(value.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as err:
        raise InputError(f"--server {value!r} is not a URL: {err}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InputError(f"--server must be an http:// or https:// URL with a host, got {value!r}")
    if url.userinfo:
        raise InputError(f"--server must not carry credentials; put the token in --token-file or {TOKEN_ENV}")
    if url.query or url.fragment:
        raise InputError(f"--server must be the server's base URL, without a query, got {value!r}")
    return str(url).rstrip("/")


def read_token(token_file: str | None, env: Mapping[str, str]) -> str | None:
    """The bearer token from `token_file`, else from VIDIHAND_TOKEN, else None (a loopback server)."""
    where: str | Path = TOKEN_ENV
    if token_file is not None:
        where = Path(token_file).expanduser()
        try:
            token = where.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise InputError(f"cannot read the token file: {reason}", source=where) from None
        if not token:
            raise InputError("the token file is empty", source=where)
    else:
        token = env.get(TOKEN_ENV, "").strip()
        if not token:
            return None
    if not _TOKEN.fullmatch(token):
        raise InputError("the token must be one line of printable ASCII without spaces", source=where)
    return token


def _positive(value: str, name: str, kind: type[_T], *, zero: bool = False) -> _T:
    try:
        number = kind(value)  # type: ignore[call-arg]
    except (TypeError, ValueError):
        raise InputError(f"remote option {name} must be a number, got {value!r}") from None
    as_float = float(number)  # type: ignore[arg-type]
    if not math.isfinite(as_float) or as_float < 0 or (as_float == 0 and not zero):
        raise InputError(f"remote option {name} must be a positive finite number, got {value!r}")
    return number


def retry_after_s(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date); None if unreadable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# --------------------------------------------------------------------------------------------------
# One window's tries


@dataclass
class _Job:
    """A window ready to send: its body is encoded once, in the caller's thread, for every try."""

    window: Window
    window_id: str
    body: bytes

    @property
    def what(self) -> str:
        frames = self.window.valid_frames or self.window.frames
        return f"the window of stamps {frames[0].stamp_ns}..{frames[-1].stamp_ns} ns"


@dataclass
class _Attempts:
    """Counts one request's tries and says how long to wait before the next, or that it is over."""

    server: str
    what: str
    budget_s: float
    backoff_s: float
    backoff_max_s: float
    started: float = field(default_factory=time.monotonic)
    tries: int = 0

    def wait_after(self, problem: str, retry_after: float | None = None) -> float:
        """Seconds to wait after a retryable failure; an EstimatorError once the budget is spent."""
        self.tries += 1
        backoff = min(self.backoff_max_s, self.backoff_s * 2.0 ** min(self.tries - 1, 30))
        wait = backoff / 2 + random.uniform(0.0, backoff / 2)  # jitter: clients do not retry in step
        if retry_after is not None:
            wait = max(wait, retry_after)
        left = self.budget_s - (time.monotonic() - self.started)
        if wait > left:
            raise EstimatorError(
                f"inference server {self.server} gave no answer for {self.what} within the "
                f"{self.budget_s:g} s retry budget ({self.tries} tries; last: {problem})"
            )
        log.info("%s: %s; retrying %s in %.2f s", self.server, problem, self.what, wait)
        return wait


def _retryable(err: httpx.HTTPError) -> bool:
    """A dropped connection or a timeout may heal; a TLS failure or a bad URL will not."""
    if isinstance(err, httpx.TimeoutException):
        return True
    if not isinstance(err, (httpx.NetworkError, httpx.RemoteProtocolError)):
        return False
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return False
        cause = cause.__cause__ or cause.__context__
    return True


def _describe(err: httpx.HTTPError) -> str:
    text = " ".join(str(err).split()) or "no reason given"
    return f"{type(err).__name__}: {text}"[:300]


def _error_body(response: httpx.Response) -> tuple[str, str | None]:
    """The server's `{"error", "field"}`, or the start of whatever else came (a proxy's page)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        where = data.get("field")
        return " ".join(data["error"].split())[:500], where if isinstance(where, str) and where else None
    text = " ".join(response.text.split())[:200]
    return text or response.reason_phrase or "no reason given", None


# --------------------------------------------------------------------------------------------------
# The estimator


class ServerUnreachable(InputError):
    """No answer at all from the server's address (not started yet, or down): a live caller may
    try again later; anything the server answered is a plain InputError."""


class RemoteEstimator:
    """A PoseEstimator (and AsyncPoseEstimator) whose windows are estimated by `vidihand serve`.

    `info` is the server estimator's (`GET /v1/info`, read once here), so `--window` defaults to
    its native window. `estimate` sends one window at a time on a pooled `httpx.Client`; `submit`
    keeps up to `max_in_flight` windows on the wire. Close it to stop its thread and connections.
    """

    def __init__(self, options: RemoteOptions) -> None:
        self.options = options
        self._server = options.server
        self._verify = _verify(options)
        self._headers = {
            "Content-Type": CONTENT_TYPE,
            "Accept": f"{CONTENT_TYPE}, application/json",
            "User-Agent": f"vidihand_ros/{__version__}",
        }
        if options.token is not None:
            self._headers["Authorization"] = f"Bearer {options.token}"
        self._timeout = httpx.Timeout(options.timeout_s, connect=min(options.timeout_s, 10.0))
        self._client = httpx.Client(
            base_url=self._server,
            headers=self._headers,
            timeout=self._timeout,
            verify=self._verify,
            limits=httpx.Limits(max_connections=options.max_in_flight + 1),
        )
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._closed = False
        self._loop: _Loop | None = None
        try:
            self._info = self._fetch_info()
        except BaseException:
            self._client.close()
            raise
        #: Windows on the wire at once: a stateful server must see a stream's windows in order.
        self.max_in_flight = 1 if self._info.stateful else options.max_in_flight

    @property
    def info(self) -> EstimatorInfo:
        return self._info

    # -- the two forms ----------------------------------------------------------------------------

    def estimate(self, windows: Sequence[Window]) -> Poses:
        """The windows' poses, one round trip after another (use `submit` to overlap them)."""
        self._check_open()
        return [self._send(job) for job in [self._job(w) for w in windows]]

    def submit(self, windows: Sequence[Window]) -> Future[Poses]:
        """Send the windows now (up to `max_in_flight` at once); the future holds their poses in order."""
        self._check_open()
        jobs = [self._job(w) for w in windows]
        loop = self._started_loop()
        return loop.run(self._estimate_async(loop, jobs))

    def close(self) -> None:
        """Cancel what is still on the wire, stop the loop thread, close every connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, self._loop = self._loop, None
        try:
            if loop is not None:
                loop.stop()
        finally:
            self._client.close()

    def __enter__(self) -> RemoteEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the remote estimator is closed")

    def _job(self, window: Window) -> _Job:
        window_id = f"{self._prefix}-{next(self._ids)}"
        return _Job(window, window_id, encode_window(window, window_id, self.options.stream_id))

    def _attempts(self, what: str) -> _Attempts:
        o = self.options
        return _Attempts(self._server, what, o.retry_s, o.backoff_s, o.backoff_max_s)

    def _send(self, job: _Job) -> list[FramePoses]:
        attempts = self._attempts(job.what)
        while True:
            try:
                response = self._client.post("/v1/windows", content=job.body)
            except httpx.HTTPError as err:
                wait = self._after_transport_error(err, attempts, job.what)
            else:
                outcome = self._outcome(response, job, attempts)
                if not isinstance(outcome, float):
                    return outcome
                wait = outcome
            time.sleep(wait)

    async def _send_async(self, client: httpx.AsyncClient, job: _Job) -> list[FramePoses]:
        attempts = self._attempts(job.what)
        while True:
            try:
                response = await client.post("/v1/windows", content=job.body)
            except httpx.HTTPError as err:
                wait = self._after_transport_error(err, attempts, job.what)
            else:
                outcome = self._outcome(response, job, attempts)
                if not isinstance(outcome, float):
                    return outcome
                wait = outcome
            await asyncio.sleep(wait)

    async def _estimate_async(self, loop: _Loop, jobs: list[_Job]) -> Poses:
        """All windows of one call, each holding an in-flight slot for all its tries; the first
        failure (in window order) cancels the rest."""

        async def one(job: _Job) -> list[FramePoses]:
            async with loop.slots:
                return await self._send_async(loop.client, job)

        tasks = [asyncio.ensure_future(one(job)) for job in jobs]
        if not tasks:
            return []
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()  # no-op for finished ones; stops the rest if this call was cancelled
        for task in tasks:
            if task in done and task.exception() is not None:
                await asyncio.gather(*pending, return_exceptions=True)
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]

    def _after_transport_error(self, err: httpx.HTTPError, attempts: _Attempts, what: str) -> float:
        if not _retryable(err):
            raise EstimatorError(f"inference server {self._server} failed on {what}: {_describe(err)}")
        return attempts.wait_after(_describe(err))

    def _outcome(self, response: httpx.Response, job: _Job, attempts: _Attempts) -> list[FramePoses] | float:
        """The poses of a 200, the wait before the next try, or an EstimatorError."""
        status = response.status_code
        if status == 200:
            return self._poses(response.content, job)
        message, where = _error_body(response)
        if status in RETRY_STATUSES:
            return attempts.wait_after(
                f"{status} {message}", retry_after_s(response.headers.get("retry-after"))
            )
        hint = f" (check --token-file or {TOKEN_ENV})" if status in (401, 403) else ""
        raise EstimatorError(
            f"inference server {self._server} refused {job.what} ({status}): {message}{hint}", field=where
        )

    def _poses(self, body: bytes, job: _Job) -> list[FramePoses]:
        try:
            poses = decode_poses(body, job.window_id)
        except WireError as err:
            raise EstimatorError(
                f"inference server {self._server} sent a bad reply for {job.what}: {err.message}",
                field=err.field,
            ) from None
        if [p.stamp_ns for p in poses] != [f.stamp_ns for f in job.window.frames]:
            raise EstimatorError(
                f"inference server {self._server} answered {job.what} with the poses of other frames "
                f"({len(poses)} poses for {len(job.window.frames)} frames)"
            )
        return poses

    def _fetch_info(self) -> EstimatorInfo:
        """`GET /v1/info`: busy or warming-up answers are retried within the retry budget; an
        unreachable server is an error at once (a typo in --server should not wait minutes)."""
        attempts = self._attempts("GET /v1/info")
        while True:
            try:
                response = self._client.get("/v1/info")
            except httpx.HTTPError as err:
                raise ServerUnreachable(
                    f"cannot reach the inference server at {self._server}: {_describe(err)}"
                ) from None
            status = response.status_code
            message, _ = _error_body(response)
            if status == 200:
                info = _parse_info(response, self._server)
                if info is not None:
                    return info
                status, message = 503, "the server is warming up"
            elif status not in RETRY_STATUSES:
                hint = f" (check --token-file or {TOKEN_ENV})" if status in (401, 403) else ""
                raise InputError(
                    f"the inference server at {self._server} refused GET /v1/info ({status}): {message}{hint}"
                )
            try:
                wait = attempts.wait_after(
                    f"{status} {message}", retry_after_s(response.headers.get("retry-after"))
                )
            except EstimatorError as err:
                raise InputError(err.message) from None
            time.sleep(wait)

    def _started_loop(self) -> _Loop:
        with self._lock:
            self._check_open()
            if self._loop is None:
                client = httpx.AsyncClient(
                    base_url=self._server,
                    headers=self._headers,
                    timeout=self._timeout,
                    verify=self._verify,
                    limits=httpx.Limits(max_connections=self.max_in_flight),
                )
                self._loop = _Loop(client, self.max_in_flight)
            return self._loop


def _verify(options: RemoteOptions) -> ssl.SSLContext | bool:
    """TLS certificates are checked always: against the system's CAs, or `ca_file` when given."""
    if options.ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=options.ca_file)
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"cannot use it as a CA file: {reason}", source=options.ca_file) from None


def _parse_info(response: httpx.Response, server: str) -> EstimatorInfo | None:
    """The server estimator's EstimatorInfo, its provenance extended by where it runs; None while
    the server is still loading it (`"ready": false`)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("estimator", 0), (dict, type(None))):
        raise InputError(f"{server} does not answer GET /v1/info as a vidihand inference server")
    versions: dict[str, Any] = data["versions"] if isinstance(data.get("versions"), dict) else {}
    wire = data.get("wire", versions.get("wire"))
    if wire != WIRE_VERSION:
        raise InputError(
            f"the inference server at {server} speaks wire version {wire!r}, this client "
            f"{WIRE_VERSION}; install matching versions of vidihand_ros"
        )
    estimator: dict[str, Any] | None = data.get("estimator")
    if estimator is None or data.get("ready") is False:
        return None

    def text(name: str) -> str:
        value = estimator.get(name, "")
        if not isinstance(value, str):
            raise InputError(f"{server}: GET /v1/info gave a non-string estimator.{name}")
        return value

    def length(name: str) -> int | None:
        value = estimator.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
            raise InputError(f"{server}: GET /v1/info gave estimator.{name} = {value!r}, not a frame count")
        return value

    options = estimator.get("options") or {}
    if not isinstance(options, dict):
        raise InputError(f"{server}: GET /v1/info gave non-map estimator.options")
    software = data.get("software", versions.get("software"))
    return EstimatorInfo(
        name=text("name"),
        version=text("version"),
        checkpoint_sha256=text("checkpoint_sha256"),
        options={
            **options,
            "server": server,
            "server_software": software if isinstance(software, str) else "",
        },
        window=length("window"),
        stride=length("stride"),
        stateful=estimator.get("stateful") is True,
    )


class _Loop:
    """An asyncio loop on a daemon thread, with the AsyncClient and in-flight slots it serves."""

    def __init__(self, client: httpx.AsyncClient, max_in_flight: int) -> None:
        self.client = client
        self.slots = asyncio.Semaphore(max_in_flight)  # FIFO: windows start in submission order
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vidihand-remote", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> Future[_T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Cancel every call still running, close the connections, end the thread."""

        async def shutdown() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.aclose()

        try:
            self.run(shutdown()).result(timeout=timeout_s)
        except Exception as err:  # a stuck connection must not keep the caller from exiting
            log.debug("closing the remote estimator's connections: %s", err)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=timeout_s)
            if not self._thread.is_alive():
                self._loop.close()


def create(**options: str) -> RemoteEstimator:
    """Factory for the registry (`--estimator remote --server URL [--token-file F]`)."""
    return RemoteEstimator(RemoteOptions.parse(options))
