"""The ViDiHand pose decoder: backbone features of one window → two MANO hands per video frame.

Ray-encoded feature memory, learned queries per video frame and hand/joint, hand and heatmap
branches fused by cross-attention, temporal layers, MANO heads, and the metric translation from
the project's WLS solve (log-depth as fallback). MANO layers are attached, never decoder state.
Why each part is there: docs/model.md, "Pose decoder".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidihand_ros.geometry.palm import palm_orientation
from vidihand_ros.geometry.translation import solve_translation
from vidihand_ros.model.config import DecoderConfig
from vidihand_ros.model.ray_encoding import RayEncoding, cell_centres
from vidihand_ros.model.rotations import matrix_to_axis_angle, rot6d_to_matrix
from vidihand_ros.types import HAND_SIDES, NUM_BETAS, NUM_HAND_POSE_JOINTS, NUM_JOINTS, FramePoses, HandPose

if TYPE_CHECKING:
    from vidihand_ros.mano.layer import ManoLayer
    from vidihand_ros.model.features import Features

__all__ = [
    "DecoderOutput",
    "FrameSlots",
    "HeadOutputs",
    "PoseDecoder",
    "camera_translation",
    "frame_slots",
    "project",
    "to_frame_poses",
]

NUM_HANDS = len(HAND_SIDES)
_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Hand-head output layout: presence, global orient (6D), 15 joint rotations (6D), β, log-depth.
_HAND_HEAD_SPLIT = (1, 6, 6 * NUM_HAND_POSE_JOINTS, NUM_BETAS, 1)
#: Initial and largest scale of the heatmap cosine-similarity logits.
_HEATMAP_INIT_SCALE = 10.0
_HEATMAP_MAX_SCALE = 100.0


# --------------------------------------------------------------------------------------------------
# Video frames ↔ token frames


@dataclass(frozen=True)
class FrameSlots:
    """Where each video frame sits among the token frames.

    Queries are processed grouped by token frame: `(B, F, G, ...)` with G the largest number of
    video frames one token frame covers, padded slots pointing at frame 0 (their results are
    dropped). `to_slots` gathers (B, T, ...) into (B, F, G, ...); `from_slots` gathers back.
    """

    num_frames: int
    num_token_frames: int
    group: int
    #: (T,) token frame of each video frame.
    token_frame: Tensor
    #: (T,) offset class: 0 for the lone first frame, 1 + position in its group otherwise.
    offset_class: Tensor
    #: (F·G,) video frame held by each slot (padding → 0).
    frame_of_slot: Tensor
    #: (T,) flattened slot index of each video frame.
    slot_of_frame: Tensor

    def to_slots(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        idx = self.frame_of_slot.to(x.device)
        return x[:, idx].reshape(b, self.num_token_frames, self.group, *x.shape[2:])

    def from_slots(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        flat = x.reshape(b, self.num_token_frames * self.group, *x.shape[3:])
        return flat[:, self.slot_of_frame.to(x.device)]


@lru_cache(maxsize=64)
def frame_slots(
    num_frames: int, num_token_frames: int, frames_per_latent: int, latents_per_token: int
) -> FrameSlots:
    """The video-frame ↔ token-frame layout for a causal video VAE.

    Latent frame 0 encodes video frame 0 alone; latent frame l ≥ 1 encodes frames
    [1 + s(l-1), 1 + s·l) with s = `frames_per_latent`; a token frame groups `latents_per_token`
    latent frames (the transformer's temporal patch). Frames beyond the last token frame (a VAE that
    dropped a ragged tail) map to the last one.
    """
    if num_frames < 1 or num_token_frames < 1:
        raise ValueError("need at least one video frame and one token frame")
    t = np.arange(num_frames)
    latent = np.where(t == 0, 0, (t - 1) // frames_per_latent + 1)
    token = np.minimum(latent // latents_per_token, num_token_frames - 1)
    per_token = frames_per_latent * latents_per_token
    offset = np.where(t == 0, 0, 1 + (t - 1) % per_token)
    counts = np.bincount(token, minlength=num_token_frames)
    group = int(counts.max())
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = t - first[token]
    slot_of_frame = token * group + position
    frame_of_slot = np.zeros(num_token_frames * group, dtype=np.int64)
    frame_of_slot[slot_of_frame] = t
    return FrameSlots(
        num_frames=num_frames,
        num_token_frames=num_token_frames,
        group=group,
        token_frame=torch.from_numpy(token.astype(np.int64)),
        offset_class=torch.from_numpy(offset.astype(np.int64)),
        frame_of_slot=torch.from_numpy(frame_of_slot),
        slot_of_frame=torch.from_numpy(slot_of_frame.astype(np.int64)),
    )


def sinusoidal_embedding(position: Tensor, dim: int) -> Tensor:
    """Transformer sine/cosine embedding (N, dim) of (N,) positions."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=position.device) / max(half, 1))
    angles = position.float()[:, None] * freqs[None]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


