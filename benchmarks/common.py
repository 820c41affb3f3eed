"""What every CPU benchmark here shares."""

from __future__ import annotations

import os


def pin_to_one_core() -> str:
    """Run this process on one core, as the targets are stated per core; says which."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "unpinned"
