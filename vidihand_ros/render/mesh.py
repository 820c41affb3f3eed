"""Paint the stored MANO hands as shaded meshes into the frame (when the user gives MANO files).

The mesh comes from the stored MANO parameters through the real `smplx` layer
(`vidihand_ros.mano.layer`, the `[mano]` extra: torch), is projected with the row's stored K and
painted back to front (the painter's algorithm: enough for two hands), half transparent, in each
side's colour shaded by how much each face turns towards the camera.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.render.stored_hands import HandRows, HandState
from vidihand_ros.visualize import SIDE_COLOURS

__all__ = ["MeshPainter"]

#: Opacity of the painted mesh over the frame.
MESH_ALPHA = 0.6
_MANO_FIELDS = ("global_orient", "hand_pose", "betas", "transl")


class MeshPainter:
    """MANO layers for both sides, built once from `mano_dir` (MANO_RIGHT.pkl, MANO_LEFT.pkl)."""

    def __init__(self, mano_dir: Path) -> None:
        try:
            import torch

            from vidihand_ros.mano.layer import load_mano_layers
        except ImportError as err:
            raise InputError(
                f"--mano-dir needs torch and smplx (pip install 'vidihand_ros[mano]'): {err}"
            ) from None
        self._torch: Any = torch
        self._layers = load_mano_layers(mano_dir)

    def vertices(self, hand: HandRows, k: int) -> NDArray[np.float64] | None:
        """Row k's 778 mesh vertices in the camera frame (metres), None without MANO values."""
        values = [hand.value(field, k) for field in _MANO_FIELDS]
        if any(v is None for v in values):
            return None
        torch = self._torch
        with torch.no_grad():
            tensors = [torch.as_tensor(np.asarray(v, np.float32))[None] for v in values]
            out = self._layers[hand.side](*tensors)
        return np.asarray(out.vertices[0].double().numpy())

    def paint(
        self,
        rgb: NDArray[np.uint8],
        hands: dict[str, HandRows],
        k: int,
        K: NDArray[np.floating],
        min_presence: float,
    ) -> NDArray[np.uint8]:
        """A copy of `rgb` with every drawn hand's mesh of row k painted (unchanged without K)."""
        if not np.isfinite(K).all():
            return rgb
        faces_2d: list[tuple[float, NDArray[np.int32], tuple[int, int, int]]] = []
        for side, hand in hands.items():
            if hand.state(k, min_presence) not in (HandState.OBSERVED, HandState.FILLED):
                continue
            vertices = self.vertices(hand, k)
            if vertices is None:
                continue
            faces_2d += _shaded_faces(vertices, self._layers[side].faces, K, SIDE_COLOURS[side])
        if not faces_2d:
            return rgb
        layer = np.ascontiguousarray(rgb).copy()
        mask = np.zeros(rgb.shape[:2], np.uint8)
        for _, polygon, colour in sorted(faces_2d, key=lambda f: -f[0]):
            cv2.fillConvexPoly(layer, polygon, colour, cv2.LINE_AA)
            cv2.fillConvexPoly(mask, polygon, (255,))
        blended = cv2.addWeighted(layer, MESH_ALPHA, rgb, 1 - MESH_ALPHA, 0)
        return np.where(mask[..., None] > 0, blended, rgb).astype(np.uint8)


def _shaded_faces(
    vertices: NDArray[np.float64],
    faces: NDArray[np.int64],
    K: NDArray[np.floating],
    colour: tuple[int, int, int],
) -> list[tuple[float, NDArray[np.int32], tuple[int, int, int]]]:
    """(depth, pixel polygon, shaded colour) of every face in front of the camera."""
    K = np.asarray(K, np.float64)
    triangles = vertices[faces]  # (F, 3, 3)
    z = triangles[..., 2]
    in_front = (z > 1e-3).all(axis=1)
    uvw = triangles @ K.T
    pixels = uvw[..., :2] / np.where(np.abs(uvw[..., 2:]) > 1e-9, uvw[..., 2:], 1e-9)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    centres = triangles.mean(axis=1)
    facing = np.abs(np.einsum("fi,fi->f", normals, -centres))
    facing /= np.linalg.norm(normals, axis=1) * np.linalg.norm(centres, axis=1) + 1e-12
    shade = 0.35 + 0.65 * facing
    out = []
    for f in np.flatnonzero(in_front):
        shaded = tuple(int(c * shade[f]) for c in colour)
        out.append((float(centres[f, 2]), np.round(pixels[f]).astype(np.int32), shaded))
    return out  # type: ignore[return-value]
