"""HOT3D-Clips (Banerjee et al., CVPR 2025): 150-frame clips from Aria and Quest 3 headsets.

Expected layout (the Hugging Face `bop-benchmark/datasets/hot3d` folders; `ROOT` may hold one
split folder or several)::

    ROOT/
    └── train_aria/clip-<id>.tar  (also train_quest3/, test_aria/, test_quest3/ …)
        ├── <frame:06d>.image_214-1.jpg     Aria RGB (Quest 3 clips: only 1201-1 / 1201-2 grey)
        ├── <frame:06d>.image_1201-1.jpg    monochrome SLAM cameras
        ├── <frame:06d>.cameras.json        per stream: calibration {image_width, image_height,
        │                                   projection_model_type, projection_params, …},
        │                                   T_world_from_camera {translation_xyz, quaternion_wxyz}
        ├── <frame:06d>.hands.json          left/right: mano_pose {thetas (15 PCA), wrist_xform
        │                                   [aa(3), t(3)] world}, visibilities_modeled {stream: f}
        ├── <frame:06d>.info.json           image_timestamps_ns {stream: ns}, device
        └── __hand_shapes.json__            mano: 10 betas shared by both hands

Sequence names are the tar paths relative to `ROOT` without `.tar` (`train_aria/clip-001849`);
`camera` is a stream id, default "214-1" (Aria RGB) or, for Quest 3 clips, "1201-1". Test clips
without hands.json load with no ground truth (every hand None). 30 fps; stamps are the
clip's image timestamps.

Conversions (see `facebookresearch/hot3d` hot3d/clips and `facebookresearch/hand_tracking_toolkit`):
- World and camera frames are metric (metres); `T_world_from_camera` maps camera → world,
  quaternions are w,x,y,z. The camera frame is already optical (x right, y down, z forward).
- MANO is `smplx` with `use_pca=True, num_pca_comps=15` and the default `flat_hand_mean=False`,
  so the flat-hand-mean full pose is `thetas @ hands_components[:15] + hands_mean` (needs
  `mano_dir`; NaN without it). `wrist_xform` is smplx's (global_orient, transl) in the world
  frame; it is moved into the camera frame about J0(β) (J0 needs `mano_dir`, else transl NaN).
- Images are fisheye (FISHEYE624). With `undistort=True` (default) each image is warped to a
  pinhole camera with the same focal length and principal point (as the toolkit's
  `convert_to_pinhole_camera`), so K is the whole camera model; with `undistort=False` the JPEG
  is kept and the camera carries `fisheye624` with its 12 coefficients. 2D keypoints are
  projected through whichever model the stored image has.
- Presence: `visibilities_modeled[stream] >= min_visibility` (0.1, HOT3D's own crop
  threshold) where given, else the in-view rule on projected joints, else 1.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from vidihand_ros.errors import InputError
from vidihand_ros.training_data.base import (
    F64,
    FISHEYE624,
    Sequence,
    decode_to_rgb,
    fit_camera,
    get_field,
    jpeg_frame,
    jpeg_size,
    load_optional_mano,
    make_hand,
    project_points,
    read_json,
    stamp_ns,
    visible_presence,
)
from vidihand_ros.training_data.mano import world_to_camera_mano
from vidihand_ros.types import HAND_SIDES, CameraModel, Frame, FramePoses, HandPose

FPS = 30.0
RGB_STREAM = "214-1"
MONO_STREAM = "1201-1"
HAND_SHAPES = "__hand_shapes.json__"


class Hot3dLoader:
    """Reads HOT3D-Clips tar files (no extraction needed)."""

    dataset = "hot3d"

    def __init__(
        self, *, mano_dir: str | Path | None = None, undistort: bool = True, min_visibility: float = 0.1
    ) -> None:
        self.mano = load_optional_mano(mano_dir)
        self.undistort = undistort
        self.min_visibility = min_visibility

    def list_sequences(self, root: str | Path) -> list[str]:
        base = Path(root)
        if not base.is_dir():
            raise InputError("no such directory", source=base)
        return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("clip-*.tar"))

    def load(self, root: str | Path, name: str, *, camera: str | int | None = None) -> Sequence:
        path = Path(root) / f"{name}.tar"
        if not path.is_file():
            raise InputError("no such HOT3D clip", source=path)
        try:
            with tarfile.open(path) as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}

                def read(member: str) -> bytes:
                    handle = tar.extractfile(members[member])
                    assert handle is not None
                    return handle.read()

                return self._load(path, name, camera, members, read)
        except tarfile.TarError as err:
            raise InputError(f"not a readable tar file: {err}", source=path) from err

    def _load(
        self, path: Path, name: str, camera: str | int | None, members: dict[str, Any], read: Any
    ) -> Sequence:
        keys = sorted({n.split(".", 1)[0] for n in members if n.endswith(".cameras.json")}, key=int)
        if not keys:
            raise InputError("no <frame>.cameras.json in the clip", source=path)
        first_cams = read_json(read(f"{keys[0]}.cameras.json"), f"{path}:{keys[0]}.cameras.json")
        stream = self._stream(camera, first_cams, path)
        betas = None
        if HAND_SHAPES in members:
            shapes = read_json(read(HAND_SHAPES), f"{path}:{HAND_SHAPES}")
            betas = get_field(shapes, "mano", f"{path}:{HAND_SHAPES}").ravel()

        poses: list[FramePoses] = []
        natives: list[CameraModel] = []
        cameras: list[CameraModel] = []
        frame_id = f"hot3d/{name}/{stream}"
        has_gt = False
        size: tuple[int, int] | None = None  # image size, read once (constant within a clip)
        for index, key in enumerate(keys):
            where = f"{path}:{key}"
            image = f"{key}.image_{stream}.jpg"
            if image not in members:
                raise InputError(f"no image for stream {stream}", source=f"{path}:{image}")
            size = size or jpeg_size(read(image), f"{path}:{image}")
            cams = read_json(read(f"{key}.cameras.json"), f"{where}.cameras.json")
            native, T_world_cam = _camera(cams, stream, f"{where}.cameras.json")
            native = fit_camera(native, *size)
            cam = _pinhole(native) if self.undistort else native
            natives.append(native)
            info = (
                read_json(read(f"{key}.info.json"), f"{where}.info.json")
                if f"{key}.info.json" in members
                else {}
            )
            stamp = _stamp(info, stream, index)
            hands_json = None
            if f"{key}.hands.json" in members:
                hands_json = read_json(read(f"{key}.hands.json"), f"{where}.hands.json")
                has_gt = True
            rows = {
                side: self._hand(hands_json, side, stream, betas, T_world_cam, cam, f"{where}.hands.json")
                for side in HAND_SIDES
            }
            poses.append(FramePoses(stamp, frame_id, left=rows["left"], right=rows["right"]))
            cameras.append(cam)

        undistort = self.undistort

        def read_frames() -> Iterator[Frame]:
            try:
                with tarfile.open(path) as tar:
                    maps: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
                    for i, key in enumerate(keys):
                        image = f"{key}.image_{stream}.jpg"
                        handle = tar.extractfile(image)
                        if handle is None:
                            raise InputError("not a file in the clip", source=f"{path}:{image}")
                        data = handle.read()
                        if not undistort:
                            yield jpeg_frame(
                                data, poses[i].stamp_ns, frame_id, cameras[i], i, f"{path}:{image}"
                            )
                            continue
                        rgb = decode_to_rgb(data, f"{path}:{image}")
                        if (rgb.shape[1], rgb.shape[0]) != (natives[i].width, natives[i].height):
                            raise InputError(
                                "image size differs from the clip's first image", source=path, index=i
                            )
                        pixels = undistort_image(rgb, natives[i], maps)
                        yield Frame(
                            poses[i].stamp_ns,
                            frame_id,
                            "rgb8",
                            pixels.shape[1],
                            pixels.shape[0],
                            pixels=pixels,
                            camera=cameras[i],
                            index=i,
                        )
            except (tarfile.TarError, KeyError) as err:
                raise InputError(f"cannot read clip: {err}", source=path) from err

        return Sequence(
            name=name,
            dataset=self.dataset,
            fps=FPS,
            poses=poses,
            cameras=cameras,
            read_frames=read_frames,
            attrs={
                "source": str(path),
                "stream": stream,
                "undistorted": self.undistort,
                "ground_truth": has_gt,
                "mano_model": self.mano is not None,
                "conversions": "world→camera about J0(β); thetas @ hands_components[:15] + hands_mean",
            },
        )

    def _stream(self, camera: str | int | None, cams: Any, path: Path) -> str:
        if not isinstance(cams, dict):
            raise InputError("cameras.json is not a dict of streams", source=path)
        if camera is not None:
            stream = str(camera)
            if stream not in cams:
                raise InputError(f"no stream {stream!r} (has {sorted(cams)})", source=path, field="camera")
            return stream
        for stream in (RGB_STREAM, MONO_STREAM):
            if stream in cams:
                return stream
        return sorted(cams)[0]

    def _hand(
        self,
        hands: Any,
        side: str,
        stream: str,
        betas: F64 | None,
        T_world_cam: F64,
        cam: CameraModel,
        where: str,
    ) -> HandPose | None:
        if not isinstance(hands, dict) or not isinstance(hands.get(side), dict):
            return None
        entry = hands[side]
        mano = entry.get("mano_pose")
        if not isinstance(mano, dict):
            return None  # UmeTrack-only frame: MANO registration failed here
        thetas = get_field(mano, "thetas", where).ravel()
        xform = get_field(mano, "wrist_xform", where).ravel()
        if xform.size != 6:
            raise InputError(
                f"expected 6 values, got {xform.size}", source=where, field=f"{side}.wrist_xform"
            )
        R_cw = T_world_cam[:3, :3].T
        t_cw = -R_cw @ T_world_cam[:3, 3]
        model = None if self.mano is None else self.mano[side]
        b = np.zeros(10) if betas is None else betas
        root = model.root_joint(b) if model is not None else np.full(3, np.nan)
        go_c, transl_c = world_to_camera_mano(xform[:3], xform[3:], root, R_cw, t_cw)
        full = joints = None
        if model is not None:
            full = model.pca_to_full(thetas)
            joints = model.joints(go_c, full, b, transl_c)[0]
        hand = make_hand(
            cam,
            global_orient=go_c,
            hand_pose=full,
            betas=betas,
            transl=transl_c,
            joints_3d=joints,
        )
        visibility = (entry.get("visibilities_modeled") or {}).get(stream)
        if visibility is not None:
            hand.presence = 1.0 if float(visibility) >= self.min_visibility else 0.0
        else:
            hand.presence = visible_presence(hand, cam)
        return hand


def _camera(cams: Any, stream: str, where: Any) -> tuple[CameraModel, F64]:
    """The stream's native camera model and its 4×4 camera→world transform."""
    try:
        entry = cams[stream]
        calib = entry["calibration"]
        model = str(calib["projection_model_type"])
        params = np.asarray(calib["projection_params"], dtype=np.float64)
        width, height = int(calib["image_width"]), int(calib["image_height"])
        pose = entry["T_world_from_camera"]
        q = np.asarray(pose["quaternion_wxyz"], dtype=np.float64)
        t = np.asarray(pose["translation_xyz"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"malformed camera entry for stream {stream}: {err}", source=where, field=stream
        ) from err
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix()
    T[:3, 3] = t
    if model.endswith("FISHEYE624") or model == "OculusVisionFishEye624":
        if params.size == 16:
            fx, fy, cx, cy = params[:4]
        elif params.size == 15:  # Aria's native layout: one focal length
            fx = fy = params[0]
            cx, cy = params[1:3]
        else:
            raise InputError(
                f"FISHEYE624 needs 15 or 16 parameters, got {params.size}",
                source=where,
                field="projection_params",
            )
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return CameraModel(K, width, height, FISHEYE624, params[-12:]), T
    if model == "PinholePlane" and params.size >= 4:
        fx, fy, cx, cy = (float(v) for v in params[:4])
        return CameraModel.from_fxfycxcy(fx, fy, cx, cy, width=width, height=height), T
    raise InputError(f"unsupported projection model {model!r}", source=where, field="projection_model_type")


def _pinhole(camera: CameraModel) -> CameraModel:
    """The pinhole camera that an undistorted image of `camera` is rendered for (same f and c)."""
    return CameraModel(camera.K, camera.width, camera.height)


def undistort_image(
    rgb: np.ndarray, camera: CameraModel, cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Warp a fisheye image to its `_pinhole` camera (bilinear; outside the lens field is black)."""
    import cv2

    key = (camera.width, camera.height, camera.K.tobytes(), camera.D.tobytes())
    if key not in cache:
        v, u = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
        K = camera.K
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
        src = project_points(rays, camera)
        src = np.nan_to_num(src, nan=-1.0).astype(np.float32)
        cache[key] = (np.ascontiguousarray(src[..., 0]), np.ascontiguousarray(src[..., 1]))
    map_x, map_y = cache[key]
    out = cv2.remap(
        rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0,) * 4
    )
    return np.ascontiguousarray(out, dtype=np.uint8)


def _stamp(info: Any, stream: str, index: int) -> int:
    stamps = info.get("image_timestamps_ns") if isinstance(info, dict) else None
    if isinstance(stamps, dict) and stream in stamps:
        return int(stamps[stream])
    return stamp_ns(index, FPS)
