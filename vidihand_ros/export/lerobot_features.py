"""The LeRobot feature vectors of an episode: hand state, action, and masks saying what is real.

LeRobot features are flat float vectors with a name per element, and its statistics (used to
normalise every input) must not be NaN. Our datasets store NaN where a hand was not seen, so each
vector is filled and comes with a 0/1 mask of the same shape:

- `observation.state` (12): per hand (left, right) the wrist position (x, y, z, metres) and the
  wrist rotation (axis-angle rx, ry, rz, radians), camera optical frame.
- `observation.hand_joints` (126): per hand the 21 joints (x, y, z), camera frame, metres.
- `action`: the robot's labels when the dataset has them (`vidihand label`: per robot
  `robot<i>_eef_pos` (3), `robot<i>_eef_rot_axis_angle` (3), `robot<i>_gripper_width` (1)),
  else the next frame's `observation.state` (the last frame's action is its own state); or, when
  asked for, the robot hands' joint positions (`vidihand retarget`: per robot
  `robot<i>_hand_qpos`, its joints named `robot<i>_<joint>`).
- `observation.state_mask`, `observation.hand_joints_mask`, `action_mask`: 1 where the value is
  observed (the hand valid and the value finite), 0 where it was filled.
- `observation.hand_valid` (2): the dataset's `<side>_hand_valid` per hand, as 0/1.

Filling holds the last observed value of each element (the first observed one before it was
first seen; 0 in an episode where it never was), so the statistics stay those of real values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.retarget.keys import qpos_keys, robot_of
from vidihand_ros.types import HAND_SIDES, NUM_JOINTS

__all__ = [
    "ACTION_CHOICES",
    "ACTION_NEXT_STATE",
    "ACTION_ROBOT",
    "ACTION_ROBOT_HANDS",
    "EpisodeVectors",
    "VectorLayout",
    "hold_fill",
    "layout_for",
]

ACTION_NEXT_STATE = "next_state"
ACTION_ROBOT = "robot_labels"
ACTION_ROBOT_HANDS = "robot_hand_qpos"
#: What `--action` takes: auto is the robot labels when there are some, else the next state.
ACTION_CHOICES = ("auto", ACTION_ROBOT, ACTION_ROBOT_HANDS, ACTION_NEXT_STATE)

_AXES = ("x", "y", "z")
_ROT = ("rx", "ry", "rz")
_ROBOT_POS = re.compile(r"^robot(\d+)_eef_pos$")
#: Per robot: (key suffix, element names) in the order they make up the action.
ROBOT_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("eef_pos", _AXES),
    ("eef_rot_axis_angle", _ROT),
    ("gripper_width", ("width",)),
)

Float32 = NDArray[np.float32]


@dataclass(frozen=True)
class VectorLayout:
    """Which dataset keys make the vectors, and the element names LeRobot stores with them."""

    state_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_source: str
    #: The dataset keys whose rows, side by side, are the action (none: the next state).
    action_keys: tuple[str, ...] = ()

    @property
    def keys(self) -> list[str]:
        """Dataset keys read for each episode."""
        hands = [hand_key(s, f) for s in HAND_SIDES for f in ("valid", "wrist_pos", "wrist_rot_axis_angle")]
        hands += [hand_key(s, "joints_3d") for s in HAND_SIDES]
        return hands + list(self.action_keys)


def layout_for(
    keys: Sequence[str], action: str = "auto", hand_joints: Mapping[str, Sequence[str]] | None = None
) -> VectorLayout:
    """The layout for a dataset with `keys`: with `action` auto, robot actions when it has
    `robot<i>_eef_pos`, else the next state. `hand_joints` gives each `robot<i>_hand_qpos`'s joint
    names (its `joint_names` attribute), for `action` robot_hand_qpos."""
    if action not in ACTION_CHOICES:
        raise InputError(f"--action {action!r}: expected one of {', '.join(ACTION_CHOICES)}")
    state = tuple(f"{side}_wrist_{a}" for side in HAND_SIDES for a in (*_AXES, *_ROT))
    joints = tuple(
        f"{side}_joint{j:02d}_{a}" for side in HAND_SIDES for j in range(NUM_JOINTS) for a in _AXES
    )
    if action == ACTION_ROBOT_HANDS:
        return _robot_hands_layout(state, joints, keys, hand_joints or {})
    robots = tuple(sorted(int(m.group(1)) for k in keys if (m := _ROBOT_POS.match(k))))
    for i in robots:
        missing = [f"robot{i}_{f}" for f, _ in ROBOT_FIELDS if f"robot{i}_{f}" not in keys]
        if missing:
            raise DatasetError(f"data/robot{i}_eef_pos is there but not {', '.join(missing)}")
    if action == ACTION_ROBOT and not robots:
        raise DatasetError("no robot labels (robot<i>_eef_pos): run vidihand label first")
    if action == ACTION_NEXT_STATE or not robots:
        return VectorLayout(state, joints, state, ACTION_NEXT_STATE)
    names = tuple(f"robot{i}_{f}_{n}" for i in robots for f, names in ROBOT_FIELDS for n in names)
    return VectorLayout(
        state, joints, names, ACTION_ROBOT, tuple(f"robot{i}_{f}" for i in robots for f, _ in ROBOT_FIELDS)
    )


def _robot_hands_layout(
    state: tuple[str, ...],
    joints: tuple[str, ...],
    keys: Sequence[str],
    hand_joints: Mapping[str, Sequence[str]],
) -> VectorLayout:
    robots = qpos_keys(keys)
    if not robots:
        raise DatasetError("no robot-hand joint positions (robot<i>_hand_qpos): run vidihand retarget first")
    names = []
    for key in robots:
        if not hand_joints.get(key):
            raise DatasetError(f"data/{key} has no joint_names attribute (not written by vidihand retarget)")
        names += [f"{robot_of(key)}_{joint}" for joint in hand_joints[key]]
    return VectorLayout(state, joints, tuple(names), ACTION_ROBOT_HANDS, tuple(robots))


def hold_fill(values: Float32, observed: NDArray[np.bool_]) -> Float32:
    """`values` (n, d) with each unobserved element replaced by the last observed one in its column
    (the first observed one before that; 0 in a column with none)."""
    n = len(values)
    rows = np.arange(n)[:, None]
    last = np.maximum.accumulate(np.where(observed, rows, -1), axis=0)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(observed, rows, n), axis=0), axis=0), axis=0)
    source = np.where(last >= 0, last, nxt)
    columns = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    filled = np.where(source < n, values[np.minimum(source, n - 1), columns], 0.0)
    return np.asarray(filled, dtype=np.float32)


@dataclass(frozen=True)
class EpisodeVectors:
    """An episode's feature columns, (n, d) float32 each, keyed by LeRobot feature name."""

    columns: dict[str, Float32]

    @classmethod
    def build(cls, episode: dict[str, NDArray[np.generic]], layout: VectorLayout) -> EpisodeVectors:
        n = len(episode[hand_key(HAND_SIDES[0], "valid")])
        valid = np.stack([np.asarray(episode[hand_key(s, "valid")], dtype=bool) for s in HAND_SIDES], axis=1)
        state, state_seen = _hand_vectors(episode, ("wrist_pos", "wrist_rot_axis_angle"), valid, n)
        joints, joints_seen = _hand_vectors(episode, ("joints_3d",), valid, n)
        if layout.action_keys:
            raw = np.concatenate(
                [np.asarray(episode[key], dtype=np.float32).reshape(n, -1) for key in layout.action_keys],
                axis=1,
            )
            if raw.shape[1] != len(layout.action_names):
                raise DatasetError(
                    f"{', '.join(layout.action_keys)} have {raw.shape[1]} values a frame, expected "
                    f"{len(layout.action_names)} ({', '.join(layout.action_names)})"
                )
            seen = np.isfinite(raw)
            action, action_seen = hold_fill(raw, seen), seen
        else:
            later = np.minimum(np.arange(n) + 1, n - 1)
            action, action_seen = state[later], state_seen[later]
        return cls(
            {
                "observation.state": state,
                "observation.state_mask": state_seen.astype(np.float32),
                "observation.hand_joints": joints,
                "observation.hand_joints_mask": joints_seen.astype(np.float32),
                "observation.hand_valid": valid.astype(np.float32),
                "action": action,
                "action_mask": action_seen.astype(np.float32),
            }
        )


def _hand_vectors(
    episode: dict[str, NDArray[np.generic]], fields: Sequence[str], valid: NDArray[np.bool_], n: int
) -> tuple[Float32, NDArray[np.bool_]]:
    """Both hands' `fields` flattened side by side, filled, with where they were observed."""
    parts, seen = [], []
    for k, side in enumerate(HAND_SIDES):
        for field in fields:
            raw = np.asarray(episode[hand_key(side, field)], dtype=np.float32).reshape(n, -1)
            parts.append(raw)
            seen.append(np.isfinite(raw) & valid[:, k : k + 1])
    values, observed = np.concatenate(parts, axis=1), np.concatenate(seen, axis=1)
    return hold_fill(values, observed), observed
