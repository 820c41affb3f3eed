"""hand_pose_node under real rclpy: its own cost per window, latency with MediaPipe, bounded memory.

One process, one rclpy context on its own DDS domain: a player publishes CompressedImage (+
CameraInfo) messages, the node runs as it does under `ros2 run`, a listener receives HandPoses.

- overhead: 81-frame windows (stride 81) of 640×480 JPEGs with a trivial estimator (no hands, no
  time), the node's own sections timed inside it: intake (message → Frame → LiveStream, on the
  executor thread), windowing + stitching (the LiveStream worker minus the estimator call), and
  building + publishing HandPoses, wrist poses and markers, each as CPU time of its thread.
  Target (issue #16): ≤ 2 ms a window. Floor in the same run: publishing 81 ready HandPoses.
  Reference in the same run: decoding the window's 81 JPEGs, which the node never does.
- latency: MediaPipe in the node, frames published at 30 fps; from each frame's publication to
  its HandPoses' arrival at the listener, per window/stride; with `robot_hand` set (Allegro,
  vector and DexPilot), also to the arrival of its robot-hand JointStates (retarget extra).
- memory: the process's RSS after 1 000 and 10 000 frames (trivial estimator, 320×240, 300 fps).

Run from the repository root (needs `bash scripts/ros_interfaces.sh` and the baseline extra):
    .venv/bin/python -m benchmarks.node [--windows 20] [--latency-frames 150]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial, wraps
from typing import Any

import imagecodecs
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, JointState
from vidihand_ros.msg import HandPoses

from benchmarks.common import Row, print_rows
from vidihand_ros.live import LiveStream
from vidihand_ros.ros.hand_pose_node import HandPoseNode
from vidihand_ros.testing import shared_data
from vidihand_ros.types import CameraModel

FPS = 30.0
DOMAIN = int(os.environ.get("VIDIHAND_BENCH_DOMAIN", "57"))
TRIVIAL = "benchmarks.server:trivial"
WINDOW = 81
TARGET_MS = 2.0
#: The robot hand models (Allegro with meshes), as the tests read them.
URDF_DIR = shared_data.repo_root().parent / "shared" / "data" / "robot_hands"


class Timer:
    """CPU time of the calling thread spent inside wrapped calls (any thread): wall time would
    also count the waits for the GIL while the node's other threads (and the listener) run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds += time.thread_time() - started
                    self.calls += 1

        return timed


class Player(Node):
    def __init__(self, context: Context, topic: str = "/camera/image_raw/compressed") -> None:
        super().__init__("bench_player", context=context)
        self.images = self.create_publisher(CompressedImage, topic, 100)
        self.infos = self.create_publisher(CameraInfo, "/camera/camera_info", 10)

    def publish(self, jpeg: bytes, stamp_ns: int, camera: CameraModel) -> None:
        info = CameraInfo(width=camera.width, height=camera.height, distortion_model="plumb_bob")
        info.k = camera.K.ravel().astype(np.float64)
        info.d = [0.0] * 5
        image = CompressedImage(format="jpeg", data=jpeg)
        for message in (info, image):
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
            message.header.frame_id = "camera"
        self.infos.publish(info)
        self.images.publish(image)


class Listener(Node):
    """Arrival time per stamp (kept small: no messages are stored)."""

    def __init__(self, context: Context) -> None:
        super().__init__("bench_listener", context=context)
        self.arrived: dict[int, float] = {}
        #: (stamp, side) → arrival of that hand's robot-hand JointState.
        self.joints_arrived: dict[tuple[int, str], float] = {}
        self.count = 0
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(HandPoses, "/hand_pose_node/hand_poses", self._on_poses, qos)
        for side in ("left", "right"):
            topic = f"/hand_pose_node/{side}/robot_hand_joint_states"
            self.create_subscription(JointState, topic, partial(self._on_joints, side), qos)

    def _on_poses(self, msg: HandPoses) -> None:
        self.count += 1
        if len(self.arrived) < 100_000:
            self.arrived[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = time.monotonic()

    def _on_joints(self, side: str, msg: JointState) -> None:
        if len(self.joints_arrived) < 100_000:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.joints_arrived[(stamp, side)] = time.monotonic()


@contextmanager
def graph(**parameters: Any) -> Iterator[tuple[HandPoseNode, Player, Listener]]:
    """The node, a player and a listener spinning on one executor thread, connected."""
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN)
    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    node = HandPoseNode(context=context, parameter_overrides=overrides)
    player, listener = Player(context), Listener(context)
    executor = SingleThreadedExecutor(context=context)
    for each in (node, player, listener):
        executor.add_node(each)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not (
            node.live is not None
            and node._image_type is not None
            and player.images.get_subscription_count() > 0
            and node._poses_pub.get_subscription_count() > 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the node, player and listener did not connect")
            time.sleep(0.05)
        yield node, player, listener
    finally:
        node.close()
        stop.set()
        thread.join(5)
        for each in (node, player, listener):
            executor.remove_node(each)
            each.destroy_node()
        executor.shutdown()
        context.try_shutdown()


def reached(listener: Listener, count: int) -> bool:
    return listener.count >= count


def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.002)


