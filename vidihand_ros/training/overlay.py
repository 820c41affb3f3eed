"""Semi-transparent hand overlays: the rendering half of the adaptation objective.

Stage "skeleton" draws the 21 keypoints as coloured bones, stage "mesh" the z-buffered MANO mesh;
a hand is drawn wherever it is annotated, visible or not. numpy + OpenCV only (no torch), so it
runs in data-loader workers. Details: docs/model.md, "Hand-overlay adaptation".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.training.config import Stage

__all__ = [
    "BONES",
    "HandTrack",
    "OverlayRenderer",
    "OverlayWindow",
    "blend",
    "draw_skeleton",
    "rasterize_meshes",
]

#: Bones of the 21-joint hand (wrist, then thumb → pinky, each base → tip).
BONES: tuple[tuple[int, int], ...] = tuple(
    (0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4)
)
#: Finger of each bone (0 thumb … 4 pinky).
BONE_FINGER: tuple[int, ...] = tuple(f for f in range(5) for _ in range(4))
#: Per-finger RGB colours, thumb → pinky: warm hues for the right hand, cool ones for the left.
FINGER_COLOURS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "right": ((255, 40, 40), (255, 140, 0), (255, 225, 0), (255, 60, 170), (170, 60, 255)),
    "left": ((0, 110, 255), (0, 210, 255), (0, 230, 120), (150, 255, 0), (0, 255, 210)),
}
#: Wrist / joint-centre colour: white dots on the right hand, black on the left.
JOINT_COLOURS: dict[str, tuple[int, int, int]] = {"right": (255, 255, 255), "left": (20, 20, 20)}
#: Mesh base colours (RGB).
MESH_COLOURS: dict[str, tuple[int, int, int]] = {"right": (235, 120, 60), "left": (70, 140, 235)}


@dataclass
class HandTrack:
    """One hand over a window, in the form the renderer needs.

    Attributes:
        side: "left" or "right".
        keypoints: (T, 21, 2) pixel coordinates (x, y) — for the skeleton stage.
        vertices: (T, V, 3) camera-frame mesh vertices in metres — for the mesh stage.
        faces: (F, 3) vertex indices of the mesh (MANO's `f`).
        present: (T,) whether the hand is annotated in each frame (None = all frames). An
            annotated hand is drawn even where it is occluded; NaN coordinates are skipped.
    """

    side: str
    keypoints: NDArray[np.floating] | None = None
    vertices: NDArray[np.floating] | None = None
    faces: NDArray[np.integer] | None = None
    present: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        if self.side not in FINGER_COLOURS:
            raise InputError(f"hand side must be 'left' or 'right', not {self.side!r}")

    def is_present(self, t: int) -> bool:
        return True if self.present is None else bool(self.present[t])


@dataclass
class OverlayWindow:
    """A window of frames with the hands to draw over it (one adaptation training example).

    `frames` (T, H, W, 3) uint8 RGB; `K` (3, 3) intrinsics of those frames (the mesh stage needs
    it); `hands` the annotated hands.
    """

    frames: NDArray[np.uint8]
    hands: list[HandTrack]
    K: NDArray[np.floating] | None = None


def blend(
    frame: NDArray[np.uint8], layer: NDArray[np.uint8], coverage: NDArray[np.uint8], alpha: float
) -> NDArray[np.uint8]:
    """(1 − α·m)·frame + α·m·layer, m = coverage / 255 (per pixel), rounded to uint8."""
    m = coverage.astype(np.float32)[..., None] * (alpha / 255.0)
    out = frame.astype(np.float32) * (1.0 - m) + layer.astype(np.float32) * m
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _scale(shape: tuple[int, ...]) -> float:
    """Line widths scale with the image: 1 px at 160 px short side, 3 px at 480 px."""
    return max(1.0, min(shape[0], shape[1]) / 160.0)


_SHIFT = 4  # OpenCV sub-pixel bits: coordinates are passed ×16 for anti-aliased drawing.


def _fixed(p: NDArray[np.floating]) -> tuple[int, int]:
    return (round(float(p[0]) * (1 << _SHIFT)), round(float(p[1]) * (1 << _SHIFT)))


def draw_skeleton(
    layer: NDArray[np.uint8],
    coverage: NDArray[np.uint8],
    keypoints: NDArray[np.floating],
    side: str,
    *,
    thickness: int | None = None,
    radius: int | None = None,
) -> None:
    """Draw one hand's 21-keypoint skeleton into `layer` (colours) and `coverage` (255 = covered)."""
    s = _scale(layer.shape)
    thickness = max(1, round(s)) if thickness is None else thickness
    radius = max(1, round(1.2 * s)) if radius is None else radius
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = np.asarray(np.isfinite(kp).all(axis=1), dtype=bool)
    colours = FINGER_COLOURS[side]
    # Colours are drawn solid and a little wider than the anti-aliased coverage, so that the soft
    # coverage edge blends the true colour instead of a colour darkened towards the empty layer.
    for (a, b), finger in zip(BONES, BONE_FINGER, strict=True):
        if ok[a] and ok[b]:
            pa, pb = _fixed(kp[a]), _fixed(kp[b])
            cv2.line(layer, pa, pb, colours[finger], thickness + 2, cv2.LINE_8, _SHIFT)
            cv2.line(coverage, pa, pb, (255,), thickness, cv2.LINE_AA, _SHIFT)
    centre = JOINT_COLOURS[side]
    for j in np.flatnonzero(ok):
        p = _fixed(kp[j])
        colour = centre if j == 0 else colours[(j - 1) // 4]
        r = radius + (1 if j == 0 else 0)
        cv2.circle(layer, p, (r + 1) << _SHIFT, colour, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(coverage, p, r << _SHIFT, (255,), -1, cv2.LINE_AA, _SHIFT)
        if j == 0 or radius >= 2:
            # A contrasting centre marks handedness even where finger colours are ambiguous.
            cv2.circle(layer, p, max(1, r // 2) << _SHIFT, centre, -1, cv2.LINE_8, _SHIFT)


def rasterize_meshes(
    vertices: Sequence[NDArray[np.floating]],
    faces: Sequence[NDArray[np.integer]],
    colours: Sequence[tuple[int, int, int]],
    K: NDArray[np.floating],
    size: tuple[int, int],
    *,
    near: float = 1e-3,
    ambient: float = 0.35,
    max_candidates: int = 4_000_000,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Z-buffer several camera-frame meshes into an RGB layer and a coverage mask (0 / 255).

    Vectorised over faces: every face enumerates the pixel centres of its bounding box, keeps
    those inside the triangle (edge functions), interpolates depth perspective-correctly (1/z is
    linear in screen space) and the nearest face per pixel wins. Shading is flat and two-sided:
    ambient + (1 − ambient)·|n·d| for face normal n and viewing direction d. Faces with a vertex
    closer than `near` are dropped. Candidates are processed in chunks of at most
    `max_candidates` pixels so memory stays bounded for a face close to the camera.
    """
    h, w = size
    layer = np.zeros((h, w, 3), np.uint8)
    coverage = np.zeros((h, w), np.uint8)
    tris_list, cols_list = [], []
    for verts, tri, colour in zip(vertices, faces, colours, strict=True):
        v = np.asarray(verts, np.float64)
        f = np.asarray(tri, np.int64)
        if not np.isfinite(v).all():
            continue
        tri_v = v[f]  # (F, 3, 3)
        keep = (tri_v[:, :, 2] > near).all(axis=1)
        tri_v = tri_v[keep]
        n = np.cross(tri_v[:, 1] - tri_v[:, 0], tri_v[:, 2] - tri_v[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        c = tri_v.mean(axis=1)
        d = -c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-12)
        shade = ambient + (1.0 - ambient) * np.abs((n * d).sum(axis=1))
        tris_list.append(tri_v)
        cols_list.append(shade[:, None] * np.asarray(colour, np.float64)[None])
    if not tris_list:
        return layer, coverage
    tri_v = np.concatenate(tris_list)
    tri_c = np.concatenate(cols_list)
    Kd = np.asarray(K, np.float64)
    z = tri_v[..., 2]
    uv = (tri_v @ Kd.T)[..., :2] / z[..., None]  # (F, 3, 2) pixel coordinates

    x0 = np.clip(np.ceil(uv[..., 0].min(axis=1)), 0, w).astype(np.int64)
    x1 = np.clip(np.floor(uv[..., 0].max(axis=1)), -1, w - 1).astype(np.int64)
    y0 = np.clip(np.ceil(uv[..., 1].min(axis=1)), 0, h).astype(np.int64)
    y1 = np.clip(np.floor(uv[..., 1].max(axis=1)), -1, h - 1).astype(np.int64)
    nx = np.maximum(x1 - x0 + 1, 0)
    ny = np.maximum(y1 - y0 + 1, 0)
    counts = nx * ny
    # Barycentric weights and 1/z are affine in screen space: per face, value = a·dx + b·dy + c
    # for the offset (dx, dy) of a pixel centre from the face's bounding-box corner (x0, y0).
    xs, ys = uv[..., 0], uv[..., 1]
    area = (xs[:, 1] - xs[:, 0]) * (ys[:, 2] - ys[:, 0]) - (xs[:, 2] - xs[:, 0]) * (ys[:, 1] - ys[:, 0])
    live = np.flatnonzero((counts > 0) & (np.abs(area) > 1e-12))
    safe = np.where(np.abs(area) > 1e-12, area, 1.0)
    coef = np.empty((len(uv), 4, 3))
    for i, (j, k) in enumerate(((1, 2), (2, 0), (0, 1))):
        coef[:, i, 0] = (ys[:, j] - ys[:, k]) / safe
        coef[:, i, 1] = (xs[:, k] - xs[:, j]) / safe
        coef[:, i, 2] = (xs[:, j] * ys[:, k] - xs[:, k] * ys[:, j]) / safe
    coef[:, 3] = np.einsum("fij,fi->fj", coef[:, :3], 1.0 / z)
    coef[..., 2] += coef[..., 0] * x0[:, None] + coef[..., 1] * y0[:, None]
    coef32 = coef.astype(np.float32)
    best_depth = np.full(h * w, np.inf, np.float32)
    best_face = np.full(h * w, -1, np.int64)

    start = 0
    while start < live.size:
        csum = np.cumsum(counts[live[start:]])
        stop = start + max(1, int(np.searchsorted(csum, max_candidates, side="right")))
        faces_chunk = live[start:stop]
        start = stop
        cnt = counts[faces_chunk]
        face = np.repeat(faces_chunk, cnt)
        local = np.arange(face.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        dx, dy = np.divmod(local, nx[face])[::-1]
        c = coef32[face]  # (N, 4, 3)
        vals = (
            c[..., 0] * dx[:, None].astype(np.float32)
            + c[..., 1] * dy[:, None].astype(np.float32)
            + c[..., 2]
        )
        inside = (vals[:, :3] >= -1e-5).all(axis=1)
        if not inside.any():
            continue
        face = face[inside]
        pix = (y0[face] + dy[inside]) * w + x0[face] + dx[inside]
        depth = 1.0 / vals[inside, 3]
        # Z-test without sorting: the per-pixel minimum depth, then the faces that reach it.
        np.minimum.at(best_depth, pix, depth)
        win = depth <= best_depth[pix]
        best_face[pix[win]] = face[win]

    covered = best_face >= 0
    flat = layer.reshape(-1, 3)
    flat[covered] = np.clip(tri_c[best_face[covered]] + 0.5, 0, 255).astype(np.uint8)
    coverage.reshape(-1)[covered] = 255
    return layer, coverage


class OverlayRenderer:
    """Blend skeleton (stage 1) or mesh (stage 2) hand renders over a window of frames.

    Args:
        stage: "skeleton" (needs `HandTrack.keypoints`) or "mesh" (needs `vertices`, `faces` and K).
        alpha: opacity of the render where it covers the frame (0 invisible … 1 opaque).
    """

    def __init__(self, stage: Stage = "skeleton", *, alpha: float = 0.5) -> None:
        if stage not in ("skeleton", "mesh"):
            raise InputError(f"overlay stage must be 'skeleton' or 'mesh', not {stage!r}")
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"overlay alpha must be in [0, 1], got {alpha}")
        self.stage = stage
        self.alpha = alpha

    def render_frame(
        self,
        frame: NDArray[np.uint8],
        hands: Sequence[HandTrack],
        t: int,
        K: NDArray[np.floating] | None = None,
    ) -> NDArray[np.uint8]:
        """Frame `t` of the window with the hands present at `t` blended over it."""
        h, w = frame.shape[:2]
        layer = np.zeros((h, w, 3), np.uint8)
        coverage = np.zeros((h, w), np.uint8)
        live = [hand for hand in hands if hand.is_present(t)]
        if self.stage == "skeleton":
            for hand in live:
                if hand.keypoints is None:
                    raise InputError(f"{hand.side} hand has no keypoints for the skeleton overlay")
                draw_skeleton(layer, coverage, hand.keypoints[t], hand.side)
        else:
            if K is None:
                raise InputError("the mesh overlay needs the camera intrinsics K")
            meshes = []
            for hand in live:
                if hand.vertices is None or hand.faces is None:
                    raise InputError(f"{hand.side} hand has no mesh for the mesh overlay")
                meshes.append((hand.vertices[t], hand.faces, MESH_COLOURS[hand.side]))
            if meshes:
                verts, tris, cols = zip(*meshes, strict=True)
                layer, coverage = rasterize_meshes(verts, tris, cols, K, (h, w))
        x, y, bw, bh = cv2.boundingRect(coverage)
        out = frame.copy()
        if bw and bh:  # blend only the covered box: most of the frame is untouched
            box = (slice(y, y + bh), slice(x, x + bw))
            out[box] = blend(frame[box], layer[box], coverage[box], self.alpha)
        return out

    def __call__(
        self, frames: NDArray[np.uint8], hands: Sequence[HandTrack], K: NDArray[np.floating] | None = None
    ) -> NDArray[np.uint8]:
        """(T, H, W, 3) uint8 RGB frames → the same with the hand overlay."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InputError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        return np.stack([self.render_frame(frames[t], hands, t, K) for t in range(frames.shape[0])])

    def render_window(self, window: OverlayWindow) -> NDArray[np.uint8]:
        return self(window.frames, window.hands, window.K)
