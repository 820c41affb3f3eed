"""Capture recorder throughput beside bag → Zarr conversion, and its memory over a long episode.

One process pinned to one core, everything in a temporary folder deleted afterwards:

- bag → Zarr: `convert` of an mcap bag of N 640×480 JPEG frames, pass-through (the reference)
- recorder, frames only: the same N JPEGs into `Recorder.add_frame` as fast as it takes them
- recorder + 3 × 500 Hz: the same, with a UR5e JointState (6 joints: position, velocity, effort),
  a gripper JointState (1 joint) and an end-effector PoseStamped, each at 500 Hz of camera time
  (offset 0, 0.5 and 1 ms, from one tick before the first frame), fed in time order up to each
  frame's stamp and then the frame; the episode record's stale rows are shown (0 expected)
- memory: a 10-minute synthetic episode (30 fps, 3 × 500 Hz, one 320×240 JPEG) through the
  recorder with the three topics; RSS at every simulated minute

Frames/s is against the wall clock (nothing sleeps); the recorder has to sustain 30.
Messages are rosbags' generated dataclasses, built before timing (in the node rclpy builds them).

Run from the repository root:
    .venv/bin/python -m benchmarks.capture [--frames 3000] [--minutes 10]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rosbags.typesys import Stores, get_typestore

from benchmarks.common import Row, pin_to_one_core, print_rows
from benchmarks.convert import CAMERA, jpeg_stream, run_convert
from tests.bagfactory import START_NS, hand_photos, write_image_bag
from vidihand_ros.capture import Recorder, TopicSpec
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.imaging import encode_jpeg
from vidihand_ros.types import CameraModel, Frame

FPS = 30.0
RATE_HZ = 500
PERIOD_NS = round(1e9 / RATE_HZ)
#: Distinct prebuilt messages per topic, cycled (one second of motion).
CYCLE = RATE_HZ
SMALL = (320, 240)

TYPES = get_typestore(Stores.ROS2_JAZZY).types
UR5E_JOINTS = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
)


def _header(stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return TYPES["std_msgs/msg/Header"](
        stamp=TYPES["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def _joint_state(stamp_ns: int, names: Sequence[str], phase: float) -> Any:
    n = len(names)
    angles = np.sin(phase + np.arange(n, dtype=np.float64))
    return TYPES["sensor_msgs/msg/JointState"](
        header=_header(stamp_ns, ""),
        name=list(names),
        position=angles,
        velocity=np.cos(phase + np.arange(n, dtype=np.float64)),
        effort=0.1 * angles,
    )


def _eef_pose(stamp_ns: int, phase: float) -> Any:
    position = TYPES["geometry_msgs/msg/Point"](x=0.4 + 0.1 * math.sin(phase), y=0.1, z=0.3)
    half = phase / 2
    orientation = TYPES["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(half), w=math.cos(half))
    pose = TYPES["geometry_msgs/msg/Pose"](position=position, orientation=orientation)
    return TYPES["geometry_msgs/msg/PoseStamped"](header=_header(stamp_ns, "base"), pose=pose)


class Robot:
    """Three 500 Hz topics as the recorder gets them: spec, stamp offset, a cycle of messages."""

    def __init__(self) -> None:
        self.specs = [
            TopicSpec("robot0_joint", "/joint_states", method="linear", max_age_s=0.05),
            TopicSpec("robot0_gripper", "/gripper/joint_states", fields=("position",), max_age_s=0.05),
            TopicSpec("robot0_eef", "/eef_pose", fields=("pose",), method="linear", max_age_s=0.05),
        ]
        self.types = ["sensor_msgs/msg/JointState"] * 2 + ["geometry_msgs/msg/PoseStamped"]
        self.offsets_ns = [0, PERIOD_NS // 4, PERIOD_NS // 2]
        phases = [2 * math.pi * k / CYCLE for k in range(CYCLE)]
        stamps = [START_NS + k * PERIOD_NS for k in range(CYCLE)]
        self.messages = [
            [_joint_state(s, UR5E_JOINTS, p) for s, p in zip(stamps, phases, strict=True)],
            [_joint_state(s, ("finger_joint",), p) for s, p in zip(stamps, phases, strict=True)],
            [_eef_pose(s, p) for s, p in zip(stamps, phases, strict=True)],
        ]


def frame_stamp(i: int) -> int:
    """Frame i's stamp, as `write_image_bag` stamps it (so both paths see the same times)."""
    return START_NS + round(i * 1e9 / FPS)


