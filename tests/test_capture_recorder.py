"""The capture recorder (core, no ROS): frames at once, poses when they come, co-recorded topics.

Real zarr datasets; the co-recorded messages are rosbags' own generated dataclasses (the same
`numeric_fields` path rclpy's classes take, tested in test_corecord.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from rosbags.typesys import Stores, get_typestore

from tests.fsfaults import faulty_folder
from tests.test_dataset import STEP, T0, decoded, hand, jpeg_frame
from vidihand_ros.capture import CaptureStateError, Recorder, TopicSpec
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.types import FramePoses

TYPES = get_typestore(Stores.ROS2_JAZZY).types
JointState = TYPES["sensor_msgs/msg/JointState"]
Header = TYPES["std_msgs/msg/Header"]
Time = TYPES["builtin_interfaces/msg/Time"]
PoseStamped = TYPES["geometry_msgs/msg/PoseStamped"]
Pose = TYPES["geometry_msgs/msg/Pose"]
Point = TYPES["geometry_msgs/msg/Point"]
Quaternion = TYPES["geometry_msgs/msg/Quaternion"]


class Clock:
    """Monotonic time the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def joint_state(stamp_ns: int, position: list[float]) -> object:
    stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    n = len(position)
    return JointState(
        header=Header(stamp=stamp, frame_id=""),
        name=[f"j{i}" for i in range(n)],
        position=np.array(position, dtype=np.float64),
        velocity=np.zeros(n),
        effort=np.array([], dtype=np.float64),
    )


