"""Quiet by default (#14): no native log lines from MediaPipe unless -v, and a bar that counts frames.

Before the fix, every `vidihand convert ... --estimator mediapipe` printed, whatever -q said::

    INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    W0000 00:00:1796194592.069402    4123 inference_feedback_manager.cc:114] Feedback manager requires ...
    W0000 00:00:1796194592.273996    4124 landmark_projection_calculator.cc:186] Using NORM_RECT without ...

and those lines came before our one-line error. They are written by C++ code straight to fd 2.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bagfactory import WrittenBag, compress, hand_photos, synthetic_frames, write_image_bag
from tests.estimators import StampEstimator
from tests.test_cli import vidihand_command
from vidihand_ros.cli import main
from vidihand_ros.native_stderr import is_noise, native_stderr_filtered
from vidihand_ros.pipeline import ConvertOptions, convert
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(200.0, 200.0, 159.5, 119.5, width=320, height=240)
SMALL_CAMERA = CameraModel.from_fxfycxcy(50.0, 50.0, 31.5, 23.5, width=64, height=48)
#: Lines MediaPipe 0.10.21 printed on every conversion before the fix (the first verbatim).
XNNPACK = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
FEEDBACK = "inference_feedback_manager.cc:114] Feedback manager requires a model with a single signature"
ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


@pytest.fixture(scope="module")
def mediapipe() -> None:
    """Skip where the [baseline] extra is not installed (as tests/test_mediapipe.py does)."""
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("the mediapipe estimator needs the [baseline] extra: pip install -e '.[baseline]'")


@pytest.fixture(scope="module")
def mediapipe_bag(mediapipe: None, tmp_path_factory: pytest.TempPathFactory) -> WrittenBag:
    """Six 320×240 frames of the real hand photos."""
    photos = hand_photos(320, 240)
    frames = [photos[i % len(photos)] for i in range(6)]
    path = tmp_path_factory.mktemp("quiet") / "hands"
    return write_image_bag(path, frames, compressed_format="jpeg", camera_info=CAMERA)


@pytest.fixture(scope="module")
def bad_bag(mediapipe: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four good frames (two windows of 2 reach MediaPipe, which logs), then a truncated JPEG."""
    photos = hand_photos(320, 240)
    frames = [compress(photos[i % len(photos)], "jpeg") for i in range(4)] + [b"\xff\xd8\xff\xe0broken"]
    path = tmp_path_factory.mktemp("quiet") / "bad"
    return write_image_bag(path, frames, compressed_format="jpeg", camera_info=CAMERA).path


def vidihand(*args: str) -> subprocess.CompletedProcess[str]:
    """`vidihand ARGS` in a fresh process, stdout and stderr captured as pipes (not terminals)."""
    return subprocess.run([*vidihand_command(), *args], capture_output=True, text=True, timeout=300)


def mediapipe_convert(bag: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return vidihand("convert", str(bag), "-o", str(out), "--estimator", "mediapipe", *flags)


@pytest.mark.parametrize("flags", [[], ["-q"]], ids=["default", "quiet"])
def test_mediapipe_convert_prints_no_native_log_lines(
    mediapipe_bag: WrittenBag, tmp_path: Path, flags: list[str]
) -> None:
    done = mediapipe_convert(mediapipe_bag.path, tmp_path / "out.zarr", *flags)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no bar either
    assert done.stdout.startswith("wrote 1 episode(s), 6 frames to ")


def test_verbose_shows_the_native_log_lines(mediapipe_bag: WrittenBag, tmp_path: Path) -> None:
    done = mediapipe_convert(mediapipe_bag.path, tmp_path / "out.zarr", "-v")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert XNNPACK in lines
    assert ABSL in lines
    assert any(FEEDBACK in line and line.startswith("W0000 ") for line in lines), lines
    assert all(is_noise(line.encode()) for line in lines if FEEDBACK in line or line in (XNNPACK, ABSL))
    assert done.stdout.startswith("wrote 1 episode(s), 6 frames to ")


@pytest.mark.parametrize("flags", [[], ["-q"]], ids=["default", "quiet"])
def test_an_error_before_any_frame_is_one_line(
    mediapipe_bag: WrittenBag, tmp_path: Path, flags: list[str]
) -> None:
    # The estimator (and its native graphs) is created before the topic is looked up.
    done = mediapipe_convert(mediapipe_bag.path, tmp_path / "out.zarr", "--topic", "/nope", *flags)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"vidihand convert: error: {mediapipe_bag.path}, topic /nope: no such topic in the bag; "
        "image topics: /camera/image_raw"
    ]


def test_an_error_after_mediapipe_ran_is_one_line(bad_bag: Path, tmp_path: Path) -> None:
    done = mediapipe_convert(bad_bag, tmp_path / "out.zarr", "--strict", "--window", "2")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"vidihand convert: error: {bad_bag}, topic /camera/image_raw, message 4, field 'data': "
        "corrupt image: truncated JPEG (no EOI marker at the end)"
    ]


def test_the_same_error_with_verbose_comes_after_the_native_lines(bad_bag: Path, tmp_path: Path) -> None:
    done = mediapipe_convert(bad_bag, tmp_path / "out.zarr", "--strict", "--window", "2", "-v")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert XNNPACK in lines
    assert lines[-1].startswith(f"vidihand convert: error: {bad_bag}, topic /camera/image_raw, message 4")


