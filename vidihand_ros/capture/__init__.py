"""Teleoperation capture: episodes recorded live, co-recorded robot topics, poses filled later."""

from vidihand_ros.capture.recorder import CaptureStateError, EpisodeSummary, Recorder, RecorderStatus
from vidihand_ros.capture.topics import CorecordedTopic, TopicSpec

__all__ = [
    "CaptureStateError",
    "CorecordedTopic",
    "EpisodeSummary",
    "Recorder",
    "RecorderStatus",
    "TopicSpec",
]
