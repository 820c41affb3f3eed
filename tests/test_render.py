"""`vidihand render` on a dataset made by `vidihand convert`: mp4, PNG stills and Rerun recordings,
checked by opening what was written (PyAV decodes the mp4, rerun's own reader loads the .rrd)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.converted import CAMERA, convert_bags
from tests.mano_fixtures import mano_dir  # noqa: F401  (pytest fixture)
from vidihand_ros.cli import main
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.render.overlay import MIN_DRAW_SIZE, draw_row, enlargement, scaled_pixels
from vidihand_ros.render.stored_hands import HandRows, HandState, read_hands
from vidihand_ros.visualize import SIDE_COLOURS

SCALE = enlargement(CAMERA.width, CAMERA.height)
DRAWN = (CAMERA.width * SCALE, CAMERA.height * SCALE)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_bags(tmp_path_factory.mktemp("render"), lengths=(12, 9))


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    status = main(["render", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def read_png(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def colour_distance_near_joint(
    picture: np.ndarray, reader: DatasetReader, side: str, row: int, colour: tuple
) -> float:
    """How close the pixels around the hand's first stored keypoint come to `colour` (its ring)."""
    x, y = (
        round(float(v))
        for v in scaled_pixels(np.asarray(reader.array(f"{side}_hand_keypoints_2d")[row][0]), SCALE)
    )
    patch = picture[max(0, y - 4) : y + 5, max(0, x - 4) : x + 5].reshape(-1, 3).astype(float)
    return float(np.linalg.norm(patch - np.asarray(colour), axis=1).min())


