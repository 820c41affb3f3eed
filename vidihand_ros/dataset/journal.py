"""A redo journal: rewrite committed chunk files and one episode record all-or-nothing.

`vidihand annotate` changes rows of episodes that are already published, in chunk files that
neighbouring episodes share, and zarr has no transaction over several files. So one episode's
change is first written in full into `JOURNAL_DIR` inside the dataset: the new bytes of every
affected chunk file and the episode's new record. Writing `MANIFEST` (atomically, after the files
are on disk) is the commit point; then each journal file is moved over its chunk (`os.replace`,
atomic per file), the record is written into `meta` attrs, and the journal is removed (the
manifest first). A process killed before the manifest leaves the dataset as it was (the folder is
garbage); killed after it, `recover` (run by every writer once it holds the writer lock, by
`vidihand annotate`, and by `DatasetReader` when the lock is free) finishes the same steps, each
of which is safe to repeat: a journal file already moved is skipped. Design: docs/dataset.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.attrs import to_json
from vidihand_ros.dataset.lock import acquire_lock
from vidihand_ros.errors import DatasetError

__all__ = ["JOURNAL_DIR", "MANIFEST", "Journal", "finish_committed", "is_committed", "recover"]

#: The journal folder inside the dataset (zarr ignores it: it holds no zarr metadata).
JOURNAL_DIR = ".vidihand-annotate"
MANIFEST = "manifest.json"
#: Bumped when the manifest's fields change; a journal of another format is refused, not guessed.
FORMAT = 1


@dataclass(frozen=True)
class _Entry:
    """One journal file and the chunk file (relative to the dataset) it replaces."""

    name: str
    target: str


class Journal:
    """The change of one episode being prepared: `add` chunk files, `commit`, then `apply`.

    The caller holds the writer lock and has run `recover`, so no other journal exists.
    `discard` (before `commit`) removes it, leaving the dataset as it was.
    """

    def __init__(self, dataset: Path) -> None:
        self.dataset = dataset
        self.folder = dataset / JOURNAL_DIR
        if self.folder.exists() or self.folder.is_symlink():
            raise DatasetError(f"an unfinished journal {JOURNAL_DIR} is in the way", source=dataset)
        self.folder.mkdir()
        self._entries: list[_Entry] = []
        self._targets: set[str] = set()
        self.committed = False

    def add(self, target: Path, data: bytes) -> None:
        """Stage `data` as the new content of the chunk file `target` (inside the dataset)."""
        relative = _relative(self.dataset, target)
        if relative in self._targets:
            raise RuntimeError(f"{relative} is already in the journal")
        entry = _Entry(f"{len(self._entries):06d}", relative)
        _write_file(self.folder / entry.name, data)
        self._entries.append(entry)
        self._targets.add(relative)

    def commit(self, episode: int, record: Mapping[str, Any]) -> None:
        """The commit point: from here on the change happens, now or at the next `recover`."""
        _fsync_all([self.folder / e.name for e in self._entries])
        _fsync_all([self.folder])
        manifest = {
            "format": FORMAT,
            "episode": episode,
            "record": to_json(dict(record)),
            "files": [[e.name, e.target] for e in self._entries],
        }
        _write_manifest(self.folder, json.dumps(manifest, allow_nan=False).encode())
        self.committed = True

    def apply(self) -> None:
        """Move every file over its chunk, write the record, remove the journal."""
        if not self.committed:
            raise RuntimeError("commit the journal before applying it")
        _replay(self.dataset)

    def discard(self) -> None:
        """Forget an uncommitted journal (the dataset was never touched)."""
        if self.committed:
            raise RuntimeError("a committed journal is applied, never discarded")
        _remove(self.folder)


def is_committed(dataset: Path) -> bool:
    """A committed journal waits in `dataset` (a cheap check; no lock needed)."""
    return (dataset / JOURNAL_DIR / MANIFEST).is_file()


def recover(path: Path) -> str | None:
    """Finish or drop an interrupted journal in the dataset at `path`; what it did, for a log line.

    The caller holds the writer lock. A committed journal is replayed (the episode ends fully
    changed), an uncommitted one removed (the episode stays as it was); None when there is none.
    """
    folder = path / JOURNAL_DIR
    if not (folder.exists() or folder.is_symlink()):
        return None
    if not is_committed(path):
        _remove(folder)
        return f"removed an unfinished annotate or label journal ({JOURNAL_DIR}); the dataset is as it was"
    episode = _replay(path)
    return f"finished an interrupted annotate or label change (journalled with episode {episode})"


def finish_committed(path: Path) -> str | None:
    """`recover` for a reader: only a committed journal, only if the writer lock is free and the
    dataset writable; otherwise nothing (the dataset is read as it is). What it did, or None."""
    if not is_committed(path) or not os.access(path, os.W_OK):
        return None

    try:
        lock = acquire_lock(path)
    except DatasetError:
        return None  # a writer (or annotate) has it and finishes the journal itself
    try:
        return recover(path) if is_committed(path) else None
    except (OSError, DatasetError):
        return None
    finally:
        lock.close()


# -- the steps (module functions, so a test can interrupt each) -----------------------------------


def _replay(dataset: Path) -> int:
    """Apply the committed journal of `dataset`; every step may have happened already."""
    folder = dataset / JOURNAL_DIR
    episode, record, entries = _read_manifest(dataset)
    directories: set[Path] = set()
    for entry in entries:
        source, target = folder / entry.name, dataset / entry.target
        if target.parent.is_symlink() or (dataset / "data").is_symlink():
            raise DatasetError(f"{target.parent} is a symbolic link; refusing to write through it")
        if source.is_file():
            _replace(source, target)
        directories.add(target.parent)
    _fsync_all(sorted(directories))
    _set_record(dataset, episode, record)
    _end(folder)
    return episode


def _read_manifest(dataset: Path) -> tuple[int, dict[str, Any], list[_Entry]]:
    where = dataset / JOURNAL_DIR / MANIFEST
    try:
        manifest = json.loads(where.read_bytes())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT}")
        episode, record = manifest["episode"], manifest["record"]
        if not isinstance(episode, int) or episode < 0 or not isinstance(record, dict):
            raise ValueError("bad episode or record")
        entries = [_Entry(str(name), _checked_target(str(target))) for name, target in manifest["files"]]
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(
            f"the annotation journal {JOURNAL_DIR}/{MANIFEST} is damaged ({err}); "
            f"remove {JOURNAL_DIR} to discard it",
            source=dataset,
        ) from err
    return episode, record, entries


def _checked_target(target: str) -> str:
    """A chunk file under `data/`, never a path that leaves the dataset."""
    parts = PurePosixPath(target).parts
    if len(parts) != 3 or parts[0] != "data" or any(p in ("", ".", "..") for p in parts) or "\\" in target:
        raise ValueError(f"target {target!r} is not a chunk file under data/")
    return target


def _relative(dataset: Path, target: Path) -> str:
    relative = target.relative_to(dataset).as_posix()
    return _checked_target(relative)


def _replace(source: Path, target: Path) -> None:
    os.replace(source, target)


def _set_record(dataset: Path, episode: int, record: dict[str, Any]) -> None:
    """Write the episode's record into `meta` attrs (one atomic metadata write)."""
    meta = zc.open_group(dataset, "r+")["meta"]
    records = list(zc.get_attrs(meta).get("episodes", []))
    if episode >= len(records):
        raise DatasetError(f"the journal changes episode {episode}, which has no record", source=dataset)
    if records[episode] != record:
        records[episode] = record
        zc.update_attrs(meta, {"episodes": records})


