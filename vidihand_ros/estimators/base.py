"""The PoseEstimator interface: a window of frames in, one two-hand result per frame out.

The in-process ViDiHand model, the MediaPipe baseline and the remote-server client all implement
it, so the pipeline, the live node and the server never care which one they drive. It comes in
two forms: `estimate` (synchronous) and `submit` (a future, so a live node never blocks and a
remote client can keep several round trips in flight); `estimators.asynchronous` adapts the first
to the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from vidihand_ros.types import FramePoses, Window


@dataclass(frozen=True)
class EstimatorInfo:
    """What produced the poses; written into dataset provenance."""

    name: str
    version: str = ""
    #: sha256 of the checkpoint's weights, or "" when the estimator has none.
    checkpoint_sha256: str = ""
    options: dict[str, object] = field(default_factory=dict)
    #: The window length (frames) the estimator is built for; None when any length works. It is
    #: the default `--window`, so a model trained on 9-frame clips is run on 9-frame windows.
    window: int | None = None
    #: The stride that goes with `window` when neither is given (None: the window, no overlap).
    stride: int | None = None
    #: True when results depend on earlier windows of the same stream (tracking, smoothing
    #: context): a server then keeps one estimator per client stream instead of sharing one.
    stateful: bool = False

    def as_attrs(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "checkpoint_sha256": self.checkpoint_sha256,
            "options": dict(self.options),
            "window": self.window,
            "stride": self.stride,
            "stateful": self.stateful,
        }


@runtime_checkable
class PoseEstimator(Protocol):
    """Estimates both hands for every frame of each window.

    `estimate` takes a batch of windows (estimators batch on the GPU or over the wire) and returns,
    for each window, one FramePoses per frame *including* padding frames, each carrying the stamp
    and frame_id of its frame. Padding results are discarded by the Stitcher.
    """

    @property
    def info(self) -> EstimatorInfo: ...

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncPoseEstimator(Protocol):
    """The future form: `submit` returns at once; the future holds what `estimate` would return.

    Futures may complete in any order; `PoseStream` restores the windows' order.
    """

    @property
    def info(self) -> EstimatorInfo: ...

    def submit(self, windows: Sequence[Window]) -> Future[list[list[FramePoses]]]: ...

    def close(self) -> None: ...


#: Either form; `estimators.asynchronous.as_async` turns the first into the second.
AnyPoseEstimator = PoseEstimator | AsyncPoseEstimator