def jpegs(width: int, height: int, count: int) -> list[bytes]:
    from benchmarks.baseline import hand_frames

    rgbs = hand_frames(count)
    if (width, height) != (rgbs[0].shape[1], rgbs[0].shape[0]):
        import cv2

        rgbs = [cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA) for rgb in rgbs]
    return [bytes(imagecodecs.jpeg8_encode(rgb, level=90)) for rgb in rgbs]


def camera(width: int, height: int) -> CameraModel:
    focal = 520.0 * width / 640
    return CameraModel.from_fxfycxcy(
        focal, focal, (width - 1) / 2, (height - 1) / 2, width=width, height=height
    )


# ----------------------------------------------------------------------------------------------


def overhead_rows(windows: int) -> list[Row]:
    """The node's callbacks driven directly (what DDS delivers is the middleware's cost): 81 real
    CompressedImage messages into `_on_image`, the LiveStream worker, the publishers."""
    frames = jpegs(640, 480, 16)
    cam = camera(640, 480)
    intake, worker, publish, estimator_timer = Timer(), Timer(), Timer(), Timer()
    with graph(estimator=TRIVIAL, window=WINDOW, stride=WINDOW, max_queued_windows=64) as (
        node,
        _,
        _listener,
    ):
        node._fallback_camera = cam  # as if its CameraInfo had arrived
        on_image = intake.wrap(node._on_image)
        node._publish = publish.wrap(node._publish)  # type: ignore[method-assign]
        assert node.live is not None and node._estimator is not None
        node.live._deliver = node._publish  # the LiveStream holds the method it was given
        node.live._step = worker.wrap(node.live._step)  # type: ignore[method-assign]
        inner: Any = node._estimator
        inner.estimator.estimate = estimator_timer.wrap(inner.estimator.estimate)
        start = 1_700_000_000_000_000_000
        messages = [
            image_message(frames[i % len(frames)], start + round(i * 1e9 / FPS)) for i in range(WINDOW)
        ]
        total = windows * WINDOW
        for w in range(windows):
            for i, message in enumerate(messages):
                message.header.stamp.sec, message.header.stamp.nanosec = divmod(
                    start + round((w * WINDOW + i) * 1e9 / FPS), 1_000_000_000
                )
                on_image(message)
            wait_for(partial(delivered_at_least, node, (w + 1) * WINDOW), 30)
        delivered = node.live.stats().delivered
        floor = publish_floor(node)
    worker_s = max(
        0.0, worker.seconds - estimator_timer.seconds - publish.seconds
    )  # publish runs inside _step
    per_window = {
        "intake": intake.seconds / windows,
        "windows": worker_s / windows,
        "publish": publish.seconds / windows,
    }
    total_ms = 1000 * sum(per_window.values())
    decode = decode_ms(frames, WINDOW)

    def row(name: str, seconds: float, note: str = "") -> Row:
        return Row(name, f"{1000 * seconds:.2f}", "ms/window", note)

    return [
        row(
            "intake: message → Frame → LiveStream", per_window["intake"], f"{delivered} of {total} frames out"
        ),
        row("windowing + stitching (estimator excluded)", per_window["windows"]),
        row("HandPoses + wrist poses + markers: build, publish", per_window["publish"]),
        Row(
            "node total",
            f"{total_ms:.2f}",
            "ms/window",
            f"target ≤ {TARGET_MS:g} ms: {'met' if total_ms <= TARGET_MS else 'NOT met'}; "
            f"{total_ms / floor:.1f}× the rclpy floor below",
        ),
        Row(
            "floor: rclpy publishing 81 ready HandPoses",
            f"{floor:.2f}",
            "ms/window",
            "same run, same subscriber",
        ),
        Row(
            "reference: decoding the 81 JPEGs (never done)",
            f"{decode:.2f}",
            "ms/window",
            "imagecodecs, one thread",
        ),
    ]


def delivered_at_least(node: HandPoseNode, count: int) -> bool:
    return node.live is not None and node.live.stats().delivered >= count


def image_message(jpeg: bytes, stamp_ns: int) -> CompressedImage:
    message = CompressedImage(format="jpeg", data=jpeg)
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.header.frame_id = "camera"
    return message


def publish_floor(node: HandPoseNode) -> float:
    """ms to publish 81 prebuilt HandPoses (no hands, as the trivial estimator gives): what any
    rclpy node pays per window whatever it does (best of 3)."""
    from vidihand_ros.ros.messages import hand_poses_message
    from vidihand_ros.types import FramePoses

    ready = [hand_poses_message(FramePoses(1_000_000_000 + i, "camera")) for i in range(WINDOW)]
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        for message in ready:
            node._poses_pub.publish(message)
        best = min(best, time.thread_time() - started)
    return 1000 * best


