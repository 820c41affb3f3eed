"""Synthetic hand-shaped point sets for geometry and tracking tests (no model, no images)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation


def hand_template() -> NDArray[np.float64]:
    """A flat-ish open right hand, 21 joints in metres (wrist at the origin, fingers along -y).

    Order: wrist, then thumb→pinky, each base→tip — the project's joint order.
    """
    joints = [np.zeros(3)]
    # (base x, base y, direction angle from -y in the palm plane, bone lengths)
    fingers = [
        (0.025, -0.025, 0.9, (0.035, 0.032, 0.028, 0.024)),
        (0.025, -0.090, 0.15, (0.0, 0.040, 0.025, 0.022)),
        (0.005, -0.092, 0.0, (0.0, 0.045, 0.028, 0.024)),
        (-0.015, -0.088, -0.12, (0.0, 0.042, 0.026, 0.022)),
        (-0.033, -0.080, -0.3, (0.0, 0.032, 0.020, 0.019)),
    ]
    for bx, by, angle, bones in fingers:
        direction = np.array([np.sin(angle), -np.cos(angle), 0.0])
        point = np.array([bx, by, 0.0])
        for k, length in enumerate(bones):
            # Curl each finger a little out of the palm plane so the set is not coplanar.
            point = point + length * direction + np.array([0.0, 0.0, 0.004 * (k + 1)])
            joints.append(point.copy())
    return np.asarray(joints)


def random_hands(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """(n, 21, 3) randomly rotated, slightly scaled templates, wrist-relative (metres)."""
    rotations = Rotation.random(n, random_state=rng).as_matrix()
    scale = rng.uniform(0.8, 1.2, size=(n, 1, 1))
    return scale * np.einsum("nij,kj->nki", rotations, hand_template())


def random_intrinsics(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """(n, 3, 3) pinhole matrices with focal lengths 300–1500 px and a 640×480-ish centre."""
    fx = rng.uniform(300, 1500, n)
    K = np.zeros((n, 3, 3))
    K[:, 0, 0] = fx
    K[:, 1, 1] = fx * rng.uniform(0.95, 1.05, n)
    K[:, 0, 2] = rng.uniform(300, 340, n)
    K[:, 1, 2] = rng.uniform(220, 260, n)
    K[:, 2, 2] = 1.0
    return K


def project(points: NDArray[np.float64], K: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ideal pinhole projection of (..., J, 3) camera-frame points with K (..., 3, 3)."""
    homogeneous = np.einsum("...ij,...kj->...ki", K, points)
    return homogeneous[..., :2] / homogeneous[..., 2:]


# --- wrist paths (metres, 30 fps) -------------------------------------------------------------

FPS = 30.0


def min_jerk(p0: np.ndarray, p1: np.ndarray, n: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, n)[:, None]
    return p0 + (p1 - p0) * (10 * s**3 - 15 * s**4 + 6 * s**5)


def reach_and_hold(rng: np.random.Generator, frames: int = 600) -> np.ndarray:
    """Manipulation-like wrist path (T, 3) in metres: minimum-jerk reaches (peaks 0.6–0.9 m/s), then holds."""
    parts: list[np.ndarray] = []
    p = np.array([0.0, 0.0, 0.5])
    while sum(map(len, parts)) < frames:
        q = p + rng.uniform(-0.15, 0.15, 3) * [1.0, 1.0, 0.5]
        q[2] = np.clip(q[2], 0.3, 0.7)
        parts.append(min_jerk(p, q, int(rng.uniform(0.4, 0.8) * FPS)))
        parts.append(np.repeat(q[None], int(rng.uniform(0.3, 1.0) * FPS), axis=0))
        p = q
    return np.concatenate(parts)[:frames]


def slow_sweep(frames: int = 600) -> np.ndarray:
    """A hand sweeping continuously at up to ~0.16 m/s (Lissajous path), (T, 3) metres."""
    t = np.arange(frames)[:, None] / FPS
    return np.hstack(
        [
            0.10 * np.sin(2 * np.pi * 0.25 * t),
            0.07 * np.sin(2 * np.pi * 0.325 * t + 1),
            0.5 + 0.03 * np.sin(2 * np.pi * 0.15 * t),
        ]
    )


def lag_frames(filtered: np.ndarray, clean: np.ndarray, max_lag: int = 6) -> int:
    """Frames by which `filtered` trails `clean`: the cross-correlation peak of their velocities."""
    f, c = np.diff(filtered, axis=0), np.diff(clean, axis=0)
    n = len(c)
    scores = [np.sum(f[lag:] * c[: n - lag]) for lag in range(max_lag + 1)]
    return int(np.argmax(scores))
