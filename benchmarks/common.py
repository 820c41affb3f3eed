"""What every CPU benchmark here shares."""

from __future__ import annotations

import os
from typing import NamedTuple


def pin_to_one_core() -> str:
    """Run this process on one core, as the targets are stated per core; says which."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "unpinned"


class Row(NamedTuple):
    """One line of a benchmark's table: what was measured, its value and unit, and a note."""

    name: str
    value: str
    unit: str
    note: str = ""


def print_rows(rows: list[Row]) -> None:
    """The rows as a Markdown table, columns as wide as their widest cell."""
    name_w = max(len("row"), *(len(r.name) for r in rows))
    value_w = max(len("value"), *(len(r.value) for r in rows))
    unit_w = max(len("unit"), *(len(r.unit) for r in rows))
    print(f"| {'row':<{name_w}} | {'value':>{value_w}} | {'unit':<{unit_w}} | note")
    print(f"|{'-' * (name_w + 2)}|{'-' * (value_w + 2)}|{'-' * (unit_w + 2)}|------")
    for row in rows:
        print(f"| {row.name:<{name_w}} | {row.value:>{value_w}} | {row.unit:<{unit_w}} | {row.note}")
