"""`vidihand annotate`: missing poses filled in later, only those, crash-safe (issue #17, item 3).

Datasets are written by the real `DatasetWriter` with some rows estimated (random poses, so they
differ from what annotate computes) and others without poses; annotate runs the deterministic
stamp estimator, in process, over a loopback inference server, and in a subprocess killed with
SIGKILL at random moments. After every interruption each episode must be, key for key and record
for record, either as it was or as an uninterrupted run leaves it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
import zarr
from numpy.testing import assert_array_equal

from tests.estimators import StampEstimator, expected_pose
from tests.test_cli import vidihand_command
from tests.test_dataset import REPO, hand, jpeg_frame
from vidihand_ros.annotate import POSE_KEYS, AnnotateOptions, annotate
from vidihand_ros.cli import main
from vidihand_ros.dataset import journal
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.rows import RowBlock
from vidihand_ros.dataset.schema import IMAGE_KEY, LOWDIM_CHUNK_ROWS
from vidihand_ros.dataset.writer import DatasetWriter, acquire_lock
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import CameraModel, Frame, FramePoses

STAMP = "tests.estimators:stamp_estimator"
WINDOW = ["--window", "8", "--stride", "4"]
#: Episode kinds: every row estimated, none, the first half only (a capture whose late results
#: never came), rows 2 and 3 of every 5 missing, and frames-only without intrinsics.
KINDS = ("est", "none", "tail", "gaps", "nocam")


def has_poses(kind: str, k: int, n: int) -> bool:
    return kind == "est" or (kind == "tail" and k < n // 2) or (kind == "gaps" and k % 5 not in (2, 3))


def build(path: Path, kinds: list[str], n: int = 12) -> Path:
    """A dataset with one episode of `n` frames per kind; estimated rows hold random poses."""
    with DatasetWriter(path) as writer:
        row = 0
        for e, kind in enumerate(kinds):
            record = {"task": f"task {e}", "estimated": kind in ("tail", "gaps", "est")}
            with writer.begin_episode(record) as episode:
                for k in range(n):
                    frame = jpeg_frame(row, camera=None) if kind == "nocam" else jpeg_frame(row)
                    poses = FramePoses(frame.stamp_ns, "cam", hand(2 * row), hand(2 * row + 1))
                    episode.add(frame, poses if has_poses(kind, k, n) else None)
                    row += 1
    return path


def without_times(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what differs between two identical runs (when they ran)."""
    notes = [{k: v for k, v in note.items() if k != "time"} for note in record.get("annotations", [])]
    return {**record, "annotations": notes, "committed": None, "session": None}


def digests(path: Path) -> list[str]:
    """Per episode: a checksum of every key's rows (images decoded) and of its record."""
    root = zc.open_group(path, "r")
    ends = [0, *(int(v) for v in root["meta"]["episode_ends"][:])]
    records = zc.get_attrs(root["meta"])["episodes"]
    arrays = {name: np.asarray(a[: ends[-1]]) for name, a in sorted(root["data"].arrays())}
    out = []
    for i, record in enumerate(records):
        h = hashlib.sha256(json.dumps(without_times(record), sort_keys=True).encode())
        for name, values in arrays.items():
            h.update(name.encode() + np.ascontiguousarray(values[ends[i] : ends[i + 1]]).tobytes())
        out.append(h.hexdigest())
    return out


