"""The `mediapipe` estimator: MediaPipe Hands → tracked, metric, smoothed two-hand poses.

Real hand poses before anyone has ViDiHand weights, on one CPU core: detection, side tracking,
one hand size per side, zero-lag smoothing over the window, undistortion + the shared WLS
translation solve, joints on the keypoints' rays, optional gap filling and MANO fit. How and why,
step by step, with the options: docs/mediapipe.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.estimators.mediapipe.detector import MediaPipeHandDetector, RawHand
from vidihand_ros.estimators.mediapipe.filtering import OneEuroFilter, fill_gaps
from vidihand_ros.estimators.mediapipe.temporal import HandScale, backproject, steady_joints
from vidihand_ros.estimators.mediapipe.tracking import VIEWS, Detection, HandTracker, View
from vidihand_ros.geometry.distortion import undistort_points
from vidihand_ros.geometry.palm import palm_orientation
from vidihand_ros.geometry.translation import solve_translation
from vidihand_ros.types import HAND_SIDES, NUM_JOINTS, CameraModel, Frame, FramePoses, HandPose, Window

if TYPE_CHECKING:
    from vidihand_ros.mano.layer import ManoLayer

__all__ = ["HandDetector", "MediaPipeHandsEstimator", "MediaPipeOptions", "create"]

NAME = "mediapipe"
#: Assumed frame period when stamps do not increase (an unstamped driver): 30 fps.
_FALLBACK_PERIOD_S = 1.0 / 30.0
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

FrameKey = tuple[int, int]
#: "on": zero-lag smoothing over the window (default); "causal": One Euro filters, frame by frame,
#: for the lowest latency on a live robot; "off": none.
Smoothing = Literal["on", "causal", "off"]

#: The window and stride `--window`/`--stride` default to: overlapping windows give every frame
#: future context for the smoothing, and 16 frames keep a live node's latency near half a second.
NATIVE_WINDOW = 32
NATIVE_STRIDE = 16
#: Frames before a window that its smoothing sees (the depth kernel reaches 3σ ≈ 12 frames).
CONTEXT_FRAMES = 16
#: One Euro parameters for log-depth (smoothing=causal): depth is the noisiest coordinate.
CAUSAL_LOG_DEPTH: dict[str, float] = {"min_cutoff": 0.5, "beta": 2.0, "d_cutoff": 1.0}


@dataclass(frozen=True)
class MediaPipeOptions:
    """The estimator's options, typed (the CLI hands them over as strings: see `parse`)."""

    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    mirrored: bool = False
    max_gap: int = 0
    smoothing: Smoothing = "on"
    view: View = "egocentric"
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
            smoothing=_parse_smoothing(get("smoothing", "on")),
            view=_parse_view(get("view", "egocentric")),
            mano_dir=str(Path(mano_dir).expanduser()) if mano_dir else None,
        )


def _parse_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InputError(f"mediapipe option {name} must be true/false (or on/off, 1/0), got {value!r}")


def _parse_smoothing(value: str) -> Smoothing:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return "on"
    if lowered in _FALSE:
        return "off"
    if lowered == "causal":
        return "causal"
    raise InputError(f"mediapipe option smoothing must be on, causal or off, got {value!r}")


def _parse_view(value: str) -> View:
    lowered = value.strip().lower()
    for view in VIEWS:
        if lowered == view:
            return view
    raise InputError(f"mediapipe option view must be one of {', '.join(VIEWS)}, got {value!r}")


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


class HandDetector(Protocol):
    """Per-frame hands in stream order: what `MediaPipeHandDetector` is to this estimator."""

    version: str

    def detect(self, rgb: NDArray[np.uint8]) -> list[RawHand]: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Seen:
    """One hand in one frame after tracking (and, with causal smoothing, filtering)."""

    presence: float
    keypoints_2d: NDArray[np.float64]  # (21, 2) pixels, as in the image (distorted)
    world: NDArray[np.float64]  # (21, 3) metres, hand-centred, rescaled to the hand's size
    #: (21, 3) final camera-frame joints when they are made frame by frame (causal smoothing).
    joints_3d: NDArray[np.float64] | None = None


#: One frame's result per side; a side missing from the dict was not seen.
_FrameResult = dict[str, _Seen]


@dataclass
class _Processed:
    """A frame of the timeline: when it was taken, its camera, and what was seen in it."""

    t_s: float
    camera: CameraModel | None
    result: _FrameResult


class _CausalFilters:
    """One Euro filters for one hand (smoothing=causal): keypoints, shape and log-depth."""

    def __init__(self) -> None:
        self.keypoints = OneEuroFilter.for_pixels()
        self.world = OneEuroFilter.for_metres()
        self.log_depth = OneEuroFilter(**CAUSAL_LOG_DEPTH)

    def reset(self) -> None:
        for f in (self.keypoints, self.world, self.log_depth):
            f.reset()


