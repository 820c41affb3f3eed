"""Dataset writer: grouped commits, a kill -9 between them, OS errors, the lock file, cleanup.

Grouped commits (`commit_interval_s`) must write exactly what one commit per episode writes, keep
every array exactly `episode_ends[-1]` long at every moment, and lose at most the pending episodes
when the writer dies. OS errors become one-line `DatasetError`s naming the dataset, and a failure
leaves the dataset as readers saw it before.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from numpy.testing import assert_array_equal

from tests.test_dataset import (
    REPO,
    assert_same_rows,
    committed_rows,
    decoded,
    jpeg_frame,
    read_like_diffusion_policy,
    snapshot,
    write_episode,
)
from vidihand_ros.dataset import writer as writer_module
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.images import ImageStore
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY, LOWDIM_SPECS
from vidihand_ros.dataset.staging import open_for_writing
from vidihand_ros.dataset.writer import LOCK_FILE, DatasetWriter
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.sinks.dataset import DatasetSink
from vidihand_ros.types import Frame

SIZES = [3, 5, 1, 7, 2, 5]  # 23 frames; with flush_frames=4 episodes start and end mid-block
NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def frames() -> list[Frame]:
    return [jpeg_frame(i) for i in range(sum(SIZES))]


def write_sized(writer: DatasetWriter, frames: list[Frame], sizes: list[int], start: int = 0) -> int:
    for size in sizes:
        write_episode(writer, frames[start : start + size], task=f"from {start}")
        start += size
    return start


def lengths(path: Path) -> set[int]:
    """Rows of every data array and of `meta/episode_ends`'s last value, as a set (one value: exact)."""
    root = zc.open_group(path, "r")
    ends = root["meta"]["episode_ends"][:]
    return {a.shape[0] for _, a in root["data"].arrays()} | {int(ends[-1]) if len(ends) else 0}


def records_without_times(path: Path) -> list[dict[str, Any]]:
    reader = DatasetReader(path)
    return [
        {k: v for k, v in reader.episode_attrs(i).items() if k not in ("committed", "session")}
        for i in range(reader.num_episodes)
    ]


class SteppedClock:
    """Test double for the writer's monotonic clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SteppedClock:
    fake = SteppedClock()
    monkeypatch.setattr(writer_module, "clock", fake)
    return fake


# --- grouped commits ----------------------------------------------------------------------------


def test_grouped_commits_write_what_one_commit_per_episode_writes(
    tmp_path: Path, frames: list[Frame]
) -> None:
    each, grouped = tmp_path / "each.zarr", tmp_path / "grouped.zarr"
    with DatasetWriter(each, flush_frames=4) as writer:
        write_sized(writer, frames, SIZES)
    with DatasetWriter(grouped, flush_frames=4, commit_interval_s=3600) as writer:
        write_sized(writer, frames, SIZES)
        assert writer.num_episodes == len(SIZES) and writer.num_frames == sum(SIZES)
        assert writer.published_episodes == 0 and writer.published_frames == 0
        assert lengths(grouped) == {0}  # nothing visible yet, and every array still exactly 0 long
        assert DatasetReader(grouped).num_episodes == 0
    # close published them, in one group
    assert_array_equal(DatasetReader(grouped).episode_ends, DatasetReader(each).episode_ends)
    assert_same_rows(committed_rows(grouped), committed_rows(each))
    assert records_without_times(grouped) == records_without_times(each)
    assert lengths(grouped) == {sum(SIZES)}
    for row in range(sum(SIZES)):
        name = f"{row}.0.0.0"
        assert (grouped / "data" / IMAGE_KEY / name).read_bytes() == (
            each / "data" / IMAGE_KEY / name
        ).read_bytes()
    assert DatasetReader(grouped).attrs["image_size"] == [64, 48]


def test_publish_is_due_after_the_interval_even_mid_episode(
    tmp_path: Path, frames: list[Frame], clock: SteppedClock
) -> None:
    path = tmp_path / "ds.zarr"
    writer = DatasetWriter(path, flush_frames=2, commit_interval_s=10)
    write_episode(writer, frames[:3])
    clock.now = 5
    write_episode(writer, frames[3:5])
    assert writer.published_episodes == 0 and lengths(path) == {0}
    clock.now = 11
    episode = writer.begin_episode()
    episode.add(frames[5])  # the pending episodes are older than the interval: published now
    assert writer.published_episodes == 2 and lengths(path) == {5}
    assert_array_equal(DatasetReader(path).episode_ends, [3, 5])
    episode.add(frames[6])
    assert episode.commit() == 2
    assert writer.published_episodes == 2  # the last publish was just now
    DatasetSink(writer).publish()  # what a front end calls at the end of an input
    assert_array_equal(DatasetReader(path).episode_ends, [3, 5, 7])
    writer.close()
    assert_array_equal(DatasetReader(path).episode(2)["stamp_ns"], [f.stamp_ns for f in frames[5:7]])
    assert_array_equal(DatasetReader(path).frame(2, 1), decoded(frames[6]))


def test_aborting_after_pending_episodes_keeps_them(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path, flush_frames=4, commit_interval_s=3600) as writer:
        write_sized(writer, frames, SIZES[:2])
        with pytest.raises(RuntimeError, match="boom"), writer.begin_episode() as episode:
            for frame in frames[8:14]:  # crosses a flush block boundary
                episode.add(frame)
            raise RuntimeError("boom")
        assert writer.num_frames == 8 and writer.published_frames == 0
        write_sized(writer, frames, [2], start=14)
    reader = DatasetReader(path)
    assert_array_equal(reader.episode_ends, [3, 8, 10])
    assert_array_equal(reader.episode(2)["stamp_ns"], [f.stamp_ns for f in frames[14:16]])
    assert_array_equal(reader.frame(2, 0), decoded(frames[14]))
    assert not (path / "data" / IMAGE_KEY / "10.0.0.0").exists()


KILL_SCRIPT = """
import os, sys
sys.path.insert(0, {repo!r})
from tests.test_dataset import jpeg_frame, poses
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.writer import DatasetWriter

