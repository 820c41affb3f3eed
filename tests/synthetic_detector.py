"""Scripted per-frame hands for the MediaPipe estimator (`ScriptedDetector`: a test double for
MediaPipe's graph).

Synthetic hands have no pixels for MediaPipe to look at, so these tests hand the estimator the
detections MediaPipe would report — keypoints in pixels, hand-centred "world" landmarks whose size
wanders from frame to frame as MediaPipe's do, and side labels — built from known 3D paths.
Everything after detection (tracking, the metric solve, smoothing, gap filling) is the real code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tests.synthetic_hands import FPS, hand_template, project
from vidihand_ros.estimators.mediapipe.detector import RawHand
from vidihand_ros.estimators.mediapipe.hands import MediaPipeHandsEstimator, MediaPipeOptions
from vidihand_ros.stream import PoseStream, resolve_window
from vidihand_ros.testing.detections import ScriptedDetector
from vidihand_ros.types import CameraModel, Frame, FramePoses

F64 = NDArray[np.float64]
IMAGE_SIZE = (640, 480)
CAMERA = CameraModel.from_fxfycxcy(500.0, 500.0, 320.0, 240.0, *IMAGE_SIZE)
_OTHER = {"left": "right", "right": "left"}


def hand_joints(side: str, wrist: F64) -> F64:
    """(T, 21, 3) joints of a hand facing the camera, fingers up, wrist on the (T, 3) path."""
    shape = hand_template() if side == "right" else hand_template() * [-1.0, 1.0, 1.0]
    return np.asarray(wrist)[:, None, :] + shape[None]


@dataclass
class Recording:
    """What the detector reports per frame, and the truth: (T, 21, 3) joints per side (NaN: absent)."""

    detections: list[list[RawHand]]
    truth: dict[str, F64]


def record(
    paths: Mapping[str, F64],
    *,
    seed: int = 0,
    keypoint_noise_px: float = 1.5,
    size_noise: float = 0.15,
    shape_noise_m: float = 0.003,
    wrong_labels: Mapping[str, set[int]] | None = None,
) -> Recording:
    """Detections of hands moving along `paths` (side → (T, 3) wrist path, NaN rows: not in view).

    Each frame's landmarks are the true hand around its centre, scaled by a log-normal factor
    (`size_noise`, MediaPipe's per-frame size guess) plus `shape_noise_m`; keypoints are the true
    projection plus `keypoint_noise_px`. `wrong_labels` names frames where a side is mislabelled.
    """
    rng = np.random.default_rng(seed)
    frames = len(next(iter(paths.values())))
    truth = {side: hand_joints(side, path) for side, path in paths.items()}
    detections: list[list[RawHand]] = [[] for _ in range(frames)]
    for side, joints in truth.items():
        for t in range(frames):
            if not np.isfinite(joints[t]).all():
                continue
            centred = joints[t] - joints[t].mean(axis=0)
            world = centred * np.exp(rng.normal(0.0, size_noise)) + rng.normal(0.0, shape_noise_m, (21, 3))
            keypoints = project(joints[t], CAMERA.K) + rng.normal(0.0, keypoint_noise_px, (21, 2))
            label = _OTHER[side] if wrong_labels and t in wrong_labels.get(side, set()) else side
            detections[t].append(RawHand(keypoints, world, label, 0.95))
    shuffled = [
        [hands[i] for i in rng.permutation(len(hands))] for hands in detections
    ]  # order means nothing
    return Recording(shuffled, truth)


def estimate(recording: Recording, **options: str) -> list[FramePoses]:
    """Run the real estimator over a recording through the real PoseStream, native window."""
    estimator = MediaPipeHandsEstimator(
        MediaPipeOptions.parse(options), detector=ScriptedDetector(recording.detections)
    )
    window, stride = resolve_window(estimator, None, None)
    stream = PoseStream(estimator, window=window, stride=stride)
    pixels = np.zeros((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)
    out = []
    for t in range(len(recording.detections)):
        frame = Frame(
            round(1e18 + t * 1e9 / FPS), "camera", "rgb8", *IMAGE_SIZE, pixels=pixels, camera=CAMERA, index=t
        )
        out += stream.push(frame)
    out += stream.flush()
    stream.close()
    return [poses for _, poses in out if poses is not None]
