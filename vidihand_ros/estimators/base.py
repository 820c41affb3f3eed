"""The PoseEstimator interface: a window of frames in, one two-hand result per frame out.

The in-process ViDiHand model, the MediaPipe baseline and the remote-server client all implement
it, so the pipeline, the live node and the server never care which one they drive.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def as_attrs(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "checkpoint_sha256": self.checkpoint_sha256,
            "options": dict(self.options),
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