def bad_convert_args(bag: Path, tmp_path: Path) -> list[str]:
    out = str(tmp_path / "out.zarr")
    return ["convert", str(bag), "-o", out, "--estimator", "mediapipe", "--strict", "--window", "2"]


def test_in_process_main_keeps_capsys_and_gives_fd_2_back(
    bad_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = os.fstat(2)
    stderr = sys.stderr
    assert main(bad_convert_args(bad_bag, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vidihand convert: error: {bad_bag}, topic /camera/image_raw, message 4")
    assert err.count("\n") == 1
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert sys.stderr is stderr


def test_in_process_main_under_fd_capture_hides_native_lines(
    bad_bag: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(bad_convert_args(bad_bag, tmp_path)) == 2
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("vidihand convert: error: "), err


# ---------------------------------------------------------------------------------------------
# The context itself, in a fresh interpreter whose sys.stderr really is fd 2 (unlike under pytest)

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from vidihand_ros.native_stderr import native_stderr_filtered

    original = sys.stderr
    try:
        with native_stderr_filtered() as state:
            assert sys.stderr is not original and sys.stderr.fileno() != 2
            os.write(2, b"W0000 00:00:1796194592.069402    4123 inference_feedback_manager.cc:114] noise\\n")
            os.write(2, b"I0000 00:00:1796194592.069402    4123 gl_context.cc:369] noise\\n")
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
            os.write(2, b"E0000 00:00:1796194592.1    4123 calculator_graph.cc:887] a real failure\\n")
            os.write(2, b"not a log line")  # no newline: passed on at the end
            print("python line", file=sys.stderr)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert sys.stderr is original, sys.stderr
    print(f"active={state.active} dropped={state.dropped} forwarded={state.forwarded}")
    os.write(2, b"\\nafter\\n")
    """
)


def test_context_drops_noise_passes_the_rest_and_restores_on_an_exception() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "active=True dropped=3 forwarded=2\n"
    lines = done.stderr.splitlines()
    assert sorted(lines[:-1]) == sorted(
        [
            "E0000 00:00:1796194592.1    4123 calculator_graph.cc:887] a real failure",
            "python line",
            "not a log line",
        ]
    )
    assert lines[-1] == "after"  # fd 2 is the real stderr again


def test_context_with_fd_2_closed_runs_the_body_unchanged() -> None:
    script = (
        "import os, sys\nfrom vidihand_ros.native_stderr import native_stderr_filtered\n"
        "os.close(2)\nwith native_stderr_filtered() as state:\n    print(state.active)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "False\n")


def test_context_under_pytest_leaves_sys_stderr_and_filters_fd_2(capfd: pytest.CaptureFixture[str]) -> None:
    stderr = sys.stderr
    with native_stderr_filtered() as state:
        assert sys.stderr is stderr  # pytest's capture stream is not on fd 2: left alone
        os.write(2, b"W0000 00:00:1.0    1 x.cc:1] hidden\n")
        os.write(2, b"F0000 00:00:1.0    1 x.cc:1] shown\n")
        # One write: the drain thread forwards the native line concurrently, and `print` would
        # write the text and the newline separately (the lines could then interleave).
        sys.stderr.write("python\n")
        sys.stderr.flush()
    assert (state.active, state.dropped, state.forwarded) == (True, 1, 1)
    assert sorted(capfd.readouterr().err.splitlines()) == ["F0000 00:00:1.0    1 x.cc:1] shown", "python"]


@pytest.mark.parametrize(
    ("line", "noise"),
    [
        (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", True),
        (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", True),
        (
            b"W0000 00:00:1796194592.273996    4124 landmark_projection_calculator.cc:186] Using NORM_RECT "
            b"without IMAGE_DIMENSIONS is only supported for the square ROI.\n",
            True,
        ),
        (b"I0712 10:11:12.345678  1234 gl_context.cc:369] GL version: 3.2\n", True),
        (b"E0000 00:00:1796194592.1    4123 calculator_graph.cc:887] failed\n", False),
        (b"F0000 00:00:1796194592.1    4123 status.cc:1] Check failed\n", False),
        (b"ERROR: failed to allocate tensors\n", False),
        (b"Segmentation fault\n", False),
        (b"WARNINGS are not a prefix\n", False),
    ],
)
def test_what_counts_as_noise(line: bytes, noise: bool) -> None:
    assert is_noise(line) is noise


# ---------------------------------------------------------------------------------------------
# Progress: one advance per frame written


def test_progress_advances_once_per_frame_written(tmp_path: Path) -> None:
    frames = 23
    bag = write_image_bag(
        tmp_path / "rec", synthetic_frames(frames), compressed_format="jpeg", camera_info=SMALL_CAMERA
    ).path
    started: list[tuple[str, int | None]] = []
    advances: list[int] = []
    seen_at_advance: list[int] = []
    estimator = StampEstimator()

    def progress(description: str, total: int | None) -> Callable[[int], None]:
        started.append((description, total))

        def advance(n: int) -> None:
            advances.append(n)
            seen_at_advance.append(sum(estimator.calls))  # windows estimated so far

        return advance

    report = convert(
        [bag],
        tmp_path / "out.zarr",
        estimator=estimator,
        options=ConvertOptions(window=8, stride=4, batch_windows=2),
        progress=progress,
    )
    assert report.frames == frames
    assert started == [(str(bag), frames)]
    assert advances == [1] * frames
    # The stream hands frames over in batches (of 2 windows here), yet the bar moved frame by frame.
    assert len(set(seen_at_advance)) > 1
