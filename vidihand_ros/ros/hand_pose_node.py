"""`hand_pose_node`: camera topic in, per-frame hand poses, wrist poses, markers and diagnostics out.

The executor thread only converts messages (`ros.messages`, the bag code) and hands frames to
the core's `LiveStream`, which never blocks; windowing, the estimator and stitching run on its
worker, which publishes each frame's poses the moment its estimate is back, stamped with the
source frame's stamp and frame_id. With `robot_hand` set, the same worker retargets each frame's
hands to that robot hand (`retarget.live`) and publishes the angles as a JointState per hand,
after the frame's HandPoses, so retargeting never delays the poses. Parameters: `ros.settings`;
topics and latency: README.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.exceptions import InvalidTopicNameException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from visualization_msgs.msg import MarkerArray

from vidihand_ros.calibration import load_calibration_yaml
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.asynchronous import ThreadedSubmit, as_async
from vidihand_ros.estimators.base import AnyPoseEstimator, AsyncPoseEstimator
from vidihand_ros.estimators.remote import ServerUnreachable
from vidihand_ros.imaging import CorruptImageError, SizeLimits
from vidihand_ros.live import LiveStats, LiveStream
from vidihand_ros.native_stderr import native_stderr_filtered
from vidihand_ros.ros import messages, settings
from vidihand_ros.ros.diagnostics import diagnostic_status
from vidihand_ros.sources.camera_info import camera_info_to_model
from vidihand_ros.sources.image_messages import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    MessageRef,
    message_to_frame,
    stamp_ns,
)
from vidihand_ros.stream import Pair, PoseStream

if TYPE_CHECKING:
    from vidihand_ros.retarget.live import LiveRobotHands
from vidihand_ros.types import CameraModel, Frame, FramePoses

log = logging.getLogger(__name__)

NODE_NAME = "hand_pose_node"
IMAGE_CLASSES = {IMAGE_TYPE: Image, COMPRESSED_IMAGE_TYPE: CompressedImage}
#: How often the node looks for the image topic's publishers when image_type is auto (s).
DISCOVERY_PERIOD_S = 0.2
#: How often the node tries an inference server that is not up yet (s).
CONNECT_PERIOD_S = 1.0
#: How long a stopping node waits for reliable subscribers to acknowledge its last messages (s).
ACK_TIMEOUT_S = 2.0
#: History depth of the per-frame outputs: a window's frames are published together, and a
#: reliable subscriber must get all of them (up to a 81-frame window, with room to spare).
OUTPUT_DEPTH = 100


def sensor_qos(depth: int) -> QoSProfile:
    """Best effort, keep last: a camera's frames are worth nothing late (REP 2003 sensor data)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)


