"""`vidihand render`: see what a dataset holds, as an mp4, PNG stills or a Rerun recording."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidihand_ros.cli.options import add_command, fraction, frame_range, non_negative_int, positive

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  vidihand render demos.zarr --episode 0 -o episode0.mp4
  vidihand render demos.zarr --episode 2 --frames 100:101 -o still.png
  vidihand render demos.zarr --frames 0:30 -o stills/            (one PNG per frame)
  vidihand render demos.zarr --episode 0 --rerun episode0.rrd    (open with: rerun episode0.rrd)
  vidihand render demos.zarr --episode 0 --spawn                 (stream to a Rerun viewer)
  vidihand render demos.zarr --episode 0 --rerun ep0.rrd --robot-hands --urdf-dir ~/dex-urdf/robots/hands
      (the robot hands vidihand retarget wrote, posed beside the human hands)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "render",
        run=run,
        help="draw the stored hands over the stored frames: mp4, PNG stills or a Rerun recording",
        description=(
            "Draw what a dataset holds (never a new estimate): each frame with both hands' stored "
            "skeletons in their side colours, each hand's state (observed, filled, absent, not "
            "estimated) and presence in a legend, and the frame's stamp. With --mano-dir the stored "
            "MANO parameters are painted as meshes. --rerun/--spawn log frames, 2D keypoints, 3D joints "
            "in the camera frame, the camera from K, wrist paths and per-frame scalars to Rerun."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", type=Path, metavar="DATASET")
    p.add_argument("--episode", type=non_negative_int, metavar="N", help="only this episode (default: all)")
    p.add_argument(
        "--frames", type=frame_range, metavar="A:B", help="only frames A..B-1 of each selected episode"
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="an .mp4 (H.264), a .png (one frame selected) or a folder for one PNG per frame",
    )
    p.add_argument("--rerun", type=Path, metavar="FILE.rrd", help="write a Rerun recording")
    p.add_argument("--spawn", action="store_true", help="open a Rerun viewer on the recording")
    p.add_argument("--max-size", type=positive, metavar="PIXELS", help="shrink pictures' longer side to this")
    p.add_argument(
        "--mano-dir", type=Path, metavar="DIR", help="MANO_RIGHT.pkl and MANO_LEFT.pkl: draw meshes"
    )
    p.add_argument(
        "--robot-hands",
        action="store_true",
        help="with --rerun/--spawn: pose the robot hands of vidihand retarget (their URDF meshes and "
        "link tree) beside the human hands (retarget extra)",
    )
    p.add_argument(
        "--urdf-dir",
        type=Path,
        metavar="DIR",
        help="where the robot models are now (default: where vidihand retarget read them)",
    )
    p.add_argument(
        "--min-presence",
        type=fraction,
        default=0.5,
        metavar="P",
        help="draw a hand only at this presence or more (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.dataset.reader import DatasetReader
    from vidihand_ros.errors import InputError
    from vidihand_ros.render.selection import select_rows

    if args.output is None and args.rerun is None and not args.spawn:
        raise InputError("say what to write: -o out.mp4 | still.png | DIR, --rerun FILE.rrd or --spawn")
    if args.robot_hands and args.rerun is None and not args.spawn:
        raise InputError("the robot hands are drawn in Rerun: add --rerun FILE.rrd or --spawn")
    reader = DatasetReader(args.dataset)
    selection = select_rows(reader, args.episode, args.frames)
    robot_hands = []
    if args.robot_hands:
        from vidihand_ros.render.robot_hands import robot_hands as find_robot_hands

        robot_hands = find_robot_hands(reader, args.urdf_dir)
    if args.output is not None:
        from vidihand_ros.render.outputs import write_pictures

        painter = None
        if args.mano_dir is not None:
            from vidihand_ros.render.mesh import MeshPainter

            painter = MeshPainter(args.mano_dir)
        written = write_pictures(
            reader,
            selection,
            args.output,
            max_size=args.max_size,
            min_presence=args.min_presence,
            painter=painter,
        )
        print(f"wrote {written} frame(s) to {args.output}")
    if args.rerun is not None or args.spawn:
        from vidihand_ros.render.rerun_log import write_rerun

        logged = write_rerun(
            reader,
            selection,
            rrd=args.rerun,
            spawn=args.spawn,
            min_presence=args.min_presence,
            robot_hands=robot_hands,
        )
        print(f"logged {logged} frame(s)" + (f" to {args.rerun}" if args.rerun else " to a Rerun viewer"))
    return 0
