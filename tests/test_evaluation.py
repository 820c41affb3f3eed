"""`evaluate` end to end: two real datasets written with DatasetWriter, a known perturbation, and the
table values worked out by hand (arithmetic in the comments).

GT: one episode of 6 frames at 25 fps. Each hand is the default placeholder with its 20 finger
joints lifted 1 cm along y, placed beside the other and accelerating 12 mm/frame² along u = (0.6,
0.8, 0). The right hand is absent in frame 5.

PRED (split over episodes differently from GT, plus an unrelated episode; frame 4 missing):
- left: GT shifted by 4.8 mm along u (9.6 mm in frame 2), keypoints shifted (3, 4) px;
- right: GT shifted 6.4 mm along z; presence 0.3 in frame 2 (a miss), a false positive in frame 5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidihand_ros import metrics as m
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.errors import DatasetError
from vidihand_ros.evaluation import COLUMNS, evaluate, format_table, run_eval
from vidihand_ros.types import Frame, FramePoses, HandPose

W, H = 64, 48
T0 = 1_700_000_000_000_000_000
STEP = 40_000_000  # 25 fps
N = 6
U = np.array([0.6, 0.8, 0.0])
LIFT = np.zeros((21, 3))
LIFT[1:, 1] = 0.01
SHAPE = {side: m.placeholder(side) + LIFT for side in ("left", "right")}
ORIGIN = {"left": np.array([-0.1, 0.0, 0.5]), "right": np.array([0.1, 0.0, 0.5])}
LEFT_OFFSET_MM = [4.8, 4.8, 9.6, 4.8, 4.8, 4.8]  # along U
RIGHT_OFFSET = np.array([0.0, 0.0, 0.0064])


def gt_joints(side: str, t: int) -> np.ndarray:
    return SHAPE[side] + ORIGIN[side] + U * 0.006 * t**2  # Δ² of 0.006 t² = 12 mm/frame²


def gt_keypoints(side: str, t: int) -> np.ndarray:
    x0 = 10.0 if side == "left" else 40.0
    return np.stack([x0 + 0.5 * np.arange(21), np.full(21, 20.0 + t)], axis=-1)


def frame(t: int) -> Frame:
    pixels = np.full((H, W, 3), (10 * t) % 256, dtype=np.uint8)
    return Frame(T0 + t * STEP, "cam", "rgb8", W, H, pixels=pixels)


def hand(presence: float, joints: np.ndarray, keypoints: np.ndarray) -> HandPose:
    return HandPose(presence=presence, joints_3d=joints, keypoints_2d=keypoints)


def gt_poses(t: int) -> FramePoses:
    left = hand(1.0, gt_joints("left", t), gt_keypoints("left", t))
    right = hand(1.0, gt_joints("right", t), gt_keypoints("right", t)) if t < 5 else None
    return FramePoses(T0 + t * STEP, "cam", left=left, right=right)


def pred_poses(t: int) -> FramePoses:
    left = hand(
        0.95,
        gt_joints("left", t) + U * LEFT_OFFSET_MM[t] / 1000,
        gt_keypoints("left", t) + np.array([3.0, 4.0]),
    )
    presence = 0.3 if t == 2 else 0.9
    right = hand(presence, gt_joints("right", t) + RIGHT_OFFSET, gt_keypoints("right", t))
    return FramePoses(T0 + t * STEP, "cam", left=left, right=right)


def write(path: Path, episodes: list[list[tuple[Frame, FramePoses | None]]], **kwargs: Any) -> Path:
    with DatasetWriter(path, **kwargs) as writer:
        for rows in episodes:
            with writer.begin_episode() as ep:
                for f, poses in rows:
                    ep.add(f, poses)
    return path


@pytest.fixture(scope="module")
def gt_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gt") / "gt.zarr"
    return write(path, [[(frame(t), gt_poses(t)) for t in range(N)]])


def write_pred(path: Path, **kwargs: Any) -> Path:
    unrelated: list[tuple[Frame, FramePoses | None]] = []
    for k in range(3):
        f = Frame(T0 + 10**12 + k * STEP, "cam", "rgb8", W, H, pixels=np.zeros((H, W, 3), np.uint8))
        unrelated.append(
            (f, FramePoses(f.stamp_ns, "cam", left=hand(0.9, np.zeros((21, 3)), np.zeros((21, 2)))))
        )
    late: list[tuple[Frame, FramePoses | None]] = [(frame(t), pred_poses(t)) for t in (3, 5)]
    early: list[tuple[Frame, FramePoses | None]] = [(frame(t), pred_poses(t)) for t in (0, 1, 2)]
    return write(path, [unrelated, late, early], **kwargs)


@pytest.fixture(scope="module")
def pred_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pred(tmp_path_factory.mktemp("pred") / "pred.zarr")


# Hand-computed expectations (mm unless noted).
#   Placeholder vs GT shape, root-aligned: wrist 0, the 20 lifted joints 10 mm → 200/21 per frame.
#   MPJPE-p: left misses frame 4 of 6 GT-present frames, right misses 2 and 4 of 5.
#   CT = MPJPE-19 (pure translations): left (4·4.8 + 9.6)/5 = 5.76, right 6.4, both 48/8 = 6.
#   MRRPE on frames 0, 1, 3 (both scored): |(0, 0, 6.4) − 4.8 u| = √(4.8² + 6.4²) = 8.
#   Acc-Err left (scored 0-3): centre 1: 4.8 − 2·4.8 + 9.6 = 4.8; centre 2: 4.8 − 19.2 + 4.8 = −9.6
#     → 7.2 mm/frame² (right: no three consecutive scored frames). × 25² = 4500 mm/s².
#   Jitter left: GT's 12 plus the offsets' Δ²: 16.8 and 2.4 → 9.6 mm/frame², 6000 mm/s².
#   FAcc: left 5/6 (frame 4 missing); right agrees in 0, 1, 3 of 6 → 1/2; both 8/12.
#   2D EPE: left |(3, 4)| = 5 px on 5 frames, right 0 on 3 → both 25/8.
#   PCK-AUC (0.5 mm samples): left errors 4×4.8, 1×9.6: PCK 0 to 4.5, 0.8 from 5 to 9.5, 1 from 10:
#     0.2 + 4.5·0.8 + 0.45 + 40 = 44.25 → 0.885. Right all 6.4: 0.25 + 43.5 = 43.75 → 0.875.
#     Both (8 frames): 0.5 from 5 to 6, 7/8 from 6.5 to 9.5, 1 from 10:
#     0.125 + 0.5 + 0.34375 + 2.625 + 0.46875 + 40 = 44.0625 → 0.88125.
P = 200 / 21
EXPECTED = {
    "left": {
        "mpjpe_p": P / 6,
        "mpjpe": 0.0,
        "pa_mpjpe": 0.0,
        "ct": 5.76,
        "mpjpe19": 5.76,
        "accel_error": 4500.0,
        "accel_error_frame": 7.2,
        "jitter": 6000.0,
        "jitter_frame": 9.6,
        "facc": 5 / 6,
        "epe_2d": 5.0,
        "pck_auc": 0.885,
    },
    "right": {
        "mpjpe_p": 2 * P / 5,
        "mpjpe": 0.0,
        "pa_mpjpe": 0.0,
        "ct": 6.4,
        "mpjpe19": 6.4,
        "facc": 0.5,
        "epe_2d": 0.0,
        "pck_auc": 0.875,
    },
    "both": {
        "mpjpe_p": 3 * P / 11,
        "mpjpe": 0.0,
        "pa_mpjpe": 0.0,
        "mrrpe": 8.0,
        "ct": 6.0,
        "mpjpe19": 6.0,
        "accel_error": 4500.0,
        "accel_error_frame": 7.2,
        "jitter": 6000.0,
        "jitter_frame": 9.6,
        "facc": 8 / 12,
        "epe_2d": 25 / 8,
        "pck_auc": 0.88125,
    },
}


def check(result_metrics: dict[str, dict[str, float]]) -> None:
    for row, values in EXPECTED.items():
        for key, value in values.items():
            # float32 storage: joints carry ~1e-8 m of rounding
            assert result_metrics[row][key] == pytest.approx(value, abs=2e-3), (row, key)


def test_evaluate_matches_hand_computed_values(pred_path: Path, gt_path: Path) -> None:
    result = evaluate(pred_path, gt_path)
    check(result.metrics)
    # the right hand has no three consecutive scored frames; MRRPE is a two-hand quantity
    for key in ("accel_error", "jitter", "mrrpe"):
        assert np.isnan(result.metrics["right"][key])
    assert np.isnan(result.metrics["left"]["mrrpe"])
    # PA-MPJPE-p: the placeholder's Procrustes error e (value itself tested in test_metrics)
    e = m.pa_mpjpe(m.placeholder("left")[None], SHAPE["left"][None])
    assert e == pytest.approx(m.pa_mpjpe(m.placeholder("right")[None], SHAPE["right"][None]))
    assert 0 < e < P
    assert result.metrics["left"]["pa_mpjpe_p"] == pytest.approx(e / 6, abs=2e-3)
    assert result.metrics["right"]["pa_mpjpe_p"] == pytest.approx(2 * e / 5, abs=2e-3)
    assert result.metrics["both"]["pa_mpjpe_p"] == pytest.approx(3 * e / 11, abs=2e-3)
    assert result.counts["left"] == {
        "gt_present": 6,
        "detected": 5,
        "scored": 5,
        "missed": 1,
        "false_positive": 0,
    }
    assert result.counts["right"] == {
        "gt_present": 5,
        "detected": 4,
        "scored": 3,
        "missed": 2,
        "false_positive": 1,
    }
    assert (result.gt_frames, result.matched_frames) == (6, 5)
    assert (result.gt_episodes, result.matched_episodes) == (1, 1)


def test_fps_and_presence_threshold(pred_path: Path, gt_path: Path) -> None:
    result = evaluate(pred_path, gt_path, fps=50.0)
    assert result.metrics["both"]["accel_error"] == pytest.approx(7.2 * 2500, rel=1e-3)
    assert result.metrics["both"]["accel_error_frame"] == pytest.approx(7.2, abs=2e-3)
    # at threshold 0.25 the right hand's frame 2 (presence 0.3) counts: right scored 0-3, so its
    # translation error is still 6.4 and its FAcc is 4/6 (frames 0-3 agree)
    low = evaluate(pred_path, gt_path, presence_threshold=0.25)
    assert low.metrics["right"]["facc"] == pytest.approx(4 / 6)
    assert low.metrics["right"]["ct"] == pytest.approx(6.4, abs=2e-3)
    assert low.counts["right"]["scored"] == 4


def test_keypoints_rescaled_when_image_sizes_differ(tmp_path: Path, gt_path: Path) -> None:
    small = write_pred(tmp_path / "small.zarr", image_size=(W // 2, H // 2))
    result = evaluate(small, gt_path)
    assert result.metrics["left"]["epe_2d"] == pytest.approx(5.0, abs=1e-3)
    assert result.notes and "rescaled" in result.notes[0]


def test_format_table_and_run_eval(
    pred_path: Path, gt_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = format_table(evaluate(pred_path, gt_path))
    lines = table.splitlines()
    for _, header, unit in COLUMNS:
        assert header in lines[0] and f"[{unit}]" in lines[1]
    left = lines[2].split()
    assert left[0] == "left"
    # MPJPE-p 1.6, PA-MPJPE-p, MPJPE 0.0, PA-MPJPE 0.0, MRRPE -, Acc-Err 4500.0, Jitter 6000.0,
    # FAcc 83.3 %, 2D EPE 5.0, CT 5.8, MPJPE-19 5.8, PCK-AUC 0.885
    assert left[1] == "1.6" and left[3:] == [
        "0.0",
        "0.0",
        "-",
        "4500.0",
        "6000.0",
        "83.3",
        "5.0",
        "5.8",
        "5.8",
        "0.885",
    ]
    assert "missed 2" in table and "false positives 1" in table

    assert run_eval(pred_path, gt_path, json_out=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"]["both"]["mrrpe"] == pytest.approx(8.0, abs=2e-3)
    assert data["metrics"]["left"]["mrrpe"] is None
    assert data["units"]["accel_error"] == "mm/s²" and data["units"]["facc"] == "fraction"
    assert run_eval(pred_path, gt_path, json_out=False, fps=25.0) == 0
    assert "Acc-Err" in capsys.readouterr().out


def test_prediction_without_overlap_counts_every_frame_missed(tmp_path: Path, gt_path: Path) -> None:
    other = write(tmp_path / "other.zarr", [[(frame(t + 100), None) for t in range(3)]])
    result = evaluate(other, gt_path)
    assert result.matched_frames == 0 and result.matched_episodes == 0
    assert np.isnan(result.metrics["both"]["mpjpe"])
    assert result.metrics["left"]["mpjpe_p"] == pytest.approx(P, abs=2e-3)  # placeholder everywhere
    assert result.metrics["right"]["facc"] == pytest.approx(1 / 6)  # only frame 5 (absent) agrees


def test_not_a_dataset(tmp_path: Path, gt_path: Path) -> None:
    with pytest.raises(DatasetError):
        evaluate(tmp_path / "missing.zarr", gt_path)