def all_files(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def episode_rows(path: Path, i: int) -> dict[str, np.ndarray]:
    root = zc.open_group(path, "r")
    ends = [0, *(int(v) for v in root["meta"]["episode_ends"][:])]
    return {name: np.asarray(a[ends[i] : ends[i + 1]]) for name, a in root["data"].arrays()}


def expected_rows(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the writer stores for the stamp estimator's poses of these rows."""
    block = RowBlock(len(rows["stamp_ns"]))
    for stamp, K in zip(rows["stamp_ns"].tolist(), rows["camera0_intrinsics"], strict=True):
        frame = Frame(stamp, "cam", "jpeg", 64, 48, data=b"", camera=CameraModel(K=K))
        block.append(
            frame,
            FramePoses(stamp, "cam", expected_pose(stamp, "left"), expected_pose(stamp, "right")),
            (1, 1),
        )
    return block.rows()


def run_annotate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["annotate", *args])
    out, err = capsys.readouterr()
    return status, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("vidihand annotate: error: "), err
    return lines[0]


def assert_opens_like_diffusion_policy(path: Path) -> None:
    """Plain zarr: every array exactly `episode_ends[-1]` long, the records readable."""
    zc.register_codecs()
    root: Any = zarr.open_group(str(path), mode="r")  # zarr's own API, as training code uses it
    ends = root["meta"]["episode_ends"][:]
    assert {a.shape[0] for _, a in root["data"].arrays()} == {int(ends[-1])}
    assert len(root["meta"].attrs["episodes"]) == len(ends)


# -- filling ------------------------------------------------------------------------------------


def test_fills_the_missing_rows_only_and_records_what_filled_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = build(tmp_path / "ds.zarr", ["est", "none", "tail", "gaps"])
    before = {i: episode_rows(path, i) for i in range(4)}
    files_before = all_files(path)
    records_before = [DatasetReader(path).episode_attrs(i) for i in range(4)]
    status, out, _ = run_annotate(capsys, str(path), "--estimator", STAMP, *WINDOW, "-q")
    assert status == 0
    assert (
        out.strip()
        == f"annotated 3 episode(s) of {path}, {12 + 6 + 4} rows filled; skipped 1 (nothing missing): 0"
    )
    assert_opens_like_diffusion_policy(path)
    assert not (path / journal.JOURNAL_DIR).exists()
    reader = DatasetReader(path)
    for i, kind in enumerate(["est", "none", "tail", "gaps"]):
        old, new = before[i], reader.episode(i)
        missing = np.array([not has_poses(kind, k, 12) for k in range(12)])
        want = expected_rows(old)
        for key, values in old.items():
            if key == IMAGE_KEY:
                continue
            # rows that held an estimate (and every key but the hands') are byte for byte the same
            keep = ~missing if key in POSE_KEYS else np.ones(12, bool)
            assert values[keep].tobytes() == new[key][keep].tobytes(), key
            if key in POSE_KEYS:
                assert_array_equal(new[key][missing], want[key][missing], err_msg=key)
        record = reader.episode_attrs(i)
        assert record["task"] == records_before[i]["task"] and record["estimated"] is True
        if kind == "est":
            assert record == records_before[i]
            continue
        (note,) = record["annotations"]
        assert note["estimator"] == "stamp-test" and (note["window"], note["stride"]) == (8, 4)
        assert note["rows_filled"] == missing.sum() and note["software"].startswith("vidihand_ros ")
        assert note["time"].endswith("+00:00") and record["poses_missing"] == 0
    images = {k: v for k, v in all_files(path).items() if k.startswith(f"data/{IMAGE_KEY}/")}
    assert images == {k: v for k, v in files_before.items() if k.startswith(f"data/{IMAGE_KEY}/")}

    again = digests(path)
    status, out, _ = run_annotate(capsys, str(path), "--estimator", STAMP, "-q", "--json")
    assert status == 0 and json.loads(out)["skipped"] == [
        {"episode": i, "reason": "nothing missing"} for i in range(4)
    ]
    assert digests(path) == again


def test_the_stored_jpeg_chunks_are_the_frames_the_estimator_gets(tmp_path: Path) -> None:
    """Each image chunk file is one JPEG: decoded by itself it is what zarr reads for the row."""
    path = build(tmp_path / "ds.zarr", ["none"], n=3)
    images = zc.open_group(path, "r")["data"][IMAGE_KEY]
    for row in range(3):
        data = zc.chunk_file(images, (row, 0, 0, 0)).read_bytes()
        assert data == jpeg_frame(row).data  # the source JPEG, copied through
        assert_array_equal(imagecodecs.jpeg8_decode(data), images[row])


def test_only_runs_of_missing_rows_and_their_context_are_estimated(tmp_path: Path) -> None:
    """A long episode with missing rows across a chunk boundary: the estimator sees those rows and
    one window either side, and the chunks of both sides are rewritten correctly."""
    path = tmp_path / "ds.zarr"
    n = LOWDIM_CHUNK_ROWS + 30
    with DatasetWriter(path) as writer, writer.begin_episode({"estimated": True}) as episode:
        for row in range(n):
            frame = jpeg_frame(row)
            poses = FramePoses(frame.stamp_ns, "cam", hand(row), hand(row + 1))
            episode.add(frame, None if 1010 <= row < 1040 else poses)
    before = episode_rows(path, 0)
    estimator = StampEstimator()
    report = annotate(path, estimator)  # the estimator's own window: 81 frames, no overlap
    assert report.rows_filled == 30
    assert sum(estimator.calls) == 2  # rows 929..1053 (30 missing + 81 before + 13 after) = 2 windows
    after = episode_rows(path, 0)
    missing = np.zeros(n, bool)
    missing[1010:1040] = True
    want = expected_rows(before)
    for key in POSE_KEYS:
        assert before[key][~missing].tobytes() == after[key][~missing].tobytes(), key
        assert_array_equal(after[key][missing], want[key][missing], err_msg=key)


def test_episodes_chooses_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = build(tmp_path / "ds.zarr", ["none"] * 5, n=4)
    before = digests(path)
    assert run_annotate(capsys, str(path), "--episodes", "1,3-4", "--estimator", STAMP, "-q")[0] == 0
    after = digests(path)
    assert [a == b for a, b in zip(before, after, strict=True)] == [True, False, True, False, False]
    assert run_annotate(capsys, str(path), "--episodes", "0-2", "--estimator", STAMP, "-q")[1].startswith(
        f"annotated 2 episode(s) of {path}, 8 rows filled; skipped 1 (nothing missing): 1"
    )


@pytest.mark.parametrize("value", ["x", "2-1", "-1", "1,,2", "1-"])
def test_a_bad_episodes_list_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    status, _, err = run_annotate(capsys, str(tmp_path), f"--episodes={value}", "--estimator", STAMP)
    assert status == 2 and err.strip().splitlines()[-1].startswith(
        "vidihand annotate: error: argument --episodes"
    )
    assert "Traceback" not in err


# -- refusals -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("pristine") / "ds.zarr", ["none", "none"], n=4)


@pytest.fixture
def dataset(tmp_path: Path, pristine: Path) -> Path:
    path = tmp_path / "ds.zarr"
    shutil.copytree(pristine, path)
    return path


def plain_group(path: Path) -> Path:
    zc.open_group(path, "a")  # a zarr group, not a dataset (format 2 with zarr-python 2 and 3)
    return path


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda p: p / "nothing.zarr", ["--estimator", STAMP], "nothing.zarr: no such dataset"),
        (lambda p: p, ["--estimator", STAMP], "not a zarr dataset"),
        (lambda p: plain_group(p / "plain.zarr"), ["--estimator", STAMP], "not a vidihand_ros dataset"),
        (None, [], "annotate needs an estimator: --estimator NAME or --server URL"),
        (None, ["--estimator", "none"], "annotate needs an estimator"),
        (None, ["--estimator", "nosuch"], "unknown estimator 'nosuch'"),
        (None, ["--estimator", STAMP, "--episodes", "2"], "no episode 2 (the dataset has 2: 0-1)"),
        (
            None,
            ["--estimator", STAMP, "--window", "4", "--stride", "8"],
            "--stride 8 is larger than --window 4",
        ),
    ],
)
def test_refusals_are_one_line_exit_2_and_change_nothing(
    dataset: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path] | None,
    args: list[str],
    message: str,
) -> None:
    other = dataset.parent / "other"
    other.mkdir()
    target = dataset if make is None else make(other)
    files = all_files(dataset.parent)
    status, out, err = run_annotate(capsys, str(target), *args)
    assert status == 2 and out == "" and message in one_line(err)
    assert all_files(dataset.parent) == files  # not even a lock file


