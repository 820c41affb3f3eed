"""The flow-matching noise schedule of Wan, shared by feature extraction and adaptation training.

Convention (Wan and diffusers' `FlowMatchEulerDiscreteScheduler`): a clean latent x₀ and Gaussian
noise ε are mixed linearly,

    x_σ = (1 − σ)·x₀ + σ·ε,        σ ∈ [0, 1]  (σ = 0 clean, σ = 1 pure noise),

the transformer is given the timestep t = 1000·σ (`num_train_timesteps` × σ, exactly what the
scheduler's `timesteps` hold) and predicts the velocity v = dx_σ/dσ = ε − x₀; the sampler's Euler
step is x ← x + (σ_next − σ)·v.

Time shift: Wan samples with a shifted schedule σ = s·u / (1 + (s − 1)·u) of a uniform grid u
(s = `shift`; `flow_shift` 3.0 for 480p and 5.0 for 720p in the Wan pipelines), which spends more
steps at high noise. We call the *unshifted* value the normalised time τ: with the default
s = 1 the feature pass uses σ = τ exactly (τ = 0.7 → σ = 0.7, t = 700); a config can set s to
reproduce a shifted reading.
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
