"""`<side>_hand_valid` means a usable pose (issue #14), in new datasets and when reading layout 1.

Real parts throughout: bags written by rosbags (tests/bagfactory.py), the `vidihand` command line,
zarr stores on disk. A layout-1 dataset is made the way the old writer made one: a conversion,
then its attrs set to version 1 and its valid masks set True on every row with plain zarr.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import zarr
from numpy.testing import assert_array_equal

from tests.bagfactory import START_NS, synthetic_frames, write_image_bag
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader, NarrowedValid
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.dataset.validity import episode_has_poses, estimation_record, honest_valid, usable
from vidihand_ros.dataset.writer import LOCK_FILE, DatasetWriter
from vidihand_ros.errors import DatasetError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.evaluation import evaluate
from vidihand_ros.types import CameraModel, Frame, FramePoses, HandPose, Window

CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
FPS = 30.0
N = 12
GAPPY = "tests.test_valid_masks:gappy_estimator"
SIDES = ("left", "right")
#: Frames of this frame_id get 2D-only estimates, as MediaPipe gives for frames without intrinsics
#: (a bag always has intrinsics: `convert` refuses one without CameraInfo).
TWO_D_ONLY = "two_d_only_camera"


# -- a test estimator: observed, "looked and found nothing", and filled hands in turn ------------


def frame_number(stamp_ns: int) -> int:
    return round((stamp_ns - START_NS) * FPS / 1e9)


def joints(k: int) -> np.ndarray:
    return np.linspace(0.0, 0.02, 63, dtype=np.float32).reshape(21, 3) + np.float32(0.4 + 0.001 * k)


def estimate_hand(k: int, side: str, full: bool) -> HandPose:
    """Left: observed (k % 3 == 0), not found (1: presence 0, all NaN, as MediaPipe), filled (2).
    Right: observed on every frame, without MANO values. Not `full`: 2D only, NaN joints."""
    if side == "left" and k % 3 == 1:
        return HandPose(presence=0.0)
    hand = HandPose(
        presence=0.9,
        joints_3d=joints(k),
        keypoints_2d=np.full((21, 2), 10.0 + k, np.float32),
        wrist_orient=np.array([0.1, 0.2, 0.3], np.float32),
        filled=side == "left" and k % 3 == 2,
    )
    if side == "left":
        hand.global_orient = np.array([0.0, 0.1, 0.0], np.float32)
    if not full:
        hand.joints_3d = np.full((21, 3), np.nan, np.float32)
    return hand


class GappyEstimator:
    """Implements PoseEstimator with `estimate_hand` for every frame."""

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(name="gappy-test", version="1")

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        return [
            [
                FramePoses(
                    f.stamp_ns,
                    f.frame_id,
                    *(estimate_hand(frame_number(f.stamp_ns), s, f.frame_id != TWO_D_ONLY) for s in SIDES),
                )
                for f in window.frames
            ]
            for window in windows
        ]

    def close(self) -> None:
        pass


def gappy_estimator() -> GappyEstimator:
    """Factory for `--estimator tests.test_valid_masks:gappy_estimator`."""
    return GappyEstimator()


# -- fixtures -------------------------------------------------------------------------------------


def bag(folder: Path, frame_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    written = write_image_bag(
        folder / "rec.mcap",
        synthetic_frames(N),
        compressed_format="jpeg",
        fps=FPS,
        frame_id=frame_id,
        camera_info=CAMERA,
    )
    return written.path


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    return {"full": bag(root / "full", "camera_optical_frame"), "two_d": bag(root / "two_d", TWO_D_ONLY)}


def convert(bags: dict[str, Path], out: Path, *extra: str) -> Path:
    args = ["convert", str(bags["full"]), str(bags["two_d"]), "-o", str(out), "-q", *extra]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def estimated(bags: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes: full estimates, then 2D-only ones."""
    out = tmp_path_factory.mktemp("estimated") / "poses.zarr"
    return convert(bags, out, "--estimator", GAPPY, "--window", "4", "--stride", "4")


