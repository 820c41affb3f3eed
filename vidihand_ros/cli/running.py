"""Running a parsed command: logging as -v asks, and a user's mistake as one line, not a traceback.

Native libraries' routine log lines (MediaPipe's absl/TFLite INFO and WARNING, written straight to
fd 2) are hidden unless -v is given: see `vidihand_ros.native_stderr`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import AbstractContextManager, nullcontext

from vidihand_ros.errors import InputError
from vidihand_ros.native_stderr import native_stderr_filtered

__all__ = ["exit_status", "run_command"]


def run_command(args: argparse.Namespace) -> int:
    """Call the command's `run`; an `InputError` becomes `vidihand COMMAND: error: ...` and status 2."""
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    try:
        with native_output(verbose=args.verbose):
            status: int = args.run(args)
        return status
    except InputError as err:
        print(f"vidihand {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidihand {args.command}: interrupted; committed episodes are intact", file=sys.stderr)
        return 130


def native_output(*, verbose: bool) -> AbstractContextManager[object]:
    """Native log lines as they come with -v; else filtered (any command may load native estimators)."""
    return nullcontext() if verbose else native_stderr_filtered()


def exit_status(code: object) -> int:
    """The status of a `SystemExit` (argparse's after --help, --version or a usage error)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1
