"""PoseBagWriter: ROS 2 bags of HandPoses that a downstream reader opens without our package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from ruamel.yaml import YAML

from vidihand_ros.errors import InputError
from vidihand_ros.sinks.hand_poses import HAND_POSES, message_to_poses
from vidihand_ros.sinks.pose_bag import DEFAULT_TOPIC, PoseBagWriter
from vidihand_ros.types import NUM_JOINTS, Frame, FramePoses, HandPose

T0 = 1_700_000_000_000_000_000
STORAGE_FILES = {"mcap": ".mcap", "sqlite3": ".db3"}


def _poses(n: int) -> list[FramePoses]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        hand = HandPose(
            presence=float(rng.uniform()),
            global_orient=rng.normal(size=3).astype(np.float32),
            transl=rng.normal(size=3).astype(np.float32),
            joints_3d=rng.normal(size=(NUM_JOINTS, 3)).astype(np.float32),
            keypoints_2d=rng.uniform(0, 480, size=(NUM_JOINTS, 2)).astype(np.float32),
        )
        stamp = T0 + i * 33_333_333
        out.append(FramePoses(stamp, "cam_optical", left=hand if i % 3 else None, right=hand))
    return out


def _read(path: Path) -> tuple[list[tuple[str, str, int]], list[FramePoses]]:
    """Connections and poses, as a user without vidihand_ros's types would get them."""
    with AnyReader([path]) as reader:  # no typestore: types come from the bag's msgdef
        conns = [(c.topic, c.msgtype, c.msgcount) for c in reader.connections]
        poses = []
        for conn, timestamp, raw in reader.messages():
            pose = message_to_poses(reader.deserialize(raw, conn.msgtype))
            assert timestamp == pose.stamp_ns
            poses.append(pose)
    return conns, poses


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_and_read_back(tmp_path: Path, storage: str, distro: str) -> None:
    path = tmp_path / "poses"
    written = _poses(12)
    with PoseBagWriter(path, storage=storage, distro=distro) as bag:
        for poses in written:
            bag.write_poses(poses)
    assert bag.count == 12
    assert (path / f"poses{STORAGE_FILES[storage]}").is_file()

    conns, read = _read(path)
    assert conns == [(DEFAULT_TOPIC, HAND_POSES, 12)]
    assert [p.stamp_ns for p in read] == [p.stamp_ns for p in written]
    for got, want in zip(read, written, strict=True):
        assert got.frame_id == "cam_optical"
        assert (got.left is None) == (want.left is None)
        assert got.right is not None and want.right is not None
        assert got.right.presence == np.float32(want.right.presence)
        np.testing.assert_array_equal(got.right.joints_3d, want.right.joints_3d)
        np.testing.assert_array_equal(got.right.keypoints_2d, want.right.keypoints_2d)
        assert np.isnan(got.right.hand_pose).all()  # not estimated stays NaN

    info = YAML(typ="safe").load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == {"humble": 8, "jazzy": 9}[distro]
    assert info["storage_identifier"] == storage
    assert info["message_count"] == 12
    assert info["starting_time"]["nanoseconds_since_epoch"] == T0
    (topic,) = info["topics_with_message_count"]
    assert topic["topic_metadata"]["name"] == DEFAULT_TOPIC
    assert topic["topic_metadata"]["type"] == HAND_POSES
    assert topic["message_count"] == 12
    # Humble's rosbag2 reads offered_qos_profiles only as a YAML string (a list breaks it).
    assert isinstance(topic["topic_metadata"]["offered_qos_profiles"], str if distro == "humble" else list)


def test_custom_topic_and_explicit_close(tmp_path: Path) -> None:
    bag = PoseBagWriter(tmp_path / "b", topic="/hands")
    bag.write_poses(FramePoses(T0, "cam"))
    bag.close()
    bag.close()
    with pytest.raises(RuntimeError, match="closed"):
        bag.write_poses(FramePoses(T0, "cam"))
    conns, read = _read(tmp_path / "b")
    assert conns == [("/hands", HAND_POSES, 1)]
    assert read[0].left is None and read[0].right is None


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    existing = tmp_path / "taken"
    existing.mkdir()
    with pytest.raises(InputError, match="refusing to overwrite") as err:
        PoseBagWriter(existing)
    assert str(existing) in str(err.value)
    assert list(existing.iterdir()) == []


def test_bag_stays_readable_after_an_error(tmp_path: Path) -> None:
    path = tmp_path / "crash"
    with pytest.raises(ZeroDivisionError), PoseBagWriter(path, storage="sqlite3") as bag:
        bag.write_poses(FramePoses(T0, "cam"))
        bag.write_poses(FramePoses(T0 + 1, "cam"))
        _ = 1 / 0
    conns, read = _read(path)
    assert conns[0][2] == 2
    assert [p.stamp_ns for p in read] == [T0, T0 + 1]


@pytest.mark.parametrize(
    ("kwargs", "complaint"), [({"storage": "rosbag1"}, "storage"), ({"distro": "rolling"}, "distro")]
)
def test_bad_options(tmp_path: Path, kwargs: dict[str, str], complaint: str) -> None:
    with pytest.raises(InputError, match=complaint):
        PoseBagWriter(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_negative_stamp_is_refused(tmp_path: Path) -> None:
    with PoseBagWriter(tmp_path / "neg") as bag, pytest.raises(InputError, match="negative stamp"):
        bag.write_poses(FramePoses(-1, "cam"))


def test_as_a_sink_a_frame_without_an_estimate_writes_no_message(tmp_path: Path) -> None:
    frame = Frame(T0, "cam", "jpeg", 1, 1, data=b"")
    with PoseBagWriter(tmp_path / "bag") as bag:
        bag.write(frame, None)
        bag.write(frame, FramePoses(T0, "cam"))
    assert bag.count == 1
