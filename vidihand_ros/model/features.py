"""Window features: one noised pass of the video model, read at block L.

The window's latents noised to τ, conditioned on the same window, run through blocks 0..L only;
the tokens come back on the latent grid with the geometry the decoder needs. Steps and the
frame ↔ latent-frame correspondence: docs/model.md, "Features".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidihand_ros.errors import InputError
from vidihand_ros.model.backbone import Backbone
from vidihand_ros.model.flow import add_noise, shift_sigma

__all__ = ["Features", "extract_features", "latent_frame_of", "prepare_video"]


def latent_frame_of(frame: int, temporal_scale: int = 4) -> int:
    """The latent frame holding video frame `frame` (0 → 0; 1..4 → 1; 5..8 → 2; …)."""
    return 0 if frame <= 0 else (frame - 1) // temporal_scale + 1


@dataclass(frozen=True)
class Features:
    """Backbone features of a batch of windows and the geometry to map them back to pixels.

    Attributes:
        tokens: (B, F, Hp, Wp, C) hidden states; F = latent frames / pt, Hp = H / (8·ph) …
        num_frames: T, video frames per window.
        image_size: (H, W) of the frames that were encoded.
        patch: the transformer patch (pt, ph, pw) in latent cells.
        vae_scale: the VAE compression (temporal, height, width), (4, 8, 8) for Wan2.1.
        tau: the normalised noise level of the pass.
        layer: the block the tokens were read after.
    """

    tokens: Tensor
    num_frames: int
    image_size: tuple[int, int]
    patch: tuple[int, int, int]
    vae_scale: tuple[int, int, int]
    tau: float = 0.7
    layer: int = 15

    @property
    def grid(self) -> tuple[int, int, int]:
        """(F, Hp, Wp) of the token grid."""
        _, f, h, w, _ = self.tokens.shape
        return (int(f), int(h), int(w))

    @property
    def pixels_per_token(self) -> tuple[int, int]:
        """(rows, cols) of pixels covered by one token."""
        return (self.vae_scale[1] * self.patch[1], self.vae_scale[2] * self.patch[2])

    @property
    def frames_per_latent(self) -> tuple[int, ...]:
        """Video frames in each latent frame: (1, 4, 4, …) — the causal VAE's first frame is alone."""
        latent = 1 + (self.num_frames - 1) // self.vae_scale[0]
        return (1,) + (self.vae_scale[0],) * (latent - 1)

    def token_frame_of(self, frame: int) -> int:
        """The token frame (index into F) holding video frame `frame`."""
        return latent_frame_of(frame, self.vae_scale[0]) // self.patch[0]


def prepare_video(video: Tensor) -> Tensor:
    """uint8 [0, 255] or float [−1, 1] (B, 3, T, H, W) → float32 in [−1, 1]."""
    if video.dim() != 5 or video.shape[1] != 3:
        raise InputError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
    if video.dtype == torch.uint8:
        return video.float().div_(127.5).sub_(1.0)
    if not video.is_floating_point():
        raise InputError(f"video must be uint8 or floating point, got {video.dtype}")
    return video.float()


def extract_features(
    backbone: Backbone,
    video: Tensor,
    *,
    tau: float | None = None,
    layer: int | None = None,
    generator: torch.Generator | None = None,
) -> Features:
    """Block-`layer` features of `video` noised to `tau` (defaults: the config's L = 15, τ = 0.7).

    Args:
        backbone: from `build_backbone`.
        video: (B, 3, T, H, W), uint8 or float in [−1, 1]; T = 1 + 4k, H and W multiples of the
            token size (16 px for Wan2.1).
        tau: normalised noise level in [0, 1] (σ = τ for the default shift of 1).
        layer: the block to read (0-based); blocks after it are not executed.
        generator: draws the noise ε (on the generator's device), for reproducible features;
            default torch's global RNG.

    Gradients flow through the transformer if grad mode is on (the VAE never needs them);
    serve under `torch.inference_mode()`.
    """
    cfg = backbone.config
    tau = cfg.tau if tau is None else float(tau)
    layer = cfg.feature_layer if layer is None else int(layer)
    x = prepare_video(video)
    b, _, t, h, w = x.shape
    latents = backbone.encode(x)
    context = backbone.context(x, latents)
    noise_device = generator.device if generator is not None else latents.device
    noise = torch.randn(latents.shape, generator=generator, device=noise_device).to(latents.device)
    sigma = shift_sigma(tau, cfg.shift).expand(b).to(latents.device)
    noisy = add_noise(latents, noise, sigma)
    hidden = backbone.hidden_states(noisy, sigma, context, layer=layer)
    pt, ph, pw = cfg.patch_size
    grid = (latents.shape[2] // pt, latents.shape[3] // ph, latents.shape[4] // pw)
    tokens = hidden.reshape(b, *grid, hidden.shape[-1])
    return Features(
        tokens=tokens,
        num_frames=int(t),
        image_size=(int(h), int(w)),
        patch=cfg.patch_size,
        vae_scale=cfg.vae_scale,
        tau=tau,
        layer=layer,
    )
