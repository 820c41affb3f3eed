"""Forward kinematics of a robot hand's URDF: where each link is for given joint positions.

For pictures (the robot hand posed beside the human one) and for checking retargeted poses (how
far apart the robot's fingertips are). Built on the package's pinocchio wrapper from the bare
URDF: no free-floating wrist, so the base link is the hand's root frame (the wrist frame the
optimiser matched the human hand in, scaled by the configuration's `scaling_factor`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["RobotKinematics"]


class RobotKinematics:
    """Link poses (4×4, in the root link's frame) of one URDF."""

    def __init__(self, urdf_path: str | Path) -> None:
        from dex_retargeting.robot_wrapper import RobotWrapper

        self.urdf_path = Path(urdf_path)
        self._robot = RobotWrapper(str(self.urdf_path))
        #: The joints a position vector gives, in pinocchio's order.
        self.joint_names: tuple[str, ...] = tuple(self._robot.dof_joint_names)
        self.link_names: tuple[str, ...] = tuple(self._robot.link_names)

    def qpos(self, values: ArrayLike, names: Sequence[str]) -> NDArray[np.float64]:
        """A full position vector from `values` of the joints `names` (others stay at 0)."""
        q = np.zeros(len(self.joint_names))
        index = {name: i for i, name in enumerate(self.joint_names)}
        for name, value in zip(names, np.asarray(values, dtype=np.float64), strict=True):
            if name in index:
                q[index[name]] = value
        return q

    def link_poses(
        self, qpos: ArrayLike, links: Sequence[str] | None = None
    ) -> Mapping[str, NDArray[np.float64]]:
        """{link: 4×4 pose in the root frame} for the full position vector `qpos`."""
        self._robot.compute_forward_kinematics(np.asarray(qpos, dtype=np.float64))
        names = self.link_names if links is None else links
        return {
            name: np.asarray(self._robot.get_link_pose(self._robot.get_link_index(name))) for name in names
        }
