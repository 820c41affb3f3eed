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

Three things keep a hand's side through head turns, crossings and short losses:

- *Duplicates* (MediaPipe now and then reports one hand twice, with the same label) are merged
  before matching, so the copy cannot take the other side.
- *Common motion.* When a head turns, every hand jumps by about the same image shift, beyond the
  gate (or onto the other hand's track). When the plain assignment leaves hands unmatched, the
  tracks are matched again after each candidate shift and the assignment that pairs the most
  hands wins; a shift that pairs a single hand needs its label to agree with the track's side.
- *Entry side.* A new hand's first vote is where it entered: on a head camera (`view="egocentric"`)
  a left hand comes in from the image's left, on a camera facing the person ("exocentric") from
  the right; "any" gives no such vote. The vote weighs more the nearer the hand is to the edge.

Tracks that go unmatched for more than `max_missed` frames are dropped; a hand that comes back
later starts a fresh track with fresh votes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from vidihand_ros.types import HAND_SIDES

__all__ = ["VIEWS", "Detection", "HandTracker", "View"]

#: Where the camera looks from, for the entry-side vote (see the module docstring).
View = Literal["egocentric", "exocentric", "any"]
VIEWS: tuple[View, ...] = ("egocentric", "exocentric", "any")

_SIGN = {"right": 1.0, "left": -1.0}
# Once its vote window is full, a track switches side only when the balance against its side
# reaches this fraction of the window's total weight: (against - for) / total ≥ 0.6, i.e. ≥ 80% of
# the weighted votes. With 20% independent label noise and a 15-frame window that is a ~1e-5 event
# per frame; 2/3 (a ~1e-3 event) still swapped a hand now and then over a thousand frames.
_SWITCH_MARGIN = 0.6
# Share of a new velocity estimate mixed into the track's velocity (damps keypoint noise).
_VELOCITY_GAIN = 0.5
# Two detections closer than this share of the hand's extent (mean keypoint distance over the
# keypoints' bounding-box diagonal) are one hand reported twice.
_DUPLICATE_SHARE = 0.25
# Weight of the entry-side vote of a hand at the image's edge: a confident label weighs ~1, so a
# new hand at the edge needs more than three wrong labels in a row to take the wrong side.
_ENTRY_WEIGHT = 3.0


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

    def __init__(
        self,
        max_match_px: float = 150.0,
        vote_window: int = 15,
        max_missed: int = 5,
        view: View = "any",
        max_shift_px: float = 800.0,
    ) -> None:
        if max_match_px <= 0 or vote_window < 1 or max_missed < 0 or max_shift_px < 0:
            raise ValueError("need max_match_px > 0, vote_window ≥ 1, max_missed ≥ 0 and max_shift_px ≥ 0")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        self.max_match_px = float(max_match_px)
        self.vote_window = int(vote_window)
        self.max_missed = int(max_missed)
        self.view = view
        self.max_shift_px = float(max_shift_px)
        self._tracks: list[_Track] = []

    def reset(self) -> None:
        """Forget every track (call between episodes or after a cut in the video)."""
        self._tracks = []

    def update(
        self, detections: list[Detection], image_size: tuple[int, int] | None = None
    ) -> dict[str, Detection]:
        """Take one frame's detections; return them keyed by side ('left'/'right'), at most one each.

        Detections without any finite keypoint cannot be placed and are ignored; one hand reported
        twice counts once. With more than two hands in a frame, the two most present (highest
        `presence`) are reported. `image_size` (width, height) enables the entry-side vote.
        """
        usable = _merge_duplicates([d for d in detections if np.isfinite(d.keypoints_2d).all(axis=-1).any()])
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
                entry = self._entry_vote(det, image_size)
                if entry:
                    track.votes.append(entry)
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
        """Detection index → track index: gated Hungarian assignment on mean keypoint distance to
        each track's prediction, moved by one common image shift when that matches more hands.

        Without a shift, a head turn leaves hands beyond the gate, or pairs one hand's detection
        with the other hand's track. Candidate shifts are those of every (detection, track) pair;
        the assignment with the most pairs wins (ties: the lower cost, the unshifted first). A shift
        that matches a single pair is taken only when that detection's label agrees with the track.
        """
        if not detections or not self._tracks:
            return {}
        everything = list(range(len(detections))), list(range(len(self._tracks)))
        best = self._gated_pairs(detections, *everything, np.zeros(2))
        if len(best) == min(len(detections), len(self._tracks)):
            return {i: j for i, j in best}
        best_key = (len(best), -sum(best.values()))
        for i in range(len(detections)):
            for j in range(len(self._tracks)):
                shift = _centre(detections[i].keypoints_2d) - _centre(self._tracks[j].predicted())
                if not np.isfinite(shift).all() or np.linalg.norm(shift) > self.max_shift_px:
                    continue
                pairs = self._gated_pairs(detections, *everything, shift)
                if len(pairs) == 1 and not self._label_agrees(detections, pairs):
                    continue
                key = (len(pairs), -sum(pairs.values()))
                if key > best_key:
                    best, best_key = pairs, key
        return {i: j for i, j in best}

    def _label_agrees(self, detections: list[Detection], pairs: dict[tuple[int, int], float]) -> bool:
        ((i, j),) = pairs
        return self._tracks[j].side in (None, detections[i].handedness)

    def _gated_pairs(
        self, detections: list[Detection], dets: list[int], tracks: list[int], shift: NDArray[np.float64]
    ) -> dict[tuple[int, int], float]:
        """Gated Hungarian assignment of detections `dets` to tracks `tracks` moved by `shift`."""
        cost = np.array(
            [
                [_distance(self._tracks[j].predicted() + shift, detections[i].keypoints_2d) for j in tracks]
                for i in dets
            ]
        )
        gated = ~(cost <= self.max_match_px)  # NaN (no common keypoint) counts as too far
        rows, cols = linear_sum_assignment(np.where(gated, 1e9, cost))
        return {
            (dets[r], tracks[c]): float(cost[r, c])
            for r, c in zip(rows, cols, strict=True)
            if not gated[r, c]
        }

    def _entry_vote(self, det: Detection, image_size: tuple[int, int] | None) -> float:
        """The signed entry-side vote of a new hand ('right' positive), 0 without one."""
        if image_size is None or self.view == "any":
            return 0.0
        width = float(image_size[0])
        x = float(_centre(det.keypoints_2d)[0])
        if not (np.isfinite(x) and width > 0):
            return 0.0
        towards_right = float(np.clip(2.0 * x / width - 1.0, -1.0, 1.0))  # -1 left edge … +1 right edge
        sign = 1.0 if self.view == "egocentric" else -1.0
        return _ENTRY_WEIGHT * sign * towards_right

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


def _centre(keypoints: NDArray[np.floating]) -> NDArray[np.float64]:
    """Mean of the finite keypoints (NaN when there are none)."""
    finite = np.isfinite(keypoints).all(axis=-1)
    return np.asarray(
        keypoints[finite].mean(axis=0) if finite.any() else np.full(2, np.nan), dtype=np.float64
    )


def _extent(keypoints: NDArray[np.floating]) -> float:
    """Diagonal of the finite keypoints' bounding box, in pixels."""
    finite = keypoints[np.isfinite(keypoints).all(axis=-1)]
    return float(np.linalg.norm(finite.max(axis=0) - finite.min(axis=0))) if len(finite) else 0.0


def _merge_duplicates(detections: list[Detection]) -> list[Detection]:
    """Drop detections that repeat a more confident one (mean keypoint distance under 25% of extent)."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: d.score, reverse=True):
        limit = _DUPLICATE_SHARE * _extent(det.keypoints_2d)
        if all(not (_distance(det.keypoints_2d, k.keypoints_2d) < limit) for k in kept):
            kept.append(det)
    return kept


def _distance(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Mean Euclidean distance over the keypoints finite in both; NaN if there are none."""
    d = np.linalg.norm(a - b, axis=-1)
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")
