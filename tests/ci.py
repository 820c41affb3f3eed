"""Whether the tests run in CI, where a missing test prerequisite is a broken setup, never a skip."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    """CI sets CI=true."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(module: str, how: str) -> ModuleType:
    """`module`, imported; missing, the test skips saying `how` to get it, except in CI, where
    `.ci/run` installs it: there a missing module fails the test."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if in_ci():
            raise
        pytest.skip(f"needs {module} ({how}): {err}")
