"""rclpy messages ↔ the core's types, through the same code that reads and writes bags.

Images and CameraInfo go through `vidihand_ros.sources` (rclpy's messages have the field names
rosbags' have), so a frame from a topic is exactly the frame the same message gives in a bag:
JPEG bytes checked and kept, raw images converted as cv_bridge does. `HandPoses` is built by
`sinks.hand_poses.build_message` with rclpy's generated classes.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Sequence
from functools import cache, partial
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Vector3
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from vidihand_ros.errors import InputError
from vidihand_ros.sinks.hand_poses import HAND_POSE, HAND_POSES, build_message
from vidihand_ros.types import HAND_SIDES, FramePoses
from vidihand_ros.visualize import HAND_BONES, SIDE_COLOURS

#: How long RViz shows a hand's markers when no newer frame replaces them.
MARKER_LIFETIME = Duration(sec=0, nanosec=500_000_000)
JOINT_DIAMETER_M = 0.012
BONE_WIDTH_M = 0.006


def message_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/JointState' → rclpy's generated class (an InputError if absent)."""
    package, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise InputError(f"no Python message class for {msgtype} in this environment") from None


@cache
def message_classes() -> dict[str, Any]:
    """ROS type name → rclpy class, for the types a `HandPoses` message is made of."""
    from vidihand_ros.msg import HandPose, HandPoses

    classes: list[Any] = [Time, Header, Point, Pose, Quaternion, Vector3, HandPose, HandPoses]
    names = ["builtin_interfaces/msg/Time", "std_msgs/msg/Header", "geometry_msgs/msg/Point"]
    names += ["geometry_msgs/msg/Pose", "geometry_msgs/msg/Quaternion", "geometry_msgs/msg/Vector3"]
    return dict(zip([*names, HAND_POSE, HAND_POSES], classes, strict=True))


@cache
def message_types() -> dict[str, Callable[..., Any]]:
    """Constructors for `build_message` that skip what rclpy's generated `__init__` does first.

    That `__init__` builds a default for every field even when the field is given (a HandPoses
    makes two default HandPose, 42 points), then checks each value: most of a message's cost.
    `build_message` gives every field, already sized and typed, so these constructors only set
    them (a message missing a field still fails, at `publish`).
    """
    return {name: partial(_filled, cls) for name, cls in message_classes().items()}


def _filled(cls: Any, **fields: Any) -> Any:
    if not _fillable(cls, frozenset(fields)):
        return cls(**fields)  # a field not given, or generated classes without `_check_fields`
    message = cls.__new__(cls)
    message._check_fields = False
    for name, value in fields.items():
        setattr(message, name, value)
    return message


@cache
def _fillable(cls: Any, given: frozenset[str]) -> bool:
    """Whether `given` is every field of `cls` and its setters can skip their checks (Jazzy's
    generated classes can; older ones have no `_check_fields`)."""
    return "_check_fields" in cls.__slots__ and given == set(cls.get_fields_and_field_types())


@cache
def _missing_hands() -> dict[str, Any]:
    """One `valid=False` HandPose per side, shared by every message (published messages are
    serialised at once and never changed)."""
    empty = build_message(FramePoses(0, ""), message_types())
    return {side: getattr(empty, side) for side in HAND_SIDES}


def hand_poses_message(poses: FramePoses) -> Any:
    """`vidihand_ros/msg/HandPoses` for one frame, stamped with the source frame's stamp."""
    return build_message(poses, message_types(), _missing_hands())


def wrist_poses(message: Any) -> dict[str, PoseStamped]:
    """Per side with a finite wrist estimate: its pose in the source frame (from `HandPoses`)."""
    out = {}
    for side in HAND_SIDES:
        hand = getattr(message, side)
        position, orientation = hand.wrist.position, hand.wrist.orientation
        values = (
            position.x,
            position.y,
            position.z,
            orientation.x,
            orientation.y,
            orientation.z,
            orientation.w,
        )
        if hand.valid and all(math.isfinite(v) for v in values):
            out[side] = PoseStamped(header=message.header, pose=hand.wrist)
    return out


def joint_state(header: Header, names: Sequence[str], positions: Iterable[float]) -> JointState:
    """A robot hand's retargeted joint positions (no velocities or efforts: only angles are known)."""
    return JointState(header=header, name=list(names), position=[float(p) for p in positions])


def hand_markers(message: Any) -> MarkerArray:
    """Joints (spheres) and bones (lines) per hand, coloured by side, in the source frame.

    A hand without an estimate gets DELETE markers, so RViz does not keep showing a hand that
    has gone; each marker also expires after `MARKER_LIFETIME`.
    """
    markers = []
    for side_index, side in enumerate(HAND_SIDES):
        hand = getattr(message, side)
        joints = np.array([(p.x, p.y, p.z) for p in hand.joints], dtype=np.float64)
        visible = hand.valid and bool(np.isfinite(joints).all())
        red, green, blue = (c / 255.0 for c in SIDE_COLOURS[side])
        colour = ColorRGBA(r=red, g=green, b=blue, a=1.0)
        for kind, shape in enumerate((Marker.SPHERE_LIST, Marker.LINE_LIST)):
            marker = Marker(header=message.header, ns=f"{side}_hand", id=2 * side_index + kind)
            if not visible:
                marker.action = Marker.DELETE
                markers.append(marker)
                continue
            marker.type, marker.action, marker.lifetime = shape, Marker.ADD, MARKER_LIFETIME
            marker.pose.orientation.w = 1.0
            marker.color = colour
            if shape == Marker.SPHERE_LIST:
                marker.scale = Vector3(x=JOINT_DIAMETER_M, y=JOINT_DIAMETER_M, z=JOINT_DIAMETER_M)
                marker.points = list(hand.joints)
            else:
                marker.scale = Vector3(x=BONE_WIDTH_M, y=0.0, z=0.0)
                marker.points = [hand.joints[j] for bone in HAND_BONES for j in bone]
            markers.append(marker)
    return MarkerArray(markers=markers)
