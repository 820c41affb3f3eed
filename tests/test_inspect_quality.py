"""`vidihand inspect`'s quality section: values known from how the datasets were made.

Two datasets: one made as users make one (rosbags → `vidihand convert` with the stamp
estimator, `tests.converted`), and one written with `DatasetWriter` from synthetic tracks with
one 10 cm depth jump, a hand missing most of the time, a side flip, jitter and filled frames.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest

from tests.converted import convert_bags
from tests.estimators import expected_pose
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import KeySpec
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.episode_quality import episode_quality, gap_runs
from vidihand_ros.types import CameraModel, Frame, FramePoses, HandPose

W, H, FPS = 64, 48, 30
T0 = 1_700_000_000_000_000_000
CAMERA = CameraModel.from_fxfycxcy(500.0, 500.0, 32.0, 24.0, width=W, height=H)
#: 2D offsets of the 21 keypoints from the wrist: a palm of constant size in the image.
PALM_2D = np.stack([np.arange(21) % 5, np.arange(21) // 5], axis=-1).astype(np.float32) * 2.0
#: Episode 0 of the synthetic dataset: left wrist depth jumps by this at `JUMP_AT`.
JUMP_M, JUMP_AT, EP0_FRAMES, RIGHT_SEEN = 0.10, 15, 45, 10
EP1_FRAMES, SWAP_AT, FILLED = 20, 10, (2, 3)


def _hand(
    wrist: np.ndarray, wrist_px: tuple[float, float], *, presence: float = 0.9, filled: bool = False
) -> HandPose:
    joints = (
        np.asarray(wrist, np.float32) + np.linspace(0, 0.02, 63, dtype=np.float32).reshape(21, 3)
    ).copy()
    joints[0] = wrist
    return HandPose(
        presence=presence,
        joints_3d=joints,
        keypoints_2d=np.asarray(wrist_px, np.float32) + PALM_2D,
        filled=filled,
    )


def _frame(k: int) -> Frame:
    y, x = np.mgrid[0:H, 0:W]
    pixels = np.stack([x * 4, y * 5, np.full_like(x, 8 * k % 256)], axis=-1).astype(np.uint8)
    data = bytes(imagecodecs.jpeg8_encode(pixels, level=85))
    return Frame(T0 + k * 1_000_000_000 // FPS, "cam", "jpeg", W, H, data=data, camera=CAMERA, index=k)


def write_synthetic(path: Path, *, gripper: bool = False) -> Path:
    """Three episodes with known quality (see the module constants); with `gripper`, a
    `robot0_gripper_width` key as `vidihand label` writes it."""
    with DatasetWriter(path) as writer:
        if gripper:
            spec = KeySpec("robot0_gripper_width", np.dtype(np.float32), (1,), float("nan"), "test gripper")
            writer.add_keys([spec], {})
        row = 0

        def add(ep: Any, poses: FramePoses | None) -> None:
            nonlocal row
            frame = _frame(row)
            if poses is not None:
                poses = FramePoses(frame.stamp_ns, frame.frame_id, poses.left, poses.right)
            extras = {"robot0_gripper_width": np.array([0.04 + 0.001 * row], np.float32)} if gripper else None
            ep.add(frame, poses, extras)
            row += 1

        # 0: the left wrist moves 1 mm a frame along x and jumps 10 cm in depth, its 2D palm
        # unchanged (unexplained); the right hand is seen on the first frames only.
        with writer.begin_episode({"estimated": True}) as ep:
            for t in range(EP0_FRAMES):
                z = 0.5 + (JUMP_M if t >= JUMP_AT else 0.0)
                left = _hand(np.array([0.001 * t, 0.0, z]), (10.0, 10.0))
                right = _hand(np.array([0.2, 0.0, 0.5]), (50.0, 10.0)) if t < RIGHT_SEEN else None
                add(ep, FramePoses(0, "", left, right))
        # 1: the hands swap places in the image at SWAP_AT; the right wrist shakes ±1 cm in depth
        # (acceleration 40 mm/frame²); left frames 2 and 3 were filled across a gap.
        with writer.begin_episode({"estimated": True}) as ep:
            for t in range(EP1_FRAMES):
                swapped = t >= SWAP_AT
                left = _hand(
                    np.array([0.0, 0.0, 0.5]), (50.0, 10.0) if swapped else (10.0, 10.0), filled=t in FILLED
                )
                shake = 0.01 if t % 2 else -0.01
                right = _hand(np.array([0.2, 0.0, 0.5 + shake]), (10.0, 10.0) if swapped else (50.0, 10.0))
                add(ep, FramePoses(0, "", left, right))
        # 2: frames only.
        with writer.begin_episode({"estimated": False}) as ep:
            for _ in range(5):
                add(ep, None)
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_bags(tmp_path_factory.mktemp("converted"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic") / "synthetic.zarr")


def inspect_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["inspect", str(path), "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def runs_of_false(found: list[bool]) -> list[int]:
    """Lengths of the runs without the hand (written independently of `gap_runs`)."""
    return [len(list(g)) for seen, g in itertools.groupby(found) if not seen]


def test_converted_dataset_quality_equals_what_the_estimator_made(
    converted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = inspect_json(converted, capsys)
    reader = DatasetReader(converted)
    assert [q["episode"] for q in summary["quality"]] == [0, 1]
    for i, q in enumerate(summary["quality"]):
        stamps = reader.episode(i, keys=["stamp_ns"])["stamp_ns"]
        assert q["frames"] == len(stamps) and q["has_poses"] is True
        for side in ("left", "right"):
            found = [expected_pose(int(s), side).presence >= 0.5 for s in stamps]
            gaps = runs_of_false(found)
            h = q[side]
            assert h["found_share"] == round(sum(found) / len(found), 3)
            assert h["found_share"] == summary["episodes"][i][f"{side}_hand_share"]
            assert h["found_frames"] == sum(found)
            assert (h["gaps"], h["longest_gap"]) == (len(gaps), max(gaps, default=0))
            assert h["filled_frames"] == 0
            # every joint moves by the same 1 m/s: 33.3 mm a frame, no acceleration, no jump
            assert h["acceleration_median_mm"] == pytest.approx(0.0, abs=0.01)
            assert h["acceleration_p90_mm"] == pytest.approx(0.0, abs=0.01)
            assert h["depth_steps"] == 0 and h["unexplained_depth_jumps"] == 0
            assert h["depth_step_max_mm"] == pytest.approx(1000.0 / 30, abs=0.01)
        assert q["side_flips"] == 0 and q["flags"] == []
    # the right hand is absent on some frames of each episode: a real gap, not a trivial zero
    assert summary["quality"][0]["right"]["gaps"] >= 1
    assert summary["quality"][0]["right"]["found_share"] < 1.0


def test_converted_dataset_quality_table(converted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["inspect", str(converted)]) == 0
    out = capsys.readouterr().out
    assert "2 episodes, 21 frames" in out and "camera0_rgb" in out  # the existing tables stay
    lines = out[out.index("quality") :].splitlines()
    right_rows = [line.split() for line in lines if " right " in f" {line} "]
    q = episode_quality(DatasetReader(converted), 0)["right"]
    assert right_rows[0][:4] == ["right", f"{q['found_share']:.0%}", str(q["gaps"]), str(q["longest_gap"])]
    assert "no episode flagged" in out


def test_synthetic_jump_missing_hand_flip_and_jitter_are_counted_and_flagged(
    synthetic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q0, q1, q2 = inspect_json(synthetic, capsys)["quality"]

    left, right = q0["left"], q0["right"]
    assert left["found_share"] == 1.0 and left["gaps"] == 0
    assert left["depth_steps"] == 1
    assert left["depth_step_max_mm"] == pytest.approx(JUMP_M * 1000, abs=0.01)
    assert left["unexplained_depth_jumps"] == 1
    assert right["found_frames"] == RIGHT_SEEN
    assert right["found_share"] == round(RIGHT_SEEN / EP0_FRAMES, 3)
    assert (right["gaps"], right["longest_gap"]) == (1, EP0_FRAMES - RIGHT_SEEN)
    assert q0["side_flips"] == 0
    missing = 1 - RIGHT_SEEN / EP0_FRAMES
    gap_s = (EP0_FRAMES - RIGHT_SEEN) / FPS
    assert q0["flags"] == [
        "left hand 1 depth jump",
        f"right hand missing {missing:.0%} of frames",
        f"right hand gap of {EP0_FRAMES - RIGHT_SEEN} frames ({gap_s:.1f} s)",
    ]

    assert q1["side_flips"] == 1
    assert q1["left"]["filled_frames"] == len(FILLED)
    assert q1["left"]["acceleration_p90_mm"] == pytest.approx(0.0, abs=0.01)
    assert q1["right"]["acceleration_median_mm"] == pytest.approx(40.0, abs=0.01)  # |+1 - 2(-1) + 1| cm
    assert q1["right"]["depth_steps"] == 0  # 2 cm steps are below DEPTH_JUMP_M
    assert q1["flags"] == ["right hand jitter p90 40 mm/frame²", "1 side flip"]

    assert q2 == {
        "episode": 2,
        "frames": 5,
        "has_poses": False,
        "left": None,
        "right": None,
        "side_flips": None,
        "flags": [],
    }

    capsys.readouterr()
    assert main(["inspect", str(synthetic)]) == 0
    out = capsys.readouterr().out
    assert "episode 0: left hand 1 depth jump" in out and "episode 1: 1 side flip" in out
    assert "no poses" in out


def test_quality_is_strict_json(synthetic: Path) -> None:
    reader = DatasetReader(synthetic)
    for i in range(reader.num_episodes):
        json.dumps(episode_quality(reader, i), allow_nan=False)  # raises on NaN


def test_gaps_include_runs_at_either_end() -> None:
    found = np.array([False, False, True, True, False, True, False, False, False])
    assert gap_runs(found) == [(0, 2), (4, 5), (6, 9)]
    assert gap_runs(np.ones(4, bool)) == []
    assert gap_runs(np.zeros(3, bool)) == [(0, 3)]
