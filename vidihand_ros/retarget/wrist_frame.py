"""Camera-frame hand joints → the wrist frame `dex-retargeting`'s optimisers compare robots in.

Its robot configurations are written against a "MANO" wrist frame that is fixed to the palm: the
wrist at the origin, z from the wrist towards the fingers, x out of the palm, y = z × x (towards
the thumb of a right hand, towards the little finger of a left one; a left hand is the mirror
image and is retargeted onto the left robot model, so no coordinate is flipped here). Our palm
frame (`geometry.palm.palm_frame`: x along the fingers, z out of the back of the hand, y = z × x)
is fixed to the same palm, so the package's frame is one constant rotation of ours for both sides:
x_dex = −z_palm, y_dex = y_palm, z_dex = x_palm. Using the project's one palm frame keeps the
wrist orientation the dataset stores and the frame the robot hand is posed in the same.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidihand_ros.geometry.palm import WRIST, palm_frame

__all__ = ["PALM_TO_WRIST_FRAME", "camera_from_wrist_frame", "to_wrist_frame"]

#: Columns: the package's wrist-frame axes written in palm-frame coordinates.
PALM_TO_WRIST_FRAME = np.array(
    [
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0],
        [-1.0, 0.0, 0.0],
    ]
)


def camera_from_wrist_frame(joints_3d: ArrayLike, side: str) -> NDArray[np.float64]:
    """Rotations (..., 3, 3) whose columns are the wrist frame's axes in the camera frame.

    NaN where the palm joints are not finite or degenerate (as `palm_frame`).
    """
    return palm_frame(joints_3d, side) @ PALM_TO_WRIST_FRAME


def to_wrist_frame(joints_3d: ArrayLike, side: str) -> NDArray[np.float64]:
    """The 21 joints (..., 21, 3) in the wrist frame, in metres: what the optimisers take.

    Rows whose palm frame is undefined come out NaN.
    """
    joints = np.asarray(joints_3d, dtype=np.float64)
    rotation = camera_from_wrist_frame(joints, side)
    relative = joints - joints[..., WRIST : WRIST + 1, :]
    # p_wrist = Rᵀ p_camera for each joint: rows times R.
    return np.asarray(relative @ rotation)
