"""Open a dataset for writing, the one way every command does: new, appended, or replaced safely.

Replacing builds the new dataset in a staging folder beside the old one and swaps it in only when
the whole build succeeded; a failure (bad input, Ctrl-C, a full disk) leaves the old dataset as it
was. The old dataset's writer lock is held during the build, so no one appends to it meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.writer import LOCK_FILE, DatasetWriter, acquire_lock
from vidihand_ros.errors import DatasetError
from vidihand_ros.swap import swap_in


@contextlib.contextmanager
def open_for_writing(
    path: str | Path, *, append: bool = False, overwrite: bool = False, **writer_options: Any
) -> Iterator[DatasetWriter]:
    """A `DatasetWriter` for `path`: appending, creating, or (overwrite) building a replacement.

    Without `append` or `overwrite`, a dataset holding episodes is refused. `writer_options` go
    to `DatasetWriter` (image size, JPEG quality, provenance attrs, ...).
    """
    if append and overwrite:
        raise ValueError("append and overwrite exclude each other")
    path = Path(path)
    if not (overwrite and _has_content(path)):
        with DatasetWriter(path, mode="a" if append else "w", **writer_options) as writer:
            yield writer
        return
    if not zc.is_group_dir(path):
        raise DatasetError("exists and is not a zarr dataset; not replacing it", source=path)
    lock = acquire_lock(path)
    staging = path.with_name(f".{path.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with DatasetWriter(staging, mode="w", **writer_options) as writer:
            yield writer
        swap_in(staging, path)
    finally:
        if lock is not None:
            lock.close()
        shutil.rmtree(staging, ignore_errors=True)


def _has_content(path: Path) -> bool:
    """Anything at `path` but an empty directory (or one holding only a writer lock)."""
    if not path.is_dir():
        return path.exists() or path.is_symlink()
    return any(child.name != LOCK_FILE for child in path.iterdir())
