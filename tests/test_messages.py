"""The HandPose(s) interfaces: valid ROS 2 IDL, registered in rosbags, and lossless conversion."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from tests.ci import in_ci
from vidihand_ros.errors import InputError
from vidihand_ros.sinks import hand_poses as messages
from vidihand_ros.sinks.hand_poses import (
    HAND_POSE,
    HAND_POSES,
    make_typestore,
    message_to_poses,
    poses_to_message,
    register_types,
)
from vidihand_ros.types import NUM_BETAS, NUM_HAND_POSE_JOINTS, NUM_JOINTS, FramePoses, HandPose

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"

# Runs under the system Python that has Debian's rosidl: .msg → .idl (rosidl_adapter, as
# `rosidl_generate_interfaces` does) → parsed IDL (rosidl_parser), printed as JSON.
ROSIDL_SCRIPT = r"""
import json, pathlib, sys
from rosidl_adapter.msg import convert_msg_to_idl
from rosidl_parser.definition import AbstractNestedType, BasicType, IdlLocator, Message, NamespacedType
from rosidl_parser.parser import parse_idl_file

def describe(t):
    if isinstance(t, AbstractNestedType):
        return {"kind": type(t).__name__, "size": getattr(t, "size", None), "of": describe(t.value_type)}
    if isinstance(t, NamespacedType):
        return {"kind": "named", "name": "/".join([*t.namespaces, t.name])}
    if isinstance(t, BasicType):
        return {"kind": "basic", "name": t.typename}
    return {"kind": type(t).__name__}

