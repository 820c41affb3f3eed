"""Core value types that flow through the pipeline.

FrameSource → Windower → PoseEstimator → Stitcher → Sinks all speak these types, and none of them
knows about ROS: the ROS adapter converts messages to and from them at the edge.

Conventions (shared by every estimator and sink):
- Time is integer nanoseconds (`stamp_ns`), the source frame's header stamp.
- 3D quantities are metres in the camera's optical frame (x right, y down, z forward).
- Rotations are axis-angle vectors in radians (MANO's convention).
- Joints are the usual 21-joint hand order (wrist, then thumb→pinky, each base→tip).
- A value that was not estimated is NaN, never zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

NUM_JOINTS = 21
NUM_HAND_POSE_JOINTS = 15
NUM_BETAS = 10
HAND_SIDES = ("left", "right")

#: Compressed formats a Frame may carry as bytes (everything else is decoded to pixels).
COMPRESSED_FORMATS = ("jpeg", "png")

FloatArray = NDArray[np.floating]


def _nan(*shape: int) -> NDArray[np.float32]:
    return np.full(shape, np.nan, dtype=np.float32)


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics plus an optional lens-distortion model, as in `sensor_msgs/CameraInfo`."""

    K: NDArray[np.float64]
    width: int = 0
    height: int = 0
    distortion_model: str = ""
    D: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", np.asarray(self.D, dtype=np.float64).ravel())

    @classmethod
    def from_fxfycxcy(
        cls, fx: float, fy: float, cx: float, cy: float, width: int = 0, height: int = 0
    ) -> CameraModel:
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(K=K, width=width, height=height)

    def problem(self) -> CalibrationProblem | None:
        """Why K / D cannot be a calibration (see `calibration_problem`); None when they can."""
        return calibration_problem(self.K, self.D)

    def same_as(self, other: CameraModel | None) -> bool:
        """Equal calibration (used to collapse repeated CameraInfo messages)."""
        return (
            other is not None
            and self.width == other.width
            and self.height == other.height
            and self.distortion_model == other.distortion_model
            and np.array_equal(self.K, other.K)
            and np.array_equal(self.D, other.D)
        )


_K_ENTRIES = {(0, 0): "fx", (1, 1): "fy", (0, 2): "cx", (1, 2): "cy", (0, 1): "skew"}


@dataclass(frozen=True)
class CalibrationProblem:
    """What makes intrinsics unusable: `matrix` is "K" or "D", `message` names the entry and value."""

    matrix: str
    message: str


def calibration_problem(K: NDArray[np.float64], D: NDArray[np.float64]) -> CalibrationProblem | None:
    """The one check of user- or bag-supplied intrinsics (CameraInfo, --intrinsics, YAML).

    Focal lengths must be positive and finite, every other K entry and every distortion
    coefficient finite: NaN or a zero focal length would otherwise turn into NaN poses or a
    division by zero far from the file that caused it.
    """
    for (row, col), name in (((0, 0), "fx"), ((1, 1), "fy")):
        value = float(K[row, col])
        if not (math.isfinite(value) and value > 0):
            return CalibrationProblem("K", f"{name} = {value:g} is not a positive finite focal length")
    for (row, col), entry in np.ndenumerate(K):
        if not math.isfinite(float(entry)):
            name = _K_ENTRIES.get((row, col), f"K[{row}][{col}]")
            return CalibrationProblem("K", f"{name} = {float(entry):g} is not finite")
    for i, coefficient in enumerate(np.ravel(D).tolist()):
        if not math.isfinite(coefficient):
            return CalibrationProblem("D", f"distortion coefficient {i} = {coefficient:g} is not finite")
    return None


@dataclass
class Frame:
    """One camera image with its stamp and calibration.

    A frame carries either compressed bytes (`data`, with `encoding` in COMPRESSED_FORMATS) or an
    RGB pixel array (`pixels`, `encoding == "rgb8"`). Compressed bytes are kept as they are so that
    a JPEG can be copied into a dataset without decoding; `rgb()` decodes on demand, once.
    """

    stamp_ns: int
    frame_id: str
    encoding: str
    width: int
    height: int
    data: bytes | None = None
    pixels: NDArray[np.uint8] | None = None
    camera: CameraModel | None = None
    #: Position of the message in its source topic (for error messages).
    index: int = 0

    def __post_init__(self) -> None:
        if (self.data is None) == (self.pixels is None):
            raise ValueError("a Frame carries exactly one of `data` (compressed) or `pixels` (rgb8)")

    @property
    def is_jpeg(self) -> bool:
        return self.data is not None and self.encoding == "jpeg"

    def rgb(self) -> NDArray[np.uint8]:
        """The image as an (H, W, 3) uint8 RGB array."""
        if self.pixels is not None:
            return self.pixels
        return self._decoded

    @cached_property
    def _decoded(self) -> NDArray[np.uint8]:
        from vidihand_ros.imaging import decode_rgb

        assert self.data is not None
        return decode_rgb(self.data, self.encoding)


@dataclass
class Window:
    """W consecutive frames of one segment, the unit an estimator works on.

    The tail of a segment is padded by repeating its last frame; `num_valid` says how many frames
    are real. `start` is the stream index of `frames[0]` (indices count every frame the windower
    has seen, across segments).
    """

    frames: list[Frame]
    start: int
    num_valid: int
    segment: int

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def valid_frames(self) -> list[Frame]:
        return self.frames[: self.num_valid]


@dataclass
class HandPose:
    """One hand in one frame. Any quantity the estimator did not produce is NaN."""

    presence: float
    global_orient: NDArray[np.float32] = field(default_factory=lambda: _nan(3))
    hand_pose: NDArray[np.float32] = field(default_factory=lambda: _nan(NUM_HAND_POSE_JOINTS, 3))
    betas: NDArray[np.float32] = field(default_factory=lambda: _nan(NUM_BETAS))
    transl: NDArray[np.float32] = field(default_factory=lambda: _nan(3))
    joints_3d: NDArray[np.float32] = field(default_factory=lambda: _nan(NUM_JOINTS, 3))
    keypoints_2d: NDArray[np.float32] = field(default_factory=lambda: _nan(NUM_JOINTS, 2))
    #: Wrist orientation in the camera frame (axis-angle): the palm frame of
    #: `vidihand_ros.geometry.palm` (x along the fingers, z out of the back of the hand), computed
    #: from the joints the same way for every estimator, so datasets from different ones agree.
    wrist_orient: NDArray[np.float32] = field(default_factory=lambda: _nan(3))
    #: True when the values were interpolated across a short gap rather than observed.
    filled: bool = False

    ARRAY_FIELDS = (
        "global_orient",
        "hand_pose",
        "betas",
        "transl",
        "joints_3d",
        "keypoints_2d",
        "wrist_orient",
    )

    def __post_init__(self) -> None:
        for name in self.ARRAY_FIELDS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))

    @property
    def wrist_position(self) -> NDArray[np.float32]:
        """Wrist (joint 0) in metres, camera frame."""
        return self.joints_3d[0]


@dataclass
class FramePoses:
    """Both hands for one frame, carrying the source frame's stamp and frame_id.

    `None` for a hand means "no estimate" (frames-only mode, or the estimator gave nothing); an
    estimate with low `presence` means "looked, and the hand is probably not there".
    """

    stamp_ns: int
    frame_id: str
    left: HandPose | None = None
    right: HandPose | None = None

    def hand(self, side: str) -> HandPose | None:
        if side not in HAND_SIDES:
            raise ValueError(f"hand side must be one of {HAND_SIDES}, got {side!r}")
        return self.left if side == "left" else self.right
