"""`vidihand label`: write UMI's robot action keys into an existing dataset, crash-safe.

Reads each configured hand's `{side}_hand_*` rows, computes the labels (`labels.gripper`) and
replaces every `robot{i}_*` key in one journalled change (`dataset.columns`) while holding the
writer lock, so a kill leaves the previous labels (or none) or the new ones, never a mix. Every
label array records the configuration and its file's sha256. Episodes appended later get
unlabelled rows (NaN, `label_valid` False) until `vidihand label` runs again. A robot the new
configuration no longer names loses its keys, after the new labels are in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidihand_ros import __version__
from vidihand_ros.dataset import journal
from vidihand_ros.dataset.attrs import utc_now
from vidihand_ros.dataset.columns import Column, owned_keys, remove_columns, replace_columns
from vidihand_ros.dataset.lock import acquire_lock, os_reason
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import LOWDIM_CHUNK_ROWS, hand_key
from vidihand_ros.dataset.writable import check_writable_episodes
from vidihand_ros.errors import DatasetError
from vidihand_ros.labels.config import LabelConfig, RobotHand
from vidihand_ros.labels.gripper import HandRows, label_rows
from vidihand_ros.labels.keys import robot_specs

__all__ = ["OWNER", "LabelReport", "RobotResult", "check_dataset", "label_dataset"]

log = logging.getLogger(__name__)

#: The owner recorded in (and required of) every label array.
OWNER = "vidihand label"
#: Rows of joints read at a time (only the two aperture tips are kept).
_BLOCK_ROWS = 16 * LOWDIM_CHUNK_ROWS


@dataclass(frozen=True)
class RobotResult:
    robot: str
    side: str
    labelled: int
    rows: int

    @property
    def share(self) -> float:
        return self.labelled / self.rows if self.rows else float("nan")


@dataclass
class LabelReport:
    robots: list[RobotResult] = field(default_factory=list)
    rows: int = 0
    #: What `journal.recover` finished first (an interrupted annotate or label run), or None.
    recovered: str | None = None


def check_dataset(path: Path) -> None:
    """Refuse, before the lock file is made, what label must not write into (`dataset.writable`)."""
    check_writable_episodes(path, "label")


def label_dataset(path: str | Path, config: LabelConfig) -> LabelReport:
    """Compute and write every configured robot's label keys into the dataset at `path`."""
    path = Path(path)
    check_dataset(path)
    lock = acquire_lock(path)
    try:
        report = LabelReport(recovered=journal.recover(path))
        if report.recovered:
            log.warning("%s: %s", path, report.recovered)
        reader = DatasetReader(path)
        ends = [int(e) for e in reader.episode_ends]
        report.rows = reader.num_frames
        columns: list[Column] = []
        for robot in config.robots:
            hand = _hand_rows(reader, robot.side, config)
            values = label_rows(hand, robot.T_wrist_gripper, config.aperture, config.min_presence, ends)
            attrs = _attrs(config, robot)
            for spec in robot_specs(robot.robot, robot.side):
                columns.append(Column(spec, values[spec.name.removeprefix(f"{robot.robot}_")], attrs))
            labelled = int(np.count_nonzero(values["label_valid"]))
            report.robots.append(RobotResult(robot.robot, robot.side, labelled, report.rows))
        replace_columns(path, columns, owner=OWNER)
        # Keys of robots the configuration no longer names would be read as a robot by UMI.
        written = {column.spec.name for column in columns}
        remove_columns(path, [k for k in owned_keys(path, OWNER) if k not in written], owner=OWNER)
    except OSError as err:
        raise DatasetError(f"cannot label: {os_reason(err, path)}", source=path) from err
    finally:
        lock.close()
    return report


def _hand_rows(reader: DatasetReader, side: str, config: LabelConfig) -> HandRows:
    """The committed rows of one hand's keys; of `joints_3d` only the two aperture tips."""
    n = reader.num_frames

    def rows(field: str) -> np.ndarray:
        return np.asarray(reader.array(hand_key(side, field))[:n])

    joints = reader.array(hand_key(side, "joints_3d"))
    tips = np.empty((n, 2, 3), dtype=np.float32)
    picked = list(config.aperture.keypoints)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(n, start + _BLOCK_ROWS)
        tips[start:stop] = np.asarray(joints[start:stop])[:, picked]
    return HandRows(rows("valid"), rows("presence"), rows("wrist_pos"), rows("wrist_rot_axis_angle"), tips)


def _attrs(config: LabelConfig, robot: RobotHand) -> dict[str, object]:
    return {
        "robot": robot.robot,
        "hand": robot.side,
        "label_config": config.as_attrs(),
        "label_config_sha256": config.sha256,
        "label_config_file": str(config.source) if config.source is not None else None,
        "software": f"vidihand_ros {__version__}",
        "time": utc_now(),
    }
