"""Fit MANO to 3D joint tracks: one batched least-squares problem over a window of frames.

Estimators that give 21 metric joints but no MANO parameters (the MediaPipe baseline) get MANO
this way: per frame a global orientation, 15 joint rotations and a translation, one β for the
whole window; joint error plus small priors on pose and β, plus a temporal term on the fitted
joints' acceleration (the jitter measure itself: zero-phase, so steady motion is not pulled back).

It starts from a rigid alignment of the flat template's palm to the target palm (Kabsch), so only
the fingers and the shape remain to be found, and solves by Levenberg-Marquardt with the layer's
exact Jacobians: first every frame on its own (block-diagonal equations, batched), then the window
with the temporal term (block-banded equations). A plain gradient method (Adam, L-BFGS) needs
hundreds of iterations here and still stops millimetres short; this converges in tens.
torch is imported only when fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.types import HAND_SIDES, NUM_BETAS, NUM_HAND_POSE_JOINTS, NUM_JOINTS

if TYPE_CHECKING:
    import torch

    from vidihand_ros.mano.layer import ManoKinematics, ManoLayer

#: Wrist and the four finger bases (index, middle, ring, pinky) in the 21-joint order.
PALM_JOINTS = (0, 5, 9, 13, 17)
#: Variables per frame: global orientation (3), hand pose (45), translation (3).
_FRAME_VARS = 3 + 3 * NUM_HAND_POSE_JOINTS + 3
_MM = 1000.0
#: Levenberg-Marquardt never damps a variable by less than this curvature (mm² per rad², or per
#: m²): finger twists barely move a joint, and steps along them must stay small.
_DAMPING_FLOOR = 1e4
#: Stop when an iteration lowers the objective by less than this fraction.
_RELATIVE_TOLERANCE = 1e-4


@dataclass
class ManoFit:
    """MANO parameters fitted to a joint sequence; frames without data are NaN."""

    global_orient: NDArray[np.float32]  # (T, 3) axis-angle, camera frame
    hand_pose: NDArray[np.float32]  # (T, 15, 3) axis-angle
    betas: NDArray[np.float32]  # (10,), shared by the window
    transl: NDArray[np.float32]  # (T, 3) metres
    joints: NDArray[np.float32]  # (T, 21, 3) fitted joints, metres
    residual_mm: NDArray[np.float32]  # (T,) mean distance fitted↔target over the given joints
    converged: bool
    valid: NDArray[np.bool_]  # (T,) frames that had at least one target joint


def fit_mano(
    joints_3d: NDArray[np.floating],
    side: str,
    mano: ManoLayer | str | Path,
    *,
    iters: int = 30,
    smooth_weight: float = 0.5,
    pose_weight: float = 10.0,
    beta_weight: float = 1.0,
    betas: NDArray[np.floating] | None = None,
    device: str | torch.device = "cpu",
) -> ManoFit:
    """Fit MANO to `joints_3d` (T, 21, 3) in metres (camera frame; NaN = joint not observed).

    `mano` is a `ManoLayer` for `side` (moved to `device`; reuse one across calls) or a folder with
    the MANO files. `betas` (10,) fixes the shape (e.g. one β per episode) instead of fitting it.
    The objective is in squared millimetres: Σ|P − Y|² over the observed joints,
    `pose_weight`·|θ|² per frame, `beta_weight`·T·|β|², and `smooth_weight`·Σ|P_t+1 − 2P_t + P_t−1|²
    over consecutive frames. `iters` bounds the iterations of each of the two stages.
    """
    import torch

    from vidihand_ros.mano.layer import ManoLayer

    if side not in HAND_SIDES:
        raise ValueError(f"side must be one of {HAND_SIDES}, got {side!r}")
    target_all = np.asarray(joints_3d, dtype=np.float64)
    if target_all.ndim != 3 or target_all.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints_3d must be (T, {NUM_JOINTS}, 3), got {target_all.shape}")
    layer = mano if isinstance(mano, ManoLayer) else ManoLayer.from_dir(mano, side)
    if layer.side != side:
        raise ValueError(f"a {layer.side} MANO layer cannot fit the {side} hand")
    layer = layer.to(device)

    mask_all = np.asarray(np.isfinite(target_all).all(axis=2), dtype=bool)
    valid = np.asarray(mask_all.any(axis=1), dtype=bool)
    frames = np.flatnonzero(valid)
    result = _empty_fit(target_all.shape[0], valid)
    if frames.size == 0:
        return result
    target = np.where(mask_all[frames, :, None], target_all[frames], 0.0)
    mask = mask_all[frames]
    n = frames.size

    problem = _Problem(layer, target, mask, frames, pose_weight, beta_weight, smooth_weight)
    beta0 = np.zeros(NUM_BETAS) if betas is None else np.asarray(betas, dtype=np.float64).reshape(NUM_BETAS)
    with torch.no_grad():
        beta = problem.tensor(beta0)
        template = problem.joints_mm(problem.tensor(np.zeros((1, _FRAME_VARS))), beta)[0] / _MM
        orient0, transl0 = _rigid_init(template.reshape(NUM_JOINTS, 3).cpu().numpy(), target, mask)
        x = problem.tensor(np.concatenate([orient0, np.zeros((n, 45)), transl0], axis=1))
        smooth = problem.smooth_weight
        problem.smooth_weight = 0.0
        x, beta, converged = _levenberg_marquardt(problem, x, beta, betas is None, iters)
        if smooth:
            problem.smooth_weight = smooth
            x, beta, converged = _levenberg_marquardt(problem, x, beta, betas is None, iters)
        fitted = (problem.joints_mm(x, beta) / _MM).reshape(n, NUM_JOINTS, 3).cpu().numpy()

    error = np.linalg.norm(fitted - target, axis=2) * _MM
    values = x.cpu().numpy()
    result.global_orient[frames] = values[:, :3]
    result.hand_pose[frames] = values[:, 3:48].reshape(n, NUM_HAND_POSE_JOINTS, 3)
    result.transl[frames] = values[:, 48:]
    result.joints[frames] = fitted
    result.residual_mm[frames] = np.where(mask, error, 0.0).sum(axis=1) / mask.sum(axis=1)
    result.betas[:] = beta.cpu().numpy()
    result.converged = converged
    return result


def _empty_fit(frames: int, valid: NDArray[np.bool_]) -> ManoFit:
    nan = np.float32(np.nan)
    return ManoFit(
        global_orient=np.full((frames, 3), nan),
        hand_pose=np.full((frames, NUM_HAND_POSE_JOINTS, 3), nan),
        betas=np.full(NUM_BETAS, nan),
        transl=np.full((frames, 3), nan),
        joints=np.full((frames, NUM_JOINTS, 3), nan),
        residual_mm=np.full(frames, nan),
        converged=False,
        valid=valid,
    )


def _kabsch(source: NDArray[np.float64], target: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation (3,3) best mapping the centred points `source` (N,3) onto centred `target`."""
    src = source - source.mean(axis=0)
    dst = target - target.mean(axis=0)
    u, _, vt = np.linalg.svd(dst.T @ src)
    u[:, -1] *= np.sign(np.linalg.det(u @ vt))
    return u @ vt


