"""The robot action keys `vidihand label` writes, named as UMI's replay buffer names them.

UMI (`scripts_slam_pipeline/07_generate_replay_buffer.py`) stores per gripper `robot{i}_eef_pos`
(N, 3), `robot{i}_eef_rot_axis_angle` (N, 3), `robot{i}_gripper_width` (N, 1) and the episode's
first / last pose `robot{i}_demo_start_pose` / `robot{i}_demo_end_pose` (N, 6) = [pos, rotvec] on
every row; diffusion_policy's `UmiDataset` reads exactly these names. `robot{i}_label_valid` is
ours: which rows hold a label (UMI drops unusable frames instead; we keep every camera row).
"""

from __future__ import annotations

import numpy as np

from vidihand_ros.dataset.schema import KeySpec

__all__ = ["LABEL_FIELDS", "POSE_FIELDS", "robot_key", "robot_specs"]

_CAM = "camera optical frame (x right, y down, z forward)"

#: (field, per-row shape, dtype, description); key names are `robot{i}_{field}`.
LABEL_FIELDS: tuple[tuple[str, tuple[int, ...], type, str], ...] = (
    (
        "eef_pos",
        (3,),
        np.float32,
        f"Gripper (TCP) position in metres, {_CAM}: the hand's wrist pose composed with the "
        "configured T_wrist_gripper. NaN where robot{i}_label_valid is False.",
    ),
    (
        "eef_rot_axis_angle",
        (3,),
        np.float32,
        f"Gripper (TCP) orientation, axis-angle in radians, {_CAM}. NaN where not labelled.",
    ),
    (
        "gripper_width",
        (1,),
        np.float32,
        "Gripper opening in metres: the thumb-index tip distance mapped linearly from "
        "[aperture_min, aperture_max] onto [width_min, width_max], clipped. NaN where not labelled.",
    ),
    (
        "demo_start_pose",
        (6,),
        np.float32,
        "[eef_pos, eef_rot_axis_angle] of the episode's first labelled row, on every row of the "
        "episode (UMI's convention); NaN in an episode without a labelled row.",
    ),
    (
        "demo_end_pose",
        (6,),
        np.float32,
        "[eef_pos, eef_rot_axis_angle] of the episode's last labelled row, on every row of the "
        "episode; NaN in an episode without a labelled row.",
    ),
    (
        "label_valid",
        (),
        np.bool_,
        "True where the robot's hand was usable (valid, present, wrist orientation known) and the "
        "row holds a label.",
    ),
)
#: The fields that are NaN where a row is not labelled (the episode poses are per episode).
POSE_FIELDS = ("eef_pos", "eef_rot_axis_angle", "gripper_width")


def robot_key(robot: str, field: str) -> str:
    return f"{robot}_{field}"


def robot_specs(robot: str, hand: str) -> list[KeySpec]:
    """The `KeySpec` of every label key of `robot` (driven by the `hand` side)."""
    specs = []
    for field, shape, dtype, description in LABEL_FIELDS:
        fill: float | bool = False if dtype is np.bool_ else float("nan")
        text = description.replace("robot{i}", robot)
        specs.append(KeySpec(robot_key(robot, field), np.dtype(dtype), shape, fill, f"{text} ({hand} hand)"))
    return specs
