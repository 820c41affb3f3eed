"""PoseStream: frames in, `(frame, poses)` out, in frame order, each frame exactly once.

This is the one loop every front end runs (`vidihand convert`, the ROS node, the server client,
capture). It owns windowing (a stamp jump starts a new segment), batching windows into estimator
calls, a bounded number of calls in flight (futures may finish in any order; results are stitched
in window order) and the stitching of overlapping estimates. Memory is bounded by the Windower's
buffer, the batch being filled, the calls in flight and the Stitcher's pending frames, never by the
stream's length. Without an estimator (frames-only) every frame comes straight back with `None`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from itertools import chain

from vidihand_ros.errors import EstimatorError, InputError
from vidihand_ros.estimators.asynchronous import ThreadedSubmit, as_async
from vidihand_ros.estimators.base import AnyPoseEstimator, AsyncPoseEstimator
from vidihand_ros.stitching import Stitcher
from vidihand_ros.types import Frame, FramePoses, Window
from vidihand_ros.windowing import DEFAULT_WINDOW, Windower, resolve_stride

NS = 1_000_000_000

#: A frame and its stitched poses (None: frames-only, no estimate).
Pair = tuple[Frame, FramePoses | None]


@dataclass
class _Call:
    """One estimator call: its windows, in the Windower's order, and the future of their poses."""

    windows: list[Window]
    future: Future[list[list[FramePoses]]]


class PoseStream:
    """Windows → estimator → stitched per-frame poses, streaming.

    `window` None takes the estimator's own window (`EstimatorInfo.window`), else 81.
    `threaded` runs a synchronous estimator on a worker thread, so `push` returns while a window
    is estimated (a live node); an estimator that has `submit` of its own (a remote client) is
    used as it is. `push` waits only when `max_in_flight` calls are outstanding (back-pressure),
    for at most `timeout_s`. A stream that raised is finished: make a new one.
    """

    def __init__(
        self,
        estimator: AnyPoseEstimator | None,
        *,
        window: int | None = None,
        stride: int | None = None,
        segment_gap_s: float = 0.5,
        batch_windows: int = 1,
        max_in_flight: int = 1,
        threaded: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        if batch_windows < 1 or max_in_flight < 1:
            raise ValueError("batch_windows and max_in_flight must be at least 1")
        native = estimator.info.window if estimator is not None else None
        self.window = window or native or DEFAULT_WINDOW
        if stride is not None and stride > self.window:
            raise InputError(f"--stride {stride} is larger than --window {self.window}: frames would be lost")
        try:
            self.stride = resolve_stride(self.window, stride)
        except ValueError as err:
            raise InputError(f"--window {self.window} / --stride {stride}: {err}") from None
        self.batch_windows = batch_windows
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self._estimator: AsyncPoseEstimator | None = None
        if estimator is not None:
            self._estimator = as_async(estimator, threaded=threaded)
        self._windower = Windower(self.window, self.stride, gap_ns=int(segment_gap_s * NS))
        self._stitcher = Stitcher(self.window, self.stride)
        self._batch: list[Window] = []
        self._calls: deque[_Call] = deque()
        self._ready: list[Pair] = []

    # -- the loop -----------------------------------------------------------------------------

    def push(self, frame: Frame) -> list[Pair]:
        """Add the next frame; return the frames finished so far (none to many, in order)."""
        if self._estimator is None:
            return [(frame, None)]
        self._queue(self._windower.push(frame), final=False)
        return self._collect(wait=False)

    def poll(self) -> list[Pair]:
        """The frames whose estimates have arrived since the last call, without adding a frame."""
        return self._collect(wait=False) if self._estimator is not None else []

    def flush(self) -> list[Pair]:
        """End the stream: estimate the padded tail, wait for every call, return the rest.

        A later `push` starts a new segment.
        """
        if self._estimator is None:
            return []
        self._queue(self._windower.flush(), final=True)
        out = self._collect(wait=True)
        return out + self._stitcher.flush()

    def close(self) -> None:
        """Stop a worker thread this stream started (the estimator itself belongs to the caller)."""
        if isinstance(self._estimator, ThreadedSubmit):
            self._estimator.shutdown()

    # -- state --------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Estimator calls submitted and not yet stitched."""
        return len(self._calls)

    @property
    def saturated(self) -> bool:
        """True when the next completed window would make `push` wait (a live caller may skip)."""
        return len(self._calls) >= self.max_in_flight and not self._calls[0].future.done()

    @property
    def frames_held(self) -> int:
        """Distinct frames held anywhere in the stream now (for memory bounds)."""
        windows = chain(self._batch, *(call.windows for call in self._calls))
        held = {id(f) for w in windows for f in w.valid_frames}
        held.update(id(f) for f in self._windower.buffered_frames)
        held.update(id(f) for f in self._stitcher.pending_frames)
        held.update(id(frame) for frame, _ in self._ready)
        return len(held)

    # -- internals ----------------------------------------------------------------------------

    def _queue(self, windows: Sequence[Window], *, final: bool) -> None:
        self._batch.extend(windows)
        while len(self._batch) >= self.batch_windows or (final and self._batch):
            batch = self._batch[: self.batch_windows]
            del self._batch[: self.batch_windows]
            if len(self._calls) >= self.max_in_flight:
                self._stitch_head()  # back-pressure: the oldest call must finish first
            assert self._estimator is not None
            self._calls.append(_Call(batch, self._estimator.submit(batch)))

    def _collect(self, *, wait: bool) -> list[Pair]:
        while self._calls and (wait or self._calls[0].future.done()):
            self._stitch_head()
        out, self._ready = self._ready, []
        return out

    def _stitch_head(self) -> None:
        """Wait for the oldest call and stitch its windows (later calls may have finished first)."""
        call = self._calls[0]
        results = self._result(call)
        self._calls.popleft()
        for window, poses in zip(call.windows, results, strict=True):
            self._ready.extend(self._stitcher.add(window, poses))

    def _result(self, call: _Call) -> list[list[FramePoses]]:
        try:
            results = call.future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise _failed(call.windows, f"no answer within {self.timeout_s} s") from None
        except InputError as err:
            raise _failed(call.windows, err.message, err) from err
        except Exception as err:
            raise _failed(call.windows, f"{type(err).__name__}: {err}") from err
        if len(results) != len(call.windows):
            raise _failed(call.windows, f"returned {len(results)} results for {len(call.windows)} windows")
        for window, poses in zip(call.windows, results, strict=True):
            if len(poses) != len(window.frames):
                raise _failed([window], f"returned {len(poses)} poses for {len(window.frames)} frames")
        return results


def _failed(windows: Sequence[Window], message: str, cause: InputError | None = None) -> EstimatorError:
    """An error naming the frames (stream indices, message indices, stamps) of the failed windows."""
    first, last = windows[0].valid_frames[0], windows[-1].valid_frames[-1]
    where = (
        f"estimator failed on the window(s) of frames {first.index}..{last.index} "
        f"(stamps {first.stamp_ns}..{last.stamp_ns} ns)"
    )
    if cause is None:
        return EstimatorError(f"{where}: {message}")
    return EstimatorError(
        f"{where}: {message}", source=cause.source, topic=cause.topic, index=cause.index, field=cause.field
    )
