"""A dataset as a Rerun recording: frames, 2D keypoints, 3D joints, the camera, wrist paths, topics.

The world is the camera's optical frame (RDF: x right, y down, z forward), as the dataset stores
it, so the 3D joints sit in front of the camera's frustum (a Pinhole from the stored K). Three
timelines: `frame` (dataset row), `episode_frame` (index within the episode) and `stamp` (the
source header stamp). Stored JPEGs go in as they are (`EncodedImage`: no decode, no re-encode).
Each episode's whole wrist path is logged at its first frame. Per-row scalars (presence, valid,
filled, and every key beyond the schema: co-recorded topics, robot labels, robot-hand joint
angles) are sent as columns. Retargeted robot hands, when asked for, are posed beside the human
hands (`rerun_robot`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY, LOWDIM_BY_NAME, LOWDIM_CHUNK_ROWS
from vidihand_ros.dataset.stored_frames import jpeg_chunks, stored_jpeg
from vidihand_ros.render.frames import row_stamps
from vidihand_ros.render.robot_hands import RobotHand
from vidihand_ros.render.selection import EpisodeRows
from vidihand_ros.render.stored_hands import MIN_PRESENCE, HandRows, HandState, read_hands
from vidihand_ros.visualize import HAND_BONES, SIDE_COLOURS

__all__ = ["APPLICATION_ID", "scalar_keys", "write_rerun"]

APPLICATION_ID = "vidihand_ros"
#: Keys beyond the schema with at most this many values a row are logged as scalars.
MAX_SCALAR_WIDTH = 16


def write_rerun(
    reader: DatasetReader,
    selection: list[EpisodeRows],
    *,
    rrd: Path | None = None,
    spawn: bool = False,
    min_presence: float = MIN_PRESENCE,
    robot_hands: Sequence[RobotHand] = (),
) -> int:
    """Log the selected rows to `rrd` (a file), or else stream them to a spawned viewer (`spawn`).

    With both, the file is written and a viewer opened on it. Returns the rows logged.
    """
    import rerun as rr

    from vidihand_ros.render.rerun_robot import RobotHandLogger

    rec: Any = rr.new_recording(APPLICATION_ID, recording_id=str(reader.path.resolve()))
    if rrd is not None:
        rec.save(str(rrd))
    elif spawn:
        rec.spawn()
    rec.log("world", rr.ViewCoordinates.RDF, static=True)
    robots = [RobotHandLogger(hand) for hand in robot_hands]
    logged = 0
    for rows in selection:
        _log_episode(rec, reader, rows, min_presence, robots)
        _send_scalars(rec, reader, rows)
        logged += rows.stop - rows.start
    rec.flush(blocking=True)
    if rrd is not None:
        rec.disconnect()
        if spawn:
            subprocess.Popen([sys.executable, "-m", "rerun", str(rrd)])
    return logged


def _set_time(rec: Any, row: int, frame: int, stamp_ns: int) -> None:
    rec.set_time_sequence("frame", row)
    rec.set_time_sequence("episode_frame", frame)
    rec.set_time_nanos("stamp", stamp_ns)


def _log_episode(
    rec: Any, reader: DatasetReader, rows: EpisodeRows, min_presence: float, robots: Sequence[Any]
) -> None:
    import rerun as rr

    images = reader.array(IMAGE_KEY) if IMAGE_KEY in reader.keys else None
    as_jpeg = images is not None and jpeg_chunks(images)
    has_k = "camera0_intrinsics" in reader.keys
    last_k: NDArray[np.float64] | None = None
    for block in range(rows.start, rows.stop, LOWDIM_CHUNK_ROWS):
        end = min(rows.stop, block + LOWDIM_CHUNK_ROWS)
        hands = read_hands(reader, block, end)
        stamps = row_stamps(reader, block, end)
        Ks = np.asarray(reader.array("camera0_intrinsics")[block:end], np.float64) if has_k else None
        qpos = [_qpos_rows(reader, robot.hand, block, end) for robot in robots]
        if block == rows.start:
            _set_time(rec, block, block - rows.first, int(stamps[0]))
            for side, hand in hands.items():
                _log_wrist_path(rec, side, hand)
            for robot in robots:
                robot.start_episode()
        for k in range(end - block):
            row = block + k
            _set_time(rec, row, row - rows.first, int(stamps[k]))
            if (
                Ks is not None
                and np.isfinite(Ks[k]).all()
                and (last_k is None or not np.array_equal(Ks[k], last_k))
            ):
                last_k = Ks[k]
                height, width = (int(v) for v in images.shape[1:3]) if images is not None else (0, 0)
                rec.log("world/camera", rr.Pinhole(image_from_camera=last_k, resolution=[width, height]))
            if images is not None:
                if as_jpeg:
                    data = stored_jpeg(images, row, reader.path, rows.first)
                    rec.log("world/camera/image", rr.EncodedImage(contents=data, media_type="image/jpeg"))
                else:
                    rec.log("world/camera/image", rr.Image(np.asarray(images[row], np.uint8)))
            for side, hand in hands.items():
                _log_hand(rec, side, hand, k, min_presence)
            for robot, (angles, usable) in zip(robots, qpos, strict=True):
                side = robot.hand.side
                joints = hands[side].value("joints_3d", k) if side in hands else None
                robot.log(rec, angles[k], bool(usable[k]), joints)


def _qpos_rows(
    reader: DatasetReader, hand: RobotHand, start: int, stop: int
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """A robot hand's angles and mask for rows [start, stop)."""
    angles = np.asarray(reader.array(hand.key)[start:stop], dtype=np.float32)
    return angles, np.asarray(reader.array(hand.valid_key)[start:stop], dtype=bool)


