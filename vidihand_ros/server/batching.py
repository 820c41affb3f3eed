"""Windows from many clients → batches for the estimator, with a bounded queue and deadlines.

Each *lane* is one estimator process or thread that estimates one batch at a time: the server's own
estimator thread (`ThreadLane`) or a worker process (`workers.ProcessLane`). A window waits in its
lane's queue until the lane is free; then up to `max_batch` queued windows go in one call, the first
having waited at most `max_wait_s` for company, and only while other requests are arriving, so a
GPU gets full batches under load and a lone client pays no wait at all. Past `queue` windows
waiting in all, a request is refused (429) at once rather than queued into a deadline it cannot
meet. A stateful estimator's stream always goes to the same lane (its instance lives there, its
windows stay in order); a stateless one's window goes to the least busy lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.server.decoding import FrameDecoder
from vidihand_ros.server.errors import Failure, Outcome, busy, deadline_exceeded, not_ready, worker_lost
from vidihand_ros.server.runner import EstimatorSpec, Job, WindowRunner
from vidihand_ros.server.settings import ServerSettings

__all__ = ["Batcher", "Lane", "LaneLost", "Pending", "ThreadLane"]

log = logging.getLogger(__name__)

#: Called with (windows, frames) of each batch handed to an estimator (the metrics).
BatchObserver = Callable[[int, int], None]


class LaneLost(Exception):
    """The lane's process stopped while estimating: the batch's windows get 503 + Retry-After."""


class Lane(Protocol):
    """One estimator (thread or process) that estimates one batch at a time."""

    async def start(self) -> EstimatorInfo: ...

    async def run(self, jobs: Sequence[Job]) -> list[Outcome]: ...

    async def stop(self) -> None: ...


class ThreadLane:
    """The estimator in the server process, on one thread of its own (off the event loop)."""

    def __init__(self, spec: EstimatorSpec, *, max_streams: int, decoder: FrameDecoder | None = None):
        self.spec = spec
        self.max_streams = max_streams
        self.decoder = decoder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidihand-estimator")
        self._runner: WindowRunner | None = None

    async def start(self) -> EstimatorInfo:
        loop = asyncio.get_running_loop()
        self._runner = await loop.run_in_executor(self._pool, self._build)
        return self._runner.info

    def _build(self) -> WindowRunner:
        runner = WindowRunner(self.spec, max_streams=self.max_streams, decoder=self.decoder)
        runner.warm_up()
        return runner

    async def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        assert self._runner is not None, "run before start"
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._runner.run, list(jobs))

    async def stop(self) -> None:
        runner = self._runner
        if runner is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, runner.close)
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(eq=False)
class Pending:
    """A window waiting for its lane, and the future its request awaits."""

    job: Job
    future: asyncio.Future[Outcome]
    deadline: float
    lane: int = 0
    frames: int = field(default=0)


class Batcher:
    """Queues windows per lane and feeds each lane batches; `submit` never blocks."""

    def __init__(
        self,
        lanes: Sequence[Lane],
        settings: ServerSettings,
        on_batch: BatchObserver | None = None,
    ) -> None:
        if not lanes:
            raise ValueError("a Batcher needs at least one lane")
        self.lanes = list(lanes)
        self.settings = settings
        self.on_batch = on_batch
        self.info: EstimatorInfo | None = None
        self.ready = False
        self.failed: str | None = None
        self._queues: list[deque[Pending]] = [deque() for _ in self.lanes]
        self._wakeup: list[asyncio.Event] = []
        self._busy = [0] * len(self.lanes)
        self._tasks: list[asyncio.Task[None]] = []
        #: Requests being read and checked now (the app counts them): a batch waits for company
        #: only while some are, so a lone client pays no batching wait.
        self.arriving = 0

    # ------------------------------------------------------------------------------------------
    # Life cycle

    async def start(self) -> None:
        """Build and warm up every lane's estimator, then start dispatching (ready)."""
        try:
            infos = await asyncio.gather(*(lane.start() for lane in self.lanes))
        except Exception as err:
            self.failed = str(err) or type(err).__name__
            log.error("the estimator did not start: %s", self.failed)
            raise
        self.info = infos[0]
        self._wakeup = [asyncio.Event() for _ in self.lanes]
        self._tasks = [asyncio.create_task(self._dispatch(i)) for i in range(len(self.lanes))]
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for queue in self._queues:
            while queue:
                pending = queue.popleft()
                if not pending.future.done():
                    pending.future.set_result(not_ready(self.settings.retry_after_s))
        await asyncio.gather(*(lane.stop() for lane in self.lanes), return_exceptions=True)

    # ------------------------------------------------------------------------------------------
    # Requests

    def depth(self) -> int:
        """Windows queued, not yet handed to an estimator."""
        return sum(len(q) for q in self._queues)

    def submit(self, job: Job, deadline: float) -> Pending | Failure:
        """Queue `job` (deadline on the loop's clock); a Failure when it cannot be queued now."""
        retry = self.settings.retry_after_s
        if not self.ready:
            return not_ready(retry)
        if self.depth() >= self.settings.batch.queue:
            return busy(retry)
        lane = self._lane_for(job.stream_id)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        pending = Pending(job, future, deadline, lane, frames=len(job.window.frames))
        self._queues[lane].append(pending)
        self._wakeup[lane].set()
        return pending

    def withdraw(self, pending: Pending) -> None:
        """Drop a window whose request gave up (deadline), if it is still queued."""
        with contextlib.suppress(ValueError):  # else it is being estimated: its result is dropped
            self._queues[pending.lane].remove(pending)
        if not pending.future.done():
            pending.future.cancel()

    def _lane_for(self, stream_id: str) -> int:
        if len(self.lanes) == 1:
            return 0
        if self.info is not None and self.info.stateful:
            return zlib.crc32(stream_id.encode()) % len(self.lanes)
        return min(range(len(self.lanes)), key=lambda i: (len(self._queues[i]) + self._busy[i], i))

    # ------------------------------------------------------------------------------------------
    # Dispatching

    async def _dispatch(self, index: int) -> None:
        while True:
            batch = await self._next_batch(index)
            loop = asyncio.get_running_loop()
            live: list[Pending] = []
            for pending in batch:
                if pending.future.done():
                    continue
                if pending.deadline <= loop.time():
                    pending.future.set_result(deadline_exceeded(self.settings.deadline_s))
                    continue
                live.append(pending)
            if not live:
                continue
            if self.on_batch is not None:
                self.on_batch(len(live), sum(p.frames for p in live))
            self._busy[index] = len(live)
            try:
                outcomes = await self.lanes[index].run([p.job for p in live])
            except LaneLost:
                outcomes = [worker_lost(self.settings.retry_after_s)] * len(live)
            except Exception:
                log.exception("lane %d failed a batch", index)
                outcomes = [Failure(500, "the estimator failed on this batch")] * len(live)
            finally:
                self._busy[index] = 0
            for pending, outcome in zip(live, outcomes, strict=True):
                if not pending.future.done():
                    pending.future.set_result(outcome)

    async def _next_batch(self, index: int) -> list[Pending]:
        queue, wakeup = self._queues[index], self._wakeup[index]
        while not queue:
            wakeup.clear()
            await wakeup.wait()
        loop = asyncio.get_running_loop()
        batch = [queue.popleft()]
        end = loop.time() + self.settings.batch.max_wait_s
        while len(batch) < self.settings.batch.max_batch:
            if queue:
                batch.append(queue.popleft())
                continue
            remaining = end - loop.time()
            if remaining <= 0 or self.arriving == 0:
                break  # nothing else on its way: a lone client does not wait for company
            wakeup.clear()
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch
