"""Temporal smoothing and gap filling for per-frame hand estimates.

Per-frame estimators (the MediaPipe baseline above all) jitter from frame to frame. The One Euro
filter (Casiez et al., CHI 2012) is a first-order low-pass whose cutoff rises with speed: strong
smoothing while a hand is still, little lag while it moves. It works per element on arrays of any
shape (joints, translations, keypoints) and with irregular timestamps.

Parameters depend on the units. Tuned on 30 fps synthetic hand motion (reach-and-hold moves of up to
~0.9 m/s, and slow sweeps, see tests/test_filtering.py), where they cut jitter ≥ 3× (metres, 5 mm
noise) and lower the error to the true path, with at most one frame of lag:

- metres (3D joints, translation): `METRES` = min_cutoff 0.3 Hz, beta 20 per m/s, d_cutoff 1 Hz;
- pixels (2D keypoints): `PIXELS` = min_cutoff 0.3 Hz, beta 0.1 per px/s, d_cutoff 1 Hz (a
  keypoint moves fast in pixels relative to its 1–4 px noise, so this one smooths less).

No first-order filter can both smooth and keep up with motion that is fast relative to the noise:
on a hand sweeping continuously at 0.6 m/s, one frame of lag is 2 cm, more than 5 mm noise.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["METRES", "PIXELS", "OneEuroFilter", "fill_gaps", "jitter"]

#: One Euro parameters for positions in metres (3D joints, translations) at hand speeds.
METRES: dict[str, float] = {"min_cutoff": 0.3, "beta": 20.0, "d_cutoff": 1.0}
#: One Euro parameters for image positions in pixels (2D keypoints).
PIXELS: dict[str, float] = {"min_cutoff": 0.3, "beta": 0.1, "d_cutoff": 1.0}


class OneEuroFilter:
    """One Euro filter over arrays of any (fixed) shape, one independent filter per element.

    `min_cutoff` (Hz) sets the smoothing at rest, `beta` (Hz per unit/s) how fast the cutoff rises
    with speed, `d_cutoff` (Hz) the smoothing of the speed estimate. A NaN element is returned as
    NaN and skipped: its state is kept and the next finite sample continues from it with the true
    time step, unless that element has been missing for more than `reset_after_s`, in which case it
    restarts (so a hand that returns elsewhere is not pulled back to where it vanished).
    """

    def __init__(
        self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, reset_after_s: float = 0.5
    ) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0 or reset_after_s < 0:
            raise ValueError("need min_cutoff > 0, d_cutoff > 0, beta ≥ 0 and reset_after_s ≥ 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset_after_s = float(reset_after_s)
        self.reset()

    @classmethod
    def for_metres(cls, **overrides: float) -> OneEuroFilter:
        """A filter tuned for hand positions in metres (`METRES`)."""
        return cls(**{**METRES, **overrides})

    @classmethod
    def for_pixels(cls, **overrides: float) -> OneEuroFilter:
        """A filter tuned for image keypoints in pixels (`PIXELS`)."""
        return cls(**{**PIXELS, **overrides})

    def reset(self) -> None:
        """Forget all state; the next call passes its input through unchanged."""
        self._x: NDArray[np.float64] | None = None  # last filtered value per element
        self._dx = np.zeros(0)  # last filtered speed per element
        self._t_elem = np.zeros(0)  # time of each element's last finite sample (NaN: never)
        self._t_last: float | None = None

    def __call__(self, x: ArrayLike, t_s: float) -> NDArray[np.float64]:
        """Filter sample `x` taken at time `t_s` (seconds, strictly increasing across calls)."""
        x = np.asarray(x, dtype=np.float64)
        t = float(t_s)
        if not math.isfinite(t):
            raise ValueError(f"timestamp must be finite, got {t_s}")
        if self._x is None or self._t_last is None:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            self._t_elem = np.where(np.isfinite(x), t, np.nan)
            self._t_last = t
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"sample shape {x.shape} differs from the filter's {self._x.shape}")
        if t <= self._t_last:
            raise ValueError(f"timestamps must increase: got {t} after {self._t_last}")
        finite = np.isfinite(x)
        dt = t - self._t_elem  # NaN where the element was never seen
        continuing = self._t_elem == self._t_last  # seen in the previous call
        step = finite & (continuing | (dt <= self.reset_after_s))
        fresh = finite & ~step
        self._t_last = t
        dt_safe = np.where(step, dt, 1.0)

        dx = np.where(step, (x - self._x) / dt_safe, 0.0)
        dx_hat = self._dx + _alpha(self.d_cutoff, dt_safe) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        x_hat = self._x + _alpha(cutoff, dt_safe) * (x - self._x)

        self._x = np.where(step, x_hat, np.where(fresh, x, self._x))
        self._dx = np.where(step, dx_hat, np.where(fresh, 0.0, self._dx))
        self._t_elem = np.where(finite, t, self._t_elem)
        return np.where(finite, self._x, np.nan)


def _alpha(cutoff: Any, dt: NDArray[np.float64]) -> NDArray[np.float64]:
    """Smoothing factor of a first-order low-pass with the given cutoff (Hz) over time step dt."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return np.asarray(1.0 / (1.0 + tau / dt))


def fill_gaps(
    values: ArrayLike, valid: ArrayLike, max_gap: int
) -> tuple[NDArray[np.floating], NDArray[np.bool_]]:
    """Linearly interpolate runs of ≤ `max_gap` invalid frames that lie between two valid frames.

    Args:
        values: (T, ...) per-frame values (axis 0 is time).
        valid: (T,) which frames hold observed values.
        max_gap: longest run of invalid frames to fill; 0 fills nothing.

    Returns the values with filled frames replaced (a new array; other invalid frames untouched)
    and a (T,) flag of the frames that were filled. Runs at the start or end are never filled:
    this interpolates, it never extrapolates. Filled frames must stay flagged downstream, never be
    reported as observed.
    """
    out = np.array(values, dtype=np.result_type(np.asarray(values).dtype, np.float32), copy=True)
    ok = np.asarray(valid, dtype=bool)
    if max_gap < 0:
        raise ValueError(f"max_gap must be ≥ 0, got {max_gap}")
    if out.ndim == 0 or ok.shape != out.shape[:1]:
        raise ValueError(f"valid must have shape ({out.shape[0] if out.ndim else '?'},), got {ok.shape}")
    filled = np.zeros(ok.shape, dtype=bool)
    if max_gap == 0:
        return out, filled
    observed = np.flatnonzero(ok)
    for before, after in itertools.pairwise(observed):
        gap = after - before - 1
        if 0 < gap <= max_gap:
            frac = (np.arange(1, gap + 1) / (gap + 1)).reshape((gap,) + (1,) * (out.ndim - 1))
            out[before + 1 : after] = out[before] + frac * (out[after] - out[before])
            filled[before + 1 : after] = True
    return out, filled


def jitter(positions: ArrayLike, fps: float | None = None) -> float:
    """Jitter of any (T, ..., 3) trajectory in metres: `vidihand_ros.metrics.jitter` over its points.

    mm/frame² without `fps`, mm/s² with it; NaN with fewer than three frames.
    """
    from vidihand_ros.metrics import jitter as joint_jitter

    p = np.asarray(positions, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"expected positions of shape (T, ..., 3), got {p.shape}")
    return joint_jitter(p.reshape(p.shape[0], -1, 3), fps)
