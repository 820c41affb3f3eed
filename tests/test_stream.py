"""PoseStream: order and exactly-once (also when calls finish out of order), errors with stamps,
back-pressure, bounded memory, frames-only, the estimator's own window."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np
import pytest

from tests.estimators import StampEstimator, expected_pose
from vidihand_ros.errors import EstimatorError, InputError
from vidihand_ros.estimators.asynchronous import ThreadedSubmit
from vidihand_ros.estimators.base import AsyncPoseEstimator, EstimatorInfo
from vidihand_ros.stream import EstimatorFailure, Pair, PoseStream
from vidihand_ros.types import Frame, FramePoses, Window

STEP_NS = 33_000_000
T0 = 1_700_000_000 * 1_000_000_000


def frames(n: int, *, gap_after: int | None = None) -> list[Frame]:
    stamps = [
        T0 + i * STEP_NS + (2 * 10**9 if gap_after is not None and i > gap_after else 0) for i in range(n)
    ]
    return [
        Frame(stamp_ns=s, frame_id="cam", encoding="jpeg", width=1, height=1, data=b"", index=i)
        for i, s in enumerate(stamps)
    ]


def run(stream: PoseStream, items: list[Frame]) -> list[Pair]:
    out: list[Pair] = []
    for frame in items:
        out.extend(stream.push(frame))
    return out + stream.flush()


def assert_exact(out: list[Pair], items: list[Frame]) -> None:
    """Every frame once, in order, with the estimate the stamp estimator gives it."""
    assert [f.index for f, _ in out] == [f.index for f in items]
    for frame, poses in out:
        assert poses is not None and poses.stamp_ns == frame.stamp_ns
        for side in ("left", "right"):
            hand = poses.hand(side)
            assert hand is not None
            np.testing.assert_allclose(
                hand.joints_3d, expected_pose(frame.stamp_ns, side).joints_3d, atol=1e-6
            )


class ManualEstimator:
    """AsyncPoseEstimator whose futures the test completes by hand, in any order (test double)."""

    def __init__(self, window: int | None = None) -> None:
        self.window = window
        self.calls: list[tuple[list[Window], Future[list[list[FramePoses]]]]] = []

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo("manual", window=self.window)

    def submit(self, windows: Sequence[Window]) -> Future[list[list[FramePoses]]]:
        future: Future[list[list[FramePoses]]] = Future()
        self.calls.append((list(windows), future))
        return future

    def complete(self, k: int) -> None:
        windows, future = self.calls[k]
        future.set_result(StampEstimator().estimate(windows))

    def complete_all(self) -> None:
        for k, (_, future) in enumerate(self.calls):
            if not future.done():
                self.complete(k)

    def close(self) -> None:
        pass


def test_manual_estimator_is_the_async_form() -> None:
    assert isinstance(ManualEstimator(), AsyncPoseEstimator)


@pytest.mark.parametrize(("window", "stride", "batch"), [(8, None, 1), (8, 3, 1), (5, 2, 3), (1, None, 4)])
def test_every_frame_once_in_order_with_its_stitched_estimate(
    window: int, stride: int | None, batch: int
) -> None:
    items = frames(53, gap_after=20)
    estimator = StampEstimator()
    stream = PoseStream(estimator, window=window, stride=stride, batch_windows=batch)
    assert_exact(run(stream, items), items)
    assert max(estimator.calls) <= batch


def test_out_of_order_completion_is_restored_to_frame_order() -> None:
    items = frames(40)
    estimator = ManualEstimator()
    stream = PoseStream(estimator, window=8, stride=4, max_in_flight=10)
    out: list[Pair] = []
    for frame in items:
        out.extend(stream.push(frame))
    assert out == [] and stream.in_flight == len(estimator.calls) == 9
    for k in reversed(range(1, 9)):  # every call but the oldest finishes: nothing can be emitted
        estimator.complete(k)
        assert stream.poll() == []
    estimator.complete(0)
    out.extend(stream.poll())
    assert [f.index for f, _ in out] == list(range(36))  # the last window may still be overlapped
    flush_thread = threading.Timer(0.05, estimator.complete_all)
    flush_thread.start()
    tail = stream.flush()  # waits for the padded tail window submitted by the flush itself
    flush_thread.join()
    assert_exact(out + tail, items)


def test_back_pressure_waits_for_the_oldest_call() -> None:
    items = frames(12)
    estimator = ManualEstimator()
    stream = PoseStream(estimator, window=4, max_in_flight=2)
    for frame in items[:8]:
        stream.push(frame)
    assert stream.in_flight == 2 and stream.saturated
    threading.Timer(0.05, lambda: estimator.complete(0)).start()
    started = time.monotonic()
    for frame in items[8:]:
        stream.push(frame)  # the third window has to wait until the first call is done
    assert time.monotonic() - started >= 0.04
    assert stream.in_flight == 2 and len(estimator.calls) == 3


class SlowEstimator(StampEstimator):
    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return super().estimate(windows)


def test_threaded_push_returns_while_the_window_is_estimated() -> None:
    items = frames(16)
    estimator = SlowEstimator(0.2)
    stream = PoseStream(estimator, window=8, threaded=True, max_in_flight=2)
    started = time.monotonic()
    early = [pair for frame in items for pair in stream.push(frame)]
    assert time.monotonic() - started < 0.15 and early == [] and stream.in_flight == 2
    out = early + stream.flush()
    stream.close()
    assert_exact(out, items)
    assert all(name.startswith("vidihand-estimator") for name in estimator.threads)


class FailingEstimator(StampEstimator):
    def __init__(self, fail_call: int, error: Exception) -> None:
        super().__init__()
        self.fail_call, self.error = fail_call, error

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        if len(self.calls) == self.fail_call:
            self.calls.append(len(windows))
            raise self.error
        return super().estimate(windows)


def test_an_estimator_error_names_the_windows_stamps() -> None:
    items = frames(30)
    stream = PoseStream(FailingEstimator(1, RuntimeError("CUDA out of memory")), window=10)
    out: list[Pair] = []
    with pytest.raises(EstimatorFailure) as caught:  # not an InputError: a bug keeps its traceback
        for frame in items:
            out.extend(stream.push(frame))
    assert not isinstance(caught.value, InputError)
    message = str(caught.value)
    assert f"frames 10..19 (stamps {items[10].stamp_ns}..{items[19].stamp_ns} ns)" in message
    assert "RuntimeError: CUDA out of memory" in message
    assert_exact(out, items[:10])  # what was finished before the failure was delivered


def test_frames_finished_before_a_failed_call_are_returned_before_the_error() -> None:
    items = frames(12)
    estimator = ManualEstimator()
    stream = PoseStream(estimator, window=4, max_in_flight=3)
    for frame in items:
        assert stream.push(frame) == []
    estimator.complete(0)
    estimator.calls[1][1].set_exception(ValueError("bad window"))
    estimator.complete(2)
    first = stream.poll()
    assert [f.index for f, _ in first] == [0, 1, 2, 3]
    with pytest.raises(EstimatorFailure, match=r"frames 4\.\.7 .*ValueError: bad window"):
        stream.poll()


class UnreachableServer(ManualEstimator):
    def submit(self, windows: Sequence[Window]) -> Future[list[list[FramePoses]]]:
        raise InputError("connection refused", source="http://127.0.0.1:9")


def test_an_error_raised_by_submit_itself_names_the_stamps_too() -> None:
    with pytest.raises(EstimatorError, match=r"127.0.0.1:9: estimator failed .*frames 0\.\.3 .*refused"):
        run(PoseStream(UnreachableServer(), window=4), frames(4))


def test_a_segment_that_windows_cover_exactly_is_emitted_when_the_gap_comes() -> None:
    items = frames(10, gap_after=5)  # segment 0: frames 0..5, covered by windows at 0 and 2
    stream = PoseStream(StampEstimator(), window=4, stride=2)
    emitted_at = {}
    for frame in items:
        for done, _ in stream.push(frame):
            emitted_at[done.index] = frame.index
    assert emitted_at[4] == emitted_at[5] == 6  # at the first frame after the gap, not later


def test_a_callers_threaded_estimator_survives_each_stream() -> None:
    estimator = ThreadedSubmit(StampEstimator())
    for _ in range(2):  # e.g. one stream per episode
        stream = PoseStream(estimator, window=4)
        items = frames(8)
        assert_exact(run(stream, items), items)
        stream.close()
    estimator.close()


def test_an_input_error_keeps_its_field_and_gains_the_stamps() -> None:
    error = InputError("the vidihand estimator needs intrinsics", index=0, field="K")
    with pytest.raises(EstimatorError) as caught:
        run(PoseStream(FailingEstimator(0, error), window=4), frames(6))
    assert caught.value.field == "K" and f"stamps {T0}..{T0 + 3 * STEP_NS} ns" in str(caught.value)


class ShortEstimator(StampEstimator):
    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        return [poses[:-1] for poses in super().estimate(windows)]


def test_wrong_result_counts_are_errors_not_silent_gaps() -> None:
    with pytest.raises(EstimatorFailure, match="3 poses for 4 frames"):
        run(PoseStream(ShortEstimator(), window=4), frames(8))


def test_a_silent_estimator_times_out_with_the_stamps() -> None:
    stream = PoseStream(ManualEstimator(), window=2, timeout_s=0.05)
    with pytest.raises(EstimatorError, match=r"frames 0\.\.1 .*no answer within 0.05 s"):
        run(stream, frames(2))


def test_memory_is_bounded_by_the_window_buffer_and_calls_in_flight() -> None:
    window, stride, batch, in_flight = 16, 8, 2, 3
    estimator = ManualEstimator()
    stream = PoseStream(estimator, window=window, stride=stride, batch_windows=batch, max_in_flight=in_flight)
    bound = window * (2 + batch * (in_flight + 1))
    held, emitted, completed = [], 0, 0
    for frame in frames(5000):
        # Complete calls lazily, oldest last, as a slow remote server might.
        if len(estimator.calls) - completed >= in_flight:
            for k in reversed(range(completed, len(estimator.calls))):
                estimator.complete(k)
            completed = len(estimator.calls)
        emitted += len(stream.push(frame))
        held.append(stream.frames_held)
    assert max(held) <= bound
    assert max(held[2500:]) == max(held[:2500])  # flat, not growing with the stream
    estimator.complete_all()
    threading.Timer(0.05, estimator.complete_all).start()  # the padded tail the flush submits
    assert emitted + len(stream.flush()) == 5000


def test_frames_only_passes_each_frame_straight_through() -> None:
    items = frames(5)
    stream = PoseStream(None)
    assert [stream.push(f) for f in items] == [[(f, None)] for f in items]
    assert stream.flush() == [] and stream.frames_held == 0


def test_the_window_defaults_to_the_estimators_own() -> None:
    assert PoseStream(ManualEstimator(window=9)).window == 9
    assert PoseStream(ManualEstimator(window=9), window=5).window == 5
    assert PoseStream(ManualEstimator()).window == 81
    with pytest.raises(InputError, match="stride"):
        PoseStream(ManualEstimator(), window=4, stride=5)