def _rigid_init(
    template: NDArray[np.float64], target: NDArray[np.float64], mask: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-frame global orientation (axis-angle) and translation placing the flat template.

    MANO rotates about its rest wrist J0, so a template point x lands at R (x − J0) + J0 + t.
    R comes from the palm joints (all observed joints when fewer than three palm joints are);
    t then puts the template's centroid of those joints on the target's. A frame with fewer than
    three joints borrows R from the nearest frame that had enough.
    """
    from scipy.spatial.transform import Rotation

    frames = target.shape[0]
    rotations = np.tile(np.eye(3), (frames, 1, 1))
    translations = np.zeros((frames, 3))
    palm = np.zeros(NUM_JOINTS, dtype=bool)
    palm[list(PALM_JOINTS)] = True
    ok = np.zeros(frames, dtype=bool)
    for t in range(frames):
        use = mask[t] & palm if np.count_nonzero(mask[t] & palm) >= 3 else mask[t]
        if np.count_nonzero(use) >= 3:
            rotations[t] = _kabsch(template[use], target[t, use])
            ok[t] = True
    if ok.any():
        good = np.flatnonzero(ok)
        for missing in np.flatnonzero(~ok):
            rotations[missing] = rotations[good[np.argmin(np.abs(good - missing))]]
    wrist = template[0]
    for t in range(frames):
        use = mask[t] & palm if ok[t] and np.count_nonzero(mask[t] & palm) >= 3 else mask[t]
        placed = (template[use] - wrist) @ rotations[t].T + wrist
        translations[t] = (target[t, use] - placed).mean(axis=0)
    return Rotation.from_matrix(rotations).as_rotvec(), translations


def _second_difference_centres(frames: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions k in the list of fitted frames where frames k−1, k, k+1 are consecutive."""
    if frames.size < 3:
        return np.zeros(0, dtype=np.int64)
    k = np.arange(1, frames.size - 1)
    return k[(frames[k] - frames[k - 1] == 1) & (frames[k + 1] - frames[k] == 1)]


class _Normal(NamedTuple):
    """Gauss-Newton normal equations H δ = −g of the objective.

    H_xx is block-pentadiagonal (a frame couples to two neighbours each side through the second
    differences): `diag[i]` = H[i, i], `off1[i]` = H[i+1, i], `off2[i]` = H[i+2, i], 51×51 blocks.
    `h_xb` (n, 51, 10) couples the frames to the shared β, `h_bb` (10, 10) is β's own block.
    """

    diag: torch.Tensor
    off1: torch.Tensor
    off2: torch.Tensor
    h_xb: torch.Tensor
    h_bb: torch.Tensor
    g_x: torch.Tensor
    g_b: torch.Tensor


class _Problem:
    """The objective in squared millimetres, and its Gauss-Newton equations.

    Per frame x = [global_orient (3), hand_pose (45), transl (3, metres)], plus a shared β:
    E = Σ_t Σ_j m_tj |P_tj − Y_tj|² + w_pose Σ_t |θ_t|² + w_β n |β|²
        + w_smooth Σ_(t−1, t, t+1 consecutive) Σ_j |P_t+1,j − 2 P_tj + P_t−1,j|²
    """

    def __init__(
        self,
        layer: ManoLayer,
        target: NDArray[np.float64],
        mask: NDArray[np.bool_],
        frames: NDArray[np.int64],
        pose_weight: float,
        beta_weight: float,
        smooth_weight: float,
    ) -> None:
        import torch

        self.layer = layer
        self.dtype = layer.mano.shapedirs.dtype
        self.device = layer.mano.shapedirs.device
        n = self.n = len(frames)
        self.target = self.tensor(target * _MM).reshape(n, -1)
        self.weight = self.tensor(np.repeat(mask, 3, axis=1).astype(np.float64))
        self.pose_weight, self.beta_weight = pose_weight, beta_weight
        centres = _second_difference_centres(frames)
        self.smooth_weight = smooth_weight if centres.size else 0.0
        self.centres = torch.as_tensor(centres, device=self.device)
        # How many times (and with what sign) each block of H receives J_iᵀJ_j from the second
        # differences with coefficients (1, −2, 1).
        scale_diag, scale_1, scale_2 = np.zeros(n), np.zeros(max(n - 1, 0)), np.zeros(max(n - 2, 0))
        for k in centres:
            scale_diag[[k - 1, k, k + 1]] += (1.0, 4.0, 1.0)
            scale_1[[k - 1, k]] -= 2.0
            scale_2[k - 1] += 1.0
        self.scales = [self.tensor(a)[:, None, None] for a in (scale_diag, scale_1, scale_2)]

    def tensor(self, value: Any) -> torch.Tensor:
        import torch

        return torch.as_tensor(value, dtype=torch.float64, device=self.device)

    def _kinematics(self, x: torch.Tensor, beta: torch.Tensor) -> ManoKinematics:
        v = x.to(self.dtype)
        betas = beta.to(self.dtype).expand(x.shape[0], -1)
        return self.layer.kinematics(v[:, :3], v[:, 3:48], betas, v[:, 48:])

    def joints_mm(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """(batch, 63) joints in mm for the variables x (batch, 51) and β."""
        return self._kinematics(x, beta).joints.reshape(x.shape[0], -1).double() * _MM

    def _acceleration(self, per_frame: torch.Tensor) -> torch.Tensor:
        k = self.centres
        return per_frame[k + 1] - 2 * per_frame[k] + per_frame[k - 1]

    def cost(self, x: torch.Tensor, beta: torch.Tensor) -> float:
        pred = self.joints_mm(x, beta)
        total = (((pred - self.target) ** 2) * self.weight).sum()
        total = (
            total + self.pose_weight * (x[:, 3:48] ** 2).sum() + self.beta_weight * self.n * (beta**2).sum()
        )
        if self.smooth_weight:
            total = total + self.smooth_weight * (self._acceleration(pred) ** 2).sum()
        return float(total)

    def normal_equations(self, x: torch.Tensor, beta: torch.Tensor) -> _Normal:
        import torch

        from vidihand_ros.mano.layer import joint_jacobians

        n = self.n
        kin = self._kinematics(x, beta)
        pred = kin.joints.reshape(n, -1).double() * _MM
        jac_rot, jac_beta = (j.double() * _MM for j in joint_jacobians(self.layer, kin))
        jac_transl = self.tensor(np.tile(np.eye(3), (NUM_JOINTS, 1)) * _MM).expand(n, -1, -1)
        jac = torch.cat([jac_rot, jac_transl], dim=2)  # (n, 63, 51)
        residual = (pred - self.target) * self.weight
        masked, masked_beta = jac * self.weight[:, :, None], jac_beta * self.weight[:, :, None]
        diag = masked.mT @ masked
        h_xb = masked.mT @ masked_beta
        h_bb = (masked_beta.mT @ masked_beta).sum(0) + self.beta_weight * n * self.tensor(np.eye(NUM_BETAS))
        g_x = (masked.mT @ residual[:, :, None])[:, :, 0]
        g_b = (masked_beta.mT @ residual[:, :, None]).sum(0)[:, 0] + self.beta_weight * n * beta
        pose = torch.arange(3, 48, device=self.device)
        diag[:, pose, pose] += self.pose_weight
        g_x[:, 3:48] += self.pose_weight * x[:, 3:48]
        off1 = self.tensor(np.zeros((max(n - 1, 0), _FRAME_VARS, _FRAME_VARS)))
        off2 = self.tensor(np.zeros((max(n - 2, 0), _FRAME_VARS, _FRAME_VARS)))
        if self.smooth_weight:
            w, k = self.smooth_weight, self.centres
            diag += w * self.scales[0] * (jac.mT @ jac)
            off1 += w * self.scales[1] * (jac[1:].mT @ jac[:-1])
            off2 += w * self.scales[2] * (jac[2:].mT @ jac[:-2])
            accel = self._acceleration(pred)  # (m, 63)
            accel_beta = self._acceleration(jac_beta)  # (m, 63, 10)
            # For each frame, Σ over the second differences it enters, times its coefficient.
            per_frame = self.tensor(np.zeros((n, 63)))
            per_frame_beta = self.tensor(np.zeros((n, 63, NUM_BETAS)))
            for shift, coef in ((-1, 1.0), (0, -2.0), (1, 1.0)):
                per_frame.index_add_(0, k + shift, coef * accel)
                per_frame_beta.index_add_(0, k + shift, coef * accel_beta)
            g_x += w * (jac.mT @ per_frame[:, :, None])[:, :, 0]
            h_xb += w * (jac.mT @ per_frame_beta)
            h_bb += w * (accel_beta.mT @ accel_beta).sum(0)
            g_b += w * (accel_beta.mT @ accel[:, :, None]).sum(0)[:, 0]
        return _Normal(diag, off1, off2, h_xb, h_bb, g_x, g_b)


def _solve_banded(h: _Normal, rhs: torch.Tensor) -> torch.Tensor:
    """H_xx⁻¹ rhs (rhs: n × 51 × m) by block Cholesky of the block-pentadiagonal H_xx.

    Block-diagonal (no temporal term): one batched Cholesky. Otherwise a loop over frames:
    L[i,i−2] = H[i,i−2] L[i−2,i−2]⁻ᵀ, L[i,i−1] = (H[i,i−1] − L[i,i−2] L[i−1,i−2]ᵀ) L[i−1,i−1]⁻ᵀ,
    L[i,i] = chol(H[i,i] − L[i,i−1] L[i,i−1]ᵀ − L[i,i−2] L[i,i−2]ᵀ), then two substitutions.
    """
    import torch

    if not h.off1.any() and not h.off2.any():
        return torch.cholesky_solve(rhs, torch.linalg.cholesky(h.diag))

    def times_inverse_transpose(block: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve_triangular(factor.mT, block, upper=True, left=False)

    n = h.diag.shape[0]
    l0: list[torch.Tensor] = []  # L[i, i]
    l1: list[torch.Tensor | None] = []  # L[i, i−1]
    l2: list[torch.Tensor | None] = []  # L[i, i−2]
    for i in range(n):
        block = h.diag[i]
        below2 = times_inverse_transpose(h.off2[i - 2], l0[i - 2]) if i >= 2 else None
        below1 = None
        if i >= 1:
            coupling = h.off1[i - 1]
            if below2 is not None and (previous := l1[i - 1]) is not None:
                coupling = coupling - below2 @ previous.mT
            below1 = times_inverse_transpose(coupling, l0[i - 1])
            block = block - below1 @ below1.mT
        if below2 is not None:
            block = block - below2 @ below2.mT
        l0.append(torch.linalg.cholesky(block))
        l1.append(below1)
        l2.append(below2)
    z: list[torch.Tensor] = []
    for i in range(n):
        b = rhs[i]
        if (a := l1[i]) is not None:
            b = b - a @ z[i - 1]
        if (a := l2[i]) is not None:
            b = b - a @ z[i - 2]
        z.append(torch.linalg.solve_triangular(l0[i], b, upper=False))
    x = list(z)
    for i in reversed(range(n)):
        b = z[i]
        if i + 1 < n and (a := l1[i + 1]) is not None:
            b = b - a.mT @ x[i + 1]
        if i + 2 < n and (a := l2[i + 2]) is not None:
            b = b - a.mT @ x[i + 2]
        x[i] = torch.linalg.solve_triangular(l0[i].mT, b, upper=True)
    return torch.stack(x)


def _solve(h: _Normal, fit_betas: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve H δ = −g exactly; β (shared by all frames) is eliminated by its Schur complement."""
    import torch

    if not fit_betas:
        return -_solve_banded(h, h.g_x[:, :, None])[:, :, 0], torch.zeros_like(h.g_b)
    solved = _solve_banded(h, torch.cat([h.g_x[:, :, None], h.h_xb], dim=2))
    u, v = solved[:, :, :1], solved[:, :, 1:]
    schur = h.h_bb - (h.h_xb.mT @ v).sum(0)
    delta_beta = -torch.linalg.solve(schur, h.g_b - (h.h_xb.mT @ u).sum(0)[:, 0])
    delta_x = -(u[:, :, 0] + (v @ delta_beta[:, None])[:, :, 0])
    return delta_x, delta_beta


def _lm_step(h: _Normal, damping: float, fit_betas: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Levenberg-Marquardt step (δx, δβ) for the damping, and the decrease the model predicts."""
    import torch

    scale_x = torch.diagonal(h.diag, dim1=1, dim2=2).clamp(min=_DAMPING_FLOOR)
    scale_b = torch.diagonal(h.h_bb).clamp(min=_DAMPING_FLOOR)
    damped = h._replace(
        diag=h.diag + torch.diag_embed(damping * scale_x), h_bb=h.h_bb + torch.diag(damping * scale_b)
    )
    delta_x, delta_beta = _solve(damped, fit_betas)
    # Decrease of the quadratic model (E = Σr²): δᵀ(λ D δ − g).
    predicted = (delta_x * (damping * scale_x * delta_x - h.g_x)).sum()
    predicted = predicted + (delta_beta * (damping * scale_b * delta_beta - h.g_b)).sum()
    return delta_x, delta_beta, float(predicted)


def _levenberg_marquardt(
    problem: _Problem, x: torch.Tensor, beta: torch.Tensor, fit_betas: bool, iters: int
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Minimise the objective from (x, β); returns the result and whether it converged."""
    damping, growth = 1e-3, 2.0
    cost = problem.cost(x, beta)
    for _ in range(iters):
        normal = problem.normal_equations(x, beta)
        while True:
            delta_x, delta_beta, predicted = _lm_step(normal, damping, fit_betas)
            new_x, new_beta = x + delta_x, beta + delta_beta
            new_cost = problem.cost(new_x, new_beta)
            if new_cost < cost and predicted > 0:
                break
            damping, growth = damping * growth, growth * 2.0
            if damping > 1e8:  # no step lowers the objective: at a minimum to numerical precision
                return x, beta, True
        # Nielsen's rule: relax the damping as far as the quadratic model proved right.
        gain = (cost - new_cost) / predicted
        damping, growth = damping * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3), 2.0
        improvement = (cost - new_cost) / max(cost, 1e-12)
        x, beta, cost = new_x, new_beta, new_cost
        if improvement < _RELATIVE_TOLERANCE:
            return x, beta, True
    return x, beta, False
