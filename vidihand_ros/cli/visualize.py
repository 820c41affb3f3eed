"""`vidihand visualize`: draw an estimator's hands over one image (the README picture is made so)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidihand_ros.cli.options import add_command, positive

__all__ = ["add_parser", "box", "run"]

EPILOG = """\
examples:
  vidihand visualize photo.jpg -o hands.png
  vidihand visualize selfie.jpg -o hands.png --estimator-option mirrored=true --print
  vidihand visualize photo.jpg -o hands.png --crop 150,300,1050,1300 --max-size 640
"""


def box(text: str) -> tuple[int, int, int, int]:
    """'X0,Y0,X1,Y1' in pixels → a rectangle."""
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1 in pixels, got {text!r}") from None
    return x0, y0, x1, y1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "visualize",
        run=run,
        help="draw an estimator's hands (2D skeletons, left and right) over an image",
        description=(
            "Run an estimator on one JPEG/PNG image and write the picture with each found hand's "
            "skeleton drawn over it, in its side's colour and labelled with its presence."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", type=Path, metavar="IMAGE", help="JPEG or PNG picture")
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG or JPEG to write")
    p.add_argument(
        "--estimator",
        default="mediapipe",
        metavar="NAME",
        help="estimator as in `vidihand convert` (default: %(default)s)",
    )
    p.add_argument(
        "--estimator-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the estimator, e.g. mirrored=true for a selfie camera (repeatable)",
    )
    p.add_argument(
        "--intrinsics",
        metavar="FX,FY,CX,CY|YAML",
        help="camera intrinsics (only for the metric wrist positions of --print)",
    )
    p.add_argument("--crop", type=box, metavar="X0,Y0,X1,Y1", help="keep only this part of the picture")
    p.add_argument(
        "--max-size", type=positive, metavar="PIXELS", help="shrink the picture's longer side to this"
    )
    p.add_argument("--print", action="store_true", help="print what was found per hand")


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.calibration import parse_intrinsics
    from vidihand_ros.estimators import parse_options
    from vidihand_ros.types import HAND_SIDES
    from vidihand_ros.visualize import (
        crop,
        describe_hand,
        draw_hands,
        estimate_image,
        fit_size,
        read_image,
        write_image,
    )

    rgb = read_image(args.image)
    camera = parse_intrinsics(args.intrinsics) if args.intrinsics else None
    poses = estimate_image(rgb, args.estimator, parse_options(args.estimator_option), camera)
    picture = draw_hands(rgb, poses)
    if args.crop:
        picture = crop(picture, args.crop)
    write_image(args.output, fit_size(picture, args.max_size))
    if args.print:
        for side in HAND_SIDES:
            print(describe_hand(side, poses.hand(side)))
    return 0
