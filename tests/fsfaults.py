"""A folder whose filesystem can fill up, or that is made read-only, mid-test (test code).

Full: where the test may mount (root with CAP_SYS_ADMIN, as on this project's machines) the folder
is a small tmpfs, filled for real; elsewhere a stand-in (named: `OpenRefusal`) refuses opening
files for writing under it with ENOSPC, since a full disk cannot be made without privileges.
Read-only: the folder's permissions are removed (`chmod -R a-w`); a root process, which ignores
them, takes the effective uid of `nobody` until `restore()` (a remount cannot be used: the
writer holds its lock file open for writing, and Linux refuses to remount such a filesystem).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OpenRefusal:
    """Stand-in: `open(path, "w…")` under `folder` raises OSError(code) while active."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self._real = builtins.open
        self.code: int | None = None

    def _open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self.code is not None and any(c in mode for c in "wax+") and str(file).startswith(self.folder):
            raise OSError(self.code, os.strerror(self.code), str(file))
        return self._real(file, mode, *args, **kwargs)

    def __enter__(self) -> OpenRefusal:
        builtins.open = self._open
        return self

    def __exit__(self, *exc: object) -> None:
        builtins.open = self._real


class FaultyFolder:
    """`fill()` leaves no space, `read_only()` refuses writes, `restore()` undoes either."""

    def __init__(self, path: Path, mounted: bool, refusal: OpenRefusal | None) -> None:
        self.path = path
        self.mounted = mounted
        self._refusal = refusal

    def fill(self) -> None:
        if not self.mounted:
            assert self._refusal is not None
            self._refusal.code = errno.ENOSPC
            return
        with contextlib.suppress(OSError), open(self.path / ".ballast", "wb") as ballast:
            while True:
                ballast.write(b"\0" * 65536)

    def read_only(self) -> None:
        _chmod_tree(self.path, writable=False)
        if os.geteuid() == 0:
            os.seteuid(NOBODY)
            self._dropped = True

    def restore(self) -> None:
        if getattr(self, "_dropped", False):
            os.seteuid(0)
            self._dropped = False
        _chmod_tree(self.path, writable=True)
        if self._refusal is not None:
            self._refusal.code = None
        (self.path / ".ballast").unlink(missing_ok=True)


#: The uid a root test takes while a folder is read-only (permissions bind it).
NOBODY = 65534


def _chmod_tree(path: Path, *, writable: bool) -> None:
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files, ""]:
            target = Path(folder, name) if name else Path(folder)
            mode = target.stat().st_mode
            target.chmod(mode | 0o200 if writable else mode & ~0o222)


@contextlib.contextmanager
def faulty_folder(path: Path, size: str = "4m") -> Iterator[FaultyFolder]:
    """A `size` tmpfs at `path` when mounting is allowed, else the `OpenRefusal` stand-in."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        shutil.which("mount") is not None
        and os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    if mounted:
        try:
            yield FaultyFolder(path, True, None)
        finally:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        return
    with OpenRefusal(path) as refusal:
        yield FaultyFolder(path, False, refusal)
