"""One Euro smoothing, gap filling and the jitter measure, on synthetic hand motion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.synthetic_hands import FPS, lag_frames, reach_and_hold, slow_sweep
from vidihand_ros.estimators.mediapipe.filtering import OneEuroFilter, fill_gaps, jitter


def _filter(series: np.ndarray, f: OneEuroFilter, times: np.ndarray | None = None) -> np.ndarray:
    times = np.arange(len(series)) / FPS if times is None else times
    return np.array([f(x, t) for x, t in zip(series, times, strict=True)])


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=-1))))


def _with_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return clean + np.random.default_rng(seed).normal(0.0, sigma, clean.shape)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("path", ["reach", "sweep"])
def test_metres_defaults_cut_jitter_withoutlag_frames(path: str, seed: int) -> None:
    clean = reach_and_hold(np.random.default_rng(seed)) if path == "reach" else slow_sweep()
    noisy = _with_noise(clean, 0.005, seed + 100)  # 5 mm per axis
    smooth = _filter(noisy, OneEuroFilter.for_metres())
    assert jitter(noisy) / jitter(smooth) >= 3.0
    assert _rms(smooth, clean) < 0.85 * _rms(noisy, clean)
    assert lag_frames(smooth, clean) <= 1


def test_pixel_defaults_on_keypoints() -> None:
    path = reach_and_hold(np.random.default_rng(7))
    clean = 600.0 * path[:, :2] / path[:, 2:] + 320.0  # the same motion seen by a 600 px camera
    noisy = _with_noise(clean, 2.0, 7)
    smooth = _filter(noisy, OneEuroFilter.for_pixels())
    pad = np.zeros((len(clean), 1))
    gain = jitter(np.hstack([noisy, pad])) / jitter(np.hstack([smooth, pad]))
    assert gain >= 1.8
    assert _rms(smooth, clean) < _rms(noisy, clean)
    assert lag_frames(smooth, clean) <= 1


def test_the_lag_measure_sees_a_lagging_filter() -> None:
    """Control for the lag assertions: a fixed 0.5 Hz low-pass (beta 0) trails real motion."""
    clean = reach_and_hold(np.random.default_rng(0))
    smooth = _filter(_with_noise(clean, 0.005, 0), OneEuroFilter(min_cutoff=0.5, beta=0.0))
    assert lag_frames(smooth, clean) >= 3
    assert _rms(smooth, clean) > _rms(_with_noise(clean, 0.005, 0), clean)


def _reference_one_euro(xs: list[float], ts: list[float], mc: float, beta: float, dc: float) -> list[float]:
    """Scalar One Euro filter written from the paper, for comparison."""

    def alpha(cutoff: float, dt: float) -> float:
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff) / dt)

    out, x_hat, dx_hat = [xs[0]], xs[0], 0.0
    for k in range(1, len(xs)):
        dt = ts[k] - ts[k - 1]
        dx_hat += alpha(dc, dt) * ((xs[k] - x_hat) / dt - dx_hat)
        x_hat += alpha(mc + beta * abs(dx_hat), dt) * (xs[k] - x_hat)
        out.append(x_hat)
    return out


def test_matches_the_scalar_reference_on_irregular_timestamps() -> None:
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.01, 0.08, 80))
    data = rng.normal(0.0, 1.0, (80, 4, 3)).cumsum(axis=0)
    out = _filter(data, OneEuroFilter(min_cutoff=0.7, beta=0.3, d_cutoff=1.5), times)
    for j in range(4):
        for c in range(3):
            ref = _reference_one_euro(list(data[:, j, c]), list(times), 0.7, 0.3, 1.5)
            np.testing.assert_allclose(out[:, j, c], ref, rtol=1e-12)


def test_nan_elements_are_skipped_then_resumed() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, reset_after_s=0.5)
    ref = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    assert np.array_equal(f(np.array([1.0, 5.0]), 0.0), [1.0, 5.0])  # first sample passes through
    ref(np.array([1.0]), 0.0)
    out = f(np.array([np.nan, 6.0]), 0.1)
    assert np.isnan(out[0]) and 5.0 < out[1] < 6.0  # the other element is filtered as usual
    # The skipped element continues from its state with the true time step (0.2 s).
    resumed = f(np.array([2.0, 6.0]), 0.2)
    assert resumed[0] == pytest.approx(ref(np.array([2.0]), 0.2)[0])
    assert 1.0 < resumed[0] < 2.0


def test_long_missing_elements_restart() -> None:
    f = OneEuroFilter(min_cutoff=1.0, reset_after_s=0.5)
    f(np.array([0.0, 0.0]), 0.0)
    for k in range(1, 20):  # element 0 missing for almost 2 s
        f(np.array([np.nan, 0.0]), k / 10)
    out = f(np.array([1.0, 0.0]), 2.0)
    assert out[0] == 1.0  # a returning hand is not pulled back to where it vanished


def test_reset_after_zero_restarts_after_any_gap() -> None:
    f = OneEuroFilter(min_cutoff=1.0, reset_after_s=0.0)
    f(np.array([0.0]), 0.0)
    assert f(np.array([1.0]), 0.1)[0] < 1.0  # consecutive samples are filtered
    assert np.isnan(f(np.array([np.nan]), 0.2)[0])
    assert f(np.array([3.0]), 0.3)[0] == 3.0


def test_constant_input_stays_constant_and_reset_passes_through() -> None:
    f = OneEuroFilter.for_metres()
    for k in range(10):
        np.testing.assert_array_equal(f(np.full((21, 3), 0.4), k / FPS), np.full((21, 3), 0.4))
    f.reset()
    assert f(np.array([7.0]), 0.0)[0] == 7.0  # new shape and time accepted after reset


def test_bad_time_and_shape() -> None:
    f = OneEuroFilter()
    f(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="increase"):
        f(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(4), 2.0)


def test_fill_gaps_exact_on_linear_data() -> None:
    t = np.arange(12, dtype=float)
    values = np.stack([2.0 * t, -t + 3.0], axis=-1)[:, None, :].repeat(2, axis=1)  # (12, 2, 2)
    valid = np.ones(12, dtype=bool)
    valid[[3, 4, 7]] = False
    broken = values.copy()
    broken[~valid] = np.nan
    filled_values, filled = fill_gaps(broken, valid, max_gap=2)
    np.testing.assert_allclose(filled_values, values, rtol=1e-12)
    assert filled.tolist() == [not v for v in valid]
    assert np.isnan(broken[3]).all()  # the input is not modified


def test_fill_gaps_respects_max_gap_and_never_extrapolates() -> None:
    values = np.arange(12, dtype=float)
    valid = np.array([0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0], dtype=bool)
    out, filled = fill_gaps(np.where(valid, values, np.nan), valid, max_gap=2)
    # Run at 0 (start) and 11 (end): never; run 3–5 (3 long): too long; run 7–8: filled.
    assert filled.tolist() == [False] * 7 + [True, True] + [False] * 3
    np.testing.assert_allclose(out[7:9], [7.0, 8.0])
    assert np.isnan(out[[0, 3, 4, 5, 11]]).all()
    out3, filled3 = fill_gaps(np.where(valid, values, np.nan), valid, max_gap=3)
    assert filled3.tolist() == [False] * 3 + [True] * 3 + [False] + [True] * 2 + [False] * 3
    np.testing.assert_allclose(out3[3:9], [3.0, 4.0, 5.0, 6.0, 7.0, 8.0])


def test_fill_gaps_max_gap_zero_fills_nothing() -> None:
    valid = np.array([1, 0, 1], dtype=bool)
    out, filled = fill_gaps(np.array([0.0, np.nan, 2.0]), valid, max_gap=0)
    assert not filled.any() and np.isnan(out[1])


def test_jitter_hand_computed() -> None:
    # Constant acceleration of 2 mm/frame² along x: every second difference has norm 2 mm.
    k = np.arange(10, dtype=float)
    positions = np.zeros((10, 2, 3))
    positions[:, :, 0] = (0.5 * 0.002 * k**2)[:, None]
    assert jitter(positions) == pytest.approx(2.0)
    assert jitter(positions, fps=FPS) == pytest.approx(2.0 * FPS**2)  # mm/s²
    # Alternating ±1 mm along y: second differences of norm 4 mm; a NaN frame drops its 3 triples.
    zigzag = np.zeros((8, 3))
    zigzag[:, 1] = 0.001 * (-1.0) ** np.arange(8)
    assert jitter(zigzag) == pytest.approx(4.0)
    zigzag[4] = np.nan
    assert jitter(zigzag) == pytest.approx(4.0)
    assert math.isnan(jitter(zigzag[:2]))
