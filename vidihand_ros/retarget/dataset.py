"""`vidihand retarget`: write robot-hand joint actions into an existing dataset, crash-safe.

Reads each chosen hand's rows, brings its 21 camera-frame joints into the wrist frame
(`wrist_frame`), runs the package's optimiser along each episode (`sequence`) and replaces that
hand's `robot{i}_hand_qpos` / `_valid` keys in one journalled change (`dataset.columns`, as
`vidihand label` does) while holding the writer lock. With `mano_dir`, rows that hold MANO
parameters are retargeted from the MANO layer's joints (fingertips on the mesh surface) instead of
the stored `joints_3d`. Every array records the robot, mode, joint names and limits, and the
sha256 of the configuration and of the URDF, so a policy knows exactly which robot it drives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vidihand_ros import __version__
from vidihand_ros.dataset import journal
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.attrs import utc_now
from vidihand_ros.dataset.columns import Column, owned_keys, remove_columns, replace_columns
from vidihand_ros.dataset.lock import acquire_lock, os_reason
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.dataset.writable import check_writable_episodes
from vidihand_ros.errors import DatasetError
from vidihand_ros.retarget.keys import DEFAULT_ROBOT_OF_SIDE, qpos_specs
from vidihand_ros.retarget.robots import RetargetSetup
from vidihand_ros.retarget.sequence import Smoothness, joint_accelerations, retarget_rows, usable_rows

__all__ = ["OWNER", "HandResult", "RetargetReport", "check_dataset", "retarget_dataset"]

log = logging.getLogger(__name__)

#: The owner recorded in (and required of) every array this command writes.
OWNER = "vidihand retarget"
#: A hand counts as present from this presence on (as `vidihand label`'s default).
DEFAULT_MIN_PRESENCE = 0.5
_MANO_FIELDS = ("global_orient", "hand_pose", "betas", "transl")

Progress = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class HandResult:
    robot: str
    side: str
    robot_model: str
    mode: str
    dof: int
    retargeted: int
    rows: int
    #: Rows whose keypoints came from the MANO layer.
    from_mano: int
    seconds: float
    smoothness: Smoothness

    @property
    def frames_per_second(self) -> float:
        return self.retargeted / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class RetargetReport:
    hands: list[HandResult] = field(default_factory=list)
    rows: int = 0
    recovered: str | None = None


def check_dataset(path: Path) -> None:
    """Refuse, before the lock file is made, what retarget must not write into."""
    check_writable_episodes(path, "retarget")


def retarget_dataset(
    path: str | Path,
    setups: Sequence[RetargetSetup],
    *,
    min_presence: float = DEFAULT_MIN_PRESENCE,
    mano_dir: Path | None = None,
    progress: Progress | None = None,
) -> RetargetReport:
    """Retarget each setup's hand over every committed row and write its keys into `path`."""
    from vidihand_ros.retarget.solver import HandRetargeter, dex_retargeting_version

    path = Path(path)
    check_dataset(path)
    solvers = [HandRetargeter(setup) for setup in setups]  # config errors before the lock
    lock = acquire_lock(path)
    try:
        report = RetargetReport(recovered=journal.recover(path))
        if report.recovered:
            log.warning("%s: %s", path, report.recovered)
        reader = DatasetReader(path)
        ends = [int(e) for e in reader.episode_ends]
        report.rows = reader.num_frames
        columns: list[Column] = []
        for setup, solver in zip(setups, solvers, strict=True):
            robot = _robot_of_side(reader, setup.side)
            joints, from_mano = _keypoints(reader, setup.side, mano_dir)
            usable = usable_rows(
                _rows(reader, setup.side, "valid"),
                _rows(reader, setup.side, "presence"),
                joints,
                min_presence,
            )
            advance = progress(f"{setup.side} → {setup.robot}", report.rows) if progress else None
            tic = time.perf_counter()
            qpos, mask = retarget_rows(solver, joints, setup.side, usable, ends, advance)
            seconds = time.perf_counter() - tic
            angles, valid = qpos_specs(robot, setup.side, setup.robot, solver.dof)
            attrs = _attrs(
                setup, solver.joint_names, solver.joint_limits, dex_retargeting_version(), mano_dir
            )
            columns += [Column(angles, qpos, attrs), Column(valid, mask, attrs)]
            report.hands.append(
                HandResult(
                    robot,
                    setup.side,
                    setup.robot,
                    setup.mode,
                    solver.dof,
                    int(np.count_nonzero(mask)),
                    report.rows,
                    int(np.count_nonzero(from_mano & mask)),
                    seconds,
                    _smoothness(reader, qpos, mask),
                )
            )
        _drop_resized(path, columns)
        replace_columns(path, columns, owner=OWNER)
    except OSError as err:
        raise DatasetError(f"cannot retarget: {os_reason(err, path)}", source=path) from err
    finally:
        lock.close()
    return report


