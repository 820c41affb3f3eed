"""Stored rows back as the `Frame`s an estimator takes: the JPEG chunk as it is, the row's intrinsics.

Each chunk of `data/camera0_rgb` is one JPEG file (imagecodecs' codec, no filters, one frame per
chunk), so its bytes are handed over as a `Frame(encoding="jpeg")` without decoding, as a
conversion hands over a source JPEG. An image array stored otherwise (another tool's dataset) is
decoded by zarr. Intrinsics are those of the stored image (scale 1), read a block of rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.schema import IMAGE_KEY, LOWDIM_CHUNK_ROWS
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import CameraModel, Frame

__all__ = ["StoredFrames", "jpeg_chunks", "stored_camera", "stored_jpeg"]


class StoredFrames:
    """Frames of a dataset's rows; `data` is its `data/` group (which must have the image key)."""

    def __init__(self, path: Path, data: zc.Group) -> None:
        self.path = path
        self.images = data[IMAGE_KEY]
        self._intrinsics = data["camera0_intrinsics"]
        self._distortion = data["camera0_distortion"]
        self._stamps = data["stamp_ns"]
        self.height, self.width = (int(v) for v in self.images.shape[1:3])
        self._as_bytes = jpeg_chunks(self.images)

    def cameras(self, a: int, b: int, model: str) -> Iterator[CameraModel | None]:
        """The calibration of rows [a, b) (None where intrinsics are NaN), `model` its distortion."""
        for block in range(a, b, LOWDIM_CHUNK_ROWS):
            end = min(b, block + LOWDIM_CHUNK_ROWS)
            K = np.asarray(self._intrinsics[block:end], dtype=np.float64)
            D = np.asarray(self._distortion[block:end], dtype=np.float64)
            for k in range(end - block):
                yield stored_camera(K[k], D[k], self.width, self.height, model)

    def frames(self, a: int, b: int, *, first_row: int, frame_id: str, model: str) -> Iterator[Frame]:
        """Frames of rows [a, b), each `index` counted from `first_row` (the episode's first)."""
        cameras = self.cameras(a, b, model)
        for block in range(a, b, LOWDIM_CHUNK_ROWS):
            stamps = np.asarray(self._stamps[block : min(b, block + LOWDIM_CHUNK_ROWS)], dtype=np.int64)
            for k, stamp in enumerate(stamps.tolist()):
                row = block + k
                image: dict[str, Any] = (
                    {"encoding": "jpeg", "data": self.image_bytes(row, first_row)}
                    if self._as_bytes
                    else {"encoding": "rgb8", "pixels": np.asarray(self.images[row], dtype=np.uint8)}
                )
                yield Frame(
                    stamp_ns=stamp,
                    frame_id=frame_id,
                    width=self.width,
                    height=self.height,
                    camera=next(cameras),
                    index=row - first_row,
                    **image,
                )

    def image_bytes(self, row: int, first_row: int = 0) -> bytes:
        """The JPEG of `row`, the chunk file's bytes."""
        return stored_jpeg(self.images, row, self.path, first_row)


def stored_jpeg(images: zc.Array, row: int, path: Path, first_row: int = 0) -> bytes:
    """The JPEG of `row` of a `jpeg_chunks` image array; a missing chunk is a `DatasetError`."""
    try:
        return zc.chunk_file(images, (row, 0, 0, 0)).read_bytes()
    except FileNotFoundError:
        raise DatasetError(
            f"no image is stored for frame {row - first_row} (data/{IMAGE_KEY} chunk {row})", source=path
        ) from None


def stored_camera(
    K: NDArray[np.float64], D: NDArray[np.float64], width: int, height: int, model: str
) -> CameraModel | None:
    """A row's stored calibration (None without intrinsics); D is NaN-padded after its coefficients."""
    if not np.isfinite(K).all():
        return None
    finite = np.isfinite(D)
    n = len(D) if finite.all() else int(np.argmin(finite))
    return CameraModel(K=K, width=width, height=height, distortion_model=model, D=D[:n])


def jpeg_chunks(images: zc.Array) -> bool:
    """Each chunk file is one JPEG (imagecodecs' codec, no filters, one frame a chunk)."""
    compressor = zc.compressor_of(images)
    return (
        compressor is not None
        and compressor.codec_id == "imagecodecs_jpeg"
        and not getattr(images, "filters", None)
        and int(images.chunks[0]) == 1
    )