def eef_pose(x: float) -> object:
    return PoseStamped(
        header=Header(stamp=Time(sec=0, nanosec=0), frame_id="base"),
        pose=Pose(position=Point(x=x, y=2 * x, z=3.0), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
    )


def test_frames_rows_and_linear_joint_states(tmp_path: Path) -> None:
    """Joint states at 10× the frame rate, resampled linearly to each frame's stamp."""
    clock = Clock()
    spec = TopicSpec("robot0_joint", "/joint_states", fields=("position",), method="linear", max_age_s=0.05)
    rec = Recorder(tmp_path / "ds.zarr", [spec], clock=clock)
    rec.set_type("robot0_joint", "sensor_msgs/msg/JointState")
    assert rec.start("pick the cup") == 0
    frames = [jpeg_frame(i) for i in range(6)]
    sample_step = STEP // 10
    t = T0 - STEP
    for frame in frames:
        while t <= frame.stamp_ns:
            rec.add_sample("robot0_joint", t, joint_state(t, [(t - T0) * 1e-9, 1.0]))
            t += sample_step
        assert rec.add_frame(frame, expect_poses=False)
    rec.add_sample("robot0_joint", t, joint_state(t, [(t - T0) * 1e-9, 1.0]))  # after the last frame
    summary = rec.stop(True)
    assert (summary.index, summary.frames, summary.poses_missing) == (0, 6, 6)

    reader = DatasetReader(tmp_path / "ds.zarr")
    ep = reader.episode(0)
    expected = np.array([[(f.stamp_ns - T0) * 1e-9, 1.0] for f in frames])
    np.testing.assert_allclose(ep["robot0_joint_position"], expected, atol=1e-12)
    assert ep["robot0_joint_valid"].all()
    assert "robot0_joint_velocity" not in ep  # not among the configured fields
    np.testing.assert_array_equal(ep["stamp_ns"], [f.stamp_ns for f in frames])
    np.testing.assert_array_equal(reader.frame(0, 2), decoded(frames[2]))
    attrs = dict(reader.array("robot0_joint_position").attrs)
    assert attrs["topic"] == "/joint_states" and attrs["type"] == "sensor_msgs/msg/JointState"
    assert attrs["field"] == "position" and attrs["columns"] == ["0", "1"] and attrs["method"] == "linear"
    record = reader.episode_attrs(0)
    assert record["task"] == "pick the cup" and record["success"] is True and record["source"] == "capture"
    assert record["estimated"] is False and record["poses_missing"] == 6
    assert record["corecorded"]["robot0_joint"]["stale_rows"] == 0


def test_stale_values_are_nan_and_flagged(tmp_path: Path) -> None:
    """A topic that goes quiet: rows past its maximum age are NaN with a false valid flag."""
    clock = Clock()
    spec = TopicSpec("eef", "/eef_pose", method="nearest", max_age_s=0.02)
    rec = Recorder(tmp_path / "ds.zarr", [spec], clock=clock)
    rec.start()
    frames = [jpeg_frame(i) for i in range(4)]
    rec.add_sample("eef", frames[0].stamp_ns, eef_pose(0.5))
    rec.add_sample("eef", frames[1].stamp_ns + 10**6, eef_pose(0.7))
    for frame in frames:
        rec.add_frame(frame, expect_poses=False)
        clock.now += 0.01
    rec.stop(False)
    ep = DatasetReader(tmp_path / "ds.zarr").episode(0)
    np.testing.assert_allclose(ep["eef_pose_position"][:2], [[0.5, 1.0, 3.0], [0.7, 1.4, 3.0]])
    np.testing.assert_allclose(ep["eef_pose_orientation"][1], [0, 0, 0, 1])
    assert np.isnan(ep["eef_pose_position"][2:]).all()
    np.testing.assert_array_equal(ep["eef_valid"], [True, True, False, False])


def test_rows_wait_for_their_poses_and_stop_never_does(tmp_path: Path) -> None:
    """Images are on disk at once; rows get the estimates that came; the rest are NaN at stop."""
    clock = Clock()
    rec = Recorder(tmp_path / "ds.zarr", estimator={"name": "test"}, pose_wait_s=5.0, clock=clock)
    rec.start("wave")
    frames = [jpeg_frame(i) for i in range(8)]
    for frame in frames:
        rec.add_frame(frame, expect_poses=True)
    image_chunks = list((tmp_path / "ds.zarr" / "data" / "camera0_rgb").glob("[0-9]*"))
    assert len(image_chunks) == 8  # written at once, before any estimate
    assert rec.status().rows_open == 8
    # frames 0 and 2 estimated; 1 was dropped by the stream (2's estimate came first)
    rec.on_poses([(frames[0], FramePoses(frames[0].stamp_ns, "cam", right=hand(0)))])
    rec.on_poses([(frames[2], FramePoses(frames[2].stamp_ns, "cam", left=hand(2)))])
    assert rec.status().rows_open == 5
    clock.now += 6.0  # past pose_wait_s: frames 3.. are written without poses
    rec.poll()
    assert rec.status().rows_open == 0
    rec.on_poses([(frames[4], FramePoses(frames[4].stamp_ns, "cam", right=hand(4)))])  # too late
    summary = rec.stop(True)
    assert summary.poses_missing == 6
    reader = DatasetReader(tmp_path / "ds.zarr")
    ep = reader.episode(0)
    np.testing.assert_array_equal(ep["right_hand_valid"], [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(ep["left_hand_valid"], [0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(ep["right_hand_joints_3d"][0], hand(0).joints_3d)
    assert np.isnan(ep["right_hand_presence"][1]) and np.isnan(ep["left_hand_presence"][7])
    assert reader.episode_attrs(0)["estimated"] is True


def test_stop_with_estimates_pending_commits_at_once(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "ds.zarr", estimator={"name": "test"}, clock=Clock())
    rec.start()
    frames = [jpeg_frame(i) for i in range(5)]
    for frame in frames:
        rec.add_frame(frame, expect_poses=True)
    summary = rec.stop(None)
    assert (summary.frames, summary.poses_missing) == (5, 5)
    rec.on_poses([(frames[3], FramePoses(frames[3].stamp_ns, "cam", right=hand(3)))])  # ignored
    root: Any = zarr.open_group(str(tmp_path / "ds.zarr"), mode="r")
    assert list(root["meta"]["episode_ends"][:]) == [5]
    assert not root["data"]["right_hand_valid"][:].any()


def test_episodes_append_discard_and_states(tmp_path: Path) -> None:
    path = tmp_path / "ds.zarr"
    rec = Recorder(path, clock=Clock())
    with pytest.raises(CaptureStateError):
        rec.stop(True)
    assert rec.start("a") == 0
    with pytest.raises(CaptureStateError, match="already recording"):
        rec.start("b")
    for i in range(3):
        rec.add_frame(jpeg_frame(i), expect_poses=False)
    rec.stop(True)
    rec.start("discarded")
    for i in range(4):
        rec.add_frame(jpeg_frame(10 + i), expect_poses=False)
    assert rec.discard() == 4
    assert rec.status().episode_index == 1
    rec.start("c")
    assert rec.add_frame(jpeg_frame(20), expect_poses=False)
    rec.stop(False)
    assert rec.start("empty") == 2
    assert rec.stop(True).index is None  # no frames: nothing stored
    # a second recorder (a restarted node) appends
    again = Recorder(path, clock=Clock())
    assert again.status().episode_index == 2
    assert again.start("d") == 2
    again.add_frame(jpeg_frame(30), expect_poses=False)
    again.stop(True)
    reader = DatasetReader(path)
    assert [reader.episode_attrs(i)["task"] for i in range(reader.num_episodes)] == ["a", "c", "d"]
    assert list(reader.episode_ends) == [3, 4, 5]
    assert rec.add_frame(jpeg_frame(40), expect_poses=False) is False  # idle: not recorded


def test_a_topic_that_appears_later_gets_nan_before(tmp_path: Path) -> None:
    """Keys are made when a topic's first message comes; earlier rows and episodes read NaN."""
    path = tmp_path / "ds.zarr"
    clock = Clock()
    rec = Recorder(path, [TopicSpec("grip", "/gripper", max_age_s=1.0)], clock=clock)
    rec.start()
    rec.add_frame(jpeg_frame(0), expect_poses=False)
    clock.now += 2.0
    rec.stop(True)
    rec.start()
    message = joint_state(T0, [0.04])
    rec.add_sample("grip", T0 + STEP, message)
    rec.add_frame(jpeg_frame(1), expect_poses=False)
    rec.stop(True)
    root: Any = zarr.open_group(str(path), mode="r")
    grip = root["data"]["grip_position"]
    assert grip.shape == (2, 1)
    assert np.isnan(grip[0]).all() and grip[1, 0] == pytest.approx(0.04)
    np.testing.assert_array_equal(root["data"]["grip_valid"][:], [False, True])
    assert root["data"]["grip_velocity"].shape == (2, 1)


def test_bad_field_and_changed_layout(tmp_path: Path) -> None:
    rec = Recorder(
        tmp_path / "ds.zarr", [TopicSpec("j", "/joint_states", fields=("positon",))], clock=Clock()
    )
    with pytest.raises(InputError, match=r"no numeric field positon .*numeric fields: position, velocity"):
        rec.add_sample("j", T0, joint_state(T0, [1.0]))
    with pytest.raises(InputError, match="method"):
        TopicSpec("j", "/x", method="cubic")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="letters"):
        TopicSpec("0bad", "/x")
    # a later recording whose joint count differs from the dataset's is refused, with the key named
    path = tmp_path / "two.zarr"
    first = Recorder(path, [TopicSpec("j", "/joint_states", fields=("position",))], clock=Clock())
    first.start()
    first.add_sample("j", T0, joint_state(T0, [1.0, 2.0]))
    first.add_frame(jpeg_frame(0), expect_poses=False)
    first.stop(True)
    second = Recorder(path, [TopicSpec("j", "/joint_states", fields=("position",))], clock=Clock())
    second.add_sample("j", T0, joint_state(T0, [1.0, 2.0, 3.0]))
    with pytest.raises(DatasetError, match=r"data/j_position holds float64 rows of shape \(2,\)"):
        second.start()
    assert second.status().state == "error"


@pytest.mark.parametrize("fault", ["read_only", "fill"])
def test_a_dataset_that_turns_read_only_or_full_keeps_earlier_episodes(tmp_path: Path, fault: str) -> None:
    """Mid-episode the folder refuses writes: the episode ends with the OS's reason as the error,
    the earlier one is intact, and recording works again once the folder is writable."""
    with faulty_folder(tmp_path / "mnt") as folder:
        path = folder.path / "ds.zarr"
        rec = Recorder(path, clock=Clock())
        rec.start("kept")
        for i in range(3):
            rec.add_frame(jpeg_frame(i), expect_poses=False)
        rec.stop(True)
        before = DatasetReader(path).episode(0)
        rec.start("lost")
        rec.add_frame(jpeg_frame(5), expect_poses=False)
        getattr(folder, fault)()
        recorded = [rec.add_frame(jpeg_frame(6 + i), expect_poses=False) for i in range(40)]
        assert recorded[-1] is False
        status = rec.status()
        reason = "Permission denied" if fault == "read_only" else "No space left on device"
        assert status.state == "error" and reason in status.last_error, status
        assert not rec.recording
        folder.restore()
        reader = DatasetReader(path)
        assert reader.num_episodes == 1
        for key, values in reader.episode(0).items():
            np.testing.assert_array_equal(values, before[key])
        rec.start("after")
        rec.add_frame(jpeg_frame(7), expect_poses=False)
        assert rec.stop(True).index == 1
        assert rec.status().state == "idle"
