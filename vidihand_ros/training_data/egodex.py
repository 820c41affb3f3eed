"""EgoDex (Hoque et al., Apple 2025): Vision Pro egocentric video with ARKit upper-body and hand tracking.

Expected layout (the extracted `part1.zip` … `part5.zip`, `test.zip`, `extra.zip`; `ROOT` may
also be one split folder)::

    ROOT/
    └── part1/<task>/<episode>.hdf5 + <episode>.mp4      (also part2..5/, test/, extra/)
        hdf5: camera/intrinsic                3×3 (for the 1920×1080 video)
              transforms/camera               N×4×4 camera → world
              transforms/<joint>              N×4×4 joint → world, e.g. leftHand, leftThumbTip,
                                              rightIndexFingerKnuckle (25 per hand, 68 in all)
              confidences/<joint>             N, optional (0..1)
              attrs: llm_description / description (task text), task, …

Sequence names are the episode paths relative to `ROOT` without suffix
(`part1/add_remove_lid/0`); there is one camera. 30 fps; frame i of the video is row i of the
hdf5 (the shorter of the two wins; a video shorter than the annotations is an error).

Conversions (see apple/ml-egodex, `utils/data_utils.py`, `visualize_2d.py`):
- Positions are ARKit world coordinates in metres. Camera-frame joints are
  `inv(transforms/camera) @ transforms/<joint>`, exactly as EgoDex's own 2D visualisation does
  before projecting with `camera/intrinsic`, i.e. the camera transform is already optical
  (x right, y down, z forward); no axis flip is applied.
- The 21 joints: `<side>Hand` (wrist), then per finger Knuckle, IntermediateBase,
  IntermediateTip, Tip (thumb: ThumbKnuckle … ThumbTip); the four finger Metacarpal joints are
  not part of the 21-joint hand and are dropped.
- No MANO: global_orient, hand_pose, betas and transl stay NaN (ARKit's wrist frame is not
  MANO's, so it is not reported as wrist_orient either).
- Presence: the wrist confidence (1 without confidences) times the in-view rule (wrist and
  ≥3 joints inside the image). EgoDex's README warns the intrinsics are approximate, so 2D
  keypoints can be off by tens of pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.training_data.base import (
    Sequence,
    get_field,
    make_hand,
    rigid_inverse,
    stamp_ns,
    visible_presence,
)
from vidihand_ros.types import HAND_SIDES, CameraModel, Frame, FramePoses

FPS = 30.0
_FINGERS = (
    ("Thumb", ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")),
    ("IndexFinger", ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")),
    ("MiddleFinger", ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")),
    ("RingFinger", ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")),
    ("LittleFinger", ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")),
)


def joint_names(side: str) -> list[str]:
    """EgoDex transform names of one hand's 21 joints, in our order."""
    return [f"{side}Hand"] + [f"{side}{finger}{part}" for finger, parts in _FINGERS for part in parts]


def _h5py(path: Path) -> ModuleType:
    try:
        import h5py
    except ImportError:
        raise InputError("reading EgoDex needs h5py: pip install vidihand_ros[train]", source=path) from None
    return h5py


class EgoDexLoader:
    """Reads EgoDex episodes (hdf5 annotations + mp4 video)."""

    dataset = "egodex"

    def list_sequences(self, root: str | Path) -> list[str]:
        base = Path(root)
        if not base.is_dir():
            raise InputError("no such directory", source=base)
        return sorted(
            str(p.relative_to(base).with_suffix(""))
            for p in base.rglob("*.hdf5")
            if p.with_suffix(".mp4").is_file()
        )

    def load(self, root: str | Path, name: str, *, camera: str | int | None = None) -> Sequence:
        if camera not in (None, 0, "0"):
            raise InputError(f"EgoDex has one camera; got camera={camera!r}", field="camera")
        h5_path = Path(root) / f"{name}.hdf5"
        video = h5_path.with_suffix(".mp4")
        for path in (h5_path, video):
            if not path.is_file():
                raise InputError("no such file", source=path)
        h5py = _h5py(h5_path)
        try:
            with h5py.File(h5_path, "r") as f:
                K = get_field(f, "camera/intrinsic", h5_path, shape=(3, 3))
                T_wc = get_field(f, "transforms/camera", h5_path, shape=(4, 4))
                world = {side: _positions(f, side, h5_path) for side in HAND_SIDES}
                conf = {side: _confidence(f, f"confidences/{side}Hand", len(T_wc)) for side in HAND_SIDES}
                attrs = {k: _attr(v) for k, v in f.attrs.items()}
        except OSError as err:
            raise InputError(f"not a readable hdf5 file: {err}", source=h5_path) from err

        width, height, video_frames = _video_info(video)
        cam = CameraModel(K, width, height)
        num = len(T_wc) if video_frames is None else min(len(T_wc), video_frames)
        T_cw = rigid_inverse(T_wc[:num])
        frame_id = f"egodex/{name}"
        poses: list[FramePoses] = []
        for t in range(num):
            rows = {}
            for side in HAND_SIDES:
                p = world[side][t]
                joints = p @ T_cw[t, :3, :3].T + T_cw[t, :3, 3]
                hand = make_hand(cam, joints_3d=joints)
                hand.presence = conf[side][t] * visible_presence(hand, cam)
                rows[side] = hand
            poses.append(FramePoses(stamp_ns(t, FPS), frame_id, left=rows["left"], right=rows["right"]))

        def read_frames() -> Iterator[Frame]:
            from vidihand_ros.sources.video import VideoFrameSource

            for i, frame in enumerate(VideoFrameSource(video, camera=cam, frame_id=frame_id)):
                if i >= num:
                    return
                yield replace(frame, stamp_ns=poses[i].stamp_ns, index=i)

        task = attrs.get("llm_description") or attrs.get("description") or attrs.get("task") or name
        return Sequence(
            name=name,
            dataset=self.dataset,
            fps=FPS,
            poses=poses,
            cameras=[cam] * num,
            read_frames=read_frames,
            attrs={
                "task": str(task),
                "source": str(h5_path),
                "video": str(video),
                "annotated_frames": len(T_wc),
                "video_frames": video_frames,
                "egodex_attrs": attrs,
            },
        )


def _positions(f: Any, side: str, source: Path) -> np.ndarray:
    """World positions (N, 21, 3) of one hand's joints."""
    cols = [get_field(f, f"transforms/{name}", source, shape=(4, 4))[:, :3, 3] for name in joint_names(side)]
    lengths = {len(c) for c in cols}
    if len(lengths) != 1:
        raise InputError(f"{side} hand transforms have different lengths {sorted(lengths)}", source=source)
    return np.stack(cols, axis=1)


def _confidence(f: Any, key: str, num: int) -> np.ndarray:
    if key not in f:
        return np.ones(num)
    values = np.asarray(f[key], dtype=np.float64).ravel()
    out = np.ones(num)
    out[: min(num, len(values))] = np.clip(np.nan_to_num(values[:num], nan=0.0), 0.0, 1.0)
    return out


def _attr(value: Any) -> Any:
    """hdf5 attribute → JSON-friendly value (bytes decoded, numpy unwrapped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [_attr(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _video_info(path: Path) -> tuple[int, int, int | None]:
    """(width, height, frame count or None when the container does not say)."""
    from vidihand_ros.sources.video import VideoFrameSource

    source = VideoFrameSource(path, camera=CameraModel(np.eye(3)))
    return source.width, source.height, source.message_count
