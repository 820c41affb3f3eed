"""`vidihand import`: a public hand dataset's ground truth (ARCTIC, HOT3D, EgoDex, HOI4D) as a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidihand_ros.cli.options import add_command, image_size

__all__ = ["IMPORT_KINDS", "add_parser", "run"]

#: `training_data.LOADERS`' keys, written out so that building the parser imports no loader
#: (a test keeps the two equal).
IMPORT_KINDS: tuple[str, ...] = ("arctic", "egodex", "hoi4d", "hot3d")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "import",
        run=run,
        help="import a public hand dataset's ground truth (ARCTIC, HOT3D, EgoDex, HOI4D) as a dataset",
        description=(
            "Read sequences of a public dataset in its published on-disk layout (see README, 'Training "
            "and evaluation data') and write frames and ground-truth poses, one episode per sequence, "
            "in the same Zarr layout `convert` writes; `vidihand eval PRED GT` compares against it."
        ),
    )
    p.add_argument("kind", choices=IMPORT_KINDS, metavar="KIND", help=f"one of {', '.join(IMPORT_KINDS)}")
    p.add_argument("root", type=Path, metavar="ROOT", help="the dataset's root folder")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DATASET")
    p.add_argument("--sequence", action="append", metavar="NAME", help="only this sequence (repeatable)")
    p.add_argument("--camera", help="camera/view to read (ARCTIC view index, HOT3D stream id)")
    p.add_argument(
        "--mano-dir",
        type=Path,
        help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (needed for some conversions)",
    )
    p.add_argument(
        "--image-size",
        type=image_size,
        metavar="WxH",
        help="resize frames (needed when sequences differ in size)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true")
    mode.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.training_data import import_main

    camera: str | int | None = args.camera
    if isinstance(camera, str) and camera.isdigit():
        camera = int(camera)
    episodes = import_main(
        args.kind,
        args.root,
        args.output,
        args.sequence,
        camera=camera,
        mano_dir=args.mano_dir,
        image_size=args.image_size,
        mode="a" if args.append else "w",
        overwrite=args.overwrite,
    )
    print(f"wrote {len(episodes)} episode(s) of {args.kind} ground truth to {args.output}")
    return 0
