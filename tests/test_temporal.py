"""Steady metric 3D from the MediaPipe baseline: one hand size, zero-lag smoothing, joints on the rays.

The estimator runs for real on scripted detections (tests/synthetic_detector.py: MediaPipe's
graph replaced, since synthetic hands have no pixels) whose size wanders like MediaPipe's; real
footage is in tests/test_mediapipe_video.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.synthetic_detector import CAMERA, estimate, record
from tests.synthetic_hands import lag_frames, min_jerk, reach_and_hold, slow_sweep
from vidihand_ros.estimators.mediapipe.temporal import (
    HAND_SIZE_PRIOR_M,
    HandScale,
    backproject,
    hand_size,
    local_linear,
    running_median,
    tracked_runs,
)
from vidihand_ros.quality import hand_arrays, track_quality

FRAME_S = 1.0 / 30.0


# --- the pieces -------------------------------------------------------------------------------------


def test_local_linear_returns_ramps_unchanged_where_the_kernel_is_whole() -> None:
    times = np.arange(40) * FRAME_S
    ramp = np.stack([3.0 * times + 1.0, -2.0 * times], axis=-1)
    observed = np.ones(40, dtype=bool)
    smooth = local_linear(ramp, times, observed, 0.1)
    np.testing.assert_allclose(smooth[9:-9], ramp[9:-9], atol=1e-9)  # the kernel reaches 3σ = 9 frames
    # Nearer the ends the estimate leans to the local mean: never beyond the data.
    assert ramp[0, 0] <= smooth[0, 0] <= ramp[3, 0]


def test_local_linear_averages_noise_and_keeps_runs_apart() -> None:
    rng = np.random.default_rng(0)
    times = np.arange(60) * FRAME_S
    observed = np.ones(60, dtype=bool)
    observed[30:33] = False  # a gap: the two runs must not leak into each other
    values = np.where(np.arange(60) < 30, 0.0, 10.0) + rng.normal(0.0, 0.1, 60)
    smooth = local_linear(values, times, observed, 0.1)
    assert np.isnan(smooth[30:33]).all()
    assert np.abs(smooth[:30]).max() < 0.2 and np.abs(smooth[33:] - 10.0).max() < 0.2
    assert np.std(np.diff(smooth[5:25])) < 0.5 * np.std(np.diff(values[5:25]))
    assert tracked_runs(observed)[[0, 29, 33, 59]].tolist() == [1, 1, 3, 3]


def test_running_median_removes_spikes_and_keeps_steps() -> None:
    values = np.r_[np.zeros(20), np.ones(20)]
    values[[7, 28]] = [5.0, -5.0]  # one-frame outliers
    out = running_median(values, np.ones(40, dtype=bool), 5)
    np.testing.assert_array_equal(out, np.r_[np.zeros(20), np.ones(20)])


def test_backproject_inverts_the_projection() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform([-0.2, -0.2, 0.3], [0.2, 0.2, 1.0], (21, 3))
    uv = points @ CAMERA.K.T
    uv = uv[:, :2] / uv[:, 2:]
    np.testing.assert_allclose(backproject(uv, points[:, 2], CAMERA.K), points, atol=1e-12)


def test_hand_scale_settles_on_the_hands_median_size() -> None:
    rng = np.random.default_rng(2)
    shape = rng.normal(0.0, 0.03, (21, 3))
    true_size = 0.8
    shape *= true_size / hand_size(shape)
    scale = HandScale()
    first = scale.rescale(shape * 1.5)
    assert hand_size(first) == pytest.approx(HAND_SIZE_PRIOR_M)  # one sighting: the prior decides
    sizes = [hand_size(scale.rescale(shape * np.exp(rng.normal(0.0, 0.2)))) for _ in range(200)]
    assert np.std(sizes[-50:]) < 0.02 * true_size  # one size, whatever each frame guessed
    assert sizes[-1] == pytest.approx(true_size, rel=0.05)


# --- the estimator on hands that move (scripted detections) ----------------------------------------


def _depth_path(kind: str) -> np.ndarray:
    """Wrist paths (T, 3): a depth step (a fast 8-frame reach from 0.45 to 0.70 m) or a depth ramp."""
    if kind == "step":
        a, b = np.array([0.05, 0.0, 0.45]), np.array([0.05, 0.0, 0.70])
        return np.vstack([np.repeat(a[None], 40, 0), min_jerk(a, b, 8), np.repeat(b[None], 40, 0)])
    return np.hstack([np.full((120, 1), 0.05), np.zeros((120, 1)), np.linspace(0.4, 0.7, 120)[:, None]])


def _wrists(path: np.ndarray, seed: int = 1, **options: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    recording = record({"right": path}, seed=seed)
    joints, keypoints, usable = hand_arrays(estimate(recording, **options), "right")
    assert usable.all()
    return joints, keypoints, recording.truth["right"]


@pytest.mark.parametrize("path", ["reach", "sweep", "step", "ramp"])
def test_smoothing_makes_depth_steady_and_consistent_with_2d(path: str) -> None:
    wrist = {"reach": reach_and_hold(np.random.default_rng(0)), "sweep": slow_sweep()}.get(path)
    wrist = _depth_path(path) if wrist is None else wrist
    on, on_kp, truth = _wrists(wrist)
    off, off_kp, _ = _wrists(wrist, smoothing="off")
    valid = np.ones(len(on), dtype=bool)
    q_on, q_off = track_quality(on, on_kp, CAMERA.K, valid), track_quality(off, off_kp, CAMERA.K, valid)
    assert q_on.acceleration_mm <= 10.0 and q_on.acceleration_mm < 0.25 * q_off.acceleration_mm
    assert q_off.acceleration_mm > 10.0  # control: the wandering size does shake the raw depth
    assert q_on.unexplained_depth_jumps == 0
    assert q_on.reprojection_px <= q_off.reprojection_px + 0.01  # 3D on the rays of the 2D, both ways
    assert q_on.reprojection_px < 0.01
    # Closer to the truth than the raw solve, not further.
    error_on = np.linalg.norm(on[:, 0] - truth[:, 0], axis=-1).mean()
    error_off = np.linalg.norm(off[:, 0] - truth[:, 0], axis=-1).mean()
    assert error_on <= error_off + 0.002


@pytest.mark.parametrize("seed", range(3))
def test_no_lag_on_reaches_in_depth_and_across(seed: int) -> None:
    wrist = reach_and_hold(np.random.default_rng(seed))
    joints, _, truth = _wrists(wrist, seed=seed)
    for axis in range(3):
        assert lag_frames(joints[:, 0, axis], truth[:, 0, axis]) <= 1, axis


def test_a_depth_step_is_followed_within_a_frame() -> None:
    joints, _, truth = _wrists(_depth_path("step"))
    middle = 0.5 * (0.45 + 0.70) + (truth[0, 0, 2] - 0.45)

    def crossing(z: np.ndarray) -> int:
        return int(np.argmax(z > middle))

    assert abs(crossing(joints[:, 0, 2]) - crossing(truth[:, 0, 2])) <= 1


def test_a_depth_ramp_is_followed_within_a_frame() -> None:
    joints, _, truth = _wrists(_depth_path("ramp"))
    speed = np.diff(truth[:, 0, 2]).mean()  # metres per frame
    lag = (truth[10:-10, 0, 2] - joints[10:-10, 0, 2]) / speed
    assert abs(np.median(lag)) <= 1.0


def test_causal_smoothing_trades_a_little_lag_for_latency() -> None:
    wrist = reach_and_hold(np.random.default_rng(0))
    causal, causal_kp, truth = _wrists(wrist, smoothing="causal")
    off, off_kp, _ = _wrists(wrist, smoothing="off")
    valid = np.ones(len(causal), dtype=bool)
    q_causal, q_off = (
        track_quality(causal, causal_kp, CAMERA.K, valid),
        track_quality(off, off_kp, CAMERA.K, valid),
    )
    assert q_causal.acceleration_mm < 0.25 * q_off.acceleration_mm
    assert q_causal.reprojection_px < 0.01
    assert lag_frames(causal[:, 0, 2], truth[:, 0, 2]) <= 2


def test_short_losses_restart_the_smoothing_where_the_hand_comes_back() -> None:
    """A hand lost for 6 frames returns 15 cm deeper: no smoothing across the gap drags it back."""
    a, b = np.array([0.0, 0.0, 0.45]), np.array([0.0, 0.0, 0.60])
    wrist = np.vstack([np.repeat(a[None], 40, 0), np.full((6, 3), np.nan), np.repeat(b[None], 40, 0)])
    recording = record({"right": wrist}, seed=3)
    joints, _, usable = hand_arrays(estimate(recording), "right")
    assert not usable[40:46].any() and usable[:40].all() and usable[46:].all()
    truth = recording.truth["right"]
    assert np.abs(joints[46:50, 0, 2] - truth[46:50, 0, 2]).max() < 0.03
    assert np.abs(joints[36:40, 0, 2] - truth[36:40, 0, 2]).max() < 0.03


def test_a_window_sent_again_is_answered_without_a_cut() -> None:
    """A client retrying a window (its first reply lost) must not reset the stream's tracking."""
    from tests.synthetic_detector import IMAGE_SIZE, ScriptedDetector
    from vidihand_ros.estimators.mediapipe.hands import MediaPipeHandsEstimator, MediaPipeOptions
    from vidihand_ros.types import Frame, Window

    recording = record({"right": reach_and_hold(np.random.default_rng(4), frames=48)}, seed=4)
    detector = ScriptedDetector(recording.detections)
    estimator = MediaPipeHandsEstimator(MediaPipeOptions(), detector=detector)
    pixels = np.zeros((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), np.uint8)
    frames = [
        Frame(10**9 + t * 33_000_000, "c", "rgb8", *IMAGE_SIZE, pixels=pixels, camera=CAMERA, index=t)
        for t in range(48)
    ]
    first = estimator.estimate([Window(frames[:32], 0, 32, 0)])[0]
    again = estimator.estimate([Window(frames[:32], 0, 32, 0)])[0]
    assert detector.calls == 32  # nothing detected twice
    for a, b in zip(first, again, strict=True):
        assert a.right is not None and b.right is not None
        np.testing.assert_array_equal(a.right.joints_3d, b.right.joints_3d)
    estimator.estimate([Window(frames[16:48], 16, 32, 0)])
    assert detector.calls == 48
