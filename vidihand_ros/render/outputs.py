"""Where `vidihand render -o` puts the drawn frames: an mp4, one PNG, or a folder of PNGs.

The mp4 is written beside its final name and renamed when complete, so an interrupted render
never leaves a truncated video under the name asked for (nor replaces an earlier one).
"""

from __future__ import annotations

from pathlib import Path

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.errors import InputError
from vidihand_ros.render.frames import drawn_frames
from vidihand_ros.render.mesh import MeshPainter
from vidihand_ros.render.selection import EpisodeRows
from vidihand_ros.render.stored_hands import MIN_PRESENCE
from vidihand_ros.render.video import Mp4Writer
from vidihand_ros.visualize import write_image

__all__ = ["still_name", "write_pictures"]

STILL_SUFFIXES = (".png", ".jpg", ".jpeg")


def still_name(episode: int, frame: int) -> str:
    """The PNG name of one frame in an output folder: `ep000_frame00012.png`."""
    return f"ep{episode:03d}_frame{frame:05d}.png"


def write_pictures(
    reader: DatasetReader,
    selection: list[EpisodeRows],
    output: Path,
    *,
    max_size: int | None = None,
    min_presence: float = MIN_PRESENCE,
    painter: MeshPainter | None = None,
) -> int:
    """Draw the selected rows into `output` (by its suffix); returns the frames written."""
    frames = drawn_frames(reader, selection, max_size=max_size, min_presence=min_presence, painter=painter)
    suffix = output.suffix.lower()
    if suffix == ".mp4":
        partial = output.with_name(f".{output.name}.partial.mp4")
        try:
            with Mp4Writer(partial, reader.fps(selection[0].episode)) as video:
                for drawn in frames:
                    video.write(drawn.rgb)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
        return video.frames
    if suffix in STILL_SUFFIXES:
        count = sum(rows.stop - rows.start for rows in selection)
        if count != 1:
            raise InputError(
                f"{output}: one picture holds one frame, {count} are selected "
                "(use --episode N --frames A:A+1, or give a folder for one PNG per frame)"
            )
        write_image(output, next(frames).rgb)
        return 1
    if output.exists() and not output.is_dir():
        raise InputError("not a folder, .mp4 or .png", source=output)
    output.mkdir(parents=True, exist_ok=True)
    written = 0
    for drawn in frames:
        write_image(output / still_name(drawn.episode, drawn.frame), drawn.rgb)
        written += 1
    return written
