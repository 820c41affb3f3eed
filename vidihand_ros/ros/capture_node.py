"""`capture_node`: the hand-pose node that also records teleoperation episodes into a dataset.

Everything `hand_pose_node` does (poses published live, same parameters) plus a `Recorder`
(`vidihand_ros.capture`): services start / stop / discard an episode, a pedal or joystick button
toggles it, co-recorded topics (joint states, gripper, end-effector pose, wrench) are subscribed
with the type their publishers advertise. Frames go to the recorder before the live stream, so an
estimate always finds its row; a stop commits at once, never waiting for the estimator.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from vidihand_ros.capture import CaptureStateError, Recorder, RecorderStatus
from vidihand_ros.errors import InputError
from vidihand_ros.ros.capture_settings import CorecordSetting, declare_capture
from vidihand_ros.ros.hand_pose_node import DISCOVERY_PERIOD_S, HandPoseNode, run
from vidihand_ros.ros.messages import message_class
from vidihand_ros.sources.image_messages import stamp_ns
from vidihand_ros.stream import Pair
from vidihand_ros.types import Frame

NODE_NAME = "capture_node"
#: Co-recorded samples a subscription may queue (500 Hz topics, a busy executor).
SAMPLE_DEPTH = 200
STATES = {"idle": 0, "recording": 1, "error": 2}


def latched_qos() -> QoSProfile:
    """Reliable, transient local, depth 1: a late subscriber gets the newest status at once."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


