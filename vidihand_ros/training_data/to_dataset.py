"""Ground-truth sequences → a vidihand Zarr dataset, one episode per sequence.

The result has the same keys as a dataset written by `vidihand convert`, so `vidihand eval
PRED GT` compares a prediction against it row by row, and decoder training reads images,
intrinsics and targets from one place. Episode records carry the source dataset, sequence name
and the loader's conversion notes under `ground_truth`, and `estimated: false` (no estimator ran);
the dataset's provenance says it is ground truth.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from vidihand_ros.dataset.schema import DEFAULT_JPEG_QUALITY
from vidihand_ros.dataset.staging import open_for_writing
from vidihand_ros.dataset.validity import estimation_record
from vidihand_ros.errors import InputError
from vidihand_ros.training_data.arctic import ArcticLoader
from vidihand_ros.training_data.base import Sequence, SequenceLoader
from vidihand_ros.training_data.egodex import EgoDexLoader
from vidihand_ros.training_data.hoi4d import Hoi4dLoader
from vidihand_ros.training_data.hot3d import Hot3dLoader

#: Dataset kinds `vidihand import` accepts.
LOADERS: dict[str, Callable[..., SequenceLoader]] = {
    "arctic": ArcticLoader,
    "hot3d": Hot3dLoader,
    "egodex": EgoDexLoader,
    "hoi4d": Hoi4dLoader,
}

#: Called after each written episode with (index, sequence name, frames).
Progress = Callable[[int, str, int], None]


def make_loader(kind: str, **options: Any) -> SequenceLoader:
    """The loader for `kind`; options that are None are ignored, others must apply to the dataset."""
    if kind not in LOADERS:
        raise InputError(f"unknown dataset kind {kind!r}; choose from {', '.join(sorted(LOADERS))}")
    factory = LOADERS[kind]
    accepted = inspect.signature(factory).parameters
    given = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(set(given) - set(accepted))
    if wrong:
        raise InputError(f"option(s) {', '.join(wrong)} do not apply to {kind}")
    return factory(**given)


def write_sequences(
    sequences: Iterable[Sequence],
    dataset_path: str | Path,
    *,
    mode: Literal["w", "a"] = "w",
    overwrite: bool = False,
    image_size: tuple[int, int] | None = None,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    attrs: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> list[int]:
    """Write each sequence as one committed episode; returns the episode indices.

    `image_size` (width, height) resizes every frame (and scales K and the 2D keypoints with it);
    it is needed when sequences have different image sizes. A failing sequence aborts its own
    episode; the episodes before it stay committed, except with `overwrite`, where the old
    dataset stays as it was and nothing of the new one is kept.
    """
    provenance = {"estimator": "ground_truth", **(attrs or {})}
    indices: list[int] = []
    with open_for_writing(
        dataset_path,
        append=mode == "a",
        overwrite=overwrite,
        image_size=image_size,
        jpeg_quality=jpeg_quality,
        attrs=provenance,
    ) as writer:
        for sequence in sequences:
            episode = writer.begin_episode(episode_attrs(sequence))
            try:
                for frame, poses in sequence:
                    episode.add(frame, poses)
                index = episode.commit()
            except BaseException:
                episode.abort()
                raise
            if index is not None:
                indices.append(index)
                if progress is not None:
                    progress(index, sequence.name, len(sequence))
    return indices


def episode_attrs(sequence: Sequence) -> dict[str, Any]:
    """The episode record: task text plus where the ground truth came from (no estimator ran)."""
    extra = {k: v for k, v in sequence.attrs.items() if k != "task"}
    return {
        "task": str(sequence.attrs.get("task", sequence.name)),
        **estimation_record(None),
        "ground_truth": {
            "dataset": sequence.dataset,
            "sequence": sequence.name,
            "fps": sequence.fps,
            **extra,
        },
    }


def import_main(
    dataset_kind: str,
    root: str | Path,
    output: str | Path,
    sequences: Iterable[str] | None = None,
    *,
    camera: str | int | None = None,
    mano_dir: str | Path | None = None,
    image_size: tuple[int, int] | None = None,
    mode: Literal["w", "a"] = "w",
    overwrite: bool = False,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    progress: Progress | None = None,
    **loader_options: Any,
) -> list[int]:
    """`vidihand import DATASET_KIND ROOT -o GT.zarr`: every (or the named) sequence → one episode.

    `loader_options` go to the dataset's loader (e.g. `undistort=False` for HOT3D,
    `images="cropped"` for ARCTIC). Returns the written episode indices.
    """
    loader = make_loader(dataset_kind, mano_dir=mano_dir, **loader_options)
    available = loader.list_sequences(root)
    names = list(sequences) if sequences is not None else available
    missing = [n for n in names if n not in available]
    if missing:
        raise InputError(f"no such {dataset_kind} sequence(s): {', '.join(missing[:5])}", source=root)
    if not names:
        raise InputError(f"no {dataset_kind} sequences found", source=root)

    def load_all() -> Iterator[Sequence]:
        for name in names:
            yield loader.load(root, name, camera=camera)

    attrs = {
        "ground_truth": {
            "dataset": dataset_kind,
            "root": str(root),
            "camera": camera,
            "mano_dir": None if mano_dir is None else str(mano_dir),
            "options": {k: v for k, v in loader_options.items() if v is not None},
        }
    }
    return write_sequences(
        load_all(),
        output,
        mode=mode,
        overwrite=overwrite,
        image_size=image_size,
        jpeg_quality=jpeg_quality,
        attrs=attrs,
        progress=progress,
    )
