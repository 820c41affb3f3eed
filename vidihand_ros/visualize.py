"""Draw estimated hands over an image: 2D skeletons, left and right in their own colours, labelled.

For looking at what an estimator produced (the README picture is made this way) and for quick
checks of a recording. From the command line (`vidihand_ros.cli.visualize`), on one image:

    vidihand visualize photo.jpg -o hands.png --estimator mediapipe
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.types import HAND_SIDES, CameraModel, Frame, FramePoses, HandPose, Window

__all__ = [
    "HAND_BONES",
    "SIDE_COLOURS",
    "crop",
    "describe_hand",
    "draw_hand",
    "draw_hands",
    "estimate_image",
    "fit_size",
    "read_image",
    "write_image",
]

#: Bones of the 21-joint hand (wrist, then thumb→pinky, base→tip): each finger is a chain from
#: the wrist, and the finger bases are joined across the palm.
HAND_BONES: tuple[tuple[int, int], ...] = (
    *((0, 1), (1, 2), (2, 3), (3, 4)),
    *((0, 5), (5, 6), (6, 7), (7, 8)),
    *((0, 9), (9, 10), (10, 11), (11, 12)),
    *((0, 13), (13, 14), (14, 15), (15, 16)),
    *((0, 17), (17, 18), (18, 19), (19, 20)),
    *((5, 9), (9, 13), (13, 17)),
)
#: RGB colour per side (colour-blind safe pair: blue and orange).
SIDE_COLOURS: dict[str, tuple[int, int, int]] = {"left": (0, 114, 178), "right": (230, 159, 0)}
#: A rectangle in pixels: (x0, y0, x1, y1).
Rect = tuple[int, int, int, int]


def draw_hand(
    image: NDArray[np.uint8],
    keypoints_2d: NDArray[np.floating],
    side: str,
    label: str | None = None,
    avoid: list[Rect] | None = None,
) -> Rect | None:
    """Draw one hand's skeleton on `image` (RGB, modified in place); NaN keypoints are skipped.

    The label goes above the hand, or below it when that would cover a rectangle in `avoid` (the
    other hand's label); returns the label's rectangle.
    """
    colour = SIDE_COLOURS[side]
    scale = max(image.shape[:2]) / 1000.0
    thickness = max(1, round(3 * scale))
    radius = max(2, round(4 * scale))
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    finite: NDArray[np.bool_] = np.asarray(np.isfinite(kp).all(axis=1))
    points = np.where(finite[:, None], kp, 0.0).round().astype(np.int32)
    for a, b in HAND_BONES:
        if finite[a] and finite[b]:
            cv2.line(image, tuple(points[a]), tuple(points[b]), colour, thickness, cv2.LINE_AA)
    for j in np.flatnonzero(finite):
        cv2.circle(image, tuple(points[j]), radius + 1, colour, -1, cv2.LINE_AA)
        cv2.circle(image, tuple(points[j]), max(1, radius - 1), (255, 255, 255), -1, cv2.LINE_AA)
    if label and finite.any():
        return _draw_label(image, label, kp[finite], colour, scale, avoid or [])
    return None


def _draw_label(
    image: NDArray[np.uint8],
    text: str,
    points: NDArray[np.float64],
    colour: tuple[int, int, int],
    scale: float,
    avoid: list[Rect],
) -> Rect:
    """A filled tag with white text just above the hand's bounding box, or below it (inside the image)."""
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.9 * max(scale, 0.5)
    weight = max(1, round(2 * scale))
    (w, h), baseline = cv2.getTextSize(text, font, font_scale, weight)
    pad = max(2, round(4 * scale))
    tag_w, tag_h = w + 2 * pad, h + baseline + 2 * pad
    x0 = int(np.clip(points[:, 0].min(), 0, max(0, image.shape[1] - tag_w)))
    above = int(points[:, 1].min()) - pad - tag_h
    below = int(points[:, 1].max()) + pad
    rect: Rect = (x0, 0, x0 + tag_w, 0)
    for top in (above, below):
        top = int(np.clip(top, 0, max(0, image.shape[0] - tag_h)))
        rect = (x0, top, x0 + tag_w, top + tag_h)
        if not any(_overlap(rect, other) for other in avoid):
            break
    cv2.rectangle(image, rect[:2], rect[2:], colour, -1)
    cv2.putText(
        image,
        text,
        (x0 + pad, rect[3] - baseline - pad),
        font,
        font_scale,
        (255, 255, 255),
        weight,
        cv2.LINE_AA,
    )
    return rect


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_hands(
    rgb: NDArray[np.uint8], poses: FramePoses, *, min_presence: float = 0.5, labels: bool = True
) -> NDArray[np.uint8]:
    """A copy of `rgb` with both hands of `poses` drawn (hands below `min_presence` are left out)."""
    out = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    tags: list[Rect] = []
    for side in HAND_SIDES:
        hand = poses.hand(side)
        if hand is None or not hand.presence >= min_presence:
            continue
        label = f"{side} {hand.presence:.2f}" + (" (filled)" if hand.filled else "") if labels else None
        tag = draw_hand(out, hand.keypoints_2d, side, label, avoid=tags)
        if tag is not None:
            tags.append(tag)
    return out


def estimate_image(
    rgb: NDArray[np.uint8],
    estimator_name: str = "mediapipe",
    options: dict[str, str] | None = None,
    camera: CameraModel | None = None,
) -> FramePoses:
    """Run an estimator (by registry name) on one image, as a one-frame window."""
    from vidihand_ros.estimators import create_estimator
    from vidihand_ros.estimators.asynchronous import as_async

    estimator = create_estimator(estimator_name, options or {})
    if estimator is None:
        raise InputError("choose an estimator to draw its hands (e.g. --estimator mediapipe)")
    height, width = rgb.shape[:2]
    frame = Frame(
        stamp_ns=0, frame_id="image", encoding="rgb8", width=width, height=height, pixels=rgb, camera=camera
    )
    try:
        (poses,) = as_async(estimator).submit([Window([frame], start=0, num_valid=1, segment=0)]).result()
    finally:
        estimator.close()
    return poses[0]


def read_image(path: Path) -> NDArray[np.uint8]:
    """A JPEG or PNG file as RGB; a missing or undecodable file is an `InputError` naming it."""
    from vidihand_ros.imaging import decode_rgb

    try:
        data = path.read_bytes()
        return decode_rgb(data, "png" if data[:4] == b"\x89PNG" else "jpeg")
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the picture: {err}", source=path) from None


def write_image(path: Path, rgb: NDArray[np.uint8]) -> None:
    """Write RGB as PNG or JPEG, as the extension says."""
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise InputError("cannot write the picture (unknown extension or unwritable path)", source=path)


def fit_size(rgb: NDArray[np.uint8], max_size: int | None) -> NDArray[np.uint8]:
    """Shrink so that the longer side is at most `max_size` pixels (None: unchanged)."""
    if not max_size or max(rgb.shape[:2]) <= max_size:
        return rgb
    s = max_size / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def crop(rgb: NDArray[np.uint8], box: Rect) -> NDArray[np.uint8]:
    """The part (x0, y0, x1, y1) of the picture, clipped to it; an empty part is an `InputError`."""
    x0, y0, x1, y1 = box
    x0, x1 = max(0, x0), min(rgb.shape[1], x1)
    y0, y1 = max(0, y0), min(rgb.shape[0], y1)
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"crop {box} leaves nothing of a {rgb.shape[1]}x{rgb.shape[0]} image")
    return rgb[y0:y1, x0:x1]


def describe_hand(side: str, hand: HandPose | None) -> str:
    """One line per hand: its presence and, when known, where its wrist is in metres."""
    if hand is None or not hand.presence > 0:
        return f"{side}: not found"
    wrist = hand.joints_3d[0]
    where = (
        ""
        if not np.isfinite(wrist).all()
        else f", wrist at ({wrist[0]:.3f}, {wrist[1]:.3f}, {wrist[2]:.3f}) m"
    )
    return f"{side}: presence {hand.presence:.2f}{where}"
