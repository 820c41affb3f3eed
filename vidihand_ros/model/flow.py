"""The flow-matching noise schedule of Wan, shared by feature extraction and adaptation training.

x_σ = (1 − σ)·x₀ + σ·ε, timestep t = 1000·σ, velocity target ε − x₀; τ is the unshifted σ.
Conventions and the time shift: docs/model.md, "Flow-matching schedule".
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "add_noise",
    "sample_sigmas",
    "shift_sigma",
    "sigma_to_timestep",
    "velocity_target",
]

#: diffusers' `FlowMatchEulerDiscreteScheduler.config.num_train_timesteps` for Wan.
NUM_TRAIN_TIMESTEPS = 1000


def shift_sigma(tau: Tensor | float, shift: float = 1.0) -> Tensor:
    """σ = s·τ / (1 + (s − 1)·τ): the scheduler's time shift (identity for s = 1)."""
    t = torch.as_tensor(tau, dtype=torch.float32)
    if shift == 1.0:
        return t
    return shift * t / (1.0 + (shift - 1.0) * t)


def sigma_to_timestep(sigma: Tensor) -> Tensor:
    """The transformer's timestep for noise level σ (float, like the scheduler's timesteps)."""
    return sigma.float() * NUM_TRAIN_TIMESTEPS


def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """x_σ = (1 − σ)·x₀ + σ·ε, with σ of shape (B,) broadcast over the other dimensions."""
    s = sigma.to(device=x0.device, dtype=torch.float32).reshape(-1, *([1] * (x0.dim() - 1)))
    return ((1.0 - s) * x0.float() + s * noise.float()).to(x0.dtype)


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """What the transformer predicts: v = ε − x₀ (float32)."""
    return noise.float() - x0.float()


def sample_sigmas(
    batch: int,
    *,
    method: str = "logit_normal",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 1.0,
    sigma_min: float = 0.0,
    sigma_max: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Training noise levels, (batch,) float32 on CPU.

    "logit_normal": σ = sigmoid(n), n ~ N(mean, std²) (SD3's choice for rectified flow; most mass
    at mid noise). "uniform": σ ~ U(0, 1). Then shifted with `shift` and clamped.
    """
    if method == "logit_normal":
        n = torch.randn(batch, generator=generator) * logit_std + logit_mean
        u = torch.sigmoid(n)
    elif method == "uniform":
        u = torch.rand(batch, generator=generator)
    else:
        raise ValueError(f"unknown sigma sampling {method!r}")
    return shift_sigma(u, shift).clamp(sigma_min, sigma_max)
