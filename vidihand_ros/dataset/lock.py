"""The dataset's writer lock: one writer per dataset, released by the OS if the process dies.

Writers, `vidihand annotate` and a reader finishing an interrupted annotation all take it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from vidihand_ros.errors import DatasetError

try:  # advisory lock (flock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".vidihand-writer.lock"


class WriterLock:
    """An open, flock()ed lock file; `close()` releases it."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def acquire_lock(path: Path) -> WriterLock:
    """Hold the advisory writer lock of the dataset at `path`, or refuse with a `DatasetError`.

    The lock file is opened without following a symbolic link, so a planted link cannot make the
    writer create or touch a file outside the dataset.
    """
    if fcntl is None:  # pragma: no cover
        return WriterLock(None)
    lock_path = path / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(lock_path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DatasetError(f"{LOCK_FILE} is a symbolic link; refusing to follow it", source=path) from err
        raise DatasetError(
            f"cannot open the writer lock {LOCK_FILE}: {os_reason(err, lock_path)}", source=path
        ) from err
    lock = WriterLock(fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        lock.close()
        raise DatasetError(f"{LOCK_FILE} is not a regular file; refusing to use it", source=path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        lock.close()
        raise DatasetError("another writer has this dataset open", source=path) from err
    return lock


def os_reason(err: OSError, path: Path | None = None) -> str:
    """The OS's reason in one line ("No space left on device"), naming the file unless it is `path`."""
    reason = err.strerror or str(err) or type(err).__name__
    filename = err.filename
    if filename is not None and (path is None or Path(os.fsdecode(filename)) != path):
        reason = f"{reason} ({os.fsdecode(filename)})"
    return reason
