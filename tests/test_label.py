"""`vidihand label`: UMI robot action keys from hand poses, on trajectories with known answers (#18.5).

Datasets are written by the real `DatasetWriter`: the right wrist moves on a known line while
turning about the camera's z axis, the left one on another line with a fixed tilt, and the thumb
and index tips sit at known distances. Every expected value below is worked out by hand (plain
matrices), not by the code under test. The end-to-end test labels a `vidihand convert` output and
reads the keys back with plain zarr in a fresh interpreter, as UMI's ReplayBuffer would.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.transform import Rotation

from tests.converted import convert_bags
from tests.estimators import expected_pose
from tests.test_dataset import REPO, jpeg_frame, read_like_diffusion_policy
from vidihand_ros.cli import main
from vidihand_ros.dataset import journal
from vidihand_ros.dataset.columns import TRASH_DIR
from vidihand_ros.dataset.lock import acquire_lock
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import KeySpec
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.types import FramePoses, HandPose

LENGTHS = (6, 5, 3)
#: Thumb-index distances of the right hand, per dataset row (cycled).
DISTANCES = (0.005, 0.03, 0.05, 0.2, 0.09, 0.01)
#: The test calibration: width = distance - 0.01, clipped to [0, 0.08].
APERTURE = (
    "aperture: {keypoints: [4, 8], aperture_min: 0.01, aperture_max: 0.09, width_min: 0.0, width_max: 0.08}"
)
IDENTITY = "{xyz: [0, 0, 0], rotvec: [0, 0, 0]}"
ROBOT_FIELDS = (
    "eef_pos",
    "eef_rot_axis_angle",
    "gripper_width",
    "demo_start_pose",
    "demo_end_pose",
    "label_valid",
)


# --- the synthetic trajectories -----------------------------------------------------------------


def right_wrist(g: int) -> tuple[np.ndarray, float]:
    """Position and yaw (about the camera's z) of the right wrist at dataset row `g`."""
    return np.array([0.1 + 0.01 * g, -0.05, 0.5 + 0.002 * g]), 0.1 * g


def left_wrist(g: int) -> np.ndarray:
    return np.array([-0.2 - 0.01 * g, 0.05, 0.6])


LEFT_TILT = 0.2  # radians about the camera's x


def rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def hand_pose(wrist: np.ndarray, rotvec: np.ndarray, distance: float, presence: float = 0.9) -> HandPose:
    joints = np.tile(wrist, (21, 1))
    joints[4] = wrist + np.array([0.03, 0.0, 0.0])
    joints[8] = joints[4] + np.array([0.0, distance, 0.0])
    return HandPose(
        presence=presence,
        joints_3d=joints.astype(np.float32),
        keypoints_2d=np.full((21, 2), 10.0, np.float32),
        wrist_orient=np.asarray(rotvec, np.float32),
    )


def right_hand(episode: int, t: int, g: int) -> HandPose | None:
    """Episode 0: row 0 not estimated, row 2 barely present, row 4 without a wrist orientation;
    episode 1: the last row not estimated; episode 2: the right hand never estimated."""
    if (episode, t) in ((0, 0), (1, 4)) or episode == 2:
        return None
    wrist, yaw = right_wrist(g)
    rotvec = [np.nan, np.nan, np.nan] if (episode, t) == (0, 4) else [0.0, 0.0, yaw]
    return hand_pose(
        wrist, np.asarray(rotvec), DISTANCES[g % len(DISTANCES)], 0.2 if (episode, t) == (0, 2) else 0.9
    )


#: Where the right hand is labelled (usable), per dataset row.
RIGHT_LABELLED = np.array([0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)  # episodes of 6, 5, 3
ROWS = sum(LENGTHS)


def write_dataset(path: Path, lengths: tuple[int, ...] = LENGTHS, first_row: int = 0) -> Path:
    with DatasetWriter(path, mode="a" if path.exists() else "w") as writer:
        g = first_row
        for episode, n in enumerate(lengths):
            with writer.begin_episode({"task": f"episode {episode}"}) as ep:
                for t in range(n):
                    frame = jpeg_frame(g)
                    left = hand_pose(left_wrist(g), np.array([LEFT_TILT, 0.0, 0.0]), 0.05)
                    ep.add(
                        frame,
                        FramePoses(
                            frame.stamp_ns, frame.frame_id, left=left, right=right_hand(episode, t, g)
                        ),
                    )
                    g += 1
    return path


def config(
    tmp_path: Path,
    right: str = IDENTITY,
    left: str = IDENTITY,
    robots: str = "{robot0: right, robot1: left}",
    name: str = "h2g.yaml",
) -> Path:
    path = tmp_path / name
    path.write_text(
        f"robots: {robots}\nmin_presence: 0.5\n{APERTURE}\n"
        f"hands:\n  right: {{T_wrist_gripper: {right}}}\n  left: {{T_wrist_gripper: {left}}}\n"
    )
    return path


def label(capsys: pytest.CaptureFixture[str], dataset: Path, cfg: Path, *extra: str) -> tuple[int, str, str]:
    status = main(["label", str(dataset), "--hand-to-gripper", str(cfg), *extra])
    out, err = capsys.readouterr()
    return status, out, err


def keys(dataset: Path, robot: str) -> dict[str, np.ndarray]:
    reader = DatasetReader(dataset)
    return {f: np.asarray(reader.array(f"{robot}_{f}")[: reader.num_frames]) for f in ROBOT_FIELDS}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("written") / "demos.zarr")


@pytest.fixture
def dataset(tmp_path: Path, written: Path) -> Path:
    """A fresh copy of the written dataset (writing one costs a second of fsyncs)."""
    return Path(shutil.copytree(written, tmp_path / "demos.zarr"))


# --- values ---------------------------------------------------------------------------------------


def test_identity_transform_puts_the_gripper_on_the_wrist(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = label(capsys, dataset, config(tmp_path))
    assert status == 0, err
    assert out.strip() == (
        f"labelled {dataset}: robot0 (right hand) 7 of {ROWS} rows (50.0%), "
        f"robot1 (left hand) {ROWS} of {ROWS} rows (100.0%)"
    )
    right, left = keys(dataset, "robot0"), keys(dataset, "robot1")
    assert_array_equal(right["label_valid"], RIGHT_LABELLED)
    assert left["label_valid"].all()
    for g in np.flatnonzero(RIGHT_LABELLED):
        wrist, yaw = right_wrist(int(g))
        assert_allclose(right["eef_pos"][g], wrist, rtol=0, atol=1e-7)
        assert_allclose(right["eef_rot_axis_angle"][g], [0.0, 0.0, yaw], rtol=0, atol=1e-6)
    for g in range(ROWS):
        assert_allclose(left["eef_pos"][g], left_wrist(g), rtol=0, atol=1e-7)
        assert_allclose(left["eef_rot_axis_angle"][g], [LEFT_TILT, 0.0, 0.0], rtol=0, atol=1e-6)
    # not labelled: NaN, never a guess (row 4: valid joints, but no wrist orientation)
    for field in ("eef_pos", "eef_rot_axis_angle", "gripper_width"):
        assert (
            np.isnan(right[field][~RIGHT_LABELLED]).all() and np.isfinite(right[field][RIGHT_LABELLED]).all()
        )
    # float32, UMI's shapes
    assert {f: (a.dtype, a.shape[1:]) for f, a in right.items()} == {
        "eef_pos": (np.float32, (3,)),
        "eef_rot_axis_angle": (np.float32, (3,)),
        "gripper_width": (np.float32, (1,)),
        "demo_start_pose": (np.float32, (6,)),
        "demo_end_pose": (np.float32, (6,)),
        "label_valid": (np.bool_, ()),
    }


def test_offset_and_rotation_of_the_gripper_frame(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """10 cm along the wrist's x, gripper turned 90° about the wrist's x (4x4 form for the left)."""
    left_T = "[[1, 0, 0, 0], [0, 0, -1, 0.02], [0, 1, 0, 0], [0, 0, 0, 1]]"  # Rx(90°), 2 cm along y
    cfg = config(tmp_path, right=f"{{xyz: [0.1, 0, 0], rotvec: [{math.pi / 2}, 0, 0]}}", left=left_T)
    assert label(capsys, dataset, cfg)[0] == 0
    right, left = keys(dataset, "robot0"), keys(dataset, "robot1")
    for g in np.flatnonzero(RIGHT_LABELLED):
        wrist, yaw = right_wrist(int(g))
        # the wrist's x axis is the camera's (cos yaw, sin yaw, 0)
        assert_allclose(
            right["eef_pos"][g], wrist + 0.1 * np.array([math.cos(yaw), math.sin(yaw), 0]), atol=1e-7
        )
        rotation = Rotation.from_rotvec(right["eef_rot_axis_angle"][g]).as_matrix()
        assert_allclose(rotation, rot_z(yaw) @ rot_x(math.pi / 2), atol=1e-6)
    for g in range(ROWS):
        # the wrist's y axis is the camera's (0, cos 0.2, sin 0.2)
        offset = 0.02 * np.array([0.0, math.cos(LEFT_TILT), math.sin(LEFT_TILT)])
        assert_allclose(left["eef_pos"][g], left_wrist(g) + offset, atol=1e-7)
        rotation = Rotation.from_rotvec(left["eef_rot_axis_angle"][g]).as_matrix()
        assert_allclose(rotation, rot_x(LEFT_TILT + math.pi / 2), atol=1e-6)


def test_widths_follow_the_aperture_clipped(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert label(capsys, dataset, config(tmp_path))[0] == 0
    right, left = keys(dataset, "robot0"), keys(dataset, "robot1")
    expected = {0.005: 0.0, 0.03: 0.02, 0.05: 0.04, 0.2: 0.08, 0.09: 0.08, 0.01: 0.0}
    for g in np.flatnonzero(RIGHT_LABELLED):
        assert_allclose(right["gripper_width"][g], [expected[DISTANCES[g % len(DISTANCES)]]], atol=1e-7)
    assert_allclose(left["gripper_width"], np.full((ROWS, 1), 0.04), atol=1e-7)


def test_start_and_end_poses_repeat_over_each_episode(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert label(capsys, dataset, config(tmp_path))[0] == 0
    right, left = keys(dataset, "robot0"), keys(dataset, "robot1")

    def pose(g: int) -> np.ndarray:
        wrist, yaw = right_wrist(g)
        return np.array([*wrist, 0.0, 0.0, yaw])

    # episode 0 (rows 0-5): first labelled row 1, last 5; episode 1 (rows 6-10): 6 and 9
    for rows, first, last in ((range(0, 6), 1, 5), (range(6, 11), 6, 9)):
        for g in rows:  # on every row, labelled or not
            assert_allclose(right["demo_start_pose"][g], pose(first), atol=1e-6)
            assert_allclose(right["demo_end_pose"][g], pose(last), atol=1e-6)
    assert np.isnan(right["demo_start_pose"][11:]).all() and np.isnan(right["demo_end_pose"][11:]).all()
    for first, stop in ((0, 6), (6, 11), (11, 14)):
        assert_allclose(
            left["demo_start_pose"][first:stop, :3], np.tile(left_wrist(first), (stop - first, 1)), atol=1e-7
        )
        assert_allclose(
            left["demo_end_pose"][first:stop, :3], np.tile(left_wrist(stop - 1), (stop - first, 1)), atol=1e-7
        )


def test_robot_numbers_follow_the_config(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, robots="{robot0: left, robot1: right}")
    status, out, _ = label(capsys, dataset, cfg)
    assert status == 0 and "robot0 (left hand) 14 of 14" in out and "robot1 (right hand) 7 of 14" in out
    robot0, robot1 = keys(dataset, "robot0"), keys(dataset, "robot1")
    assert robot0["label_valid"].all()
    assert_allclose(robot0["eef_pos"], np.stack([left_wrist(g) for g in range(ROWS)]), atol=1e-7)
    assert_array_equal(robot1["label_valid"], RIGHT_LABELLED)
    assert DatasetReader(dataset).array("robot0_eef_pos").attrs["hand"] == "left"


# --- writing into the dataset ---------------------------------------------------------------------


def test_relabelling_replaces_every_key(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = config(tmp_path, name="a.yaml")
    assert label(capsys, dataset, first)[0] == 0
    second = config(tmp_path, right="{xyz: [0, 0, 0.05]}", name="b.yaml")
    assert label(capsys, dataset, second)[0] == 0
    assert not (dataset / journal.JOURNAL_DIR).exists()  # applied by label itself, not a later reader
    right = keys(dataset, "robot0")
    g = 1
    assert_allclose(right["eef_pos"][g], right_wrist(g)[0] + [0, 0, 0.05], atol=1e-7)
    attrs = dict(DatasetReader(dataset).array("robot0_gripper_width").attrs)
    assert attrs["label_config_sha256"] == hashlib.sha256(second.read_bytes()).hexdigest()
    assert attrs["label_config_file"] == str(second) and attrs["written_by"] == "vidihand label"
    assert attrs["label_config"]["hands"]["right"]["T_wrist_gripper"][2][3] == 0.05
    # a configuration with one robot: the other's keys go (UMI would count it as a robot)
    single = config(tmp_path, robots="{robot0: left}", name="c.yaml")
    status, out, _ = label(capsys, dataset, single)
    assert status == 0 and "robot1" not in out
    names = DatasetReader(dataset).keys
    assert [k for k in names if k.startswith("robot")] == sorted(f"robot0_{f}" for f in ROBOT_FIELDS)
    assert not (dataset / journal.JOURNAL_DIR).exists() and not (dataset / TRASH_DIR).exists()


def test_episodes_appended_later_are_unlabelled_until_the_next_run(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    assert label(capsys, dataset, cfg)[0] == 0
    write_dataset(dataset, (4,), first_row=ROWS)  # the writer accepts the label keys as extra keys
    left = keys(dataset, "robot1")
    assert len(left["label_valid"]) == ROWS + 4 and not left["label_valid"][ROWS:].any()
    assert np.isnan(left["eef_pos"][ROWS:]).all()
    assert label(capsys, dataset, cfg)[0] == 0
    left = keys(dataset, "robot1")
    assert left["label_valid"].all()
    assert_allclose(left["demo_start_pose"][ROWS:, :3], np.tile(left_wrist(ROWS), (4, 1)), atol=1e-7)


def test_an_interrupted_relabel_leaves_old_or_new_labels(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert label(capsys, dataset, config(tmp_path, name="a.yaml"))[0] == 0
    before = {r: keys(dataset, r) for r in ("robot0", "robot1")}
    new = config(tmp_path, right="{xyz: [0.1, 0, 0]}", left="{xyz: [0.1, 0, 0]}", name="b.yaml")

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # killed before the commit point
        m.setattr(journal.Journal, "commit", killed)
        assert label(capsys, dataset, new)[0] == 130
    for robot, values in before.items():
        for field, array in keys(dataset, robot).items():
            assert_array_equal(array, values[field], err_msg=f"{robot}_{field}")
    assert not (dataset / journal.JOURNAL_DIR).exists()

    with monkeypatch.context() as m:  # killed after it: the journal waits, committed
        m.setattr(journal.Journal, "apply", lambda self: None)
        assert label(capsys, dataset, new)[0] == 0
    assert journal.is_committed(dataset)
    reader = DatasetReader(dataset)  # finishes it
    assert not journal.is_committed(dataset)
    assert_allclose(reader.array("robot1_eef_pos")[0], left_wrist(0) + np.array([0.1, 0, 0]), atol=1e-7)
    assert (
        reader.array("robot1_eef_pos").attrs["label_config_sha256"]
        == hashlib.sha256(new.read_bytes()).hexdigest()
    )


def test_a_co_recorded_key_of_the_same_name_is_not_overwritten(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DatasetWriter(dataset, mode="a") as writer:
        writer.add_keys(
            [KeySpec("robot0_gripper_width", np.dtype(np.float32), (1,), math.nan, "a topic")], {}
        )
    status, out, err = label(capsys, dataset, config(tmp_path))
    assert status == 2 and out == ""
    assert err.strip().splitlines() == [
        f"vidihand label: error: {dataset}: data/robot0_gripper_width exists and was not written by "
        "vidihand label (a co-recorded topic?); nothing was changed"
    ]
    assert [k for k in DatasetReader(dataset).keys if k.startswith("robot")] == ["robot0_gripper_width"]


def test_a_dataset_another_writer_holds_is_refused(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = acquire_lock(dataset)
    try:
        status, _, err = label(capsys, dataset, config(tmp_path))
    finally:
        lock.close()
    assert (
        status == 2
        and err.strip() == f"vidihand label: error: {dataset}: another writer has this dataset open"
    )


# --- a bad configuration: one line, exit 2 --------------------------------------------------------


ROBOTS = "robots: {robot0: right, robot1: left}"
RIGHT = f"right: {{T_wrist_gripper: {IDENTITY}}}"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (ROBOTS, "robots: [", "not valid YAML"),
        (None, "- 1\n- 2\n", "expected a mapping"),
        (ROBOTS, "robots: {robot0: middle}", "field 'robots.robot0': expected one of left, right"),
        (
            ROBOTS,
            "robots: {robot0: right, robot1: right}",
            "field 'robots': each hand drives at most one robot",
        ),
        (ROBOTS, "robots: {robot0: right, robot2: left}", "field 'robots.robot2': unknown key"),
        ("min_presence: 0.5", "min_presense: 0.5", "field 'min_presense': unknown key"),
        ("min_presence: 0.5", "min_presence: 2", "field 'min_presence': must be in [0, 1]"),
        ("aperture_max: 0.09", "aperture_max: 0.005", "field 'aperture.aperture_max': must be greater"),
        (", width_max: 0.08", "", "field 'aperture.width_max': missing"),
        ("keypoints: [4, 8]", "keypoints: [4, 21]", "field 'aperture.keypoints'"),
        (
            IDENTITY,
            "[[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
            "field 'hands.right.T_wrist_gripper': the upper-left 3x3 is not a rotation",
        ),
        (
            IDENTITY,
            "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]]",  # a mirror: orthonormal, det -1
            "field 'hands.right.T_wrist_gripper': the upper-left 3x3 is not a rotation",
        ),
        (
            IDENTITY,
            "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]]",
            "field 'hands.right.T_wrist_gripper': the last row",
        ),
        (
            IDENTITY,
            "{xyz: [0, 0], rotvec: [0, 0, 0]}",
            "field 'hands.right.T_wrist_gripper.xyz': expected 3 numbers",
        ),
        (
            IDENTITY,
            "{xyz: [0, 0, .nan]}",
            "field 'hands.right.T_wrist_gripper.xyz': expected 3 finite numbers",
        ),
        (IDENTITY, "{xyz: [100, 0, 0]}", "field 'hands.right.T_wrist_gripper': translation over 2 m"),
        (f"  {RIGHT}\n", "", "field 'hands.right': robot0 is the right hand"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_field(
    tmp_path: Path,
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
    old: str | None,
    new: str,
    expected: str,
) -> None:
    good = config(tmp_path).read_text()
    assert old is None or good.count(old) >= 1
    bad = new if old is None else good.replace(old, new, 1)
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    status, out, err = label(capsys, dataset, path)
    lines = err.strip().splitlines()
    assert status == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"vidihand label: error: {path}") and expected in lines[0], lines[0]
    assert not any(k.startswith("robot") for k in DatasetReader(dataset).keys)


def test_a_missing_config_is_one_line(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = label(capsys, dataset, tmp_path / "none.yaml")
    assert (
        status == 2
        and err.strip()
        == f"vidihand label: error: {tmp_path / 'none.yaml'}: hand-to-gripper config not found"
    )


# --- end to end: a converted bag, the packaged example config, read as UMI reads it --------------


def test_a_converted_dataset_labelled_and_read_with_plain_zarr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = convert_bags(tmp_path)
    capsys.readouterr()
    cfg = REPO / "config" / "hand_to_gripper.yaml"
    status, out, err = label(capsys, dataset, cfg, "--json")
    assert status == 0, err
    reader = DatasetReader(dataset)
    n = reader.num_frames
    stamps = np.asarray(reader.array("stamp_ns")[:n])
    present = np.array([expected_pose(int(s), "right").presence >= 0.5 for s in stamps])
    assert 0 < present.sum() < n  # the right hand is absent on some rows
    result = json.loads(out)
    assert result["config_sha256"] == hashlib.sha256(cfg.read_bytes()).hexdigest()
    assert [(r["robot"], r["hand"], r["labelled"]) for r in result["robots"]] == [
        ("robot0", "right", int(present.sum())),
        ("robot1", "left", n),
    ]
    # the example: TCP 10 cm along the fingers, 2 cm towards the palm; axes z = x_wrist, y = -z_wrist
    T_rotation = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    for robot, side, mask in (("robot0", "right", present), ("robot1", "left", np.ones(n, bool))):
        assert_array_equal(reader.array(f"{robot}_label_valid")[:n], mask)
        wrist = np.asarray(reader.array(f"{side}_hand_wrist_pos")[:n], np.float64)
        rotvec = np.asarray(reader.array(f"{side}_hand_wrist_rot_axis_angle")[:n], np.float64)
        eef_pos = np.asarray(reader.array(f"{robot}_eef_pos")[:n])
        eef_rot = np.asarray(reader.array(f"{robot}_eef_rot_axis_angle")[:n])
        for g in np.flatnonzero(mask):
            R = Rotation.from_rotvec(rotvec[g]).as_matrix()
            assert_allclose(eef_pos[g], wrist[g] + R @ [0.10, 0.0, -0.02], atol=1e-6)
            assert_allclose(Rotation.from_rotvec(eef_rot[g]).as_matrix(), R @ T_rotation, atol=1e-6)
        # thumb-index tips of the stamp estimator are 0.0067 m apart: below aperture_min, closed
        assert_allclose(reader.array(f"{robot}_gripper_width")[:n][mask], 0.0, atol=0)
    # UMI's ReplayBuffer opens data/<key> with plain zarr: every key as long as the episodes
    seen = read_like_diffusion_policy(
        dataset,
        """
        n = int(meta["episode_ends"][-1])
        keys = sorted(k for k in data.array_keys() if k.startswith("robot"))
        out = {k: [str(data[k].dtype), list(data[k].shape)] for k in keys}
        start = data["robot1_demo_start_pose"][:]
        ends = meta["episode_ends"][:].tolist()
        first, second = start[: ends[0]], start[ends[0] :]
        out["same_start"] = bool((first == first[0]).all() and (second == second[0]).all())
        out["sha"] = data["robot0_eef_pos"].attrs["label_config_sha256"]
        print(json.dumps(out))
        """,
    )
    assert isinstance(seen, dict)
    for robot in ("robot0", "robot1"):
        assert seen[f"{robot}_eef_pos"] == ["float32", [n, 3]]
        assert seen[f"{robot}_eef_rot_axis_angle"] == ["float32", [n, 3]]
        assert seen[f"{robot}_gripper_width"] == ["float32", [n, 1]]
        assert seen[f"{robot}_demo_start_pose"] == ["float32", [n, 6]]
        assert seen[f"{robot}_demo_end_pose"] == ["float32", [n, 6]]
        assert seen[f"{robot}_label_valid"] == ["bool", [n]]
    assert seen["same_start"] is True and seen["sha"] == result["config_sha256"]
