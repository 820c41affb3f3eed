"""The keys `vidihand retarget` writes: per robot hand its joint angles and where they hold.

`robot{i}_hand_qpos` (N, DOF) float32 sits beside `vidihand label`'s `robot{i}_*` gripper keys and
uses the same robot number for the same hand (right → robot0, left → robot1 unless the label
configuration says otherwise), so a policy can train on either action. `robot{i}_hand_qpos_valid`
(N,) says which rows hold angles; the rest are NaN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from vidihand_ros.dataset.schema import KeySpec

__all__ = ["DEFAULT_ROBOT_OF_SIDE", "qpos_key", "qpos_keys", "qpos_specs", "robot_of", "valid_key"]

_QPOS_KEY = re.compile(r"^(robot\d+)_hand_qpos$")

#: The robot number of each hand when no label configuration has said otherwise (label's default).
DEFAULT_ROBOT_OF_SIDE = {"right": "robot0", "left": "robot1"}


def qpos_key(robot: str) -> str:
    return f"{robot}_hand_qpos"


def valid_key(robot: str) -> str:
    return f"{robot}_hand_qpos_valid"


def qpos_keys(keys: Iterable[str]) -> list[str]:
    """The `robot{i}_hand_qpos` keys among `keys`, in robot order (robot0 first)."""
    return sorted((k for k in keys if _QPOS_KEY.match(k)), key=lambda k: int(robot_of(k)[5:]))


def robot_of(key: str) -> str:
    """'robot1_hand_qpos' → 'robot1' (a `ValueError` for any other key)."""
    match = _QPOS_KEY.match(key)
    if match is None:
        raise ValueError(f"not a robot-hand joint key: {key!r}")
    return match.group(1)


def qpos_specs(robot: str, side: str, robot_model: str, dof: int) -> tuple[KeySpec, KeySpec]:
    """The (joint angles, mask) specs of one retargeted hand."""
    angles = KeySpec(
        qpos_key(robot),
        np.dtype(np.float32),
        (dof,),
        float("nan"),
        f"Joint positions of the {robot_model} robot hand retargeted from the {side} hand (dex-retargeting), "
        f"radians (metres for prismatic joints), in the order of the `joint_names` attribute; NaN "
        f"where {valid_key(robot)} is False.",
    )
    mask = KeySpec(
        valid_key(robot),
        np.dtype(np.bool_),
        (),
        False,
        f"True where the {side} hand was usable (valid, present, palm defined) and {qpos_key(robot)} "
        "holds joint positions.",
    )
    return angles, mask
