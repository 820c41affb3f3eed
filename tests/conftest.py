"""Shared pytest fixtures. Module-specific fixtures live in their own test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def hand_photo_paths() -> list[Path]:
    """Real photographs of hands (MIT licence, see tests/data/LICENSE-hamer.md)."""
    return sorted(DATA.glob("hamer_test*.jpg"))
