"""Silence the package's URDF parser about mesh files it cannot find.

`dex_retargeting.yourdfpy` warns once per mesh ("Unable to resolve filename") for models shipped
without meshes (LEAP's kinematics-only URDF): expected, and not the user's to act on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["mesh_warnings_off"]


@contextmanager
def mesh_warnings_off() -> Iterator[None]:
    log = logging.getLogger("dex_retargeting.yourdfpy")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
