"""Options and value parsers shared by the commands, defined once.

Value parsers raise `argparse.ArgumentTypeError`, so a bad value is reported by argparse as one
usage line naming the option (`argument --image-size: ...`) before any work starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "COMMON",
    "add_command",
    "add_verbosity",
    "count",
    "finite",
    "fraction",
    "frame_range",
    "image_size",
    "jpeg_quality",
    "non_negative_int",
    "positive",
    "positive_number",
    "time_range",
    "whole_number",
]

Run = Callable[[argparse.Namespace], int]


def add_verbosity(parser: argparse.ArgumentParser, *, default: Any = False) -> None:
    """-v/--verbose and -q/--quiet (one or the other)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", default=default, help="log what is happening")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress bar (warnings and errors are still shown)",
    )


def _common() -> argparse.ArgumentParser:
    # SUPPRESS: a sub-command that is not given -v must not overwrite `vidihand -v COMMAND`'s value.
    parser = argparse.ArgumentParser(add_help=False)
    add_verbosity(parser, default=argparse.SUPPRESS)
    return parser


#: The parent parser of every (sub-)command, so that `vidihand convert ... -q` works.
COMMON = _common()


def add_command(
    subparsers: argparse._SubParsersAction, name: str, *, run: Run | None = None, **kwargs: Any
) -> argparse.ArgumentParser:
    """A sub-command with the common options; `run(args)` is what `vidihand NAME` calls."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, parents=[COMMON], **kwargs)
    if run is not None:
        parser.set_defaults(run=run)
    return parser


#: Frames per window, window stride, windows per batch: more is a typo, and would buffer frames
#: without bound.
MAX_COUNT = 100_000
#: Larger image sides are a typo (and a huge allocation per frame).
MAX_IMAGE_SIDE = 16384


def positive(text: str) -> int:
    """An integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count(text: str) -> int:
    """A count of frames or windows: 1 to MAX_COUNT."""
    return whole_number(text, 1, MAX_COUNT)


def non_negative_int(text: str) -> int:
    """0 or more (seeds, warm-up steps), within 32 bits."""
    return whole_number(text, 0, 2**32 - 1)


def whole_number(text: str, low: int, high: int) -> int:
    """An integer in [low, high]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    if value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
    return value


def jpeg_quality(text: str) -> int:
    """A JPEG quality, 1 (smallest) to 100 (best)."""
    return whole_number(text, 1, 100)


def finite(text: str) -> float:
    """A finite number: NaN and infinities are refused here, before they reach any arithmetic."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text[:40]!r}")
    return value


def positive_number(text: str) -> float:
    """A finite number above 0 (durations in seconds, frame rates)."""
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text[:40]!r}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (thresholds on presence / confidence)."""
    value = finite(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text[:40]!r}")
    return value


def image_size(text: str) -> tuple[int, int]:
    """'WxH' in pixels → (width, height)."""
    w, sep, h = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 224x224, got {text[:40]!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    if max(size) > MAX_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be at most {MAX_IMAGE_SIDE}")
    return size


def frame_range(text: str) -> tuple[int, int | None]:
    """'A:B' frame indices (B excluded; 'A:' to the end; 'A' alone is that one frame) → (A, B)."""
    start, sep, end = text.partition(":")
    try:
        a = int(start) if start.strip() else 0
        b = (int(end) if end.strip() else None) if sep else a + 1
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected A:B frame indices, e.g. 0:90, got {text[:40]!r}"
        ) from None
    if a < 0 or (b is not None and b <= a):
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 ≤ A < B")
    return a, b


def time_range(text: str) -> tuple[float, float]:
    """'START:END' in seconds → (start, end): finite, START ≥ 0, END after START."""
    start, sep, end = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START:END in seconds, e.g. 2.5:10, got {text[:40]!r}")
    try:
        lo, hi = finite(start), finite(end)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected START:END in finite seconds, e.g. 2.5:10, got {text[:40]!r}"
        ) from None
    if lo < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: START must be at least 0 (seconds after the first frame)"
        )
    if hi <= lo:
        raise argparse.ArgumentTypeError(f"{text!r}: END must be after START")
    return lo, hi
