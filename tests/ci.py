"""Whether the tests run in CI, where a missing test prerequisite is a broken setup, never a skip."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """CI sets CI=true."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