def expected_valid(side: str, full: bool) -> list[bool]:
    if not full:
        return [False] * N  # 2D only: no joints
    return [side == "right" or k % 3 != 1 for k in range(N)]


def plain_zarr(path: Path, mode: Literal["r", "r+"] = "r") -> Any:
    """The dataset's root group as a diffusion_policy / UMI user (or the old writer) opens it."""
    return zarr.open_group(str(path), mode=mode)


def inspect_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["inspect", str(path), "--json"]) == 0
    summary: dict[str, Any] = json.loads(capsys.readouterr().out)
    return summary


def snapshot(path: Path) -> dict[str, str]:
    """Every file under `path` (relative name → sha256), so any write or new file shows."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def make_layout_1(source: Path, path: Path) -> Path:
    """A copy of `source` as the layout-1 writer left it: version 1, valid True on every row, and
    episode records with `estimator` but no `estimated`. No lock file, so a refused append that
    created one would show."""
    shutil.copytree(source, path)
    (path / LOCK_FILE).unlink()
    root = plain_zarr(path, "r+")
    root.attrs["layout_version"] = 1
    for side in SIDES:
        valid = root["data"][hand_key(side, "valid")]
        valid[:] = np.ones(valid.shape, dtype=bool)
    records = [{k: v for k, v in r.items() if k != "estimated"} for r in root["meta"].attrs["episodes"]]
    root["meta"].attrs["episodes"] = records
    return path


@pytest.fixture(scope="module")
def layout_1(estimated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_layout_1(estimated, tmp_path_factory.mktemp("v1") / "old.zarr")


# -- written datasets -----------------------------------------------------------------------------


def test_valid_is_exactly_where_joints_keypoints_and_wrist_are_finite(estimated: Path) -> None:
    reader = DatasetReader(estimated)
    assert reader.layout_version == 2
    for episode, full in ((0, True), (1, False)):
        ep = reader.episode(episode)
        for side in SIDES:
            assert ep[hand_key(side, "valid")].tolist() == expected_valid(side, full), (episode, side)
    cal = reader.episode(0)
    not_found = [k for k in range(N) if k % 3 == 1]
    # "looked, found nothing": presence 0 and every value NaN, never valid
    assert (cal["left_hand_presence"][not_found] == 0.0).all()
    assert np.isnan(cal["left_hand_joints_3d"][not_found]).all()
    # MANO values are optional: NaN on the right hand's valid rows
    assert cal["right_hand_valid"].all() and np.isnan(cal["right_hand_global_orient"]).all()
    assert np.isfinite(cal["left_hand_global_orient"][cal["left_hand_valid"]]).all()


def test_filled_finite_rows_are_valid_and_flagged_filled(estimated: Path) -> None:
    reader = DatasetReader(estimated)
    cal, two_d = reader.episode(0), reader.episode(1)
    filled = [k % 3 == 2 for k in range(N)]
    assert cal["left_hand_filled"].tolist() == filled == two_d["left_hand_filled"].tolist()
    assert cal["left_hand_valid"][filled].all()  # filled and finite: valid
    assert not two_d["left_hand_valid"][filled].any()  # filled but without joints: not valid
    assert not cal["right_hand_filled"].any()
    np.testing.assert_allclose(cal["left_hand_joints_3d"][2], joints(2), atol=1e-6)


def test_keypoints_without_joints_are_not_valid(estimated: Path) -> None:
    ep = DatasetReader(estimated).episode(1)  # the 2D-only estimates
    for side in SIDES:
        observed = ep[hand_key(side, "presence")] > 0
        assert observed.sum() == (N if side == "right" else 8)
        assert np.isfinite(ep[hand_key(side, "keypoints_2d")][observed]).all()  # 2D kept
        assert np.isnan(ep[hand_key(side, "joints_3d")]).all()
        assert not ep[hand_key(side, "valid")].any()


def test_episode_records_say_an_estimator_ran(estimated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reader = DatasetReader(estimated)
    for i in range(reader.num_episodes):
        record = reader.episode_attrs(i)
        assert record["estimated"] is True and record["estimator"]["name"] == "gappy-test"
        assert reader.has_poses(i) is True
    shares = [
        (e["left_hand_share"], e["right_hand_share"]) for e in inspect_json(estimated, capsys)["episodes"]
    ]
    # estimated but never valid is 0, not "nothing estimated"
    assert shares == [(round(8 / 12, 3), 1.0), (0.0, 0.0)]


def test_frames_only_conversion_has_no_valid_rows_and_says_so(
    bags: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = convert(bags, tmp_path / "frames.zarr")
    reader = DatasetReader(out)
    for i in range(reader.num_episodes):
        ep = reader.episode(i)
        for side in SIDES:
            assert ep[hand_key(side, "valid")].tolist() == [False] * N
        record = reader.episode_attrs(i)
        assert record["estimated"] is False and record["estimator"] is None
        assert reader.has_poses(i) is False
    episodes = inspect_json(out, capsys)["episodes"]
    assert [(e["left_hand_share"], e["right_hand_share"]) for e in episodes] == [(None, None)] * 2


def hand_with(joints_3d: np.ndarray | None = None) -> HandPose:
    """A hand with every required value finite (unless `joints_3d` says otherwise)."""
    j = joints(0) if joints_3d is None else joints_3d
    return HandPose(presence=0.5, joints_3d=j, keypoints_2d=np.ones((21, 2), np.float32))


def test_rows_written_directly_resized_and_without_intrinsics(tmp_path: Path) -> None:
    """The writer's rule row by row: one NaN or inf anywhere required makes the row invalid."""
    nan_keypoint, inf_joint, nan_wrist = (hand_with() for _ in range(3))
    nan_keypoint.keypoints_2d[20, 1] = np.nan
    inf_joint.joints_3d[7, 0] = np.inf
    nan_wrist.joints_3d[0, 2] = np.nan  # wrist_pos is joint 0
    no_joints = hand_with(joints_3d=np.full((21, 3), np.nan, np.float32))  # 2D only
    rows: list[tuple[HandPose | None, CameraModel | None]] = [
        (hand_with(), CAMERA),
        (nan_keypoint, CAMERA),
        (inf_joint, CAMERA),
        (nan_wrist, CAMERA),
        (no_joints, None),  # a frame without intrinsics, as MediaPipe estimates it
        (HandPose(presence=0.0), CAMERA),  # looked, found nothing
        (None, CAMERA),  # no estimate
    ]
    path = tmp_path / "rows.zarr"
    pixels = np.zeros((48, 64, 3), np.uint8)
    with DatasetWriter(path, image_size=(32, 24)) as writer, writer.begin_episode() as episode:
        for i, (hand, camera) in enumerate(rows):
            stamp = START_NS + i
            frame = Frame(stamp, "cam", "rgb8", 64, 48, pixels=pixels, camera=camera)
            episode.add(frame, FramePoses(stamp, "cam", left=hand))
    stored = plain_zarr(path, "r")["data"]  # plain zarr: what a UMI user sees
    assert stored["left_hand_valid"][:].tolist() == [True] + [False] * 6
    assert not stored["right_hand_valid"][:].any()
    np.testing.assert_allclose(stored["left_hand_keypoints_2d"][0], 0.25)  # scaled: (1 + 0.5) / 2 - 0.5
    assert np.isnan(stored["camera0_intrinsics"][4]).all()
    assert_array_equal(stored["left_hand_keypoints_2d"][4], stored["left_hand_keypoints_2d"][0])  # 2D kept


