"""What the dataset promises is known: a hand's row is *valid*, an episode was *estimated*.

The one definition every writer and reader uses. `<side>_hand_valid` is True exactly where the
hand's pose is usable: `joints_3d`, `keypoints_2d` and `wrist_pos` all finite, whether observed or
filled across a gap (`<side>_hand_filled` says which). The MANO keys and `wrist_rot_axis_angle`
are not required. Layout 1 stored True wherever the estimator returned a hand, NaN rows included;
`honest_valid` turns such a stored mask into this one. Whether an estimator ran over an episode
at all is in its meta record (`estimation_record`), since an all-False mask no longer says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Per-hand fields that must all be finite for a row to be valid (`<side>_hand_<field>` keys).
REQUIRED_FIELDS = ("joints_3d", "keypoints_2d", "wrist_pos")


def _finite(values: ArrayLike, ndim: int) -> NDArray[np.bool_]:
    """Per row: every value of the trailing `ndim` dimensions finite (leading shape kept)."""
    array = np.asarray(values)
    lead = array.shape[: array.ndim - ndim]
    return np.asarray(np.isfinite(array).reshape(*lead, -1).all(axis=-1), dtype=bool)


def usable(joints_3d: ArrayLike, keypoints_2d: ArrayLike, wrist_pos: ArrayLike) -> NDArray[np.bool_]:
    """The valid mask of rows of the three required fields (any leading shape; one row: 0-d)."""
    return _finite(joints_3d, 2) & _finite(keypoints_2d, 2) & _finite(wrist_pos, 1)


def honest_valid(stored: ArrayLike, fields: Mapping[str, ArrayLike | None]) -> NDArray[np.bool_]:
    """A stored valid mask of an older layout, restricted to rows whose required fields are finite.

    `fields` maps each `REQUIRED_FIELDS` name to its rows; a field the dataset lacks (None or
    absent) makes no row valid.
    """
    mask = np.asarray(stored, dtype=bool)
    joints, keypoints, wrist = (fields.get(name) for name in REQUIRED_FIELDS)
    if joints is None or keypoints is None or wrist is None:
        return np.zeros_like(mask)
    return mask & usable(joints, keypoints, wrist)


def estimation_record(estimator: Mapping[str, Any] | None) -> dict[str, Any]:
    """The episode-record keys saying whether an estimator ran over the episode, and which.

    `estimated` is False for frames-only conversions and ground-truth imports (whose record says
    where the poses came from under `ground_truth`); `estimator` is the estimator's attrs or None.
    """
    return {"estimated": estimator is not None, "estimator": None if estimator is None else dict(estimator)}


def episode_has_poses(record: Mapping[str, Any]) -> bool | None:
    """Whether the episode's hand keys hold poses at all (estimated or ground truth); None: unknown.

    Records of layout 1 have no `estimated` key: there an `estimator` key (None when frames-only)
    or a `ground_truth` key tells. Records by other tools tell nothing.
    """
    if "ground_truth" in record:
        return True
    if isinstance(record.get("estimated"), bool):
        return bool(record["estimated"])
    if "estimator" in record:
        return record["estimator"] is not None
    return None
