"""`vidihand export zarr-zip` and `vidihand export lerobot` on datasets made from real rosbags.

The zip is read back with `DatasetReader` (zarr's ZipStore) and its JPEG chunks compared byte for
byte; the LeRobot folder is checked against the v3.0 layout (`tests.lerobot_format`), its parquet
read back with pyarrow and its mp4 decoded with PyAV. Loading with lerobot itself:
`scripts/check_lerobot_export.sh`.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import av
import numcodecs
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.converted import convert_bags
from tests.lerobot_format import check_lerobot_folder
from vidihand_ros.cli import main
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY, hand_key, lowdim_compressor
from vidihand_ros.export.lerobot import VIDEO_KEY, export_lerobot
from vidihand_ros.export.lerobot_features import hold_fill
from vidihand_ros.types import HAND_SIDES

LENGTHS = (12, 9)
N = sum(LENGTHS)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_bags(tmp_path_factory.mktemp("export"), LENGTHS)


@pytest.fixture
def copy(dataset: Path, tmp_path: Path) -> Path:
    """A copy of the dataset that a test may change."""
    return Path(shutil.copytree(dataset, tmp_path / "copy.zarr"))


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return out[0]


def data_table(root: Path) -> dict[str, np.ndarray]:
    """Every data parquet file of a LeRobot folder, concatenated, as numpy columns."""
    tables = [pq.read_table(p) for p in sorted((root / "data").glob("*/*.parquet"))]
    return {
        name: np.concatenate([np.asarray(t.column(name).to_pylist()) for t in tables])
        for name in tables[0].column_names
    }


def expected_state(reader: DatasetReader) -> np.ndarray:
    fields = ("wrist_pos", "wrist_rot_axis_angle")
    return np.concatenate(
        [np.asarray(reader.array(hand_key(s, f))[: reader.num_frames]) for s in HAND_SIDES for f in fields],
        axis=1,
    )


# --- zarr-zip ---------------------------------------------------------------------------------


def test_zip_reads_back_equal_with_the_jpeg_chunks_unchanged(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dataset.zarr.zip"
    assert main(["export", "zarr-zip", str(dataset), "-o", str(out)]) == 0
    assert one_line(capsys).startswith(f"wrote {out}: 2 episode(s), {N} frames")
    source, back = DatasetReader(dataset), DatasetReader(out)
    assert back.keys == source.keys
    assert back.episode_ends.tolist() == list(np.cumsum(LENGTHS))
    assert back.attrs == source.attrs
    assert [back.episode_attrs(i) for i in range(2)] == [source.episode_attrs(i) for i in range(2)]
    for key in source.keys:
        np.testing.assert_array_equal(np.asarray(back.array(key)[:]), np.asarray(source.array(key)[:]))
    compressor = zc.compressor_of(back.array(IMAGE_KEY))
    assert compressor is not None and compressor.codec_id == "imagecodecs_jpeg"
    with zipfile.ZipFile(out) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        for row in range(N):
            stored = (dataset / "data" / IMAGE_KEY / f"{row}.0.0.0").read_bytes()
            assert archive.read(f"data/{IMAGE_KEY}/{row}.0.0.0") == stored
            assert stored[:2] == b"\xff\xd8"  # a JPEG file, copied as it is


def test_zip_leaves_out_rows_past_the_last_committed_episode(copy: Path, tmp_path: Path) -> None:
    # What an interrupted writer leaves: rows and an image chunk past meta/episode_ends[-1].
    root = zc.open_group(copy, "r+")
    stamps = root["data"]["timestamp"]
    zc.resize(stamps, (N + 3,))
    stamps[N:] = 1.0
    shutil.copy(copy / "data" / IMAGE_KEY / "0.0.0.0", copy / "data" / IMAGE_KEY / f"{N}.0.0.0")
    out = tmp_path / "d.zarr.zip"
    assert main(["export", "zarr-zip", str(copy), "-o", str(out), "-q"]) == 0
    with zipfile.ZipFile(out) as archive:
        assert f"data/{IMAGE_KEY}/{N}.0.0.0" not in archive.namelist()
        assert json.loads(archive.read("data/timestamp/.zarray"))["shape"] == [N]
        raw = np.frombuffer(numcodecs.Blosc().decode(archive.read("data/timestamp/0")), dtype="<f8")
    assert np.isnan(raw[N:]).all() and len(raw) == 1024  # the leftovers are gone from the chunk
    source = DatasetReader(copy)
    np.testing.assert_array_equal(raw[:N], np.asarray(source.array("timestamp")[:N]))
    assert DatasetReader(out).num_frames == N


def test_zip_refuses_an_existing_output_unless_overwrite(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d.zarr.zip"
    out.write_bytes(b"old")
    assert main(["export", "zarr-zip", str(dataset), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert out.read_bytes() == b"old"
    assert main(["export", "zarr-zip", str(dataset), "-o", str(out), "--overwrite", "-q"]) == 0
    assert DatasetReader(out).num_frames == N
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr.zip"]  # no temporary left
    assert main(["export", "zarr-zip", str(dataset), "-o", str(tmp_path / "d.zarr")]) == 2
    assert ".zip" in capsys.readouterr().err


# --- lerobot ----------------------------------------------------------------------------------


def test_lerobot_layout_and_values(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demos_lerobot"
    assert main(["export", "lerobot", str(dataset), "-o", str(out)]) == 0
    line = one_line(capsys)
    assert f"'demos_lerobot' to {out}: 2 episode(s), {N} frames at 30 fps, 1 task(s)" in line
    info = check_lerobot_folder(out)
    assert info["features"]["observation.state"]["names"][:3] == [
        "left_wrist_x",
        "left_wrist_y",
        "left_wrist_z",
    ]
    reader = DatasetReader(dataset)
    table = data_table(out)
    state = expected_state(reader)
    assert np.isfinite(state).all()  # every hand is valid in this dataset: nothing filled
    np.testing.assert_array_equal(table["observation.state"], state.astype(np.float32))
    assert (table["observation.state_mask"] == 1).all() and (table["observation.hand_valid"] == 1).all()
    joints = np.concatenate(
        [np.asarray(reader.array(hand_key(s, "joints_3d"))[:N]).reshape(N, -1) for s in HAND_SIDES], axis=1
    )
    np.testing.assert_array_equal(table["observation.hand_joints"], joints)
    # action: the next frame's state within the episode; the last frame keeps its own
    nxt = np.r_[1:12, 11, 13:21, 20]
    np.testing.assert_array_equal(table["action"], table["observation.state"][nxt])
    assert table["episode_index"].tolist() == [0] * 12 + [1] * 9
    np.testing.assert_allclose(table["timestamp"], np.r_[0:12, 0:9] / 30, atol=1e-6)
    tasks = pq.read_table(out / "meta" / "tasks.parquet").column("task").to_pylist()
    assert tasks == ["manipulation"]
    stats = json.loads((out / "meta" / "stats.json").read_text())
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["observation.state"]["max"], state.max(axis=0), rtol=1e-6)
    assert stats["observation.state"]["count"] == [N]


def test_lerobot_video_decodes_to_the_stored_frames(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "lr"
    export_lerobot(dataset, out)
    reader = DatasetReader(dataset)
    stored = np.stack([frame for i in range(2) for frame in reader.frames(i)])
    with av.open(str(out / "videos" / VIDEO_KEY / "chunk-000" / "file-000.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 64, 48)
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    assert decoded.shape == (N, 48, 64, 3)
    error = np.abs(decoded.astype(np.int16) - stored).mean(axis=(1, 2, 3))
    # lossy (CRF 23, chroma at half size: ~7 levels on 64x48 photos), but frame k is image k:
    # the photos differ from each other by ~100 levels
    assert error.max() < 12, error
    assert np.abs(decoded[0].astype(np.int16) - stored[1]).mean() > 5 * error.max()
    stats = json.loads((out / "meta" / "stats.json").read_text())[VIDEO_KEY]
    pixels = stored.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.ravel(stats["mean"]), pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(stats["std"]), pixels.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(
        np.ravel(stats["q50"]), np.quantile(pixels, 0.5, axis=0, method="inverted_cdf")
    )
    assert stats["count"] == [N]


def test_lerobot_fills_what_was_not_observed_and_masks_it(copy: Path, tmp_path: Path) -> None:
    root = zc.open_group(copy, "r+")["data"]
    gaps = [2, 3, 4, 12, 13]  # inside episode 0, and the first two frames of episode 1

    def change(key: str, rows: list[int], value: object) -> None:
        values = np.asarray(root[key][:])  # whole arrays: zarr 2 and 3 index lists differently
        values[rows] = value
        root[key][:] = values

    change(hand_key("right", "valid"), gaps, False)
    for field in ("wrist_pos", "wrist_rot_axis_angle", "joints_3d"):
        change(hand_key("right", field), gaps, np.nan)
    change(hand_key("left", "wrist_rot_axis_angle"), [5], np.nan)  # NaN on a valid row (no MANO)
    out = tmp_path / "lr"
    export_lerobot(copy, out)
    check_lerobot_folder(out)
    t = data_table(out)
    source = expected_state(DatasetReader(copy))
    mask = np.isfinite(source)
    assert mask[gaps, 6:].sum() == 0 and not mask[5, 3:6].any()
    np.testing.assert_array_equal(t["observation.state_mask"], mask.astype(np.float32))
    state = t["observation.state"]
    np.testing.assert_array_equal(state[mask], source[mask].astype(np.float32))
    np.testing.assert_array_equal(state[[2, 3, 4], 6:], source[[1, 1, 1], 6:])  # held from frame 1
    np.testing.assert_array_equal(state[[12, 13], 6:], source[[14, 14], 6:])  # first seen, episode 1
    np.testing.assert_array_equal(state[5, 3:6], source[4, 3:6])
    assert t["observation.hand_valid"][gaps, 1].sum() == 0 and t["observation.hand_valid"][:, 0].all()
    assert (t["observation.hand_joints_mask"][gaps, 63:] == 0).all()
    np.testing.assert_array_equal(t["action_mask"][1], t["observation.state_mask"][2])
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert np.isfinite(stats["observation.state"]["min"]).all()


def write_float_array(data: Any, name: str, values: np.ndarray) -> Any:
    """A (N, d) float32 key in `data/`, as the label and retarget commands store theirs."""
    array = zc.create_array(
        data,
        name,
        shape=values.shape,
        chunks=(1024, values.shape[1]),
        dtype=np.float32,
        compressor=lowdim_compressor(),
        fill_value=float("nan"),
    )
    array[:] = values
    return array


def test_lerobot_actions_from_robot_labels(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = zc.open_group(copy, "r+")["data"]
    rng = np.random.default_rng(0)
    labels = {
        "robot0_eef_pos": rng.normal(size=(N, 3)),
        "robot0_eef_rot_axis_angle": rng.normal(size=(N, 3)),
        "robot0_gripper_width": rng.uniform(0, 0.08, size=(N, 1)),
    }
    labels["robot0_eef_pos"][7] = np.nan
    for name, values in labels.items():
        write_float_array(data, name, values)
    out = tmp_path / "lr"
    assert main(["export", "lerobot", str(copy), "-o", str(out)]) == 0
    assert one_line(capsys).endswith("action = robot_labels")
    info = check_lerobot_folder(out)
    assert info["features"]["action"]["names"] == [
        *(f"robot0_eef_pos_{a}" for a in "xyz"),
        *(f"robot0_eef_rot_axis_angle_r{a}" for a in "xyz"),
        "robot0_gripper_width_width",
    ]
    t = data_table(out)
    expected = np.concatenate(list(labels.values()), axis=1).astype(np.float32)
    expected[7, :3] = expected[6, :3]  # held over the missing label
    np.testing.assert_array_equal(t["action"], expected)
    assert t["action_mask"][7].tolist() == [0, 0, 0, 1, 1, 1, 1]
    shutil.rmtree(copy / "data" / "robot0_gripper_width")
    assert main(["export", "lerobot", str(copy), "-o", str(tmp_path / "lr2")]) == 2
    assert "robot0_gripper_width" in capsys.readouterr().err


def test_lerobot_actions_from_robot_hand_joints(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--action robot_hand_qpos`: vidihand retarget's arrays side by side, joints named, NaN held."""
    data = zc.open_group(copy, "r+")["data"]
    rng = np.random.default_rng(1)
    qpos = {"robot0_hand_qpos": rng.normal(size=(N, 3)), "robot1_hand_qpos": rng.normal(size=(N, 2))}
    qpos["robot1_hand_qpos"][4] = np.nan  # the left hand not retargeted on row 4
    joints = {"robot0_hand_qpos": ["j_a", "j_b", "j_c"], "robot1_hand_qpos": ["k_a", "k_b"]}
    for name, values in qpos.items():
        zc.update_attrs(write_float_array(data, name, values), {"joint_names": joints[name]})
    out = tmp_path / "lr"
    assert main(["export", "lerobot", str(copy), "-o", str(out)]) == 0
    assert one_line(capsys).endswith("action = next_state")  # auto: no robot labels here
    out = tmp_path / "lr_hands"
    assert main(["export", "lerobot", str(copy), "-o", str(out), "--action", "robot_hand_qpos"]) == 0
    assert one_line(capsys).endswith("action = robot_hand_qpos")
    info = check_lerobot_folder(out)
    assert info["features"]["action"]["names"] == [
        "robot0_j_a",
        "robot0_j_b",
        "robot0_j_c",
        "robot1_k_a",
        "robot1_k_b",
    ]
    t = data_table(out)
    expected = np.concatenate(list(qpos.values()), axis=1).astype(np.float32)
    expected[4, 3:] = expected[3, 3:]  # held over the row without angles
    np.testing.assert_array_equal(t["action"], expected)
    assert t["action_mask"][4].tolist() == [1, 1, 1, 0, 0]
    status = main(["export", "lerobot", str(copy), "-o", str(tmp_path / "lr3"), "--action", "robot_labels"])
    assert status == 2 and "no robot labels" in capsys.readouterr().err


