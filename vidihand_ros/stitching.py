"""Turn per-window estimates back into one result per frame, streaming.

With overlapping windows (stride < window) a frame is estimated several times; the Stitcher blends
those estimates and emits each frame exactly once, in stream order, as soon as no later window can
cover it. Only frames not yet emitted are held, so memory is bounded by the window, not the stream.

Blending rules, per hand:
- No window gave an estimate (all None) → None.
- Each estimate has a position weight: "triangular" trusts the window centre more than its edges
  (a temporal model sees less context there), w_i = min(i + 1, W - i), never zero; "uniform" is 1.
- `presence` is the position-weighted mean of the finite presences.
- Every other quantity is additionally weighted by the estimate's presence (clipped to [0, 1],
  floored at PRESENCE_FLOOR, NaN counts as 1): a window that saw the hand dominates one that
  barely did, but a value estimated only by low-presence windows is still kept, and when all
  windows agree on presence the result is the plain position-weighted mean.
- Vectors (transl, joints_3d, keypoints_2d, betas) are averaged element-wise over the estimates
  whose element is finite; an element no window estimated stays NaN.
- Rotations (global_orient, wrist_orient, each hand_pose joint) are averaged as rotations
  (scipy's weighted quaternion mean) over the estimates whose 3-vector is finite; averaging
  axis-angle vectors is wrong near pi, where (pi - e)·z and -(pi - e)·z are almost the same
  rotation but average to the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vidihand_ros.types import HAND_SIDES, Frame, FramePoses, HandPose, Window
from vidihand_ros.windowing import resolve_stride

Weighting = Literal["triangular", "uniform"]
WEIGHTINGS: tuple[Weighting, ...] = ("triangular", "uniform")

#: Smallest presence factor, so an estimate is down-weighted but never discarded.
PRESENCE_FLOOR = 1e-3

_VECTOR_FIELDS = ("betas", "transl", "joints_3d", "keypoints_2d")
_ROTATION_FIELDS = ("global_orient", "wrist_orient")


def position_weights(window: int, weighting: Weighting = "triangular") -> NDArray[np.float64]:
    """Weight of each window position (all > 0)."""
    if weighting == "triangular":
        i = np.arange(window)
        return np.minimum(i + 1, window - i).astype(np.float64)
    if weighting == "uniform":
        return np.ones(window, dtype=np.float64)
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def _weighted_mean(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Element-wise weighted mean over axis 0, ignoring non-finite entries (NaN where none is finite).

    Averages offsets from the smallest finite value, so that equal estimates blend to exactly
    themselves and large values (e.g. far-away points) lose no precision.
    """
    finite = np.isfinite(values)
    w = np.where(finite, weights.reshape((-1,) + (1,) * (values.ndim - 1)), 0.0)
    total = w.sum(axis=0)
    ref = np.fmin.reduce(np.where(finite, values, np.nan), axis=0)
    offsets = np.where(finite, values - ref, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, ref + (offsets * w).sum(axis=0) / total, np.nan)


