"""Draw what hand_pose_node publishes over the frame it came from (docs/node_markers.png).

Runs the real node (MediaPipe, in this process) on the example recording under real rclpy, plays
the recording with `vidihand_ros.ros.bag_player`, takes the `~/markers` MarkerArray of a frame
with both hands, projects its joints and bones (camera frame, metres) through the bag's CameraInfo
and draws them, in the markers' own colours, on that frame. Needs `bash scripts/ros_interfaces.sh`:

    .venv/bin/python examples/node_picture.py [examples/hands_demo] [-o docs/node_markers.png]
"""

from __future__ import annotations

import argparse
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from visualization_msgs.msg import Marker, MarkerArray

from vidihand_ros.imaging import decode_rgb
from vidihand_ros.ros.bag_player import BagPlayer
from vidihand_ros.ros.hand_pose_node import HandPoseNode
from vidihand_ros.sources.image_messages import stamp_ns

ROOT = Path(__file__).resolve().parent.parent
IMAGE_TOPIC, INFO_TOPIC = "/camera/image_raw/compressed", "/camera/camera_info"
SCALE = 2  # the example's frames are 320×240: drawn at twice their size


class MarkerLog(Node):
    def __init__(self, context: Context) -> None:
        super().__init__("marker_log", context=context)
        self.arrays: list[Any] = []
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(MarkerArray, "/hand_pose_node/markers", self.arrays.append, qos)


def run_node(bag: Path) -> tuple[list[Any], BagPlayer]:
    """Every MarkerArray the node published for the recording, and the player (its messages)."""
    context = Context()
    rclpy.init(context=context, domain_id=77)
    overrides = [
        Parameter("estimator", value="mediapipe"),
        Parameter("window", value=8),
        Parameter("stride", value=4),
    ]
    node = HandPoseNode(context=context, parameter_overrides=overrides)
    player, log = BagPlayer(bag, context=context), MarkerLog(context)
    executor = SingleThreadedExecutor(context=context)
    for each in (node, player, log):
        executor.add_node(each)

    def spin() -> None:
        with suppress(ExternalShutdownException):
            while context.ok():
                executor.spin_once(timeout_sec=0.05)

    spinning = threading.Thread(target=spin)
    spinning.start()
    while not (node._image_type and player.subscribed(IMAGE_TOPIC) and player.subscribed(INFO_TOPIC)):
        time.sleep(0.05)
    time.sleep(0.5)  # discovery settles on both sides
    player.play()
    time.sleep(1.0)
    node.close()
    time.sleep(0.5)
    context.try_shutdown()
    spinning.join()
    return log.arrays, player


def draw(image: np.ndarray, markers: list[Marker], K: np.ndarray) -> np.ndarray:
    out = image.copy()
    for marker in markers:
        if marker.action != Marker.ADD:
            continue
        points = np.array([(p.x, p.y, p.z) for p in marker.points])
        uv = (points @ K.T)[:, :2] / points[:, 2:3]
        colour = tuple(int(255 * c) for c in (marker.color.r, marker.color.g, marker.color.b))
        if marker.type == Marker.LINE_LIST:
            for a, b in zip(uv[0::2], uv[1::2], strict=True):
                cv2.line(out, tuple(map(round, a)), tuple(map(round, b)), colour, 2, cv2.LINE_AA)
        else:
            for u, v in uv:
                cv2.circle(out, (round(u), round(v)), 4, colour, -1, cv2.LINE_AA)
    for row, (text, side) in enumerate((("left hand", 0), ("right hand", 2))):
        c = markers[side].color
        colour = (int(255 * c.r), int(255 * c.g), int(255 * c.b))
        cv2.putText(out, text, (12, 30 + 28 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("bag", nargs="?", type=Path, default=ROOT / "examples" / "hands_demo")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "node_markers.png")
    args = parser.parse_args()
    arrays, player = run_node(args.bag)
    both = [a for a in arrays if sum(m.action == Marker.ADD for m in a.markers) == 4]
    if not both:
        raise SystemExit("no published frame has both hands")
    chosen = both[len(both) // 2]
    stamp = stamp_ns(chosen.markers[0].header.stamp)
    image = next(m for m in player.messages_on(IMAGE_TOPIC) if stamp_ns(m.header.stamp) == stamp)
    info = next(iter(player.messages_on(INFO_TOPIC)))
    rgb = decode_rgb(bytes(image.data), "jpeg")
    size = (SCALE * rgb.shape[1], SCALE * rgb.shape[0])
    rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
    K = np.diag([SCALE, SCALE, 1.0]) @ np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    picture = draw(rgb, list(chosen.markers), K)
    cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    print(
        f"{args.out}: the markers of frame {stamp} ns "
        f"({len(both)} of {len(arrays)} marker arrays had both hands)"
    )


if __name__ == "__main__":
    main()
