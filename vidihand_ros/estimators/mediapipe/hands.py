"""The `mediapipe` estimator: MediaPipe Hands → tracked, metric, smoothed two-hand poses.

Real hand poses before anyone has ViDiHand weights, on one CPU core: detection, side tracking,
undistortion + the shared WLS translation solve, One Euro smoothing, optional gap filling and MANO
fit. How and why, step by step, with the options: docs/mediapipe.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.estimators.mediapipe.detector import MediaPipeHandDetector, RawHand
from vidihand_ros.estimators.mediapipe.filtering import OneEuroFilter, fill_gaps
from vidihand_ros.estimators.mediapipe.tracking import Detection, HandTracker
from vidihand_ros.geometry.distortion import undistort_points
from vidihand_ros.geometry.palm import palm_orientation
from vidihand_ros.geometry.translation import solve_translation
from vidihand_ros.types import HAND_SIDES, NUM_JOINTS, Frame, FramePoses, HandPose, Window

if TYPE_CHECKING:
    from vidihand_ros.mano.layer import ManoLayer

__all__ = ["MediaPipeHandsEstimator", "MediaPipeOptions", "create"]

NAME = "mediapipe"
#: Assumed frame period when stamps do not increase (an unstamped driver): 30 fps.
_FALLBACK_PERIOD_S = 1.0 / 30.0
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

FrameKey = tuple[int, int]


@dataclass(frozen=True)
class MediaPipeOptions:
    """The estimator's options, typed (the CLI hands them over as strings: see `parse`)."""

    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    mirrored: bool = False
    max_gap: int = 0
    smoothing: bool = True
    mano_dir: str | None = None

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> MediaPipeOptions:
        """Options from strings; an unknown key or bad value is an InputError naming it."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(
                f"unknown mediapipe option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        get = options.get
        complexity = _parse_int(get("model_complexity", "1"), "model_complexity")
        if complexity not in (0, 1):
            raise InputError(f"mediapipe option model_complexity must be 0 or 1, got {complexity}")
        max_gap = _parse_int(get("max_gap", "0"), "max_gap")
        if max_gap < 0:
            raise InputError(f"mediapipe option max_gap must be >= 0, got {max_gap}")
        mano_dir = get("mano_dir") or None
        return cls(
            model_complexity=complexity,
            min_detection_confidence=_parse_unit(
                get("min_detection_confidence", "0.5"), "min_detection_confidence"
            ),
            min_tracking_confidence=_parse_unit(
                get("min_tracking_confidence", "0.5"), "min_tracking_confidence"
            ),
            mirrored=_parse_bool(get("mirrored", "false"), "mirrored"),
            max_gap=max_gap,
            smoothing=_parse_bool(get("smoothing", "on"), "smoothing"),
            mano_dir=str(Path(mano_dir).expanduser()) if mano_dir else None,
        )


def _parse_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InputError(f"mediapipe option {name} must be true/false (or on/off, 1/0), got {value!r}")


def _parse_int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"mediapipe option {name} must be an integer, got {value!r}") from None


def _parse_unit(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"mediapipe option {name} must be a number, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise InputError(f"mediapipe option {name} must be in [0, 1], got {number}")
    return number


@dataclass
class _Seen:
    """One hand in one frame after tracking, the metric solve and smoothing."""

    presence: float
    keypoints_2d: NDArray[np.float64]  # (21, 2) pixels
    joints_3d: NDArray[np.float64]  # (21, 3) metres, camera frame (NaN without intrinsics)


#: One frame's result per side; a side missing from the dict was not seen.
_FrameResult = dict[str, _Seen]


class _SideFilters:
    """One Euro filters for one hand's joints (metres) and keypoints (pixels)."""

    def __init__(self) -> None:
        self.joints = OneEuroFilter.for_metres()
        self.keypoints = OneEuroFilter.for_pixels()

    def reset(self) -> None:
        self.joints.reset()
        self.keypoints.reset()


