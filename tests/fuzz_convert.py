"""Property-based fuzzing of `vidihand convert`: damaged bag bytes, forged message fields, odd
command lines. Run by tests/test_fuzz.py in a child process (which bounds its time and memory);
`python -m tests.fuzz_convert [--examples N]` runs it alone.

The invariant, for every input: exit 0 with a dataset whose every stored frame decodes and whose
stamps strictly increase within each episode, or exit 2 with one line on stderr naming the input
(or the output, for output errors). Never a traceback, never a hang.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import imagecodecs
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.bagfactory import hand_photos, write_image_bag
from vidihand_ros.cli import main as vidihand
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.zarr_compat import register_codecs
from vidihand_ros.imaging import decode_rgb
from vidihand_ros.types import CameraModel

W, H = 64, 48
CAMERA = CameraModel.from_fxfycxcy(60.0, 60.0, 31.5, 23.5, width=W, height=H)
T0 = 1_700_000_000 * 1_000_000_000
STEP = 33_333_333
KINDS = ("mcap", "sqlite3", "rosbag1")
WORK = Path(tempfile.mkdtemp(prefix="vidihand-fuzz-"))
#: How the runs ended, by exit status (printed at the end, so a run that tests nothing shows).
OUTCOMES: Counter[int] = Counter()


def jpegs(n: int) -> list[bytes]:
    photos = hand_photos(W, H)
    return [bytes(imagecodecs.jpeg8_encode(photos[i % len(photos)], level=90)) for i in range(n)]


def base_bag(kind: str) -> Path:
    """A small valid bag of each storage kind, written once (its single storage file)."""
    folder = WORK / f"base-{kind}"
    if not folder.exists():
        folder.mkdir(parents=True)
        bag = write_image_bag(
            folder / "rec", jpegs(8), kind=kind, compressed_format="jpeg", camera_info=CAMERA
        )
        path = bag.path
        if kind != "rosbag1":  # fuzz the storage file itself, opened without metadata.yaml
            (path,) = [p for p in bag.path.iterdir() if p.suffix in (".mcap", ".db3")]
        shutil.copy(path, folder / f"bag{path.suffix}")
    return next(folder.glob("bag.*"))


def run(args: Sequence[str], names: Sequence[str]) -> tuple[int, str]:
    """`vidihand ARGS` in this process: (exit status, stderr). An exception escaping is a failure."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = vidihand([*args, "-q"])
    text = err.getvalue().strip()
    assert "Traceback" not in text, text
    if status == 2:
        lines = [line for line in text.splitlines() if not line.startswith(("WARNING", "usage:", "  "))]
        assert len(lines) == 1, text
        assert any(name in lines[0] for name in names), (names, text)
    else:
        assert status == 0, (status, text)
    OUTCOMES[status] += 1
    return status, text


def check_dataset(path: Path) -> None:
    """Every stored frame decodes; stamps strictly increase within each episode."""
    register_codecs()
    reader = DatasetReader(path)
    assert reader.num_episodes > 0
    for i in range(reader.num_episodes):
        stamps = reader.episode(i, ["timestamp"])["timestamp"]
        assert np.all(np.diff(stamps) > 0), stamps
        for frame in reader.frames(i):
            assert frame.shape[2] == 3
    chunks = sorted((path / "data" / "camera0_rgb").glob("*.0.0.0"), key=lambda p: int(p.name.split(".")[0]))
    for chunk in chunks[: reader.num_frames]:
        decode_rgb(chunk.read_bytes(), "jpeg")  # the stored bytes themselves, not only via zarr


def convert(bag: Path, *extra: str, about_options: bool = False) -> None:
    """Convert; an error must name the bag or the output (or, for odd options, be the command's)."""
    out = WORK / "out.zarr"
    shutil.rmtree(out, ignore_errors=True)
    names = ["vidihand convert: error:"] if about_options else [str(bag), str(out)]
    status, _ = run(["convert", str(bag), "-o", str(out), *extra], names)
    if status == 0:
        check_dataset(out)


#: Repeatable in CI (derandomized, no example database); no shrinking, to stay within the budget.
SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- damaged bag bytes -----------------------------------------------------------------------


@st.composite
def damage(draw: st.DrawFn, size: int) -> list[tuple[str, int, int]]:
    """A few edits: set a byte, flip a 2 KB block, or cut the file."""
    edit = st.one_of(
        st.tuples(st.just("set"), st.integers(0, size - 1), st.integers(0, 255)),
        st.tuples(st.just("flip"), st.integers(0, size - 1), st.just(2048)),
        st.tuples(st.just("cut"), st.integers(0, size - 1), st.just(0)),
    )
    return draw(st.lists(edit, min_size=1, max_size=4))


