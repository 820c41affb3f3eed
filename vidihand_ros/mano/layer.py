"""The MANO layer: `smplx.MANO` built from a loaded file, giving 778 vertices and 21 joints.

smplx's layer yields 16 joints (wrist + 3 per finger); the usual 21-joint hand adds the five
fingertip vertices and reorders to wrist, thumb→pinky, base→tip (`JOINT_ORDER`). The pose is
axis-angle without PCA and without the mean pose (`use_pca=False, flat_hand_mean=True`), so a zero
pose is the flat hand. The official left model carries the right model's shape x-column
(smplx issue 48); the layer repairs it the way the community does.

Besides the full mesh (`forward`, through smplx), the layer computes the 21 joints alone
(`kinematics`, skinning only the five fingertip vertices) and their exact Jacobians
(`joint_jacobians`), which is what fitting needs.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import smplx
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from smplx.utils import Struct
from torch import Tensor, nn

from vidihand_ros.mano.files import (
    FINGERTIP_VERTICES,
    JOINT_ORDER,
    LAYER_PARENTS,
    NUM_LAYER_JOINTS,
    find_mano_files,
    left_shapedirs_need_fix,
    load_mano_file,
)
from vidihand_ros.types import HAND_SIDES, NUM_BETAS, NUM_HAND_POSE_JOINTS

__all__ = [
    "FINGERTIP_VERTICES",
    "JOINT_ORDER",
    "ManoKinematics",
    "ManoLayer",
    "ManoOutput",
    "joint_jacobians",
    "load_mano_layers",
]


class ManoOutput(NamedTuple):
    vertices: Tensor  # (B, 778, 3)
    joints: Tensor  # (B, 21, 3), the usual 21-joint order


class ManoKinematics(NamedTuple):
    joints: Tensor  # (B, 21, 3), with the translation
    pose: Tensor  # (B, 16, 3) axis-angle of the 16 layer joints (global orientation first)
    rotations: Tensor  # (B, 16, 3, 3) local joint rotations
    world_rotations: Tensor  # (B, 16, 3, 3)
    world_joints: Tensor  # (B, 16, 3) posed layer joints, without the translation
    rest_joints: Tensor  # (B, 16, 3) shaped rest-pose joints
    tips_posed: Tensor  # (B, 5, 3) fingertip vertices with shape and pose blend shapes, rest frame


class ManoLayer(nn.Module):
    """One hand side of MANO as a torch module (a real `smplx.MANO` inside).

    `model` is the dict from `load_mano_file`. The left side also needs the right model's dict, to
    decide whether its `shapedirs` need the x-flip fix (`shapedirs_fixed` says if it was applied).
    """

    faces: np.ndarray
    shapedirs_fixed: bool
    tip_vertices: Tensor
    joint_order: Tensor

    def __init__(
        self,
        model: Mapping[str, Any],
        side: str,
        *,
        right_model: Mapping[str, Any] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if side not in HAND_SIDES:
            raise ValueError(f"side must be one of {HAND_SIDES}, got {side!r}")
        if side == "left" and right_model is None:
            raise ValueError("the left MANO layer needs right_model to check the left shapedirs fix")
        self.side = side
        # smplx prints a warning about having only 10 shape components; it is expected for MANO.
        with contextlib.redirect_stdout(io.StringIO()):
            self.mano = smplx.MANO(
                model_path="",
                is_rhand=side == "right",
                data_struct=Struct(**model),
                use_pca=False,
                flat_hand_mean=True,
                num_betas=NUM_BETAS,
                create_global_orient=False,
                create_hand_pose=False,
                create_betas=False,
                create_transl=False,
                create_body_pose=False,
                dtype=dtype,
            )
        self.shapedirs_fixed = side == "left" and left_shapedirs_need_fix(
            np.asarray(model["shapedirs"]),
            np.asarray(right_model["shapedirs"]),  # type: ignore[index]
        )
        if self.shapedirs_fixed:
            with torch.no_grad():
                self.mano.shapedirs[:, 0, :] *= -1
        self.faces = np.asarray(model["f"], dtype=np.int64)
        tips = torch.tensor(FINGERTIP_VERTICES, dtype=torch.long)
        self.register_buffer("tip_vertices", tips, persistent=False)
        self.register_buffer("joint_order", torch.tensor(JOINT_ORDER, dtype=torch.long), persistent=False)
        # smplx stores posedirs as (135, 778·3), vertex-major: the fingertips' columns.
        self.register_buffer(
            "tip_columns", (tips[:, None] * 3 + torch.arange(3)).reshape(-1), persistent=False
        )

    @classmethod
    def from_dir(cls, mano_dir: str | Path, side: str, dtype: torch.dtype = torch.float32) -> ManoLayer:
        """Build one side from a folder holding MANO_RIGHT.pkl and MANO_LEFT.pkl."""
        return load_mano_layers(mano_dir, sides=(side,), dtype=dtype)[side]

    @staticmethod
    def _inputs(
        global_orient: Tensor, hand_pose: Tensor, betas: Tensor, transl: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        batch = global_orient.shape[0]
        if betas.ndim == 1:
            betas = betas.expand(batch, -1)
        return (
            global_orient.reshape(batch, 3),
            hand_pose.reshape(batch, NUM_HAND_POSE_JOINTS * 3),
            betas,
            transl.reshape(batch, 3),
        )

    def forward(self, global_orient: Tensor, hand_pose: Tensor, betas: Tensor, transl: Tensor) -> ManoOutput:
        """Vertices and 21 joints for axis-angle poses (B,3) + (B,45 or B,15,3), β (B,10), t (B,3)."""
        global_orient, hand_pose, betas, transl = self._inputs(global_orient, hand_pose, betas, transl)
        out = self.mano(betas=betas, global_orient=global_orient, hand_pose=hand_pose, transl=transl)
        vertices = out.vertices
        joints = torch.cat([out.joints, vertices[:, self.tip_vertices]], dim=1)[:, self.joint_order]
        return ManoOutput(vertices=vertices, joints=joints)

    def joints(self, global_orient: Tensor, hand_pose: Tensor, betas: Tensor, transl: Tensor) -> Tensor:
        """The 21 joints of `forward`, skinning just the five fingertip vertices (fast)."""
        return self.kinematics(global_orient, hand_pose, betas, transl).joints

    def kinematics(
        self, global_orient: Tensor, hand_pose: Tensor, betas: Tensor, transl: Tensor
    ) -> ManoKinematics:
        """The 21 joints with the intermediate transforms (what the Jacobians need).

        The same linear blend skinning as smplx's `lbs`, restricted to the joints and fingertips.
        """
        global_orient, hand_pose, betas, transl = self._inputs(global_orient, hand_pose, betas, transl)
        mano = self.mano
        batch = global_orient.shape[0]
        tips = self.tip_vertices
        template = mano.J_regressor @ mano.v_template  # (16, 3)
        joint_dirs = torch.einsum("jv,vck->jck", mano.J_regressor, mano.shapedirs)  # (16, 3, 10)
        rest_joints = template + torch.einsum("bk,jck->bjc", betas, joint_dirs)
        tips_shaped = mano.v_template[tips] + torch.einsum("bk,vck->bvc", betas, mano.shapedirs[tips])
        pose = torch.cat([global_orient, hand_pose + mano.hand_mean], dim=1)
        rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, NUM_LAYER_JOINTS, 3, 3)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(batch, -1)
        tips_posed = tips_shaped + (pose_feature @ mano.posedirs[:, self.tip_columns]).reshape(batch, -1, 3)
        posed_joints, transforms = batch_rigid_transform(rot, rest_joints, mano.parents, dtype=rot.dtype)
        blend = torch.einsum("vj,bjmn->bvmn", mano.lbs_weights[tips], transforms)
        tips_final = torch.einsum("bvmn,bvn->bvm", blend[:, :, :3, :3], tips_posed) + blend[:, :, :3, 3]
        joints = torch.cat([posed_joints, tips_final], dim=1)[:, self.joint_order] + transl[:, None, :]
        return ManoKinematics(
            joints=joints,
            pose=pose.reshape(batch, NUM_LAYER_JOINTS, 3),
            rotations=rot,
            world_rotations=transforms[:, :, :3, :3],
            world_joints=posed_joints,
            rest_joints=rest_joints,
            tips_posed=tips_posed,
        )


def _skew(v: Tensor) -> Tensor:
    """Cross-product matrices [v]× for (..., 3) vectors."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def _right_jacobian(theta: Tensor) -> Tensor:
    """SO(3) right Jacobian: exp(θ + ε v) ≈ exp(θ) exp(ε [J_r(θ) v]×), for (..., 3) axis-angles."""
    phi2 = (theta**2).sum(-1)[..., None, None]
    small = phi2 < 1e-8
    phi = torch.sqrt(torch.where(small, torch.ones_like(phi2), phi2))
    a = torch.where(small, 0.5 - phi2 / 24.0, (1.0 - torch.cos(phi)) / phi**2)
    b = torch.where(small, 1.0 / 6.0 - phi2 / 120.0, (phi - torch.sin(phi)) / phi**3)
    k = _skew(theta)
    return torch.eye(3, dtype=theta.dtype, device=theta.device) - a * k + b * (k @ k)


