"""Cut one recording's frame stream into episodes: at stamp gaps, at clock resets, or to time ranges.

Lazily: each episode is itself a stream, so a long recording is never held in memory; the caller
consumes each episode before asking for the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import pairwise

from vidihand_ros.errors import InputError
from vidihand_ros.types import Frame

NS = 1_000_000_000

TimeRange = tuple[float, float]


def checked_time_ranges(ranges: Iterable[TimeRange] | None) -> list[TimeRange] | None:
    """Ranges sorted by start; overlapping ones are refused (a frame belongs to one episode)."""
    if not ranges:
        return None
    ordered = sorted(ranges)
    for start, end in ordered:
        if end <= start:
            raise InputError(f"--time-range {start}:{end}: END must be after START")
    for (a_start, a_end), (b_start, b_end) in pairwise(ordered):
        if b_start < a_end:
            raise InputError(f"--time-range {a_start}:{a_end} and {b_start}:{b_end} overlap")
    return ordered


def split_episodes(
    frames: Iterable[Frame],
    *,
    split_gap_s: float | None = None,
    time_ranges: list[TimeRange] | None = None,
) -> Iterator[Iterator[Frame]]:
    """Episodes of `frames`: one per time range (seconds from the first frame, [start, end); as
    `checked_time_ranges` returns them), or a new one at every stamp jump over `split_gap_s` and
    every backward jump, or one for all."""
    stream = Peekable(iter(frames))
    if time_ranges:
        first = stream.peek()
        if first is None:
            return
        origin = first.stamp_ns
        for start_s, end_s in time_ranges:
            yield _take_range(stream, origin + int(start_s * NS), origin + int(end_s * NS))
        return
    gap_ns = int(split_gap_s * NS) if split_gap_s else None
    while stream.peek() is not None:
        yield _take_until_gap(stream, gap_ns)


def _take_range(stream: Peekable, start: int, end: int) -> Iterator[Frame]:
    while (frame := stream.peek()) is not None and frame.stamp_ns < end:
        next(stream)
        if frame.stamp_ns >= start:
            yield frame


def _take_until_gap(stream: Peekable, gap_ns: int | None) -> Iterator[Frame]:
    previous: Frame | None = None
    while (frame := stream.peek()) is not None:
        if previous is not None and gap_ns is not None:
            step = frame.stamp_ns - previous.stamp_ns
            if step > gap_ns or step < 0:  # a gap, or the clock jumped back: a new episode
                return
        next(stream)
        previous = frame
        yield frame


class Peekable(Iterator[Frame]):
    """An iterator with one frame of look-ahead (episode boundaries need to see the next stamp)."""

    def __init__(self, it: Iterator[Frame]) -> None:
        self._it = it
        self._head: Frame | None = None
        self._done = False

    def peek(self) -> Frame | None:
        if self._head is None and not self._done:
            try:
                self._head = next(self._it)
            except StopIteration:
                self._done = True
        return self._head

    def __next__(self) -> Frame:
        head = self.peek()
        if head is None:
            raise StopIteration
        self._head = None
        return head