def _mean_rotvec(rotvecs: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Weighted rotation mean of (n, 3) axis-angle vectors, over the finite ones."""
    finite = np.isfinite(rotvecs).all(axis=1)
    if not finite.any():
        return np.full(3, np.nan)
    rotvecs = rotvecs[finite]
    if (rotvecs == rotvecs[0]).all():
        return rotvecs[0]  # equal estimates blend to exactly themselves (no quaternion round trip)
    mean = Rotation.from_rotvec(rotvecs).mean(weights=weights[finite])
    return np.asarray(mean.as_rotvec(), dtype=np.float64)


def _presence_factor(presence: NDArray[np.float64]) -> NDArray[np.float64]:
    factor = np.where(np.isfinite(presence), np.clip(presence, 0.0, 1.0), 1.0)
    return np.maximum(factor, PRESENCE_FLOOR)


def blend_hands(estimates: Sequence[tuple[float, HandPose]]) -> HandPose | None:
    """Blend (position weight, estimate) pairs for one hand in one frame; None if there are none."""
    if not estimates:
        return None
    pos_w = np.array([w for w, _ in estimates], dtype=np.float64)
    hands = [h for _, h in estimates]
    presence = np.array([h.presence for h in hands], dtype=np.float64)
    value_w = pos_w * _presence_factor(presence)

    def stacked(name: str) -> NDArray[np.float64]:
        return np.stack([getattr(h, name) for h in hands]).astype(np.float64)

    blended: dict[str, NDArray[np.float64]] = {}
    for name in _VECTOR_FIELDS:
        blended[name] = _weighted_mean(stacked(name), value_w)
    for name in _ROTATION_FIELDS:
        blended[name] = _mean_rotvec(stacked(name), value_w)
    joints = stacked("hand_pose")
    blended["hand_pose"] = np.stack([_mean_rotvec(joints[:, j], value_w) for j in range(joints.shape[1])])
    arrays = {name: value.astype(np.float32) for name, value in blended.items()}
    # Interpolated only if no window actually observed the hand in this frame.
    observed = [h for h in hands if not h.filled and h.presence > 0]
    filled = not observed and any(h.filled for h in hands)
    return HandPose(presence=float(_weighted_mean(presence, pos_w)), filled=filled, **arrays)


@dataclass
class _Pending:
    """A frame not yet emitted and the (position weight, estimate) pairs gathered for it."""

    frame: Frame
    estimates: list[tuple[float, FramePoses]] = field(default_factory=list)

    def blend(self) -> FramePoses:
        hands = {
            side: blend_hands([(w, h) for w, fp in self.estimates if (h := fp.hand(side)) is not None])
            for side in HAND_SIDES
        }
        return FramePoses(self.frame.stamp_ns, self.frame.frame_id, hands["left"], hands["right"])


class Stitcher:
    """Blends per-window estimates into one FramePoses per frame, emitted in stream order.

    Windows must arrive in the order the Windower (with the same window and stride) produced them.
    """

    def __init__(self, window: int, stride: int | None = None, weighting: Weighting = "triangular"):
        self.stride = resolve_stride(window, stride)
        self.window = window
        self.weighting = weighting
        self._weights = position_weights(window, weighting)
        self._pending: dict[int, _Pending] = {}  # by stream index, in increasing order
        self._next_emit = 0  # no frame below this stream index may be added any more

    @property
    def pending(self) -> int:
        """Frames held now, i.e. not yet emitted (at most `window`)."""
        return len(self._pending)

    @property
    def pending_frames(self) -> list[Frame]:
        return [p.frame for p in self._pending.values()]

    def add(self, window: Window, poses: Sequence[FramePoses]) -> list[tuple[Frame, FramePoses]]:
        """Add one window's estimates (one per frame, padding included); return the finished frames."""
        self._check(window, poses)
        for i in range(window.num_valid):
            pending = self._pending.setdefault(window.start + i, _Pending(window.frames[i]))
            pending.estimates.append((float(self._weights[i]), poses[i]))
        # The next window of this segment starts `stride` later; a padded window ends its segment.
        padded = window.num_valid < self.window
        return self._emit_before(window.start + (window.num_valid if padded else self.stride))

    def flush(self) -> list[tuple[Frame, FramePoses]]:
        """Emit every frame still held (end of stream)."""
        return self._emit_before(None)

    def _check(self, window: Window, poses: Sequence[FramePoses]) -> None:
        if len(window) != self.window or len(poses) != self.window:
            raise ValueError(
                f"expected {self.window} frames and poses, got {len(window)} frames and {len(poses)} poses"
            )
        if not 1 <= window.num_valid <= self.window:
            raise ValueError(f"num_valid must be in 1..{self.window}, got {window.num_valid}")
        if window.start < self._next_emit:
            raise ValueError(
                f"window starting at {window.start} covers frames already emitted "
                f"(before {self._next_emit}); windows must arrive in the order the Windower produced them"
            )

    def _emit_before(self, limit: int | None) -> list[tuple[Frame, FramePoses]]:
        out: list[tuple[Frame, FramePoses]] = []
        while self._pending:
            index = next(iter(self._pending))
            if limit is not None and index >= limit:
                break
            pending = self._pending.pop(index)
            out.append((pending.frame, pending.blend()))
            self._next_emit = index + 1
        if limit is not None:
            self._next_emit = max(self._next_emit, limit)
        return out
