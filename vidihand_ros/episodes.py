"""Cut one recording's frame stream into episodes: at stamp gaps, at clock resets, or to time ranges.

Within an episode header stamps strictly increase (readers compute fps and velocities from them):
a frame with the same stamp as the one before is dropped (a driver that published it twice), a
stamp that goes back ends the episode and starts a new one (a clock reset), and a recording whose
stamps go back more than `MAX_CLOCK_RESETS` times is refused (its stamps mean nothing). `StampLog`
counts each case. Lazily: each episode is itself a stream, so a long recording is never held in
memory; the caller consumes each episode before asking for the next.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from vidihand_ros.errors import InputError
from vidihand_ros.types import Frame

log = logging.getLogger(__name__)

NS = 1_000_000_000
#: More backward stamp jumps than this in one recording: refused rather than cut into shreds.
MAX_CLOCK_RESETS = 10

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


@dataclass
class StampLog:
    """What `split_episodes` did about stamps that do not increase (for records and warnings)."""

    source: str | Path | None = None
    duplicates_dropped: int = 0
    clock_resets: int = 0

    def duplicate(self, frame: Frame) -> None:
        self.duplicates_dropped += 1
        log.warning("%s: message %d repeats the stamp before it; dropped", self.source, frame.index)

    def reset(self, frame: Frame, previous: Frame) -> None:
        self.clock_resets += 1
        if self.clock_resets > MAX_CLOCK_RESETS:
            raise InputError(
                f"header stamps go back more than {MAX_CLOCK_RESETS} times (e.g. {previous.stamp_ns} → "
                f"{frame.stamp_ns} ns): reversed or unset stamps; nothing was written from this recording",
                source=self.source,
                index=frame.index,
                field="header.stamp",
            )
        log.warning(
            "%s: message %d: the stamp goes back (%d → %d ns); a new episode starts",
            self.source,
            frame.index,
            previous.stamp_ns,
            frame.stamp_ns,
        )


def split_episodes(
    frames: Iterable[Frame],
    *,
    split_gap_s: float | None = None,
    time_ranges: list[TimeRange] | None = None,
    stamps: StampLog | None = None,
) -> Iterator[Iterator[Frame]]:
    """Episodes of `frames` with strictly increasing stamps: one per time range (seconds from the
    first frame, [start, end), as `checked_time_ranges` returns them), or a new one at every stamp
    jump over `split_gap_s`, or one for all; a backward jump always starts a new one."""
    stamps = stamps if stamps is not None else StampLog()
    stream = Peekable(_without_repeats(iter(frames), stamps))
    if time_ranges:
        first = stream.peek()
        if first is None:
            return
        origin = first.stamp_ns
        for start_s, end_s in time_ranges:
            start, end = origin + int(start_s * NS), origin + int(end_s * NS)
            while True:
                while (frame := stream.peek()) is not None and frame.stamp_ns < start:
                    next(stream)
                if frame is None or frame.stamp_ns >= end:
                    break
                yield _take_increasing(stream, stamps, end=end)
        return
    gap_ns = int(split_gap_s * NS) if split_gap_s else None
    while stream.peek() is not None:
        yield _take_increasing(stream, stamps, gap_ns=gap_ns)


def _without_repeats(frames: Iterator[Frame], stamps: StampLog) -> Iterator[Frame]:
    previous: int | None = None
    for frame in frames:
        if frame.stamp_ns == previous:
            stamps.duplicate(frame)
            continue
        previous = frame.stamp_ns
        yield frame


def _take_increasing(
    stream: Peekable, stamps: StampLog, *, gap_ns: int | None = None, end: int | None = None
) -> Iterator[Frame]:
    """Frames up to (not including) a backward stamp, a gap over `gap_ns`, or a stamp >= `end`."""
    previous: Frame | None = None
    while (frame := stream.peek()) is not None:
        if end is not None and frame.stamp_ns >= end:
            return
        if previous is not None:
            step = frame.stamp_ns - previous.stamp_ns
            if step < 0:
                stamps.reset(frame, previous)
                return
            if gap_ns is not None and step > gap_ns:
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
