"""The estimator options of the commands that run one (`convert`, `annotate`), defined once.

Building them imports nothing heavy: the estimator names for `--help` are read from the registry
only when the help is shown, and the estimator is built by the command's `run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidihand_ros.cli.options import count, positive_number

__all__ = ["EstimatorNames", "add_estimation", "estimator_options"]

#: Command-line flags that are estimator options too (`--mano-dir D` is `--estimator-option mano_dir=D`).
OPTION_FLAGS = ("mano_dir", "checkpoint", "server", "token_file")


class EstimatorNames:
    """The estimator names for `--estimator`'s help, read from the registry only when shown.

    Reading `vidihand_ros.estimators` imports numpy, which `vidihand --help` should not pay for.
    These are argparse `choices` for display only: every value passes here, because
    `create_estimator` checks the name and also takes `package.module:factory`.
    """

    def __init__(self, *, frames_only: bool = True) -> None:
        self.frames_only = frames_only

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str)

    def __iter__(self) -> Iterator[str]:
        from vidihand_ros.estimators import BUILTIN_ESTIMATORS, FRAMES_ONLY

        return iter([*(FRAMES_ONLY if self.frames_only else ()), *BUILTIN_ESTIMATORS])


def add_estimation(est: Any, *, estimator_default: str | None, estimator_help: str) -> None:
    """`--estimator` (with `estimator_default` and `estimator_help`) and every option that goes with it.

    `est` is a parser or an argument group. `estimator_help` may use `%(choices)s` and `%(default)s`.
    """
    est.add_argument(
        "--estimator",
        default=estimator_default,
        choices=EstimatorNames(frames_only=estimator_default is not None),
        metavar="NAME",
        help=estimator_help,
    )
    est.add_argument(
        "--estimator-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the estimator (repeatable)",
    )
    est.add_argument(
        "--checkpoint",
        type=Path,
        help="model checkpoint directory for --estimator vidihand (`vidihand model init`)",
    )
    est.add_argument(
        "--mano-dir",
        type=Path,
        help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl: the estimator fills the MANO keys (same as "
        "--estimator-option mano_dir=...)",
    )
    est.add_argument(
        "--server",
        metavar="URL",
        help="inference server for --estimator remote, e.g. http://gpu-box:8000 (`vidihand serve`; "
        "same as --estimator-option server=...)",
    )
    est.add_argument(
        "--token-file",
        type=Path,
        help="file holding the server's bearer token for --estimator remote (or set VIDIHAND_TOKEN)",
    )
    est.add_argument(
        "--window",
        type=count,
        metavar="N",
        help="frames per window (default: the estimator's own window: 32, stride 16, for MediaPipe; 81 for "
        "the full model)",
    )
    est.add_argument(
        "--stride",
        type=count,
        metavar="N",
        help="frames between window starts (default: the window; smaller overlaps)",
    )
    est.add_argument(
        "--batch-windows",
        type=count,
        default=1,
        metavar="N",
        help="windows sent to the estimator at once",
    )
    est.add_argument(
        "--segment-gap",
        type=positive_number,
        default=0.5,
        metavar="SECONDS",
        help="a stamp jump over this starts a new window",
    )


def estimator_options(args: argparse.Namespace) -> dict[str, str]:
    """The estimator's string options: every `--estimator-option`, then the flags that are options."""
    from vidihand_ros.estimators import parse_options

    options = parse_options(args.estimator_option)
    for flag in OPTION_FLAGS:
        if getattr(args, flag) is not None:
            options[flag] = str(getattr(args, flag))
    return options
