"""Log a retargeted robot hand to Rerun beside the human hand it was retargeted from.

Under `world/<side>_hand/robot`: each link's camera-frame pose (`Transform3D`), its URDF visual
meshes (`Asset3D`, posed in the link's frame) and a skeleton of the link tree (`LineStrips3D`,
the only picture of a model without meshes). Where the row has no angles (the mask is False) the
robot is cleared; its meshes are logged again where it reappears, because Rerun cannot clear
static data and a mesh left behind without its link transform would be drawn at the origin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.render.robot_hands import RobotHand
from vidihand_ros.retarget.wrist_frame import camera_from_wrist_frame

__all__ = ["RobotHandLogger", "entity"]

#: The skeleton's colour: a robot grey, apart from both sides' colours.
SKELETON_COLOUR = (170, 170, 180)


def entity(side: str) -> str:
    return f"world/{side}_hand/robot"


class RobotHandLogger:
    """Logs one robot hand row by row; remembers whether it is shown, to clear and re-log."""

    def __init__(self, hand: RobotHand) -> None:
        import rerun as rr

        self.hand = hand
        self.root = entity(hand.side)
        self._links = hand.links
        self._link_path = {link: f"{self.root}/{rr.escape_entity_path_part(link)}" for link in self._links}
        #: Whether the robot is drawn after the last logged row; None: not known (an episode starts).
        self._shown: bool | None = None

    def start_episode(self) -> None:
        """The episode's first row sets the robot afresh: posed with its meshes, or cleared."""
        self._shown = None

    def log(
        self, rec: Any, qpos: NDArray[np.float32], usable: bool, joints: NDArray[np.float32] | None
    ) -> None:
        """One row: the robot posed at the human wrist, or cleared."""
        import rerun as rr

        frame = None if joints is None else camera_from_wrist_frame(joints, self.hand.side)
        if not usable or frame is None or not np.isfinite(frame).all() or not np.isfinite(qpos).all():
            if self._shown is not False:
                rec.log(self.root, rr.Clear(recursive=True))
                self._shown = False
            return
        assert joints is not None
        poses = self.hand.link_poses(qpos, frame, np.asarray(joints[0], np.float64))
        if self._shown is not True:
            self._log_meshes(rec)
            self._shown = True
        for link, pose in poses.items():
            rec.log(self._link_path[link], rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]))
        rec.log(
            f"{self.root}/skeleton",
            rr.LineStrips3D(self._skeleton(poses), colors=SKELETON_COLOUR, radii=0.002),
        )

    def _log_meshes(self, rec: Any) -> None:
        import rerun as rr

        for i, visual in enumerate(self.hand.visuals):
            path = f"{self._link_path[visual.link]}/mesh_{i}"
            pose = visual.link_from_mesh
            rec.log(path, rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]))
            rec.log(path, rr.Asset3D(path=visual.mesh))

    def _skeleton(self, poses: dict[str, NDArray[np.float64]]) -> list[NDArray[np.float64]]:
        return [
            np.stack([poses[a][:3, 3], poses[b][:3, 3]])
            for a, b in self.hand.bones
            if a in poses and b in poses
        ]
