"""Synthetic 21-joint hands in known poses (open, fist, pinch), for retargeting tests and benchmarks.

Built in the wrist frame `dex-retargeting` compares robots in (`retarget.wrist_frame`: z from the
wrist to the fingers, x out of the palm, y towards a right hand's thumb), from bone lengths of an
adult hand and per-joint flexion angles; a left hand is the right one mirrored (y negated). The
finger bases lie in the palm plane x = 0 with the middle finger's on the z axis, so the palm frame
of every pose is exactly that frame. `place` puts a hand into a camera frame.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["POSES", "hand_in_pose", "place"]

#: Finger base (MCP) positions in the palm plane, metres, index → pinky.
_BASES = ((0.0, 0.024, 0.088), (0.0, 0.0, 0.090), (0.0, -0.021, 0.084), (0.0, -0.040, 0.074))
#: Proximal, middle, distal bone lengths, index → pinky.
_BONES = ((0.042, 0.025, 0.022), (0.046, 0.028, 0.023), (0.043, 0.026, 0.022), (0.034, 0.020, 0.019))
#: Sideways splay of each finger (radians, towards +y), index → pinky.
_SPLAY = (0.10, 0.0, -0.10, -0.20)
_THUMB_BASE = np.array([0.012, 0.020, 0.022])
_THUMB_BONES = (0.040, 0.032, 0.028)

#: Flexion (MCP, PIP, DIP) per finger (index → pinky), and the thumb's direction and curl.
POSES: dict[str, dict[str, object]] = {
    "open": {"fingers": ((0.05, 0.05, 0.02),) * 4, "thumb": (0.15, 0.80, 0.55), "thumb_curl": 0.05},
    "fist": {"fingers": ((1.45, 1.60, 1.10),) * 4, "thumb": (0.80, -0.35, 0.50), "thumb_curl": 0.6},
    "pinch": {"fingers": ((0.55, 0.75, 0.35), (0.25, 0.30, 0.15), (0.30, 0.35, 0.15), (0.35, 0.40, 0.20))},
}


def hand_in_pose(pose: str, side: str = "right") -> NDArray[np.float64]:
    """(21, 3) joints in the wrist frame: wrist, thumb → pinky, each base → tip (metres)."""
    spec = POSES[pose]
    joints = np.zeros((21, 3))
    for f, (base, bones, splay, flexion) in enumerate(
        zip(_BASES, _BONES, _SPLAY, spec["fingers"], strict=True)  # type: ignore[call-overload]
    ):
        first = 5 + 4 * f
        point = np.array(base)
        joints[first] = point
        bend = 0.0
        for k, (length, angle) in enumerate(zip(bones, flexion, strict=True)):
            bend += angle
            direction = np.array([np.sin(bend), np.sin(splay) * np.cos(bend), np.cos(splay) * np.cos(bend)])
            point = point + length * direction / np.linalg.norm(direction)
            joints[first + 1 + k] = point
    joints[1:5] = _thumb(spec, joints[8])
    if side == "left":
        joints[:, 1] *= -1.0
    return joints


def _thumb(spec: dict[str, object], index_tip: NDArray[np.float64]) -> NDArray[np.float64]:
    """Thumb CMC, MCP, IP, tip: along its direction with a curl, or (pinch) onto the index tip."""
    if "thumb" not in spec:  # pinch: the thumb's tip touches the index fingertip
        tip = index_tip
        along = tip - _THUMB_BASE
        bow = np.array([0.0, 0.012, 0.0])  # the thumb bows outwards on its way to the tip
        return np.stack([_THUMB_BASE, _THUMB_BASE + 0.4 * along + bow, _THUMB_BASE + 0.72 * along + bow, tip])
    direction = np.asarray(spec["thumb"], dtype=np.float64)
    direction /= np.linalg.norm(direction)
    curl = float(spec["thumb_curl"])  # type: ignore[arg-type]
    points = [_THUMB_BASE]
    for k, length in enumerate(_THUMB_BONES):
        d = direction + k * curl * np.array([1.0, 0.0, -0.3])
        points.append(points[-1] + length * d / np.linalg.norm(d))
    return np.stack(points)


def place(
    joints: NDArray[np.float64], rotation: NDArray[np.float64], translation: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Joints moved into a camera frame: p_camera = R p + t (R a proper rotation)."""
    return np.asarray(joints) @ np.asarray(rotation).T + np.asarray(translation)
