"""Which `dex-retargeting` configuration and URDF retarget a hand: found and checked, not built.

The package ships one YAML per robot, side and mode (`configs/teleop/<robot>_<side>.yml` for
vector, `..._dexpilot.yml` for DexPilot, `configs/offline/<robot>_<side>.yml` for position), each
naming its URDF relative to a folder of robot models laid out as `dexsuite/dex-urdf`'s
`robots/hands/`, which the user gives (`--urdf-dir`): the models carry their own licences and are
not in the package. A user's own configuration (`--config`) names its URDF relative to `--urdf-dir`
or, without it, to the configuration's folder. Everything is checked here, before the dataset is
locked, so that a wrong name or a missing file is one line naming it. Nothing here imports the
package's optimisers (or torch): its configuration files are found from its install location.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidihand_ros.errors import InputError

__all__ = ["MODES", "ROBOTS", "RetargetSetup", "find_setup", "find_setups", "package_config_dir"]

#: Our robot names → the package's folder and file stem (`ROBOT_NAME_MAP` in its constants).
ROBOTS = {
    "allegro": "allegro_hand",
    "leap": "leap_hand",
    "shadow": "shadow_hand",
    "svh": "schunk_svh_hand",
    "ability": "ability_hand",
    "inspire": "inspire_hand",
}
#: vector / dexpilot: for teleoperation (fingertip vectors from the wrist; DexPilot adds a pinch
#: prior); position: fingertip and middle-joint positions with a free-floating wrist (offline).
MODES = ("vector", "dexpilot", "position")
#: The hand sides (`types.HAND_SIDES`; not imported, so that `vidihand --help` imports no numpy).
_SIDES = ("left", "right")
_INSTALL_HINT = "robot-hand retargeting needs the retarget extra: pip install 'vidihand_ros[retarget]'"


@dataclass(frozen=True)
class RetargetSetup:
    """One hand's resolved configuration: what builds the optimiser and what the arrays record."""

    robot: str
    side: str
    mode: str
    config_path: Path
    #: The YAML's `retargeting` mapping, with `urdf_path` made absolute.
    config: dict[str, Any] = field(hash=False)
    config_sha256: str
    urdf_path: Path
    urdf_sha256: str

    @property
    def fingertip_links(self) -> tuple[str, ...]:
        """The robot links matched to the human fingertips, thumb first, as the configuration names them.

        The order is the human one (thumb, index, middle, ring) whatever the robot numbers its
        fingers: the left Allegro's index is `link_11.0`, the right one's `link_3.0`.
        """
        names = (
            self.config.get("finger_tip_link_names")  # DexPilot
            or self.config.get("target_task_link_names")  # vector
            or list(self.config.get("target_link_names") or [])[:4]  # position: tips, then middle joints
        )
        return tuple(str(n) for n in names)


def package_config_dir() -> Path:
    """The `configs/` folder of the installed `dex_retargeting` (an `InputError` when absent)."""
    spec = importlib.util.find_spec("dex_retargeting")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(_INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / "configs"


def find_setup(
    robot: str,
    side: str,
    mode: str,
    *,
    urdf_dir: Path | None = None,
    config_file: Path | None = None,
    low_pass_alpha: float | None = None,
) -> RetargetSetup:
    """Resolve and check one hand's configuration and URDF (`InputError` naming what is wrong)."""
    if side not in _SIDES:
        raise ValueError(f"side must be one of {_SIDES}, got {side!r}")
    if config_file is None:
        if robot not in ROBOTS:
            raise InputError(f"unknown robot {robot!r}; known: {', '.join(ROBOTS)} (or give --config)")
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if urdf_dir is None:
            raise InputError(
                "--urdf-dir is required: the robot hand models (dexsuite/dex-urdf's robots/hands, each "
                "under its own licence) are not bundled"
            )
        config_path = _package_config(robot, side, mode)
    else:
        config_path = config_file
    raw, cfg = _read_config(config_path)
    if low_pass_alpha is not None:
        cfg["low_pass_alpha"] = low_pass_alpha
    base = urdf_dir if urdf_dir is not None else config_path.parent
    urdf_path = _urdf(cfg, base, config_path, from_dir=urdf_dir is not None)
    cfg["urdf_path"] = str(urdf_path)
    configured_mode = str(cfg.get("type", "")).lower()
    return RetargetSetup(
        robot=robot,
        side=side,
        mode=configured_mode or mode,
        config_path=config_path,
        config=cfg,
        config_sha256=hashlib.sha256(raw).hexdigest(),
        urdf_path=urdf_path,
        urdf_sha256=hashlib.sha256(urdf_path.read_bytes()).hexdigest(),
    )


def find_setups(
    robot: str,
    sides: Sequence[str],
    mode: str,
    *,
    urdf_dir: Path | None = None,
    config_file: Path | None = None,
    low_pass_alpha: float | None = None,
) -> list[RetargetSetup]:
    """`find_setup` for each of `sides` (what the command and the node retarget); a configuration
    file is one hand's, so it takes one side."""
    if config_file is not None and len(sides) > 1:
        raise InputError(
            "a retargeting configuration is one hand's: choose the left or the right hand", source=config_file
        )
    return [
        find_setup(
            robot, side, mode, urdf_dir=urdf_dir, config_file=config_file, low_pass_alpha=low_pass_alpha
        )
        for side in sides
    ]


def _package_config(robot: str, side: str, mode: str) -> Path:
    folder = package_config_dir() / ("offline" if mode == "position" else "teleop")
    suffix = "_dexpilot" if mode == "dexpilot" else ""
    path = folder / f"{ROBOTS[robot]}_{side}{suffix}.yml"
    if not path.is_file():
        raise InputError(
            f"dex-retargeting has no {mode} configuration for the {side} {robot} hand", source=path
        )
    return path


def _read_config(path: Path) -> tuple[bytes, dict[str, Any]]:
    from vidihand_ros.yaml_file import read_yaml_mapping  # ruamel: not for `vidihand --help`

    raw, doc = read_yaml_mapping(
        path, "retargeting config", "a mapping under 'retargeting' (dex-retargeting's format)"
    )
    cfg = doc.get("retargeting")
    if not isinstance(cfg, dict):
        raise InputError("expected a mapping under 'retargeting' (dex-retargeting's format)", source=path)
    if not isinstance(cfg.get("urdf_path"), str):
        raise InputError("expected the robot's URDF file name", source=path, field="retargeting.urdf_path")
    return raw, dict(cfg)


def _urdf(cfg: dict[str, Any], base: Path, config_path: Path, *, from_dir: bool) -> Path:
    named = Path(cfg["urdf_path"])
    path = named if named.is_absolute() else base / named
    if not path.is_file():
        where = f"--urdf-dir {base}" if from_dir else str(config_path)
        raise InputError(
            f"{named} not found (from {where}): point --urdf-dir at a folder laid out as "
            "dexsuite/dex-urdf's robots/hands"
        )
    return path.resolve()
