"""Synthetic MANO model files for tests (the real ones are licensed and never in the repository).

Use from a test module:

    from tests.mano_fixtures import mano_dir, mano_layers  # noqa: F401  (pytest fixtures)

`mano_dir` holds MANO_RIGHT.pkl and MANO_LEFT.pkl in the official format (chumpy objects, a
scipy CSC regressor, Python-2 style pickle) with random, hand-shaped values; the two hands are
mirror images once the left model's shapedirs fix is applied. `mano_layers` needs torch + smplx
(the `[mano]` extra) and is skipped without them. Both are session-scoped: do not modify them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vidihand_ros.testing.synthetic_mano import write_synthetic_mano_dir

if TYPE_CHECKING:
    from vidihand_ros.mano.layer import ManoLayer

MANO_SEED = 0


@pytest.fixture(scope="session")
def mano_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with synthetic MANO_RIGHT.pkl and MANO_LEFT.pkl."""
    return write_synthetic_mano_dir(tmp_path_factory.mktemp("mano"), seed=MANO_SEED)


@pytest.fixture(scope="session")
def mano_layers(mano_dir: Path) -> dict[str, ManoLayer]:
    """{'left': ManoLayer, 'right': ManoLayer} built from `mano_dir` (float32, CPU)."""
    pytest.importorskip("torch")
    pytest.importorskip("smplx")
    from vidihand_ros.mano.layer import load_mano_layers

    return load_mano_layers(mano_dir)
