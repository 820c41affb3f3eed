"""Keypoint undistortion for the CameraInfo models, checked against OpenCV's forward projection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.synthetic_hands import project, random_hands
from vidihand_ros.errors import InputError
from vidihand_ros.geometry import solve_translation, undistort_points
from vidihand_ros.types import CameraModel

K = np.array([[420.0, 0.0, 322.0], [0.0, 418.0, 238.0], [0.0, 0.0, 1.0]])
CAMERAS = {
    "plumb_bob": np.array([-0.28, 0.09, 0.0012, -0.0008, -0.012]),
    "rational_polynomial": np.array([0.9, -0.12, 0.001, 0.0015, 0.02, 1.2, 0.05, 0.01]),
    "equidistant": np.array([0.12, -0.04, 0.015, -0.004]),
}
# Half field of view (degrees) sampled for each model: radial-tangential lenses are only defined
# well inside ~55°, fisheye lenses well beyond.
MAX_ANGLE = {"plumb_bob": 45.0, "rational_polynomial": 50.0, "equidistant": 75.0}


def _distorted_projection(points: np.ndarray, camera: CameraModel) -> np.ndarray:
    """What the real (distorted) camera sees: OpenCV's forward model, independent of our code."""
    flat = points.reshape(-1, 1, 3).astype(np.float64)
    zero = np.zeros(3)
    if camera.distortion_model == "equidistant":
        uv, _ = cv2.fisheye.projectPoints(flat, zero, zero, camera.K, camera.D)
    else:
        uv, _ = cv2.projectPoints(flat, zero, zero, camera.K, camera.D)
    return np.asarray(uv).reshape(*points.shape[:-1], 2)


def _points_in_view(rng: np.random.Generator, n: int, max_angle_deg: float) -> np.ndarray:
    theta = np.deg2rad(rng.uniform(0.0, max_angle_deg, n))
    phi = rng.uniform(0.0, 2 * np.pi, n)
    depth = rng.uniform(0.2, 1.5, n)
    rays = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    return rays * (depth / rays[:, 2])[:, None]


@pytest.mark.parametrize("model", sorted(CAMERAS))
def test_undistortion_inverts_the_lens(model: str) -> None:
    camera = CameraModel(K=K, width=640, height=480, distortion_model=model, D=CAMERAS[model])
    points = _points_in_view(np.random.default_rng(0), 400, MAX_ANGLE[model])
    distorted = _distorted_projection(points, camera)
    ideal = project(points, K)
    shift = np.linalg.norm(distorted - ideal, axis=-1)
    assert shift.max() > 20.0  # the lens matters at the border...
    undistorted = undistort_points(distorted, camera)
    np.testing.assert_allclose(undistorted, ideal, atol=1e-3)  # ...and is undone to 1e-3 px


@pytest.mark.parametrize("model", ["", "none", "plumb_bob"])
def test_identity_models(model: str) -> None:
    # "plumb_bob" with no coefficients (an uncalibrated camera's CameraInfo) is the identity too.
    uv = np.random.default_rng(1).uniform(0, 640, (5, 21, 2))
    out = undistort_points(uv, CameraModel(K=K, distortion_model=model))
    np.testing.assert_array_equal(out, uv)
    assert out is not uv


def test_nan_points_stay_nan_and_shape_is_kept() -> None:
    camera = CameraModel(K=K, distortion_model="equidistant", D=CAMERAS["equidistant"])
    points = _points_in_view(np.random.default_rng(2), 42, 60.0).reshape(2, 21, 3)
    distorted = _distorted_projection(points, camera)
    distorted[0, 3] = np.nan
    distorted[1, 7:] = np.nan
    out = undistort_points(distorted, camera)
    assert out.shape == (2, 21, 2)
    nan = np.isnan(distorted).any(axis=-1)
    assert np.array_equal(np.isnan(out).any(axis=-1), nan)
    np.testing.assert_allclose(out[~nan], project(points, K)[~nan], atol=1e-3)


def test_unknown_model_names_the_field() -> None:
    with pytest.raises(InputError) as err:
        undistort_points(np.zeros((3, 2)), CameraModel(K=K, distortion_model="kannala_brandt", D=np.ones(4)))
    assert err.value.field == "distortion_model"
    assert "kannala_brandt" in str(err.value)


def test_wrong_coefficient_count_names_the_field() -> None:
    with pytest.raises(InputError) as err:
        undistort_points(np.zeros((3, 2)), CameraModel(K=K, distortion_model="equidistant", D=np.ones(5)))
    assert err.value.field == "D"


def test_undistorted_keypoints_give_the_right_translation_on_a_fisheye() -> None:
    """The end-to-end reason for undistorting: wide-angle head camera, hands off-axis."""
    K_wide = np.array([[300.0, 0.0, 640.0], [0.0, 300.0, 480.0], [0.0, 0.0, 1.0]])
    camera = CameraModel(
        K=K_wide, width=1280, height=960, distortion_model="equidistant", D=CAMERAS["equidistant"]
    )
    rng = np.random.default_rng(3)
    joints = random_hands(rng, 6)
    # Hands 35–50 cm away, 40–55° off-axis towards the lower corners, where a head camera sees them.
    angle = np.deg2rad(rng.uniform(40, 55, 6))
    direction = rng.choice([0.6, np.pi - 0.6], 6)
    z = rng.uniform(0.35, 0.5, 6)
    t = (
        np.stack([np.tan(angle) * np.cos(direction), np.tan(angle) * np.sin(direction), np.ones(6)], -1)
        * z[:, None]
    )
    uv = _distorted_projection(joints + t[:, None, :], camera)
    assert np.all((uv > 0) & (uv < [1280, 960]))  # in the image

    right = solve_translation(joints, undistort_points(uv, camera), K_wide)
    np.testing.assert_allclose(right, t, atol=1e-6)
    wrong = solve_translation(joints, uv, K_wide)
    assert np.linalg.norm(wrong - t, axis=-1).min() > 0.05  # ≥ 5 cm off without undistortion