def decode_ms(frames: list[bytes], count: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(count):
            imagecodecs.jpeg8_decode(frames[i % len(frames)])
        best = min(best, time.perf_counter() - started)
    return 1000 * best


def latency_rows(frames_per_run: int, robot_hand: bool) -> list[Row]:
    frames = jpegs(640, 480, 16)
    cam = camera(640, 480)
    rows = []
    causal: dict[str, Any] = {"window": 1, "stride": 1, "estimator_options": ["smoothing=causal"]}
    configs: list[tuple[str, dict[str, Any]]] = [
        ("MediaPipe, window 32 / stride 16 (default)", {}),
        ("MediaPipe, window 8 / stride 4", {"window": 8, "stride": 4}),
        ("MediaPipe, window 1 / stride 1, causal", causal),
    ]
    if robot_hand:
        hands = {"robot_hand": "allegro", "robot_hand_urdf_dir": str(URDF_DIR)}
        configs += [
            ("  + robot hand (Allegro, vector)", {**causal, **hands}),
            ("  + robot hand (Allegro, DexPilot)", {**causal, **hands, "robot_hand_mode": "dexpilot"}),
        ]
    for name, extra in configs:
        with graph(estimator="mediapipe", max_queued_windows=64, **extra) as (node, player, listener):
            sent: dict[int, float] = {}
            start = 1_700_000_000_000_000_000
            began = time.monotonic()
            for i in range(frames_per_run):
                time.sleep(max(0.0, began + i / FPS - time.monotonic()))
                stamp = start + round(i * 1e9 / FPS)
                sent[stamp] = time.monotonic()
                player.publish(frames[i % len(frames)], stamp, cam)
            node.close()  # the tail: published on close (not counted below: it has no later frames)
            wait_for(lambda: listener.count >= frames_per_run, 60)
            assert node.live is not None
            stats = node.live.stats()
        measured = sorted(listener.arrived[s] - t for s, t in sent.items() if s in listener.arrived)
        note = f"{len(measured)}/{frames_per_run} frames, {stats.dropped_frames} dropped"
        rows.append(latency_row(f"{name}: HandPoses" if "robot_hand" in extra else name, measured, note))
        if "robot_hand" in extra:
            joints = sorted(t - sent[s] for (s, _), t in listener.joints_arrived.items() if s in sent)
            rows.append(latency_row(f"{name}: JointState", joints, f"{len(joints)} hand-frames retargeted"))
    return rows


def latency_row(name: str, measured: list[float], note: str) -> Row:
    """Median latency (ms) of the steady part: the last 32 (published on close) left out."""
    if not measured:
        return Row(name, "n/a", "ms median", f"none received; {note}")
    steady = measured[: max(1, len(measured) - 32)] if len(measured) > 64 else measured
    median = statistics.median(steady) * 1000
    p95 = steady[int(0.95 * (len(steady) - 1))] * 1000
    return Row(
        name, f"{median:.0f}", "ms median", f"p95 {p95:.0f} ms, max {max(steady) * 1000:.0f} ms; {note}"
    )


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_rows() -> list[Row]:
    frames = jpegs(320, 240, 16)
    cam = camera(320, 240)
    marks: dict[int, float] = {}
    with graph(estimator=TRIVIAL, max_queued_windows=8) as (node, player, listener):
        start = 1_700_000_000_000_000_000
        began = time.monotonic()
        for i in range(10_000):
            time.sleep(max(0.0, began + i / 300 - time.monotonic()))
            player.publish(frames[i % len(frames)], start + round(i * 1e9 / FPS), cam)
            if i + 1 in (1_000, 10_000):
                wait_for(partial(reached, listener, i + 1 - 2 * WINDOW), 30)
                marks[i + 1] = rss_mb()
        assert isinstance(node.live, LiveStream)
        stats = node.live.stats()
    growth = marks[10_000] - marks[1_000]
    note = f"{stats.received} received, {stats.dropped_frames} dropped"
    return [
        Row("RSS after 1 000 frames", f"{marks[1_000]:.0f}", "MB", note),
        Row("RSS after 10 000 frames", f"{marks[10_000]:.0f}", "MB", f"{growth:+.1f} MB over 9 000 frames"),
    ]


def print_table(rows: list[Row]) -> None:
    print(f"hand_pose_node under real rclpy (Fast DDS), one process, {os.cpu_count()} CPUs")
    print()
    print_rows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=20, help="81-frame windows for the overhead rows")
    parser.add_argument("--latency-frames", type=int, default=150, help="frames per latency row")
    parser.add_argument("--skip-latency", action="store_true", help="no MediaPipe rows")
    parser.add_argument("--skip-robot-hand", action="store_true", help="no robot-hand (retarget) rows")
    args = parser.parse_args()
    rows = overhead_rows(args.windows)
    if not args.skip_latency:
        robot_hand = not args.skip_robot_hand and importlib.util.find_spec("dex_retargeting") is not None
        rows += latency_rows(args.latency_frames, robot_hand)
    rows += memory_rows()
    print_table(rows)


if __name__ == "__main__":
    main()
