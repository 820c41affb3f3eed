"""How fast `vidihand retarget` runs per robot hand and mode, on one core.

Writes a dataset of both hands moving through open → fist → pinch → open (the known poses of
`vidihand_ros.testing.hand_poses`, blended, while the wrist turns in front of the camera), or
copies the one given with `--dataset` (e.g. a `vidihand convert` of real footage), then runs the
command in this process for each robot and mode, interleaved over several rounds (best round
kept), on a fresh copy each time. Per row: hand-frames retargeted per second of the whole command
(reading, the wrist frame, the optimiser, writing), milliseconds per hand-frame, and the ratio to
the first row (Allegro, vector: the package's teleoperation default) measured in the same run.

Needs the retarget extra and the robot models (default: ../shared/data/robot_hands).
Run from the repository root:  python -m benchmarks.retarget [--frames 600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from benchmarks.common import Row, pin_to_one_core, print_rows
from tests.test_dataset import jpeg_frame
from vidihand_ros.cli import main as vidihand
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.testing import shared_data
from vidihand_ros.testing.hand_poses import hand_in_pose, place
from vidihand_ros.types import FramePoses, HandPose

ROBOTS = ("allegro", "leap")
MODES = ("vector", "dexpilot", "position")
URDF_DIR = shared_data.repo_root().parent / "shared" / "data" / "robot_hands"
#: Frames per pose change (30 fps: a second from one pose to the next).
BLEND = 30


def moving_hand(side: str, i: int) -> NDArray[np.float64]:
    """The hand at frame i: blending between the poses, the wrist turning and drifting."""
    cycle = ("open", "fist", "pinch", "open")
    step, within = divmod(i, BLEND)
    a, b = cycle[step % 3], cycle[step % 3 + 1]
    w = 0.5 - 0.5 * np.cos(np.pi * within / BLEND)
    local = (1 - w) * hand_in_pose(a, side) + w * hand_in_pose(b, side)
    turn = Rotation.from_rotvec([0.3 + 0.2 * np.sin(i / 40), 0.2 * np.cos(i / 55), -0.2]).as_matrix()
    offset = 0.1 if side == "right" else -0.1
    return place(local, turn, np.array([offset, 0.01 * np.sin(i / 30), 0.45]))


def write_dataset(path: Path, frames: int) -> Path:
    keypoints = np.full((21, 2), 20.0, np.float32)
    with DatasetWriter(path, mode="w") as writer, writer.begin_episode({"task": "benchmark"}) as ep:
        for i in range(frames):
            frame = jpeg_frame(i)
            left, right = (
                HandPose(
                    presence=0.9, joints_3d=moving_hand(side, i).astype(np.float32), keypoints_2d=keypoints
                )
                for side in ("left", "right")
            )
            ep.add(frame, FramePoses(frame.stamp_ns, frame.frame_id, left=left, right=right))
    return path


def run(dataset: Path, robot: str, mode: str, urdf_dir: Path) -> tuple[float, int]:
    """(seconds, hand-frames retargeted) of one `vidihand retarget` of both hands."""
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = vidihand(
            [
                "retarget",
                str(dataset),
                "-q",
                "--robot",
                robot,
                "--mode",
                mode,
                "--urdf-dir",
                str(urdf_dir),
                "--json",
            ]
        )
    elapsed = time.perf_counter() - t0
    assert status == 0, out.getvalue()
    return elapsed, sum(h["retargeted"] for h in json.loads(out.getvalue())["hands"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=600, help="frames of the generated dataset")
    parser.add_argument("--dataset", type=Path, help="time on a copy of this dataset instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--urdf-dir", type=Path, default=URDF_DIR)
    args = parser.parse_args()
    where = pin_to_one_core()
    tmp = Path(tempfile.mkdtemp(prefix="vidihand-bench-retarget-"))
    try:
        source = tmp / "source.zarr"
        if args.dataset is not None:
            shutil.copytree(args.dataset, source)
        else:
            write_dataset(source, args.frames)
        rows = DatasetReader(source).num_frames
        what = str(args.dataset) if args.dataset else "generated (open → fist → pinch, both hands)"
        print(f"dataset: {what}, {rows} rows; timing on {where}")
        best: dict[tuple[str, str], tuple[float, int]] = {}
        for _ in range(args.rounds):
            for robot in ROBOTS:
                for mode in MODES:
                    copy = tmp / "run.zarr"
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(source, copy)
                    seconds, done = run(copy, robot, mode, args.urdf_dir)
                    key = (robot, mode)
                    if key not in best or done / seconds > best[key][1] / best[key][0]:
                        best[key] = (seconds, done)
        base_seconds, base_done = best[(ROBOTS[0], MODES[0])]
        base = base_done / base_seconds
        table = []
        for (robot, mode), (seconds, done) in best.items():
            rate = done / seconds
            table.append(
                Row(
                    f"{robot} {mode}",
                    f"{rate:.0f}",
                    "hand-frames/s",
                    f"{1000 / rate:.2f} ms per hand-frame; {rate / base:.2f}x {ROBOTS[0]} {MODES[0]}; "
                    f"{done} hand-frames",
                )
            )
        print()
        print_rows(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
