"""One hand's retargeting optimiser: wrist-frame keypoints in, robot joint angles out.

A thin layer over `dex_retargeting.SeqRetargeting` (warm-started optimisation plus the package's
low-pass filter): it builds the optimiser from a checked `RetargetSetup` without the package's
console output, turns the 21 keypoints into the optimiser's reference (fingertip vectors for the
vector and DexPilot modes, keypoint positions for the position mode, as the package's own examples
do), starts a fresh sequence on `reset()` and keeps every angle within the URDF's limits. The
position mode optimises a free-floating wrist (six dummy joints) that is not a joint of the robot:
it is left out of the output.
"""

from __future__ import annotations

import contextlib
import io
from importlib.metadata import version
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.retarget.robots import RetargetSetup
from vidihand_ros.retarget.urdf_log import mesh_warnings_off
from vidihand_ros.types import NUM_JOINTS

__all__ = ["HandRetargeter", "dex_retargeting_version"]

#: The free-floating wrist the position mode adds (the package's `DUMMY_JOINT_NAMES` prefix).
_DUMMY_PREFIX = "dummy_"


def dex_retargeting_version() -> str:
    return version("dex_retargeting")


class HandRetargeter:
    """Retargets one hand, frame after frame; `reset()` at an episode's start or after a gap."""

    def __init__(self, setup: RetargetSetup) -> None:
        self.setup = setup
        self._seq = _build(setup)
        optimizer = self._seq.optimizer
        self._position = setup.mode == "position"
        indices = np.asarray(optimizer.target_link_human_indices, dtype=np.int64)
        if indices.size == 0 or indices.min() < 0 or indices.max() >= NUM_JOINTS:
            raise InputError(
                f"target_link_human_indices must index the 21 hand joints, got {indices.tolist()}",
                source=setup.config_path,
            )
        self._indices = indices
        names = list(self._seq.joint_names)
        self._keep = np.array([not n.startswith(_DUMMY_PREFIX) for n in names])
        #: The robot's joints, in the order of every returned vector (pinocchio's order).
        self.joint_names: tuple[str, ...] = tuple(n for n, k in zip(names, self._keep, strict=True) if k)
        limits = np.asarray(optimizer.robot.joint_limits, dtype=np.float64)
        #: (DOF, 2) lower / upper limit of each joint in `joint_names` (radians or metres).
        self.joint_limits: NDArray[np.float64] = limits[self._keep]

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def reset(self) -> None:
        """Forget the last solution and the filter state: the next frame starts a new sequence."""
        self._seq.reset()
        if self._seq.filter is not None:
            self._seq.filter.reset()

    def reference(self, wrist_frame_joints: ArrayLike) -> NDArray[np.float32]:
        """The optimiser's target for one frame's 21 wrist-frame keypoints."""
        joints = np.asarray(wrist_frame_joints, dtype=np.float64).reshape(NUM_JOINTS, 3)
        if self._position:
            return joints[self._indices].astype(np.float32)
        origin, task = self._indices
        return (joints[task] - joints[origin]).astype(np.float32)

    def __call__(self, wrist_frame_joints: ArrayLike) -> NDArray[np.float64]:
        """Joint angles (DOF,) of the robot for one frame, continuing the current sequence."""
        qpos = np.asarray(self._seq.retarget(self.reference(wrist_frame_joints)), dtype=np.float64)[
            self._keep
        ]
        # The package's optimiser lets each joint go 1 mrad past its limits: a robot must not be asked to.
        return np.clip(qpos, self.joint_limits[:, 0], self.joint_limits[:, 1])


def _build(setup: RetargetSetup) -> Any:
    """The package's `SeqRetargeting`, its prints and mesh-path warnings kept off the terminal."""
    try:
        from dex_retargeting.retargeting_config import RetargetingConfig
    except ImportError as err:
        raise InputError(
            f"robot-hand retargeting needs the retarget extra ({err}): pip install 'vidihand_ros[retarget]'"
        ) from err
    try:
        with contextlib.redirect_stdout(io.StringIO()), mesh_warnings_off():
            config = RetargetingConfig.from_dict(dict(setup.config))
            return config.build()
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        raise InputError(
            f"not a usable dex-retargeting configuration: {err}", source=setup.config_path
        ) from err