# -- reading layout 1 -----------------------------------------------------------------------------


def test_layout_1_reads_with_honest_masks(estimated: Path, layout_1: Path) -> None:
    new, old = DatasetReader(estimated), DatasetReader(layout_1)
    assert old.layout_version == 1
    assert plain_zarr(layout_1, "r")["data"]["left_hand_valid"][:].all()  # stored: all True
    for i in range(new.num_episodes):
        for side in SIDES:
            key = hand_key(side, "valid")
            assert old.episode(i, [key])[key].tolist() == expected_valid(side, full=i == 0)
            assert_array_equal(old.episode(i, [key])[key], new.episode(i)[key])
            assert old.episode(i)[key].dtype == np.bool_
            assert old.hand_share(i, side) == new.hand_share(i, side)
        assert old.has_poses(i) is True  # from the layout-1 record's "estimator"
    assert old.hand_share(1, "right") == 0.0  # stored True, presence 0.9, but no joints
    for side in SIDES:
        key = hand_key(side, "valid")
        array = old.array(key)
        assert isinstance(array, NarrowedValid) and array.shape == (2 * N,) and array.dtype == np.bool_
        assert_array_equal(array[:], new.array(key)[:])
        assert_array_equal(np.asarray(array), new.array(key)[:])
        assert array[N + 1] == new.array(key)[N + 1] and array[0] == new.array(key)[0]