def test_a_dataset_another_writer_holds_is_refused(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = all_files(dataset)
    lock = acquire_lock(dataset)
    try:
        status, _, err = run_annotate(capsys, str(dataset), "--estimator", STAMP)
    finally:
        lock.close()
    assert status == 2 and "another writer has this dataset open" in one_line(err)
    assert all_files(dataset) == files


def test_a_read_only_dataset_is_refused(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = all_files(dataset)
    dataset.chmod(0o555)
    try:
        status, _, err = run_annotate(capsys, str(dataset), "--estimator", STAMP)
    finally:
        dataset.chmod(0o755)
    assert status == 2 and "read-only" in one_line(err)
    assert all_files(dataset) == files


def test_an_episode_without_intrinsics_stops_before_anything_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = build(tmp_path / "ds.zarr", ["none", "nocam", "none"], n=4)
    files = all_files(path)
    status, _, err = run_annotate(capsys, str(path), "--estimator", STAMP)
    line = one_line(err)
    assert status == 2 and "episode 1, frame 0: no camera intrinsics" in line and str(path) in line
    assert all_files(path) == files  # episode 0, checked first, was not annotated either


def test_an_estimator_error_leaves_its_episode_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = build(tmp_path / "ds.zarr", ["none", "none", "none"], n=12)
    before = digests(path)
    failing = ["--estimator", "tests.estimators:failing_estimator", "--estimator-option", "fail_call=3"]
    status, _, err = run_annotate(capsys, str(path), *failing, *WINDOW)  # 3 windows an episode
    line = one_line(err)
    assert status == 2 and "episode 1: estimator failed on the window(s) of frames " in line
    assert line.endswith("no intrinsics for this window; the episode was left as it was")
    after = digests(path)
    assert after[0] != before[0] and after[1:] == before[1:]
    assert not (path / journal.JOURNAL_DIR).exists()


# -- over the wire ---------------------------------------------------------------------------------


def test_annotate_on_an_inference_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi", reason="the inference server needs the [serve] extra")
    from tests.remote_server import LoopbackServer, serve_app
    from tests.test_remote import TOKEN
    from vidihand_ros.server.settings import ServerSettings

    path = build(tmp_path / "remote.zarr", ["tail", "none"])
    local = tmp_path / "local.zarr"
    shutil.copytree(path, local)
    assert run_annotate(capsys, str(local), "--estimator", STAMP, *WINDOW, "-q")[0] == 0
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with LoopbackServer(serve_app(ServerSettings(token=TOKEN), window="8", stride="4")) as server:
        status, _, err = run_annotate(
            capsys, str(path), "--server", server.url, "--token-file", str(token), "-q"
        )
    assert status == 0, err
    for i in range(2):
        a, b = episode_rows(local, i), episode_rows(path, i)
        for key in a:
            assert a[key].tobytes() == b[key].tobytes(), key
    record = DatasetReader(path).episode_attrs(1)
    assert record["annotations"][0]["options"]["server"] == server.url
    assert TOKEN not in (path / "meta" / ".zattrs").read_text()


# -- interruptions ---------------------------------------------------------------------------------


class Killed(BaseException):
    """The process stops here (what SIGKILL would do: nothing after it runs, no cleanup)."""


def interrupt(monkeypatch: pytest.MonkeyPatch, name: str, after: int, *, before: bool = False) -> None:
    """Make `journal.<name>` stop the process at its call number `after` (0-based), after (or,
    with `before`, instead of) doing its work; the journal is then left as a kill leaves it."""
    real = getattr(journal, name)
    calls = [0]

    def step(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] - 1 == after and before:
            raise Killed(name)
        result = real(*args)
        if calls[0] - 1 == after:
            raise Killed(name)
        return result

    monkeypatch.setattr(journal, name, step)
    monkeypatch.setattr(journal.Journal, "discard", lambda self: None)  # no cleanup after a kill


#: Where the second annotated episode (episode 2) is interrupted, and whether it ends annotated.
#: Episode 0 has one chunk per pose key: 22 journal files, 22 replaced files; episode 2 too.
STEPS = {
    "while writing journal files": ("_write_file", 22 + 5, False, False),
    "before the manifest": ("_write_manifest", 1, True, False),
    "after the manifest": ("_write_manifest", 1, False, True),
    "after 0 replaced files": ("_replace", 22, True, True),
    "after 7 replaced files": ("_replace", 22 + 7, True, True),
    "after every replaced file": ("_set_record", 1, True, True),
    "after the record": ("_set_record", 1, False, True),
    "after the manifest was removed": ("_remove", 1, True, True),
}


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    """A dataset of four episodes, its digests, and the digests an uninterrupted run leaves."""
    folder = tmp_path_factory.mktemp("four")
    path = build(folder / "ds.zarr", ["none", "est", "tail", "none"])
    done = folder / "done.zarr"
    shutil.copytree(path, done)
    annotate(done, StampEstimator(), options=None)
    return path, digests(path), digests(done)


@pytest.mark.parametrize(
    ("step", "finisher"),
    [
        *((step, "recover") for step in STEPS),
        *(
            (step, "reader")
            for step in ("after the manifest", "after 7 replaced files", "after the manifest was removed")
        ),
    ],
)
def test_an_interrupted_annotation_is_finished_or_undone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    four: tuple[Path, list[str], list[str]],
    step: str,
    finisher: str,
) -> None:
    pristine, before, done = four
    path = tmp_path / "ds.zarr"
    shutil.copytree(pristine, path)
    name, after, instead, annotated = STEPS[step]
    with monkeypatch.context() as patch:
        interrupt(patch, name, after, before=instead)
        with pytest.raises(Killed):
            annotate(path, StampEstimator())
    assert_opens_like_diffusion_policy(path)
    assert (path / journal.JOURNAL_DIR).exists()
    if finisher == "recover":
        lock = acquire_lock(path)
        try:
            assert journal.recover(path) is not None
        finally:
            lock.close()
        assert not (path / journal.JOURNAL_DIR).exists()
    else:
        DatasetReader(path)  # finishes a committed journal; an uncommitted one is the next writer's
        assert not journal.is_committed(path)
    assert digests(path) == [done[0], before[1], done[2] if annotated else before[2], before[3]]
    annotate(path, StampEstimator())
    assert digests(path) == done and not (path / journal.JOURNAL_DIR).exists()


def test_a_reader_reads_as_is_while_the_lock_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, four: tuple[Path, list[str], list[str]]
) -> None:
    path = tmp_path / "ds.zarr"
    shutil.copytree(four[0], path)
    with monkeypatch.context() as patch:
        interrupt(patch, "_replace", 22 + 3)
        with pytest.raises(Killed):
            annotate(path, StampEstimator())
    lock = acquire_lock(path)
    try:
        assert DatasetReader(path).num_episodes == 4 and journal.is_committed(path)
    finally:
        lock.close()
    DatasetReader(path)
    assert not journal.is_committed(path) and digests(path)[2] == four[2][2]