class CaptureNode(HandPoseNode):
    """`close()` stores the episode in progress first (`ended: shutdown`), then stops the stream."""

    def __init__(self, **node_kwargs: Any) -> None:
        self.recorder: Recorder | None = None
        super().__init__(NODE_NAME, **node_kwargs)
        c = self.capture
        self._status_pub = self.create_publisher(self._status_class(), c.status_topic, latched_qos())
        self._episode_services = [
            self.create_service(self._start_class(), "~/start_episode", self._on_start),
            self.create_service(self._stop_class(), "~/stop_episode", self._on_stop),
            self.create_service(Trigger, "~/discard_episode", self._on_discard),
        ]
        self._pressed = False
        if c.trigger_topic:
            kind = Bool if c.trigger_type == "bool" else Joy
            self.create_subscription(kind, c.trigger_topic, self._on_trigger, 10)
        self._pending_topics = list(c.corecord)
        self._corecord_errors: dict[str, str] = {}
        self._topic_discovery = self.create_timer(DISCOVERY_PERIOD_S, self._subscribe_corecorded)
        self._subscribe_corecorded()
        self.create_timer(c.status_period_s, self._tick)
        self._last_status: RecorderStatus | None = None
        self._publish_status()
        self.get_logger().info(f"episodes go to {c.dataset}")

    def _declare_more(self) -> None:
        self.capture = c = declare_capture(self)
        estimator = self.settings.estimator
        self.recorder = Recorder(
            c.dataset,
            [t.spec for t in c.corecord],
            estimator=None if estimator.name == "none" else {"name": estimator.name},
            pose_wait_s=c.pose_wait_s,
            writer_options={"jpeg_quality": c.jpeg_quality, "attrs": {"recorder": NODE_NAME}},
            blur_faces=c.blur_faces,
        )

    # -- interfaces (generated from this package's msg/ and srv/) ------------------------------

    @staticmethod
    def _status_class() -> Any:
        from vidihand_ros.msg import CaptureStatus

        return CaptureStatus

    @staticmethod
    def _start_class() -> Any:
        from vidihand_ros.srv import StartEpisode

        return StartEpisode

    @staticmethod
    def _stop_class() -> Any:
        from vidihand_ros.srv import StopEpisode

        return StopEpisode

    # -- co-recorded topics -------------------------------------------------------------------

    def _subscribe_corecorded(self) -> None:
        """Subscribe each co-recorded topic once its type is known (given, or advertised)."""
        waiting = []
        for setting in self._pending_topics:
            msgtype = setting.msgtype or self._advertised_type(setting)
            if msgtype is None:
                waiting.append(setting)
                continue
            try:
                kind = message_class(msgtype)
            except InputError as err:
                self._corecord_error(setting.spec.name, err.message)
                continue
            assert self.recorder is not None
            self.recorder.set_type(setting.spec.name, msgtype)
            name = setting.spec.name
            self.create_subscription(kind, setting.spec.topic, partial(self._on_sample, name), SAMPLE_DEPTH)
            self.get_logger().info(f"co-recording {setting.spec.topic} ({msgtype}) as {name}")
        self._pending_topics = waiting
        if not waiting:
            self._topic_discovery.cancel()

    def _advertised_type(self, setting: CorecordSetting) -> str | None:
        topic = self.resolve_topic_name(setting.spec.topic)
        types = sorted({info.topic_type for info in self.get_publishers_info_by_topic(topic)})
        if len(types) > 1:
            self._corecord_error(
                setting.spec.name, f"{topic} is published as {' and '.join(types)}; set type"
            )
            return None
        return types[0] if types else None

    def _on_sample(self, name: str, msg: Any) -> None:
        header = getattr(msg, "header", None)
        stamp = stamp_ns(header.stamp) if header is not None else 0
        if stamp == 0:  # no header, or an unstamped one: the time it arrived
            stamp = self.get_clock().now().nanoseconds
        assert self.recorder is not None
        try:
            self.recorder.add_sample(name, stamp, msg)
        except InputError as err:
            self._corecord_error(name, err.message)

    def _corecord_error(self, name: str, message: str) -> None:
        if self._corecord_errors.get(name) != message:
            self.get_logger().error(message)
        self._corecord_errors[name] = message

    # -- frames and estimates -----------------------------------------------------------------

    def _take(self, frame: Frame) -> None:
        if self.recorder is not None:
            status = self.recorder.status()
            recorded = self.recorder.add_frame(frame, expect_poses=self.live is not None)
            if not recorded and status.state == "recording":
                self._publish_status()  # the dataset refused the frame: the error is on the status
        super()._take(frame)

    def _publish(self, pairs: list[Pair]) -> None:
        try:
            if self.recorder is not None:
                self.recorder.on_poses(pairs)
        finally:
            super()._publish(pairs)

    # -- episodes -----------------------------------------------------------------------------

    def _begin(self, task: str) -> tuple[bool, str, int]:
        assert self.recorder is not None
        task = task or self.capture.task
        attrs = {"image_topic": self.settings.image_topic, "node": self.get_fully_qualified_name()}
        try:
            index = self.recorder.start(task, attrs)
        except (CaptureStateError, InputError) as err:
            self._publish_status()
            return False, str(err), self.recorder.status().episode_index
        self.get_logger().info(f"recording episode {index}" + (f": {task}" if task else ""))
        self._publish_status()
        return True, f"recording episode {index}", index

    def _end(self, success: bool) -> tuple[bool, str, int, int, int]:
        assert self.recorder is not None
        try:
            summary = self.recorder.stop(success)
        except (CaptureStateError, InputError) as err:
            self._publish_status()
            return False, str(err), -1, 0, 0
        self._publish_status()
        if summary.index is None:
            return True, "episode had no frames; nothing stored", -1, 0, 0
        message = (
            f"stored episode {summary.index}: {summary.frames} frames, {summary.duration_s:.1f} s, "
            f"success {str(success).lower()}, {summary.poses_missing} without poses"
        )
        self.get_logger().info(message)
        return True, message, summary.index, summary.frames, summary.poses_missing

    def _on_start(self, request: Any, response: Any) -> Any:
        response.accepted, response.message, response.episode_index = self._begin(request.task)
        return response

    def _on_stop(self, request: Any, response: Any) -> Any:
        accepted, message, index, frames, missing = self._end(bool(request.success))
        response.accepted, response.message, response.episode_index = accepted, message, index
        response.num_frames, response.poses_missing = frames, missing
        return response

    def _on_discard(self, request: Any, response: Any) -> Any:
        assert self.recorder is not None
        try:
            frames = self.recorder.discard()
            response.success, response.message = True, f"discarded {frames} frames"
        except (CaptureStateError, InputError) as err:
            response.success, response.message = False, str(err)
        self._publish_status()
        return response

    def _on_trigger(self, msg: Any) -> None:
        if isinstance(msg, Joy):
            buttons = list(msg.buttons)
            button = self.capture.trigger_button
            pressed = button < len(buttons) and bool(buttons[button])
        else:
            pressed = bool(msg.data)
        rising, self._pressed = pressed and not self._pressed, pressed
        if not rising or self.recorder is None:
            return
        if self.recorder.recording:
            self._end(self.capture.trigger_stop_success)
        else:
            self._begin("")

    # -- status -------------------------------------------------------------------------------

    def _tick(self) -> None:
        """Write rows whose wait is over; publish the status while recording or when it changed."""
        assert self.recorder is not None
        self.recorder.poll()
        status = self.recorder.status()
        if status.state == "recording" or status != self._last_status:
            self._publish_status(status)

    def _publish_status(self, status: RecorderStatus | None = None) -> None:
        assert self.recorder is not None
        status = status or self.recorder.status()
        self._last_status = status
        msg = self._status_class()()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = STATES[status.state]
        msg.episode_index = status.episode_index
        msg.num_frames = status.frames
        msg.duration_s = float(status.duration_s)
        msg.task = status.task
        msg.episodes_recorded = status.episodes_recorded
        msg.dataset = str(self.recorder.dataset)
        msg.last_error = status.last_error
        self._status_pub.publish(msg)

    def _diagnostic_statuses(self) -> list[DiagnosticStatus]:
        statuses = super()._diagnostic_statuses()
        if self.recorder is None:
            return statuses
        s = self.recorder.status()
        level, message = DiagnosticStatus.OK, str(s.state)
        if s.state == "error":
            level, message = DiagnosticStatus.ERROR, f"recording stopped: {s.last_error}"
        elif self._corecord_errors:
            level, message = DiagnosticStatus.WARN, next(iter(self._corecord_errors.values()))
        elif self._pending_topics:
            topics = ", ".join(t.spec.topic for t in self._pending_topics)
            level, message = DiagnosticStatus.WARN, f"{s.state}; waiting for a publisher on {topics}"
        values = {
            "state": s.state,
            "episode_index": str(s.episode_index),
            "frames": str(s.frames),
            "duration_s": f"{s.duration_s:.1f}",
            "episodes_recorded": str(s.episodes_recorded),
            "rows_waiting": str(s.rows_open),
            "dataset": str(self.recorder.dataset),
            **{f"samples_{n}": str(t.samples) for n, t in self.recorder.topics.items()},
        }
        statuses.append(
            DiagnosticStatus(
                level=level,
                message=message,
                name=f"{self.get_name()}: recorder",
                hardware_id=str(self.recorder.dataset),
                values=[KeyValue(key=k, value=v) for k, v in values.items()],
            )
        )
        return statuses

    # -- shutdown -----------------------------------------------------------------------------

    def close(self, timeout_s: float = 10.0) -> Any:
        if self.recorder is not None:
            summary = self.recorder.close()
            if summary is not None and summary.index is not None:
                self.get_logger().info(
                    f"stored episode {summary.index} at shutdown ({summary.frames} frames)"
                )
            self._publish_status()
        return super().close(timeout_s)


def main(argv: list[str] | None = None) -> int:
    """`ros2 run vidihand_ros capture_node [--ros-args …]`: exit 0 after a clean stop (the episode
    in progress is stored), 2 on a bad parameter (one line)."""
    return run(CaptureNode, NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())
