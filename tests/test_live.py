"""LiveStream: a live source's frames never wait; drops are oldest-first and counted; errors recover."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from tests.estimators import StampEstimator, expected_pose
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.asynchronous import as_async
from vidihand_ros.live import LiveStream
from vidihand_ros.stream import Pair, PoseStream
from vidihand_ros.types import Frame, FramePoses, Window

FPS = 30


def frame(i: int) -> Frame:
    return Frame(
        stamp_ns=1_000_000_000 + i * 1_000_000_000 // FPS,
        frame_id="cam",
        encoding="rgb8",
        width=4,
        height=4,
        pixels=np.zeros((4, 4, 3), np.uint8),
        index=i,
    )


class Collected:
    def __init__(self) -> None:
        self.pairs: list[Pair] = []
        self.lock = threading.Lock()

    def __call__(self, pairs: list[Pair]) -> None:
        with self.lock:
            self.pairs.extend(pairs)

    @property
    def indices(self) -> list[int]:
        with self.lock:
            return [f.index for f, _ in self.pairs]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.indices) < count and time.monotonic() < deadline:
            time.sleep(0.005)


class SlowEstimator(StampEstimator):
    """StampEstimator that takes `delay_s` per call, fails while `failing` is set, or blocks on `gate`."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.failing = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        self.gate.wait()
        time.sleep(self.delay_s)
        if self.failing.is_set():
            raise InputError("server went away")
        return super().estimate(windows)


def live_stream(
    estimator: StampEstimator, deliver: Callable[[list[Pair]], None], window: int, stride: int, **kwargs: Any
) -> LiveStream:
    submitter = as_async(estimator, threaded=True)

    def make(on_result: Callable[[], None]) -> PoseStream:
        return PoseStream(submitter, window=window, stride=stride, on_result=on_result, timeout_s=5.0)

    return LiveStream(make, deliver, **kwargs)


def test_every_frame_once_in_order_with_its_estimate() -> None:
    out = Collected()
    live = live_stream(StampEstimator(), out, window=8, stride=4, max_queued_windows=16)
    for i in range(50):
        live.offer(frame(i))
    stats = live.close()
    assert out.indices == list(range(50))
    for f, poses in out.pairs:
        assert poses is not None and poses.stamp_ns == f.stamp_ns
        assert poses.left is not None
        np.testing.assert_array_equal(poses.left.joints_3d, expected_pose(f.stamp_ns, "left").joints_3d)
    assert (stats.received, stats.delivered, stats.dropped_frames, stats.dropped_windows) == (50, 50, 0, 0)
    assert len(stats.latencies_s) == 50 and stats.estimator_ok


def test_a_finished_window_is_delivered_without_waiting_for_more_frames() -> None:
    """The estimate's arrival wakes the worker: no later frame, no timer, no close needed."""
    out = Collected()
    live = live_stream(SlowEstimator(delay_s=0.05), out, window=4, stride=4)
    for i in range(4):
        live.offer(frame(i))
    out.wait_for(4, timeout_s=5.0)
    assert out.indices == [0, 1, 2, 3]
    live.close()


def test_behind_drops_oldest_first_counts_and_stays_bounded() -> None:
    out = Collected()
    estimator = SlowEstimator(delay_s=0.03)  # 4-frame windows at ~130 frames/s offered: behind
    live = live_stream(estimator, out, window=4, stride=4, max_queued_windows=2)
    queued = []
    for i in range(300):
        live.offer(frame(i))
        queued.append(live.stats().queued)
        time.sleep(0.0075)
    stats = live.close()
    assert max(queued) <= live.max_queued_frames == 8
    assert stats.dropped_windows > 0 and stats.dropped_frames >= 4 * (stats.dropped_windows - 1)
    assert stats.delivered + stats.dropped_frames == stats.received == 300
    indices = out.indices
    assert indices == sorted(set(indices)), "each frame once, in order"
    assert indices[-1] == 299, "the newest frames are kept, the oldest dropped"
    for f, poses in out.pairs:  # stitching never mixed frames across a hole
        assert poses is not None and poses.stamp_ns == f.stamp_ns


def test_estimator_failure_drops_that_stream_and_recovers() -> None:
    out = Collected()
    estimator = SlowEstimator()
    live = live_stream(estimator, out, window=4, stride=4)
    for i in range(8):
        live.offer(frame(i))
    out.wait_for(8)
    estimator.failing.set()
    for i in range(8, 16):
        live.offer(frame(i))
    deadline = time.monotonic() + 5
    while live.stats().estimator_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    failed = live.stats()
    assert failed.estimator_errors >= 1 and not failed.estimator_ok
    assert "server went away" in (failed.last_error or "")
    estimator.failing.clear()
    for i in range(16, 40):
        live.offer(frame(i))
    stats = live.close()
    assert stats.estimator_ok, "frames came out again after the error"
    assert stats.delivered + stats.dropped_frames == stats.received == 40
    assert out.indices[:8] == list(range(8)) and out.indices[-1] == 39


def test_close_gives_up_on_a_stuck_estimator_and_counts_what_it_held() -> None:
    out = Collected()
    estimator = SlowEstimator()
    estimator.gate.clear()  # never answers
    live = live_stream(estimator, out, window=4, stride=4)
    for i in range(10):
        live.offer(frame(i))
    started = time.monotonic()
    stats = live.close(timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    assert stats.delivered == 0 and stats.dropped_frames == 10
    estimator.gate.set()  # the estimator answers after all: nothing more is delivered or counted
    time.sleep(0.5)
    after = live.stats()
    assert out.indices == [] and (after.delivered, after.dropped_frames) == (0, 10)


def test_offer_never_waits_for_the_estimator() -> None:
    estimator = SlowEstimator()
    estimator.gate.clear()
    live = live_stream(estimator, Collected(), window=4, stride=4, max_queued_windows=1)

    def offer_all() -> None:
        for i in range(1000):
            live.offer(frame(i))

    offering = threading.Thread(target=offer_all)
    offering.start()
    offering.join(10.0)  # the estimator never answers: an offer that waited would hang here
    assert not offering.is_alive()
    stats = live.stats()
    assert stats.queued <= 4 and stats.received == 1000 and stats.dropped_frames >= 1000 - 4 - 4
    estimator.gate.set()
    live.close()


@pytest.mark.parametrize("max_queued_windows", [0, -1])
def test_refuses_an_empty_queue(max_queued_windows: int) -> None:
    with pytest.raises(ValueError, match="max_queued_windows"):
        live_stream(StampEstimator(), Collected(), window=4, stride=4, max_queued_windows=max_queued_windows)


def test_frames_held_for_a_window_that_never_fills_go_out_once_the_source_is_idle() -> None:
    """A stopped camera or an ended bag: the held frames are estimated after `idle_s`, no close."""
    out = Collected()
    live = live_stream(StampEstimator(), out, window=8, stride=4, idle_s=0.2, max_queued_windows=16)
    for i in range(10):
        live.offer(frame(i))
    out.wait_for(10, timeout_s=5.0)
    assert out.indices == list(range(10))
    for i in range(10, 14):  # the source resumes: a new segment, nothing lost or repeated
        live.offer(frame(i))
    live.close()
    assert out.indices == list(range(14))
