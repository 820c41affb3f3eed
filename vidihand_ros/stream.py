"""PoseStream: frames in, `(frame, poses)` out, in frame order, each frame exactly once.

This is the one loop every front end runs (`vidihand convert`, the ROS node, the server client,
capture). It owns windowing (a stamp jump starts a new segment), batching windows into estimator
calls, a bounded number of calls in flight (futures may finish in any order; results are stitched
in window order) and the stitching of overlapping estimates. Memory is bounded by the Windower's
buffer, the batch being filled, the calls in flight and the Stitcher's pending frames, never by the
stream's length. Without an estimator (frames-only) every frame comes straight back with `None`.
Design notes: docs/streaming.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
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
Poses = list[list[FramePoses]]


class EstimatorFailure(RuntimeError):
    """The estimator raised something that is not about the input (a bug, CUDA out of memory…);
    the message names the window's stamps, the cause is chained."""


def resolve_window(
    estimator: AnyPoseEstimator | None, window: int | None, stride: int | None
) -> tuple[int, int]:
    """(window, stride): `window` None takes the estimator's own (`EstimatorInfo.window`), else 81;
    `stride` None is the estimator's own stride when the window is its own too, else the window
    (no overlap)."""
    info = estimator.info if estimator is not None else None
    if window is None and stride is None and info is not None and info.window:
        stride = info.stride
    window = window or (info.window if info else None) or DEFAULT_WINDOW
    if stride is not None and stride > window:
        raise InputError(f"--stride {stride} is larger than --window {window}: frames would be lost")
    try:
        return window, resolve_stride(window, stride)
    except ValueError as err:
        raise InputError(f"--window {window} / --stride {stride}: {err}") from None


@dataclass
class _Call:
    """One estimator call: its windows, in the Windower's order, and the future of their poses.

    A call without windows marks the end of a segment: once every earlier call is stitched, the
    segment's last frames need wait for no later window.
    """

    windows: list[Window]
    future: Future[Poses]


