"""Tiny synthetic copies of the published dataset formats (ARCTIC, HOT3D-Clips, EgoDex, HOI4D).

Each writer lays files out exactly as the dataset ships them (npy dicts, JSON, JPEG, tar, mp4,
hdf5, pickles), from ground truth chosen in the *camera* frame with our conventions; the
dataset-side values (world frame, flat_hand_mean=False, PCA, ...) are derived from it, so a
loader is right when it gives the chosen values back. MANO files are synthetic: real keys,
shapes and pickling (chumpy objects, scipy sparse), random values
(`vidihand_ros.testing.synthetic_mano.write_synthetic_mano_dir`).
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from tests.bagfactory import write_video
from vidihand_ros.training_data.mano import MANO_TO_OURS, ManoModel

F64 = NDArray[np.float64]
SIDES = ("left", "right")


# -- ground truth ------------------------------------------------------------------------------


@dataclass
class HandTruth:
    """One hand over N frames in the camera frame (flat-hand-mean full pose)."""

    global_orient: F64
    hand_pose: F64  # (N, 15, 3)
    betas: F64  # (10,)
    transl: F64
    pca: F64 | None = None  # (N, 15) where the dataset stores PCA coefficients

    def joints(self, model: ManoModel) -> F64:
        return model.joints(self.global_orient, self.hand_pose, self.betas, self.transl)


def random_rigid(rng: np.random.Generator, scale: float = 0.3) -> F64:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rng.normal(scale=0.5, size=3)).as_matrix()
    T[:3, 3] = rng.normal(scale=scale, size=3)
    return T


def hand_truth(
    rng: np.random.Generator,
    n: int,
    side: str,
    model: ManoModel | None,
    *,
    pca: bool = False,
    depth: float = 0.5,
) -> HandTruth:
    """Hands in front of the camera, wrist at x = ∓5 cm (left / right), small motion."""
    betas = rng.normal(scale=0.5, size=10)
    root = model.root_joint(betas) if model is not None else np.zeros(3)
    wrist = np.array([-0.05 if side == "left" else 0.05, 0.01, depth]) + rng.normal(scale=0.005, size=(n, 3))
    go = rng.normal(scale=0.4, size=(n, 3))
    coeffs = rng.normal(scale=0.5, size=(n, 15)) if pca else None
    if coeffs is not None and model is not None:
        pose = model.pca_to_full(coeffs).reshape(n, 15, 3)
    else:
        pose = rng.normal(scale=0.3, size=(n, 15, 3))
    return HandTruth(go, pose, betas, wrist - root, coeffs)


def to_world(truth: HandTruth, root: F64, T_cw: F64) -> tuple[F64, F64]:
    """(global_orient, transl) in the world, given world→camera transforms T_cw (N, 4, 4)."""
    R = T_cw[:, :3, :3]
    Rt = np.swapaxes(R, 1, 2)
    R_w = Rt @ Rotation.from_rotvec(truth.global_orient).as_matrix()
    t_w = np.einsum("nab,nb->na", Rt, root + truth.transl - T_cw[:, :3, 3]) - root
    return Rotation.from_matrix(R_w).as_rotvec(), t_w


def to_mano_order(joints_ours: F64) -> F64:
    out = np.empty_like(joints_ours)
    out[..., list(MANO_TO_OURS), :] = joints_ours
    return out


def picture(i: int, width: int, height: int) -> NDArray[np.uint8]:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y + 16 * i) % 256], axis=-1)
    return rgb.astype(np.uint8)


def jpeg(i: int, width: int, height: int, *, grey: bool = False) -> bytes:
    rgb = picture(i, width, height)
    return bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(rgb[..., 0]) if grey else rgb, level=95))


def npy_bytes(value: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=True)
    return buffer.getvalue()


# -- ARCTIC ------------------------------------------------------------------------------------

ARCTIC_SIZE = (40, 30)


@dataclass
class ArcticFixture:
    root: Path
    name: str
    K_ego: F64
    dist8: F64
    world2ego: F64  # (N, 4, 4)
    world2cam: F64  # (8, 4, 4)
    K_allo: F64
    truth: dict[str, HandTruth]  # ego camera frame
    world: dict[str, tuple[F64, F64]]  # (rot, trans) per side
    offset: int
    num_images: int
    valid: dict[str, F64] = field(default_factory=dict)


def write_arctic(
    base: Path,
    mano: dict[str, ManoModel],
    *,
    n: int = 5,
    num_images: int = 4,
    processed: bool = False,
    cropped: bool = False,
    full: bool = True,
) -> ArcticFixture:
    rng = np.random.default_rng(7)
    root = base / "arctic_data" / "data"
    subject, seq = "s01", "box_grab_01"
    width, height = ARCTIC_SIZE
    K_ego = np.array([[30.0, 0.0, 19.5], [0.0, 31.0, 14.5], [0.0, 0.0, 1.0]])
    K_allo = np.array([[28.0, 0.0, 20.0], [0.0, 28.0, 15.0], [0.0, 0.0, 1.0]])
    dist8 = np.array([0.02, -0.01, 0.001, 0.0005, 0.003, 0.001, 0.0, 0.0])
    world2ego = np.stack([random_rigid(rng) for _ in range(n)])
    world2cam = np.stack([random_rigid(rng) for _ in range(8)])
    offset = 1

    truth = {side: hand_truth(rng, n, side, mano[side]) for side in SIDES}
    world = {
        side: to_world(truth[side], mano[side].root_joint(truth[side].betas), world2ego) for side in SIDES
    }
    raw = root / "raw_seqs" / subject
    raw.mkdir(parents=True)
    mano_npy = {
        side: {
            "rot": world[side][0],
            "pose": (truth[side].hand_pose.reshape(n, 45) - mano[side].hands_mean),
            "trans": world[side][1],
            "shape": truth[side].betas,
            "fitting_err": np.zeros(n),
        }
        for side in SIDES
    }
    (raw / f"{seq}.mano.npy").write_bytes(npy_bytes(mano_npy))
    ego = {
        "R_k_cam_np": world2ego[:, :3, :3],
        "T_k_cam_np": world2ego[:, :3, 3:4],
        "intrinsics": K_ego,
        "dist8": dist8,
        "ego_markers.ref": np.zeros((3, 3)),
        "R0": np.eye(3),
        "T0": np.zeros((3, 1)),
    }
    (raw / f"{seq}.egocam.dist.npy").write_bytes(npy_bytes(ego))
    (raw / f"{seq}.object.npy").write_bytes(npy_bytes(np.zeros((n, 7))))
    misc = {
        subject: {
            "gender": "male",
            "image_size": [[width, height]] * 9,
            "intris_mat": [K_allo.tolist()] * 8,
            "world2cam": world2cam.tolist(),
            "ioi_offset": offset,
        }
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "misc.json").write_text(json.dumps(misc))
    for view in (0, 1):
        if not full:
            break
        folder = root / "images" / subject / seq / str(view)
        folder.mkdir(parents=True)
        for t in range(num_images):
            (folder / f"{t + offset:05d}.jpg").write_bytes(jpeg(t, width, height))
    if cropped:
        folder = root / "cropped_images" / subject / seq / "0"
        folder.mkdir(parents=True)
        for t in range(num_images):
            (folder / f"{t + offset:05d}.jpg").write_bytes(jpeg(t, width // 2, height // 2))
    fixture = ArcticFixture(
        root, f"{subject}/{seq}", K_ego, dist8, world2ego, world2cam, K_allo, truth, world, offset, num_images
    )
    if processed:
        fixture.valid = _write_arctic_processed(root, subject, seq, fixture, mano, n)
    return fixture


def _write_arctic_processed(
    root: Path, subject: str, seq: str, fx: ArcticFixture, mano: dict[str, ManoModel], n: int
) -> dict[str, F64]:
    cam_coord: dict[str, Any] = {}
    world_coord: dict[str, Any] = {}
    valid: dict[str, F64] = {}
    for k, side in enumerate(SIDES):
        rot, trans = fx.world[side]
        model = mano[side]
        joints_w = model.joints(rot, fx.truth[side].hand_pose, fx.truth[side].betas, trans)
        views = [fx.world2ego, *[np.broadcast_to(T, (n, 4, 4)) for T in fx.world2cam]]
        cams = [np.einsum("nab,njb->nja", T[:, :3, :3], joints_w) + T[:, None, :3, 3] for T in views]
        cams.append(cams[0])  # view 9: distorted ego space (unused by the loader)
        cam_coord[f"joints.{side}"] = to_mano_order(np.stack(cams, axis=1))
        world_coord[f"joints.{side}"] = to_mano_order(joints_w)
        valid[side] = ((np.arange(n * 9).reshape(n, 9) + k) % 2).astype(np.float64)
        cam_coord[f"{side}_valid"] = valid[side]
    data = {
        "world_coord": world_coord,
        "cam_coord": cam_coord,
        "2d": {},
        "bbox": np.zeros((n, 10, 3)),
        "params": {},
    }
    folder = root / "processed_seqs" / subject
    folder.mkdir(parents=True)
    (folder / f"{seq}.npy").write_bytes(npy_bytes(data))
    return valid


# -- HOT3D-Clips -------------------------------------------------------------------------------

HOT3D_RGB = (32, 32)
HOT3D_MONO = (24, 24)
FISHEYE_COEFFS = [0.05, -0.01, 0.002, 0.0, 0.0, 0.0, 0.001, -0.001, 0.0005, 0.0, 0.0002, 0.0]


@dataclass
class Hot3dFixture:
    root: Path
    name: str
    params: list[float]
    T_world_from_camera: F64  # (N, 4, 4) of the RGB stream
    truth: dict[str, HandTruth]
    stamps: list[int]


def _pose_json(T: F64) -> dict[str, list[float]]:
    q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x, y, z, w
    return {"translation_xyz": T[:3, 3].tolist(), "quaternion_wxyz": [q[3], q[0], q[1], q[2]]}


def write_hot3d_clip(
    base: Path, mano: dict[str, ManoModel], *, n: int = 3, with_hands: bool = True
) -> Hot3dFixture:
    """Frame 0: both hands; frame 1: left only; frame 2: right UmeTrack-only, left barely visible."""
    rng = np.random.default_rng(11)
    name = "train_aria/clip-000001"
    params = [20.0, 21.0, 15.5, 15.0, *FISHEYE_COEFFS]
    T_wc = np.stack([random_rigid(rng) for _ in range(n)])
    T_wc_mono = np.stack([random_rigid(rng) for _ in range(n)])
    truth = {side: hand_truth(rng, n, side, mano[side], pca=True) for side in SIDES}
    betas = truth["right"].betas
    for side in SIDES:  # HOT3D shares one shape between the hands
        t = truth[side]
        wrist = mano[side].root_joint(t.betas) + t.transl
        t.betas = betas
        t.transl = wrist - mano[side].root_joint(betas)
    T_cw = np.stack([np.linalg.inv(T) for T in T_wc])
    world = {side: to_world(truth[side], mano[side].root_joint(betas), T_cw) for side in SIDES}
    stamps = [56_752_108_188_860 + i * 33_333_333 for i in range(n)]
    files: dict[str, bytes] = {}
    for i in range(n):
        key = f"{i:06d}"

        def camera(stream: str, size: tuple[int, int], T: F64) -> dict[str, Any]:
            return {
                "calibration": {
                    "label": "camera-rgb" if stream == "214-1" else "camera-slam-left",
                    "stream_id": stream,
                    "serial_number": "0",
                    "image_width": size[0],
                    "image_height": size[1],
                    "projection_model_type": "CameraModelType.FISHEYE624",
                    "projection_params": params,
                    "T_device_from_camera": _pose_json(np.eye(4)),
                    "max_solid_angle": 1.4,
                },
                "T_world_from_camera": _pose_json(T),
            }

        cams = {
            "214-1": camera("214-1", HOT3D_RGB, T_wc[i]),
            "1201-1": camera("1201-1", HOT3D_MONO, T_wc_mono[i]),
        }
        files[f"{key}.cameras.json"] = json.dumps(cams).encode()
        files[f"{key}.image_214-1.jpg"] = jpeg(i, *HOT3D_RGB)
        files[f"{key}.image_1201-1.jpg"] = jpeg(i, *HOT3D_MONO, grey=True)
        files[f"{key}.info.json"] = json.dumps(
            {"device": "Aria", "image_timestamps_ns": {"214-1": stamps[i], "1201-1": stamps[i] + 5}}
        ).encode()
        files[f"{key}.objects.json"] = b"{}"
        files[f"{key}.hand_crops.json"] = b"{}"
        if not with_hands:
            continue
        hands: dict[str, Any] = {}
        for side in SIDES:
            pca = truth[side].pca
            assert pca is not None
            rot_w, t_w = world[side]
            hands[side] = {
                "mano_pose": {"thetas": pca[i].tolist(), "wrist_xform": [*rot_w[i], *t_w[i]]},
                "umetrack_pose": {"joint_angles": [0.0] * 20, "wrist_xform": np.eye(4).tolist()},
                "boxes_amodal": {"214-1": [0, 0, 10, 10]},
                "visibilities_modeled": {"214-1": 0.8, "1201-1": 0.5},
            }
        if i == 1:
            del hands["right"]
        if i == 2:
            del hands["right"]["mano_pose"]
            hands["left"]["visibilities_modeled"]["214-1"] = 0.05
        files[f"{key}.hands.json"] = json.dumps(hands).encode()
    if with_hands:
        files["__hand_shapes.json__"] = json.dumps({"mano": betas.tolist(), "umetrack": {}}).encode()
    path = base / f"{name}.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return Hot3dFixture(base, name, params, T_wc, truth, stamps)


# -- EgoDex ------------------------------------------------------------------------------------

EGODEX_SIZE = (32, 24)


@dataclass
class EgoDexFixture:
    root: Path
    name: str
    K: F64
    joints_cam: dict[str, F64]  # (N, 21, 3), our order
    confidence_left: F64
    frames: int


def write_egodex(base: Path, *, rows: int = 5, frames: int = 4) -> EgoDexFixture:
    import h5py

    from tests.synthetic_hands import hand_template
    from vidihand_ros.training_data.egodex import joint_names

    rng = np.random.default_rng(5)
    name = "part1/add_remove_lid/0"
    folder = base / "part1" / "add_remove_lid"
    folder.mkdir(parents=True)
    K = np.array([[25.0, 0.0, 16.0], [0.0, 25.0, 12.0], [0.0, 0.0, 1.0]])
    T_wc = np.stack([random_rigid(rng, 1.0) for _ in range(rows)])
    template = hand_template()
    joints_cam = {}
    for side, x in (("left", -0.06), ("right", 0.06)):
        shape = template * np.array([-1.0 if side == "left" else 1.0, 1.0, 1.0])
        joints_cam[side] = shape + np.array([x, 0.05, 0.45]) + rng.normal(scale=0.002, size=(rows, 21, 3))
    confidence_left = np.array([1.0, 0.5, 1.0, 0.25, 1.0])[:rows]
    with h5py.File(folder / "0.hdf5", "w") as f:
        f.attrs["task"] = "add_remove_lid"
        f.attrs["llm_description"] = "Put the lid on the cup."
        f.attrs["environment"] = np.bytes_(b"kitchen")
        f["camera/intrinsic"] = K.astype(np.float32)
        f["transforms/camera"] = T_wc.astype(np.float32)
        for side in SIDES:
            world = np.einsum("nab,njb->nja", T_wc[:, :3, :3], joints_cam[side]) + T_wc[:, None, :3, 3]
            for j, joint in enumerate(joint_names(side)):
                T = np.stack([random_rigid(rng) for _ in range(rows)])
                T[:, :3, 3] = world[:, j]
                f[f"transforms/{joint}"] = T.astype(np.float32)
            for finger in ("Index", "Middle", "Ring", "Little"):
                f[f"transforms/{side}{finger}FingerMetacarpal"] = np.stack(
                    [random_rigid(rng) for _ in range(rows)]
                )
            f[f"transforms/{side}Forearm"] = np.stack([random_rigid(rng) for _ in range(rows)])
        f["transforms/hip"] = np.stack([random_rigid(rng) for _ in range(rows)])
        f["confidences/leftHand"] = confidence_left.astype(np.float32)
    write_video(folder / "0.mp4", [picture(i, *EGODEX_SIZE) for i in range(frames)])
    # float32 storage: the loader sees the rounded values
    rounded = {}
    for side in SIDES:
        T32 = T_wc.astype(np.float32).astype(np.float64)
        world = np.einsum("nab,njb->nja", T_wc[:, :3, :3], joints_cam[side]) + T_wc[:, None, :3, 3]
        world32 = world.astype(np.float32).astype(np.float64)
        inv = np.linalg.inv(T32)
        rounded[side] = (np.einsum("nab,njb->nja", inv[:, :3, :3], world32) + inv[:, None, :3, 3])[:frames]
    return EgoDexFixture(base, name, K, rounded, confidence_left, min(rows, frames))


# -- HOI4D -------------------------------------------------------------------------------------

HOI4D_SIZE = (48, 28)
HOI4D_JPG = "ZY20210800001/H1/C1/N1/S1/s1/T1"
HOI4D_MP4 = "ZY20210800001/H1/C1/N1/S1/s1/T2"


@dataclass
class Hoi4dFixture:
    root: Path
    K: F64
    pickles: dict[tuple[str, str, int], dict[str, Any]]  # (sequence, side, frame) → pickle dict


def write_hoi4d(base: Path, *, n: int = 3) -> Hoi4dFixture:
    """Two sequences (jpgs / mp4); right hand on frames 0 and 1, left hand on frame 1 only."""
    rng = np.random.default_rng(3)
    K = np.array([[40.0, 0.0, 23.5], [0.0, 40.0, 13.5], [0.0, 0.0, 1.0]])
    (base / "camera_params" / "ZY20210800001").mkdir(parents=True)
    np.save(base / "camera_params" / "ZY20210800001" / "intrin.npy", K)
    pickles: dict[tuple[str, str, int], dict[str, Any]] = {}
    for name in (HOI4D_JPG, HOI4D_MP4):
        rgb_dir = base / "HOI4D_release" / name / "align_rgb"
        rgb_dir.mkdir(parents=True)
        frames = [picture(i, *HOI4D_SIZE) for i in range(n)]
        if name == HOI4D_JPG:
            for i in range(n):
                (rgb_dir / f"{i:05d}.jpg").write_bytes(jpeg(i, *HOI4D_SIZE))
        else:
            write_video(rgb_dir / "image.mp4", frames, fps=15)
        for side, folder, frame_ids in (
            ("right", "refinehandpose_right", (0, 1)),
            ("left", "refinehandpose_left", (1,)),
        ):
            out = base / "handpose" / folder / name
            out.mkdir(parents=True, exist_ok=True)
            for t in frame_ids:
                data = {
                    "poseCoeff": rng.normal(scale=0.3, size=48).astype(np.float32),
                    "beta": rng.normal(scale=0.5, size=10).astype(np.float32),
                    "trans": np.array([0.05 if side == "right" else -0.05, 0.0, 0.4], dtype=np.float32),
                    "kps2D": rng.uniform(0, 28, size=(21, 2)).astype(np.float32),
                }
                (out / f"{t}.pickle").write_bytes(pickle.dumps(data, protocol=2))
                pickles[(name, side, t)] = data
    return Hoi4dFixture(base, K, pickles)
