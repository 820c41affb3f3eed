"""The dataset's key table: every `data/<key>` array, its dtype, per-frame shape, fill and meaning.

Single source of truth for the writer, the reader and the docs. The layout is the diffusion_policy /
UMI replay buffer (zarr format 2): `data/<key>` arrays concatenated over all episodes along axis 0,
`meta/episode_ends` the cumulative end row of each episode. A value that was not estimated is NaN
(never zero); `<side>_hand_valid` says where the hand's pose is usable (joints, 2D keypoints and
wrist finite: `dataset.validity`), and each episode's meta record whether an estimator ran at all.
Layout 1 datasets (valid also on NaN rows) are read with the honest mask (docs/dataset.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numcodecs
import numpy as np
from numcodecs.abc import Codec

from vidihand_ros.types import HAND_SIDES, NUM_BETAS, NUM_HAND_POSE_JOINTS, NUM_JOINTS

LAYOUT = "diffusion_policy_replay_buffer"
#: Bumped whenever a key, dtype or meaning changes.
#: 2: `<side>_hand_valid` is True only where joints_3d, keypoints_2d and wrist_pos are all finite
#:    (1: wherever the estimator returned the hand, NaN rows included); episode records state
#:    `estimated` (and `estimator`). Readers recompute the mask of layout 1; writers append to 2 only.
LAYOUT_VERSION = 2

IMAGE_KEY = "camera0_rgb"
CAMERA_KEYS = (IMAGE_KEY,)
EPISODE_ENDS = "episode_ends"
DEFAULT_JPEG_QUALITY = 90

#: Rows per chunk of the low-dimensional arrays: 1024 frames ≈ 34 s at 30 fps, 4–260 KB a chunk.
LOWDIM_CHUNK_ROWS = 1024
#: `meta/episode_ends` chunk length (int64, uncompressed, so a chunk can be rewritten atomically).
EPISODE_ENDS_CHUNK = 1024
#: Distortion coefficients are NaN-padded to OpenCV's longest model (14 coefficients).
MAX_DISTORTION = 14


@dataclass(frozen=True)
class KeySpec:
    """One `data/<key>` array: per-frame shape and dtype, fill value for "missing", and meaning."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    fill: float | int | bool
    description: str

    @property
    def chunks(self) -> tuple[int, ...]:
        return (LOWDIM_CHUNK_ROWS, *self.shape)


def _f32(name: str, shape: tuple[int, ...], description: str) -> KeySpec:
    return KeySpec(name, np.dtype(np.float32), shape, float("nan"), description)


_CAM = "camera optical frame (x right, y down, z forward)"
_OPTIONAL = "Optional: NaN on a valid row without MANO (no MANO files)."

#: Per-hand fields: (field, per-frame shape, description). Key names are `{side}_hand_{field}`.
HAND_FIELDS: tuple[tuple[str, tuple[int, ...], str], ...] = (
    ("global_orient", (3,), f"MANO global orientation, axis-angle in radians, {_CAM}. {_OPTIONAL}"),
    (
        "hand_pose",
        (NUM_HAND_POSE_JOINTS, 3),
        "MANO rotations of the 15 finger joints, axis-angle in radians, "
        f"each relative to its parent (flat hand mean, no PCA). {_OPTIONAL}",
    ),
    ("betas", (NUM_BETAS,), f"MANO shape coefficients (unitless). {_OPTIONAL}"),
    ("transl", (3,), f"MANO translation in metres, {_CAM}. {_OPTIONAL}"),
    ("joints_3d", (NUM_JOINTS, 3), f"21 joints (wrist, then thumb→pinky, base→tip) in metres, {_CAM}."),
    (
        "keypoints_2d",
        (NUM_JOINTS, 2),
        "21 joints in pixels (x, y) of the stored image (scaled with it when images were resized).",
    ),
    ("wrist_pos", (3,), f"Wrist (joint 0) position in metres, {_CAM}."),
    (
        "wrist_rot_axis_angle",
        (3,),
        f"Wrist (palm frame: x along the fingers, z out of the back of the hand) orientation, axis-angle "
        f"in radians, {_CAM}. May be NaN on a valid row (ground truth without MANO).",
    ),
)


def hand_key(side: str, field: str) -> str:
    return f"{side}_hand_{field}"


def _hand_specs(side: str) -> list[KeySpec]:
    specs = [
        KeySpec(
            hand_key(side, "valid"),
            np.dtype(np.bool_),
            (),
            False,
            f"True where the {side} hand's pose is usable: joints_3d, keypoints_2d and wrist_pos all "
            f"finite, observed or filled across a gap ({side}_hand_filled says which). The MANO keys "
            "(global_orient, hand_pose, betas, transl) and wrist_rot_axis_angle are optional and may be "
            "NaN on a valid row (no MANO files); whether an estimator ran is in the episode's record.",
        ),
        KeySpec(
            hand_key(side, "presence"),
            np.dtype(np.float32),
            (),
            float("nan"),
            f"Estimated probability (0..1) that the {side} hand is in view: 0 where the estimator (or "
            "the annotation) says it is not; NaN where nothing was estimated (frames-only, not annotated).",
        ),
        KeySpec(
            hand_key(side, "filled"),
            np.dtype(np.bool_),
            (),
            False,
            f"True when the {side} hand's values were interpolated across a short gap, not observed "
            "(valid when they are finite).",
        ),
    ]
    specs += [_f32(hand_key(side, field), shape, desc) for field, shape, desc in HAND_FIELDS]
    return specs


#: Every low-dimensional key, in the order they are created.
LOWDIM_SPECS: tuple[KeySpec, ...] = (
    KeySpec(
        "timestamp",
        np.dtype(np.float64),
        (),
        float("nan"),
        "Frame time in seconds since the Unix epoch (source header stamp; diffusion_policy/UMI convention).",
    ),
    KeySpec("stamp_ns", np.dtype(np.int64), (), 0, "Exact source header stamp, integer nanoseconds."),
    _f32(
        "camera0_intrinsics",
        (3, 3),
        "Pinhole matrix K of the stored image in pixels (scaled when images were resized); NaN without "
        "CameraInfo.",
    ),
    _f32(
        "camera0_distortion",
        (MAX_DISTORTION,),
        "Distortion coefficients D of sensor_msgs/CameraInfo (OpenCV order), NaN-padded to 14; the model "
        "name is in the episode's meta record.",
    ),
    *(spec for side in HAND_SIDES for spec in _hand_specs(side)),
)
LOWDIM_BY_NAME = {spec.name: spec for spec in LOWDIM_SPECS}

IMAGE_DESCRIPTION = "RGB camera image, uint8 (H, W, 3); one JPEG per chunk (imagecodecs_jpeg)."


def image_shape(width: int, height: int) -> tuple[int, int, int]:
    return (height, width, 3)


def lowdim_compressor() -> Codec:
    """Blosc/zstd with byte shuffle: NaN-filled hand arrays shrink to almost nothing."""
    return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)


def descriptions() -> dict[str, str]:
    """Key → description, for the dataset's root attributes."""
    return {IMAGE_KEY: IMAGE_DESCRIPTION, **{spec.name: spec.description for spec in LOWDIM_SPECS}}