class MediaPipeHandsEstimator:
    """Implements PoseEstimator with MediaPipe Hands; see the module docstring for the pipeline."""

    def __init__(self, options: MediaPipeOptions | None = None, detector: HandDetector | None = None) -> None:
        """`detector` replaces MediaPipe's graph (tests give synthetic hands); default: MediaPipe."""
        self.options = options or MediaPipeOptions()
        self._mano_layers: dict[str, ManoLayer] | None = None
        if self.options.mano_dir is not None:
            from vidihand_ros.mano.files import find_mano_files

            find_mano_files(self.options.mano_dir)  # fail now, not after the first window
        self._detector: HandDetector = detector or MediaPipeHandDetector(
            model_complexity=self.options.model_complexity,
            min_detection_confidence=self.options.min_detection_confidence,
            min_tracking_confidence=self.options.min_tracking_confidence,
            mirrored=self.options.mirrored,
        )
        self._tracker = HandTracker(view=self.options.view)
        self._scales = {side: HandScale() for side in HAND_SIDES}
        self._filters = {side: _CausalFilters() for side in HAND_SIDES}
        #: Frames processed so far that a window may still need (its own and the context before it).
        self._timeline: dict[FrameKey, _Processed] = {}
        self._last_window: tuple[int, int] | None = None  # (segment, start)
        self._last_frames: list[Frame] | None = None  # its frames, to recognise a retry
        self._last_t: float | None = None
        self._betas: dict[str, NDArray[np.float32]] = {}
        #: Frames run through MediaPipe so far (tests check that overlap is not processed twice).
        self.frames_processed = 0

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(
            name=NAME,
            version=self._detector.version,
            options=asdict(self.options),
            window=NATIVE_WINDOW,
            stride=NATIVE_STRIDE,
            stateful=True,  # tracking, hand sizes and smoothing context carry across windows
        )

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
        self._last_frames = list(window.valid_frames)
        keys = [(frame.stamp_ns, frame.index) for frame in window.valid_frames]
        for frame, key in zip(window.valid_frames, keys, strict=True):
            if key not in self._timeline:
                self._timeline[key] = self._process(frame)
        # The window's frames with up to CONTEXT_FRAMES before them: smoothing looks back that far.
        order = list(self._timeline)
        first = order.index(keys[0])
        if len(set(keys)) != len(keys) or order.index(keys[-1]) - first != len(keys) - 1:
            raise InputError(
                "a window's frames must be distinct and in stream order (stamp_ns, index); "
                f"got stamps {keys[0][0]}..{keys[-1][0]} ns"
            )
        context = order[max(0, first - CONTEXT_FRAMES) : order.index(keys[-1]) + 1]
        self._timeline = {key: self._timeline[key] for key in order[max(0, first - CONTEXT_FRAMES) :]}
        processed = [self._timeline[key] for key in context]
        return self._window_poses(window, processed, skip=len(context) - len(keys))

    def _continues(self, window: Window) -> bool:
        """Whether `window` follows the previous one in the same segment of the same stream.

        A new segment, or a start that does not advance (a new episode restarts the windower at
        0), means a cut: tracking, filters and the timeline must not carry over. A window sent
        again (a retry) whose frames are all still known is not a cut.
        """
        if self._last_window is None:
            return False
        segment, start = self._last_window
        if window.segment == segment and window.start == start:
            # The same window again (a client's retry): answered from the timeline, no cut.
            return self._last_frames is not None and _same_frames(self._last_frames, window.valid_frames)
        return window.segment == segment and window.start > start

    def _reset_stream(self) -> None:
        self._detector.reset()
        self._tracker.reset()
        for side in HAND_SIDES:
            self._scales[side].reset()
            self._filters[side].reset()
        self._timeline = {}
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

    def _process(self, frame: Frame) -> _Processed:
        rgb = frame.rgb()
        raw = self._detector.detect(rgb)
        self.frames_processed += 1
        detections = [
            Detection(
                keypoints_2d=h.keypoints_2d, handedness=h.side, score=h.score, presence=h.score, payload=h
            )
            for h in raw
        ]
        assigned = self._tracker.update(detections, image_size=(rgb.shape[1], rgb.shape[0]))
        t_s = self._time_s(frame)
        causal = self.options.smoothing == "causal"
        result: _FrameResult = {}
        for side in HAND_SIDES:
            detection = assigned.get(side)
            if detection is None:
                if causal:  # absent hands are fed as NaN so that the filters see the time pass
                    self._filters[side].keypoints(np.full((NUM_JOINTS, 2), np.nan), t_s)
                    self._filters[side].world(np.full((NUM_JOINTS, 3), np.nan), t_s)
                    self._filters[side].log_depth(np.full(1, np.nan), t_s)
                continue
            hand = detection.payload
            assert isinstance(hand, RawHand)
            seen = _Seen(float(detection.presence), hand.keypoints_2d, self._scales[side].rescale(hand.world))
            if causal:
                seen = self._filtered(side, seen, frame.camera, t_s)
            result[side] = seen
        return _Processed(t_s, frame.camera, result)

    def _filtered(self, side: str, seen: _Seen, camera: CameraModel | None, t_s: float) -> _Seen:
        """smoothing=causal: One Euro filtered keypoints, shape and depth, joints made at once."""
        filters = self._filters[side]
        keypoints = filters.keypoints(seen.keypoints_2d, t_s)
        world = filters.world(seen.world, t_s)
        joints = np.full((NUM_JOINTS, 3), np.nan)
        if camera is not None:
            undistorted = undistort_points(keypoints, camera)
            depth = float(solve_translation(world, undistorted, camera.K)[2])
            depth = float(np.exp(filters.log_depth(np.array([np.log(depth)]), t_s)[0]))
            joints = backproject(undistorted, world[:, 2] + depth, camera.K)
        return _Seen(seen.presence, keypoints, world, joints)

    # ----------------------------------------------------------------------------------------
    # One window

    def _window_poses(self, window: Window, processed: list[_Processed], skip: int) -> list[FramePoses]:
        """Poses of the window's frames, the last `len(processed) - skip` of `processed`."""
        per_side = {side: self._side_poses(side, processed, skip) for side in HAND_SIDES}
        out = [
            FramePoses(frame.stamp_ns, frame.frame_id, per_side["left"][i], per_side["right"][i])
            for i, frame in enumerate(window.valid_frames)
        ]
        last = out[-1]
        for frame in window.frames[window.num_valid :]:  # padding repeats the last frame
            out.append(FramePoses(frame.stamp_ns, frame.frame_id, last.left, last.right))
        return out

    def _side_poses(self, side: str, processed: list[_Processed], skip: int) -> list[HandPose]:
        """One side's poses for `processed[skip:]`; the frames before are context for smoothing."""
        seen = [p.result.get(side) for p in processed]
        cameras = [p.camera for p in processed]
        n = len(seen)
        observed = np.array([s is not None for s in seen], dtype=bool)
        presence = np.array([s.presence if s else 0.0 for s in seen], dtype=np.float64)
        keypoints = np.stack([s.keypoints_2d if s else np.full((NUM_JOINTS, 2), np.nan) for s in seen])
        if self.options.smoothing == "causal":
            joints = np.stack(
                [
                    s.joints_3d if s and s.joints_3d is not None else np.full((NUM_JOINTS, 3), np.nan)
                    for s in seen
                ]
            )
        else:
            world = np.stack([s.world if s else np.full((NUM_JOINTS, 3), np.nan) for s in seen])
            times = np.array([p.t_s for p in processed])
            keypoints, joints = steady_joints(
                keypoints, world, observed, times, cameras, smooth=self.options.smoothing == "on"
            )
        filled = np.zeros(n, dtype=bool)
        if self.options.max_gap > 0 and n > 2:
            presence, keypoints, joints, filled = _fill_gaps(
                presence, keypoints, joints, observed, cameras, self.options.max_gap
            )
        presence, keypoints, joints, filled = presence[skip:], keypoints[skip:], joints[skip:], filled[skip:]
        n = len(presence)
        estimated = (observed[skip:] | filled) & np.isfinite(keypoints).all(axis=(1, 2))
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


