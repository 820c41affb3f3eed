"""The `vidihand_ros/msg/HandPose(s)` interfaces, outside ROS.

The ROS build generates these types from `msg/*.msg`; everything that runs without ROS (bag
conversion, pose bags) uses `rosbags` instead, so this module registers the same `.msg` text into
`rosbags` typestores and converts between `FramePoses` and the message objects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from vidihand_ros.errors import InputError
from vidihand_ros.types import NUM_BETAS, NUM_HAND_POSE_JOINTS, NUM_JOINTS, FramePoses, HandPose

if TYPE_CHECKING:
    from importlib.abc import Traversable

PACKAGE = "vidihand_ros"
HAND_POSE = f"{PACKAGE}/msg/HandPose"
HAND_POSES = f"{PACKAGE}/msg/HandPoses"
#: Message type name → `.msg` file stem, in dependency order.
INTERFACES = {HAND_POSE: "HandPose", HAND_POSES: "HandPoses"}
DISTROS = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}

_NANO = 1_000_000_000
_INT32 = 2**31


def _candidate_dirs() -> list[Traversable]:
    # setup.py copies msg/ into the wheel's package; a source checkout or editable install has
    # only the repository's msg/; a colcon install has them in <prefix>/share/vidihand_ros/msg.
    prefixes = os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
    return [
        resources.files(PACKAGE) / "interfaces",
        Path(__file__).resolve().parents[2] / "msg",
        *(Path(prefix) / "share" / PACKAGE / "msg" for prefix in prefixes if prefix),
    ]


def interface_dir() -> Traversable:
    """Where the `.msg` files are: installed wheel, then source checkout, then colcon install."""
    candidates = _candidate_dirs()
    for candidate in candidates:
        if all((candidate / f"{stem}.msg").is_file() for stem in INTERFACES.values()):
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"vidihand_ros interface definitions (HandPose.msg, HandPoses.msg) not found; looked in {tried}. "
        "Reinstall the package, or run from a source checkout that has msg/."
    )


def message_definition(typename: str) -> str:
    """The `.msg` text of one of our types, as ROS would read it."""
    return (interface_dir() / f"{INTERFACES[typename]}.msg").read_text(encoding="utf-8")


def register_types(typestore: Typestore) -> Typestore:
    """Add our types to `typestore` (a no-op when they are already there); returns it."""
    if all(name in typestore.fielddefs for name in INTERFACES):
        return typestore
    typs = {}
    for name in INTERFACES:
        typs.update(get_types_from_msg(message_definition(name), name))
    typestore.register(typs)
    return typestore


def make_typestore(distro: str = "jazzy") -> Typestore:
    """A fresh typestore of a ROS 2 distro's standard types plus ours."""
    if distro not in DISTROS:
        raise InputError(f"unknown ROS 2 distro {distro!r}; expected one of {sorted(DISTROS)}")
    return register_types(get_typestore(DISTROS[distro]))


def poses_to_message(poses: FramePoses, typestore: Typestore) -> Any:
    """A `HandPoses` message for one frame; a missing hand becomes `valid=False` with NaN fields."""
    register_types(typestore)
    return build_message(poses, typestore.types)


def build_message(
    poses: FramePoses, types: Mapping[str, Any], missing: Mapping[str, Any] | None = None
) -> Any:
    """`poses_to_message` with any message classes: `types` maps ROS type names
    ("std_msgs/msg/Header", …, `HAND_POSE`, `HAND_POSES`) to constructors taking the fields as
    keywords — a rosbags typestore's, or rclpy's generated classes (`vidihand_ros.ros.messages`).
    `missing` may give a ready `HandPose` per side for a hand without an estimate (a live
    publisher reuses one instead of building 21 NaN points a frame)."""
    if not -_INT32 <= poses.stamp_ns // _NANO < _INT32:
        raise InputError(f"stamp {poses.stamp_ns} ns does not fit builtin_interfaces/Time", field="stamp_ns")
    sec, nanosec = divmod(poses.stamp_ns, _NANO)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
        frame_id=poses.frame_id,
    )
    return types[HAND_POSES](
        header=header,
        left=_hand(poses.left, "left", types, missing),
        right=_hand(poses.right, "right", types, missing),
    )


def _hand(
    hand: HandPose | None, side: str, types: Mapping[str, Any], missing: Mapping[str, Any] | None
) -> Any:
    if hand is None and missing is not None:
        return missing[side]
    return _hand_to_message(hand, side, types)


