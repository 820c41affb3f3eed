"""The progress bar of `vidihand convert`: one rich bar per input, on stderr, only on a terminal.

On stderr, not rich's default stdout: stdout carries the result line (`wrote N episode(s) ...`),
which a script may read, and stderr is the stream whose `isatty()` enables the bar. The pipeline
advances it once per frame written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidihand_ros.pipeline import ProgressCallback

__all__ = ["ProgressBar"]


class ProgressBar:
    """A context giving the pipeline's progress callback, or None when quiet / not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None

    def __enter__(self) -> ProgressCallback | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        bar.__enter__()

        def start(description: str, total: int | None) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        return start

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
