"""ARCTIC (Fan et al., CVPR 2023): bimanual hand-object sequences, 1 egocentric + 8 allocentric views.

Expected layout (`ROOT` is `arctic_data/data` of the official download; `ROOT`'s parents
`arctic_data/` or `data/arctic_data/` work too)::

    ROOT/
    ├── meta/misc.json                         per subject: image_size (9×[w,h]), intris_mat (8×3×3),
    │                                          world2cam (8×4×4), ioi_offset
    ├── raw_seqs/<subject>/<seq>.mano.npy      {right,left: rot N×3, pose N×45, trans N×3, shape 10}
    ├── raw_seqs/<subject>/<seq>.egocam.dist.npy  R_k_cam_np N×3×3, T_k_cam_np N×3×1, intrinsics 3×3, dist8
    ├── images/<subject>/<seq>/<view>/<frame:05d>.jpg          full resolution (view 0: 2800×2000)
    ├── cropped_images/<subject>/<seq>/0/<frame:05d>.jpg       optional, ego view at 0.3×
    └── processed_seqs/<subject>/<seq>.npy     optional (scripts_data/process_seqs.py): camera-frame
                                               joints and validity per view

Sequence names are `<subject>/<seq>` (e.g. `s01/box_grab_01`); `camera` is the view index,
0 = egocentric (default), 1–8 = allocentric. Image `<frame>.jpg` shows MANO frame
`frame − ioi_offset`; frames without an image are skipped. 30 fps.

Conversions (see `zc-alexfan/arctic`, src/arctic/processing.py and common/body_models.py):
- MANO parameters are in the world (mocap) frame in metres; the egocentric camera moves
  (per-frame world→camera `R_k_cam_np`, `T_k_cam_np`), allocentric cameras are fixed
  (`world2cam` in misc.json). `global_orient` and `transl` are rotated into the camera frame
  about the root joint J0(β) (`mano.world_to_camera_mano`); J0 comes from the MANO files or,
  without them, from processed_seqs' world joints (J0 = wrist − trans). Without either,
  `transl` is NaN.
- ARCTIC's MANO layers use `flat_hand_mean=False`: `pose` is relative to MANO's `hands_mean`,
  so the flat-hand-mean pose is `pose + hands_mean` (needs `mano_dir`; NaN without it).
- Joints: processed_seqs' camera-frame joints (smplx MANO order + fingertips, reordered to
  ours) when present, else MANO forward kinematics with `mano_dir`, else NaN.
- The egocentric images are *distorted* (OpenCV 8-coefficient rational model `dist8`); the
  camera carries it as `rational_polynomial`, and 2D keypoints are projected through it so they
  lie on the stored pixels. Allocentric views are pinhole.
- Presence: processed_seqs' `left_valid`/`right_valid` (wrist and ≥3 joints inside the image)
  where present, else the same rule on our projections, else 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.training_data.base import (
    F64,
    Sequence,
    fit_camera,
    get_field,
    jpeg_frame,
    jpeg_size,
    load_npy,
    load_optional_mano,
    make_hand,
    read_json,
    stamp_ns,
    visible_presence,
)
from vidihand_ros.training_data.mano import MANO_TO_OURS, ManoModel, world_to_camera_mano
from vidihand_ros.types import HAND_SIDES, CameraModel, FramePoses, HandPose

FPS = 30.0
NUM_VIEWS = 9
EGO_VIEW = 0


def resolve_root(root: str | Path) -> Path:
    """`arctic_data/data`, found from it or from one of its parents."""
    base = Path(root)
    for candidate in (
        base,
        base / "data",
        base / "arctic_data" / "data",
        base / "data" / "arctic_data" / "data",
    ):
        if (candidate / "raw_seqs").is_dir():
            return candidate
    raise InputError("not an ARCTIC data directory: no raw_seqs/ (expected arctic_data/data)", source=base)


class ArcticLoader:
    """Reads ARCTIC sequences. `images`: "auto" prefers full-resolution images over cropped ones."""

    dataset = "arctic"

    def __init__(
        self, *, mano_dir: str | Path | None = None, images: Literal["auto", "full", "cropped"] = "auto"
    ) -> None:
        if images not in ("auto", "full", "cropped"):
            raise ValueError(f"images must be 'auto', 'full' or 'cropped', got {images!r}")
        self.mano = load_optional_mano(mano_dir)
        self.images = images

    def list_sequences(self, root: str | Path) -> list[str]:
        raw = resolve_root(root) / "raw_seqs"
        return sorted(
            f"{subject.name}/{path.name[: -len('.mano.npy')]}"
            for subject in raw.iterdir()
            if subject.is_dir()
            for path in subject.glob("*.mano.npy")
        )

    def load(self, root: str | Path, name: str, *, camera: str | int | None = None) -> Sequence:
        base = resolve_root(root)
        try:
            subject, seq = name.split("/")
        except ValueError:
            raise InputError(f"ARCTIC sequence names are '<subject>/<seq>', got {name!r}") from None
        view = _view(camera)
        mano_path = base / "raw_seqs" / subject / f"{seq}.mano.npy"
        if not mano_path.is_file():
            raise InputError("no such ARCTIC sequence", source=mano_path)
        misc_path = base / "meta" / "misc.json"
        misc_all = read_json(misc_path, misc_path) if misc_path.is_file() else None
        if not isinstance(misc_all, dict) or subject not in misc_all:
            raise InputError(f"no entry for subject {subject!r}", source=misc_path)
        misc = misc_all[subject]

        mano_raw = load_npy(mano_path)
        num = len(get_field(_side_dict(mano_raw, "right", mano_path), "rot", mano_path, shape=(3,)))
        R_cw, t_cw, calib = self._camera(base, subject, seq, view, misc, num, misc_path)
        processed = _load_processed(base, subject, seq, num)

        image_dir, image_kind = self._image_dir(base, subject, seq, view)
        offset = int(get_field(misc, "ioi_offset", misc_path))
        kept = [t for t in range(num) if (image_dir / f"{t + offset:05d}.jpg").is_file()]
        if not kept:
            raise InputError(f"no images for MANO frames 0..{num - 1} (offset {offset})", source=image_dir)
        first = image_dir / f"{kept[0] + offset:05d}.jpg"
        cam = fit_camera(calib, *jpeg_size(first.read_bytes(), first))

        hands = {
            side: self._hand_rows(
                _side_dict(mano_raw, side, mano_path), side, mano_path, R_cw, t_cw, processed, view
            )
            for side in HAND_SIDES
        }
        poses: list[FramePoses] = []
        frame_id = f"arctic/{subject}/{seq}/{view}"
        for t in kept:
            rows: dict[str, HandPose] = {}
            for side in HAND_SIDES:
                hand = make_hand(cam, **{k: v[t] for k, v in hands[side].items() if k != "presence"})
                presence = hands[side]["presence"][t]
                hand.presence = float(presence) if np.isfinite(presence) else visible_presence(hand, cam)
                rows[side] = hand
            poses.append(FramePoses(stamp_ns(t, FPS), frame_id, left=rows["left"], right=rows["right"]))

        def read_frames() -> Any:
            for i, t in enumerate(kept):
                path = image_dir / f"{t + offset:05d}.jpg"
                try:
                    data = path.read_bytes()
                except OSError as err:
                    raise InputError(f"cannot read: {err}", source=path) from err
                yield jpeg_frame(data, stamp_ns(t, FPS), frame_id, cam, i, path)

        return Sequence(
            name=name,
            dataset=self.dataset,
            fps=FPS,
            poses=poses,
            cameras=[cam] * len(kept),
            read_frames=read_frames,
            attrs={
                "task": seq.rsplit("_", 1)[0].replace("_", " "),
                "source": str(mano_path),
                "subject": subject,
                "view": view,
                "images": image_kind,
                "mano_frames": kept,
                "processed_seqs": processed is not None,
                "mano_model": self.mano is not None,
                "conversions": "world→camera about J0(β); pose + hands_mean (flat_hand_mean=False source)",
            },
        )

    # -- helpers ------------------------------------------------------------------------------

    def _camera(
        self, base: Path, subject: str, seq: str, view: int, misc: dict[str, Any], num: int, misc_path: Path
    ) -> tuple[F64, F64, CameraModel]:
        sizes = get_field(misc, "image_size", misc_path, shape=(2,))
        if sizes.shape != (NUM_VIEWS, 2):
            raise InputError(
                f"expected {NUM_VIEWS} image sizes, got {sizes.shape}", source=misc_path, field="image_size"
            )
        width, height = (int(v) for v in sizes[view])
        if view == EGO_VIEW:
            ego_path = base / "raw_seqs" / subject / f"{seq}.egocam.dist.npy"
            ego = load_npy(ego_path)
            R = get_field(ego, "R_k_cam_np", ego_path, shape=(3, 3))
            T = get_field(ego, "T_k_cam_np", ego_path).reshape(-1, 3)
            K = get_field(ego, "intrinsics", ego_path, shape=(3, 3))
            dist = get_field(ego, "dist8", ego_path).ravel()
            if len(R) != num or len(T) != num:
                raise InputError(
                    f"{len(R)} camera poses for {num} MANO frames", source=ego_path, field="R_k_cam_np"
                )
            return R, T, CameraModel(K, width, height, "rational_polynomial", dist)
        world2cam = get_field(misc, "world2cam", misc_path, shape=(4, 4))[view - 1]
        K = get_field(misc, "intris_mat", misc_path, shape=(3, 3))[view - 1]
        R = np.broadcast_to(world2cam[:3, :3], (num, 3, 3))
        T = np.broadcast_to(world2cam[:3, 3], (num, 3))
        return R, T, CameraModel(K, width, height)

    def _image_dir(self, base: Path, subject: str, seq: str, view: int) -> tuple[Path, str]:
        full = base / "images" / subject / seq / str(view)
        cropped = base / "cropped_images" / subject / seq / str(view)
        if self.images in ("auto", "full") and full.is_dir():
            return full, "images"
        if self.images in ("auto", "cropped") and cropped.is_dir():
            if view != EGO_VIEW:
                raise InputError(
                    "cropped allocentric images are per-frame crops without a camera model; "
                    "use the full-resolution images",
                    source=cropped,
                )
            return cropped, "cropped_images"
        raise InputError(f"no {self.images} image directory for view {view}", source=full)

    def _hand_rows(
        self,
        raw: dict[str, Any],
        side: str,
        source: Path,
        R_cw: F64,
        t_cw: F64,
        processed: dict[str, Any] | None,
        view: int,
    ) -> dict[str, np.ndarray]:
        """Per-frame camera-frame arrays of one hand (NaN where not computable)."""
        rot = get_field(raw, "rot", source, shape=(3,))
        num = len(rot)
        pose = get_field(raw, "pose", source, shape=(45,)).reshape(num, 15, 3)
        trans = get_field(raw, "trans", source, shape=(3,))
        betas = np.broadcast_to(get_field(raw, "shape", source, shape=(10,)), (num, 10))
        model: ManoModel | None = None if self.mano is None else self.mano[side]

        nan3 = np.full((num, 3), np.nan)
        if model is not None:
            root = model.root_joint(betas)
        elif processed is not None:
            root = processed["world_joints"][side][:, 0] - trans
        else:
            root = nan3
        go_c, transl_c = world_to_camera_mano(rot, trans, root, R_cw, t_cw)
        flat_pose = (
            pose + model.hands_mean.reshape(15, 3) if model is not None else np.full_like(pose, np.nan)
        )

        if processed is not None:
            joints = processed["cam_joints"][side][:, view]
        elif model is not None:
            joints = model.joints(go_c, flat_pose, betas, transl_c)
        else:
            joints = np.full((num, 21, 3), np.nan)
        presence = processed["valid"][side][:, view] if processed is not None else np.full(num, np.nan)
        return {
            "global_orient": go_c,
            "hand_pose": flat_pose,
            "betas": betas,
            "transl": transl_c,
            "joints_3d": joints,
            "presence": presence,
        }


def _view(camera: str | int | None) -> int:
    if camera is None:
        return EGO_VIEW
    try:
        view = int(camera)
    except ValueError:
        raise InputError(f"ARCTIC camera must be a view index 0..8, got {camera!r}", field="camera") from None
    if not 0 <= view < NUM_VIEWS:
        raise InputError(f"ARCTIC camera must be a view index 0..8, got {camera!r}", field="camera")
    return view


def _side_dict(mano: Any, side: str, source: Path) -> dict[str, Any]:
    if not isinstance(mano, dict) or not isinstance(mano.get(side), dict):
        raise InputError(f"expected a dict with a '{side}' dict of MANO arrays", source=source, field=side)
    return mano[side]


def _load_processed(base: Path, subject: str, seq: str, num: int) -> dict[str, Any] | None:
    """Camera-frame joints (our order), world joints and validity from processed_seqs, if present."""
    path = base / "processed_seqs" / subject / f"{seq}.npy"
    if not path.is_file():
        return None
    data = load_npy(path)
    if not isinstance(data, dict):
        raise InputError("expected a pickled dict (scripts_data/process_seqs.py output)", source=path)
    order = list(MANO_TO_OURS)
    out: dict[str, Any] = {"cam_joints": {}, "world_joints": {}, "valid": {}}
    for side in HAND_SIDES:
        cam = get_field(data.get("cam_coord", {}), f"joints.{side}", path, shape=(21, 3))
        world = get_field(data.get("world_coord", {}), f"joints.{side}", path, shape=(21, 3))
        valid = get_field(data.get("cam_coord", {}), f"{side}_valid", path)
        if (
            cam.ndim != 4
            or cam.shape[:2] != (num, 10)
            or world.shape[0] != num
            or valid.shape[:2] != (num, NUM_VIEWS)
        ):
            raise InputError(
                f"unexpected shapes {cam.shape}, {world.shape}, {valid.shape} for {num} frames",
                source=path,
                field=f"joints.{side}",
            )
        out["cam_joints"][side] = cam[:, :, order]
        out["world_joints"][side] = world[:, order]
        out["valid"][side] = valid
    return out
