"""Ground-truth sequences from published hand datasets, in the project's conventions.

One loader per dataset reads its published on-disk format (no conversion step, nothing
downloaded) and returns `Sequence`s: lazily read frames plus per-frame `FramePoses` in metres,
camera optical frame, axis-angle, flat-hand-mean MANO and 21 joints, NaN where the dataset
gives nothing. `write_sequences` / `import_main` turn them into vidihand Zarr datasets for
`vidihand eval` and decoder training. Needs numpy only (h5py for EgoDex, PyAV for videos).

ARCTIC, HOT3D-Clips and EgoDex are the training sets; HOI4D is held out for evaluation.
"""

from __future__ import annotations

from vidihand_ros.training_data.arctic import ArcticLoader
from vidihand_ros.training_data.base import (
    Sequence,
    SequenceLoader,
    gt_arrays,
    project_points,
)
from vidihand_ros.training_data.egodex import EgoDexLoader
from vidihand_ros.training_data.hoi4d import Hoi4dLoader
from vidihand_ros.training_data.hot3d import Hot3dLoader
from vidihand_ros.training_data.mano import ManoModel, load_mano
from vidihand_ros.training_data.to_dataset import LOADERS, import_main, make_loader, write_sequences

__all__ = [
    "LOADERS",
    "ArcticLoader",
    "EgoDexLoader",
    "Hoi4dLoader",
    "Hot3dLoader",
    "ManoModel",
    "Sequence",
    "SequenceLoader",
    "gt_arrays",
    "import_main",
    "load_mano",
    "make_loader",
    "project_points",
    "write_sequences",
]