def test_the_mp4_has_every_selected_frame_at_the_episode_rate(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, dataset, "-o", tmp_path / "all.mp4")
    assert status == 0 and "wrote 21 frame(s)" in out
    with av.open(str(tmp_path / "all.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == pytest.approx(30.0, abs=0.01)
    assert len(frames) == 21
    assert frames[0].shape == (DRAWN[1], DRAWN[0], 3)
    assert max(DRAWN) >= MIN_DRAW_SIZE
    status, _, _ = run(capsys, dataset, "--episode", 1, "--frames", "2:7", "-o", tmp_path / "part.mp4")
    with av.open(str(tmp_path / "part.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5
    assert status == 0 and not list(tmp_path.glob(".*partial*"))


def test_stills_draw_the_stored_keypoints_in_each_sides_colour(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = DatasetReader(dataset)
    presence = np.asarray(reader.array("right_hand_presence")[:12])
    # Keypoints move right and down with time (the test estimator): frames 3–11 are clear of
    # the legend (top left) and inside the picture.
    absent = 3 + int(np.argmax(presence[3:] < 0.5))
    present = 3 + int(np.argmax(presence[3:] >= 0.5))
    status, out, _ = run(capsys, dataset, "--episode", 0, "--frames", "0:12", "-o", tmp_path / "stills")
    assert status == 0 and "wrote 12 frame(s)" in out
    names = sorted(p.name for p in (tmp_path / "stills").iterdir())
    assert names == [f"ep000_frame{t:05d}.png" for t in range(12)]
    # Both hands' keypoints are at the same pixel (the test estimator): the right hand, drawn
    # last, covers the left one where it is present; where it is absent the left one shows.
    where_absent = read_png(tmp_path / "stills" / names[absent])
    where_present = read_png(tmp_path / "stills" / names[present])
    assert where_absent.shape == (DRAWN[1], DRAWN[0], 3)
    left, right = SIDE_COLOURS["left"], SIDE_COLOURS["right"]
    assert colour_distance_near_joint(where_absent, reader, "left", absent, left) < 25
    assert colour_distance_near_joint(where_absent, reader, "left", absent, right) > 100
    assert colour_distance_near_joint(where_present, reader, "right", present, right) < 25
    status, _, _ = run(capsys, dataset, "--episode", 1, "--frames", "3:4", "-o", tmp_path / "one.png")
    assert status == 0 and read_png(tmp_path / "one.png").shape == (DRAWN[1], DRAWN[0], 3)
    status, _, _ = run(
        capsys, dataset, "--episode", 1, "--frames", "3:4", "--max-size", 200, "-o", tmp_path / "small.png"
    )
    assert max(read_png(tmp_path / "small.png").shape[:2]) == 200


def test_a_filled_hand_is_drawn_half_transparent_and_states_are_named() -> None:
    keypoints = np.full((2, 21, 2), 500.0, np.float32)
    hand = HandRows(
        side="left",
        presence=np.array([0.9, 0.9], np.float32),
        valid=np.array([True, True]),
        filled=np.array([False, True]),
        values={"keypoints_2d": keypoints},
    )
    black = np.zeros((1000, 1000, 3), np.uint8)
    observed = draw_row(black, {"left": hand}, 0, caption="", min_presence=0.5)[490:511, 490:511]
    filled = draw_row(black, {"left": hand}, 1, caption="", min_presence=0.5)[490:511, 490:511]
    colour = np.asarray(SIDE_COLOURS["left"], float)

    def nearest(patch: np.ndarray, target: np.ndarray) -> float:
        return float(np.linalg.norm(patch.reshape(-1, 3) - target, axis=1).min())

    assert nearest(observed, colour) < 10
    assert nearest(filled, colour * 0.5) < 10 and nearest(filled, colour) > 60
    states = HandRows(
        side="right",
        presence=np.array([np.nan, 0.2, 0.9, 0.9], np.float32),
        valid=np.array([False, True, False, True]),
        filled=np.zeros(4, bool),
        values={},
    )
    assert [states.state(k) for k in range(4)] == [
        HandState.NOT_ESTIMATED,
        HandState.ABSENT,
        HandState.ABSENT,
        HandState.OBSERVED,
    ]


def test_the_mano_mesh_is_painted_from_the_stored_parameters(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mano_dir: Path,  # noqa: F811
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("smplx")
    args = ("--episode", 0, "--frames", "0:1")
    assert run(capsys, dataset, *args, "-o", tmp_path / "plain.png")[0] == 0
    assert run(capsys, dataset, *args, "--mano-dir", mano_dir, "-o", tmp_path / "mesh.png")[0] == 0
    changed = (
        np.abs(read_png(tmp_path / "mesh.png").astype(int) - read_png(tmp_path / "plain.png")).sum(-1) > 30
    )
    assert changed.mean() > 0.02  # the hands cover a visible part of the frame


def test_the_rerun_recording_holds_frames_joints_camera_and_scalars(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import rerun.dataframe as rd

    rrd = tmp_path / "demos.rrd"
    status, out, _ = run(capsys, dataset, "--rerun", rrd)
    assert status == 0 and "logged 21 frame(s)" in out
    reader = DatasetReader(dataset)
    table = rd.load_recording(str(rrd)).view(index="frame", contents="/**").select().read_all()
    assert table.column("frame").to_pylist() == list(range(21))
    assert table.column("episode_frame").to_pylist() == [*range(12), *range(9)]
    blobs = table.column("/world/camera/image:Blob").to_pylist()
    images = reader.array("camera0_rgb")
    assert bytes(blobs[13][0]) == zc.chunk_file(images, (13, 0, 0, 0)).read_bytes()
    K = np.asarray(table.column("/world/camera:PinholeProjection").to_pylist()[0][0]).reshape(3, 3)
    np.testing.assert_allclose(K.T, CAMERA.K)  # rerun stores the matrix column-major
    joints = table.column("/world/left_hand/joints:Position3D").to_pylist()
    np.testing.assert_allclose(np.asarray(joints[5]), reader.array("left_hand_joints_3d")[5], atol=1e-6)
    presence = [v[0] for v in table.column("/scalars/right_hand_presence:Scalar").to_pylist()]
    np.testing.assert_allclose(presence, reader.array("right_hand_presence")[:21], atol=1e-6)
    hands = read_hands(reader, 0, 21)
    right = table.column("/world/right_hand/joints:Position3D").to_pylist()
    for row in range(21):
        shown = hands["right"].state(row) is HandState.OBSERVED
        assert (right[row] is not None and len(right[row]) == 21) == shown, row
    paths = table.column("/world/left_hand/wrist_path:LineStrip3D").to_pylist()
    assert len(paths[0][0]) == 12 and len(paths[12][0]) == 9  # each episode's whole path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--episode", "5", "-o", "x.mp4"), "no episode 5"),
        (("--frames", "40:50", "-o", "x.mp4"), "selects no frame"),
        (("-o", "x.png"), "one picture holds one frame"),
        ((), "say what to write"),
    ],
)
def test_bad_requests_are_one_line_and_exit_2(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    says: str,
) -> None:
    args = tuple(str(tmp_path / a) if a.startswith("x.") else a for a in args)
    status, _, err = run(capsys, dataset, *args)
    assert status == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_a_folder_that_is_not_a_dataset_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, tmp_path, "-o", tmp_path / "x.mp4")
    assert status == 2 and str(tmp_path) in err and len(err.strip().splitlines()) == 1


def test_the_caption_gives_wall_clock_stamps_as_dates_and_a_videos_own_clock_as_seconds() -> None:
    from vidihand_ros.render.overlay import stamp_text

    assert stamp_text(0, 12, 1_700_000_000_400_000_000) == "ep 0  frame 12  2023-11-14 22:13:20.400 UTC"
    assert stamp_text(2, 120, 4_000_000_000) == "ep 2  frame 120  t 4.000 s"
