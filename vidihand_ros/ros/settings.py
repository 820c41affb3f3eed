"""The hand-pose node's parameters: declared with descriptors, read once into `NodeSettings`.

Every parameter is read-only: topics, the estimator and the window shape are fixed for a node's
life (change them by restarting it, as with a camera driver). Ranges are declared in the
descriptors, so `ros2 param describe` shows them and rclpy refuses an out-of-range override
before the node starts; what a range cannot say (stride ≤ window, an estimator's options) is
checked here and reported as one `InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterValueException, ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from vidihand_ros.errors import InputError
from vidihand_ros.estimators import parse_options
from vidihand_ros.estimators.spec import EstimatorSpec
from vidihand_ros.imaging import MAX_PIXELS

IMAGE_TYPES = ("auto", "raw", "compressed")


@dataclass(frozen=True)
class Declared:
    """One parameter: default value, description and range (ints and floats)."""

    default: Any
    description: str
    low: float | None = None
    high: float | None = None


PARAMETERS: dict[str, Declared] = {
    "image_topic": Declared(
        "/camera/image_raw/compressed",
        "Camera image topic; sensor_msgs/Image or sensor_msgs/CompressedImage (see image_type)",
    ),
    "image_type": Declared(
        "auto", "auto (the type the topic's publishers advertise), raw (Image) or compressed"
    ),
    "camera_info_topic": Declared(
        "/camera/camera_info", "sensor_msgs/CameraInfo topic; empty: use intrinsics_file only"
    ),
    "intrinsics_file": Declared(
        "", "Calibration YAML (camera_calibration format) used until a CameraInfo arrives"
    ),
    "estimator": Declared(
        "mediapipe", "mediapipe, vidihand, remote, none (frames only) or package.module:factory"
    ),
    "server": Declared("", "Inference server URL, for estimator remote (http://host:8000)"),
    "token_file": Declared("", "File holding the server's bearer token (else $VIDIHAND_TOKEN)"),
    "checkpoint": Declared("", "ViDiHand checkpoint folder, for estimator vidihand"),
    "mano_dir": Declared("", "Folder with MANO_RIGHT.pkl and MANO_LEFT.pkl, for estimator vidihand"),
    "device": Declared("", "torch device for estimator vidihand (default: cuda when available)"),
    "estimator_options": Declared(
        Parameter.Type.STRING_ARRAY, "Further estimator options as key=value strings"
    ),
    "window": Declared(0, "Frames per window; 0: the estimator's own", 0, 4096),
    "stride": Declared(0, "Frames between window starts; 0: the estimator's own (or the window)", 0, 4096),
    "segment_gap_s": Declared(0.5, "A stamp jump larger than this starts a new segment (s)", 0.0, 3600.0),
    "idle_flush_s": Declared(
        1.0,
        "With no frame for this long, the frames held are estimated and published (s); 0.0: never",
        0.0,
        3600.0,
    ),
    "max_in_flight": Declared(0, "Windows at the estimator at once; 0: what the estimator allows", 0, 64),
    "max_queued_windows": Declared(
        2, "Strides of frames waiting for the estimator before the oldest are dropped", 1, 64
    ),
    "estimate_timeout_s": Declared(30.0, "A window not estimated within this is dropped (s)", 0.1, 3600.0),
    "max_pixels": Declared(MAX_PIXELS, "Largest image accepted (width × height)", 1, 2**31 - 1),
    "poses_topic": Declared("~/hand_poses", "vidihand_ros/msg/HandPoses output, one per frame"),
    "wrist_topic_prefix": Declared("~", "geometry_msgs/PoseStamped on <prefix>/<side>/wrist_pose"),
    "markers_topic": Declared(
        "~/markers", "visualization_msgs/MarkerArray of the newest frame published; empty: none"
    ),
    "robot_hand": Declared(
        "",
        "Retarget the hands to this robot hand (allegro, leap, shadow, svh, ability, inspire) and "
        "publish sensor_msgs/JointState on <wrist_topic_prefix>/<side>/robot_hand_joint_states; "
        "empty: none (retarget extra)",
    ),
    "robot_hand_mode": Declared("vector", "vector, dexpilot or position (dex-retargeting's optimisers)"),
    "robot_hand_side": Declared("both", "both, left or right: the hands retargeted"),
    "robot_hand_urdf_dir": Declared("", "Folder of robot hand models, laid out as dex-urdf's robots/hands"),
    "robot_hand_config": Declared(
        "", "A dex-retargeting YAML for one hand instead of the package's (robot_hand_side left or right)"
    ),
    "robot_hand_low_pass_alpha": Declared(
        0.0, "The retargeting's temporal filter (1.0: none); 0.0: the configuration's", 0.0, 1.0
    ),
    "robot_hand_min_presence": Declared(0.5, "Retarget a hand from this presence on", 0.0, 1.0),
    "diagnostics_period_s": Declared(1.0, "Period of the /diagnostics status (s)", 0.05, 60.0),
    "input_queue_depth": Declared(10, "History depth of the image subscription", 1, 1000),
}


@dataclass(frozen=True)
class RobotHandSettings:
    """What to retarget live, as `vidihand retarget` takes it (checked when the node builds it)."""

    robot: str
    mode: str
    sides: tuple[str, ...]
    urdf_dir: str
    config: str
    low_pass_alpha: float | None
    min_presence: float


@dataclass(frozen=True)
class NodeSettings:
    """The node's parameters, checked."""

    image_topic: str
    image_type: str
    camera_info_topic: str
    intrinsics_file: str
    estimator: EstimatorSpec
    window: int | None
    stride: int | None
    segment_gap_s: float
    idle_flush_s: float | None
    max_in_flight: int | None
    max_queued_windows: int
    estimate_timeout_s: float
    max_pixels: int
    poses_topic: str
    wrist_topic_prefix: str
    markers_topic: str
    diagnostics_period_s: float
    input_queue_depth: int
    robot_hand: RobotHandSettings | None = None


