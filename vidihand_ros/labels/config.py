"""The hand-to-gripper configuration of `vidihand label` (config/hand_to_gripper.yaml), checked.

Every value is checked when the file is loaded, so a typo is reported as one line naming the
file and the field (an `InputError`) before the dataset is touched. Unknown keys are refused too:
a misspelt optional key would otherwise be silently replaced by its default.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vidihand_ros.errors import InputError
from vidihand_ros.types import HAND_SIDES, NUM_JOINTS
from vidihand_ros.yaml_file import read_yaml_mapping

__all__ = ["FORMAT", "Aperture", "LabelConfig", "RobotHand", "load_config"]

#: The `format:` this code reads (optional in the file).
FORMAT = 1
DEFAULT_ROBOTS = {"robot0": "right", "robot1": "left"}
DEFAULT_KEYPOINTS = (4, 8)  # thumb tip, index tip
DEFAULT_MIN_PRESENCE = 0.5
#: How far a given rotation matrix may be from orthonormal (it is used as given, not repaired).
ROTATION_TOLERANCE = 1e-6
#: Larger offsets or apertures (metres) are a unit mistake (millimetres), not a hand.
MAX_METRES = 2.0
_TOP = {"format", "robots", "min_presence", "aperture", "hands"}
_APERTURE = {"keypoints", "aperture_min", "aperture_max", "width_min", "width_max"}
_ROBOT_NAMES = ("robot0", "robot1")


@dataclass(frozen=True)
class Aperture:
    """Thumb-index aperture → gripper width: linear from [aperture_min, aperture_max] onto
    [width_min, width_max], clipped (UMI's gripper calibration, `get_gripper_calibration_interpolator`)."""

    keypoints: tuple[int, int]
    aperture_min: float
    aperture_max: float
    width_min: float
    width_max: float


@dataclass(frozen=True)
class RobotHand:
    """Which hand drives `robot` and where its gripper frame sits in the wrist (palm) frame."""

    robot: str
    side: str
    #: 4x4 homogeneous transform: gripper frame expressed in the wrist frame.
    T_wrist_gripper: NDArray[np.float64]


@dataclass(frozen=True)
class LabelConfig:
    robots: tuple[RobotHand, ...]
    aperture: Aperture
    min_presence: float
    source: Path | None = None
    #: sha256 of the file's bytes ("" when built in code).
    sha256: str = ""

    def as_attrs(self) -> dict[str, Any]:
        """The configuration as JSON attributes (what each label array records)."""
        return {
            "format": FORMAT,
            "robots": {r.robot: r.side for r in self.robots},
            "min_presence": self.min_presence,
            "aperture": {
                "keypoints": list(self.aperture.keypoints),
                "aperture_min": self.aperture.aperture_min,
                "aperture_max": self.aperture.aperture_max,
                "width_min": self.aperture.width_min,
                "width_max": self.aperture.width_max,
            },
            "hands": {r.side: {"T_wrist_gripper": r.T_wrist_gripper.tolist()} for r in self.robots},
        }


def load_config(path: Path) -> LabelConfig:
    """Read and check the YAML at `path`; anything wrong is an `InputError` naming the field."""
    raw, doc = read_yaml_mapping(path, "hand-to-gripper config", "a mapping (robots, aperture, hands, ...)")
    return parse_config(doc, path, hashlib.sha256(raw).hexdigest())


def parse_config(doc: Mapping[str, Any], path: Path | None = None, sha256: str = "") -> LabelConfig:
    """A checked `LabelConfig` from the parsed YAML document."""
    where = _Where(path)
    where.known(doc, _TOP, "")
    version = doc.get("format", FORMAT)
    if version != FORMAT or isinstance(version, bool):
        raise where.error("format", f"this vidihand_ros reads format {FORMAT}, got {version!r:.40}")
    robots = _robots(doc.get("robots", DEFAULT_ROBOTS), where)
    min_presence = where.number(doc.get("min_presence", DEFAULT_MIN_PRESENCE), "min_presence", 0.0, 1.0)
    aperture = _aperture(doc.get("aperture"), where)
    hands = doc.get("hands")
    if not isinstance(hands, dict):
        raise where.error("hands", "expected a mapping of hand side to its T_wrist_gripper")
    where.known(hands, set(HAND_SIDES), "hands")
    pairs = []
    for robot, side in robots.items():
        entry = hands.get(side)
        if not isinstance(entry, dict):
            raise where.error(f"hands.{side}", f"{robot} is the {side} hand: give its T_wrist_gripper")
        where.known(entry, {"T_wrist_gripper"}, f"hands.{side}")
        transform = _transform(entry.get("T_wrist_gripper"), where, f"hands.{side}.T_wrist_gripper")
        pairs.append(RobotHand(robot, side, transform))
    return LabelConfig(tuple(pairs), aperture, min_presence, path, sha256)


class _Where:
    """Builds the errors, each naming the file and the dotted field."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def error(self, field: str, message: str) -> InputError:
        return InputError(message, source=self.path, field=field or None)

    def known(self, mapping: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        for key in mapping:
            if key not in allowed:
                name = f"{prefix}.{key}" if prefix else str(key)
                raise self.error(name, f"unknown key; expected one of {', '.join(sorted(allowed))}")

    def number(self, value: Any, field: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(field, f"expected a number, got {value!r:.40}")
        if not low <= value <= high:
            raise self.error(field, f"must be in [{low:g}, {high:g}], got {value:g}")
        return float(value)


def _robots(value: Any, where: _Where) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise where.error("robots", "expected a mapping like {robot0: right, robot1: left}")
    where.known(value, set(_ROBOT_NAMES), "robots")
    if "robot0" not in value:
        raise where.error("robots", "robot0 is required (UMI numbers robots from 0)")
    robots = {}
    for name in _ROBOT_NAMES:
        if name in value:
            side = value[name]
            if side not in HAND_SIDES:
                raise where.error(
                    f"robots.{name}", f"expected one of {', '.join(HAND_SIDES)}, got {side!r:.40}"
                )
            robots[name] = str(side)
    if len(set(robots.values())) != len(robots):
        raise where.error("robots", "each hand drives at most one robot")
    return robots


def _aperture(value: Any, where: _Where) -> Aperture:
    if not isinstance(value, dict):
        raise where.error("aperture", "expected a mapping with aperture_min/max and width_min/max (metres)")
    where.known(value, _APERTURE, "aperture")
    for name in sorted(_APERTURE - {"keypoints"}):
        if name not in value:
            raise where.error(f"aperture.{name}", "missing (metres)")
    keypoints = value.get("keypoints", list(DEFAULT_KEYPOINTS))
    ok = isinstance(keypoints, list) and len(keypoints) == 2
    ok = ok and all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < NUM_JOINTS for k in keypoints)
    if not ok or keypoints[0] == keypoints[1]:
        raise where.error(
            "aperture.keypoints", f"expected two different joint indices in 0..{NUM_JOINTS - 1}, like [4, 8]"
        )
    a_min, a_max, w_min, w_max = (
        where.number(value[name], f"aperture.{name}", 0.0, MAX_METRES)
        for name in ("aperture_min", "aperture_max", "width_min", "width_max")
    )
    if not a_max > a_min:
        raise where.error("aperture.aperture_max", f"must be greater than aperture_min ({a_min:g})")
    if not w_max >= w_min:
        raise where.error("aperture.width_max", f"must be at least width_min ({w_min:g})")
    return Aperture((keypoints[0], keypoints[1]), a_min, a_max, w_min, w_max)


def _transform(value: Any, where: _Where, field: str) -> NDArray[np.float64]:
    """A 4x4 matrix (list of 4 rows) or {xyz: [3], rotvec: [3]} → a checked 4x4 transform."""
    if isinstance(value, dict):
        where.known(value, {"xyz", "rotvec"}, field)
        xyz = _vector(value.get("xyz", [0.0, 0.0, 0.0]), 3, where, f"{field}.xyz")
        rotvec = _vector(value.get("rotvec", [0.0, 0.0, 0.0]), 3, where, f"{field}.rotvec")
        matrix = np.eye(4)
        matrix[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
        matrix[:3, 3] = xyz
    elif isinstance(value, list) and len(value) == 4 and all(isinstance(row, list) for row in value):
        matrix = np.stack([_vector(row, 4, where, f"{field}[{i}]") for i, row in enumerate(value)])
        if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=0.0):
            raise where.error(field, "the last row of a 4x4 transform must be [0, 0, 0, 1]")
        rotation = matrix[:3, :3]
        if not (
            np.allclose(rotation @ rotation.T, np.eye(3), atol=ROTATION_TOLERANCE)
            and np.linalg.det(rotation) > 0
        ):
            raise where.error(field, "the upper-left 3x3 is not a rotation (orthonormal, determinant +1)")
    else:
        raise where.error(
            field, "expected a 4x4 matrix (4 rows of 4 numbers) or {xyz: [x, y, z], rotvec: [rx, ry, rz]}"
        )
    if np.abs(matrix[:3, 3]).max() > MAX_METRES:
        raise where.error(field, f"translation over {MAX_METRES:g} m: the offsets are in metres")
    return matrix


def _vector(value: Any, size: int, where: _Where, field: str) -> NDArray[np.float64]:
    if not isinstance(value, list) or len(value) != size:
        raise where.error(field, f"expected {size} numbers")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise where.error(field, f"expected {size} finite numbers, got {v!r:.40}")
    return np.asarray(value, dtype=np.float64)
