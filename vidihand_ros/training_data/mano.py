"""The few MANO quantities the dataset loaders need, in numpy: no torch, smplx or chumpy.

Published datasets store MANO in three conventions (flat_hand_mean or not, PCA or full pose,
world or camera frame); bringing them to ours (full axis-angle pose, flat hand mean, camera
frame) needs `hands_mean`, `hands_components` and the shape-dependent root joint J0(β) from the
user's MANO files. With the same files the loaders can also run MANO forward kinematics, so a
ground-truth dataset carries 21 joints even where the source gives only parameters.

The files are read by `vidihand_ros.mano.load_mano_file` (restricted unpickler, no chumpy, no
torch). Forward kinematics follows smplx's `lbs` (`use_pca=False, flat_hand_mean=True`) with
the fingertip vertices and joint order of `vidihand_ros.mano`, in numpy, so the loaders work
without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from vidihand_ros.errors import InputError
from vidihand_ros.mano.files import FINGERTIP_VERTICES, find_mano_files, load_mano_file
from vidihand_ros.mano.files import JOINT_ORDER as MANO_TO_OURS
from vidihand_ros.types import NUM_BETAS

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class ManoModel:
    """One hand's MANO model as plain arrays (the subset the loaders use)."""

    side: str
    v_template: F64  # (778, 3)
    shapedirs: F64  # (778, 3, B)
    posedirs: F64  # (778, 3, 135)
    j_regressor: F64  # (16, 778)
    weights: F64  # (778, 16)
    parents: NDArray[np.int64]  # (16,), -1 for the root
    hands_mean: F64  # (45,)
    hands_components: F64  # (45, 45), PCA basis rows

    def _betas(self, betas: ArrayLike) -> F64:
        b = np.asarray(betas, dtype=np.float64)
        n = self.shapedirs.shape[-1]
        if b.shape[-1] > n:
            raise ValueError(f"{b.shape[-1]} betas given, the {self.side} MANO model has {n}")
        pad = [(0, 0)] * (b.ndim - 1) + [(0, n - b.shape[-1])]
        return np.pad(b, pad)

    def root_joint(self, betas: ArrayLike) -> F64:
        """J0(β): the wrist of the shaped, unposed hand, about which `global_orient` rotates."""
        row = self.j_regressor[0]
        base = row @ self.v_template
        dirs = np.einsum("v,vcb->cb", row, self.shapedirs)
        return base + self._betas(betas) @ dirs.T

    def pca_to_full(self, coeffs: ArrayLike) -> F64:
        """Full flat-hand-mean pose (..., 45) from `k` PCA coefficients of a flat_hand_mean=False model."""
        c = np.asarray(coeffs, dtype=np.float64)
        k = c.shape[-1]
        return c @ self.hands_components[:k] + self.hands_mean

    def joints(
        self, global_orient: ArrayLike, hand_pose: ArrayLike, betas: ArrayLike, transl: ArrayLike
    ) -> F64:
        """21 joints (N, 21, 3), our order, for flat-hand-mean full poses (like smplx MANO + tips)."""
        go = np.asarray(global_orient, dtype=np.float64).reshape(-1, 3)
        n = go.shape[0]
        pose = np.asarray(hand_pose, dtype=np.float64).reshape(n, 15, 3)
        b = np.broadcast_to(self._betas(betas), (n, self.shapedirs.shape[-1]))
        t = np.broadcast_to(np.asarray(transl, dtype=np.float64), (n, 3))

        v_shaped = self.v_template + np.einsum("vcb,nb->nvc", self.shapedirs, b)
        J = np.einsum("jv,nvc->njc", self.j_regressor, v_shaped)
        rot = Rotation.from_rotvec(np.concatenate([go[:, None], pose], axis=1).reshape(-1, 3))
        R = rot.as_matrix().reshape(n, 16, 3, 3)
        pose_feature = (R[:, 1:] - np.eye(3)).reshape(n, 135)
        tips = np.asarray(FINGERTIP_VERTICES)
        v_tips = v_shaped[:, tips] + np.einsum("vcp,np->nvc", self.posedirs[tips], pose_feature)

        G = np.zeros((n, 16, 4, 4))
        G[:, :, 3, 3] = 1.0
        for j, parent in enumerate(self.parents):
            local = np.zeros((n, 4, 4))
            local[:, :3, :3] = R[:, j]
            local[:, :3, 3] = J[:, j] - (J[:, parent] if parent >= 0 else 0.0)
            local[:, 3, 3] = 1.0
            G[:, j] = local if parent < 0 else G[:, parent] @ local
        posed = G[:, :, :3, 3]
        # Skinning transforms move rest-pose points: subtract the rotated rest joint.
        A = G.copy()
        A[:, :, :3, 3] -= np.einsum("njab,njb->nja", G[:, :, :3, :3], J)
        T = np.einsum("vj,njab->nvab", self.weights[tips], A)
        tips_posed = np.einsum("nvab,nvb->nva", T[..., :3, :3], v_tips) + T[..., :3, 3]
        joints = np.concatenate([posed, tips_posed], axis=1) + t[:, None]
        return joints[:, list(MANO_TO_OURS)]


