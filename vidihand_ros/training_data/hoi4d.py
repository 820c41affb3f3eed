"""HOI4D (Liu et al., CVPR 2022): egocentric RGB-D hand-object videos; held out for evaluation.

Expected layout (the release's folders side by side under `ROOT`)::

    ROOT/
    ├── HOI4D_release/<cam>/H*/C*/N*/S*/s*/T*/align_rgb/image.mp4
    │                                      (or 00000.jpg, 00001.jpg … from utils/decode.py)
    ├── handpose/refinehandpose_right/<cam>/H*/…/T*/<frame>.pickle
    │                                      poseCoeff 48, beta 10, trans 3, kps2D 21×2
    ├── handpose/refinehandpose_left/<cam>/H*/…/T*/<frame>.pickle   (few sequences)
    └── camera_params/<cam>/intrin.npy     3×3, for the 1920×1080 video

`HOI4D_release/` may also be `ROOT` itself, and `handpose/` may sit in `HOI4D_Handpose/`.
Sequence names are `<cam>/H*/C*/N*/S*/s*/T*` (e.g. `ZY20210800001/H1/C2/N31/S92/s05/T2`);
there is one camera. 15 fps. `<frame>.pickle` annotates video frame `<frame>`; frames without a
pickle have no ground truth for that hand (None).

Conversions (see leolyliu/HOI4D-Instructions README):
- MANO is manopth's `ManoLayer(use_pca=False, flat_hand_mean=True)`: `poseCoeff[:3]` is the
  global orientation and `poseCoeff[3:]` the 45 finger rotations, already in our convention.
  manopth's output in millimetres is divided by 1000 and `trans` (metres) added, which is
  smplx's `transl` (rotation about J0(β), then translation), in the camera frame: no conversion.
- Joints need MANO forward kinematics (`mano_dir`; NaN without it). `kps2D` (pixels) is used as
  the 2D keypoints; note manopth's fingertip vertices (745, 317, 444, 556, 673) differ slightly
  from the ones our 21 joints use (744, 320, 443, 554, 671).
- Left-hand pickles are read with the left MANO model (the README shows only the right hand).
- Presence: 1 for annotated frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.training_data.base import (
    Sequence,
    fit_camera,
    get_field,
    jpeg_frame,
    jpeg_size,
    load_npy,
    load_optional_mano,
    make_hand,
    safe_unpickle,
    stamp_ns,
)
from vidihand_ros.types import HAND_SIDES, CameraModel, Frame, FramePoses, HandPose

FPS = 15.0
POSE_DIRS = {"right": "refinehandpose_right", "left": "refinehandpose_left"}


class Hoi4dLoader:
    """Reads HOI4D sequences with hand-pose annotations."""

    dataset = "hoi4d"

    def __init__(self, *, mano_dir: str | Path | None = None) -> None:
        self.mano = load_optional_mano(mano_dir)

    def list_sequences(self, root: str | Path) -> list[str]:
        paths = _Paths(Path(root))
        names: set[str] = set()
        for folder in POSE_DIRS.values():
            base = paths.handpose / folder
            if base.is_dir():
                names.update(
                    str(d.relative_to(base))
                    for d in base.glob("*/H*/C*/N*/S*/s*/T*")
                    if d.is_dir() and any(d.glob("*.pickle"))
                )
        return sorted(n for n in names if paths.rgb_dir(n).is_dir())

    def load(self, root: str | Path, name: str, *, camera: str | int | None = None) -> Sequence:
        if camera not in (None, 0, "0"):
            raise InputError(f"HOI4D has one camera per sequence; got camera={camera!r}", field="camera")
        paths = _Paths(Path(root))
        rgb_dir = paths.rgb_dir(name)
        if not rgb_dir.is_dir():
            raise InputError("no align_rgb directory for this sequence", source=rgb_dir)
        cam_id = name.split("/")[0]
        intrin = paths.camera_params / cam_id / "intrin.npy"
        if not intrin.is_file():
            raise InputError("no camera intrinsics", source=intrin)
        K = np.asarray(load_npy(intrin), dtype=np.float64)
        if K.shape != (3, 3):
            raise InputError(f"expected a 3×3 matrix, got {K.shape}", source=intrin)

        jpgs = sorted((p for p in rgb_dir.glob("*.jpg") if p.stem.isdigit()), key=lambda p: int(p.stem))
        video = rgb_dir / "image.mp4"
        if jpgs:
            if [int(p.stem) for p in jpgs] != list(range(len(jpgs))):
                raise InputError("jpg frames are not numbered 00000, 00001, … without gaps", source=rgb_dir)
            width, height = jpeg_size(jpgs[0].read_bytes(), jpgs[0])
            num = len(jpgs)
        elif video.is_file():
            width, height, num = _video_size(video)
        else:
            raise InputError("neither align_rgb/*.jpg nor align_rgb/image.mp4", source=rgb_dir)
        cam = fit_camera(CameraModel(K, width, height), width, height)

        frame_id = f"hoi4d/{name}"
        annotated = {side: 0 for side in HAND_SIDES}
        poses: list[FramePoses] = []
        for t in range(num):
            rows: dict[str, HandPose | None] = {}
            for side, folder in POSE_DIRS.items():
                pickle_path = paths.handpose / folder / name / f"{t}.pickle"
                rows[side] = self._hand(pickle_path, side, cam) if pickle_path.is_file() else None
                annotated[side] += rows[side] is not None
            poses.append(FramePoses(stamp_ns(t, FPS), frame_id, left=rows["left"], right=rows["right"]))

        def read_frames() -> Iterator[Frame]:
            if jpgs:
                for i, path in enumerate(jpgs):
                    yield jpeg_frame(path.read_bytes(), poses[i].stamp_ns, frame_id, cam, i, path)
                return
            from vidihand_ros.sources.video import VideoFrameSource

            for i, frame in enumerate(VideoFrameSource(video, camera=cam, frame_id=frame_id)):
                if i >= num:
                    return
                yield replace(frame, stamp_ns=poses[i].stamp_ns, index=i)

        return Sequence(
            name=name,
            dataset=self.dataset,
            fps=FPS,
            poses=poses,
            cameras=[cam] * num,
            read_frames=read_frames,
            attrs={
                "task": name.split("/")[-1],
                "source": str(rgb_dir),
                "annotated_frames": annotated,
                "mano_model": self.mano is not None,
                "conversions": "none (manopth flat_hand_mean=True, camera frame, metres)",
            },
        )

    def _hand(self, path: Path, side: str, cam: CameraModel) -> HandPose:
        try:
            data = safe_unpickle(path.read_bytes(), path)
        except OSError as err:
            raise InputError(f"cannot read: {err}", source=path) from err
        if not isinstance(data, dict):
            raise InputError("expected a pickled dict", source=path)
        pose = get_field(data, "poseCoeff", path).ravel()
        if pose.size != 48:
            raise InputError(f"expected 48 values, got {pose.size}", source=path, field="poseCoeff")
        betas = get_field(data, "beta", path).ravel()
        trans = get_field(data, "trans", path).ravel()
        kps = get_field(data, "kps2D", path, shape=(21, 2)) if "kps2D" in data else None
        model = None if self.mano is None else self.mano[side]
        joints = model.joints(pose[:3], pose[3:], betas, trans)[0] if model is not None else None
        return make_hand(
            cam,
            presence=1.0,
            global_orient=pose[:3],
            hand_pose=pose[3:],
            betas=betas,
            transl=trans,
            joints_3d=joints,
            keypoints_2d=kps,
        )


class _Paths:
    """Where the release's parts are under ROOT (a few layouts are seen in the wild)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise InputError("no such directory", source=root)
        self.root = root
        self.release = root / "HOI4D_release" if (root / "HOI4D_release").is_dir() else root
        self.handpose = next(
            (p for p in (root / "handpose", root / "HOI4D_Handpose" / "handpose") if p.is_dir()),
            root / "handpose",
        )
        self.camera_params = next(
            (p for p in (root / "camera_params", root / "HOI4D_cameras" / "camera_params") if p.is_dir()),
            root / "camera_params",
        )

    def rgb_dir(self, name: str) -> Path:
        return self.release / name / "align_rgb"


def _video_size(path: Path) -> tuple[int, int, int]:
    """(width, height, frames) of a video; frames counted from packets when the header does not say."""
    from vidihand_ros.sources.video import VideoFrameSource

    source = VideoFrameSource(path, camera=CameraModel(np.eye(3)))
    if source.message_count is not None:
        return source.width, source.height, source.message_count
    import av

    with av.open(str(path)) as container:
        count = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    return source.width, source.height, count