def message_to_poses(msg: Any) -> FramePoses:
    """The `FramePoses` a `HandPoses` message carries (from any typestore, e.g. a bag reader's)."""
    stamp = msg.header.stamp
    return FramePoses(
        stamp_ns=int(stamp.sec) * _NANO + int(stamp.nanosec),
        frame_id=str(msg.header.frame_id),
        left=_message_to_hand(msg.left),
        right=_message_to_hand(msg.right),
    )


def _hand_to_message(hand: HandPose | None, side: str, types: Mapping[str, Any]) -> Any:
    est = hand if hand is not None else HandPose(presence=np.nan)
    point = types["geometry_msgs/msg/Point"]
    joints = _sized(est.joints_3d, NUM_JOINTS * 3, side, "joints_3d").reshape(NUM_JOINTS, 3)
    x, y, z = (float(v) for v in joints[0])
    qx, qy, qz, qw = _rotvec_to_quat(_sized(est.wrist_orient, 3, side, "wrist_orient"))
    wrist = types["geometry_msgs/msg/Pose"](
        position=point(x=x, y=y, z=z),
        orientation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
    )
    return types[HAND_POSE](
        valid=hand is not None,
        presence=float(np.float32(est.presence)),
        global_orient=_vector3(_sized(est.global_orient, 3, side, "global_orient"), types),
        hand_pose=_sized(est.hand_pose, NUM_HAND_POSE_JOINTS * 3, side, "hand_pose"),
        betas=_sized(est.betas, NUM_BETAS, side, "betas"),
        translation=_vector3(_sized(est.transl, 3, side, "transl"), types),
        wrist=wrist,
        joints=[point(x=float(a), y=float(b), z=float(c)) for a, b, c in joints],
        keypoints_2d=_sized(est.keypoints_2d, NUM_JOINTS * 2, side, "keypoints_2d"),
    )


def _message_to_hand(msg: Any) -> HandPose | None:
    if not msg.valid:
        return None
    q = msg.wrist.orientation
    return HandPose(
        presence=float(msg.presence),
        global_orient=_xyz(msg.global_orient),
        hand_pose=np.asarray(msg.hand_pose, dtype=np.float32).reshape(NUM_HAND_POSE_JOINTS, 3),
        betas=np.asarray(msg.betas, dtype=np.float32),
        transl=_xyz(msg.translation),
        joints_3d=np.stack([_xyz(p) for p in msg.joints]),
        keypoints_2d=np.asarray(msg.keypoints_2d, dtype=np.float32).reshape(NUM_JOINTS, 2),
        wrist_orient=_quat_to_rotvec(np.array([q.x, q.y, q.z, q.w])).astype(np.float32),
    )


def _sized(values: NDArray[np.float32], size: int, side: str, field: str) -> NDArray[np.float32]:
    """Flatten to float32, refusing a wrong size instead of sending a malformed message."""
    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    if flat.size != size:
        raise InputError(f"{side} hand has {flat.size} values, expected {size}", field=field)
    return flat


def _vector3(v: NDArray[np.float32], types: Mapping[str, Any]) -> Any:
    return types["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _xyz(v: Any) -> NDArray[np.float32]:
    return np.array([v.x, v.y, v.z], dtype=np.float32)


def _rotvec_to_quat(rotvec: NDArray[np.float32]) -> tuple[float, float, float, float]:
    """Axis-angle → unit quaternion (x, y, z, w); NaN in, NaN out."""
    r = rotvec.astype(np.float64)
    angle = float(np.linalg.norm(r))
    # sin(angle/2)/angle, finite at angle 0
    scale = 0.5 * float(np.sinc(angle / (2 * np.pi)))
    x, y, z = (float(v) for v in r * scale)
    return x, y, z, float(np.cos(angle / 2))


def _quat_to_rotvec(quat: NDArray[np.float64]) -> NDArray[np.float64]:
    """Quaternion (x, y, z, w) → axis-angle with angle in [0, π]; NaN in, NaN out."""
    norm = np.linalg.norm(quat)
    if not np.isfinite(norm):
        return np.full(3, np.nan)
    if norm == 0.0:
        raise InputError("wrist orientation is a zero quaternion", field="wrist.orientation")
    q = quat / norm if quat[3] >= 0 else -quat / norm
    sin_half = float(np.linalg.norm(q[:3]))
    if sin_half == 0.0:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(sin_half, q[3])
    return np.asarray(q[:3] * (angle / sin_half), dtype=np.float64)