def _rows(reader: DatasetReader, side: str, field: str) -> NDArray[np.generic]:
    return np.asarray(reader.array(hand_key(side, field))[: reader.num_frames])


def _robot_of_side(reader: DatasetReader, side: str) -> str:
    """The robot number `vidihand label` gave this hand, else the default one."""
    for key in reader.keys:
        labelled = key.startswith("robot") and key.endswith("_label_valid")
        if labelled and zc.get_attrs(reader.array(key)).get("hand") == side:
            return key.removesuffix("_label_valid")
    return DEFAULT_ROBOT_OF_SIDE[side]


def _keypoints(
    reader: DatasetReader, side: str, mano_dir: Path | None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(joints (N, 21, 3), which rows came from MANO): the stored joints, MANO's where asked."""
    joints = np.asarray(_rows(reader, side, "joints_3d"), dtype=np.float64)
    from_mano = np.zeros(len(joints), dtype=bool)
    if mano_dir is None:
        return joints, from_mano
    params = {name: np.asarray(_rows(reader, side, name), dtype=np.float64) for name in _MANO_FIELDS}
    from_mano = np.logical_and.reduce(
        [np.isfinite(v.reshape(len(v), -1)).all(axis=1) for v in params.values()]
    ) & np.asarray(_rows(reader, side, "valid"), dtype=bool)
    if from_mano.any():
        joints[from_mano] = _mano_joints(mano_dir, side, {k: v[from_mano] for k, v in params.items()})
    return joints, from_mano


def _mano_joints(mano_dir: Path, side: str, params: dict[str, NDArray[np.float64]]) -> NDArray[np.float64]:
    import torch

    from vidihand_ros.mano.layer import load_mano_layers

    layer = load_mano_layers(mano_dir, (side,), dtype=torch.float64)[side]
    n = len(params["global_orient"])
    t = {k: torch.from_numpy(v.reshape(n, -1)) for k, v in params.items()}
    with torch.no_grad():
        out = layer.joints(t["global_orient"], t["hand_pose"], t["betas"], t["transl"])
    return np.asarray(out.numpy(), dtype=np.float64)


def _smoothness(reader: DatasetReader, qpos: NDArray[np.float32], mask: NDArray[np.bool_]) -> Smoothness:
    parts = []
    for i in range(reader.num_episodes):
        start, stop = reader.bounds(i)
        fps = reader.fps(i)
        if np.isfinite(fps):
            parts.append(joint_accelerations(qpos[start:stop], mask[start:stop], fps))
    return Smoothness.of(parts)


def _drop_resized(path: Path, columns: Sequence[Column]) -> None:
    """Remove our keys whose joint count changes (another robot): a key keeps its shape."""
    data = zc.open_group(path, "r")["data"]
    mine = set(owned_keys(path, OWNER))
    stale = [
        c.spec.name
        for c in columns
        if c.spec.name in mine and tuple(data[c.spec.name].shape[1:]) != c.spec.shape
    ]
    remove_columns(path, stale, owner=OWNER)


def _attrs(
    setup: RetargetSetup,
    joint_names: Sequence[str],
    joint_limits: NDArray[np.float64],
    package_version: str,
    mano_dir: Path | None,
) -> dict[str, object]:
    return {
        "robot": setup.robot,
        "hand": setup.side,
        "mode": setup.mode,
        "joint_names": list(joint_names),
        "joint_limits": joint_limits.tolist(),
        "retarget_config": setup.config,
        "retarget_config_file": str(setup.config_path),
        "retarget_config_sha256": setup.config_sha256,
        "urdf_file": str(setup.urdf_path),
        "urdf_sha256": setup.urdf_sha256,
        "keypoints": "MANO layer joints where MANO is stored, else joints_3d" if mano_dir else "joints_3d",
        "dex_retargeting": package_version,
        "software": f"vidihand_ros {__version__}",
        "time": utc_now(),
    }
