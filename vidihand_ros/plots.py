"""`vidihand plot`'s figures: what a dataset's hand tracks do over time, one PNG per episode.

Presence, wrist position, speed, gripper width (labelled datasets) and jitter on one time axis show
at a glance where a track drops out, jumps or shakes — what `vidihand inspect`'s quality numbers
summarise. Drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI, no global
backend switch), imported only when a figure is made. Sizes are fixed so a PNG's pixels are known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros import quality
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.episode_quality import FOUND_PRESENCE, HandSeries, episode_quality, gap_runs, hand_series
from vidihand_ros.types import HAND_SIDES
from vidihand_ros.visualize import SIDE_COLOURS

__all__ = [
    "DPI",
    "EPISODE_FIGSIZE_IN",
    "EPISODE_SIZE_PX",
    "GRIPPER_KEYS",
    "SUMMARY_FIGSIZE_IN",
    "SUMMARY_SIZE_PX",
    "PlotFile",
    "plot_dataset",
    "plot_episode",
    "plot_summary",
]

#: Dots per inch of every PNG; with the sizes below, the pixel sizes.
DPI = 100
EPISODE_FIGSIZE_IN = (12.0, 12.0)
SUMMARY_FIGSIZE_IN = (12.0, 9.0)
#: (width, height) in pixels of an episode's PNG and of the dataset's summary PNG.
EPISODE_SIZE_PX = (round(EPISODE_FIGSIZE_IN[0] * DPI), round(EPISODE_FIGSIZE_IN[1] * DPI))
SUMMARY_SIZE_PX = (round(SUMMARY_FIGSIZE_IN[0] * DPI), round(SUMMARY_FIGSIZE_IN[1] * DPI))
#: Gripper widths written by `vidihand label` (UMI's keys), plotted when present.
GRIPPER_KEYS = ("robot0_gripper_width", "robot1_gripper_width")
_GRIPPER_COLOURS = ("#222222", "#888888")
_AXES = "xyz"

#: A panel's box in the PNG: (x0, y0, x1, y1) pixels, origin top left.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PlotFile:
    """A written PNG and where each panel lies in it (for checks, and for anyone cropping)."""

    path: Path
    panels: dict[str, Box]


def plot_dataset(
    reader: DatasetReader, out_dir: Path, episodes: Iterable[int]
) -> tuple[list[PlotFile], list[int]]:
    """`episode_NNN.png` for each of `episodes` that has poses, and `summary.png` over all episodes.

    Returns the files written and the episodes skipped (frames-only: nothing to plot).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    for i in episodes:
        figure = plot_episode(reader, i, out_dir / f"episode_{i:03d}.png")
        if figure is None:
            skipped.append(i)
        else:
            written.append(figure)
    records = [episode_quality(reader, i) for i in range(reader.num_episodes)]
    written.append(plot_summary(records, out_dir / "summary.png", title=reader.path.name))
    return written, skipped