class Recorded(NamedTuple):
    """One timed episode: what went in, how long it took, the rows a topic had no fresh value for."""

    frames: int
    samples: int
    seconds: float
    stale_rows: int = 0


def record(
    dataset: Path,
    jpegs: Sequence[bytes],
    camera: CameraModel,
    frames: int,
    robot: Robot | None,
    *,
    every: int = 0,
    on_every: Callable[[int], None] | None = None,
) -> Recorded:
    """One episode of `frames` frames (cycling `jpegs`), each after the robot's samples up to its
    stamp, and one tick past the last (a robot keeps publishing); `on_every(i)` every `every` frames."""
    recorder = Recorder(dataset, robot.specs if robot else ())
    if robot:
        for spec, msgtype in zip(robot.specs, robot.types, strict=True):
            recorder.set_type(spec.name, msgtype)
    k, samples = -1, 0  # k: the next 500 Hz tick (the robot was publishing before the first frame)

    def feed(until_ns: int) -> None:
        nonlocal k, samples
        if robot is None:
            return
        while START_NS + k * PERIOD_NS <= until_ns:
            tick = START_NS + k * PERIOD_NS
            for spec, offset, messages in zip(robot.specs, robot.offsets_ns, robot.messages, strict=True):
                recorder.add_sample(spec.name, tick + offset, messages[k % CYCLE])
            samples += len(robot.specs)
            k += 1

    started = time.perf_counter()
    recorder.start("benchmark")
    for i in range(frames):
        stamp = frame_stamp(i)
        feed(stamp)
        jpeg = jpegs[i % len(jpegs)]
        frame = Frame(stamp, "camera", "jpeg", camera.width, camera.height, data=jpeg, camera=camera, index=i)
        if not recorder.add_frame(frame, expect_poses=False):
            raise RuntimeError(f"the recorder refused frame {i}: {recorder.status().last_error}")
        if on_every and every and (i + 1) % every == 0:
            on_every(i + 1)
    feed(frame_stamp(frames - 1) + PERIOD_NS)
    summary = recorder.stop(True)
    elapsed = time.perf_counter() - started
    if summary.frames != frames or summary.index is None:
        raise RuntimeError(f"{summary.frames} of {frames} frames recorded")
    corecorded = DatasetReader(dataset).episode_attrs(summary.index).get("corecorded", {})
    stale = sum(int(topic["stale_rows"]) for topic in corecorded.values())
    return Recorded(frames, samples, elapsed, stale)


