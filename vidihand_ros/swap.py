"""Replace a directory by a finished one built beside it: datasets, model checkpoints.

Two renames, not one (a directory cannot be renamed over a non-empty one): the old directory
steps aside, the new one takes its name, then the old one is deleted. If the second rename fails,
the old directory is put back, so the target is never left missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def swap_in(staged: Path, target: Path) -> None:
    """Move `staged` to `target`, replacing the directory there (if any) only once it is in place."""
    if not target.exists():
        os.replace(staged, target)
        return
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(retired, ignore_errors=True)
    os.replace(target, retired)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)
