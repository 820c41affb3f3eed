"""`vidihand label`: placeholder, being written (issue #18)."""

from __future__ import annotations

import argparse

from vidihand_ros.cli.options import add_command

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_command(subparsers, "label", run=run, help="(being written)")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