def _log_hand(rec: Any, side: str, hand: HandRows, k: int, min_presence: float) -> None:
    import rerun as rr

    colour = SIDE_COLOURS[side]
    state = hand.state(k, min_presence)
    keypoints = hand.value("keypoints_2d", k)
    joints = hand.value("joints_3d", k)
    shown = state in (HandState.OBSERVED, HandState.FILLED)
    image_path, world_path = f"world/camera/image/{side}_hand", f"world/{side}_hand"
    if shown and keypoints is not None:
        rec.log(f"{image_path}/keypoints", rr.Points2D(keypoints, colors=colour, radii=-3.0))
        rec.log(f"{image_path}/bones", rr.LineStrips2D(_bones(keypoints), colors=colour))
    else:
        rec.log(image_path, rr.Clear(recursive=True))
    if shown and joints is not None:
        rec.log(f"{world_path}/joints", rr.Points3D(joints, colors=colour, radii=0.004))
        rec.log(f"{world_path}/bones", rr.LineStrips3D(_bones(joints), colors=colour))
    else:
        rec.log(f"{world_path}/joints", rr.Clear(recursive=False))
        rec.log(f"{world_path}/bones", rr.Clear(recursive=False))


def _bones(points: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.stack([points[[a, b]] for a, b in HAND_BONES])


def _log_wrist_path(rec: Any, side: str, hand: HandRows) -> None:
    """The episode's wrist positions as one polyline per run of usable rows."""
    import rerun as rr

    wrist = hand.values.get("wrist_pos")
    if wrist is None:
        return
    usable = hand.valid & np.isfinite(wrist).all(axis=1)
    runs, current = [], []
    for point, ok in zip(wrist, usable, strict=True):
        if ok:
            current.append(point)
        elif current:
            runs.append(np.stack(current))
            current = []
    if current:
        runs.append(np.stack(current))
    rec.log(f"world/{side}_hand/wrist_path", rr.LineStrips3D(runs, colors=SIDE_COLOURS[side]))


def scalar_keys(reader: DatasetReader) -> list[str]:
    """Per-hand presence/valid/filled and every numeric key beyond the schema, small enough to plot."""
    keys = [k for k in reader.keys if k.endswith(("_hand_presence", "_hand_valid", "_hand_filled"))]
    for key in reader.keys:
        if key in LOWDIM_BY_NAME or key == IMAGE_KEY:
            continue
        array = reader.array(key)
        if array.dtype.kind in "biuf" and int(np.prod(array.shape[1:])) <= MAX_SCALAR_WIDTH:
            keys.append(key)
    return keys


def _send_scalars(rec: Any, reader: DatasetReader, rows: EpisodeRows) -> None:
    import rerun as rr

    index = np.arange(rows.start, rows.stop, dtype=np.int64)
    times = [
        rr.TimeSequenceColumn("frame", index),
        rr.TimeSequenceColumn("episode_frame", index - rows.first),
        rr.TimeNanosColumn("stamp", row_stamps(reader, rows.start, rows.stop)),
    ]
    for key in scalar_keys(reader):
        values = np.asarray(reader.array(key)[rows.start : rows.stop], dtype=np.float64)
        values = values.reshape(len(values), -1)
        for j in range(values.shape[1]):
            path = f"scalars/{key}" if values.shape[1] == 1 else f"scalars/{key}/{j}"
            rr.send_columns(
                path, indexes=times, columns=rr.Scalar.columns(scalar=values[:, j]), recording=rec
            )