# --------------------------------------------------------------------------------------------------
# Transformer pieces


class _Attention(nn.Module):
    """Multi-head attention on `scaled_dot_product_attention` (flash/memory-efficient kernels on GPU)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor, q_pos: Tensor | None, k_pos: Tensor | None) -> Tensor:
        n, lq, d = x.shape
        lk = context.shape[1]
        h = self.heads
        q = self.q(x if q_pos is None else x + q_pos).reshape(n, lq, h, d // h).transpose(1, 2)
        k = self.k(context if k_pos is None else context + k_pos).reshape(n, lk, h, d // h).transpose(1, 2)
        v = self.v(context).reshape(n, lk, h, d // h).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(n, lq, d))


class _AttentionBlock(nn.Module):
    """Pre-norm residual attention: self-attention, or (`cross=True`) attention to a context."""

    def __init__(self, dim: int, heads: int, dropout: float, *, cross: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim) if cross else None
        self.attn = _Attention(dim, heads, dropout)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        pos: Tensor | None = None,
        context_pos: Tensor | None = None,
    ) -> Tensor:
        h = self.norm(x)
        if self.norm_context is None:
            return x + self.attn(h, h, pos, pos)
        if context is None:
            raise ValueError("a cross-attention block needs a context")
        return x + self.attn(h, self.norm_context(context), pos, context_pos)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class _SpatialLayer(nn.Module):
    """Queries read their token frame, then hand and joint tokens exchange information."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        d, h, p = cfg.dim, cfg.heads, cfg.dropout
        self.read_memory = _AttentionBlock(d, h, p, cross=True)
        self.hand_from_joints = _AttentionBlock(d, h, p, cross=True)
        self.joints_from_hands = _AttentionBlock(d, h, p, cross=True)
        self.ffn_hand = _FeedForward(d, cfg.mlp_ratio, p)
        self.ffn_joint = _FeedForward(d, cfg.mlp_ratio, p)

    def forward(
        self, hand: Tensor, joint: Tensor, memory: Tensor, slots: FrameSlots
    ) -> tuple[Tensor, Tensor]:
        # hand (B, T, 2, D); joint (B, T, 2, 21, D); memory (B·F, N, D).
        b, t, _, d = hand.shape
        per_frame = NUM_HANDS * (1 + NUM_JOINTS)
        q = torch.cat([hand[:, :, :, None], joint], dim=3).reshape(b, t, per_frame, d)
        q_slots = slots.to_slots(q).reshape(b * slots.num_token_frames, slots.group * per_frame, d)
        q_slots = self.read_memory(q_slots, memory)
        q = slots.from_slots(q_slots.reshape(b, slots.num_token_frames, slots.group, per_frame, d))
        q = q.reshape(b * t, NUM_HANDS, 1 + NUM_JOINTS, d)
        hand_f = q[:, :, 0]
        joint_f = q[:, :, 1:].reshape(b * t, NUM_HANDS * NUM_JOINTS, d)
        hand_f = self.hand_from_joints(hand_f, joint_f)
        joint_f = self.joints_from_hands(joint_f, hand_f)
        hand_f, joint_f = self.ffn_hand(hand_f), self.ffn_joint(joint_f)
        return hand_f.reshape(b, t, NUM_HANDS, d), joint_f.reshape(b, t, NUM_HANDS, NUM_JOINTS, d)


