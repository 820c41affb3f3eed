"""The MediaPipe baseline on real footage: `../shared/data/video/two_hands_interacting.mp4`.

500 frames (1280×720, 30 fps) of one person facing the camera making fast two-hand gestures; the
hands touch and occlude each other throughout (MIT, from Dyn-HaMR; see the folder's README). The
camera faces the person (`view=exocentric`) and is not mirrored, so the subject's right hand is on
the image's left while the arms are not crossed (frames 0–60). The video has no calibration: a
65° horizontal field of view is assumed (fx = fy = 1000 px).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("mediapipe", reason="the mediapipe estimator needs the [baseline] extra")
pytest.importorskip("av", reason="reading video needs the [video] extra")

from vidihand_ros.estimators.mediapipe.hands import HandDetector, MediaPipeHandsEstimator, MediaPipeOptions
from vidihand_ros.metrics import jitter
from vidihand_ros.quality import TrackQuality, hand_arrays, identity_swaps, track_quality
from vidihand_ros.sources.video import VideoFrameSource
from vidihand_ros.stream import PoseStream, resolve_window
from vidihand_ros.testing.detections import RecordingDetector, ScriptedDetector
from vidihand_ros.testing.shared_data import video_path
from vidihand_ros.types import CameraModel, FramePoses

CAMERA = CameraModel.from_fxfycxcy(1000.0, 1000.0, 640.0, 360.0, 1280, 720)


@dataclass
class Run:
    poses: list[FramePoses]

    def side(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return hand_arrays(self.poses, side)

    def quality(self, side: str) -> TrackQuality:
        joints, keypoints, valid = self.side(side)
        return track_quality(joints, keypoints, CAMERA.K, valid)


def _run(detector: HandDetector, **options: str) -> Run:
    estimator = MediaPipeHandsEstimator(MediaPipeOptions.parse({"view": "exocentric", **options}), detector)
    window, stride = resolve_window(estimator, None, None)
    stream = PoseStream(estimator, window=window, stride=stride)
    out = []
    for frame in VideoFrameSource(video_path(), camera=CAMERA):
        out += stream.push(frame)
    out += stream.flush()
    stream.close()
    return Run([poses for _, poses in out if poses is not None])


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """The video through the real estimator (smoothing on), then the same detections without smoothing."""
    recorder = RecordingDetector()
    smoothed = _run(recorder)
    raw = _run(ScriptedDetector(recorder.frames), smoothing="off")
    return {"on": smoothed, "off": raw}


def test_both_hands_are_found_through_contact_and_occlusion(runs: dict[str, Run]) -> None:
    run = runs["on"]
    assert len(run.poses) == 500
    for side in ("left", "right"):
        assert run.side(side)[2].mean() >= 0.8, side


def test_no_hand_changes_its_label(runs: dict[str, Run]) -> None:
    run = runs["on"]
    (_, left_kp, left_ok), (_, right_kp, right_ok) = run.side("left"), run.side("right")
    assert identity_swaps(left_kp[:, 0], right_kp[:, 0], left_ok, right_ok) == 0
    # Arms not crossed (frames 0–60): the subject's right hand is on the image's left.
    both = left_ok[:60] & right_ok[:60]
    assert both.sum() >= 40
    assert (right_kp[:60, 0, 0][both] < left_kp[:60, 0, 0][both]).all()


def test_metric_3d_is_steady_and_agrees_with_the_2d(runs: dict[str, Run]) -> None:
    for side in ("left", "right"):
        on, off = runs["on"].quality(side), runs["off"].quality(side)
        assert on.acceleration_mm <= 10.0, side  # mm/frame², the target while tracked
        assert on.acceleration_mm < 0.5 * off.acceleration_mm, side
        assert on.unexplained_depth_jumps == 0, side
        assert off.unexplained_depth_jumps > 0, side  # control: the raw solve does jump
        assert on.reprojection_px <= off.reprojection_px + 0.01, side
        joints_on, _, ok_on = runs["on"].side(side)
        joints_off, _, ok_off = runs["off"].side(side)
        assert jitter(joints_on, mask=ok_on) < 0.5 * jitter(joints_off, mask=ok_off), side


def test_depth_stays_where_a_person_holds_their_hands(runs: dict[str, Run]) -> None:
    """The subject's hands are about arm's length from the camera: wrists 0.2–1.2 m deep, every frame."""
    for side in ("left", "right"):
        joints, _, ok = runs["on"].side(side)
        depth = joints[ok, 0, 2]
        assert depth.min() > 0.2 and depth.max() < 1.2, side