def _ancestors() -> np.ndarray:
    """anc[k, j] = 1 when layer joint k is j or one of its ancestors (rotating k moves j)."""
    anc = np.zeros((NUM_LAYER_JOINTS, NUM_LAYER_JOINTS))
    for j in range(NUM_LAYER_JOINTS):
        k = j
        while k >= 0:
            anc[k, j] = 1.0
            k = LAYER_PARENTS[k]
    return anc


def joint_jacobians(layer: ManoLayer, kin: ManoKinematics) -> tuple[Tensor, Tensor]:
    """Exact derivatives of the 21 joints (metres) w.r.t. the 16 axis-angles and β.

    Returns (B, 63, 48) for [global_orient, hand_pose] and (B, 63, 10) for β; the translation's is
    the identity. Rotating joint k about a world axis ω moves each point skinned to k's subtree by
    ω × (point − joint k); the fingertips also move through the pose blend shapes; β enters
    linearly through the rest joints and the fingertips' rest positions.
    """
    mano = layer.mano
    rot_g, c = kin.world_rotations, kin.world_joints
    batch = c.shape[0]
    anc = torch.as_tensor(_ancestors(), dtype=c.dtype, device=c.device)
    tips = layer.tip_vertices
    w = mano.lbs_weights[tips].to(c.dtype)  # (5, 16)

    # Each point as moved by each transform l it is skinned to: T_l(v) = G_l (v − J_l) + c_l.
    offset = c - torch.einsum("blcd,bld->blc", rot_g, kin.rest_joints)
    tips_through = torch.einsum("blcd,bmd->bmlc", rot_g, kin.tips_posed) + offset[:, None]
    moved_tips = torch.einsum("ml,kl,bmlc->bmkc", w, anc, tips_through)
    moved_joints = anc.T[None, :, :, None] * c[:, :, None, :]
    moved = torch.cat([moved_joints, moved_tips], dim=1)  # (B, 21, 16, 3), layer order
    share = torch.cat([anc.T, w @ anc.T], dim=0)  # (21, 16): how much of each point k moves
    lever = moved - share[None, :, :, None] * c[:, None, :, :]
    omega = rot_g @ _right_jacobian(kin.pose)  # (B, 16, 3, 3): world axis per unit dθ_i (column i)
    jac = torch.cross(omega.mT[:, None], lever[:, :, :, None, :].expand(-1, -1, -1, 3, -1), dim=-1)

    # Pose blend shapes of the fingertips: d(R_k − I)/dθ_i = R_k [J_r(θ_k) e_i]×.
    d_rot = kin.rotations[:, 1:, None] @ _skew(_right_jacobian(kin.pose[:, 1:]).mT)  # (B, 15, 3, 3, 3)
    posedirs = mano.posedirs[:, layer.tip_columns].to(c.dtype).reshape(15, 9, 5, 3)
    d_rest = torch.einsum("bkie,kemc->bkimc", d_rot.reshape(batch, 15, 3, 9), posedirs)
    blend = torch.einsum("ml,blcd->bmcd", w, rot_g)
    jac[:, 16:, 1:] += torch.einsum("bmcd,bkimd->bmkic", blend, d_rest)
    jac_pose = jac[:, layer.joint_order].permute(0, 1, 4, 2, 3).reshape(batch, 63, 48)

    shapedirs = mano.shapedirs.to(c.dtype)
    joint_dirs = torch.einsum("jv,vck->jck", mano.J_regressor.to(c.dtype), shapedirs)  # (16, 3, 10)
    d_joints = [joint_dirs[0].expand(batch, -1, -1)]
    for j in range(1, NUM_LAYER_JOINTS):
        p = LAYER_PARENTS[j]
        d_joints.append(rot_g[:, p] @ (joint_dirs[j] - joint_dirs[p]) + d_joints[p])
    dc = torch.stack(d_joints, dim=1)  # (B, 16, 3, 10)
    diff = shapedirs[tips][:, None] - joint_dirs[None]  # (5, 16, 3, 10)
    d_tips = torch.einsum("ml,blcd,mldk->bmck", w, rot_g, diff) + torch.einsum("ml,blck->bmck", w, dc)
    jac_beta = torch.cat([dc, d_tips], dim=1)[:, layer.joint_order].reshape(batch, 63, -1)
    return jac_pose, jac_beta


def load_mano_layers(
    mano_dir: str | Path,
    sides: tuple[str, ...] = HAND_SIDES,
    dtype: torch.dtype = torch.float32,
) -> dict[str, ManoLayer]:
    """Layers for the requested sides from the user's MANO folder (both files must be there)."""
    paths = find_mano_files(mano_dir)
    right = load_mano_file(paths["right"])
    layers: dict[str, ManoLayer] = {}
    for side in sides:
        if side == "right":
            layers[side] = ManoLayer(right, "right", dtype=dtype)
        else:
            layers[side] = ManoLayer(load_mano_file(paths["left"]), "left", right_model=right, dtype=dtype)
    return layers
