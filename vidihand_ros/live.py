"""LiveStream: the PoseStream loop for a source that cannot wait (a camera topic, capture).

A live source hands frames in with `offer`, which never blocks: the loop itself (windows,
estimator, stitching) runs on one worker thread, and each finished `(frame, poses)` pair goes to
`deliver` as soon as its estimate is back (the PoseStream's `on_result` wakes the worker). When
the estimator falls behind, the frames waiting for the worker are dropped oldest-first, one
stride (a window's worth of new frames) at a time, and the stream starts a new segment there so
no window spans the hole. When the estimator fails (a server that stays away past its retries)
the frames the stream held are dropped, counted, and a fresh stream carries on, so the source
never stops. Memory is bounded by `max_queued_windows` strides plus the PoseStream's own bounds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from vidihand_ros.stream import Pair, PoseStream
from vidihand_ros.types import Frame

log = logging.getLogger(__name__)

#: Latencies kept for the statistics (a rolling window: memory stays bounded).
LATENCY_SAMPLES = 512


@dataclass
class LiveStats:
    """Counters since the start; read them with `LiveStream.stats()` (a consistent copy)."""

    received: int = 0
    delivered: int = 0
    dropped_frames: int = 0
    dropped_windows: int = 0
    estimator_errors: int = 0
    last_error: str | None = None
    #: calls of `deliver` that raised (a publisher that failed), and the last such error.
    deliver_errors: int = 0
    last_deliver_error: str | None = None
    #: time.monotonic() of the last error and of the last pair delivered (None: not yet).
    last_error_at: float | None = None
    last_delivered_at: float | None = None
    queued: int = 0
    in_flight: int = 0
    #: seconds from `offer` to `deliver`, for the most recent frames.
    latencies_s: list[float] = field(default_factory=list)

    @property
    def estimator_ok(self) -> bool:
        """No error, or frames delivered since the last one (the estimator recovered)."""
        if self.last_error_at is None:
            return True
        return self.last_delivered_at is not None and self.last_delivered_at > self.last_error_at


class LiveStream:
    """Frames in from any thread, never waiting; stitched pairs out on the worker thread.

    `make_stream` builds a PoseStream (again after an error); its `on_result` must not be set,
    this class sets it. `deliver` gets the pairs in frame order; an exception from it is logged
    and the pairs are counted as delivered (a publisher that fails must not stop the loop).
    """

    def __init__(
        self,
        make_stream: Callable[[Callable[[], None]], PoseStream],
        deliver: Callable[[list[Pair]], None],
        *,
        max_queued_windows: int = 2,
        idle_s: float | None = None,
    ) -> None:
        if max_queued_windows < 1:
            raise ValueError("max_queued_windows must be at least 1")
        #: With no frame for this long, the segment ends: its held frames are estimated and sent
        #: instead of waiting for frames that may never come (a camera stopped, a bag ended).
        self.idle_s = idle_s
        self._make_stream = make_stream
        self._deliver = deliver
        self._cond = threading.Condition()
        self._queue: deque[tuple[Frame, float]] = deque()
        self._offered_at: dict[int, float] = {}  # id(frame) → offer time, while the stream holds it
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._stats = LiveStats()
        self._woken = False
        self._break_pending = False
        self._stopping = False
        self._abandoned = False  # close() gave up on a stuck worker: it must not count or deliver
        self._last_offer = time.monotonic()
        self._idle_cut = True  # nothing held yet: nothing to cut
        self._stream = make_stream(self._wake)
        self.window, self.stride = self._stream.window, self._stream.stride
        self.max_queued_frames = max_queued_windows * self.stride
        self._thread = threading.Thread(target=self._run, name="vidihand-live", daemon=True)
        self._thread.start()

    # -- the source side ---------------------------------------------------------------------

    def offer(self, frame: Frame) -> None:
        """Queue a frame for the worker; drops the oldest stride of queued frames when full."""
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                return
            self._stats.received += 1
            if len(self._queue) >= self.max_queued_frames:
                for _ in range(min(self.stride, len(self._queue))):
                    self._queue.popleft()
                    self._stats.dropped_frames += 1
                self._stats.dropped_windows += 1
                self._break_pending = True
            self._queue.append((frame, now))
            self._last_offer = now
            self._cond.notify()

    def stats(self) -> LiveStats:
        with self._cond:
            copy = LiveStats(**{k: v for k, v in vars(self._stats).items() if k != "latencies_s"})
            copy.latencies_s = list(self._latencies)
            copy.queued = len(self._queue)
            return copy

    def close(self, timeout_s: float = 10.0) -> LiveStats:
        """Stop taking frames, finish what is queued and in flight within `timeout_s`; what could
        not be finished is counted as dropped. Returns the final statistics."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # the estimator is stuck: give up on what it holds
            with self._cond:
                self._abandoned = True
                lost = len(self._queue) + len(self._offered_at)
                self._queue.clear()
                self._offered_at.clear()
                self._stats.dropped_frames += lost
                self._stats.dropped_windows += -(-lost // self.stride)
            log.warning("live stream: %d frames not finished within %.1f s, dropped", lost, timeout_s)
        return self.stats()

    @property
    def finished(self) -> bool:
        """True once the worker has stopped (False after a `close` that gave up on it)."""
        return not self._thread.is_alive()

    # -- the worker --------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._queue or self._woken or self._stopping or self._idle()):
                    self._cond.wait(self._until_idle())
                self._woken = False
                item = self._queue.popleft() if self._queue else None
                cut = self._break_pending and item is not None
                self._break_pending = self._break_pending and not cut
                finishing = self._stopping and item is None
                idle = item is None and not finishing and self._idle()
                self._idle_cut = (self._idle_cut or idle) and item is None
            if self._abandoned:
                return
            if item is not None:
                frame, offered = item
                self._offered_at[id(frame)] = offered
                self._step(partial(self._cut_then_push, frame, cut), frame)
            elif finishing:
                self._step(self._stream.flush, None)
                self._stream.close()
                return
            elif idle:
                self._step(self._cut_then_poll, None)
            else:
                self._step(self._stream.poll, None)

    def _idle(self) -> bool:
        """No frame for `idle_s` since the last one, whose segment is not cut yet (lock held)."""
        return self.idle_s is not None and not self._idle_cut and self._until_idle() == 0.0

    def _until_idle(self) -> float | None:
        """Seconds until the stream counts as idle; None: no idle cut to wait for (lock held)."""
        if self.idle_s is None or self._idle_cut:
            return None
        return max(0.0, self._last_offer + self.idle_s - time.monotonic())

    def _cut_then_poll(self) -> list[Pair]:
        self._stream.break_segment()
        return self._stream.poll()

    def _cut_then_push(self, frame: Frame, cut: bool) -> list[Pair]:
        if cut:
            self._stream.break_segment()
        return self._stream.push(frame)

    def _step(self, action: Callable[[], list[Pair]], frame: Frame | None) -> None:
        try:
            pairs = action()
        except Exception as err:  # the estimator or server failed: drop what it held, carry on
            self._restart(err, frame)
            return
        finally:
            with self._cond:
                self._stats.in_flight = self._stream.in_flight
        self._hand_out(pairs)

    def _hand_out(self, pairs: list[Pair]) -> None:
        if not pairs:
            return
        now = time.monotonic()
        with self._cond:
            if self._abandoned:  # close() has counted these frames as dropped already
                return
            for frame, _ in pairs:
                offered = self._offered_at.pop(id(frame), None)
                if offered is not None:
                    self._latencies.append(now - offered)
            self._stats.delivered += len(pairs)
            self._stats.last_delivered_at = now
        try:
            self._deliver(pairs)
        except Exception as err:
            log.exception("live stream: delivering %d frames failed", len(pairs))
            with self._cond:
                self._stats.deliver_errors += 1
                self._stats.last_deliver_error = f"{type(err).__name__}: {err}"

    def _restart(self, err: Exception, frame: Frame | None) -> None:
        lost = {id(f) for f in self._stream.held_frames()}
        if frame is not None:
            lost.add(id(frame))
        self._stream.close()
        message = f"{type(err).__name__}: {err}"
        log.warning("live stream: %s; %d frames dropped, starting a new stream", message, len(lost))
        with self._cond:
            if self._abandoned:
                return
            for key in lost:
                self._offered_at.pop(key, None)
            self._stats.dropped_frames += len(lost)
            self._stats.dropped_windows += max(1, -(-len(lost) // self.stride))
            self._stats.estimator_errors += 1
            self._stats.last_error = message
            self._stats.last_error_at = time.monotonic()
        self._stream = self._make_stream(self._wake)
