"""`vidihand plot`: the PNGs are opened and checked: their size, and each panel holds its curves."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.converted import convert_bags
from tests.test_inspect_quality import write_synthetic
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.plots import EPISODE_SIZE_PX, SUMMARY_SIZE_PX, Box, plot_dataset
from vidihand_ros.visualize import SIDE_COLOURS

#: A curve drawn 2 px wide has at least this many pixels of its colour in a panel.
MIN_CURVE_PIXELS = 40
#: The jitter curve is drawn only on runs of three found frames: short where the hand comes and goes.
MIN_JITTER_PIXELS = 20
GRIPPER_GREY = (0x22, 0x22, 0x22)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_bags(tmp_path_factory.mktemp("converted"))


def pixels_of(image: np.ndarray, box: Box, colour: tuple[int, int, int], tol: int = 12) -> int:
    """How many pixels inside `box` (x0, y0, x1, y1) have `colour` (within `tol` per channel)."""
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1, :3].astype(np.int16)
    return int(np.all(np.abs(crop - np.array(colour)) <= tol, axis=-1).sum())


def load(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        assert png.format == "PNG"
        return np.asarray(png.convert("RGB"))


def test_plot_writes_one_png_per_episode_and_a_summary(
    converted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plots" / "nested"  # -o is created
    capsys.readouterr()
    assert main(["plot", str(converted), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    names = ["episode_000.png", "episode_001.png", "summary.png"]
    assert printed == [str(out / n) for n in names]
    assert sorted(p.name for p in out.iterdir()) == names

    figures, skipped = plot_dataset(DatasetReader(converted), tmp_path / "again", [1])
    assert skipped == [] and [f.path.name for f in figures] == ["episode_001.png", "summary.png"]
    for figure in figures[:-1]:
        image = load(figure.path)
        assert image.shape[1::-1] == EPISODE_SIZE_PX  # (width, height)
        assert set(figure.panels) == {"presence", "wrist x", "wrist y", "wrist z", "speed", "jitter"}
        for name, box in figure.panels.items():
            for side, colour in SIDE_COLOURS.items():
                least = MIN_JITTER_PIXELS if name == "jitter" else MIN_CURVE_PIXELS
                assert pixels_of(image, box, colour) >= least, (figure.path.name, name, side)
        # the right hand's gap leaves its wrist curve broken: fewer right than left pixels in x
        x_box = figure.panels["wrist x"]
        assert pixels_of(image, x_box, SIDE_COLOURS["right"]) < pixels_of(image, x_box, SIDE_COLOURS["left"])
        # panels are stacked top to bottom without overlapping
        tops = [figure.panels[n] for n in ("presence", "wrist x", "wrist y", "wrist z", "speed", "jitter")]
        assert all(a[3] <= b[1] for a, b in itertools.pairwise(tops))
    summary = figures[-1]
    image = load(summary.path)
    assert image.shape[1::-1] == SUMMARY_SIZE_PX
    for side, colour in SIDE_COLOURS.items():  # share bars of both hands; the right one shorter
        assert pixels_of(image, summary.panels["found"], colour) > 1000, side
    found = summary.panels["found"]
    assert pixels_of(image, found, SIDE_COLOURS["right"]) < pixels_of(image, found, SIDE_COLOURS["left"])


def test_episode_option_gripper_panel_and_frames_only_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_synthetic(tmp_path / "labelled.zarr", gripper=True)
    out = tmp_path / "one"
    capsys.readouterr()
    assert main(["plot", str(dataset), "-o", str(out), "--episode", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["episode_001.png", "summary.png"]

    reader = DatasetReader(dataset)
    figures, skipped = plot_dataset(reader, tmp_path / "all", [0, 2])
    assert skipped == [2]  # frames only: nothing to plot
    assert [f.path.name for f in figures] == ["episode_000.png", "summary.png"]
    episode = figures[0]
    image = load(episode.path)
    assert image.shape[1::-1] == EPISODE_SIZE_PX
    assert "gripper" in episode.panels
    assert pixels_of(image, episode.panels["gripper"], GRIPPER_GREY) >= MIN_CURVE_PIXELS
    assert pixels_of(image, episode.panels["presence"], GRIPPER_GREY, tol=4) < MIN_CURVE_PIXELS
    summary = load(figures[-1].path)
    flags_red = (0xCC, 0x33, 0x11)  # two flagged episodes: bars in the flags panel
    assert pixels_of(summary, figures[-1].panels["flags"], flags_red) > 1000

    capsys.readouterr()
    assert main(["plot", str(dataset), "-o", str(tmp_path / "cli"), "--episode", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "episode 2: no poses (frames only), not plotted",
        str(tmp_path / "cli" / "summary.png"),
    ]


def test_bad_input_is_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path / "nothing.zarr"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not a zarr dataset" in err and len(err.strip().splitlines()) == 1
    dataset = write_synthetic(tmp_path / "d.zarr")
    assert main(["plot", str(dataset), "-o", str(tmp_path / "o"), "--episode", "7"]) == 2
    assert "no episode 7" in capsys.readouterr().err
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"")
    assert main(["plot", str(dataset), "-o", str(a_file)]) == 2
    assert "not a folder" in capsys.readouterr().err