def test_a_writer_finishes_an_interrupted_annotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, four: tuple[Path, list[str], list[str]]
) -> None:
    path = tmp_path / "ds.zarr"
    shutil.copytree(four[0], path)
    with monkeypatch.context() as patch:
        interrupt(patch, "_replace", 22 + 3)
        with pytest.raises(Killed):
            annotate(path, StampEstimator())
    DatasetWriter(path, mode="a").close()
    assert not (path / journal.JOURNAL_DIR).exists() and digests(path)[2] == four[2][2]


def test_a_damaged_manifest_is_one_line(dataset: Path) -> None:
    (dataset / journal.JOURNAL_DIR).mkdir()
    (dataset / journal.JOURNAL_DIR / journal.MANIFEST).write_text('{"format": 1, "files": [["0", "../x"]]}')
    with pytest.raises(DatasetError, match=r"journal .* is damaged"):
        journal.recover(dataset)
    assert DatasetReader(dataset).num_episodes == 2  # read as it is


# -- SIGKILL ----------------------------------------------------------------------------------------


def start(path: Path, delay_s: str = "0.03") -> subprocess.Popen[bytes]:
    slow = ["--estimator", "tests.estimators:slow_estimator", "--estimator-option", f"delay_s={delay_s}"]
    command = [*vidihand_command(), "annotate", str(path), *slow, *WINDOW, "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def annotating(path: Path, process: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """True once the first episode's journal exists (the writer lock is held), or it has ended."""
    return lambda: (path / journal.JOURNAL_DIR).exists() or process.poll() is not None


def test_sigkill_at_random_moments_leaves_every_episode_before_or_annotated(tmp_path: Path) -> None:
    pristine = build(tmp_path / "pristine.zarr", ["none", "tail", "est", "gaps", "none", "none"])
    before = digests(pristine)
    reference = tmp_path / "reference.zarr"
    shutil.copytree(pristine, reference)

    t0 = time.monotonic()
    process = start(reference)
    wait_for(annotating(reference, process))
    first_s = time.monotonic() - t0
    with pytest.raises(DatasetError, match="another writer has this dataset open"):
        DatasetWriter(reference, mode="a")  # annotate holds the writer lock throughout
    _, err = process.communicate(timeout=60)
    total_s = time.monotonic() - t0
    assert process.returncode == 0, err.decode()
    done = digests(reference)
    assert [a == b for a, b in zip(before, done, strict=True)] == [False, False, True, False, False, False]

    outcomes = []
    rng = random.Random(17)
    for trial in range(8):
        path = tmp_path / f"trial{trial}.zarr"
        shutil.copytree(pristine, path)
        process = start(path)
        if trial == 0:  # during start-up or the first episode
            at = rng.uniform(0.0, first_s)
        else:  # from the first episode on, timed from it (start-up time varies with the load)
            wait_for(annotating(path, process))
            at = rng.uniform(0.0, total_s - first_s)
        time.sleep(at)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert_opens_like_diffusion_policy(path)
        DatasetReader(path)  # finishes a committed journal
        assert not journal.is_committed(path)
        states = digests(path)
        for i, state in enumerate(states):
            assert state in (before[i], done[i]), f"trial {trial} (killed at {at:.2f} s): episode {i}"
        outcomes.append(sum(a == b for a, b in zip(states, done, strict=True)))
        annotate(path, StampEstimator(), options=AnnotateOptions(window=8, stride=4))
        assert digests(path) == done, f"trial {trial}"
        shutil.rmtree(path)
    assert len(set(outcomes)) > 1, outcomes  # the kills fell at different stages
