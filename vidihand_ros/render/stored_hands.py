"""The stored hands of a block of rows, as the pictures show them: pose, presence and its state.

A picture must say what the dataset holds, so each hand on each row is one of four states: observed
(a usable pose the estimator saw), filled (a usable pose interpolated across a gap), absent (the
estimator ran and found no usable pose, or one below the presence threshold), or not estimated
(presence NaN: a frames-only episode, or rows nobody annotated).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.types import HAND_SIDES

__all__ = ["MIN_PRESENCE", "HandRows", "HandState", "read_hands"]

#: A usable pose below this presence is drawn as absent (the estimator doubts the hand is there).
MIN_PRESENCE = 0.5
#: Fields read when present; the MANO ones only for the mesh.
_FIELDS = ("keypoints_2d", "joints_3d", "wrist_pos", "global_orient", "hand_pose", "betas", "transl")


class HandState(Enum):
    OBSERVED = "observed"
    FILLED = "filled"
    ABSENT = "absent"
    NOT_ESTIMATED = "not estimated"


@dataclass(frozen=True)
class HandRows:
    """One side's stored values for rows [start, stop); arrays have one entry per row."""

    side: str
    presence: NDArray[np.float32]
    valid: NDArray[np.bool_]
    filled: NDArray[np.bool_]
    values: dict[str, NDArray[np.float32]]

    def state(self, k: int, min_presence: float = MIN_PRESENCE) -> HandState:
        """The state of the k-th row of the block."""
        presence = float(self.presence[k])
        if np.isnan(presence):
            return HandState.NOT_ESTIMATED
        if not self.valid[k] or presence < min_presence:
            return HandState.ABSENT
        return HandState.FILLED if self.filled[k] else HandState.OBSERVED

    def value(self, field: str, k: int) -> NDArray[np.float32] | None:
        """The k-th row of `field`, or None when the dataset has no such key or it is NaN there."""
        array = self.values.get(field)
        if array is None or not np.isfinite(array[k]).all():
            return None
        return array[k]


def read_hands(reader: DatasetReader, start: int, stop: int) -> dict[str, HandRows]:
    """Both sides' stored values for dataset rows [start, stop) (a side without keys is left out)."""
    hands = {}
    for side in HAND_SIDES:
        if hand_key(side, "valid") not in reader.keys:
            continue
        values = {
            field: np.asarray(reader.array(hand_key(side, field))[start:stop], dtype=np.float32)
            for field in _FIELDS
            if hand_key(side, field) in reader.keys
        }
        hands[side] = HandRows(
            side=side,
            presence=_rows(reader, hand_key(side, "presence"), start, stop, np.nan, np.float32),
            valid=_rows(reader, hand_key(side, "valid"), start, stop, False, np.bool_),
            filled=_rows(reader, hand_key(side, "filled"), start, stop, False, np.bool_),
            values=values,
        )
    return hands


def _rows(reader: DatasetReader, key: str, start: int, stop: int, fill: float, dtype: type) -> NDArray[Any]:
    """Rows [start, stop) of `key`, or `fill` when the dataset has no such key (other tools)."""
    if key not in reader.keys:
        return np.full(stop - start, fill, dtype)
    return np.asarray(reader.array(key)[start:stop], dtype=dtype)
