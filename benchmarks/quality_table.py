"""The baseline's temporal quality on real footage, per smoothing mode: the table `baseline.py` prints.

MediaPipe runs once over the real two-hand video (`../shared/data/video/two_hands_interacting.mp4`,
kept outside the repository; a 65° horizontal field of view is assumed, the camera faces the
person: `view=exocentric`); its detections are replayed through the estimator for each smoothing
mode, so the rows differ only by what the estimator does after detection. Measures, per hand, on
what a dataset would store (`vidihand_ros.quality`): wrist acceleration, wrist depth steps,
depth jumps over 5 cm that the 2D palm size does not explain, reprojection of the 3D joints onto
the 2D keypoints through K, jitter of all joints, label swaps, and how far the stored keypoints
moved from MediaPipe's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidihand_ros.estimators.mediapipe.hands import HandDetector, MediaPipeHandsEstimator, MediaPipeOptions
from vidihand_ros.metrics import jitter
from vidihand_ros.quality import hand_arrays, identity_swaps, track_quality
from vidihand_ros.sources.video import VideoFrameSource
from vidihand_ros.stream import PoseStream, resolve_window
from vidihand_ros.testing.detections import RecordingDetector, ScriptedDetector
from vidihand_ros.testing.shared_data import TWO_HANDS_VIDEO, repo_root
from vidihand_ros.types import HAND_SIDES, CameraModel, FramePoses

VIDEO = repo_root().parent / "shared" / "data" / "video" / TWO_HANDS_VIDEO
CAMERA = CameraModel.from_fxfycxcy(1000.0, 1000.0, 640.0, 360.0, 1280, 720)
MODES = ("on", "causal", "off")


def run(video: Path, detector: HandDetector, smoothing: str) -> list[FramePoses]:
    """The video through the estimator and the real PoseStream (native window and stride)."""
    options = MediaPipeOptions.parse({"view": "exocentric", "smoothing": smoothing})
    estimator = MediaPipeHandsEstimator(options, detector)
    window, stride = resolve_window(estimator, None, None)
    stream = PoseStream(estimator, window=window, stride=stride)
    pairs = []
    for frame in VideoFrameSource(video, camera=CAMERA):
        pairs += stream.push(frame)
    pairs += stream.flush()
    stream.close()
    return [poses for _, poses in pairs if poses is not None]


def print_quality_table(video: Path = VIDEO) -> None:
    """Run every smoothing mode over `video` and print one row per mode and hand."""
    print()
    if not video.is_file():
        print(f"temporal quality: skipped, the real two-hand video is not at {video}")
        return
    recorder = RecordingDetector()
    runs = {"on": run(video, recorder, "on")}
    recorder.close()
    for mode in MODES[1:]:
        runs[mode] = run(video, ScriptedDetector(recorder.frames), mode)
    arrays = {mode: {side: hand_arrays(poses, side) for side in HAND_SIDES} for mode, poses in runs.items()}
    frames = len(runs["on"])
    print(
        f"Temporal quality on real footage ({video.name}, {frames} frames, 30 fps; per hand, while tracked)"
    )
    print()
    header = (
        "| smoothing | hand  | frames | accel. median | accel. p90 | depth step median | depth step max "
        "| unexplained depth jumps | reprojection | jitter | label swaps | 2D moved |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for mode in MODES:
        (_, left, left_ok), (_, right, right_ok) = arrays[mode]["left"], arrays[mode]["right"]
        swaps = identity_swaps(left[:, 0], right[:, 0], left_ok, right_ok)
        for side in HAND_SIDES:
            joints, keypoints, valid = arrays[mode][side]
            q = track_quality(joints, keypoints, CAMERA.K, valid)
            _, raw_keypoints, raw_valid = arrays["off"][side]
            both = valid & raw_valid
            moved = (
                np.linalg.norm(keypoints[both] - raw_keypoints[both], axis=-1).mean()
                if both.any()
                else np.nan
            )
            cells = [
                f"{mode:<9}",
                f"{side:<5}",
                f"{q.frames:>6}",
                f"{q.acceleration_mm:>7.1f} mm/f²",
                f"{q.acceleration_p90_mm:>5.1f} mm/f²",
                f"{q.depth_step_mm:>14.1f} mm",
                f"{q.depth_step_max_mm:>11.0f} mm",
                f"{q.unexplained_depth_jumps:>23}",
                f"{q.reprojection_px:>9.2f} px",
                f"{jitter(joints, mask=valid):>6.2f}",
                f"{swaps:>11}",
                f"{moved:>5.1f} px",
            ]
            print("| " + " | ".join(cells) + " |")
    print()
    print("accel.: |Δ² wrist| per frame²; jitter: mean |Δ² joint| (mm/frame²);")
    print("2D moved: mean distance of the stored keypoints from MediaPipe's")
