"""Writing an export under a temporary name and moving it into place only when it is complete.

An export interrupted half way must not leave something that looks like a finished dataset, and
an existing output is replaced only when asked (`--overwrite`): the new one is written as
`<out>.tmp`, then renamed over the old (a file by one atomic rename; a folder by moving the old
aside first, so that the final name always holds either the old or the new export).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidihand_ros.errors import InputError

__all__ = ["check_target", "replaced_atomically"]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_target(source: Path, out: Path, *, overwrite: bool) -> None:
    """Refuse an existing `out` without `overwrite`, and an `out` that is or holds the source."""
    src, dst = source.resolve(), out.resolve()
    if dst == src or dst in src.parents:
        raise InputError("the output would replace the dataset it is exported from", source=out)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", source=out)


@contextmanager
def replaced_atomically(out: Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield `<out>.tmp` to write into; on success it becomes `out`, on failure it is removed.

    `keep_suffix` names it `<stem>.tmp<suffix>` instead (`dataset.zarr.tmp.zip`), for outputs
    that are recognised by their suffix and read back before they are moved into place.
    """
    tmp = out.with_name(f"{out.stem}.tmp{out.suffix}" if keep_suffix else f"{out.name}.tmp")
    _remove(tmp)  # what an interrupted earlier export left
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if out.is_file() and tmp.is_file():
        os.replace(tmp, out)
        return
    old = out.with_name(out.name + ".old")
    if out.exists() or out.is_symlink():
        _remove(old)
        os.replace(out, old)
    os.replace(tmp, out)
    _remove(old)