def test_layout_1_inspect_and_evaluation_use_honest_masks(
    estimated: Path, layout_1: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = inspect_json(layout_1, capsys), inspect_json(estimated, capsys)
    assert old["episodes"] == new["episodes"]
    assert (old["layout_version"], new["layout_version"]) == (1, 2)
    assert main(["inspect", str(layout_1)]) == 0
    assert "layout version 1 (hand_valid narrowed" in capsys.readouterr().out
    assert evaluate(layout_1, estimated).counts == evaluate(estimated, estimated).counts
    assert evaluate(estimated, layout_1).counts == evaluate(estimated, estimated).counts


def test_layout_1_ground_truth_windows_use_honest_masks(estimated: Path, layout_1: Path) -> None:
    from vidihand_ros.training.windows import GroundTruthWindows

    old, new = (GroundTruthWindows(p, window=4, image_size=(24, 32)) for p in (layout_1, estimated))
    assert len(old) == len(new) == 6
    for a, b in zip(old, new, strict=True):
        for side in SIDES:
            assert_array_equal(a.hands[side]["valid"], b.hands[side]["valid"])
            assert_array_equal(a.present(side), b.present(side))
            np.testing.assert_array_equal(a.hands[side]["keypoints_2d"], b.hands[side]["keypoints_2d"])


def test_appending_to_layout_1_is_refused_in_one_line_and_writes_nothing(
    bags: dict[str, Path], layout_1: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(layout_1)
    capsys.readouterr()
    args = ["convert", str(bags["full"]), "-o", str(layout_1), "--append", "-q", "--estimator", GAPPY]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "layout version 1" in err[0] and "convert again into a new dataset" in err[0]
    assert "reading this one works" in err[0] and str(layout_1) in err[0]
    assert snapshot(layout_1) == before and not (layout_1 / LOCK_FILE).exists()
    with pytest.raises(DatasetError, match="layout version 1"):
        DatasetWriter(layout_1, mode="a")
    assert snapshot(layout_1) == before


def test_converting_again_over_layout_1_makes_layout_2(
    bags: dict[str, Path], layout_1: Path, estimated: Path, tmp_path: Path
) -> None:
    path = tmp_path / "again.zarr"
    shutil.copytree(layout_1, path)
    convert(bags, path, "--overwrite", "--estimator", GAPPY, "--window", "4", "--stride", "4")
    reader = DatasetReader(path)
    assert reader.layout_version == 2 and reader.num_episodes == 2
    assert_array_equal(
        reader.array("left_hand_valid")[:], DatasetReader(estimated).array("left_hand_valid")[:]
    )


def test_dataset_without_layout_attrs_is_read_like_layout_1(
    layout_1: Path, estimated: Path, tmp_path: Path
) -> None:
    """A replay buffer by another tool: no layout version, its valid masks are narrowed too."""
    path = tmp_path / "foreign.zarr"
    shutil.copytree(layout_1, path)
    root = plain_zarr(path, "r+")
    root.attrs.put({})
    root["meta"].attrs.put({})
    reader = DatasetReader(path)
    assert reader.layout_version is None and reader.has_poses(0) is None
    assert_array_equal(
        reader.episode(1)["right_hand_valid"], DatasetReader(estimated).episode(1)["right_hand_valid"]
    )


# -- the helpers ----------------------------------------------------------------------------------


def test_helpers() -> None:
    j, kp, w = np.zeros((3, 21, 3)), np.zeros((3, 21, 2)), np.zeros((3, 3))
    kp[1, 4, 0] = np.nan
    w[2, 1] = -np.inf
    assert usable(j, kp, w).tolist() == [True, False, False]
    assert usable(j[0], kp[0], w[0]).shape == ()
    fields = {"joints_3d": j, "keypoints_2d": kp, "wrist_pos": w}
    assert honest_valid([True, True, True], fields).tolist() == [True, False, False]
    assert honest_valid([False, True, True], fields).tolist() == [False, False, False]  # stored False stays
    assert honest_valid([True, True], {"joints_3d": j[:2], "keypoints_2d": kp[:2]}).tolist() == [False, False]
    assert estimation_record(None) == {"estimated": False, "estimator": None}
    assert estimation_record({"name": "x"}) == {"estimated": True, "estimator": {"name": "x"}}
    assert episode_has_poses({"estimated": False, "estimator": None}) is False
    assert episode_has_poses({"estimated": False, "ground_truth": {}}) is True
    assert episode_has_poses({"estimator": {"name": "x"}}) is True  # layout 1
    assert episode_has_poses({"estimator": None}) is False  # layout 1, frames-only
    assert episode_has_poses({}) is None


# -- presence: 0 where looked and not found, NaN where nothing was estimated -----------------------


def test_presence_is_nan_where_nothing_was_estimated(bags: dict[str, Path], tmp_path: Path) -> None:
    data = plain_zarr(convert(bags, tmp_path / "frames_only.zarr"))["data"]
    for side in SIDES:
        assert np.isnan(data[hand_key(side, "presence")][:]).all()


def test_layout_1_presence_without_an_estimate_reads_nan(layout_1: Path, tmp_path: Path) -> None:
    """Layout 1 stored presence 0 where no estimate existed (stored valid False): read as NaN."""
    copy = shutil.copytree(layout_1, tmp_path / "old.zarr")
    data = plain_zarr(copy, "r+")["data"]
    data["left_hand_valid"][:3] = False
    data["left_hand_presence"][:3] = 0.0
    presence = DatasetReader(copy).episode(0, ["left_hand_presence"])["left_hand_presence"]
    assert np.isnan(presence[:3]).all() and np.isfinite(presence[3:]).all()


def test_training_targets_keep_an_annotated_absent_hand_as_absent() -> None:
    """Presence 0 on an invalid row is a label (absent), NaN is unknown: the decoder target keeps both."""
    pytest.importorskip("torch", reason="decoder targets are torch tensors ([model] extra)")
    from vidihand_ros.training.windows import WindowData, WindowSpan, window_targets

    t = 3
    hands = {
        side: {
            "valid": np.array([True, False, False]),
            "presence": np.array([1.0, 0.0, np.nan], np.float32),
            "joints_3d": np.stack([joints(0), np.full((21, 3), np.nan), np.full((21, 3), np.nan)]).astype(
                np.float32
            ),
        }
        for side in SIDES
    }
    data = WindowData(WindowSpan(0, 0), np.zeros((t, 8, 8, 3), np.uint8), None, hands)
    presence = window_targets(data).presence.numpy()[0]  # (T, 2)
    assert presence[:2].tolist() == [[1.0, 1.0], [0.0, 0.0]] and np.isnan(presence[2]).all()
