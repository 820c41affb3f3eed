"""The capture node's own parameters (beyond the hand-pose node's), read once into `CaptureSettings`.

Co-recorded topics are named in `corecord_topics`; each name N has its parameters under
`corecord.N.*` (topic, type, fields, method, max_age_s), the nested form a parameter YAML
writes as a map (config/capture_ur5e.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rclpy.node import Node
from rclpy.parameter import Parameter

from vidihand_ros.capture.topics import TopicSpec
from vidihand_ros.corecord import METHODS
from vidihand_ros.errors import InputError
from vidihand_ros.ros.settings import Declared, declare_values

TRIGGER_TYPES = ("bool", "joy")

CAPTURE_PARAMETERS: dict[str, Declared] = {
    "dataset": Declared("", "Dataset folder episodes are appended to (created if absent); required"),
    "task": Declared("", "Task text of episodes started by the trigger or with an empty task"),
    "trigger_topic": Declared("", "Topic whose press starts / stops an episode; empty: services only"),
    "trigger_type": Declared("bool", "bool (std_msgs/Bool, rising edge) or joy (sensor_msgs/Joy button)"),
    "trigger_button": Declared(0, "Button index of sensor_msgs/Joy that toggles recording", 0, 255),
    "trigger_stop_success": Declared(True, "The success flag of episodes stopped by the trigger"),
    "pose_wait_s": Declared(
        30.0, "A frame's row waits this long for its estimate before it is written without (s)", 0.0, 3600.0
    ),
    "jpeg_quality": Declared(90, "JPEG quality of frames that arrive raw (JPEGs are stored as sent)", 1, 100),
    "blur_faces": Declared(
        False, "Blur faces in stored frames (MediaPipe face detection; the estimator sees them unblurred)"
    ),
    "status_topic": Declared("~/status", "vidihand_ros/msg/CaptureStatus, latched"),
    "status_period_s": Declared(0.5, "Period of the status message while recording (s)", 0.05, 60.0),
    "corecord_topics": Declared(
        Parameter.Type.STRING_ARRAY, "Names of co-recorded topics; each has corecord.<name>.* parameters"
    ),
}

#: Per co-recorded topic, under `corecord.<name>.`.
TOPIC_PARAMETERS: dict[str, Declared] = {
    "topic": Declared("", "The topic"),
    "type": Declared("", "Its message type (pkg/msg/Name); empty: what its publishers advertise"),
    "fields": Declared(Parameter.Type.STRING_ARRAY, "Dotted fields to keep (e.g. position); empty: all"),
    "method": Declared("nearest", f"Resampling to camera time: {' or '.join(METHODS)}"),
    "max_age_s": Declared(0.1, "A row with no sample this close is NaN and flagged (s)", 0.0, 3600.0),
}


@dataclass(frozen=True)
class CorecordSetting:
    spec: TopicSpec
    msgtype: str


@dataclass(frozen=True)
class CaptureSettings:
    dataset: Path
    task: str
    trigger_topic: str
    trigger_type: str
    trigger_button: int
    trigger_stop_success: bool
    pose_wait_s: float
    jpeg_quality: int
    blur_faces: bool
    status_topic: str
    status_period_s: float
    corecord: tuple[CorecordSetting, ...]


def declare_capture(node: Node) -> CaptureSettings:
    """Declare the capture parameters and those of each co-recorded topic; one InputError if wrong."""
    v = declare_values(node, CAPTURE_PARAMETERS)
    if not v["dataset"]:
        raise InputError("parameter dataset: no dataset folder given (-p dataset:=demos.zarr)")
    if v["trigger_type"] not in TRIGGER_TYPES:
        raise InputError(f"parameter trigger_type: {v['trigger_type']!r} is not one of bool, joy")
    topics = []
    for name in [n for n in v["corecord_topics"] or [] if n.strip()]:
        prefix = f"corecord.{name}."
        t = declare_values(node, {prefix + key: spec for key, spec in TOPIC_PARAMETERS.items()})
        if not t[prefix + "topic"]:
            raise InputError(f"parameter {prefix}topic: co-recorded topic {name} names no topic")
        try:
            spec = TopicSpec(
                name,
                t[prefix + "topic"],
                fields=tuple(f for f in t[prefix + "fields"] or [] if f.strip()),
                method=t[prefix + "method"],
                max_age_s=t[prefix + "max_age_s"],
            )
        except InputError as err:
            raise InputError(f"parameter {prefix[:-1]}: {err.message}") from None
        msgtype = t[prefix + "type"]
        if msgtype and msgtype.count("/") != 2:
            raise InputError(f"parameter {prefix}type: {msgtype!r} is not pkg/msg/Name")
        topics.append(CorecordSetting(spec, msgtype))
    return CaptureSettings(
        dataset=Path(v["dataset"]).expanduser(),
        task=v["task"],
        trigger_topic=v["trigger_topic"],
        trigger_type=v["trigger_type"],
        trigger_button=v["trigger_button"],
        trigger_stop_success=v["trigger_stop_success"],
        pose_wait_s=v["pose_wait_s"],
        jpeg_quality=v["jpeg_quality"],
        blur_faces=v["blur_faces"],
        status_topic=v["status_topic"],
        status_period_s=v["status_period_s"],
        corecord=tuple(topics),
    )