def plot_episode(reader: DatasetReader, i: int, path: Path) -> PlotFile | None:
    """One episode's panels over seconds from its first frame; None (nothing written) without poses."""
    record = episode_quality(reader, i)
    series = {s: hand_series(reader, i, s) for s in HAND_SIDES} if record["has_poses"] else {}
    hands = {side: s for side, s in series.items() if s is not None}
    if not hands:
        return None
    t, time_label = _seconds(reader, i)
    grippers = [k for k in GRIPPER_KEYS if k in reader.keys]
    names = [
        "presence",
        *(f"wrist {a}" for a in _AXES),
        "speed",
        *(["gripper"] if grippers else []),
        "jitter",
    ]
    fig, axes = _figure(EPISODE_FIGSIZE_IN, len(names), sharex=True)
    panel = dict(zip(names, axes, strict=True))
    for n, (side, s) in enumerate(hands.items()):
        colour = _colour(side)
        lw = 4.0 if n == 0 else 2.0  # the first hand wider, beneath: equal values leave both visible
        _presence(panel["presence"], t, s, colour, side, width=lw)
        wrist = np.where(s.found[:, None], s.joints[:, 0], np.nan)
        for k, a in enumerate(_AXES):
            panel[f"wrist {a}"].plot(t, wrist[:, k], color=colour, lw=lw, label=side)
        panel["speed"].plot(t[1:], _speed(t, wrist), color=colour, lw=lw, label=side)
        jitter_t, jitter = _jitter(t, s)
        panel["jitter"].plot(jitter_t, jitter, color=colour, lw=lw, marker="o", ms=lw + 1, label=side)
    if grippers:
        widths = reader.episode(i, keys=grippers)
        for key, grey in zip(grippers, _GRIPPER_COLOURS, strict=False):
            hand = reader.array(key).attrs.get("hand")  # `vidihand label` records the hand
            panel["gripper"].plot(
                t,
                np.asarray(widths[key], dtype=np.float64).reshape(len(t), -1)[:, 0],
                color=_colour(hand) if hand in SIDE_COLOURS else grey,
                lw=2,
                label=key.split("_")[0] + (f" ({hand} hand)" if hand in SIDE_COLOURS else ""),
            )
        panel["gripper"].set_ylabel("gripper\nwidth (m)")
        panel["gripper"].legend(loc="upper right", fontsize=8)
    panel["presence"].set_ylabel("presence")
    panel["presence"].set_ylim(-0.05, 1.3)  # room above 1 for the legend
    panel["presence"].set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    panel["presence"].axhline(FOUND_PRESENCE, color="#999999", lw=1, ls=":")
    panel["presence"].legend(loc="upper right", fontsize=8, ncol=4)
    for a in _AXES:
        panel[f"wrist {a}"].set_ylabel(f"wrist {a} (m)")
    panel["speed"].set_ylabel("wrist speed\n(m/s)")
    panel["jitter"].set_ylabel("wrist accel.\n(mm/frame²)")
    _from_zero(panel["speed"], 0.1)
    _from_zero(panel["jitter"], 1.0)
    axes[-1].set_xlabel(time_label)
    frames = record["frames"]
    duration = float(t[-1]) if frames else 0.0
    flags = "; ".join(record["flags"]) or "no flags"
    fig.suptitle(f"{reader.path.name} · episode {i}: {frames} frames, {duration:.2f} s · {flags}")
    return _save(fig, panel, path)


def plot_summary(records: Sequence[dict[str, Any]], path: Path, *, title: str = "") -> PlotFile:
    """Per-episode bars from `episode_quality` records: share found per hand, jitter p90, flags."""
    fig, axes = _figure(SUMMARY_FIGSIZE_IN, 3, sharex=True)
    panel = dict(zip(("found", "jitter", "flags"), axes, strict=True))
    x = np.array([r["episode"] for r in records], dtype=np.float64)
    width = 0.8 / len(HAND_SIDES)
    for k, side in enumerate(HAND_SIDES):
        offset = (k - (len(HAND_SIDES) - 1) / 2) * width
        found = [_get(r, side, "found_share") for r in records]
        jitter = [_get(r, side, "acceleration_p90_mm") for r in records]
        panel["found"].bar(x + offset, found, width, color=_colour(side), label=side)
        panel["jitter"].bar(x + offset, jitter, width, color=_colour(side), label=side)
    panel["flags"].bar(x, [len(r["flags"]) for r in records], 0.6, color="#cc3311")
    for r in records:
        if all(r.get(side) is None for side in HAND_SIDES):
            panel["found"].text(r["episode"], 0.5, "no poses", ha="center", rotation=90, color="#666666")
    panel["found"].set_ylabel("share of frames\nwith the hand")
    panel["found"].set_ylim(0, 1.05)
    panel["found"].legend(loc="lower right", fontsize=8, ncol=2)
    panel["jitter"].set_ylabel("wrist accel. p90\n(mm/frame²)")
    panel["flags"].set_ylabel("flags")
    _from_zero(panel["jitter"], 1.0)
    _from_zero(panel["flags"], 1.0)
    panel["flags"].yaxis.get_major_locator().set_params(integer=True)
    axes[-1].set_xlabel("episode")
    if len(x) <= 40:
        axes[-1].set_xticks(x)
    fig.suptitle(f"{title} · {len(records)} episodes" if title else f"{len(records)} episodes")
    return _save(fig, panel, path)


