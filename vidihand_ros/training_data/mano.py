"""The few MANO quantities the dataset loaders need, in numpy: no torch, smplx or chumpy.

Published datasets store MANO in three conventions (flat_hand_mean or not, PCA or full pose,
world or camera frame); bringing them to ours (full axis-angle pose, flat hand mean, camera
frame) needs `hands_mean`, `hands_components` and the shape-dependent root joint J0(β) from the
user's MANO files. With the same files the loaders can also run MANO forward kinematics, so a
ground-truth dataset carries 21 joints even where the source gives only parameters.

The files are read by `vidihand_ros.mano.load_mano_file` (restricted unpickler, no chumpy, no
torch); the conversions are plain numpy. Joints from MANO parameters come from the project's
smplx layer (`vidihand_ros.mano.layer`, float64), so that needs the `[mano]` extra.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from vidihand_ros.errors import InputError
from vidihand_ros.mano.files import (
    FINGERTIP_VERTICES,
    find_mano_files,
    left_shapedirs_need_fix,
    load_mano_file,
)
from vidihand_ros.mano.files import JOINT_ORDER as MANO_TO_OURS
from vidihand_ros.types import NUM_BETAS

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class ManoModel:
    """One hand's MANO model as plain arrays (the subset the loaders use)."""

    side: str
    #: The MANO folder the model was read from (the smplx layer for `joints` is built from it).
    source: Path
    v_template: F64  # (778, 3)
    shapedirs: F64  # (778, 3, B)
    j_regressor: F64  # (16, 778)
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
        """21 joints (N, 21, 3), our order, for flat-hand-mean full poses: smplx MANO + fingertips."""
        try:
            import torch
        except ImportError:
            raise InputError("joints from MANO parameters need the [mano] extra (torch, smplx)") from None
        go = np.asarray(global_orient, dtype=np.float64).reshape(-1, 3)
        n = go.shape[0]
        pose = np.asarray(hand_pose, dtype=np.float64).reshape(n, 15, 3)
        b = np.broadcast_to(self._betas(betas)[..., :NUM_BETAS], (n, NUM_BETAS))
        t = np.broadcast_to(np.asarray(transl, dtype=np.float64), (n, 3))
        args = (torch.tensor(a, dtype=torch.float64) for a in (go, pose, b, t))
        with torch.no_grad():
            return _layer(self.source, self.side).joints(*args).numpy()


@functools.cache
def _layer(source: Path, side: str) -> Any:
    """The smplx MANO layer of one side, built once per folder (float64, as the loaders compute)."""
    import torch

    from vidihand_ros.mano.layer import load_mano_layers

    return load_mano_layers(source, sides=(side,), dtype=torch.float64)[side]


def load_mano(mano_dir: str | Path) -> dict[str, ManoModel]:
    """Both hands' models from the user's MANO files (read by `vidihand_ros.mano.load_mano_file`).

    The left-hand shapedirs fix (smplx issue 48) is applied when the left file repeats the right
    file's first shape column, as the official files do.
    """
    paths = find_mano_files(mano_dir)
    models = {side: _model_from_dict(side, load_mano_file(path), path) for side, path in paths.items()}
    left, right = models["left"], models["right"]
    if left_shapedirs_need_fix(left.shapedirs, right.shapedirs):
        fixed = left.shapedirs.copy()
        fixed[:, 0, :] *= -1.0
        models["left"] = replace(left, shapedirs=fixed)
    return models


def _model_from_dict(side: str, data: dict[str, Any], path: Path) -> ManoModel:
    try:
        jreg = data["J_regressor"]
        jreg = np.asarray(jreg.toarray() if hasattr(jreg, "toarray") else jreg, dtype=np.float64)
        mean = np.asarray(data["hands_mean"], dtype=np.float64).reshape(45)
        comps = np.asarray(data.get("hands_components", np.eye(45)), dtype=np.float64).reshape(45, 45)
        model = ManoModel(
            side=side,
            source=path.parent,
            v_template=np.asarray(data["v_template"], dtype=np.float64).reshape(-1, 3),
            shapedirs=np.asarray(data["shapedirs"], dtype=np.float64)[..., :NUM_BETAS],
            j_regressor=jreg,
            hands_mean=mean,
            hands_components=comps,
        )
    except (ValueError, TypeError, IndexError) as err:
        raise InputError(f"MANO model arrays have unexpected shapes: {err}", source=path) from err
    nv = model.v_template.shape[0]
    if (
        model.j_regressor.shape != (16, nv)
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
