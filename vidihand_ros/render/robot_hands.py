"""The retargeted robot hands a dataset holds, ready to be posed in the camera frame.

`vidihand retarget` records in each `robot{i}_hand_qpos` array which URDF (path and sha256), which
joints and which configuration produced it; this finds that URDF again (where it was, or by its
`<robot folder>/<file>` name under a `--urdf-dir`), refuses one whose bytes changed, and reads its
visual meshes and link tree. A row is posed by forward kinematics of the stored angles, with the
robot's configured wrist link put on the human wrist and its root turned like the human wrist
frame (`retarget.wrist_frame`), the frame the optimiser matched the two hands in: so the robot
hand is drawn where the human hand is, at the robot's own size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.errors import InputError
from vidihand_ros.retarget.keys import qpos_keys, robot_of, valid_key

if TYPE_CHECKING:
    from vidihand_ros.retarget.kinematics import RobotKinematics

__all__ = ["RobotHand", "Visual", "robot_hands"]


@dataclass(frozen=True)
class Visual:
    """One visual mesh of a link: its file and its pose (4×4, scale included) in the link's frame."""

    link: str
    mesh: Path
    link_from_mesh: NDArray[np.float64]


@dataclass
class RobotHand:
    """One retargeted hand of a dataset: its arrays' key, URDF, joints and what to draw."""

    key: str
    side: str
    robot: str
    urdf_path: Path
    joint_names: tuple[str, ...]
    wrist_link: str
    visuals: list[Visual]
    #: (parent link, child link) of every URDF joint: the skeleton drawn with or without meshes.
    bones: list[tuple[str, str]]
    kinematics: RobotKinematics

    @property
    def valid_key(self) -> str:
        """The key of the mask saying which rows hold angles."""
        return valid_key(robot_of(self.key))

    @cached_property
    def links(self) -> list[str]:
        return sorted({link for bone in self.bones for link in bone} | {v.link for v in self.visuals})

    def link_poses(
        self, qpos: NDArray[np.float32], camera_from_wrist: NDArray[np.float64], wrist: NDArray[np.float64]
    ) -> dict[str, NDArray[np.float64]]:
        """{link: 4×4 camera-frame pose} for one row's angles and the human wrist's frame and position."""
        poses = self.kinematics.link_poses(self.kinematics.qpos(qpos, self.joint_names), self.links)
        root = np.eye(4)
        root[:3, :3] = camera_from_wrist
        root[:3, 3] = wrist - camera_from_wrist @ poses[self.wrist_link][:3, 3]
        return {link: root @ pose for link, pose in poses.items()}


def robot_hands(reader: DatasetReader, urdf_dir: Path | None = None) -> list[RobotHand]:
    """Every `robot{i}_hand_qpos` of the dataset, with its URDF loaded (`InputError` naming what fails)."""
    keys = qpos_keys(reader.keys)
    if not keys:
        raise InputError(
            "no retargeted robot hands (robot{i}_hand_qpos): run vidihand retarget first", source=reader.path
        )
    try:
        from dex_retargeting import yourdfpy

        from vidihand_ros.retarget.kinematics import RobotKinematics
        from vidihand_ros.retarget.urdf_log import mesh_warnings_off
    except ImportError as err:
        raise InputError(
            f"drawing robot hands needs the retarget extra ({err}): pip install 'vidihand_ros[retarget]'"
        ) from err
    hands = []
    for key in keys:
        attrs = dict(zc.get_attrs(reader.array(key)))
        urdf = _find_urdf(reader.path, key, attrs, urdf_dir)
        with mesh_warnings_off():
            model = yourdfpy.URDF.load(str(urdf), build_scene_graph=False, load_meshes=False)
            visuals = _visuals(model, urdf.parent, yourdfpy.filename_handler_magic)
        hands.append(
            RobotHand(
                key=key,
                side=str(attrs["hand"]),
                robot=str(attrs.get("robot", "")),
                urdf_path=urdf,
                joint_names=tuple(attrs["joint_names"]),
                wrist_link=_wrist_link(attrs.get("retarget_config") or {}, model),
                visuals=visuals,
                bones=[(j.parent, j.child) for j in model.robot.joints],
                kinematics=RobotKinematics(urdf),
            )
        )
    return hands


def _find_urdf(dataset: Path, key: str, attrs: dict[str, Any], urdf_dir: Path | None) -> Path:
    recorded = attrs.get("urdf_file")
    if not isinstance(recorded, str) or "joint_names" not in attrs or "hand" not in attrs:
        raise InputError(
            "not written by vidihand retarget (no urdf_file / joint_names)", source=dataset, field=key
        )
    path = Path(recorded)
    candidates = [urdf_dir / path.parent.name / path.name, urdf_dir / path.name] if urdf_dir else [path]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        where = (
            f"under --urdf-dir {urdf_dir}"
            if urdf_dir
            else "(give --urdf-dir: a folder laid out as dex-urdf's robots/hands)"
        )
        raise InputError(
            f"the robot model {path.parent.name}/{path.name} is not found {where}", source=dataset, field=key
        )
    if hashlib.sha256(found.read_bytes()).hexdigest() != attrs.get("urdf_sha256"):
        raise InputError(
            f"{found} is not the URDF the angles were retargeted for (sha256 differs)",
            source=dataset,
            field=key,
        )
    return found.resolve()


def _wrist_link(config: dict[str, Any], model: Any) -> str:
    """The link the optimiser measured fingertips from (vector / DexPilot), else the root link."""
    origins = config.get("target_origin_link_names") or []
    named = config.get("wrist_link_name") or (origins[0] if origins else None)
    if named:
        return str(named)
    children = {j.child for j in model.robot.joints}
    return next(link.name for link in model.robot.links if link.name not in children)


def _visuals(model: Any, folder: Path, resolve: Any) -> list[Visual]:
    visuals = []
    for link in model.robot.links:
        for visual in link.visuals:
            mesh = visual.geometry.mesh if visual.geometry is not None else None
            if mesh is None:
                continue
            path = Path(resolve(mesh.filename, dir=str(folder)))
            if not path.is_file():
                continue  # kinematics-only models (LEAP as bundled): the skeleton is drawn instead
            pose = np.eye(4) if visual.origin is None else np.asarray(visual.origin, dtype=np.float64)
            scale = (
                np.ones(3)
                if mesh.scale is None
                else np.broadcast_to(np.asarray(mesh.scale, np.float64), (3,))
            )
            pose = pose.copy()
            pose[:3, :3] = pose[:3, :3] * scale
            visuals.append(Visual(link.name, path, pose))
    return visuals
