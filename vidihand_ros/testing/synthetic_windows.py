"""A tiny synthetic adaptation set: skin-coloured blobs moving over textured backgrounds.

Up to two "hands" per window with exactly known keypoints and a coarse mesh (both overlay stages
render), sometimes covered by a grey box; deterministic in (`seed`, index); numpy + OpenCV only.
For testing the adaptation loop on CPU in seconds and for smoke runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from vidihand_ros.training.overlay import HandTrack, OverlayWindow

__all__ = ["SyntheticHandSet", "canonical_hand", "ellipsoid_mesh"]


def canonical_hand(side: str) -> NDArray[np.float64]:
    """(21, 3) joints of an open hand in metres, wrist at the origin, fingers along −y."""
    # Finger base x offsets and lengths of the three segments (thumb → pinky).
    bases = [(-0.035, -0.02), (-0.022, -0.085), (-0.005, -0.09), (0.012, -0.085), (0.027, -0.075)]
    segments = [
        (0.035, 0.03, 0.025),
        (0.04, 0.025, 0.02),
        (0.045, 0.028, 0.022),
        (0.04, 0.026, 0.02),
        (0.03, 0.02, 0.018),
    ]
    spread = [-0.9, -0.15, 0.0, 0.12, 0.25]
    joints = [np.zeros(3)]
    for (bx, by), segs, angle in zip(bases, segments, spread, strict=True):
        direction = np.array([np.sin(angle), -np.cos(angle), 0.0])
        p = np.array([bx, by, 0.0])
        joints.append(p.copy())
        for length in segs:
            p = p + length * direction
            joints.append(p.copy())
    out = np.stack(joints)
    if side == "left":
        out[:, 0] *= -1.0
    return out


@lru_cache(maxsize=4)
def ellipsoid_mesh(rings: int = 6, segments: int = 10) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """A unit UV sphere: (V, 3) vertices and (F, 3) faces, scaled per axis by the caller."""
    verts = [np.array([0.0, 0.0, 1.0])]
    for i in range(1, rings):
        theta = np.pi * i / rings
        for j in range(segments):
            phi = 2 * np.pi * j / segments
            verts.append(np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]))
    verts.append(np.array([0.0, 0.0, -1.0]))
    faces = []
    for j in range(segments):
        faces.append((0, 1 + j, 1 + (j + 1) % segments))
    for i in range(rings - 2):
        a, b = 1 + i * segments, 1 + (i + 1) * segments
        for j in range(segments):
            k = (j + 1) % segments
            faces.append((a + j, b + j, b + k))
            faces.append((a + j, b + k, a + k))
    last = len(verts) - 1
    base = 1 + (rings - 2) * segments
    for j in range(segments):
        faces.append((last, base + (j + 1) % segments, base + j))
    return np.stack(verts), np.asarray(faces, np.int64)


def _rotation(yaw: float, pitch: float, roll: float) -> NDArray[np.float64]:
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ ry @ rx


class SyntheticHandSet(Sequence[OverlayWindow]):
    """`n` deterministic windows of `frames` × `size` RGB frames with two synthetic hands.

    Args:
        n: number of windows.
        frames: frames per window (1 + 4k for the Wan VAE).
        size: (H, W).
        seed: base seed; window i uses (seed, i).
        occlusion: probability that a window has an occluding box.
    """

    def __init__(
        self,
        n: int = 4,
        *,
        frames: int = 9,
        size: tuple[int, int] = (32, 32),
        seed: int = 0,
        occlusion: float = 0.5,
    ) -> None:
        self.n = n
        self.frames = frames
        self.size = size
        self.seed = seed
        self.occlusion = occlusion
        h, w = size
        f = 0.9 * max(h, w)
        self.K = np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> OverlayWindow:  # type: ignore[override]
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self._make(index)

    def __iter__(self) -> Iterator[OverlayWindow]:
        for i in range(self.n):
            yield self._make(i)

    def _make(self, index: int) -> OverlayWindow:
        rng = np.random.default_rng([self.seed, index])
        h, w = self.size
        t_count = self.frames
        background = self._background(rng)
        unit_v, unit_f = ellipsoid_mesh()
        hands = []
        layers = []
        for side, x_sign in (("left", -1.0), ("right", 1.0)):
            present = np.ones(t_count, bool)
            if rng.random() < 0.3:  # enters late or leaves early
                cut = int(rng.integers(1, t_count))
                present[cut:] = False
            template = canonical_hand(side)
            start = np.array(
                [x_sign * rng.uniform(0.06, 0.12), rng.uniform(-0.02, 0.05), rng.uniform(0.4, 0.5)]
            )
            velocity = rng.normal(0.0, 0.01, 3)
            angles0 = rng.uniform(-0.5, 0.5, 3)  # the template's fingers point up (−y)
            spin = rng.normal(0.0, 0.05, 3)
            joints3d = np.empty((t_count, 21, 3))
            verts = np.empty((t_count, len(unit_v), 3))
            for t in range(t_count):
                rot = _rotation(*(angles0 + spin * t))
                origin = start + velocity * t
                joints3d[t] = template @ rot.T + origin
                palm_centre = joints3d[t, [0, 5, 9, 13, 17]].mean(axis=0)
                verts[t] = (unit_v * np.array([0.04, 0.05, 0.015])) @ rot.T + palm_centre
            uv = joints3d @ self.K.T
            keypoints = uv[..., :2] / uv[..., 2:3]
            hands.append(
                HandTrack(side=side, keypoints=keypoints, vertices=verts, faces=unit_f, present=present)
            )
            layers.append((keypoints, present, rng.uniform(0.8, 1.0)))

        frames = np.empty((t_count, h, w, 3), np.uint8)
        box = None
        if rng.random() < self.occlusion:
            bw, bh = int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2))
            box = (int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh)), bw, bh)
        for t in range(t_count):
            frame = background.copy()
            for keypoints, present, tone in layers:
                if present[t]:
                    self._draw_hand(frame, keypoints[t], tone)
            if box is not None:
                x, y, bw, bh = box
                frame[y : y + bh, x : x + bw] = (110, 110, 120)
            frames[t] = frame
        return OverlayWindow(frames=frames, hands=hands, K=self.K.copy())

    def _background(self, rng: np.random.Generator) -> NDArray[np.uint8]:
        h, w = self.size
        coarse = rng.uniform(40, 215, (3, 3, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        noise = rng.normal(0.0, 6.0, (h, w, 3)).astype(np.float32)
        return np.clip(smooth + noise, 0, 255).astype(np.uint8)

    def _draw_hand(self, frame: NDArray[np.uint8], keypoints: NDArray[np.float64], tone: float) -> None:
        skin = tuple(int(c * tone) for c in (224, 172, 140))
        scale = max(1, round(min(self.size) / 32))
        pts = np.round(keypoints).astype(np.int32)
        palm = pts[[0, 1, 5, 9, 13, 17]]
        cv2.fillConvexPoly(frame, cv2.convexHull(palm), skin)
        for f in range(5):
            chain = pts[[0 if f else 1, 1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f]]
            cv2.polylines(frame, [chain], False, skin, scale)
