"""A teleoperation rig for the capture tests (test code): a camera, a robot arm's topics, a pedal.

`Rig` is a real rclpy node publishing JPEG `CompressedImage` frames, `JointState` at any rate, a
`Bool` pedal and a `Joy` pad, and calling the capture node's services. Frames are 64×48 JPEGs
(tests.test_dataset.jpeg_frame), stamped by the rig, so every row can be checked exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, JointState, Joy
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from vidihand_ros.msg import CaptureStatus
from vidihand_ros.srv import StartEpisode, StopEpisode

from tests.rosnode import Recorded, wait_until
from tests.test_dataset import jpeg_frame
from vidihand_ros.ros.capture_node import latched_qos

IMAGE_TOPIC = "/camera/image_raw/compressed"
JOINT_TOPIC = "/joint_states"
PEDAL_TOPIC = "/pedal"
JOY_TOPIC = "/joy"
#: The camera of jpeg_frame's 64×48 images, as a camera_calibration YAML.
CALIBRATION = """\
image_width: 64
image_height: 48
camera_matrix: {rows: 3, cols: 3, data: [60, 0, 32, 0, 60, 24, 0, 0, 1]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}
"""


def write_calibration(folder: Path) -> Path:
    path = folder / "camera.yaml"
    path.write_text(CALIBRATION)
    return path


def to_time(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def joint_values(stamp_ns: int) -> list[float]:
    """The arm's joint positions at a time: linear in time, so linear resampling is exact."""
    t = stamp_ns * 1e-9 % 1000.0
    return [t, 2.0 * t, -t, 0.5, 1.0, 0.25 * t]


class Rig(Node):
    """Publishes what a teleoperation rig would and calls the capture node `node_name`."""

    def __init__(self, context: Context, node_name: str = "capture_node") -> None:
        super().__init__("teleop_rig", context=context)
        self.image_pub = self.create_publisher(CompressedImage, IMAGE_TOPIC, 100)
        self.joint_pub = self.create_publisher(JointState, JOINT_TOPIC, 1000)
        self.pedal_pub = self.create_publisher(Bool, PEDAL_TOPIC, 10)
        self.joy_pub = self.create_publisher(Joy, JOY_TOPIC, 10)
        prefix = f"/{node_name}"
        self.start_client = self.create_client(StartEpisode, f"{prefix}/start_episode")
        self.stop_client = self.create_client(StopEpisode, f"{prefix}/stop_episode")
        self.discard_client = self.create_client(Trigger, f"{prefix}/discard_episode")
        self.statuses = Recorded()
        self.status_topic = f"{prefix}/status"

    def listen_to_status(self) -> None:
        self.create_subscription(CaptureStatus, self.status_topic, self.statuses.add, latched_qos())

    def wait_for_capture_node(self, timeout_s: float = 30.0) -> None:
        """Services up and the node subscribed to the images and joint states."""
        for client in (self.start_client, self.stop_client, self.discard_client):
            assert client.wait_for_service(timeout_sec=timeout_s), f"{client.srv_name} not available"
        wait_until(lambda: self.image_pub.get_subscription_count() > 0, timeout_s, "the image subscription")
        wait_until(lambda: self.joint_pub.get_subscription_count() > 0, timeout_s, "the joint subscription")
        time.sleep(0.5)  # the subscriber's side of the match (see tests.test_node.DISCOVERY_S)

    # -- publishing ---------------------------------------------------------------------------

    def frame(self, i: int, stamp_ns: int) -> None:
        msg = CompressedImage(format="jpeg", data=jpeg_frame(i).data)
        msg.header.stamp = to_time(stamp_ns)
        msg.header.frame_id = "head_camera"
        self.image_pub.publish(msg)

    def joints(self, stamp_ns: int) -> None:
        msg = JointState(name=[f"joint_{k}" for k in range(6)], position=joint_values(stamp_ns))
        msg.header.stamp = to_time(stamp_ns)
        self.joint_pub.publish(msg)

    def pedal(self, pressed: bool) -> None:
        self.pedal_pub.publish(Bool(data=pressed))

    def joy(self, buttons: list[int]) -> None:
        self.joy_pub.publish(Joy(buttons=buttons))

    # -- services (the rig's own executor spins: call from the test thread) --------------------

    def call(self, client: Any, request: Any, timeout_s: float = 20.0) -> Any:
        future = client.call_async(request)
        wait_until(future.done, timeout_s, f"{client.srv_name}")
        return future.result()

    def start(self, task: str = "") -> Any:
        return self.call(self.start_client, StartEpisode.Request(task=task))

    def stop(self, success: bool = True) -> Any:
        return self.call(self.stop_client, StopEpisode.Request(success=success))

    def discard(self) -> Any:
        return self.call(self.discard_client, Trigger.Request())