class _TemporalLayer(nn.Module):
    """Self-attention over the window's frames for each token stream, then an FFN."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.attn = _AttentionBlock(cfg.dim, cfg.heads, cfg.dropout, cross=False)
        self.ffn = _FeedForward(cfg.dim, cfg.mlp_ratio, cfg.dropout)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        # x (N, T, D), pos (T, D)
        return self.ffn(self.attn(x, pos=pos[None]))


# --------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class HeadOutputs:
    """What the network predicts before MANO and the translation solve; tensors (B, T, 2, ...)."""

    presence_logit: Tensor  # (B, T, 2)
    global_orient_mat: Tensor  # (B, T, 2, 3, 3)
    hand_pose_mat: Tensor  # (B, T, 2, 15, 3, 3)
    betas: Tensor  # (B, T, 2, 10)
    log_depth: Tensor  # (B, T, 2), log of the root depth in metres
    anchors_2d: Tensor  # (B, T, 2, 21, 2) pixels
    anchor_logit: Tensor  # (B, T, 2, 21) visibility logits; sigmoid = WLS weights
    image_size: tuple[int, int]
    #: Size (height, width) in pixels of one heatmap cell; cell (i, j) is centred at pixel
    #: (j·w + (w-1)/2, i·h + (h-1)/2).
    heatmap_cell: tuple[float, float]
    #: (B, T, 2, 21, Hh, Wh) heatmap logits over the (upsampled) token grid, when requested.
    heatmap_logits: Tensor | None = None


@dataclass
class DecoderOutput:
    """Per video frame and hand (index 0 = left, 1 = right): tensors (B, T, 2, ...).

    Rotations are axis-angle (MANO convention) with their matrices alongside for losses; `transl` is
    MANO's translation parameter, so `ManoLayer(global_orient, hand_pose, betas, transl)` reproduces
    `joints_3d`, the camera-frame joints in metres. `keypoints_2d` are those joints projected with K;
    `anchors_2d` the heatmap soft-argmax, with `anchor_conf` their WLS weights.
    """

    presence: Tensor  # (B, T, 2) probability
    presence_logit: Tensor  # (B, T, 2)
    global_orient: Tensor  # (B, T, 2, 3)
    hand_pose: Tensor  # (B, T, 2, 15, 3)
    global_orient_mat: Tensor  # (B, T, 2, 3, 3)
    hand_pose_mat: Tensor  # (B, T, 2, 15, 3, 3)
    betas: Tensor  # (B, T, 2, 10)
    transl: Tensor  # (B, T, 2, 3)
    joints_3d: Tensor  # (B, T, 2, 21, 3) camera frame, metres
    keypoints_2d: Tensor  # (B, T, 2, 21, 2) pixels
    anchors_2d: Tensor  # (B, T, 2, 21, 2) pixels
    anchor_conf: Tensor  # (B, T, 2, 21) in (0, 1)
    anchor_logit: Tensor  # (B, T, 2, 21)
    log_depth: Tensor  # (B, T, 2)
    #: (B, T, 2) True where the WLS solve set the translation, False where the log-depth fallback did.
    wls_ok: Tensor
    image_size: tuple[int, int]
    heatmap_cell: tuple[float, float]
    heatmap_logits: Tensor | None = None

    @property
    def root(self) -> Tensor:
        """Camera-frame wrist position (B, T, 2, 3)."""
        return self.joints_3d[..., 0, :]


def project(points: Tensor, K: Tensor, min_depth: float = 1e-3) -> Tensor:
    """Pinhole projection (..., J, 2) of camera-frame points (..., J, 3); K broadcasts as (..., 3, 3).

    Depth is clamped at `min_depth` so a point behind the camera gives a large but finite pixel.
    """
    z = points[..., 2:3].clamp(min=min_depth)
    xy1 = torch.cat([points[..., :2] / z, torch.ones_like(z)], dim=-1)
    uvw = xy1 @ K.transpose(-1, -2)
    return uvw[..., :2]


def camera_translation(
    joints_rel: Tensor,
    anchors: Tensor,
    weights: Tensor,
    K: Tensor,
    log_depth: Tensor,
    min_depth: float,
    max_depth: float,
) -> tuple[Tensor, Tensor]:
    """Camera-frame root position (..., 3) and whether the WLS solve was used (...,).

    `joints_rel` (..., J, 3) are the root-relative joints in camera orientation, `anchors` (..., J, 2)
    pixels, `weights` (..., J), K (..., 3, 3) broadcastable. The WLS solution is taken where finite
    and in [min_depth, max_depth]; elsewhere the root sits at depth exp(log_depth) on the ray through
    its anchor (joint 0).
    """
    t_wls = solve_translation(joints_rel, anchors, K, weights)
    ok = torch.isfinite(t_wls).all(dim=-1) & (t_wls[..., 2] >= min_depth) & (t_wls[..., 2] <= max_depth)
    t_wls = torch.where(ok[..., None], t_wls, torch.zeros_like(t_wls))
    root_uv1 = torch.cat([anchors[..., 0, :], torch.ones_like(anchors[..., 0, :1])], dim=-1)
    ray = (torch.linalg.inv(K) @ root_uv1[..., None])[..., 0]
    ray = ray / ray[..., 2:3]
    t_depth = torch.exp(log_depth)[..., None] * ray
    return torch.where(ok[..., None], t_wls, t_depth), ok


# --------------------------------------------------------------------------------------------------
# The decoder


class PoseDecoder(nn.Module):
    """Window features → per-frame two-hand MANO poses in the camera frame (see module docstring)."""

    def __init__(self, config: DecoderConfig, mano: Mapping[str, ManoLayer] | None = None) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.dim
        self.in_norm = nn.LayerNorm(cfg.feature_dim)
        self.in_proj = nn.Linear(cfg.feature_dim, d)
        self.ray = RayEncoding(d, cfg.ray_bands)
        self.memory_ffn = _FeedForward(d, cfg.mlp_ratio, cfg.dropout)

        # Query embeddings at unit scale (not the 0.02 of the linear layers): after the first
        # attention residual they must still tell hands, joints and frames apart.
        self.hand_query = nn.Parameter(torch.randn(NUM_HANDS, d))
        self.joint_query = nn.Parameter(torch.randn(NUM_HANDS, NUM_JOINTS, d))
        self.offset_embed = nn.Embedding(cfg.frames_per_token + 1, d)
        self.time_proj = nn.Linear(d, d)

        self.spatial = nn.ModuleList([_SpatialLayer(cfg) for _ in range(cfg.layers)])
        self.temporal_hand = nn.ModuleList([_TemporalLayer(cfg) for _ in range(cfg.temporal_layers)])
        self.temporal_joint = nn.ModuleList([_TemporalLayer(cfg) for _ in range(cfg.temporal_layers)])

        s = cfg.heatmap_upsample
        self.hand_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, sum(_HAND_HEAD_SPLIT)))
        # Per joint: heatmap embedding, visibility logit, sub-cell offset (x, y).
        self.joint_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.heatmap_dim + 3))
        self.pixel_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.heatmap_dim * s * s))
        # Heatmap logits are cosine similarities times a learned scale (CLIP-style): a raw dot
        # product of freshly initialised embeddings is near zero, and a near-uniform heatmap both
        # biases the soft-argmax to the image centre and learns to sharpen only slowly.
        self.heatmap_log_scale = nn.Parameter(torch.tensor(math.log(_HEATMAP_INIT_SCALE)))
        self.register_buffer("hand_head_offset", self._hand_head_offset(cfg), persistent=False)
        self._init_weights()
        self._mano: dict[str, ManoLayer] = {}
        if mano is not None:
            self.attach_mano(mano)

    @staticmethod
    def _hand_head_offset(cfg: DecoderConfig) -> Tensor:
        """Added to the hand head so a fresh decoder predicts the flat hand at `init_depth`."""
        return torch.cat(
            [
                torch.zeros(1),
                torch.tensor(_IDENTITY_6D),
                torch.tensor(_IDENTITY_6D).repeat(NUM_HAND_POSE_JOINTS),
                torch.zeros(NUM_BETAS),
                torch.tensor([math.log(cfg.init_depth)]),
            ]
        )

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        mano: Mapping[str, ManoLayer] | None = None,
        *,
        device: torch.device | str = "cpu",
        prefix: str = "",
    ) -> PoseDecoder:
        """A decoder from a checkpoint directory (`model.checkpoint` format; safetensors, no pickle).

        The configuration is `config["decoder"]` of the checkpoint; `prefix` selects the decoder's
        tensors when the checkpoint holds a whole model (e.g. "decoder.").
        """
        from vidihand_ros.model.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path, device=device)
        if "decoder" not in ckpt.config:
            raise ValueError(f"{path}: checkpoint has no decoder configuration")
        decoder = cls(DecoderConfig.from_dict(ckpt.config["decoder"])).to(device)
        state = {k[len(prefix) :]: v for k, v in ckpt.model_state.items() if k.startswith(prefix)}
        decoder.load_state_dict(state)
        if mano is not None:
            decoder.attach_mano(mano)
        return decoder

    # -- MANO ----------------------------------------------------------------------------------------

    def attach_mano(self, layers: Mapping[str, ManoLayer]) -> None:
        """Use these MANO layers (one per side, both required). Not part of the decoder's state."""
        missing = [s for s in HAND_SIDES if s not in layers]
        if missing:
            raise ValueError(f"MANO layers missing for sides {missing}")
        ref = next(iter(self.parameters()))
        self._mano = {s: layers[s].to(device=ref.device) for s in HAND_SIDES}

    @property
    def mano(self) -> Mapping[str, ManoLayer]:
        if not self._mano:
            raise RuntimeError("PoseDecoder has no MANO layers: pass mano= or call attach_mano()")
        return self._mano

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> PoseDecoder:
        # Keep the (unregistered) MANO layers on the decoder's device. Their dtype stays: the
        # geometry runs in float32 or wider even when the network runs in bf16.
        result = super()._apply(fn, recurse)
        ref = next(iter(self.parameters()))
        for layer in self._mano.values():
            layer.to(device=ref.device)
        return result

    # -- forward -------------------------------------------------------------------------------------

    def forward(self, features: Features, K: Tensor, *, return_heatmaps: bool = False) -> DecoderOutput:
        """Decode a batch of windows.

        Args:
            features: backbone tokens (B, F, Hp, Wp, C) with the window's geometry.
            K: (B, 3, 3) intrinsics of the (resized) frames the backbone saw, in pixels of
                `features.image_size`.
            return_heatmaps: also return the per-joint heatmap logits (for a heatmap loss).
        """
        return self.assemble(self.predict(features, K, return_heatmaps=return_heatmaps), K)

    def predict(self, features: Features, K: Tensor, *, return_heatmaps: bool = False) -> HeadOutputs:
        """The network part: heads and 2D anchors, before MANO and the translation solve."""
        cfg = self.config
        tokens = features.tokens
        if tokens.ndim != 5 or tokens.shape[-1] != cfg.feature_dim:
            raise ValueError(f"expected tokens (B, F, Hp, Wp, {cfg.feature_dim}), got {tuple(tokens.shape)}")
        b, f, hp, wp, _ = tokens.shape
        if K.shape != (b, 3, 3):
            raise ValueError(f"expected K ({b}, 3, 3), got {tuple(K.shape)}")
        pt, ph, pw = features.patch
        st, sy, sx = features.vae_scale
        if st * pt > cfg.frames_per_token:
            raise ValueError(
                f"token frames cover {st * pt} video frames; config allows {cfg.frames_per_token}"
            )
        slots = frame_slots(int(features.num_frames), f, st, pt)
        t = slots.num_frames
        cell = (float(ph * sy), float(pw * sx))
        d = cfg.dim
        param = self.in_proj.weight

        # Memory: projected tokens + ray encoding.
        x = self.in_proj(self.in_norm(tokens.to(param.dtype)))
        x = x + self.ray(K, (hp, wp), cell)[:, None]
        memory = self.memory_ffn(x.reshape(b * f, hp * wp, d))

        # Per-frame queries: hand/joint identity + time + offset inside the latent frame.
        frame_idx = torch.arange(t, device=param.device)
        sinusoid = sinusoidal_embedding(frame_idx, d).to(param.dtype)
        time = sinusoid + self.time_proj(sinusoid)
        time = time + self.offset_embed(slots.offset_class.to(param.device))
        hand = (self.hand_query[None, None] + time[None, :, None]).expand(b, t, NUM_HANDS, d)
        joint = (self.joint_query[None, None] + time[None, :, None, None]).expand(
            b, t, NUM_HANDS, NUM_JOINTS, d
        )

        for layer in self.spatial:
            hand, joint = layer(hand, joint, memory, slots)
        if self.temporal_hand:
            pos = sinusoidal_embedding(frame_idx, d).to(param.dtype)
            hand_seq = hand.permute(0, 2, 1, 3).reshape(b * NUM_HANDS, t, d)
            joint_seq = joint.permute(0, 2, 3, 1, 4).reshape(b * NUM_HANDS * NUM_JOINTS, t, d)
            for th, tj in zip(self.temporal_hand, self.temporal_joint, strict=True):
                hand_seq, joint_seq = th(hand_seq, pos), tj(joint_seq, pos)
            hand = hand_seq.reshape(b, NUM_HANDS, t, d).permute(0, 2, 1, 3)
            joint = joint_seq.reshape(b, NUM_HANDS, NUM_JOINTS, t, d).permute(0, 3, 1, 2, 4)

        # Hand heads.
        # Heads and geometry in float32 at least (bf16 networks included).
        hdtype = torch.promote_types(param.dtype, torch.float32)
        raw = self.hand_head(hand).to(hdtype) + self.hand_head_offset.to(hdtype)
        presence, go6, pose6, betas, log_depth = raw.split(_HAND_HEAD_SPLIT, dim=-1)
        global_orient_mat = rot6d_to_matrix(go6)
        hand_pose_mat = rot6d_to_matrix(pose6.reshape(b, t, NUM_HANDS, NUM_HAND_POSE_JOINTS, 6))

        # Heatmap branch: joint embeddings · per-pixel features of the joint's token frame.
        s = cfg.heatmap_upsample
        dh = cfg.heatmap_dim
        jout = self.joint_head(joint)
        joint_emb, anchor_logit = jout[..., :dh], jout[..., dh].to(hdtype)
        # Sub-cell refinement: the soft-argmax localises to a fraction of a cell only when the heatmap
        # is finely shaped; a bounded regressed offset (± one cell) gives direct, fast precision.
        cell_hw = torch.tensor([cell[1] / s, cell[0] / s], device=jout.device, dtype=hdtype)
        offset = torch.tanh(jout[..., dh + 1 : dh + 3].to(hdtype)) * cell_hw
        pix = self.pixel_head(memory).reshape(b * f, hp, wp, s, s, dh)
        pix = pix.permute(0, 1, 3, 2, 4, 5).reshape(b * f, hp * s * wp * s, dh)
        emb_slots = slots.to_slots(joint_emb.reshape(b, t, NUM_HANDS * NUM_JOINTS, dh))
        emb_slots = emb_slots.reshape(b * f, slots.group * NUM_HANDS * NUM_JOINTS, dh)
        scale = self.heatmap_log_scale.clamp(max=math.log(_HEATMAP_MAX_SCALE)).exp()
        cos = F.normalize(emb_slots, dim=-1) @ F.normalize(pix, dim=-1).transpose(1, 2)
        logits = cos.to(hdtype) * scale.to(hdtype)  # (B·F, G·42, M)
        u, v = cell_centres(
            (hp * s, wp * s), (cell[0] / s, cell[1] / s), device=logits.device, dtype=logits.dtype
        )
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        centres = torch.stack([uu, vv], dim=-1).reshape(-1, 2)
        anchors = logits.softmax(dim=-1) @ centres  # (B·F, G·42, 2)
        anchors = slots.from_slots(anchors.reshape(b, f, slots.group, NUM_HANDS, NUM_JOINTS, 2)) + offset

        heatmaps = None
        if return_heatmaps:
            hm = logits.reshape(b, f, slots.group, NUM_HANDS, NUM_JOINTS, hp * s, wp * s)
            heatmaps = slots.from_slots(hm)

        image_size = (int(features.image_size[0]), int(features.image_size[1]))
        return HeadOutputs(
            presence_logit=presence[..., 0],
            global_orient_mat=global_orient_mat,
            hand_pose_mat=hand_pose_mat,
            betas=betas,
            log_depth=log_depth[..., 0],
            anchors_2d=anchors,
            anchor_logit=anchor_logit,
            image_size=image_size,
            heatmap_cell=(cell[0] / s, cell[1] / s),
            heatmap_logits=heatmaps,
        )

    def assemble(self, heads: HeadOutputs, K: Tensor) -> DecoderOutput:
        """MANO joints, WLS translation and projection from head outputs.

        Runs in float32 (or wider) with autocast off: the solve and MANO's skinning lose metric
        accuracy in bf16, and they cost nothing next to the network.
        """
        with torch.autocast(device_type=K.device.type, enabled=False):
            return self._assemble(heads, K)

    def _assemble(self, heads: HeadOutputs, K: Tensor) -> DecoderOutput:
        cfg = self.config
        b, t = heads.presence_logit.shape[:2]
        dtype = torch.promote_types(heads.betas.dtype, torch.float32)
        K = K.to(dtype)
        global_orient = matrix_to_axis_angle(heads.global_orient_mat.to(dtype))
        hand_pose = matrix_to_axis_angle(heads.hand_pose_mat.to(dtype))

        # MANO with zero global orientation and translation; rotate about the root ourselves.
        local = []
        rest_root = []
        for h, side in enumerate(HAND_SIDES):
            layer = self.mano[side]
            n = b * t
            mano_dtype = layer.mano.shapedirs.dtype
            zeros = torch.zeros(n, 3, dtype=mano_dtype, device=K.device)
            j = layer.joints(
                zeros,
                hand_pose[:, :, h].reshape(n, NUM_HAND_POSE_JOINTS, 3).to(mano_dtype),
                heads.betas[:, :, h].reshape(n, NUM_BETAS).to(mano_dtype),
                zeros,
            ).to(dtype)
            local.append(j.reshape(b, t, NUM_JOINTS, 3))
            rest_root.append(j[:, 0].reshape(b, t, 3))
        joints_local = torch.stack(local, dim=2)  # (B, T, 2, 21, 3)
        root0 = torch.stack(rest_root, dim=2)  # (B, T, 2, 3): wrist position at zero translation
        R = heads.global_orient_mat.to(dtype)
        joints_rel = (joints_local - root0[..., None, :]) @ R.transpose(-1, -2)

        anchor_conf = torch.sigmoid(heads.anchor_logit.to(dtype))
        K_b = K[:, None, None]
        root, wls_ok = camera_translation(
            joints_rel,
            heads.anchors_2d.to(dtype),
            anchor_conf,
            K_b,
            heads.log_depth.to(dtype),
            cfg.min_depth,
            cfg.max_depth,
        )
        joints_3d = joints_rel + root[..., None, :]
        return DecoderOutput(
            presence=torch.sigmoid(heads.presence_logit),
            presence_logit=heads.presence_logit,
            global_orient=global_orient,
            hand_pose=hand_pose,
            global_orient_mat=heads.global_orient_mat,
            hand_pose_mat=heads.hand_pose_mat,
            betas=heads.betas,
            transl=root - root0,
            joints_3d=joints_3d,
            keypoints_2d=project(joints_3d, K_b),
            anchors_2d=heads.anchors_2d,
            anchor_conf=anchor_conf,
            anchor_logit=heads.anchor_logit,
            log_depth=heads.log_depth,
            wls_ok=wls_ok,
            image_size=heads.image_size,
            heatmap_cell=heads.heatmap_cell,
            heatmap_logits=heads.heatmap_logits,
        )


