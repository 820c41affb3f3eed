"""The selected stored frames with their hands drawn, one block of rows at a time (memory stays small).

Shared by the mp4 and the PNG outputs of `vidihand render`. Draws only what the dataset holds:
no estimator is imported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY, LOWDIM_CHUNK_ROWS
from vidihand_ros.errors import InputError
from vidihand_ros.render.mesh import MeshPainter
from vidihand_ros.render.overlay import draw_row, enlarge, enlargement, stamp_text
from vidihand_ros.render.selection import EpisodeRows
from vidihand_ros.render.stored_hands import MIN_PRESENCE, read_hands
from vidihand_ros.visualize import fit_size

__all__ = ["DrawnFrame", "drawn_frames", "row_stamps"]


@dataclass(frozen=True)
class DrawnFrame:
    episode: int
    frame: int  # index within the episode
    rgb: NDArray[np.uint8]


def row_stamps(reader: DatasetReader, start: int, stop: int) -> NDArray[np.int64]:
    """Source stamps (ns) of rows [start, stop): `stamp_ns`, else `timestamp` (seconds, other tools)."""
    if "stamp_ns" in reader.keys:
        return np.asarray(reader.array("stamp_ns")[start:stop], dtype=np.int64)
    if "timestamp" in reader.keys:
        seconds = np.asarray(reader.array("timestamp")[start:stop], dtype=np.float64)
        return np.round(np.nan_to_num(seconds) * 1e9).astype(np.int64)
    return np.zeros(stop - start, np.int64)


def scaled_camera(K: NDArray[np.float64], scale: int) -> NDArray[np.float64]:
    """K of the image enlarged `scale` times (the same pixel-centre convention as the keypoints)."""
    out = np.array(K, np.float64)
    out[:2] *= scale
    out[:2, 2] += (scale - 1) / 2
    return out


def drawn_frames(
    reader: DatasetReader,
    selection: list[EpisodeRows],
    *,
    max_size: int | None = None,
    min_presence: float = MIN_PRESENCE,
    painter: MeshPainter | None = None,
) -> Iterator[DrawnFrame]:
    """Every selected row's image with its stored hands, legend and stamp drawn.

    Images smaller than `overlay.MIN_DRAW_SIZE` are enlarged first; `max_size` shrinks afterwards.
    """
    if IMAGE_KEY not in reader.keys:
        raise InputError(f"{reader.path}: the dataset stores no images (no data/{IMAGE_KEY})")
    images = reader.array(IMAGE_KEY)
    scale = enlargement(int(images.shape[2]), int(images.shape[1]))
    has_k = "camera0_intrinsics" in reader.keys
    for rows in selection:
        for block in range(rows.start, rows.stop, LOWDIM_CHUNK_ROWS):
            end = min(rows.stop, block + LOWDIM_CHUNK_ROWS)
            hands = read_hands(reader, block, end)
            stamps = row_stamps(reader, block, end)
            Ks = (
                np.asarray(reader.array("camera0_intrinsics")[block:end], np.float64)
                if has_k
                else np.full((end - block, 3, 3), np.nan)
            )
            for k in range(end - block):
                rgb = enlarge(np.asarray(images[block + k], dtype=np.uint8), scale)
                if painter is not None:
                    rgb = painter.paint(rgb, hands, k, scaled_camera(Ks[k], scale), min_presence)
                frame = block + k - rows.first
                caption = stamp_text(rows.episode, frame, int(stamps[k]))
                picture = draw_row(rgb, hands, k, caption=caption, min_presence=min_presence, scale=scale)
                yield DrawnFrame(rows.episode, frame, fit_size(picture, max_size))