class HandPoseNode(Node):
    """The node; `close()` finishes the windows in flight (publishing them) before it is destroyed."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.settings = settings.declare(self)
        self._declare_more()
        s = self.settings
        self._fallback_camera = self._load_intrinsics()
        self._camera: CameraModel | None = None
        self._received = 0
        self._skipped = 0  # frames that did not decode or had no intrinsics: never estimated
        self._last_input_error: str | None = None
        self._image_type: str | None = None
        self._estimator: AsyncPoseEstimator | None = None
        self.live: LiveStream | None = None
        self._not_ready: str | None = None  # why there is no estimator yet (a server not up)
        self._closing = threading.Event()
        self._lifecycle = threading.Lock()  # starting the stream (connect thread) vs closing
        hand_poses = messages.message_classes()[messages.HAND_POSES]
        self._poses_pub = self._publisher(hand_poses, s.poses_topic, "poses_topic", OUTPUT_DEPTH)
        prefix = s.wrist_topic_prefix.rstrip("/")
        self._wrist_pubs = {
            side: self._publisher(
                PoseStamped, f"{prefix}/{side}/wrist_pose", "wrist_topic_prefix", OUTPUT_DEPTH
            )
            for side in ("left", "right")
        }
        self._markers_pub = (
            self._publisher(MarkerArray, s.markers_topic, "markers_topic", 10) if s.markers_topic else None
        )
        self._robot_hands = self._build_robot_hands()
        self._joint_pubs = {
            side: self._publisher(
                JointState, f"{prefix}/{side}/robot_hand_joint_states", "wrist_topic_prefix", OUTPUT_DEPTH
            )
            for side in (self._robot_hands.sides if self._robot_hands else ())
        }
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if s.camera_info_topic:
            self.create_subscription(CameraInfo, s.camera_info_topic, self._on_camera_info, sensor_qos(5))
        self._discovery = self.create_timer(DISCOVERY_PERIOD_S, self._subscribe_images)
        self._subscribe_images()
        self._last_report = (time.monotonic(), LiveStats())
        self.create_timer(s.diagnostics_period_s, self._publish_diagnostics)
        try:
            self._start(s.estimator.build())  # any mistake in the settings stops the node here
        except ServerUnreachable as err:
            self._not_ready = err.message
            self.get_logger().warning(f"{err.message}; trying again every {CONNECT_PERIOD_S:g} s")
            threading.Thread(target=self._connect, name="vidihand-connect", daemon=True).start()

    # -- set-up -------------------------------------------------------------------------------

    def _declare_more(self) -> None:
        """A subclass's own parameters, read before anything starts (a mistake stops it here)."""

    def _load_intrinsics(self) -> CameraModel | None:
        s = self.settings
        if not s.intrinsics_file:
            if not s.camera_info_topic:
                raise InputError(
                    "no intrinsics: set camera_info_topic or intrinsics_file", field="intrinsics_file"
                )
            return None
        return load_calibration_yaml(Path(s.intrinsics_file))

    def _build_robot_hands(self) -> LiveRobotHands | None:
        """The live retargeting the robot_hand parameters ask for (None without robot_hand)."""
        wanted = self.settings.robot_hand
        if wanted is None:
            return None
        from vidihand_ros.retarget.live import LiveRobotHands
        from vidihand_ros.retarget.robots import find_setups

        setups = find_setups(
            wanted.robot,
            wanted.sides,
            wanted.mode,
            urdf_dir=Path(wanted.urdf_dir) if wanted.urdf_dir else None,
            config_file=Path(wanted.config) if wanted.config else None,
            low_pass_alpha=wanted.low_pass_alpha,
        )
        hands = LiveRobotHands(
            setups, min_presence=wanted.min_presence, segment_gap_s=self.settings.segment_gap_s
        )
        self.get_logger().info(
            f"retargeting the {' and '.join(wanted.sides)} hand to {wanted.robot} ({wanted.mode})"
        )
        return hands

    def _publisher(self, kind: Any, topic: str, parameter: str, depth: int) -> Publisher:
        try:
            return self.create_publisher(kind, topic, depth)
        except InvalidTopicNameException as err:
            raise InputError(f"parameter {parameter}: {topic!r} is not a valid topic name ({err})") from None

    def _start(self, estimator: AnyPoseEstimator | None) -> None:
        """One estimator for the node's life (a synchronous one on one worker thread), then the
        stream; frames are taken from now on. A window/stride the estimator cannot take is an
        InputError (the estimator is closed)."""
        with self._lifecycle:
            if self._closing.is_set():  # the node stopped while a server was being reached
                if estimator is not None:
                    estimator.close()
                return
            self._estimator = None if estimator is None else as_async(estimator, threaded=True)
            try:
                live = LiveStream(
                    self._make_stream,
                    self._publish,
                    max_queued_windows=self.settings.max_queued_windows,
                    idle_s=self.settings.idle_flush_s,
                )
            except InputError:
                if self._estimator is not None:
                    self._estimator.close()
                self._estimator = None
                raise
            self._not_ready = None
            self.live = live
        self.get_logger().info(
            f"estimator {self.settings.estimator.name}, window {live.window}, stride {live.stride}, "
            f"images from {self.settings.image_topic}"
        )

    def _connect(self) -> None:
        """Wait for an inference server that was not up when the node started (off the executor)."""
        while not self._closing.wait(CONNECT_PERIOD_S):
            try:
                estimator = self.settings.estimator.build()
            except InputError as err:
                if err.message != self._not_ready and not isinstance(err, ServerUnreachable):
                    self.get_logger().error(err.message)
                self._not_ready = err.message
                continue
            try:
                self._start(estimator)
            except InputError as err:  # the server is up but does not fit the settings
                self._not_ready = err.message
                self.get_logger().error(f"{err.message}; not trying again")
            return

    def _make_stream(self, on_result: Any) -> PoseStream:
        s = self.settings
        return PoseStream(
            self._estimator,
            window=s.window,
            stride=s.stride,
            segment_gap_s=s.segment_gap_s,
            max_in_flight=s.max_in_flight or self._estimator_max_in_flight(),
            timeout_s=s.estimate_timeout_s,
            on_result=on_result,
        )

    def _estimator_max_in_flight(self) -> int:
        """What the estimator allows on the wire (a remote client says; a worker thread: 1)."""
        allowed = getattr(self._estimator, "max_in_flight", 1)
        return allowed if isinstance(allowed, int) else 1

    def _subscribe_images(self) -> None:
        """Subscribe once the image topic's type is known (auto: from its publishers)."""
        msgtype = self._resolve_image_type()
        if msgtype is None:
            return
        self._discovery.cancel()
        if self._image_type is not None:
            return
        self._image_type = msgtype
        depth = self.settings.input_queue_depth
        self.create_subscription(
            IMAGE_CLASSES[msgtype], self.settings.image_topic, self._on_image, sensor_qos(depth)
        )
        self.get_logger().info(f"subscribed to {self.settings.image_topic} ({msgtype})")

    def _resolve_image_type(self) -> str | None:
        chosen = self.settings.image_type
        if chosen != "auto":
            return COMPRESSED_IMAGE_TYPE if chosen == "compressed" else IMAGE_TYPE
        topic = self.resolve_topic_name(self.settings.image_topic)
        advertised = {info.topic_type for info in self.get_publishers_info_by_topic(topic)}
        images = sorted(advertised & set(IMAGE_CLASSES))
        if len(images) > 1 and self._last_input_error is None:
            self._last_input_error = f"{topic} is published as both {images[0]} and {images[1]}"
            self.get_logger().error(f"{self._last_input_error}; set image_type")
        elif advertised and not images and self._last_input_error is None:
            self._last_input_error = f"{topic} carries {', '.join(sorted(advertised))}, not images"
            self.get_logger().error(self._last_input_error)
        return images[0] if len(images) == 1 else None

    # -- input (executor thread) --------------------------------------------------------------

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = camera_info_to_model(msg) or self._camera
        except InputError as err:
            self._input_error(f"{self.settings.camera_info_topic}: {err.message}")

    def _on_image(self, msg: Any) -> None:
        index = self._received
        self._received += 1
        camera = self._camera or self._fallback_camera
        if camera is None:
            self._skipped += 1
            self._input_error(f"no CameraInfo on {self.settings.camera_info_topic} yet; frame not estimated")
            return
        ref = MessageRef(source="ros", topic=self.settings.image_topic, index=index)
        limits = SizeLimits(self.settings.max_pixels, (camera.width, camera.height) if camera.width else None)
        assert self._image_type is not None
        try:
            frame = message_to_frame(msg, self._image_type, stamp_ns(msg.header.stamp), camera, ref, limits)
        except (InputError, CorruptImageError) as err:
            self._skipped += 1
            self._input_error(str(err))
            return
        self._take(frame)

    def _take(self, frame: Frame) -> None:
        """A converted frame: to the live stream (skipped while there is no estimator yet)."""
        live = self.live
        if live is None:
            self._skipped += 1
            return
        live.offer(frame)

    def _input_error(self, message: str) -> None:
        if message != self._last_input_error:  # once per kind of problem, not once per frame
            self.get_logger().warning(message)
        self._last_input_error = message

    # -- output (LiveStream's worker thread) --------------------------------------------------

    def _publish(self, pairs: list[Pair]) -> None:
        """HandPoses and wrist poses for every frame; markers for the newest one (a window's
        frames arrive together: RViz would show only the last anyway)."""
        message, failed = None, None
        published: list[tuple[FramePoses, Any]] = []  # (poses, the header they went out with)
        for frame, poses in pairs:
            try:  # one frame that cannot be published must not take the rest of the batch along
                given = poses or FramePoses(frame.stamp_ns, frame.frame_id)
                message = messages.hand_poses_message(given)
                self._poses_pub.publish(message)
                published.append((given, message.header))
                for side, wrist in messages.wrist_poses(message).items():
                    self._wrist_pubs[side].publish(wrist)
            except Exception as err:
                failed = failed or err
        if self._markers_pub is not None and message is not None:
            self._markers_pub.publish(messages.hand_markers(message))
        if self._robot_hands is not None:
            failed = failed or self._publish_joint_states(self._robot_hands, published)
        if failed is not None:
            raise failed  # LiveStream counts it (diagnostics: ERROR)

    def _publish_joint_states(
        self, robot_hands: LiveRobotHands, published: list[tuple[FramePoses, Any]]
    ) -> Exception | None:
        """Each frame's robot-hand angles, in order (the retargeting carries state frame to frame),
        stamped like the frame's HandPoses."""
        failed = None
        for poses, header in published:
            try:
                for side, positions in robot_hands.update(poses).items():
                    names = robot_hands.joint_names(side)
                    self._joint_pubs[side].publish(messages.joint_state(header, names, positions))
            except Exception as err:
                failed = failed or err
        return failed

    def _output_publishers(self) -> list[Publisher]:
        optional = [self._markers_pub] if self._markers_pub is not None else []
        return [self._poses_pub, *self._wrist_pubs.values(), *optional, *self._joint_pubs.values()]

    # -- diagnostics (executor thread) --------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray(status=self._diagnostic_statuses())
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def _diagnostic_statuses(self) -> list[DiagnosticStatus]:
        now, stats = time.monotonic(), self.live.stats() if self.live else LiveStats()
        before_at, before = self._last_report
        self._last_report = (now, stats)
        status = diagnostic_status(
            stats,
            before,
            now - before_at,
            skipped=self._skipped,
            estimator=self.settings.estimator.name,
            waiting_for=None if self._image_type else f"a publisher on {self.settings.image_topic}",
            input_problem=self._last_input_error,
            not_ready=self._not_ready,
        )
        status.name = f"{self.get_name()}: hand poses"
        return [status]

    # -- shutdown -----------------------------------------------------------------------------

    def close(self, timeout_s: float = 10.0) -> LiveStats:
        """Finish (publish) the windows queued and in flight within `timeout_s`, then stop (once;
        a second call returns the same statistics)."""
        with self._lifecycle:
            if self._closing.is_set():
                return self.live.stats() if self.live else LiveStats()
            self._closing.set()
        stats = self.live.close(timeout_s) if self.live else LiveStats()
        if self.live is not None and not self.live.finished and isinstance(self._estimator, ThreadedSubmit):
            self._estimator.shutdown(wait=False)  # a stuck estimate: its thread is left to finish
        elif self._estimator is not None:
            self._estimator.close()
        deadline = time.monotonic() + ACK_TIMEOUT_S  # one budget for all: the last poses reach
        for publisher in self._output_publishers():  # reliable subscribers
            left = max(0.0, deadline - time.monotonic())
            publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9)))
        self.get_logger().info(
            f"stopped: {stats.received} frames in, {stats.delivered} published, "
            f"{stats.dropped_frames} dropped ({stats.dropped_windows} windows), {self._skipped} skipped"
        )
        return stats


