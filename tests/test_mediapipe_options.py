"""Parts of the MediaPipe baseline that need no mediapipe: option parsing, the palm frame, drawing,
and a clear error when the extra is missing. These run in every venv (core CI included)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vidihand_ros.errors import InputError
from vidihand_ros.estimators import BUILTIN_ESTIMATORS, create_estimator
from vidihand_ros.estimators.mediapipe.hands import MediaPipeOptions
from vidihand_ros.geometry.palm import palm_frame, palm_orientation
from vidihand_ros.types import FramePoses, HandPose
from vidihand_ros.visualize import SIDE_COLOURS, draw_hands

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None


def test_options_default_and_parse_strings() -> None:
    assert MediaPipeOptions.parse({}) == MediaPipeOptions()
    assert MediaPipeOptions() == MediaPipeOptions(
        model_complexity=1,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
        mirrored=False,
        max_gap=0,
        smoothing="on",
        view="egocentric",
        mano_dir=None,
    )
    parsed = MediaPipeOptions.parse(
        {
            "model_complexity": "0",
            "min_detection_confidence": "0.3",
            "min_tracking_confidence": "0.7",
            "mirrored": "TRUE",
            "max_gap": "3",
            "smoothing": "off",
            "view": "exocentric",
            "mano_dir": "/tmp/mano",
        }
    )
    assert parsed == MediaPipeOptions(0, 0.3, 0.7, True, 3, "off", "exocentric", "/tmp/mano")
    assert MediaPipeOptions.parse({"smoothing": "Causal"}).smoothing == "causal"
    assert MediaPipeOptions.parse({"smoothing": "true", "view": "ANY"}) == MediaPipeOptions(view="any")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"model_complexity": "2"}, "model_complexity"),
        ({"model_complexity": "one"}, "model_complexity"),
        ({"min_detection_confidence": "1.5"}, "min_detection_confidence"),
        ({"min_tracking_confidence": "x"}, "min_tracking_confidence"),
        ({"mirrored": "maybe"}, "mirrored"),
        ({"max_gap": "-1"}, "max_gap"),
        ({"smoothing": "2"}, "smoothing"),
        ({"view": "overhead"}, "view"),
        ({"colour": "red"}, "unknown mediapipe option"),
    ],
)
def test_bad_options_are_input_errors_naming_the_option(options: dict[str, str], needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        MediaPipeOptions.parse(options)


def test_registry_knows_mediapipe() -> None:
    assert BUILTIN_ESTIMATORS["mediapipe"] == "vidihand_ros.estimators.mediapipe.hands:create"


@pytest.mark.skipif(HAS_MEDIAPIPE, reason="checks the message shown when mediapipe is NOT installed")
def test_missing_mediapipe_says_how_to_install() -> None:
    with pytest.raises(InputError, match=r"vidihand_ros\[baseline\]"):
        create_estimator("mediapipe", {})


def _right_hand_palm_to_camera() -> np.ndarray:
    """A right hand shown palm-first to the camera, fingers up: index base on the image's right."""
    joints = np.full((21, 3), np.nan)
    joints[0] = (0.0, 0.0, 0.5)  # wrist
    joints[5] = (0.03, -0.08, 0.5)  # index base
    joints[9] = (0.005, -0.09, 0.5)  # middle base
    joints[13] = (-0.015, -0.085, 0.5)  # ring base
    joints[17] = (-0.035, -0.075, 0.5)  # pinky base
    return joints


def test_palm_frame_of_a_right_palm_facing_the_camera() -> None:
    joints = _right_hand_palm_to_camera()
    frame = palm_frame(joints, "right")
    fingers, _, back = frame[:, 0], frame[:, 1], frame[:, 2]
    np.testing.assert_allclose(fingers, np.array([0.005, -0.09, 0.0]) / np.hypot(0.005, 0.09), atol=1e-12)
    np.testing.assert_allclose(back, [0.0, 0.0, 1.0], atol=1e-12)  # back of the hand faces away
    np.testing.assert_allclose(frame.T @ frame, np.eye(3), atol=1e-12)
    assert np.linalg.det(frame) == pytest.approx(1.0)
    R = Rotation.from_rotvec(palm_orientation(joints, "right")).as_matrix()
    np.testing.assert_allclose(R, frame, atol=1e-12)


def test_palm_frame_of_the_mirrored_left_hand_is_the_mirror_image() -> None:
    right = _right_hand_palm_to_camera()
    left = right * np.array([-1.0, 1.0, 1.0]) + np.array([0.0, 0.0, 0.0])  # mirror in x
    frame = palm_frame(left, "left")
    np.testing.assert_allclose(frame[:, 2], [0.0, 0.0, 1.0], atol=1e-12)  # back still faces away
    np.testing.assert_allclose(frame[:, 0], palm_frame(right, "right")[:, 0] * [-1, 1, 1], atol=1e-12)
    # The same joints read as the wrong side put the back of the hand towards the camera.
    np.testing.assert_allclose(palm_frame(left, "right")[:, 2], [0.0, 0.0, -1.0], atol=1e-12)


def test_palm_orientation_is_nan_for_missing_or_degenerate_palms_and_batches() -> None:
    good = _right_hand_palm_to_camera()
    missing = good.copy()
    missing[9] = np.nan
    flat = good.copy()
    flat[[5, 9, 17]] = good[0]
    out = palm_orientation(np.stack([good, missing, flat]), "right")
    assert out.shape == (3, 3)
    assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()
    with pytest.raises(ValueError, match="side"):
        palm_orientation(good, "middle")


def test_draw_hands_paints_each_side_in_its_colour_and_skips_absent_hands() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    keypoints = np.stack([np.linspace(20, 60, 21), np.linspace(90, 30, 21)], axis=1).astype(np.float32)
    poses = FramePoses(
        0,
        "cam",
        left=HandPose(presence=0.9, keypoints_2d=keypoints + np.float32(80) * np.array([1, 0], np.float32)),
        right=HandPose(presence=0.1, keypoints_2d=keypoints),
    )
    out = draw_hands(image, poses, labels=False)
    assert not image.any(), "the input must not be modified"
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert SIDE_COLOURS["left"] in colours
    assert SIDE_COLOURS["right"] not in colours  # presence 0.1 < 0.5: not drawn
    assert not out[:, :75].any()  # nothing where the absent right hand would be
