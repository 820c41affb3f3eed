"""The `vidihand` command line: one module per command, the options they share in `options`.

Each command module has `add_parser(subparsers)` and a `run(args)` that does its heavy imports
itself, so building the parser (and `vidihand ... --help`) imports no numpy, torch or dataset code.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vidihand_ros import __version__
from vidihand_ros.cli import (
    annotate,
    convert,
    export,
    import_data,
    inspect,
    label,
    model,
    plot,
    render,
    retarget,
    serve,
    train,
    visualize,
)
from vidihand_ros.cli import eval as eval_
from vidihand_ros.cli.options import add_verbosity
from vidihand_ros.cli.running import exit_status, run_command

__all__ = ["build_parser", "main"]

#: In the order `vidihand --help` lists them.
COMMANDS = (
    convert,
    annotate,
    inspect,
    render,
    plot,
    label,
    retarget,
    export,
    eval_,
    import_data,
    model,
    serve,
    train,
    visualize,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidihand",
        description="Egocentric video → two-hand 3D pose (MANO) → robot-learning datasets.",
    )
    parser.add_argument("--version", action="version", version=f"vidihand_ros {__version__}")
    add_verbosity(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`vidihand ARGS`: the exit status (2 for bad arguments or input, with one line on stderr)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error argparse has printed
        return exit_status(done.code)
    return run_command(args)
