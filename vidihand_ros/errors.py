"""Errors that point at the bad input: which file, topic, message and field.

Every error a user can cause by what they feed us is an `InputError`; the CLI prints it as one
line and exits non-zero. Anything else escaping is a bug in vidihand_ros.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class InputError(Exception):
    """Bad input, located as precisely as we know it."""

    message: str
    source: str | Path | None = None
    topic: str | None = None
    index: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.source is not None:
            where.append(str(self.source))
        if self.topic:
            where.append(f"topic {self.topic}")
        if self.index is not None:
            where.append(f"message {self.index}")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class DatasetError(InputError):
    """A dataset on disk that cannot be opened or appended to as asked."""


class EstimatorError(InputError):
    """The estimator failed on (or answered wrongly for) a window; the message names its stamps."""
