"""Feature statistics as LeRobot v3.0 stores them (per episode, and aggregated over the dataset).

What lerobot 0.6.1 writes (`lerobot.datasets.compute_stats`): for every feature `min`, `max`,
`mean`, `std`, `count` and the quantiles `q01`, `q10`, `q50`, `q90`, `q99`. A vector feature's
stats have its shape (a scalar feature's are (1,)); an image / video feature's are per channel,
shape (3, 1, 1), in [0, 1] (pixel / 255); `count` is (1,), the number of frames. Dataset stats
are aggregated from the episodes' as lerobot does: min of mins, max of maxes, count-weighted mean,
pooled variance, count-weighted quantiles. Here the episode quantiles are exact (numpy's, for
images from the per-channel histogram of every pixel) where lerobot estimates them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["QUANTILES", "ImageStats", "aggregate", "vector_stats"]

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)

Stats = dict[str, NDArray[np.float64] | NDArray[np.int64]]


def vector_stats(values: NDArray[np.generic]) -> Stats:
    """Stats of an episode's (n, d) column, per element; n must be at least 1."""
    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    stats: Stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    for key, q in zip(QUANTILE_KEYS, np.quantile(x, QUANTILES, axis=0), strict=True):
        stats[key] = q
    return stats


class ImageStats:
    """Per-channel stats of RGB frames, from a 256-bin histogram per channel (exact, any length)."""

    def __init__(self) -> None:
        self.frames = 0
        self.histogram = np.zeros((3, 256), dtype=np.int64)

    def add(self, image: NDArray[np.uint8]) -> None:
        """Count one (H, W, 3) uint8 frame."""
        pixels = image.reshape(-1, 3)
        for c in range(3):
            self.histogram[c] += np.bincount(pixels[:, c], minlength=256)
        self.frames += 1

    def stats(self) -> Stats:
        levels = np.arange(256, dtype=np.float64) / 255.0
        total = self.histogram.sum(axis=1, keepdims=True).astype(np.float64)
        mean = (self.histogram * levels).sum(axis=1) / total[:, 0]
        var = (self.histogram * (levels - mean[:, None]) ** 2).sum(axis=1) / total[:, 0]
        present = self.histogram > 0
        cumulative = np.cumsum(self.histogram, axis=1) / total

        def shaped(v: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(v, dtype=np.float64).reshape(3, 1, 1)

        stats: Stats = {
            "min": shaped(levels[np.argmax(present, axis=1)]),
            "max": shaped(levels[255 - np.argmax(present[:, ::-1], axis=1)]),
            "mean": shaped(mean),
            "std": shaped(np.sqrt(var)),
            "count": np.array([self.frames], dtype=np.int64),
        }
        for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
            # numpy's "inverted_cdf": the smallest level whose cumulative share reaches q
            stats[key] = shaped(levels[np.argmax(cumulative >= q - 1e-12, axis=1)])
        return stats


def aggregate(episodes: Sequence[Stats]) -> Stats:
    """Dataset stats from the episodes' (lerobot's `aggregate_feature_stats`)."""
    counts = np.stack([s["count"] for s in episodes]).astype(np.float64)
    total = counts.sum(axis=0)
    means = np.stack([s["mean"] for s in episodes])
    weights = counts.reshape(-1, *([1] * (means.ndim - 1)))
    mean = (means * weights).sum(axis=0) / total
    variances = np.stack([s["std"] for s in episodes]) ** 2
    variance = ((variances + (means - mean) ** 2) * weights).sum(axis=0) / total
    stats: Stats = {
        "min": np.min(np.stack([s["min"] for s in episodes]), axis=0),
        "max": np.max(np.stack([s["max"] for s in episodes]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": total.astype(np.int64),
    }
    for key in QUANTILE_KEYS:
        stats[key] = (np.stack([s[key] for s in episodes]) * weights).sum(axis=0) / total
    return stats
