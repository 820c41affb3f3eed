"""One stored frame with what the dataset holds drawn over it: skeletons, states, legend, stamp.

Skeletons use `visualize.draw_hand` (the same colours and bones as `vidihand visualize`); a filled
hand is drawn half transparent and tagged "filled", so interpolated poses never pass for observed
ones. The legend (top left) names every hand's state, including the ones not drawn.
"""

from __future__ import annotations

from datetime import datetime, timezone

import cv2
import numpy as np
from numpy.typing import NDArray

from vidihand_ros.render.stored_hands import HandRows, HandState
from vidihand_ros.types import HAND_SIDES
from vidihand_ros.visualize import SIDE_COLOURS, Rect, draw_hand

__all__ = ["MIN_DRAW_SIZE", "draw_row", "enlarge", "enlargement", "scaled_pixels", "stamp_text"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Stored images smaller than this (longer side, pixels) are enlarged so that labels can be read.
MIN_DRAW_SIZE = 480
#: 2000-01-01 in seconds since the Unix epoch: earlier stamps are not wall-clock times.
CLOCK_EPOCH_2000 = 946_684_800
#: Opacity of a filled (interpolated) hand's skeleton.
FILLED_ALPHA = 0.5


def draw_row(
    rgb: NDArray[np.uint8],
    hands: dict[str, HandRows],
    k: int,
    *,
    caption: str,
    min_presence: float,
    scale: int = 1,
) -> NDArray[np.uint8]:
    """A copy of `rgb` with row k of `hands` drawn, the legend, and `caption` (the stamp) below.

    `rgb` may be the stored image enlarged `scale` times (`enlarge`): keypoints are scaled to it.
    """
    out = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    tags: list[Rect] = []
    legend = []
    for side in HAND_SIDES:
        if side not in hands:
            continue
        hand = hands[side]
        state = hand.state(k, min_presence)
        presence = float(hand.presence[k])
        legend.append((side, state, presence))
        stored = hand.value("keypoints_2d", k)
        if state not in (HandState.OBSERVED, HandState.FILLED) or stored is None:
            continue
        keypoints = scaled_pixels(stored, scale)
        label = f"{side} {presence:.2f}" + (" filled" if state is HandState.FILLED else "")
        if state is HandState.FILLED:
            layer = out.copy()
            tag = draw_hand(layer, keypoints, side, label, avoid=tags)
            out = np.asarray(cv2.addWeighted(layer, FILLED_ALPHA, out, 1 - FILLED_ALPHA, 0), np.uint8)
        else:
            tag = draw_hand(out, keypoints, side, label, avoid=tags)
        if tag is not None:
            tags.append(tag)
    _draw_legend(out, legend)
    _draw_caption(out, caption)
    return out


def enlargement(width: int, height: int) -> int:
    """The whole factor that brings a small stored image to `MIN_DRAW_SIZE` (1 if already there)."""
    return max(1, -(-MIN_DRAW_SIZE // max(width, height, 1)))


def enlarge(rgb: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    if scale == 1:
        return rgb
    size = (rgb.shape[1] * scale, rgb.shape[0] * scale)
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


def scaled_pixels(points: NDArray[np.floating], scale: int) -> NDArray[np.float64]:
    """Pixel coordinates (pixel centres at integers) in an image enlarged `scale` times."""
    return np.asarray(points, np.float64) * scale + (scale - 1) / 2


def _scale(image: NDArray[np.uint8]) -> float:
    return max(0.35, max(image.shape[:2]) / 1600.0)


def _draw_legend(image: NDArray[np.uint8], rows: list[tuple[str, HandState, float]]) -> None:
    """Top left, one line per hand: a swatch in the side's colour, side, state and presence."""
    scale = _scale(image)
    weight = max(1, round(2 * scale))
    pad = max(2, round(6 * scale))
    lines = [
        f"{side}: {state.value}" + ("" if np.isnan(presence) else f" ({presence:.2f})")
        for side, state, presence in rows
    ]
    sizes = [cv2.getTextSize(line, _FONT, scale, weight) for line in lines]
    line_h = max([h + b for (_, h), b in sizes], default=0) + pad
    swatch = line_h - pad
    width = max([w for (w, _), _ in sizes], default=0) + swatch + 3 * pad
    height = line_h * len(lines) + pad
    _shade(image, (0, 0, width, height))
    for i, ((side, _, _), line) in enumerate(zip(rows, lines, strict=True)):
        top = pad + i * line_h
        cv2.rectangle(image, (pad, top), (pad + swatch, top + swatch), SIDE_COLOURS[side], -1)
        baseline = top + swatch - max(1, round(2 * scale))
        cv2.putText(
            image, line, (2 * pad + swatch, baseline), _FONT, scale, (255, 255, 255), weight, cv2.LINE_AA
        )


def _draw_caption(image: NDArray[np.uint8], text: str) -> None:
    """Bottom left, white on a dark band."""
    scale = _scale(image) * 0.9
    weight = max(1, round(2 * scale))
    pad = max(2, round(6 * scale))
    (w, h), b = cv2.getTextSize(text, _FONT, scale, weight)
    height, _ = image.shape[:2]
    _shade(image, (0, height - h - b - 2 * pad, w + 2 * pad, height))
    cv2.putText(image, text, (pad, height - b - pad), _FONT, scale, (255, 255, 255), weight, cv2.LINE_AA)


def _shade(image: NDArray[np.uint8], rect: Rect) -> None:
    """Darken a rectangle (clipped to the image) so white text reads on any frame."""
    x0, y0, x1, y1 = rect
    x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
    x0, y0 = max(0, x0), max(0, y0)
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = (image[y0:y1, x0:x1] * 0.35).astype(np.uint8)


def stamp_text(episode: int, frame: int, stamp_ns: int) -> str:
    """'ep 0  frame 12  2023-11-14 22:13:20.400 UTC': the frame's place and its source stamp.

    Stamps before 2000 are a recording's own clock (a video file's time from its start, a robot
    without synchronised time) and are shown as seconds.
    """
    seconds, nanos = divmod(int(stamp_ns), 1_000_000_000)
    if seconds < CLOCK_EPOCH_2000:
        return f"ep {episode}  frame {frame}  t {stamp_ns / 1e9:.3f} s"
    when = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"ep {episode}  frame {frame}  {when}.{nanos // 1_000_000:03d} UTC"
