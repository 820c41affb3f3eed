"""`--ray` without Ray: the CLI and the merge need no `ray` import, bad input fails before Ray starts.

These run in every venv (no Ray needed); the Ray tests themselves are in test_ray.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bagfactory import synthetic_frames, write_image_bag
from vidihand_ros.cli import main
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import HAND_FIELDS, IMAGE_KEY
from vidihand_ros.dataset.staging import open_for_writing
from vidihand_ros.distributed.merge import _HAND_ARGS, copy_episodes
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
STAMP_ESTIMATOR = "tests.estimators:stamp_estimator"


def bag(folder: Path, n: int, fmt: str = "jpeg", start_ns: int = 1_700_000_000_000_000_000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    written = write_image_bag(
        folder / "rec", synthetic_frames(n), compressed_format=fmt, camera_info=CAMERA, start_ns=start_ns
    )
    return written.path


def assert_same_data(a: Path, b: Path) -> None:
    """Equal episodes, rows of every key, and image chunks byte for byte."""
    left, right = DatasetReader(a), DatasetReader(b)
    assert list(left.episode_ends) == list(right.episode_ends)
    assert left.keys == right.keys
    for key in left.keys:
        if key == IMAGE_KEY:
            for row in range(left.num_frames):
                chunk = (row, 0, 0, 0)
                assert zc.chunk_file(left.array(key), chunk).read_bytes() == (
                    zc.chunk_file(right.array(key), chunk).read_bytes()
                ), f"image row {row}"
        else:
            np.testing.assert_array_equal(
                left.array(key)[: left.num_frames], right.array(key)[:], err_msg=key
            )


def test_the_cli_and_the_merge_import_no_ray() -> None:
    code = (
        "import sys, vidihand_ros.cli, vidihand_ros.distributed, vidihand_ros.distributed.convert\n"
        "print('ray' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_merge_knows_every_hand_field() -> None:
    assert {name for name, _, _ in HAND_FIELDS} == {*_HAND_ARGS, "wrist_pos"}


def test_copying_episodes_keeps_rows_jpegs_and_records(tmp_path: Path) -> None:
    """Poses, NaN rows (the PNG recording is frames-only) and re-encoded frames survive the copy."""
    jpeg, png = bag(tmp_path / "a", 9), bag(tmp_path / "b", 5, fmt="png", start_ns=1_800_000_000_000_000_000)
    source = tmp_path / "source.zarr"
    estimate = ["--estimator", STAMP_ESTIMATOR, "--window", "4"]
    assert main(["convert", str(jpeg), "-o", str(source), "-q", *estimate]) == 0
    assert main(["convert", str(png), "-o", str(source), "-q", "--append"]) == 0
    copy = tmp_path / "copy.zarr"
    reader = DatasetReader(source)
    with open_for_writing(copy, attrs=reader.attrs["provenance"]) as writer:
        assert copy_episodes(reader, writer) == 14

    assert_same_data(source, copy)
    copied = DatasetReader(copy)
    for i in range(2):
        want, got = reader.episode_attrs(i), copied.episode_attrs(i)
        assert {k for k in want if want[k] != got.get(k)} <= {"committed", "session"}
    assert copied.episode_attrs(1)["reencoded_frames"] == 5  # what the PNG's conversion did


def test_bad_ray_arguments_fail_in_one_line_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recording = bag(tmp_path / "a", 3)
    out = str(tmp_path / "out.zarr")
    cases = [
        (["--address", "auto"], "--address needs --ray"),
        (["--ray", "--pose-bag", str(tmp_path / "poses")], "--pose-bag is not supported with --ray"),
        (["--ray", "--window", "4", "--stride", "5"], "--stride 5 is larger than --window 4"),
    ]
    for extra, message in cases:
        assert main(["convert", str(recording), "-o", out, "-q", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["convert", str(tmp_path / "missing.mcap"), "-o", out, "-q", "--ray"]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert not Path(out).exists()
    assert main(["convert", str(recording), "-o", out, "-q"]) == 0
    assert main(["convert", str(recording), "-o", out, "-q", "--ray"]) == 2  # no --append, --overwrite
    assert "a dataset with data exists here" in capsys.readouterr().err
