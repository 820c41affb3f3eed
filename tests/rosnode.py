"""Real-rclpy fixtures for the node tests (test code): a listener, a running executor.

Bags written by the tests are played by the package's own `vidihand_ros.ros.bag_player` (rosbags
reads them, rclpy deserialises and publishes, as `ros2 bag play` would). `Listener` records what
the node publishes. `RosGraph` gives each test its own rclpy context on its own DDS domain and
spins every node in it on one executor thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from vidihand_ros.msg import HandPoses
from visualization_msgs.msg import MarkerArray

#: A DDS domain per test process: parallel runs (and other ROS work on the machine) stay apart.
DOMAIN = int(os.environ.get("VIDIHAND_TEST_DOMAIN", 100 + os.getpid() % 100))


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


class RosGraph:
    """An rclpy context on a domain of its own, with an executor spinning its nodes on a thread."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context was shut down while waiting
                if self.context.ok():
                    raise

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        return node

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)

    def shutdown(self) -> None:
        for node in list(self.executor.get_nodes()):
            self.executor.remove_node(node)
            node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(5)
        self.executor.shutdown()


@dataclass
class Recorded:
    """Messages one topic delivered, in arrival order."""

    messages: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, msg: Any) -> None:
        with self.lock:
            self.messages.append(msg)

    def __len__(self) -> int:
        with self.lock:
            return len(self.messages)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.messages)


class Listener(Node):
    """Subscribes to everything the hand-pose node publishes (reliable, deep queues)."""

    def __init__(self, context: Context, node_name: str = "hand_pose_node") -> None:
        super().__init__("test_listener", context=context)
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.poses, self.markers, self.diagnostics = Recorded(), Recorded(), Recorded()
        self.wrists = {"left": Recorded(), "right": Recorded()}
        self.create_subscription(HandPoses, f"/{node_name}/hand_poses", self.poses.add, reliable)
        self.create_subscription(MarkerArray, f"/{node_name}/markers", self.markers.add, reliable)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.add, reliable)
        for side, recorded in self.wrists.items():
            self.create_subscription(PoseStamped, f"/{node_name}/{side}/wrist_pose", recorded.add, reliable)
        self.joint_states = {"left": Recorded(), "right": Recorded()}
        for side, recorded in self.joint_states.items():
            topic = f"/{node_name}/{side}/robot_hand_joint_states"
            self.create_subscription(JointState, topic, recorded.add, reliable)

    def diagnostic_values(self) -> list[tuple[int, str, dict[str, str]]]:
        """(level, message, values) of every status received."""
        out = []
        for array in self.diagnostics.snapshot():
            for status in array.status:
                level = status.level if isinstance(status.level, int) else status.level[0]
                out.append((int(level), status.message, {kv.key: kv.value for kv in status.values}))
        return out
