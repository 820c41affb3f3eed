"""Ray positional encoding: tell every feature token which camera ray it looks along.

Why rays rather than (row, column) embeddings: the decoder must turn image evidence into metric
camera-frame hands, and the same pixel means a different 3D direction under a different K (focal
length, principal point, crop). Encoding the unit ray K⁻¹[u, v, 1] of each token's pixel centre makes
the tokens camera-aware, so one decoder serves every camera and the translation solve and the learned
depth agree on geometry.

Pixel convention (as everywhere in the project): integer pixel coordinates are pixel centres, so
the pixel in column x spans [x - ½, x + ½). A token (i, j) of a grid whose cells are `cell = (cy, cx)`
pixels covers y ∈ [i·cy, (i+1)·cy), x ∈ [j·cx, (j+1)·cx); its centre is at (j·cx + (cx-1)/2,
i·cy + (cy-1)/2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["RayEncoding", "cell_centres", "fourier_encode", "pixel_rays"]


def cell_centres(
    grid: tuple[int, int],
    cell: tuple[float, float],
    *,
    device: torch.device | None = None,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (u along x, v along y) of the centres of a (rows, cols) grid of cells.

    Returns u (cols,) and v (rows,). `cell` is (height, width) of one cell in pixels.
    """
    rows, cols = grid
    cy, cx = cell
    u = torch.arange(cols, device=device, dtype=dtype) * cx + (cx - 1.0) / 2.0
    v = torch.arange(rows, device=device, dtype=dtype) * cy + (cy - 1.0) / 2.0
    return u, v


def pixel_rays(K: Tensor, grid: tuple[int, int], cell: tuple[float, float]) -> Tensor:
    """Unit ray directions (B, rows, cols, 3) through the cell centres of a grid, camera frame.

    K is (B, 3, 3) pinhole intrinsics of the image the grid tiles (skew honoured).
    """
    u, v = cell_centres(grid, cell, device=K.device, dtype=K.dtype)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    pix = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1)  # (rows, cols, 3)
    rays = torch.einsum("bij,hwj->bhwi", torch.linalg.inv(K), pix)
    return rays / torch.linalg.vector_norm(rays, dim=-1, keepdim=True)


def fourier_encode(x: Tensor, num_bands: int) -> Tensor:
    """[x, sin(2^k π x), cos(2^k π x) for k < num_bands] along the last axis: (..., D·(2·bands+1)).

    Ray components lie in [-1, 1], so the lowest band spans one period over the field of view and
    the highest resolves about 2^-bands of it.
    """
    freqs = (2.0 ** torch.arange(num_bands, device=x.device, dtype=x.dtype)) * math.pi
    angles = x[..., None] * freqs  # (..., D, bands)
    encoded = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
    return torch.cat([x, encoded], dim=-1)


class RayEncoding(nn.Module):
    """Fourier-encoded unit rays of the token centres, projected to the model width.

    The output (B, rows, cols, dim) is added to the tokens of every latent frame (K is fixed over a
    window).
    """

    def __init__(self, dim: int, num_bands: int) -> None:
        super().__init__()
        self.num_bands = num_bands
        self.proj = nn.Sequential(nn.Linear(3 * (2 * num_bands + 1), dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, K: Tensor, grid: tuple[int, int], cell: tuple[float, float]) -> Tensor:
        rays = pixel_rays(K.float(), grid, cell)
        return self.proj(fourier_encode(rays, self.num_bands).to(next(self.proj.parameters()).dtype))