def _end(folder: Path) -> None:
    """The journal is done: the manifest goes first (atomically), then the rest."""
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST).unlink()
    _fsync_all([folder])
    _remove(folder)


def _remove(folder: Path) -> None:
    if folder.is_symlink():
        folder.unlink()
    else:
        shutil.rmtree(folder, ignore_errors=False)


def _write_manifest(folder: Path, data: bytes) -> None:
    """Write the manifest atomically and durably: a temporary file, fsynced, renamed, dir fsynced."""
    tmp = folder / f".{MANIFEST}.partial"
    _write_file(tmp, data)
    _fsync_all([tmp])
    os.replace(tmp, folder / MANIFEST)
    _fsync_all([folder])


def _write_file(path: Path, data: bytes) -> None:
    """Write a new journal file (never through a symbolic link); `_fsync_all` makes it durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _fsync_all(paths: list[Path]) -> None:
    """fsync files and directories (a directory: the renames in it), all at once.

    Concurrent fsyncs share the file system's journal commits: 22 chunk files take about the time
    of two fsyncs instead of 22 (3 ms each on ext4 here). A directory the OS refuses to fsync is
    skipped; a file that cannot be fsynced is an error (its bytes may not be on disk).
    """
    if len(paths) == 1:
        _fsync(paths[0])
    elif paths:
        with ThreadPoolExecutor(max_workers=min(16, len(paths)), thread_name_prefix="vidihand-fsync") as pool:
            list(pool.map(_fsync, paths))


def _fsync(path: Path) -> None:
    directory = path.is_dir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        if directory:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        else:
            os.fsync(fd)
    finally:
        os.close(fd)
