"""Low-dimensional rows of one flush block: Frame + FramePoses (+ extra keys) → one row per key.

Rows are buffered in preallocated arrays and written to zarr a block at a time, because a zarr
resize + write per frame costs milliseconds; memory is bounded by the block, never the episode.
`RowBuffer` keeps one block across episodes, so short episodes do not each rewrite a partly
filled chunk of every key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from vidihand_ros.dataset.schema import HAND_FIELDS, LOWDIM_SPECS, MAX_DISTORTION, KeySpec, hand_key
from vidihand_ros.dataset.validity import REQUIRED_FIELDS, usable
from vidihand_ros.errors import DatasetError
from vidihand_ros.geometry.resize import scale_intrinsics, scale_pixels
from vidihand_ros.types import HAND_SIDES, CameraModel, Frame, FramePoses, HandPose

_BUILTIN_NAMES = frozenset(spec.name for spec in LOWDIM_SPECS)
#: HandPose attribute behind each per-hand field (the UMI-style names differ for the wrist).
_HAND_SOURCES = {"wrist_pos": "wrist_position", "wrist_rot_axis_angle": "wrist_orient"}


class RowBlock:
    """Up to `capacity` rows of every low-dimensional key, prefilled with each key's fill value."""

    def __init__(self, capacity: int, specs: tuple[KeySpec, ...] = LOWDIM_SPECS) -> None:
        self.capacity = capacity
        self.specs: tuple[KeySpec, ...] = ()
        self.arrays: dict[str, np.ndarray] = {}
        self.size = 0
        for spec in specs:
            self.add_spec(spec)

    def add_spec(self, spec: KeySpec) -> None:
        """Add a key (a co-recorded topic's field); the rows held so far get its fill value."""
        if spec.name in self.arrays:
            raise ValueError(f"key {spec.name!r} is already in the block")
        self.arrays[spec.name] = np.full((self.capacity, *spec.shape), spec.fill, dtype=spec.dtype)
        self.specs = (*self.specs, spec)

    @property
    def full(self) -> bool:
        return self.size >= self.capacity

    def clear(self) -> None:
        self.truncate(0)

    def truncate(self, size: int) -> None:
        """Keep the first `size` rows; the others are reset to the fill values."""
        if not 0 <= size <= self.size:
            raise ValueError(f"cannot truncate {self.size} rows to {size}")
        for spec in self.specs:
            self.arrays[spec.name][size : self.size] = spec.fill
        self.size = size

    def rows(self) -> dict[str, np.ndarray]:
        """The filled rows of each key (views, valid until the next `clear`)."""
        return {name: array[: self.size] for name, array in self.arrays.items()}

    def append(
        self,
        frame: Frame,
        poses: FramePoses | None,
        scale: tuple[float, float],
        extras: Mapping[str, np.ndarray | float] | None = None,
    ) -> None:
        """Add one frame's row; `scale` is the (sx, sy) applied to the stored image; `extras` the
        values of added keys (the others keep their fill value)."""
        if self.full:
            raise RuntimeError("RowBlock is full; flush it first")
        if poses is not None and poses.stamp_ns != frame.stamp_ns:
            raise DatasetError(
                f"poses stamped {poses.stamp_ns} ns given for a frame stamped {frame.stamp_ns} ns",
                index=frame.index,
            )
        k = self.size
        try:
            self._put(k, frame, poses, scale)
            for name, value in (extras or {}).items():
                if name not in self.arrays or name in _BUILTIN_NAMES:
                    raise DatasetError(f"no such extra key {name!r}", index=frame.index, field=name)
                self.arrays[name][k] = value
        except BaseException:
            self.size += 1  # reset the half-written row, so the next frame's row starts clean
            self.truncate(k)
            raise
        self.size += 1

    def _put(self, k: int, frame: Frame, poses: FramePoses | None, scale: tuple[float, float]) -> None:
        a = self.arrays
        a["timestamp"][k] = frame.stamp_ns * 1e-9
        a["stamp_ns"][k] = frame.stamp_ns
        if frame.camera is not None:
            self._put_camera(k, frame.camera, scale, frame.index)
        if poses is not None:
            for side in HAND_SIDES:
                hand = poses.hand(side)
                if hand is not None:
                    self._put_hand(k, side, hand, scale)

    def _put_camera(self, k: int, camera: CameraModel, scale: tuple[float, float], index: int) -> None:
        K = camera.K if scale == (1.0, 1.0) else scale_intrinsics(camera.K, *scale)
        self.arrays["camera0_intrinsics"][k] = K
        if len(camera.D) > MAX_DISTORTION:
            raise DatasetError(
                f"{len(camera.D)} distortion coefficients, at most {MAX_DISTORTION} are supported",
                index=index,
                field="D",
            )
        self.arrays["camera0_distortion"][k, : len(camera.D)] = camera.D

    def _put_hand(self, k: int, side: str, hand: HandPose, scale: tuple[float, float]) -> None:
        """Store the hand's values; valid only where the stored (float32, scaled) pose is usable."""
        a = self.arrays
        a[hand_key(side, "presence")][k] = hand.presence
        a[hand_key(side, "filled")][k] = hand.filled
        for field, _, _ in HAND_FIELDS:
            value = getattr(hand, _HAND_SOURCES.get(field, field))
            if field == "keypoints_2d" and scale != (1.0, 1.0):
                value = scale_pixels(value, *scale)
            a[hand_key(side, field)][k] = value
        joints, keypoints, wrist = (a[hand_key(side, f)][k] for f in REQUIRED_FIELDS)
        a[hand_key(side, "valid")][k] = bool(usable(joints, keypoints, wrist))


#: Writes rows of every key starting at a row: `write(start, {key: rows})`.
RowWriter = Callable[[int, Mapping[str, np.ndarray]], None]


class RowBuffer:
    """The rows not yet written for good, from row `start` on, across episodes.

    A block is written (and emptied) when it reaches a multiple of its capacity, so that with the
    capacity of a chunk every write fills a whole chunk; `write_out` writes the rows held so far and
    keeps them, so that the chunk is completed from memory later instead of read back.
    """

    def __init__(
        self, capacity: int, start: int, write: RowWriter, specs: tuple[KeySpec, ...] = LOWDIM_SPECS
    ) -> None:
        self.block = RowBlock(capacity, specs)
        self.start = start
        self._write = write

    @property
    def end(self) -> int:
        """The row the next `append` fills."""
        return self.start + self.block.size

    def append(
        self,
        frame: Frame,
        poses: FramePoses | None,
        scale: tuple[float, float],
        extras: Mapping[str, np.ndarray | float] | None = None,
    ) -> None:
        self.block.append(frame, poses, scale, extras)
        if self.end % self.block.capacity == 0 or self.block.full:
            self.write_out()
            self.start = self.end
            self.block.clear()

    def write_out(self) -> None:
        """Write the held rows as chunk files (they stay held)."""
        if self.block.size:
            self._write(self.start, self.block.rows())

    def drop_from(self, row: int) -> None:
        """Forget rows >= `row` (rows below `start` are on disk already)."""
        if row >= self.start:
            self.block.truncate(min(row - self.start, self.block.size))
        else:
            self.block.clear()
            self.start = row