class PoseStream:
    """Windows → estimator → stitched per-frame poses, streaming.

    `threaded` runs a synchronous estimator on a worker thread, so `push` returns while a window
    is estimated (a live node); an estimator that has `submit` of its own (a remote client) is
    used as it is. `push` waits only when `max_in_flight` calls are outstanding (back-pressure),
    for at most `timeout_s`. `on_result` is called (on whichever thread finishes it) when a call's
    result arrives, so a live caller can `poll` at once instead of on a timer. After an error
    every frame stitched before it has been returned (the error comes on the next call); the
    stream is then finished: make a new one.
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
        on_result: Callable[[], None] | None = None,
    ) -> None:
        if batch_windows < 1 or max_in_flight < 1:
            raise ValueError("batch_windows and max_in_flight must be at least 1")
        self.window, self.stride = resolve_window(estimator, window, stride)
        self.batch_windows = batch_windows
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self._on_result = on_result
        self._estimator: AsyncPoseEstimator | None = None
        self._own_thread: ThreadedSubmit | None = None  # a worker this stream started, to stop
        if estimator is not None:
            self._estimator = as_async(estimator, threaded=threaded)
            if self._estimator is not estimator and isinstance(self._estimator, ThreadedSubmit):
                self._own_thread = self._estimator
        self._windower = Windower(self.window, self.stride, gap_ns=int(segment_gap_s * NS))
        self._stitcher = Stitcher(self.window, self.stride)
        self._batch: list[Window] = []
        self._calls: deque[_Call] = deque()
        self._ready: list[Pair] = []
        self._error: BaseException | None = None

    # -- the loop -----------------------------------------------------------------------------

    def push(self, frame: Frame) -> list[Pair]:
        """Add the next frame; return the frames finished so far (none to many, in order)."""
        if self._estimator is None:
            return [(frame, None)]
        self._raise_pending()
        segment = self._windower.segment
        windows = self._windower.push(frame)
        if self._windower.segment != segment and segment >= 0:  # the frame began a new segment
            ending = [w for w in windows if w.segment == segment]
            self._submit_safely(ending, final=True)
            self._calls.append(_Call([], _done([])))
            windows = windows[len(ending) :]
        self._submit_safely(windows, final=False)
        return self._collect(wait=False)

    def poll(self) -> list[Pair]:
        """The frames whose estimates have arrived since the last call, without adding a frame."""
        if self._estimator is None:
            return []
        self._raise_pending()
        return self._collect(wait=False)

    def break_segment(self) -> None:
        """End the current segment now, without waiting (a live caller dropped frames here).

        The segment's padded tail is submitted and its last frames become final once it is back;
        the next `push` starts a new segment, so no window spans the hole.
        """
        if self._estimator is None or self._windower.segment < 0:
            return
        self._raise_pending()
        self._submit_safely(self._windower.flush(), final=True)
        self._calls.append(_Call([], _done([])))

    def flush(self) -> list[Pair]:
        """End the stream: estimate the padded tail, wait for every call, return the rest.

        A later `push` starts a new segment. An error raises here, at the end of the stream.
        """
        if self._estimator is None:
            return []
        self._raise_pending()
        self._queue(self._windower.flush(), final=True)
        while self._calls:
            self._stitch_head()
        out, self._ready = self._ready, []
        return out + self._stitcher.flush()

    def close(self) -> None:
        """Stop a worker thread this stream started (the estimator itself belongs to the caller).

        Calls still queued on a worker thread are cancelled (after an error nobody waits for
        them); a remote client's calls are left to finish, its ordering is its own.
        """
        if isinstance(self._estimator, ThreadedSubmit):
            for call in self._calls:
                call.future.cancel()
        if self._own_thread is not None:
            self._own_thread.shutdown(wait=self._error is None)  # never join a stuck estimator

    # -- state --------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Estimator calls submitted and not yet stitched."""
        return sum(1 for call in self._calls if call.windows)

    @property
    def saturated(self) -> bool:
        """True when the next completed window would make `push` wait (a live caller may skip)."""
        return self.in_flight >= self.max_in_flight and not self._calls[0].future.done()

    @property
    def frames_held(self) -> int:
        """Distinct frames held anywhere in the stream now (for memory bounds)."""
        return len(self.held_frames())

    def held_frames(self) -> list[Frame]:
        """The distinct frames held anywhere in the stream now, not yet returned (e.g. to count
        what an error lost)."""
        windows = chain(self._batch, *(call.windows for call in self._calls))
        frames = chain(
            (f for w in windows for f in w.valid_frames),
            self._windower.buffered_frames,
            self._stitcher.pending_frames,
            (frame for frame, _ in self._ready),
        )
        return list({id(f): f for f in frames}.values())

    # -- internals ----------------------------------------------------------------------------

    def _submit_safely(self, windows: Sequence[Window], *, final: bool) -> None:
        """Queue windows; an error keeps what was stitched before it for the caller (see `_collect`)."""
        try:
            self._queue(windows, final=final)
        except BaseException as err:
            self._error = err

    def _queue(self, windows: Sequence[Window], *, final: bool) -> None:
        self._batch.extend(windows)
        while len(self._batch) >= self.batch_windows or (final and self._batch):
            while self.in_flight >= self.max_in_flight:
                self._stitch_head()  # back-pressure: the oldest call must finish first
            # the batch leaves self._batch only once submitted, so an error here leaves its frames
            # where `held_frames` sees them
            batch = self._batch[: self.batch_windows]
            assert self._estimator is not None
            try:
                future = self._estimator.submit(batch)
            except Exception as err:  # a remote client that cannot even send
                raise _failed(batch, err) from err
            del self._batch[: len(batch)]
            if self._on_result is not None:
                future.add_done_callback(self._result_arrived)
            self._calls.append(_Call(batch, future))

    def _result_arrived(self, _: Future[Poses]) -> None:
        assert self._on_result is not None
        self._on_result()

    def _collect(self, *, wait: bool) -> list[Pair]:
        """Stitch every finished call at the head (all of them when `wait`); return what is ready.

        If stitching fails, the frames finished before the failure are returned now and the
        error is raised by the next call, so no finished frame is ever lost.
        """
        if self._error is None:
            try:
                while self._calls and (wait or self._calls[0].future.done()):
                    self._stitch_head()
            except BaseException as err:
                self._error = err
        out, self._ready = self._ready, []
        if not out:
            self._raise_pending()
        return out

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _stitch_head(self) -> None:
        """Wait for the oldest call and stitch its windows (later calls may have finished first)."""
        call = self._calls[0]
        if not call.windows:  # end of a segment: its last frames are final
            self._calls.popleft()
            self._ready.extend(self._stitcher.flush())
            return
        results = self._result(call)
        self._calls.popleft()
        for window, poses in zip(call.windows, results, strict=True):
            self._ready.extend(self._stitcher.add(window, poses))

    def _result(self, call: _Call) -> Poses:
        try:
            results = call.future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise _failed(call.windows, f"no answer within {self.timeout_s} s") from None
        except Exception as err:
            raise _failed(call.windows, err) from err
        if len(results) != len(call.windows):
            raise _failed(
                call.windows, RuntimeError(f"{len(results)} results for {len(call.windows)} windows")
            )
        for window, poses in zip(call.windows, results, strict=True):
            if len(poses) != len(window.frames):
                raise _failed([window], RuntimeError(f"{len(poses)} poses for {len(window.frames)} frames"))
        return results


def _done(value: Poses) -> Future[Poses]:
    future: Future[Poses] = Future()
    future.set_result(value)
    return future


def _failed(windows: Sequence[Window], cause: BaseException | str) -> Exception:
    """An error naming the frames (message indices, stamps) of the failed windows.

    About the input (an `InputError` from the estimator, or no answer in time): an
    `EstimatorError`, which the CLI prints as one line. Anything else: an `EstimatorFailure`.
    """
    first, last = windows[0].valid_frames[0], windows[-1].valid_frames[-1]
    where = (
        f"estimator failed on the window(s) of frames {first.index}..{last.index} "
        f"(stamps {first.stamp_ns}..{last.stamp_ns} ns)"
    )
    if isinstance(cause, str):
        return EstimatorError(f"{where}: {cause}")
    if isinstance(cause, InputError):
        return EstimatorError(
            f"{where}: {cause.message}",
            source=cause.source,
            topic=cause.topic,
            index=cause.index,
            field=cause.field,
        )
    return EstimatorFailure(f"{where}: {type(cause).__name__}: {cause}")
