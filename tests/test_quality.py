"""Temporal quality measures on tracks with known answers (`vidihand_ros.quality`)."""

from __future__ import annotations

import numpy as np

from tests.synthetic_hands import hand_template, project
from vidihand_ros.quality import (
    depth_steps,
    identity_swaps,
    reprojection_px,
    track_quality,
    unexplained_depth_jumps,
    wrist_acceleration,
)

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _track(depths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A hand facing the camera at the given wrist depths, and its exact projection."""
    joints = (
        hand_template()[None] + np.stack([np.zeros_like(depths), np.zeros_like(depths), depths], -1)[:, None]
    )
    return joints, project(joints, K)


def test_acceleration_and_depth_steps_of_a_known_path() -> None:
    depths = 0.5 + 0.001 * np.arange(10) ** 2  # z'' = 2 mm/frame²
    joints, _ = _track(depths)
    valid = np.ones(10, dtype=bool)
    np.testing.assert_allclose(wrist_acceleration(joints, valid), 2.0, atol=1e-9)
    np.testing.assert_allclose(depth_steps(joints, valid), np.diff(depths), atol=1e-12)
    valid[4] = False  # an invalid frame breaks the triples and pairs through it
    assert len(wrist_acceleration(joints, valid)) == 8 - 3 and len(depth_steps(joints, valid)) == 9 - 2


def test_a_depth_jump_counts_only_when_the_2d_size_does_not_follow() -> None:
    depths = np.r_[np.full(5, 0.5), np.full(5, 0.6)]  # a 10 cm step
    joints, keypoints = _track(depths)
    valid = np.ones(10, dtype=bool)
    assert unexplained_depth_jumps(joints, keypoints, valid) == 0  # the image shrank with it
    frozen = np.repeat(keypoints[:1], 10, axis=0)  # the 2D hand did not change at all
    assert unexplained_depth_jumps(joints, frozen, valid) == 1
    assert abs(track_quality(joints, keypoints, K, valid).depth_step_max_mm - 100.0) < 1e-6


def test_reprojection_is_zero_on_the_rays_and_grows_off_them() -> None:
    joints, keypoints = _track(np.full(4, 0.5))
    valid = np.ones(4, dtype=bool)
    np.testing.assert_allclose(reprojection_px(joints, keypoints, K, valid), 0.0, atol=1e-9)
    np.testing.assert_allclose(
        reprojection_px(joints, keypoints + np.array([3.0, 4.0]), K, valid), 5.0, atol=1e-9
    )


def test_identity_swaps() -> None:
    t = np.arange(20, dtype=float)
    left = np.stack([100 + t, np.full(20, 200.0)], -1)
    right = np.stack([400 - t, np.full(20, 200.0)], -1)
    ok = np.ones(20, dtype=bool)
    assert identity_swaps(left, right, ok, ok) == 0
    swapped_left, swapped_right = left.copy(), right.copy()
    swapped_left[10:12], swapped_right[10:12] = right[10:12], left[10:12]  # labels swapped for 2 frames
    assert identity_swaps(swapped_left, swapped_right, ok, ok) == 2  # into the swap and back out
    # A lone hand that changes label in place.
    none = np.zeros(20, dtype=bool)
    lone_left, lone_right = ok.copy(), none.copy()
    lone_left[15:], lone_right[15:] = False, True
    assert identity_swaps(left, left, lone_left, lone_right) == 1