def _figure(size: tuple[float, float], rows: int, *, sharex: bool) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color="#dddddd", lw=0.8)
        ax.set_axisbelow(True)  # grid behind bars and curves
    return fig, list(axes)


def _save(fig: Any, panels: dict[str, Any], path: Path) -> PlotFile:
    """Write the PNG at `DPI` (no tight bbox: the size stays the figure's) and note the panel boxes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")  # draws the final layout, then the boxes below are its
    height = fig.bbox.height
    boxes = {}
    for name, ax in panels.items():
        b = ax.get_window_extent()
        boxes[name] = (round(b.x0), round(height - b.y1), round(b.x1), round(height - b.y0))
    return PlotFile(path, boxes)


def _from_zero(ax: Any, least_top: float) -> None:
    """Y from 0 without offset notation, so flat (good) values look flat, not like noise around 1.732."""
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    top = max(
        (np.nanmax(np.abs(line.get_ydata())) for line in ax.lines if np.isfinite(line.get_ydata()).any()),
        default=0.0,
    )
    bars = [abs(p.get_height()) for p in ax.patches if np.isfinite(p.get_height())]
    top = max([float(top), *bars, 0.0])
    top = max(least_top, 1.1 * top)
    ax.set_ylim(-0.02 * top, top)  # a little below 0: a line at 0 stays visible


def _presence(
    ax: Any, t: NDArray[np.float64], s: HandSeries, colour: tuple[float, ...], side: str, *, width: float
) -> None:
    """Presence as a line; frames filled across a gap (not observed) shaded in the side's colour."""
    ax.plot(t, s.presence, color=colour, lw=width, drawstyle="steps-mid", label=f"{side} observed")
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    filled = False
    for a, b in gap_runs(~s.filled):  # runs where filled is True
        ax.axvspan(
            t[a] - step / 2,
            t[b - 1] + step / 2,
            color=colour,
            alpha=0.25,
            lw=0,
            label=None if filled else f"{side} filled",
        )
        filled = True


def _speed(t: NDArray[np.float64], wrist: NDArray[np.float64]) -> NDArray[np.float64]:
    """|Δwrist| / Δt in m/s between consecutive frames (NaN where either has no hand)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.linalg.norm(np.diff(wrist, axis=0), axis=-1) / np.diff(t))


def _jitter(t: NDArray[np.float64], s: HandSeries) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`quality.wrist_acceleration` at the middle frame of each run of three found frames, full
    (NaN) on the others so that the line breaks where the hand was not found."""
    values = quality.wrist_acceleration(s.joints, s.found)
    ok = s.found & np.isfinite(s.joints[:, 0]).all(axis=-1)
    middle = ok[:-2] & ok[1:-1] & ok[2:]
    series = np.full(len(middle), np.nan)
    series[middle] = values
    return t[1:-1], series


def _seconds(reader: DatasetReader, i: int) -> tuple[NDArray[np.float64], str]:
    """Seconds from the episode's first frame (`timestamp`), or frame numbers without stamps."""
    start, stop = reader.bounds(i)
    if "timestamp" in reader.keys:
        stamps = np.asarray(reader.episode(i, keys=["timestamp"])["timestamp"], dtype=np.float64)
        if len(stamps) and np.isfinite(stamps).all():
            return stamps - stamps[0], "time since the episode's first frame (s)"
    return np.arange(stop - start, dtype=np.float64), "frame"


def _colour(side: str) -> tuple[float, ...]:
    return tuple(c / 255.0 for c in SIDE_COLOURS[side])


def _get(record: dict[str, Any], side: str, key: str) -> float:
    hand = record.get(side)
    value = None if hand is None else hand.get(key)
    return float("nan") if value is None else float(value)
