"""`vidihand inspect`: what is in a dataset, at a glance (and as JSON for scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import hand_key
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
        "episodes": episodes,
        "num_frames": reader.num_frames,
        "keys": keys,
        "attrs": reader.attrs,
    }


def _hand_share(reader: DatasetReader, episode: int, side: str) -> float | None:
    """Share of frames where the hand was seen; None when nothing was estimated (frames-only)."""
    valid = hand_key(side, "valid")
    if valid in reader.keys and not reader.episode(episode, keys=[valid])[valid].any():
        return None
    return _round(reader.hand_share(episode, side))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(summary["path"], style="bold")
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


def _fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)
