"""Stable left/right identities for per-frame hand detections.

A per-frame hand detector labels each hand's side on its own, and gets it wrong now and then
(more so on head-camera images than on the selfie images it was trained on); written straight
into a dataset, those frames would swap the two hands. The tracker separates the two questions:

- *Which hand is this?* Position continuity: detections are matched to live tracks by the mean
  keypoint distance to each track's constant-velocity prediction (Hungarian assignment, gated by
  `max_match_px`), so crossing hands keep their identity.
- *Which side is that hand?* The score-weighted handedness votes of the track's last `vote_window`
  frames. A young track follows their majority; an established one (full window) changes side only
  when at least 80% of its recent weighted votes say so, so a run of mislabelled frames does not
  swap it. Two tracks in one frame never claim the same side: the one with more support for its
  side keeps it, the other takes the other side.

Tracks that go unmatched for more than `max_missed` frames are dropped; a hand that comes back
later starts a fresh track with fresh votes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from vidihand_ros.types import HAND_SIDES

__all__ = ["Detection", "HandTracker"]

_SIGN = {"right": 1.0, "left": -1.0}
# Once its vote window is full, a track switches side only when the balance against its side
# reaches this fraction of the window's total weight: (against - for) / total ≥ 0.6, i.e. ≥ 80% of
# the weighted votes. With 20% independent label noise and a 15-frame window that is a ~1e-5 event
# per frame; 2/3 (a ~1e-3 event) still swapped a hand now and then over a thousand frames.
_SWITCH_MARGIN = 0.6
# Share of a new velocity estimate mixed into the track's velocity (damps keypoint noise).
_VELOCITY_GAIN = 0.5


@dataclass
class Detection:
    """One hand found in one frame, as the caller's detector reported it.

    `handedness` must already be corrected for mirroring (what the camera really sees); `score` is
    the detector's confidence in that label (0..1) and weighs its vote; `payload` is carried
    through untouched so the caller gets back its own per-hand data.
    """

    keypoints_2d: NDArray[np.floating]
    handedness: str
    score: float
    presence: float
    payload: object = None

    def __post_init__(self) -> None:
        self.keypoints_2d = np.asarray(self.keypoints_2d, dtype=np.float64)
        if self.handedness not in HAND_SIDES:
            raise ValueError(f"handedness must be one of {HAND_SIDES}, got {self.handedness!r}")


@dataclass
class _Track:
    keypoints: NDArray[np.float64]
    votes: deque[float]
    velocity: NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))
    missed: int = 0
    side: str | None = None

    def predicted(self) -> NDArray[np.float64]:
        return self.keypoints + self.velocity * (self.missed + 1)

    def balance(self) -> tuple[float, float]:
        """(signed vote sum, total weight); positive means 'right'."""
        return float(sum(self.votes)), float(sum(abs(v) for v in self.votes))

    def preferred_side(self) -> str:
        """The side the votes ask for: plain majority while young, with hysteresis once established.

        A young track (window not yet full) follows the majority so that a wrong first label is
        corrected within a few frames; ties keep the current side (or follow the latest label).
        """
        balance, total = self.balance()
        if balance == 0:
            return self.side or ("right" if self.votes and self.votes[-1] > 0 else "left")
        vote_side = "right" if balance > 0 else "left"
        if self.side is None or len(self.votes) < (self.votes.maxlen or 0):
            return vote_side
        against = -balance * _SIGN[self.side]
        return vote_side if against >= _SWITCH_MARGIN * total else self.side

    def support(self, side: str) -> float:
        return self.balance()[0] * _SIGN[side]


class HandTracker:
    """Assigns per-frame detections to at most one 'left' and one 'right' hand, stable over time."""

    def __init__(self, max_match_px: float = 150.0, vote_window: int = 15, max_missed: int = 5) -> None:
        if max_match_px <= 0 or vote_window < 1 or max_missed < 0:
            raise ValueError("need max_match_px > 0, vote_window ≥ 1 and max_missed ≥ 0")
        self.max_match_px = float(max_match_px)
        self.vote_window = int(vote_window)
        self.max_missed = int(max_missed)
        self._tracks: list[_Track] = []

    def reset(self) -> None:
        """Forget every track (call between episodes or after a cut in the video)."""
        self._tracks = []

    def update(self, detections: list[Detection]) -> dict[str, Detection]:
        """Take one frame's detections; return them keyed by side ('left'/'right'), at most one each.

        Detections without any finite keypoint cannot be placed and are ignored. With more than two
        hands in a frame, the two most present (highest `presence`) are reported.
        """
        usable = [d for d in detections if np.isfinite(d.keypoints_2d).all(axis=-1).any()]
        matches = self._match(usable)

        seen: list[tuple[_Track, Detection]] = []
        matched_tracks = set()
        for det_index, track_index in matches.items():
            track = self._tracks[track_index]
            self._observe(track, usable[det_index])
            matched_tracks.add(id(track))
            seen.append((track, usable[det_index]))
        for det_index, det in enumerate(usable):
            if det_index not in matches:
                track = _Track(keypoints=det.keypoints_2d.copy(), votes=deque(maxlen=self.vote_window))
                track.votes.append(_SIGN[det.handedness] * max(float(det.score), 0.0))
                self._tracks.append(track)
                matched_tracks.add(id(track))
                seen.append((track, det))
        for track in self._tracks:
            if id(track) not in matched_tracks:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]

        seen.sort(key=lambda pair: pair[1].presence, reverse=True)
        return self._assign_sides(seen[:2])

    def _match(self, detections: list[Detection]) -> dict[int, int]:
        """Detection index → track index, by gated Hungarian assignment on mean keypoint distance."""
        if not detections or not self._tracks:
            return {}
        cost = np.array(
            [[_distance(t.predicted(), d.keypoints_2d) for t in self._tracks] for d in detections]
        )
        gated = ~(cost <= self.max_match_px)  # NaN (no common keypoint) counts as too far
        big = 1e6 + (np.nanmax(cost, initial=0.0) if np.isfinite(cost).any() else 0.0)
        rows, cols = linear_sum_assignment(np.where(gated, big, cost))
        return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if not gated[r, c]}

    def _observe(self, track: _Track, det: Detection) -> None:
        keypoints = det.keypoints_2d
        step = (keypoints - track.keypoints) / (track.missed + 1)
        step = np.where(np.isfinite(step), step, track.velocity)
        track.velocity = (1 - _VELOCITY_GAIN) * track.velocity + _VELOCITY_GAIN * step
        track.keypoints = np.where(np.isfinite(keypoints), keypoints, track.predicted())
        track.missed = 0
        track.votes.append(_SIGN[det.handedness] * max(float(det.score), 0.0))

    @staticmethod
    def _assign_sides(seen: list[tuple[_Track, Detection]]) -> dict[str, Detection]:
        wanted = [(track, track.preferred_side()) for track, _ in seen]
        if len(wanted) == 2 and wanted[0][1] == wanted[1][1]:
            side = wanted[0][1]
            other = "left" if side == "right" else "right"
            (a, _), (b, _) = wanted
            # The weaker claim yields; ties go to the track that already held the side.
            a_wins = (a.support(side), a.side == side) >= (b.support(side), b.side == side)
            wanted = [(a, side), (b, other)] if a_wins else [(a, other), (b, side)]
        result: dict[str, Detection] = {}
        for (track, side), (_, det) in zip(wanted, seen, strict=True):
            track.side = side
            result[side] = det
        return result


def _distance(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Mean Euclidean distance over the keypoints finite in both; NaN if there are none."""
    d = np.linalg.norm(a - b, axis=-1)
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")
