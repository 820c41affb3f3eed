"""MANO hand model: safe file loading, the smplx layer with 21 joints, and fitting to 3D joints.

Only `layer` and `fit` need torch and smplx (the `[mano]` extra); they are imported on first use,
so `import vidihand_ros.mano` stays numpy-only. Synthetic MANO files for tests:
`vidihand_ros.testing.synthetic_mano`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vidihand_ros.mano.files import (
    FINGERTIP_VERTICES,
    JOINT_ORDER,
    find_mano_files,
    load_mano_file,
)

if TYPE_CHECKING:
    from vidihand_ros.mano.fit import ManoFit, fit_mano
    from vidihand_ros.mano.layer import ManoLayer, ManoOutput, load_mano_layers

_LAZY = {
    "ManoLayer": "vidihand_ros.mano.layer",
    "ManoOutput": "vidihand_ros.mano.layer",
    "load_mano_layers": "vidihand_ros.mano.layer",
    "ManoFit": "vidihand_ros.mano.fit",
    "fit_mano": "vidihand_ros.mano.fit",
}

__all__ = [
    "FINGERTIP_VERTICES",
    "JOINT_ORDER",
    "ManoFit",
    "ManoLayer",
    "ManoOutput",
    "find_mano_files",
    "fit_mano",
    "load_mano_file",
    "load_mano_layers",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