def _same_frames(before: list[Frame], now: list[Frame]) -> bool:
    """Whether two windows hold the same frames: stamps, indices and image content."""
    if len(before) != len(now):
        return False
    for a, b in zip(before, now, strict=True):
        if (a.stamp_ns, a.index, a.encoding) != (b.stamp_ns, b.index, b.encoding):
            return False
        if a.data is not None or b.data is not None:
            if a.data != b.data:
                return False
        elif not np.array_equal(a.rgb(), b.rgb()):
            return False
    return True


def _fill_gaps(
    presence: NDArray[np.float64],
    keypoints: NDArray[np.float64],
    joints: NDArray[np.float64],
    observed: NDArray[np.bool_],
    cameras: list[CameraModel | None],
    max_gap: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Interpolate presence, keypoints and joint depths across short gaps; joints on the new rays."""
    n = len(presence)
    packed = np.concatenate([presence[:, None], keypoints.reshape(n, -1), joints[..., 2]], axis=1)
    values, filled = fill_gaps(packed, observed, max_gap)
    values = np.asarray(values, dtype=np.float64)
    presence = values[:, 0]
    keypoints = values[:, 1 : 1 + NUM_JOINTS * 2].reshape(n, NUM_JOINTS, 2)
    joints = joints.copy()
    for i in np.flatnonzero(filled):
        camera = cameras[i]
        if camera is not None:
            depth = values[i, 1 + NUM_JOINTS * 2 :]
            joints[i] = backproject(undistort_points(keypoints[i], camera), depth, camera.K)
    return presence, keypoints, joints, filled


def create(**options: str) -> MediaPipeHandsEstimator:
    """Factory for the registry (`--estimator mediapipe --estimator-option key=value`)."""
    return MediaPipeHandsEstimator(MediaPipeOptions.parse(options))
