"""Rotation representations for the pose decoder: 6D ↔ matrix ↔ axis-angle, and the geodesic angle.

Why several representations: a network regresses the continuous 6D form (the first two columns of
the rotation matrix, Zhou et al. CVPR 2019) because axis-angle and quaternions are discontinuous
as regression targets; MANO and the core types speak axis-angle; and losses compare rotation
matrices (geodesic angle), which needs no axis-angle branch cut.

Every function works on tensors with arbitrary leading dimensions and is differentiable. The
conversions are written to keep gradients finite at the identity (zero angle) and at π, the two
places where the textbook formulas divide by zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "axis_angle_to_matrix",
    "geodesic_angle",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_to_axis_angle",
    "rot6d_to_matrix",
]

#: Below this angle (radians) the sin(θ)/θ-type factors use their Taylor series.
_SMALL_ANGLE = 1e-3


def rot6d_to_matrix(x: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from 6D vectors (..., 6) by Gram–Schmidt.

    The 6D vector is the matrix's first column followed by its second column (so
    `rot6d_to_matrix(matrix_to_rot6d(R)) == R`). Any 6D input whose two halves are not parallel
    maps to a proper rotation; the network output is never required to be orthonormal.
    """
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1, eps=1e-8)
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: Tensor) -> Tensor:
    """The 6D form (..., 6) of rotation matrices (..., 3, 3): first column, then second column."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues' formula, (..., 3) → (..., 3, 3), with Taylor factors near zero angle.

    R = I + a·[k]× + b·[k]×², with [k]× the cross-product matrix of the (unnormalised) vector,
    a = sin θ/θ and b = (1 - cos θ)/θ²; writing it this way avoids normalising the axis, so the
    gradient at the identity is the exact one (∂R/∂aa = [·]×) instead of NaN.
    """
    theta2 = (aa * aa).sum(dim=-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < _SMALL_ANGLE**2
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(theta2_safe)
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    x, y, z = aa.unbind(dim=-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Unit quaternions (..., 4) as (w, x, y, z) with w ≥ 0, from rotation matrices (..., 3, 3).

    Uses the branch that divides by the largest of the four candidate |q_i| (Shepperd's method),
    so it is accurate for every rotation, including angles near π where w → 0.
    """
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4·q_i² for each component; the largest one is the stable divisor.
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    q_abs = torch.sqrt(torch.clamp(four_sq, min=1e-12))
    # Row i is the quaternion computed by dividing by 4·q_i (scaled by q_abs_i below).
    candidates = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )
    candidates = candidates / (2.0 * q_abs[..., :, None].clamp(min=0.1))
    best = q_abs.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(candidates, -2, index).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """Axis-angle (..., 3) with angle in [0, π] from quaternions (..., 4) ordered (w, x, y, z)."""
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    sin_half = torch.sqrt((v * v).sum(dim=-1, keepdim=True) + 1e-24)
    half = torch.atan2(sin_half, q[..., :1])
    angle = 2.0 * half
    small = sin_half < _SMALL_ANGLE
    # angle / sin(angle/2) → 2 + angle²/12 as the angle → 0.
    sin_half_safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    factor = torch.where(small, 2.0 + angle * angle / 12.0, angle / sin_half_safe)
    return v * factor


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Axis-angle (..., 3) with angle in [0, π] from rotation matrices (..., 3, 3)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def geodesic_angle(R1: Tensor, R2: Tensor) -> Tensor:
    """The rotation angle (radians, in [0, π]) of R1ᵀ·R2 for matrices (..., 3, 3), shape (...).

    Computed as atan2(|sin θ|, cos θ) from the skew and trace parts of R1ᵀR2 rather than
    acos((tr - 1)/2), whose gradient is infinite at θ = 0 — exactly where a converged model sits.
    """
    M = R1.transpose(-1, -2) @ R2
    cos = (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2] - 1.0) * 0.5
    skew = torch.stack(
        [M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], dim=-1
    )
    sin = 0.5 * torch.sqrt((skew * skew).sum(dim=-1) + 1e-12)
    return torch.atan2(sin, cos)