def episode(writer, first, last):
    with writer.begin_episode({{"task": f"{{first}}"}}) as ep:
        for i in range(first, last):
            frame = jpeg_frame(i)
            ep.add(frame, poses(frame, i))

writer = DatasetWriter({path!r}, mode="a", flush_frames=2, commit_interval_s=3600)
episode(writer, 3, 5)
writer.publish()
episode(writer, 5, 8)
episode(writer, 8, 9)
if {stage!r} == "in_publish":
    real_resize = zc.resize
    def resize(array, shape):
        if array.path.endswith("episode_ends"):
            os._exit(9)
        real_resize(array, shape)
    zc.resize = resize
    writer.publish()
ep = writer.begin_episode()
ep.add(jpeg_frame(9))
os._exit(9)
"""


@pytest.mark.parametrize("stage", ["pending", "in_publish"])
def test_a_kill_loses_only_the_pending_episodes(tmp_path: Path, frames: list[Frame], stage: str) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:3], task="kept")
    script = KILL_SCRIPT.format(repo=str(REPO), stage=stage, path=str(path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 9, done.stderr

    reader = DatasetReader(path)
    assert_array_equal(reader.episode_ends, [3, 5])  # the published group survives, the pending go
    assert [reader.episode_attrs(i)["task"] for i in range(2)] == ["kept", "3"]
    assert_array_equal(reader.episode(1)["stamp_ns"], [f.stamp_ns for f in frames[3:5]])
    arrays = {a.shape[0] for _, a in zc.open_group(path, "r")["data"].arrays()}
    assert arrays == ({5} if stage == "pending" else {9})  # only a kill inside a publish grows them
    out = read_like_diffusion_policy(path, 'print(json.dumps(meta["episode_ends"][:].tolist()))')
    assert out == [3, 5]

    with DatasetWriter(path, mode="a") as writer:  # truncates the leftovers, then appends
        assert lengths(path) == {5}
        write_episode(writer, frames[5:7], task="next")
    final = DatasetReader(path)
    assert_array_equal(final.episode_ends, [3, 5, 7])
    assert_array_equal(final.episode(2)["stamp_ns"], [f.stamp_ns for f in frames[5:7]])
    assert_array_equal(final.frame(2, 1), decoded(frames[6]))


# --- OS errors while committing -----------------------------------------------------------------


def fail_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zc, "write_rows_direct", _raise_no_space)


def fail_records(monkeypatch: pytest.MonkeyPatch) -> None:
    real = zc.update_attrs

    def update_attrs(node: Any, attrs: Any) -> None:
        if "episodes" in attrs:
            raise NO_SPACE
        real(node, attrs)

    monkeypatch.setattr(zc, "update_attrs", update_attrs)


def fail_ends_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    real = zc.write_chunk_bytes

    def write_chunk_bytes(array: Any, index: Any, data: bytes, *, atomic: bool = False) -> None:
        if array.path.endswith("episode_ends"):
            raise NO_SPACE
        real(array, index, data, atomic=atomic)

    monkeypatch.setattr(zc, "write_chunk_bytes", write_chunk_bytes)


def _raise_no_space(*args: object, **kwargs: object) -> None:
    raise NO_SPACE


@pytest.mark.parametrize("failure", [fail_rows, fail_records, fail_ends_chunk])
def test_a_full_disk_while_publishing_leaves_the_dataset_as_it_was(
    tmp_path: Path, frames: list[Frame], monkeypatch: pytest.MonkeyPatch, failure: Any
) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path, flush_frames=2) as writer:
        write_episode(writer, frames[:3])
    writer = DatasetWriter(path, mode="a", flush_frames=2, commit_interval_s=3600)
    before, rows = snapshot(path), committed_rows(path)
    write_sized(writer, frames, [2, 2], start=3)
    failure(monkeypatch)
    with pytest.raises(DatasetError) as info:
        writer.publish()
    message = str(info.value)
    reason = "could not commit 2 episode(s): No space left on device; the dataset keeps its earlier episodes"
    assert message == f"{path}: {reason}"
    monkeypatch.undo()
    assert snapshot(path) == before and lengths(path) == {3}
    assert_same_rows(committed_rows(path), rows)
    assert writer.num_episodes == 1  # the pending episodes are gone; the writer goes on
    write_episode(writer, frames[7:9])
    writer.close()
    reader = DatasetReader(path)
    assert_array_equal(reader.episode_ends, [3, 5])
    assert_array_equal(reader.episode(1)["stamp_ns"], [f.stamp_ns for f in frames[7:9]])


def test_a_full_disk_at_an_episodes_commit_fails_that_commit(
    tmp_path: Path, frames: list[Frame], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:2])
        fail_ends_chunk(monkeypatch)
        with pytest.raises(DatasetError, match="could not commit 1 episode"):
            write_episode(writer, frames[2:4])
        monkeypatch.undo()
        assert writer.num_episodes == 1 and lengths(path) == {2}
        write_episode(writer, frames[4:5])
    assert_array_equal(DatasetReader(path).episode_ends, [2, 3])


def test_a_full_disk_while_writing_a_frame(
    tmp_path: Path, frames: list[Frame], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:2])
        before = snapshot(path)

        def store(self: ImageStore, row: int, frame: Frame, index: int) -> Any:
            raise OSError(errno.ENOSPC, "No space left on device", str(path / "data" / IMAGE_KEY / "2.0.0.0"))

        monkeypatch.setattr(ImageStore, "store", store)
        with pytest.raises(
            DatasetError, match=r"message 102: cannot write the frame's image: No space"
        ) as info:
            write_episode(writer, frames[2:4])
        assert str(info.value).startswith(f"{path}, message 102: ") and "2.0.0.0" in str(info.value)
        monkeypatch.undo()
        assert snapshot(path) == before
    assert_array_equal(DatasetReader(path).episode_ends, [2])


# --- OS errors while opening --------------------------------------------------------------------


def test_an_output_below_a_file_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "sub.zarr"
    for open_it in (lambda: DatasetWriter(path), lambda: open_for_writing(path).__enter__()):
        with pytest.raises(DatasetError) as info:
            open_it()
        assert str(info.value) == f"{path}: cannot open for writing: Not a directory"
        assert isinstance(info.value, InputError)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_an_output_in_proc_is_a_dataset_error() -> None:
    with pytest.raises(
        DatasetError, match=r"^/proc/x\.zarr: cannot open for writing: No such file or directory$"
    ):
        DatasetWriter("/proc/x.zarr")


@pytest.mark.parametrize("existing", ["none", "empty folder", "folder with a lock file"])
def test_an_os_error_while_creating_removes_what_was_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: str
) -> None:
    path = tmp_path / "parent" / "ds.zarr"
    if existing != "none":
        path.mkdir(parents=True)
    if existing == "folder with a lock file":
        (path / LOCK_FILE).write_text("")
    before = sorted(p.name for p in path.iterdir()) if path.exists() else None
    monkeypatch.setattr(zc, "create_array", _raise_no_space)
    with pytest.raises(DatasetError, match=r"ds\.zarr: cannot open for writing: No space left on device$"):
        DatasetWriter(path)
    if existing == "none":
        assert not (tmp_path / "parent").exists()  # the parent it made goes too
    else:
        assert sorted(p.name for p in path.iterdir()) == before


# --- the lock file ------------------------------------------------------------------------------


def test_a_symlinked_lock_file_is_refused_and_not_followed(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:2])
    outside = tmp_path / "outside.txt"
    (path / LOCK_FILE).unlink()
    (path / LOCK_FILE).symlink_to(outside)
    for open_it in (
        lambda: DatasetWriter(path, mode="a"),
        lambda: open_for_writing(path, overwrite=True).__enter__(),
        lambda: open_for_writing(path, append=True).__enter__(),
    ):
        with pytest.raises(
            DatasetError, match=rf"ds\.zarr: {LOCK_FILE} is a symbolic link; refusing to follow it"
        ):
            open_it()
        assert not outside.exists()  # not created
    outside.write_text("precious")
    with pytest.raises(DatasetError, match="symbolic link"):
        DatasetWriter(path, mode="a")
    assert outside.read_text() == "precious"  # not truncated
    assert_array_equal(DatasetReader(path).episode_ends, [2])

    empty = tmp_path / "empty"  # a new dataset in a folder holding only a planted link
    empty.mkdir()
    (empty / LOCK_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DatasetError, match="symbolic link"):
        DatasetWriter(empty)
    assert not (tmp_path / "elsewhere").exists() and [p.name for p in empty.iterdir()] == [LOCK_FILE]


def test_a_lock_path_that_is_no_file_is_refused(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:1])
    (path / LOCK_FILE).unlink()
    (path / LOCK_FILE).mkdir()
    with pytest.raises(DatasetError, match=rf"cannot open the writer lock {LOCK_FILE}: Is a directory"):
        DatasetWriter(path, mode="a")
    (path / LOCK_FILE).rmdir()
    os.mkfifo(path / LOCK_FILE)
    with pytest.raises(DatasetError, match="not a regular file"):
        DatasetWriter(path, mode="a")


# --- a failed build into a new output leaves nothing behind -------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_build_removes_the_new_dataset(tmp_path: Path, frames: list[Frame], error: type) -> None:
    path = tmp_path / "a" / "b" / "new.zarr"
    with pytest.raises(error), open_for_writing(path) as writer:
        episode = writer.begin_episode()
        episode.add(frames[0])
        raise error()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_build_into_an_empty_folder_leaves_it_empty(tmp_path: Path, frames: list[Frame]) -> None:
    empty, locked = tmp_path / "empty", tmp_path / "locked"
    empty.mkdir()
    locked.mkdir()
    (locked / LOCK_FILE).write_text("")
    for folder, names in ((empty, []), (locked, [LOCK_FILE])):
        with pytest.raises(RuntimeError), open_for_writing(folder, append=folder == locked):
            raise RuntimeError("bad input")
        assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == names


def test_a_failed_build_keeps_committed_episodes_and_existing_datasets(
    tmp_path: Path, frames: list[Frame]
) -> None:
    new = tmp_path / "new.zarr"
    with pytest.raises(RuntimeError), open_for_writing(new) as writer:
        write_episode(writer, frames[:2])  # committed (pending: published when the block ends)
        raise RuntimeError("the second input is bad")
    assert_array_equal(DatasetReader(new).episode_ends, [2])

    with pytest.raises(RuntimeError), open_for_writing(new, append=True) as writer:
        raise RuntimeError("bad input")
    assert_array_equal(DatasetReader(new).episode_ends, [2])

    empty_dataset = tmp_path / "empty.zarr"  # a dataset without episodes that existed stays
    DatasetWriter(empty_dataset).close()
    with pytest.raises(RuntimeError), open_for_writing(empty_dataset, append=True):
        raise RuntimeError("bad input")
    assert DatasetReader(empty_dataset).num_episodes == 0


def test_open_for_writing_groups_commits_and_publishes_at_the_end(
    tmp_path: Path, frames: list[Frame]
) -> None:
    path = tmp_path / "ds.zarr"
    with open_for_writing(path) as writer:
        assert writer.commit_interval_s == writer_module.BATCH_COMMIT_INTERVAL_S > 0
        write_sized(writer, frames, SIZES)
    assert_array_equal(DatasetReader(path).episode_ends, [3, 8, 9, 16, 18, 23])
    with open_for_writing(path, append=True, commit_interval_s=0) as writer:
        write_episode(writer, frames[:1])
        assert writer.published_episodes == 7  # capture-style: published at once
    assert lengths(path) == {24}
    assert len(LOWDIM_SPECS) + 1 == len(list(zc.open_group(path, "r")["data"].arrays()))


def test_unwritable_places_are_dataset_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What root never sees: a folder it may not write in (simulated at the system calls)."""
    real_mkdir, real_open = Path.mkdir, os.open

    def mkdir(path: Path, *args: Any, **kwargs: Any) -> None:
        if path.name == "new.zarr":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_mkdir(path, *args, **kwargs)

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path).name == LOCK_FILE:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    new = tmp_path / "new.zarr"
    with pytest.raises(DatasetError) as info:
        DatasetWriter(new)
    assert str(info.value) == f"{new}: cannot open for writing: Permission denied"
    monkeypatch.setattr(Path, "mkdir", real_mkdir)
    with pytest.raises(DatasetError, match="cannot open the writer lock"):
        DatasetWriter(tmp_path / "a" / "b.zarr")  # made the folders, then could not lock them
    assert not (tmp_path / "a").exists()  # so they go again
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as info, open_for_writing(empty):
        pass
    assert str(info.value) == f"{empty}: cannot open the writer lock {LOCK_FILE}: Permission denied"
    assert list(empty.iterdir()) == []
