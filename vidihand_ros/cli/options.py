"""Options and value parsers shared by the commands, defined once.

Value parsers raise `argparse.ArgumentTypeError`, so a bad value is reported by argparse as one
usage line naming the option (`argument --image-size: ...`) before any work starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["COMMON", "add_command", "add_verbosity", "image_size", "positive", "time_range"]

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


def positive(text: str) -> int:
    """An integer of at least 1 (window lengths, strides, batch sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def image_size(text: str) -> tuple[int, int]:
    """'WxH' in pixels → (width, height)."""
    w, sep, h = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 224x224, got {text!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    return size


def time_range(text: str) -> tuple[float, float]:
    """'START:END' in seconds → (start, end), END after START."""
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        lo, hi = float(start), float(end)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START:END in seconds, e.g. 2.5:10, got {text!r}"
        ) from None
    if hi <= lo:
        raise argparse.ArgumentTypeError(f"{text!r}: END must be after START")
    return lo, hi
