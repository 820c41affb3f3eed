"""Co-recorded topics: numeric fields by name from real message classes; resampling with known answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from tests.ci import require
from vidihand_ros.corecord import numeric_fields, resample

TYPES = get_typestore(Stores.ROS2_JAZZY).types


def header() -> Any:
    stamp = TYPES["builtin_interfaces/msg/Time"](sec=1, nanosec=2)
    return TYPES["std_msgs/msg/Header"](stamp=stamp, frame_id="base")


def test_joint_states_flatten_to_indexed_columns_without_names_or_header() -> None:
    joints = TYPES["sensor_msgs/msg/JointState"](
        header=header(),
        name=["shoulder", "elbow"],
        position=np.array([0.5, -1.0]),
        velocity=np.array([0.1, 0.2]),
        effort=np.array([], dtype=np.float64),
    )
    assert numeric_fields(joints) == {
        "position.0": 0.5,
        "position.1": -1.0,
        "velocity.0": 0.1,
        "velocity.1": 0.2,
    }


def test_nested_messages_join_their_names() -> None:
    vector = TYPES["geometry_msgs/msg/Vector3"]
    wrench = TYPES["geometry_msgs/msg/WrenchStamped"](
        header=header(),
        wrench=TYPES["geometry_msgs/msg/Wrench"](
            force=vector(x=1.0, y=2.0, z=3.0), torque=vector(x=0.0, y=0.0, z=-1.0)
        ),
    )
    assert numeric_fields(wrench) == {
        "wrench.force.x": 1.0,
        "wrench.force.y": 2.0,
        "wrench.force.z": 3.0,
        "wrench.torque.x": 0.0,
        "wrench.torque.y": 0.0,
        "wrench.torque.z": -1.0,
    }


def test_rclpy_messages_give_the_same_columns_as_rosbags_ones() -> None:
    sensor_msgs = require("sensor_msgs.msg", "bash scripts/ros_interfaces.sh")
    joints = sensor_msgs.JointState(
        name=["a", "b", "c"], position=[1.0, 2.0, 3.0], velocity=[], effort=[0.5] * 3
    )
    joints.header.frame_id = "base"
    assert numeric_fields(joints) == {
        "position.0": 1.0,
        "position.1": 2.0,
        "position.2": 3.0,
        "effort.0": 0.5,
        "effort.1": 0.5,
        "effort.2": 0.5,
    }
    std_msgs = require("std_msgs.msg", "bash scripts/ros_interfaces.sh")
    assert numeric_fields(std_msgs.Bool(data=True)) == {"data": 1.0}


TIMES = np.array([0, 100, 200, 400], dtype=np.int64) * 1_000_000  # ms → ns
VALUES = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [4.0, 14.0]])


def test_nearest_takes_the_closest_sample_within_the_maximum_age() -> None:
    at = np.array([0, 40, 60, 150, 290, 300, 460, -20], dtype=np.int64) * 1_000_000
    out, stale = resample(TIMES, VALUES, at, method="nearest", max_age_s=0.095)
    # 150 ms is as far from 100 as from 200: the earlier sample; 300 ms is 100 ms from both: stale
    np.testing.assert_array_equal(out[:, 0], [0.0, 0.0, 1.0, 1.0, 2.0, np.nan, 4.0, 0.0])
    np.testing.assert_array_equal(out[:, 1], [10.0, 10.0, 11.0, 11.0, 12.0, np.nan, 14.0, 10.0])
    assert stale.tolist() == [False, False, False, False, False, True, False, False]


def test_linear_interpolates_between_fresh_neighbours_only() -> None:
    at = np.array([50, 100, 300, 250, 210, 450, -10], dtype=np.int64) * 1_000_000
    out, stale = resample(TIMES, VALUES, at, method="linear", max_age_s=0.15)
    np.testing.assert_allclose(out[:4], [[0.5, 10.5], [1.0, 11.0], [3.0, 13.0], [2.5, 12.5]])
    # 210 ms: the next sample is 190 ms away; 450 and -10 ms lie outside the samples
    assert stale.tolist() == [False, False, False, False, True, True, True]
    assert np.isnan(out[4:]).all()


def test_no_samples_is_all_stale_and_bad_arguments_are_refused() -> None:
    out, stale = resample(np.array([], np.int64), np.zeros((0, 2)), np.array([5, 6], np.int64))
    assert stale.all() and np.isnan(out).all() and out.shape == (2, 2)
    with pytest.raises(ValueError, match="method"):
        resample(TIMES, VALUES, TIMES, method="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_age_s"):
        resample(TIMES, VALUES, TIMES, max_age_s=-1.0)
    with pytest.raises(ValueError, match="decrease"):
        resample(TIMES[::-1].copy(), VALUES, TIMES)
