"""Copy the episodes of one dataset into another's writer, JPEG chunks byte for byte.

`convert --ray` writes each recording into a part dataset of its own; the parts are then merged
into the output in input order. The writer has no "append raw rows" path, so each stored row is
turned back into the `Frame` + `FramePoses` it was written from and given to `EpisodeWriter.add`:
every low-dimensional value goes back unchanged (float32 in, float32 out; `*_hand_valid` is
recomputed from the same values by the same rule), and each image is the part's JPEG chunk file,
which the writer copies through without decoding (it is an 8-bit 3-channel JPEG of the dataset's
size). Rows are read a chunk at a time, so memory stays one block whatever the episode's length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY, LOWDIM_CHUNK_ROWS, LOWDIM_SPECS, hand_key
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import HAND_SIDES, CameraModel, Frame, FramePoses, HandPose

__all__ = ["copy_episodes"]

#: HandPose argument behind each stored per-hand field (`schema.HAND_FIELDS` but wrist_pos, which
#: the writer takes from joints_3d[0]); a test keeps the two in step.
_HAND_ARGS = {
    "global_orient": "global_orient",
    "hand_pose": "hand_pose",
    "betas": "betas",
    "transl": "transl",
    "joints_3d": "joints_3d",
    "keypoints_2d": "keypoints_2d",
    "wrist_rot_axis_angle": "wrist_orient",
}


def copy_episodes(
    source: DatasetReader, writer: DatasetWriter, *, advance: Callable[[int], None] | None = None
) -> int:
    """Append every episode of `source` to `writer` (committed, not yet published); returns frames.

    Episode records keep their own fields (source file, estimator, skipped frames, pass-through
    counts); the writer sets the ones that depend on the new dataset (index, start row, session).
    """
    if source.num_episodes and IMAGE_KEY not in source.keys:
        raise DatasetError(f"has no data/{IMAGE_KEY}", source=source.path)
    frames = 0
    for i in range(source.num_episodes):
        frames += _copy_episode(source, i, writer)
        if advance is not None:
            advance(1)
    return frames


def _copy_episode(source: DatasetReader, i: int, writer: DatasetWriter) -> int:
    record = source.episode_attrs(i)
    episode = writer.begin_episode(record)
    try:
        for frame, poses in _rows(source, i, record):
            episode.add(frame, poses)
        # What the part's writer did with the source frames, not what this copy did (all copied).
        episode.passthrough_frames = int(record.get("passthrough_frames", episode.passthrough_frames))
        episode.reencoded_frames = int(record.get("reencoded_frames", episode.reencoded_frames))
    except BaseException:
        episode.abort()
        raise
    episode.commit()
    return episode.num_frames


def _rows(
    source: DatasetReader, i: int, record: Mapping[str, Any]
) -> Iterator[tuple[Frame, FramePoses | None]]:
    """Episode `i` as the frames and poses it was written from, a chunk of rows at a time."""
    start, stop = source.bounds(i)
    images = source.array(IMAGE_KEY)
    height, width = (int(v) for v in images.shape[1:3])
    # The declared size is the source's, so the record's source_image_size survives; the writer
    # sizes the image from the JPEG itself (scale 1: nothing is rescaled).
    src_w, src_h = (int(v) for v in record.get("source_image_size") or (width, height))
    model = str((record.get("camera0_distortion_models") or [""])[0])
    frame_id = str(record.get("frame_id", ""))
    for block in range(start, stop, LOWDIM_CHUNK_ROWS):
        end = min(stop, block + LOWDIM_CHUNK_ROWS)
        rows = {spec.name: np.asarray(source.array(spec.name)[block:end]) for spec in LOWDIM_SPECS}
        for k in range(end - block):
            row = block + k
            try:
                jpeg = zc.chunk_file(images, (row, 0, 0, 0)).read_bytes()
            except OSError as err:
                raise DatasetError(f"cannot read the image of row {row}: {err}", source=source.path) from err
            stamp = int(rows["stamp_ns"][k])
            camera = _camera(rows, k, width, height, model)
            frame = Frame(stamp, frame_id, "jpeg", src_w, src_h, data=jpeg, camera=camera, index=row - start)
            yield frame, _poses(rows, k, stamp, frame_id)


def _camera(
    rows: Mapping[str, np.ndarray], k: int, width: int, height: int, model: str
) -> CameraModel | None:
    K = rows["camera0_intrinsics"][k]
    if not np.isfinite(K).all():
        return None  # no CameraInfo for this frame: the row stays NaN
    D = rows["camera0_distortion"][k]
    finite = np.isfinite(D)
    n = len(D) if finite.all() else int(np.argmin(finite))  # NaN-padded after the coefficients
    return CameraModel(
        K=K.astype(np.float64), width=width, height=height, distortion_model=model, D=D[:n].astype(np.float64)
    )


def _poses(rows: Mapping[str, np.ndarray], k: int, stamp: int, frame_id: str) -> FramePoses | None:
    hands = {side: _hand(rows, k, side) for side in HAND_SIDES}
    if all(h is None for h in hands.values()):
        return None
    return FramePoses(stamp, frame_id, hands["left"], hands["right"])


def _hand(rows: Mapping[str, np.ndarray], k: int, side: str) -> HandPose | None:
    presence = float(rows[hand_key(side, "presence")][k])
    filled = bool(rows[hand_key(side, "filled")][k])
    values: dict[str, Any] = {arg: rows[hand_key(side, field)][k] for field, arg in _HAND_ARGS.items()}
    if np.isnan(presence) and not filled and all(np.isnan(v).all() for v in values.values()):
        return None  # nothing estimated: leave the row at its fill values, as the part has it
    return HandPose(presence=presence, filled=filled, **values)
