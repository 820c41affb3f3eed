"""`vidihand inspect`: what is in a dataset, at a glance (and as JSON for scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidihand_ros.dataset.reader import HONEST_VALID_LAYOUT, DatasetReader
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.episode_quality import episode_quality
from vidihand_ros.types import HAND_SIDES


def summarise(path: Path) -> dict[str, Any]:
    reader = DatasetReader(path)
    episodes = []
    start = 0
    for i, end in enumerate(reader.episode_ends):
        attrs = reader.episode_attrs(i)
        source = attrs.get("source", {}) if isinstance(attrs, dict) else {}
        episodes.append(
            {
                "episode": i,
                "frames": int(end - start),
                "fps": _round(reader.fps(i)),
                **{f"{side}_hand_share": _hand_share(reader, i, side) for side in HAND_SIDES},
                "source": source.get("path", "") if isinstance(source, dict) else str(source),
            }
        )
        start = int(end)
    keys = {}
    for key in reader.keys:
        array = reader.array(key)
        keys[key] = {"shape": [reader.num_frames, *array.shape[1:]], "dtype": str(array.dtype)}
    return {
        "path": str(path),
        "layout_version": reader.layout_version,
        "episodes": episodes,
        "num_frames": reader.num_frames,
        "keys": keys,
        "attrs": reader.attrs,
        "quality": [episode_quality(reader, i) for i in range(reader.num_episodes)],
    }


def _hand_share(reader: DatasetReader, episode: int, side: str) -> float | None:
    """Share of frames with a valid, present hand; None when the episode has no poses (frames-only).

    The episode's record says whether it has poses; when it does not say (other tools), an
    episode without any valid row counts as having none.
    """
    valid = hand_key(side, "valid")
    if valid not in reader.keys:
        return None
    has_poses = reader.has_poses(episode)
    if has_poses is None:
        has_poses = bool(reader.episode(episode, keys=[valid])[valid].any())
    return _round(reader.hand_share(episode, side)) if has_poses else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(summary["path"], style="bold")
    console.print(_layout_line(summary.get("layout_version")))
    episodes = Table(title=f"{len(summary['episodes'])} episodes, {summary['num_frames']} frames")
    for column in ("episode", "frames", "fps", "left hand", "right hand", "source"):
        episodes.add_column(column, justify="left" if column == "source" else "right")
    for e in summary["episodes"]:
        episodes.add_row(
            str(e["episode"]),
            str(e["frames"]),
            _fmt(e["fps"], "{:.2f}"),
            _fmt(e["left_hand_share"], "{:.0%}"),
            _fmt(e["right_hand_share"], "{:.0%}"),
            e["source"],
        )
    console.print(episodes)
    keys = Table(title="data/ keys")
    keys.add_column("key")
    keys.add_column("shape", justify="right")
    keys.add_column("dtype")
    for key, info in summary["keys"].items():
        keys.add_row(key, " × ".join(map(str, info["shape"])), info["dtype"])
    console.print(keys)
    if "quality" in summary:
        print_quality(console, summary["quality"])


#: The quality table's columns, short so that it fits 80 columns (docs/quality.md says what each
#: means); the flags follow the table, one line each.
_QUALITY_COLUMNS = (
    "ep",
    "hand",
    "found",
    "gaps",
    "max\ngap",
    "filled",
    "acc\nmed",
    "acc\np90",
    "Δz\nsteps",
    "Δz\nmax",
    "jumps",
    "flips",
)
_QUALITY_CAPTION = (
    "gaps in frames; acc: wrist acceleration, mm/frame²; Δz steps: depth changes over 50 mm in "
    "one frame, Δz max in mm; jumps: of those, unexplained by the 2D size; flips: side swaps"
)


def print_quality(console: Any, quality: list[dict[str, Any]]) -> None:
    """The quality table, then one line per flag (`episode N: reason`)."""
    from rich import box
    from rich.table import Table

    table = Table(
        title="quality",
        caption=_QUALITY_CAPTION,
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
    )
    for column in _QUALITY_COLUMNS:
        table.add_column(column, justify="left" if column == "hand" else "right")
    for q in quality:
        hands = [(side, q[side]) for side in HAND_SIDES if q.get(side) is not None]
        if not hands:
            table.add_row(
                str(q["episode"]), "no poses", *["–"] * (len(_QUALITY_COLUMNS) - 2), end_section=True
            )
        for k, (side, h) in enumerate(hands):
            table.add_row(
                str(q["episode"]) if k == 0 else "",
                side,
                _fmt(h["found_share"], "{:.0%}"),
                str(h["gaps"]),
                str(h["longest_gap"]),
                str(h["filled_frames"]),
                _fmt(h["acceleration_median_mm"], "{:.1f}"),
                _fmt(h["acceleration_p90_mm"], "{:.1f}"),
                str(h["depth_steps"]),
                _fmt(h["depth_step_max_mm"], "{:.0f}"),
                str(h["unexplained_depth_jumps"]),
                _fmt(q["side_flips"], "{}") if k == 0 else "",
                end_section=k == len(hands) - 1,
            )
    console.print(table)
    flagged = [(q["episode"], flag) for q in quality for flag in q["flags"]]
    for episode, flag in flagged:
        console.print(f"episode {episode}: {flag}", style="yellow", highlight=False)
    if not flagged:
        console.print("no episode flagged")


def _layout_line(version: int | None) -> str:
    """The layout version, and how an older one's masks are read (docs/dataset.md)."""
    if version is None:
        return "layout: not written by vidihand_ros (hand_valid, if any, narrowed to finite poses)"
    if version < HONEST_VALID_LAYOUT:
        return f"layout version {version} (hand_valid narrowed to finite poses on read; append refused)"
    return f"layout version {version}"


def _fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)