def damaged_copy(path: Path, edits: list[tuple[str, int, int]]) -> Path:
    data = bytearray(path.read_bytes())
    for kind, pos, value in edits:
        if kind == "set" and pos < len(data):
            data[pos] = value
        elif kind == "flip":
            block = np.frombuffer(bytes(data[pos : pos + value]), np.uint8) ^ 0xFF
            data[pos : pos + value] = block.tobytes()
        elif kind == "cut":
            del data[pos:]
    target = WORK / "damaged" / path.name
    shutil.rmtree(target.parent, ignore_errors=True)
    target.parent.mkdir()
    target.write_bytes(bytes(data))
    return target


def fuzz_bag_bytes(examples: int) -> None:
    for kind in KINDS:
        bag = base_bag(kind)
        size = bag.stat().st_size

        @settings(SETTINGS, max_examples=examples)
        @given(bag=st.just(bag), edits=damage(size), strict=st.booleans())
        def case(bag: Path, edits: list[tuple[str, int, int]], strict: bool) -> None:
            convert(damaged_copy(bag, edits), *(["--strict"] if strict else []))

        case()


# -- forged message fields -------------------------------------------------------------------

PAYLOADS = ("jpeg", "png", "truncated", "garbage", "empty", "huge-sof", "zero-sof")
FORMATS = ("jpeg", "png", "bgr8; jpeg compressed bgr8", "rgb8; png compressed ", "", "tiff", "jpeg\x00")


def payload(kind: str, i: int) -> bytes:
    good = jpegs(i + 1)[i]
    if kind == "jpeg":
        return good
    if kind == "png":
        return bytes(imagecodecs.png_encode(hand_photos(W, H)[0]))
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "garbage":
        return bytes(range(256)) * 3
    if kind == "empty":
        return b""
    sof = good.find(b"\xff\xc0")
    size = b"\xff\xdc\xff\xdc" if kind == "huge-sof" else b"\x00\x00\x00\x00"
    return good[: sof + 5] + size + good[sof + 9 :]


def fuzz_fields(examples: int) -> None:
    # Any stamp a ROS 1 header can hold (int32 seconds), a plausible one, or unset.
    stamp = st.one_of(st.integers(0, (2**31 - 1) * 10**9), st.integers(T0, T0 + 10**9), st.just(0))
    focal = st.sampled_from([60.0, 0.0, -60.0, float("nan"), float("inf"), 1e308])

    @settings(SETTINGS, max_examples=examples)
    @given(
        kinds=st.lists(st.sampled_from(PAYLOADS), min_size=1, max_size=6),
        fmt=st.sampled_from(FORMATS),
        stamps=st.lists(stamp, min_size=6, max_size=6),
        fx=focal,
        size=st.sampled_from([(W, H), (0, 0), (W * 2, H), (65535, 65535)]),
        storage=st.sampled_from(KINDS),
    )
    def case(
        kinds: list[str], fmt: str, stamps: list[int], fx: float, size: tuple[int, int], storage: str
    ) -> None:
        folder = WORK / "fields"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        camera = CameraModel.from_fxfycxcy(fx, 60.0, 31.5, 23.5, *size)
        data = [payload(kinds[i % len(kinds)], i) for i in range(6)]
        bag = write_image_bag(
            folder / "rec",
            data,
            kind=storage,
            compressed_format=fmt,
            stamps_ns=stamps,
            receive_ns=[T0 + i * STEP for i in range(6)],
            camera_info=camera,
        )
        convert(bag.path)

    case()


# -- odd command lines -----------------------------------------------------------------------

VALUES = (
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "1",
    "3",
    "1e309",
    "",
    "x",
    "0:inf",
    "nan:nan",
    "2:1",
    "1:2",
    "10x0",
)
OPTIONS = (
    "--window",
    "--stride",
    "--batch-windows",
    "--segment-gap",
    "--split-gaps",
    "--time-range",
    "--image-size",
    "--jpeg-quality",
    "--intrinsics",
    "--topic",
    "--camera-info-topic",
    "--estimator",
    "--estimator-option",
)


def fuzz_arguments(examples: int) -> None:
    bag = base_bag("mcap")

    @settings(SETTINGS, max_examples=examples)
    @given(st.lists(st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES)), max_size=4))
    def case(options: list[tuple[str, str]]) -> None:
        convert(bag, *[part for pair in options for part in pair], about_options=True)

    case()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=25, help="examples per strategy (and bag kind)")
    args = parser.parse_args(argv)
    try:
        fuzz_bag_bytes(args.examples)
        fuzz_fields(args.examples)
        fuzz_arguments(args.examples)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"fuzz: {OUTCOMES[0]} inputs gave a valid dataset, {OUTCOMES[2]} one line and exit 2; no traceback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