def test_lerobot_robot_hand_action_needs_retargeted_joints(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["export", "lerobot", str(dataset), "-o", str(tmp_path / "lr"), "--action", "robot_hand_qpos"]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "run vidihand retarget first" in err, err
    assert not (tmp_path / "lr").exists()


def test_the_cli_offers_the_exports_actions() -> None:
    from vidihand_ros.cli.export import ACTION_CHOICES
    from vidihand_ros.export.lerobot_features import ACTION_CHOICES as EXPORTED

    assert ACTION_CHOICES == EXPORTED


def test_lerobot_task_text_from_the_episode_records(copy: Path, tmp_path: Path) -> None:
    meta = zc.open_group(copy, "r+")["meta"]
    records = zc.get_attrs(meta)["episodes"]
    records[1]["task"] = "stack the cups"
    zc.update_attrs(meta, {"episodes": records})
    out = tmp_path / "lr"
    export_lerobot(copy, out, task="wipe", repo_id="lab/cups")
    check_lerobot_folder(out)
    assert pq.read_table(out / "meta" / "tasks.parquet").column("task").to_pylist() == [
        "wipe",
        "stack the cups",
    ]
    episodes = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert episodes.column("tasks").to_pylist() == [["wipe"], ["stack the cups"]]
    assert data_table(out)["task_index"].tolist() == [0] * 12 + [1] * 9
    assert 'LeRobotDataset("lab/cups"' in (out / "README.md").read_text()


def test_lerobot_starts_new_files_past_the_size_limits(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "lr"
    export_lerobot(dataset, out, data_file_mb=1e-6, video_file_mb=1e-6)
    check_lerobot_folder(out)
    assert len(list((out / "data" / "chunk-000").glob("*.parquet"))) == 2
    episodes = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e[f"videos/{VIDEO_KEY}/file_index"] for e in episodes] == [0, 1]
    assert episodes[1][f"videos/{VIDEO_KEY}/from_timestamp"] == 0.0


def test_lerobot_refuses_an_existing_folder_unless_overwrite(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lr"
    (out / "keep").mkdir(parents=True)
    assert main(["export", "lerobot", str(dataset), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep").is_dir()
    assert main(["export", "lerobot", str(dataset), "-o", str(out), "--overwrite", "-q"]) == 0
    assert not (out / "keep").exists() and check_lerobot_folder(out)["total_frames"] == N
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr"]
    assert main(["export", "lerobot", str(tmp_path / "nothing.zarr"), "-o", str(tmp_path / "x")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_hold_fill() -> None:
    values = np.array([[9, 1], [2, 9], [9, 9], [4, 9]], dtype=np.float32)
    seen = np.array([[0, 1], [1, 0], [0, 0], [1, 0]], dtype=bool)
    np.testing.assert_array_equal(hold_fill(values, seen), [[2, 1], [2, 1], [2, 1], [4, 1]])
    np.testing.assert_array_equal(hold_fill(values, np.zeros_like(seen)), np.zeros((4, 2)))
