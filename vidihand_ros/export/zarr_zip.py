"""`vidihand export zarr-zip`: the dataset as one `.zarr.zip`, the file UMI's training machines read.

A zarr ZipStore is an uncompressed (ZIP_STORED) archive whose member names are the store's keys
(`data/camera0_rgb/.zarray`, `data/camera0_rgb/0.0.0.0`, ...), so the archive is written here with
`zipfile` and every chunk file of the source directory goes in byte for byte: the JPEG image
chunks keep their codec and quality (no decode / re-encode), and zarr-python 2 and 3 both open the
result with their `ZipStore` (`DatasetReader` reads it through `zarr_compat`).

Only committed rows are exported: every `data/` array gets `meta/episode_ends[-1]` rows, chunks
wholly past them are left out, and a chunk that straddles the end is re-encoded with the rows
past it set to the fill value (they were an interrupted writer's leftovers). A consolidated
`.zmetadata` is not copied (it would describe the old shapes), nor are lock or journal files.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.export.output import check_target, replaced_atomically

__all__ = ["ZipExport", "export_zarr_zip"]

_CHUNK_KEY = re.compile(r"^\d+([./]\d+)*$")


@dataclass(frozen=True)
class ZipExport:
    """What was written: the archive, its episodes, frames, arrays and chunk files."""

    path: Path
    episodes: int
    frames: int
    arrays: int
    chunks: int
    bytes: int

    def summary(self) -> str:
        return (
            f"wrote {self.path}: {self.episodes} episode(s), {self.frames} frames, {self.arrays} arrays, "
            f"{self.chunks} chunks, {self.bytes / 1e6:.1f} MB"
        )


def export_zarr_zip(source: Path, out: Path, *, overwrite: bool = False) -> ZipExport:
    """Copy the committed rows of the dataset at `source` into the zarr ZipStore `out`."""
    if out.suffix != ".zip":
        raise InputError("the output must end in .zip (e.g. dataset.zarr.zip)", source=out)
    reader = DatasetReader(source)  # also finishes a committed annotation first
    if zc.is_zip_store(source) or not (source / ".zgroup").is_file():
        raise DatasetError("only a zarr format 2 directory dataset can be exported to a zip", source=source)
    check_target(source, out, overwrite=overwrite)
    copier = _Copier(source, reader.num_frames)
    with replaced_atomically(out, keep_suffix=True) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            copier.node(source, "", archive)
        # Read back before the rename: a failure here leaves the old output (if any) in place.
        if DatasetReader(tmp).num_frames != reader.num_frames:
            raise DatasetError("the written archive does not read back", source=tmp)
    return ZipExport(
        path=out,
        episodes=reader.num_episodes,
        frames=reader.num_frames,
        arrays=copier.arrays,
        chunks=copier.chunks,
        bytes=out.stat().st_size,
    )


class _Copier:
    """Walks the source store's groups and arrays and writes them into the archive."""

    def __init__(self, root: Path, frames: int) -> None:
        self.root = root
        self.frames = frames
        self.arrays = 0
        self.chunks = 0
        self._group: zc.Group | None = None

    def node(self, directory: Path, key: str, archive: zipfile.ZipFile) -> None:
        """Copy the group or array at `directory` (store key prefix `key`), and a group's children."""
        if (directory / ".zarray").is_file():
            self.array(directory, key, archive)
            return
        for name in (".zgroup", ".zattrs"):
            if (directory / name).is_file():
                archive.write(directory / name, key + name)
        for child in sorted(directory.iterdir()):
            hidden = child.name.startswith(".") or child.is_symlink()
            if not hidden and ((child / ".zgroup").is_file() or (child / ".zarray").is_file()):
                self.node(child, f"{key}{child.name}/", archive)

    def array(self, directory: Path, key: str, archive: zipfile.ZipFile) -> None:
        """Copy one format-2 array: a `data/` array gets the committed rows, others their shape."""
        meta: dict[str, Any] = json.loads((directory / ".zarray").read_text())
        shape = [int(n) for n in meta["shape"]]
        rows: int | None = None
        if shape:
            rows = self.frames if key.startswith("data/") else shape[0]
            shape[0] = rows
        meta["shape"] = shape
        archive.writestr(key + ".zarray", json.dumps(meta, indent=2))
        if (directory / ".zattrs").is_file():
            archive.write(directory / ".zattrs", key + ".zattrs")
        self.arrays += 1
        chunk_rows = int(meta["chunks"][0]) if shape else 1
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
            name = path.relative_to(directory).as_posix()
            if not _CHUNK_KEY.match(name):
                continue  # metadata (written above), partial files of a writer, anything else
            first = int(re.split(r"[./]", name)[0]) * chunk_rows
            if rows is not None and first >= rows:
                continue
            if rows is not None and first + chunk_rows > rows:
                archive.writestr(key + name, self._truncated_chunk(key.rstrip("/"), name, rows - first))
            else:
                archive.write(path, key + name)
            self.chunks += 1

    def _truncated_chunk(self, array_key: str, name: str, keep: int) -> bytes:
        """The chunk `name` with the rows from `keep` on set to the fill value, encoded again."""
        if self._group is None:
            self._group = zc.open_group(self.root, "r")
        array = self._group[array_key]
        chunk = zc.read_chunk(array, [int(i) for i in re.split(r"[./]", name)])
        if chunk is None:
            raise DatasetError(f"chunk {name} disappeared while it was copied", source=self.root / array_key)
        fill = array.fill_value
        chunk[keep:] = 0 if fill is None else np.asarray(fill, dtype=array.dtype)
        return zc.encode_chunk(array, chunk)