def rss_mb() -> float:
    """The process's resident memory (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return math.nan
    return float(psutil.Process().memory_info().rss) / 2**20


def throughput_rows(tmp: Path, frames: int, rounds: int, robot: Robot) -> list[Row]:
    """The three cases interleaved over `rounds` rounds (best round kept), so drift hits all alike."""
    bag = write_image_bag(
        tmp / "bag",
        jpeg_stream(frames),
        kind="mcap",
        compressed_format="jpeg",
        camera_info=CAMERA,
        keep_payloads=False,
    ).path
    jpegs = list(jpeg_stream(24))  # the bag's frames, cycled the same way
    out = tmp / "out.zarr"
    reference_case = "bag → Zarr pass-through (convert)"
    cases: dict[str, Callable[[], Recorded]] = {
        reference_case: lambda: timed_convert(bag, out),
        "recorder, frames only": lambda: record(out, jpegs, CAMERA, frames, None),
        "recorder + 3 × 500 Hz topics": lambda: record(out, jpegs, CAMERA, frames, robot),
    }
    best: dict[str, Recorded] = {}
    for _ in range(rounds):
        for name, run in cases.items():
            shutil.rmtree(out, ignore_errors=True)
            result = run()
            if name not in best or result.seconds < best[name].seconds:
                best[name] = result
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(bag, ignore_errors=True)
    reference = frames / best[reference_case].seconds
    rows = []
    for name, result in best.items():
        fps = result.frames / result.seconds
        topics = f"; {result.samples} samples, {result.stale_rows} stale rows" if result.samples else ""
        note = (
            f"{fps / reference:.2f}× bag → Zarr; {result.frames} frames in {result.seconds:.2f} s; "
            f"{fps / FPS:.0f}× real time{topics}"
        )
        rows.append(Row(name, f"{fps:.0f}", "frames/s", note))
    return rows


def timed_convert(bag: Path, out: Path) -> Recorded:
    started = time.perf_counter()
    frames = run_convert(bag, out)
    return Recorded(frames, 0, time.perf_counter() - started)


def memory_rows(tmp: Path, minutes: int, robot: Robot) -> list[Row]:
    """RSS at each simulated minute of one long episode (one small JPEG, so the disk use stays small)."""
    photo = hand_photos(*SMALL)[0]
    jpeg = encode_jpeg(np.ascontiguousarray(photo), 90)
    camera = CameraModel.from_fxfycxcy(260.0, 260.0, 160.0, 120.0, width=SMALL[0], height=SMALL[1])
    per_minute = round(60 * FPS)
    marks: dict[int, float] = {}

    def mark(done: int) -> None:
        marks[done // per_minute] = rss_mb()

    dataset = tmp / "long.zarr"
    before = rss_mb()
    result = record(dataset, [jpeg], camera, minutes * per_minute, robot, every=per_minute, on_every=mark)
    size_mb = sum(f.stat().st_size for f in dataset.rglob("*") if f.is_file()) / 1e6
    shutil.rmtree(dataset, ignore_errors=True)
    size = f"{SMALL[0]}×{SMALL[1]}"
    rows = [Row("RSS before the episode", f"{before:.0f}", "MB", f"one {len(jpeg) / 1e3:.0f} KB {size} JPEG")]
    rows += [
        Row(f"RSS at minute {m}", f"{marks[m]:.0f}", "MB")
        for m in sorted({1, 5, 10, minutes})
        if m <= minutes
    ]
    note = (
        f"{result.frames} frames, {result.samples} samples in {result.seconds:.0f} s "
        f"({result.stale_rows} stale rows); dataset {size_mb:.0f} MB"
    )
    rows.append(Row(f"growth minute 1 → {minutes}", f"{marks[minutes] - marks[1]:+.1f}", "MB", note))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=3000, help="frames per throughput case")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the throughput cases (best kept)")
    parser.add_argument("--minutes", type=int, default=10, help="simulated minutes of the memory episode")
    args = parser.parse_args()
    where = pin_to_one_core()
    robot = Robot()
    tmp = Path(tempfile.mkdtemp(prefix="vidihand-capture-bench-"))
    try:
        rows = throughput_rows(tmp, args.frames, args.rounds, robot)
        memory = memory_rows(tmp, args.minutes, robot) if args.minutes > 0 else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"capture recorder vs bag → Zarr, 640×480 JPEG pass-through, on {where} of {os.cpu_count()} CPUs")
    print()
    print_rows(rows)
    if memory:
        print()
        print(f"memory: one {args.minutes}-minute episode, 30 fps + 3 × {RATE_HZ} Hz topics")
        print()
        print_rows(memory)


if __name__ == "__main__":
    main()
