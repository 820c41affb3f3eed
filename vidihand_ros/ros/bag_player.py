"""Play a ROS 2 bag's messages on their topics with rclpy alone (rosbag2 is not on PyPI).

`rosbags` reads the bag (sqlite3 or mcap); each message's CDR bytes are deserialised by rclpy
into its generated class, so what subscribers get is what `ros2 bag play` would send. For a venv
with the rclpy wheels (scripts/ros_interfaces.sh) and no ROS install:

    python -m vidihand_ros.ros.bag_player examples/hands_demo [--rate 1.0] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader, AnyReaderError

from vidihand_ros.errors import InputError
from vidihand_ros.ros.messages import message_class


class BagPlayer(Node):
    """Publishes a bag's messages (all topics, or `topics`) in recorded order at `rate` × its pace."""

    def __init__(
        self, bag: Path, *, rate: float = 1.0, topics: set[str] | None = None, context: Context | None = None
    ) -> None:
        super().__init__("vidihand_bag_player", context=context)
        self.rate = rate
        self.messages: list[tuple[int, str, bytes]] = []
        try:
            with AnyReader([bag]) as reader:
                if reader.is2 is False:
                    raise InputError("a ROS 1 bag: only ROS 2 bags (sqlite3, mcap) are played", source=bag)
                chosen = [c for c in reader.connections if topics is None or c.topic in topics]
                self.types = {c.topic: message_class(c.msgtype) for c in chosen}
                for connection, timestamp, raw in reader.messages(connections=chosen):
                    self.messages.append((timestamp, connection.topic, bytes(raw)))
        except AnyReaderError as err:
            raise InputError(f"cannot read the bag: {err}", source=bag) from None
        self.publishers_by_topic = {
            topic: self.create_publisher(cls, topic, 100) for topic, cls in self.types.items()
        }

    def messages_on(self, topic: str) -> list[Any]:
        """The bag's messages on `topic`, deserialised (what `play` publishes)."""
        return [deserialize_message(raw, self.types[t]) for _, t, raw in self.messages if t == topic]

    def subscribed(self, topic: str) -> bool:
        """Whether some subscriber of `topic` is matched."""
        return self.publishers_by_topic[topic].get_subscription_count() > 0

    def play(self, *, stop: threading.Event | None = None) -> int:
        """Publish every message at the bag's pace (`rate` 0: at once); returns how many."""
        started = time.monotonic()
        first = self.messages[0][0] if self.messages else 0
        count = 0
        for timestamp, topic, raw in self.messages:
            if stop is not None and stop.is_set():
                break
            if self.rate > 0:
                time.sleep(max(0.0, started + (timestamp - first) / 1e9 / self.rate - time.monotonic()))
            self.publishers_by_topic[topic].publish(deserialize_message(raw, self.types[topic]))
            count += 1
        return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bag", type=Path)
    parser.add_argument("--rate", type=float, default=1.0, help="playback rate (0: as fast as possible)")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds between advertising and playing")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=[sys.argv[0], *ros_args])
    try:
        try:
            player = BagPlayer(args.bag, rate=args.rate)
        except InputError as err:
            print(f"bag_player: error: {err}", file=sys.stderr)
            return 2
        time.sleep(args.delay)  # subscribers discover the topics first
        count = player.play()
        time.sleep(0.5)  # the last messages reach reliable subscribers before the node goes
        print(f"bag_player: {count} messages from {args.bag}", file=sys.stderr)
        player.destroy_node()
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
