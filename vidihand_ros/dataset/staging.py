"""Open a dataset for writing, the one way every command does: new, appended, or replaced safely.

Replacing builds the new dataset in a staging folder beside the old one and swaps it in only when
the whole build succeeded; a failure (bad input, Ctrl-C, a full disk) leaves the old dataset as it
was. The old dataset's writer lock is held during the build, so no one appends to it meanwhile.
A new dataset whose build fails before any episode was published is removed again, so a failed
first conversion leaves no empty dataset behind (an empty folder that was there stays, empty).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.writer import (
    BATCH_COMMIT_INTERVAL_S,
    LOCK_FILE,
    DatasetWriter,
    acquire_lock,
    os_reason,
)
from vidihand_ros.errors import DatasetError
from vidihand_ros.swap import swap_in


@contextlib.contextmanager
def open_for_writing(
    path: str | Path,
    *,
    append: bool = False,
    overwrite: bool = False,
    commit_interval_s: float = BATCH_COMMIT_INTERVAL_S,
    **writer_options: Any,
) -> Iterator[DatasetWriter]:
    """A `DatasetWriter` for `path`: appending, creating, or (overwrite) building a replacement.

    Without `append` or `overwrite`, a dataset holding episodes is refused. Committed episodes are
    published in groups every `commit_interval_s` (batch commands; 0: at each commit) and when the
    block ends. `writer_options` go to `DatasetWriter` (image size, JPEG quality, provenance, ...).
    OSErrors of the dataset itself (an unwritable folder, a full disk) raise `DatasetError`.
    """
    if append and overwrite:
        raise ValueError("append and overwrite exclude each other")
    path = Path(path)
    writer_options["commit_interval_s"] = commit_interval_s
    if not (overwrite and _has_content(path)):
        writer = DatasetWriter(path, mode="a" if append else "w", **writer_options)
        try:
            yield writer
        except BaseException:
            writer.close(discard_if_new=True)
            raise
        writer.close()
        return
    if not zc.is_group_dir(path):
        raise DatasetError("exists and is not a zarr dataset; not replacing it", source=path)
    lock = acquire_lock(path)
    staging = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        with DatasetWriter(staging, mode="w", **writer_options) as writer:
            yield writer
        _swap(staging, path)
    finally:
        lock.close()
        shutil.rmtree(staging, ignore_errors=True)


def _swap(staging: Path, path: Path) -> None:
    try:
        swap_in(staging, path)
    except OSError as err:
        raise DatasetError(
            f"could not replace the dataset with the new one: {os_reason(err)}; the old one is unchanged",
            source=path,
        ) from err


def _has_content(path: Path) -> bool:
    """Anything at `path` but an empty directory (or one holding only a writer lock)."""
    try:
        if not path.is_dir():
            return path.exists() or path.is_symlink()
        return any(child.name != LOCK_FILE for child in path.iterdir())
    except OSError as err:
        raise DatasetError(f"cannot read the output: {os_reason(err, path)}", source=path) from err