# --------------------------------------------------------------------------------------------------
# Core types


def to_frame_poses(
    output: DecoderOutput,
    stamps: Sequence[Sequence[int]],
    frame_ids: Sequence[str | Sequence[str]],
) -> list[list[FramePoses]]:
    """One FramePoses per window and frame, both hands always filled (presence carries the probability).

    `stamps[b][t]` is frame t's stamp in window b; `frame_ids[b]` is one frame_id for the whole
    window or one per frame. Values are copied to float32 numpy; the decoder's output is left alone.
    """
    b, t = output.presence.shape[:2]
    if len(stamps) != b or len(frame_ids) != b:
        raise ValueError(f"need stamps and frame_ids for {b} windows, got {len(stamps)} and {len(frame_ids)}")

    def host(x: Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float32).numpy()

    presence = host(output.presence)
    go, pose, betas = host(output.global_orient), host(output.hand_pose), host(output.betas)
    transl, joints, kp = host(output.transl), host(output.joints_3d), host(output.keypoints_2d)
    # The wrist orientation is the palm frame from the joints, as every estimator reports it.
    wrist = np.stack([palm_orientation(joints[:, :, h], side) for h, side in enumerate(HAND_SIDES)], axis=2)
    result: list[list[FramePoses]] = []
    for i in range(b):
        if len(stamps[i]) != t:
            raise ValueError(f"window {i}: {len(stamps[i])} stamps for {t} frames")
        ids = frame_ids[i]
        if not isinstance(ids, str) and len(ids) != t:
            raise ValueError(f"window {i}: {len(ids)} frame_ids for {t} frames")
        frames = []
        for j in range(t):
            hands = {
                side: HandPose(
                    presence=float(presence[i, j, h]),
                    global_orient=go[i, j, h],
                    hand_pose=pose[i, j, h],
                    betas=betas[i, j, h],
                    transl=transl[i, j, h],
                    joints_3d=joints[i, j, h],
                    keypoints_2d=kp[i, j, h],
                    wrist_orient=wrist[i, j, h].astype(np.float32),
                )
                for h, side in enumerate(HAND_SIDES)
            }
            frames.append(
                FramePoses(
                    stamp_ns=int(stamps[i][j]),
                    frame_id=ids if isinstance(ids, str) else ids[j],
                    left=hands["left"],
                    right=hands["right"],
                )
            )
        result.append(frames)
    return result
