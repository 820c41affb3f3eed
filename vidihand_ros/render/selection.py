"""Which stored rows a picture shows: `--episode N` and `--frames A:B`, the same for every view."""

from __future__ import annotations

from dataclasses import dataclass

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.errors import InputError

__all__ = ["EpisodeRows", "select_rows"]


@dataclass(frozen=True)
class EpisodeRows:
    """Rows `start:stop` (dataset-wide) of episode `episode`, whose first row is `first`."""

    episode: int
    first: int
    start: int
    stop: int

    @property
    def frames(self) -> range:
        """The selected frames' indices within the episode."""
        return range(self.start - self.first, self.stop - self.first)


def select_rows(
    reader: DatasetReader, episode: int | None, frames: tuple[int, int | None] | None
) -> list[EpisodeRows]:
    """The rows of `episode` (all episodes when None), cut to `frames` (A:B within each episode).

    An episode past the last, or a range that selects nothing, is an `InputError` naming it.
    """
    count = reader.num_episodes
    if count == 0:
        raise InputError(f"{reader.path}: the dataset has no episodes")
    if episode is not None and not 0 <= episode < count:
        raise InputError(f"{reader.path}: no episode {episode} (the dataset has {count}: 0–{count - 1})")
    selected = []
    for i in [episode] if episode is not None else range(count):
        first, end = reader.bounds(i)
        a, b = frames if frames is not None else (0, None)
        start, stop = first + a, end if b is None else min(end, first + b)
        if start < stop:
            selected.append(EpisodeRows(i, first, start, stop))
    if not selected:
        where = f"episode {episode}" if episode is not None else "any episode"
        a, b = frames if frames is not None else (0, None)
        raise InputError(f"{reader.path}: --frames {a}:{'' if b is None else b} selects no frame of {where}")
    return selected