class MediaPipeHandsEstimator:
    """Implements PoseEstimator with MediaPipe Hands; see the module docstring for the pipeline."""

    def __init__(self, options: MediaPipeOptions | None = None) -> None:
        self.options = options or MediaPipeOptions()
        self._mano_layers: dict[str, ManoLayer] | None = None
        if self.options.mano_dir is not None:
            from vidihand_ros.mano.files import find_mano_files

            find_mano_files(self.options.mano_dir)  # fail now, not after the first window
        self._detector = MediaPipeHandDetector(
            model_complexity=self.options.model_complexity,
            min_detection_confidence=self.options.min_detection_confidence,
            min_tracking_confidence=self.options.min_tracking_confidence,
            mirrored=self.options.mirrored,
        )
        self._tracker = HandTracker()
        self._filters = {side: _SideFilters() for side in HAND_SIDES}
        self._cache: dict[FrameKey, _FrameResult] = {}
        self._last_window: tuple[int, int] | None = None  # (segment, start)
        self._last_t: float | None = None
        self._betas: dict[str, NDArray[np.float32]] = {}
        #: Frames run through MediaPipe so far (tests check that overlap is not processed twice).
        self.frames_processed = 0

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(name=NAME, version=self._detector.version, options=asdict(self.options))

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        return [self._estimate_window(window) for window in windows]

    def close(self) -> None:
        self._detector.close()

    # ----------------------------------------------------------------------------------------
    # Stream state

    def _estimate_window(self, window: Window) -> list[FramePoses]:
        if not self._continues(window):
            self._reset_stream()
        self._last_window = (window.segment, window.start)
        results = []
        for frame in window.valid_frames:
            key = (frame.stamp_ns, frame.index)
            result = self._cache.get(key)
            if result is None:
                result = self._process(frame)
            results.append(result)
        # Later windows start at or after this one, so only its frames can be asked for again.
        self._cache = {(f.stamp_ns, f.index): r for f, r in zip(window.valid_frames, results, strict=True)}
        return self._window_poses(window, results)

    def _continues(self, window: Window) -> bool:
        """Whether `window` follows the previous one in the same segment of the same stream.

        A new segment, or a start that does not advance (a new episode restarts the windower at
        0), means a cut: tracking, filters and the cache must not carry over.
        """
        if self._last_window is None:
            return False
        segment, start = self._last_window
        return window.segment == segment and window.start > start

    def _reset_stream(self) -> None:
        self._detector.reset()
        self._tracker.reset()
        for filters in self._filters.values():
            filters.reset()
        self._cache = {}
        self._last_t = None
        self._betas = {}

    def _time_s(self, frame: Frame) -> float:
        """Filter time of `frame`: its stamp, nudged forward when stamps do not increase."""
        t = frame.stamp_ns * 1e-9
        if self._last_t is not None and t <= self._last_t:
            t = self._last_t + _FALLBACK_PERIOD_S
        self._last_t = t
        return t

    # ----------------------------------------------------------------------------------------
    # One frame

    def _process(self, frame: Frame) -> _FrameResult:
        raw = self._detector.detect(frame.rgb())
        self.frames_processed += 1
        detections = [
            Detection(
                keypoints_2d=h.keypoints_2d, handedness=h.side, score=h.score, presence=h.score, payload=h
            )
            for h in raw
        ]
        assigned = self._tracker.update(detections)
        t_s = self._time_s(frame)
        result: _FrameResult = {}
        for side in HAND_SIDES:
            detection = assigned.get(side)
            if detection is None:
                keypoints = np.full((NUM_JOINTS, 2), np.nan)
                joints = np.full((NUM_JOINTS, 3), np.nan)
            else:
                hand = detection.payload
                assert isinstance(hand, RawHand)
                keypoints = hand.keypoints_2d
                joints = self._metric_joints(hand, frame)
            if self.options.smoothing:
                # Absent hands are fed as NaN so that the filters see the time pass.
                joints = self._filters[side].joints(joints, t_s)
                keypoints = self._filters[side].keypoints(keypoints, t_s)
            if detection is not None:
                result[side] = _Seen(
                    presence=float(detection.presence), keypoints_2d=keypoints, joints_3d=joints
                )
        return result

    @staticmethod
    def _metric_joints(hand: RawHand, frame: Frame) -> NDArray[np.float64]:
        """World landmarks placed in the camera frame; NaN when the frame has no intrinsics."""
        camera = frame.camera
        if camera is None:
            return np.full((NUM_JOINTS, 3), np.nan)
        undistorted = undistort_points(hand.keypoints_2d, camera)
        translation = np.asarray(solve_translation(hand.world, undistorted, camera.K), dtype=np.float64)
        return hand.world + translation

    # ----------------------------------------------------------------------------------------
    # One window

    def _window_poses(self, window: Window, results: list[_FrameResult]) -> list[FramePoses]:
        per_side = {side: self._side_poses(side, [r.get(side) for r in results]) for side in HAND_SIDES}
        out = [
            FramePoses(frame.stamp_ns, frame.frame_id, per_side["left"][i], per_side["right"][i])
            for i, frame in enumerate(window.valid_frames)
        ]
        last = out[-1]
        for frame in window.frames[window.num_valid :]:  # padding repeats the last frame
            out.append(FramePoses(frame.stamp_ns, frame.frame_id, last.left, last.right))
        return out

    def _side_poses(self, side: str, seen: list[_Seen | None]) -> list[HandPose]:
        n = len(seen)
        observed = np.array([s is not None for s in seen], dtype=bool)
        presence = np.array([s.presence if s else 0.0 for s in seen], dtype=np.float64)
        keypoints = np.stack([s.keypoints_2d if s else np.full((NUM_JOINTS, 2), np.nan) for s in seen])
        joints = np.stack([s.joints_3d if s else np.full((NUM_JOINTS, 3), np.nan) for s in seen])
        filled = np.zeros(n, dtype=bool)
        if self.options.max_gap > 0 and n > 2:
            packed = np.concatenate(
                [presence[:, None], keypoints.reshape(n, -1), joints.reshape(n, -1)], axis=1
            )
            filled_values, filled = fill_gaps(packed, observed, self.options.max_gap)
            packed = np.asarray(filled_values, dtype=np.float64)
            presence = packed[:, 0]
            keypoints = packed[:, 1 : 1 + NUM_JOINTS * 2].reshape(n, NUM_JOINTS, 2)
            joints = packed[:, 1 + NUM_JOINTS * 2 :].reshape(n, NUM_JOINTS, 3)
        estimated = observed | filled
        orient = palm_orientation(joints, side)
        mano = self._fit_mano(side, np.where(estimated[:, None, None], joints, np.nan))

        poses = []
        for i in range(n):
            if not estimated[i]:
                poses.append(HandPose(presence=0.0))  # looked, found nothing: NaN values
                continue
            pose = HandPose(
                presence=float(presence[i]),
                joints_3d=joints[i],
                keypoints_2d=keypoints[i],
                wrist_orient=orient[i],
                filled=bool(filled[i]),
            )
            if mano is not None and np.isfinite(mano["transl"][i]).all():
                pose.global_orient = mano["global_orient"][i]
                pose.hand_pose = mano["hand_pose"][i]
                pose.betas = mano["betas"]
                pose.transl = mano["transl"][i]
                pose.joints_3d = mano["joints"][i]
            poses.append(pose)
        return poses

    # ----------------------------------------------------------------------------------------
    # MANO

    def _fit_mano(self, side: str, joints: NDArray[np.float64]) -> dict[str, NDArray[np.float32]] | None:
        """MANO fitted to one side's window of joints (NaN frames skipped); None without MANO files.

        β is fitted on the segment's first window that has the hand and then held fixed, so a
        segment keeps one hand shape.
        """
        if self.options.mano_dir is None or not np.isfinite(joints).all(axis=(1, 2)).any():
            return None
        from vidihand_ros.mano.fit import fit_mano

        if self._mano_layers is None:
            from vidihand_ros.mano.layer import load_mano_layers

            self._mano_layers = load_mano_layers(self.options.mano_dir)
        fit = fit_mano(joints, side, self._mano_layers[side], betas=self._betas.get(side))
        if side not in self._betas and np.isfinite(fit.betas).all():
            self._betas[side] = np.asarray(fit.betas, dtype=np.float32)
        return {
            "global_orient": fit.global_orient,
            "hand_pose": fit.hand_pose,
            "betas": fit.betas,
            "transl": fit.transl,
            "joints": fit.joints,
        }


def create(**options: str) -> MediaPipeHandsEstimator:
    """Factory for the registry (`--estimator mediapipe --estimator-option key=value`)."""
    return MediaPipeHandsEstimator(MediaPipeOptions.parse(options))
