"""Estimating a batch of windows in one process: the estimator(s), isolation, and the reply bytes.

The same code runs on the server's estimator thread and inside each worker process, so both paths
behave alike. A stateless estimator (the ViDiHand model) is one shared instance, and a batch is one
`estimate` call across streams (a full GPU batch). A stateful one (MediaPipe: tracking and smoothing
carry across a stream's windows) gets one instance per stream, least recently used closed past
`max_streams`, and each stream's windows go to its own instance in arrival order. A batch that
fails is retried window by window, so one client's bad window never fails, or answers for, another's.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import AnyPoseEstimator, EstimatorInfo, PoseEstimator
from vidihand_ros.estimators.spec import EstimatorSpec
from vidihand_ros.server.decoding import FrameDecoder, cpu_decoder
from vidihand_ros.server.errors import Failure, Outcome
from vidihand_ros.types import CameraModel, Frame, FramePoses, Window
from vidihand_ros.wire import encode_poses

__all__ = ["EstimatorSpec", "Job", "WindowRunner", "warmup_window"]

log = logging.getLogger(__name__)

#: The stream id of the warm-up window (no client's id: ids are checked text, this has a NUL).
WARMUP_STREAM = "\x00warmup"


@dataclass
class Job:
    """One window to estimate, as the request gave it."""

    stream_id: str
    window_id: str
    window: Window
    #: The request body it came in (what a worker process is sent, to decode itself).
    body: bytes = b""


def _estimate(estimator: AnyPoseEstimator, windows: Sequence[Window]) -> list[list[FramePoses]]:
    if isinstance(estimator, PoseEstimator):
        return estimator.estimate(windows)
    return estimator.submit(windows).result()


def warmup_window(frames: int | None) -> Window:
    """A tiny synthetic window (grey 64×48, calibrated) that exercises the whole estimator once."""
    camera = CameraModel.from_fxfycxcy(60.0, 60.0, 31.5, 23.5, width=64, height=48)
    pixels = np.full((48, 64, 3), 128, np.uint8)
    n = max(1, frames or 2)
    return Window(
        frames=[
            Frame(
                1_000_000_000 + i * 33_333_333,
                "warmup",
                "rgb8",
                64,
                48,
                pixels=pixels,
                camera=camera,
                index=i,
            )
            for i in range(n)
        ],
        start=0,
        num_valid=n,
        segment=0,
    )


class WindowRunner:
    """Builds the estimator(s) of one process and estimates batches of jobs (not thread-safe: one
    caller at a time, as estimators are not assumed to be)."""

    def __init__(self, spec: EstimatorSpec, *, max_streams: int = 64, decoder: FrameDecoder | None = None):
        self.spec = spec
        self.max_streams = max_streams
        self.decoder = decoder or cpu_decoder()
        first = spec.build_required()
        self.info: EstimatorInfo = first.info
        #: The one instance of a stateless estimator; None for a stateful one (one per stream).
        self._shared: AnyPoseEstimator | None = None if self.info.stateful else first
        self._spare: AnyPoseEstimator | None = first if self.info.stateful else None
        self._streams: OrderedDict[str, AnyPoseEstimator] = OrderedDict()

    # ------------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """One synthetic window, so the first client does not pay for lazy initialisation."""
        outcome = self.run([Job(WARMUP_STREAM, "warmup", warmup_window(self.info.window))])[0]
        if isinstance(outcome, Failure):
            raise InputError(f"the estimator failed its warm-up window: {outcome.error}", field=outcome.field)
        if self.info.stateful:
            # The warm-up's state must not reach a client's stream: a fresh instance is the spare.
            self._forget(WARMUP_STREAM)
            self._spare = self.spec.build_required()

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Each job's reply body or failure, in the jobs' order."""
        if not jobs:
            return []
        self.decoder.prepare([job.window for job in jobs])
        if self._shared is not None:
            return self._isolated(self._shared, list(jobs))
        outcomes: list[Outcome | None] = [None] * len(jobs)
        by_stream: dict[str, list[int]] = {}
        for i, job in enumerate(jobs):
            by_stream.setdefault(job.stream_id, []).append(i)
        for stream_id, indices in by_stream.items():
            estimator = self._stream(stream_id)
            for i, outcome in zip(
                indices, self._isolated(estimator, [jobs[i] for i in indices]), strict=True
            ):
                outcomes[i] = outcome
        return [
            o if o is not None else Failure(500, "internal error: window not estimated") for o in outcomes
        ]

    def streams(self) -> int:
        """Streams with an estimator instance now (stateful estimators only)."""
        return len(self._streams)

    def close(self) -> None:
        everything = [self._shared, self._spare, *self._streams.values()]
        for estimator in {id(e): e for e in everything if e is not None}.values():
            try:
                estimator.close()
            except Exception:  # closing must not stop the others from closing
                log.exception("closing an estimator failed")
        self._streams.clear()
        self._shared = self._spare = None

    # ------------------------------------------------------------------------------------------

    def _isolated(self, estimator: AnyPoseEstimator, jobs: list[Job]) -> list[Outcome]:
        try:
            return self._estimate_all(estimator, jobs)
        except Exception as err:
            if len(jobs) == 1:
                return [self._failure(err, jobs[0])]
        # Window by window, so that only the window at fault fails.
        return [self._estimate_one(estimator, job) for job in jobs]

    def _estimate_one(self, estimator: AnyPoseEstimator, job: Job) -> Outcome:
        try:
            return self._estimate_all(estimator, [job])[0]
        except Exception as err:
            return self._failure(err, job)

    def _failure(self, err: Exception, job: Job) -> Failure:
        if isinstance(err, InputError):
            return Failure(422, err.message, err.field or "")
        log.error("estimator failed on window %r of stream %r", job.window_id, job.stream_id, exc_info=err)
        return Failure(500, f"the estimator failed on this window ({type(err).__name__})")

    def _estimate_all(self, estimator: AnyPoseEstimator, jobs: list[Job]) -> list[Outcome]:
        results = _estimate(estimator, [job.window for job in jobs])
        if len(results) != len(jobs):
            raise RuntimeError(f"estimator returned {len(results)} results for {len(jobs)} windows")
        outcomes: list[Outcome] = []
        for job, poses in zip(jobs, results, strict=True):
            if len(poses) != len(job.window.frames):
                raise RuntimeError(
                    f"estimator returned {len(poses)} poses for {len(job.window.frames)} frames"
                )
            outcomes.append(encode_poses(job.window_id, poses))
        return outcomes

    def _stream(self, stream_id: str) -> AnyPoseEstimator:
        estimator = self._streams.get(stream_id)
        if estimator is not None:
            self._streams.move_to_end(stream_id)
            return estimator
        while len(self._streams) >= self.max_streams:
            oldest = next(iter(self._streams))
            self._forget(oldest)
        if self._spare is not None:
            estimator, self._spare = self._spare, None
        else:
            estimator = self.spec.build_required()
        self._streams[stream_id] = estimator
        return estimator

    def _forget(self, stream_id: str) -> None:
        estimator = self._streams.pop(stream_id, None)
        if estimator is None:
            return
        try:
            estimator.close()
        except Exception:
            log.exception("closing stream %r's estimator failed", stream_id)
