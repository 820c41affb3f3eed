"""Hand poses → gripper action labels: pure array maths, no I/O.

eef pose = wrist pose (camera frame) ∘ T_wrist_gripper, as UMI composes its camera pose with the
fixed camera→TCP offset (`tx_tag_tcp = tx_tag_cam @ tx_cam_tcp`); the width is the thumb–index
distance mapped through a clipped linear calibration, as UMI maps its measured finger-tag
distance (`get_gripper_calibration_interpolator`). Rows where the hand is not usable get NaN and
`label_valid` False, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from vidihand_ros.labels.config import Aperture

__all__ = ["HandRows", "eef_poses", "episode_poses", "gripper_width", "label_rows", "usable_rows"]

F64 = NDArray[np.float64]


class HandRows:
    """One hand's rows, as the dataset stores them (`{side}_hand_*`); joints only the two tips."""

    def __init__(
        self,
        valid: ArrayLike,
        presence: ArrayLike,
        wrist_pos: ArrayLike,
        wrist_rot_axis_angle: ArrayLike,
        tips: ArrayLike,
    ) -> None:
        self.valid = np.asarray(valid, dtype=bool)
        self.presence = np.asarray(presence, dtype=np.float64)
        self.wrist_pos = np.asarray(wrist_pos, dtype=np.float64).reshape(-1, 3)
        self.wrist_rot = np.asarray(wrist_rot_axis_angle, dtype=np.float64).reshape(-1, 3)
        #: (N, 2, 3): the two aperture keypoints of `joints_3d`.
        self.tips = np.asarray(tips, dtype=np.float64).reshape(-1, 2, 3)


def usable_rows(hand: HandRows, min_presence: float) -> NDArray[np.bool_]:
    """Rows with a pose to label: valid, present, wrist position, orientation and tips finite."""
    return np.asarray(
        hand.valid
        & (hand.presence >= min_presence)  # NaN presence (nothing estimated) compares False
        & np.isfinite(hand.wrist_pos).all(axis=1)
        & np.isfinite(hand.wrist_rot).all(axis=1)
        & np.isfinite(hand.tips).all(axis=(1, 2)),
        dtype=bool,
    )


def eef_poses(wrist_pos: ArrayLike, wrist_rotvec: ArrayLike, T_wrist_gripper: ArrayLike) -> tuple[F64, F64]:
    """(positions (N, 3), axis-angles (N, 3)) of the gripper frame for finite wrist poses."""
    pos = np.asarray(wrist_pos, dtype=np.float64).reshape(-1, 3)
    rotvec = np.asarray(wrist_rotvec, dtype=np.float64).reshape(-1, 3)
    T = np.asarray(T_wrist_gripper, dtype=np.float64)
    if len(pos) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    wrist = Rotation.from_rotvec(rotvec)
    eef_pos = pos + wrist.apply(T[:3, 3])
    eef_rot = (wrist * Rotation.from_matrix(T[:3, :3])).as_rotvec()
    return eef_pos, np.asarray(eef_rot, dtype=np.float64).reshape(-1, 3)


def gripper_width(tips: ArrayLike, aperture: Aperture) -> F64:
    """Width (N,) in metres from the tips' distance: linear, clipped to [width_min, width_max]."""
    points = np.asarray(tips, dtype=np.float64).reshape(-1, 2, 3)
    distance = np.linalg.norm(points[:, 1] - points[:, 0], axis=-1)
    # np.interp holds the end values outside [aperture_min, aperture_max]: the clipping.
    return np.interp(
        distance, [aperture.aperture_min, aperture.aperture_max], [aperture.width_min, aperture.width_max]
    )


def episode_poses(pose: ArrayLike, labelled: ArrayLike, ends: Sequence[int]) -> tuple[F64, F64]:
    """(start, end) (N, 6): each episode's first / last labelled [pos, rotvec] on all its rows.

    UMI takes the first and last valid step of a demo; an episode without a labelled row is NaN.
    """
    poses = np.asarray(pose, dtype=np.float64).reshape(-1, 6)
    mask = np.asarray(labelled, dtype=bool)
    start = np.full_like(poses, np.nan)
    end = np.full_like(poses, np.nan)
    first = 0
    for stop in ends:
        rows = np.flatnonzero(mask[first:stop])
        if len(rows):
            start[first:stop] = poses[first + rows[0]]
            end[first:stop] = poses[first + rows[-1]]
        first = int(stop)
    return start, end


def label_rows(
    hand: HandRows, T_wrist_gripper: ArrayLike, aperture: Aperture, min_presence: float, ends: Sequence[int]
) -> dict[str, NDArray[np.float32] | NDArray[np.bool_]]:
    """Every label field of one robot (`keys.LABEL_FIELDS` names) for all rows of the dataset."""
    labelled = usable_rows(hand, min_presence)
    n = len(labelled)
    pos = np.full((n, 3), np.nan)
    rot = np.full((n, 3), np.nan)
    width = np.full(n, np.nan)
    pos[labelled], rot[labelled] = eef_poses(
        hand.wrist_pos[labelled], hand.wrist_rot[labelled], T_wrist_gripper
    )
    width[labelled] = gripper_width(hand.tips[labelled], aperture)
    start, end = episode_poses(np.concatenate([pos, rot], axis=1), labelled, ends)
    f32 = np.float32
    return {
        "eef_pos": pos.astype(f32),
        "eef_rot_axis_angle": rot.astype(f32),
        "gripper_width": width.reshape(n, 1).astype(f32),
        "demo_start_pose": start.astype(f32),
        "demo_end_pose": end.astype(f32),
        "label_valid": labelled,
    }
