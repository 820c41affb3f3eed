"""Run a synchronous PoseEstimator in its future form, inline or on a worker thread.

Offline conversion gains nothing from a thread (the estimator is the bottleneck and the caller
waits anyway), so `InlineSubmit` runs `estimate` at once and hands back a finished future. A live
node must keep taking frames while a window is estimated, so `ThreadedSubmit` runs it on one
worker thread (estimators are not assumed to be thread-safe, so never more than one at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from vidihand_ros.estimators.base import AsyncPoseEstimator, EstimatorInfo, PoseEstimator
from vidihand_ros.types import FramePoses, Window

Result = list[list[FramePoses]]


class InlineSubmit:
    """`submit` = `estimate` now; errors are carried by the future, as a real async call's would be."""

    def __init__(self, estimator: PoseEstimator) -> None:
        self.estimator = estimator

    @property
    def info(self) -> EstimatorInfo:
        return self.estimator.info

    def submit(self, windows: Sequence[Window]) -> Future[Result]:
        future: Future[Result] = Future()
        try:
            future.set_result(self.estimator.estimate(windows))
        except Exception as err:
            future.set_exception(err)
        return future

    def close(self) -> None:
        self.estimator.close()


class ThreadedSubmit:
    """`estimate` on one worker thread; `close` waits for the window in progress, then closes."""

    def __init__(self, estimator: PoseEstimator) -> None:
        self.estimator = estimator
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidihand-estimator")

    @property
    def info(self) -> EstimatorInfo:
        return self.estimator.info

    def submit(self, windows: Sequence[Window]) -> Future[Result]:
        return self._pool.submit(self.estimator.estimate, list(windows))

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the worker thread, leaving the estimator open; `wait` for the call in progress."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def close(self) -> None:
        self.shutdown()
        self.estimator.close()


def as_async(estimator: PoseEstimator | AsyncPoseEstimator, *, threaded: bool = False) -> AsyncPoseEstimator:
    """The estimator's future form: its own `submit` if it has one, else an adapter."""
    if isinstance(estimator, AsyncPoseEstimator):
        return estimator
    return ThreadedSubmit(estimator) if threaded else InlineSubmit(estimator)