def declare(node: Node) -> NodeSettings:
    """Declare every parameter (overrides from YAML / --ros-args apply now) and read them."""
    return _settings(declare_values(node, PARAMETERS))


def declare_values(node: Node, parameters: Mapping[str, Declared]) -> dict[str, Any]:
    """Declare `parameters` with their descriptors; their values, or one InputError."""
    values: dict[str, Any] = {}
    for name, spec in parameters.items():
        try:
            values[name] = node.declare_parameter(name, spec.default, _descriptor(spec)).value
        except InvalidParameterValueException as err:  # out of the declared range
            given = re.search(r"value: ([^:\s]+)", str(err))
            value = given.group(1) if given else "the value"
            raise InputError(f"parameter {name}: {value} is outside {spec.low:g}..{spec.high:g}") from None
        except ParameterException as err:
            hint = (
                " (write a float with a decimal point, e.g. 1.0)" if isinstance(spec.default, float) else ""
            )
            raise InputError(f"parameter {name}: {_reason(err)}{hint}") from None
    return values


def _reason(err: ParameterException) -> str:
    """rclpy's message without its boilerplate: "Trying to set parameter … to … of type …"."""
    text = str(err).strip().splitlines()[0]
    return re.sub(r"\s*:\s*\w+$", "", text) or type(err).__name__


def _descriptor(spec: Declared) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=spec.description, read_only=True)
    if isinstance(spec.default, bool):
        return descriptor
    if isinstance(spec.default, int) and spec.low is not None and spec.high is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    elif isinstance(spec.default, float) and spec.low is not None and spec.high is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    elif spec.default is Parameter.Type.STRING_ARRAY:
        descriptor.type = ParameterType.PARAMETER_STRING_ARRAY
    return descriptor


def _settings(values: dict[str, Any]) -> NodeSettings:
    if values["image_type"] not in IMAGE_TYPES:
        raise InputError(
            f"parameter image_type: {values['image_type']!r} is not one of {', '.join(IMAGE_TYPES)}"
        )
    if not values["image_topic"]:
        raise InputError("parameter image_topic: empty")
    window, stride = values["window"] or None, values["stride"] or None
    if window is not None and stride is not None and stride > window:
        raise InputError(f"parameter stride: {stride} is larger than window {window}")
    return NodeSettings(
        image_topic=values["image_topic"],
        image_type=values["image_type"],
        camera_info_topic=values["camera_info_topic"],
        intrinsics_file=values["intrinsics_file"],
        estimator=_estimator(values),
        window=window,
        stride=stride,
        segment_gap_s=values["segment_gap_s"],
        idle_flush_s=values["idle_flush_s"] or None,
        max_in_flight=values["max_in_flight"] or None,
        max_queued_windows=values["max_queued_windows"],
        estimate_timeout_s=values["estimate_timeout_s"],
        max_pixels=values["max_pixels"],
        poses_topic=values["poses_topic"],
        wrist_topic_prefix=values["wrist_topic_prefix"],
        markers_topic=values["markers_topic"],
        diagnostics_period_s=values["diagnostics_period_s"],
        input_queue_depth=values["input_queue_depth"],
        robot_hand=_robot_hand(values),
    )


def _robot_hand(values: dict[str, Any]) -> RobotHandSettings | None:
    if not values["robot_hand"]:
        return None
    side = values["robot_hand_side"]
    if side not in ("both", "left", "right"):
        raise InputError(f"parameter robot_hand_side: {side!r} is not one of both, left, right")
    if values["robot_hand_config"] and side == "both":
        raise InputError(
            "parameter robot_hand_config: one hand's configuration; set robot_hand_side left or right"
        )
    if not values["robot_hand_urdf_dir"] and not values["robot_hand_config"]:
        raise InputError(
            "parameter robot_hand_urdf_dir: required with robot_hand (the robot models, dex-urdf's "
            "robots/hands, are not bundled)"
        )
    return RobotHandSettings(
        robot=values["robot_hand"],
        mode=values["robot_hand_mode"],
        sides=("right", "left") if side == "both" else (side,),
        urdf_dir=values["robot_hand_urdf_dir"],
        config=values["robot_hand_config"],
        low_pass_alpha=values["robot_hand_low_pass_alpha"] or None,
        min_presence=values["robot_hand_min_presence"],
    )


def _estimator(values: dict[str, Any]) -> EstimatorSpec:
    """The estimator's registry name and options: the named parameters, then estimator_options."""
    try:
        options = parse_options([pair for pair in values["estimator_options"] or [] if pair.strip()])
    except InputError as err:
        raise InputError(f"parameter estimator_options: {err.message}") from None
    for name in ("server", "token_file", "checkpoint", "mano_dir", "device"):
        if values[name]:
            options.setdefault(name, values[name])
    return EstimatorSpec(values["estimator"], options)