msg_file, out_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
idl = convert_msg_to_idl(msg_file.parent.parent, "vidihand_ros", pathlib.Path("msg", msg_file.name), out_dir)
content = parse_idl_file(IdlLocator(out_dir, idl.relative_to(out_dir))).content
(message,) = content.get_elements_of_type(Message)
print(json.dumps({
    "name": "/".join([*message.structure.namespaced_type.namespaces, message.structure.namespaced_type.name]),
    "members": {m.name: describe(m.type) for m in message.structure.members},
    "constants": {c.name: [describe(c.type), c.value] for c in message.constants},
}))
"""


def _has_rosidl() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = [SYSTEM_PYTHON, "-c", "import rosidl_adapter.msg, rosidl_parser.parser"]
    return subprocess.run(probe, capture_output=True).returncode == 0


# In CI (.ci/run installs the tooling) a missing rosidl fails the tests instead of skipping them.
needs_rosidl = pytest.mark.skipif(
    not in_ci() and not _has_rosidl(),
    reason=f"{SYSTEM_PYTHON} lacks rosidl_adapter/rosidl_parser (python3-rosidl, rosidl-tools, python3-empy)",
)


def _rosidl(msg_file: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [SYSTEM_PYTHON, "-c", ROSIDL_SCRIPT, str(msg_file), str(out_dir)]
    return subprocess.run(cmd, capture_output=True, text=True)


def _parse_with_rosidl(name: str, tmp_path: Path) -> dict:
    result = _rosidl(REPO / "msg" / f"{name}.msg", tmp_path / "idl")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _basic(name: str) -> dict:
    return {"kind": "basic", "name": name}


def _named(name: str) -> dict:
    return {"kind": "named", "name": name}


def _array(of: dict, size: int) -> dict:
    return {"kind": "Array", "size": size, "of": of}


@needs_rosidl
def test_hand_pose_msg_is_valid_ros2_idl(tmp_path: Path) -> None:
    parsed = _parse_with_rosidl("HandPose", tmp_path)
    assert parsed["name"] == "vidihand_ros/msg/HandPose"
    assert parsed["members"] == {
        "valid": _basic("boolean"),
        "presence": _basic("float"),
        "global_orient": _named("geometry_msgs/msg/Vector3"),
        "hand_pose": _array(_basic("float"), 45),
        "betas": _array(_basic("float"), 10),
        "translation": _named("geometry_msgs/msg/Vector3"),
        "wrist": _named("geometry_msgs/msg/Pose"),
        "joints": _array(_named("geometry_msgs/msg/Point"), 21),
        "keypoints_2d": _array(_basic("float"), 42),
    }
    assert parsed["constants"] == {
        "NUM_JOINTS": [_basic("uint8"), NUM_JOINTS],
        "NUM_HAND_POSE_JOINTS": [_basic("uint8"), NUM_HAND_POSE_JOINTS],
        "NUM_BETAS": [_basic("uint8"), NUM_BETAS],
    }


@needs_rosidl
def test_hand_poses_msg_is_valid_ros2_idl(tmp_path: Path) -> None:
    parsed = _parse_with_rosidl("HandPoses", tmp_path)
    assert parsed["name"] == "vidihand_ros/msg/HandPoses"
    assert parsed["members"] == {
        "header": _named("std_msgs/msg/Header"),
        "left": _named("vidihand_ros/msg/HandPose"),
        "right": _named("vidihand_ros/msg/HandPose"),
    }


@needs_rosidl
@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("float32 Presence", "'Presence' is an invalid field name"),
        ("float32[45 hand_pose", "'float32[45' is an invalid message name"),
        ("float32", "InvalidFieldDefinition"),
    ],
)
def test_rosidl_rejects_broken_msg(tmp_path: Path, line: str, complaint: str) -> None:
    msg_file = tmp_path / "pkg" / "msg" / "Broken.msg"
    msg_file.parent.mkdir(parents=True)
    msg_file.write_text(f"bool valid\n{line}\n", encoding="utf-8")
    result = _rosidl(msg_file, tmp_path / "idl")
    assert result.returncode != 0
    assert complaint in result.stderr


def test_interfaces_found_in_source_checkout() -> None:
    assert Path(str(messages.interface_dir())) == REPO / "msg"
    assert messages.message_definition(HAND_POSES) == (REPO / "msg" / "HandPoses.msg").read_text()


def test_installed_interfaces_take_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "interfaces"
    wheel.mkdir()
    for msg in (REPO / "msg").glob("*.msg"):
        shutil.copy(msg, wheel / msg.name)
    monkeypatch.setattr(messages, "_candidate_dirs", lambda: [wheel, REPO / "msg"])
    assert messages.interface_dir() == wheel


def test_colcon_install_found_via_ament_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    share = tmp_path / "install" / "share" / "vidihand_ros" / "msg"
    share.mkdir(parents=True)
    for msg in (REPO / "msg").glob("*.msg"):
        shutil.copy(msg, share / msg.name)
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"/opt/ros/jazzy:{tmp_path / 'install'}")
    candidates = messages._candidate_dirs()
    assert candidates[-2:] == [Path("/opt/ros/jazzy/share/vidihand_ros/msg"), share]
    monkeypatch.setattr(messages, "_candidate_dirs", lambda: candidates[2:])
    assert messages.interface_dir() == share


def test_missing_interfaces_name_where_we_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "_candidate_dirs", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(FileNotFoundError, match=r"HandPose\.msg.*a, .*b"):
        messages.interface_dir()


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_types_registered_in_distro_typestore(distro: str) -> None:
    store = make_typestore(distro)
    assert {HAND_POSE, HAND_POSES, "geometry_msgs/msg/Pose"} <= set(store.types)
    hand_pose_type: Any = store.types[HAND_POSE]
    assert hand_pose_type.NUM_JOINTS == NUM_JOINTS
    assert hand_pose_type.NUM_BETAS == NUM_BETAS
    assert register_types(store) is store  # idempotent
    with pytest.raises(InputError, match="distro"):
        make_typestore("noetic")


def _f32(values: Any) -> NDArray[np.float32]:
    return np.asarray(values, dtype=np.float32)


def _random_hand(rng: np.random.Generator) -> HandPose:
    orient = rng.normal(size=3)
    hand = HandPose(
        presence=float(rng.uniform()),
        global_orient=_f32(orient),
        hand_pose=_f32(rng.normal(size=(NUM_HAND_POSE_JOINTS, 3))),
        betas=_f32(rng.normal(size=NUM_BETAS)),
        transl=_f32(rng.normal(size=3) + np.array([0.0, 0.0, 0.5])),
        joints_3d=_f32(rng.normal(scale=0.1, size=(NUM_JOINTS, 3))),
        keypoints_2d=_f32(rng.uniform(0, 640, size=(NUM_JOINTS, 2))),
        wrist_orient=_f32(orient / np.linalg.norm(orient) * rng.uniform(0, np.pi)),
    )
    hand.keypoints_2d[[3, 7]] = np.nan  # joints the estimator could not place
    hand.betas[:] = np.nan
    return hand


def _assert_hands_equal(got: HandPose | None, want: HandPose | None) -> None:
    assert (got is None) == (want is None)
    if got is None or want is None:
        return
    assert got.presence == np.float32(want.presence)
    for name in HandPose.ARRAY_FIELDS:
        if name == "wrist_orient":  # via a float64 quaternion: same rotation up to rounding
            np.testing.assert_allclose(got.wrist_orient, want.wrist_orient, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert getattr(got, name).dtype == np.float32
        assert getattr(got, name).shape == getattr(want, name).shape


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cdr_round_trip(distro: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    store = make_typestore(distro)
    poses = FramePoses(
        stamp_ns=1_700_000_000_123_456_789 + seed,
        frame_id="head_camera_optical",
        left=_random_hand(rng) if seed % 2 else None,
        right=None if seed % 2 else _random_hand(rng),
    )
    raw = store.serialize_cdr(poses_to_message(poses, store), HAND_POSES)
    msg: Any = store.deserialize_cdr(raw, HAND_POSES)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123_456_789 + seed)
    back = message_to_poses(msg)
    assert (back.stamp_ns, back.frame_id) == (poses.stamp_ns, poses.frame_id)
    _assert_hands_equal(back.left, poses.left)
    _assert_hands_equal(back.right, poses.right)


def test_missing_hand_is_invalid_and_nan() -> None:
    store = make_typestore()
    hand = _random_hand(np.random.default_rng(3))
    msg = poses_to_message(FramePoses(5, "cam", left=None, right=hand), store)
    assert (msg.left.valid, msg.right.valid) == (False, True)
    assert np.isnan(msg.left.presence)
    assert np.isnan(msg.left.hand_pose).all() and np.isnan(msg.left.wrist.orientation.w)
    assert all(np.isnan(p.x) for p in msg.left.joints)
    # The wrist pose is joint 0 plus the wrist orientation as a unit quaternion.
    wrist = msg.right.wrist
    assert [wrist.position.x, wrist.position.y, wrist.position.z] == hand.joints_3d[0].tolist()
    quat = [wrist.orientation.x, wrist.orientation.y, wrist.orientation.z, wrist.orientation.w]
    np.testing.assert_allclose(quat, Rotation.from_rotvec(hand.wrist_orient).as_quat(canonical=True))


def test_large_wrist_rotation_comes_back_as_the_same_rotation() -> None:
    store = make_typestore()
    hand = HandPose(presence=1.0, wrist_orient=_f32([0.0, 0.0, 1.5 * np.pi]))
    back = message_to_poses(poses_to_message(FramePoses(0, "cam", right=hand), store)).right
    assert back is not None
    np.testing.assert_allclose(back.wrist_orient, [0.0, 0.0, -0.5 * np.pi], atol=1e-6)
    assert np.isnan(back.joints_3d).all()  # untouched defaults stay "not estimated"


def test_wrong_array_size_is_refused() -> None:
    hand = HandPose(presence=1.0, betas=np.zeros(16, dtype=np.float32))
    with pytest.raises(InputError, match="16 values, expected 10") as err:
        poses_to_message(FramePoses(0, "cam", left=hand), make_typestore())
    assert err.value.field == "betas"


def test_stamp_beyond_int32_seconds_is_refused() -> None:
    with pytest.raises(InputError, match="builtin_interfaces/Time"):
        poses_to_message(FramePoses(2**31 * 1_000_000_000, "cam"), make_typestore())
