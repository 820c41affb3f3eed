"""The `vidihand` command line itself: what building the parser and converting import, shared options.

The import checks run the real console script in a fresh interpreter with
`PYTHONPROFILEIMPORTTIME=1`, so they see the modules a user's `vidihand convert` loads (all but
those loaded by `importlib.import_module`, such as an estimator's factory module: the profile
misses those, though not what they import in turn).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bagfactory import synthetic_frames, write_image_bag
from vidihand_ros.cli import build_parser, main
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
#: What frames-only and MediaPipe conversions must never load (model, training and MANO pickle code).
HEAVY = (
    "torch",
    "diffusers",
    "vidihand_ros.training_data",
    "vidihand_ros.training",
    "vidihand_ros.model",
    "vidihand_ros.mano.files",
)


IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+\d+ \| *([\w.]+)")


def vidihand_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m vidihand_ros.cli`."""
    script = Path(sys.executable).with_name("vidihand")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "vidihand_ros.cli"]


def imported_modules(*args: str) -> set[str]:
    """Run `vidihand ARGS` (it must succeed) and return the modules it imported."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    done = subprocess.run([*vidihand_command(), *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # A regex, not split lines: native code (MediaPipe's logging) may write into the same stream.
    modules = set(IMPORT_LINE.findall(done.stderr))
    assert "vidihand_ros.cli" in modules  # the profile was written
    return modules


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bag") / "rec"
    frames = list(synthetic_frames(6))
    return write_image_bag(path, frames, compressed_format="jpeg", camera_info=CAMERA).path


@pytest.mark.parametrize("command", [[], ["inspect"], ["import"], ["train", "adapt"]])
def test_help_imports_no_numpy_nor_any_command_code(command: list[str]) -> None:
    modules = imported_modules(*command, "--help")
    assert (
        loaded(modules, ("numpy", "rich", "vidihand_ros.pipeline", "vidihand_ros.estimators", *HEAVY)) == []
    )


def test_convert_help_imports_only_the_estimator_registry() -> None:
    modules = imported_modules("convert", "--help")  # it lists the registry's names
    assert "vidihand_ros.estimators" in modules
    estimators = ("vidihand_ros.estimators.mediapipe", "vidihand_ros.estimators.vidihand", "mediapipe")
    assert loaded(modules, ("vidihand_ros.pipeline", *estimators, *HEAVY)) == []


def test_frames_only_convert_imports_no_model_training_or_mano_code(bag: Path, tmp_path: Path) -> None:
    modules = imported_modules("convert", str(bag), "-o", str(tmp_path / "out.zarr"), "-q")
    assert "vidihand_ros.pipeline" in modules
    assert loaded(modules, HEAVY) == []


def test_mediapipe_convert_imports_no_model_training_or_mano_code(bag: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("the mediapipe estimator needs the [baseline] extra")
    out = tmp_path / "out.zarr"
    modules = imported_modules("convert", str(bag), "-o", str(out), "-q", "--estimator", "mediapipe")
    assert loaded(modules, ("mediapipe",))  # the profile covers the estimator
    assert loaded(modules, HEAVY) == []


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vidihand_ros.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.startswith("vidihand_ros ")


def test_import_kinds_are_the_loaders() -> None:
    from vidihand_ros.cli.import_data import IMPORT_KINDS
    from vidihand_ros.training_data import LOADERS

    assert tuple(sorted(LOADERS)) == IMPORT_KINDS


@pytest.mark.parametrize(
    "args",
    [
        ["-v", "inspect", "X"],
        ["inspect", "X", "-v"],
        ["convert", "rec", "-o", "out", "-q"],
        ["-q", "model", "init", "--config", "tiny", "-o", "ck"],
        ["train", "adapt", "--checkpoint", "ck", "--data", "gt", "--verbose"],
        ["visualize", "photo.jpg", "-o", "hands.png", "--quiet"],
    ],
)
def test_verbosity_before_or_after_the_command(args: list[str]) -> None:
    ns = build_parser().parse_args(args)
    assert (ns.verbose, ns.quiet) == ("-v" in args or "--verbose" in args, "-q" in args or "--quiet" in args)


def test_convert_help_names_the_estimators_and_recordings(capsys: pytest.CaptureFixture) -> None:
    from vidihand_ros.estimators import BUILTIN_ESTIMATORS

    assert main(["convert", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("none", "frames-only", *BUILTIN_ESTIMATORS, "package.module:factory", "RECORDING", "mp4"):
        assert name in text, name
    assert "the estimator's own window" in text


def test_window_is_left_to_the_estimator_unless_given() -> None:
    assert build_parser().parse_args(["convert", "rec", "-o", "out"]).window is None
    ns = build_parser().parse_args(["convert", "rec", "-o", "out", "--window", "9", "--stride", "3"])
    assert (ns.window, ns.stride) == (9, 3)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--window", "0"),
        ("--stride", "x"),
        ("--batch-windows", "-1"),
        ("--image-size", "224"),
        ("--image-size", "0x10"),
        ("--time-range", "5:1"),
        ("--time-range", "5"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option(
    option: str, value: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["convert", "rec", "-o", "out", option, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"vidihand convert: error: argument {option}"), err


def test_stride_longer_than_the_given_window_is_refused(bag: Path, tmp_path: Path, capsys) -> None:
    assert main(["convert", str(bag), "-o", str(tmp_path / "x.zarr"), "--window", "4", "--stride", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "vidihand convert: error: --stride 5 is larger than --window 4: frames would be lost"


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("convert", "--time-range", "nan:nan"),
        ("convert", "--time-range", "0:inf"),
        ("convert", "--time-range", "-inf:2"),
        ("convert", "--time-range", "1e309:1e310"),
        ("convert", "--time-range", "-1:2"),
        ("convert", "--segment-gap", "nan"),
        ("convert", "--segment-gap", "-1"),
        ("convert", "--segment-gap", "0"),
        ("convert", "--segment-gap", "inf"),
        ("convert", "--split-gaps", "nan"),
        ("convert", "--split-gaps", "-0.5"),
        ("convert", "--split-gaps", "inf"),
        ("convert", "--jpeg-quality", "0"),
        ("convert", "--jpeg-quality", "101"),
        ("convert", "--jpeg-quality", "nan"),
        ("convert", "--batch-windows", "0"),
        ("convert", "--batch-windows", "1000000000"),
        ("convert", "--window", "9" * 5000),
        ("convert", "--stride", "nan"),
        ("convert", "--image-size", "100000x10"),
        ("eval", "--fps", "nan"),
        ("eval", "--fps", "0"),
        ("eval", "--fps", "-30"),
        ("eval", "--fps", "inf"),
        ("eval", "--presence-threshold", "nan"),
        ("eval", "--presence-threshold", "1.5"),
        ("eval", "--presence-threshold", "-0.1"),
    ],
)
def test_non_finite_and_out_of_range_numbers_are_usage_errors(
    command: str, option: str, value: str, capsys: pytest.CaptureFixture
) -> None:
    positional = ["rec", "-o", "out"] if command == "convert" else ["pred", "gt"]
    assert main([command, *positional, f"{option}={value}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"vidihand {command}: error: argument {option}"), err
    assert len(last) < 300


def test_good_numbers_still_parse() -> None:
    ns = build_parser().parse_args(
        [
            "convert",
            "rec",
            "-o",
            "out",
            "--time-range",
            "0:2.5",
            "--segment-gap",
            "0.25",
            "--jpeg-quality",
            "100",
        ]
    )
    assert (ns.time_range, ns.segment_gap, ns.jpeg_quality) == ([(0.0, 2.5)], 0.25, 100)
    ns = build_parser().parse_args(["eval", "p", "g", "--fps", "30", "--presence-threshold", "1"])
    assert (ns.fps, ns.presence_threshold) == (30.0, 1.0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--intrinsics", "nan,500,32,24"], "fx = nan is not a positive finite focal length"),
        (["--intrinsics", "500,-1,32,24"], "fy = -1 is not a positive finite focal length"),
        (["--intrinsics", "500,500,inf,24"], "cx = inf is not finite"),
        (["--intrinsics", "0,0,0,0"], "fx = 0 is not a positive finite focal length"),
        (["--estimator", "mediapipe", "--estimator-option", "min_detection_confidence=nan"], "got nan"),
        (["--estimator", "mediapipe", "--estimator-option", "model_complexity=7"], "must be 0 or 1"),
        (["--estimator", "mediapipe", "--estimator-option", "max_gap=-1"], "max_gap must be >= 0"),
        (["--estimator", "vidihand", "--estimator-option", "x=1"], "does not take options"),
    ],
)
def test_bad_intrinsics_and_estimator_options_are_one_line(
    tmp_path: Path, args: list[str], expected: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["convert", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "x.zarr"), "-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert err.startswith("vidihand convert: error: ")


def test_bad_calibration_yaml_names_the_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    calibration = tmp_path / "cam.yaml"
    calibration.write_text(
        "image_width: 64\nimage_height: 48\n"
        "camera_matrix: {rows: 3, cols: 3, data: [500, 0, 32, 0, .nan, 24, 0, 0, 1]}\n"
    )
    argv = ["convert", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "x.zarr"), "-q", "--intrinsics"]
    assert main([*argv, str(calibration)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"vidihand convert: error: {calibration}, field 'camera_matrix': "
        "fy = nan is not a positive finite focal length"
    )