def load_mano(mano_dir: str | Path) -> dict[str, ManoModel]:
    """Both hands' models from the user's MANO files (read by `vidihand_ros.mano.load_mano_file`).

    The left-hand shapedirs fix (smplx issue 48) is applied when the left file repeats the right
    file's first shape column, as the official files do.
    """
    paths = find_mano_files(mano_dir)
    models = {side: _model_from_dict(side, load_mano_file(path), path) for side, path in paths.items()}
    left, right = models["left"], models["right"]
    if np.sum(np.abs(left.shapedirs[:, 0, :] - right.shapedirs[:, 0, :])) < 1.0:
        fixed = left.shapedirs.copy()
        fixed[:, 0, :] *= -1.0
        models["left"] = replace(left, shapedirs=fixed)
    return models


def _model_from_dict(side: str, data: dict[str, Any], path: Path) -> ManoModel:
    try:
        jreg = data["J_regressor"]
        jreg = np.asarray(jreg.toarray() if hasattr(jreg, "toarray") else jreg, dtype=np.float64)
        parents = np.asarray(data["kintree_table"], dtype=np.int64)[0].copy()
        parents[0] = -1
        mean = np.asarray(data["hands_mean"], dtype=np.float64).reshape(45)
        comps = np.asarray(data.get("hands_components", np.eye(45)), dtype=np.float64).reshape(45, 45)
        model = ManoModel(
            side=side,
            v_template=np.asarray(data["v_template"], dtype=np.float64).reshape(-1, 3),
            shapedirs=np.asarray(data["shapedirs"], dtype=np.float64)[..., :NUM_BETAS],
            posedirs=np.asarray(data["posedirs"], dtype=np.float64),
            j_regressor=jreg,
            weights=np.asarray(data["weights"], dtype=np.float64),
            parents=parents,
            hands_mean=mean,
            hands_components=comps,
        )
    except (ValueError, TypeError, IndexError) as err:
        raise InputError(f"MANO model arrays have unexpected shapes: {err}", source=path) from err
    nv = model.v_template.shape[0]
    if (
        model.j_regressor.shape != (16, nv)
        or model.weights.shape != (nv, 16)
        or model.posedirs.shape != (nv, 3, 135)
        or model.shapedirs.shape[:2] != (nv, 3)
        or nv <= max(FINGERTIP_VERTICES)
    ):
        raise InputError("MANO model arrays have unexpected shapes", source=path)
    return model


def world_to_camera_mano(
    global_orient: ArrayLike, transl: ArrayLike, root: ArrayLike, R_cw: ArrayLike, t_cw: ArrayLike
) -> tuple[F64, F64]:
    """MANO (global_orient, transl) given in a world frame → the camera frame X_c = R_cw X_w + t_cw.

    MANO rotates about the root joint J0(β) and then adds `transl`, so the wrist sits at J0 + t.
    In the camera the wrist is R_cw (J0 + t_w) + t_cw, hence t_c = R_cw (J0 + t_w) + t_cw − J0 and
    R_c = R_cw R_w. Batched over leading axes; NaN `root` gives NaN `transl`.
    """
    go = np.asarray(global_orient, dtype=np.float64)
    R = np.broadcast_to(np.asarray(R_cw, dtype=np.float64), (*go.shape[:-1], 3, 3))
    J0 = np.asarray(root, dtype=np.float64)
    flat_go, flat_R = go.reshape(-1, 3), R.reshape(-1, 3, 3)
    ok = np.isfinite(flat_go).all(axis=1) & np.isfinite(flat_R).all(axis=(1, 2))
    flat_c = np.full_like(flat_go, np.nan)  # a missing frame stays NaN instead of raising
    if ok.any():
        R_c = flat_R[ok] @ Rotation.from_rotvec(flat_go[ok]).as_matrix()
        flat_c[ok] = Rotation.from_matrix(R_c).as_rotvec()
    go_c = flat_c.reshape(go.shape)
    wrist_w = J0 + np.asarray(transl, dtype=np.float64)
    transl_c = np.einsum("...ab,...b->...a", R, wrist_w) + np.asarray(t_cw, dtype=np.float64) - J0
    return go_c, transl_c


__all__ = ["FINGERTIP_VERTICES", "MANO_TO_OURS", "ManoModel", "load_mano", "world_to_camera_mano"]