def spin_until_shutdown(node: Node, stop: threading.Event, context: Context | None = None) -> None:
    """Spin until `stop` is set (by SIGINT/SIGTERM) or the context is shut down."""
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        while rclpy.ok(context=context) and not stop.is_set():
            executor.spin_once(timeout_sec=0.1)  # returns to Python often, so `stop` is seen
    except ExternalShutdownException:
        pass
    finally:
        executor.remove_node(node)
        executor.shutdown()


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set `stop` instead of raising, which could land inside rclpy's
    conversion of a message (where it becomes an unrelated RuntimeError)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    """`ros2 run vidihand_ros hand_pose_node [--ros-args …]`: exit 0 after a clean stop, 2 on a
    bad parameter or input (one line)."""
    return run(HandPoseNode, NODE_NAME, argv)


def run(make_node: Callable[[], HandPoseNode], name: str, argv: list[str] | None = None) -> int:
    """Run a node of this package until SIGINT/SIGTERM: exit 0 after a clean stop (`close`), 2 on a
    bad parameter or input (one line `name: error: …`)."""
    args = sys.argv if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # Our own SIGINT/SIGTERM handling keeps the context alive, so the windows in flight can still
    # be published after the signal (rclpy's handler would shut the context down first).
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    _stop_on_signals(stop)
    node: HandPoseNode | None = None
    try:
        with native_stderr_filtered():
            try:
                node = make_node()
            except InputError as err:
                print(f"{name}: error: {err}", file=sys.stderr)
                return 2
            spin_until_shutdown(node, stop)
        return 0
    finally:
        try:
            if node is not None:
                try:
                    node.close()
                finally:
                    node.destroy_node()
        finally:
            rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
