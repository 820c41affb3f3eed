"""The one place that knows whether zarr-python 3 or 2.18 is installed.

Humble's Python 3.10 only has zarr-python 2.18; newer Pythons get zarr-python 3. Both write the same
on-disk format (zarr format 2, which diffusion_policy and UMI read), so the dataset code calls these
functions and never the zarr API directly.

Chunks that we already hold encoded (a source JPEG, the next `episode_ends` chunk) are written as
files under the array's directory: a format-2 chunk on a local directory store *is* the file
`<array path>/<i>.<j>...`, and zarr-python 3's async store costs ~1 ms per call where a plain file
write costs ~20 µs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numcodecs
import numpy as np
import zarr
from imagecodecs import numcodecs as image_numcodecs
from numcodecs.abc import Codec
from zarr.storage import ZipStore

ZARR_VERSION: str = zarr.__version__
ZARR_MAJOR = int(ZARR_VERSION.split(".")[0])

#: zarr-python's group and array types differ between versions; the adapter hands them out opaquely.
Group = Any
Array = Any

#: Keyword arguments the Jpeg codec vendored by diffusion_policy/UMI
#: (`diffusion_policy.codecs.imagecodecs_numcodecs.Jpeg`) accepts.
_PORTABLE_JPEG_KEYS = (
    "level",
    "bitspersample",
    "tables",
    "header",
    "colorspace_data",
    "colorspace_jpeg",
    "subsampling",
    "optimize",
    "smoothing",
)

_registered = False


class PortableJpeg(image_numcodecs.Jpeg):
    """imagecodecs' JPEG codec whose stored config older readers can parse.

    Recent imagecodecs writes `lossless`, `predictor` and `squeeze` into `.zarray`; the copy of
    the codec that diffusion_policy and UMI register under the same id rejects those keywords, so
    their training code could not open our image arrays. Encoding and decoding are unchanged.
    """

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        return {"id": config["id"], **{k: config.get(k) for k in _PORTABLE_JPEG_KEYS}}


def register_codecs() -> None:
    """Make imagecodecs' codecs known to numcodecs (once), with our portable JPEG config."""
    global _registered
    if _registered:
        return
    image_numcodecs.register_codecs(verbose=False)
    # Arrays reopened in this process get their codec from the registry; registering the portable
    # subclass keeps rewritten metadata (after a resize) portable too.
    numcodecs.register_codec(PortableJpeg)
    _registered = True


def jpeg_codec(level: int) -> Codec:
    return PortableJpeg(level=level)


def is_group_dir(path: Path) -> bool:
    """True for a directory holding a zarr group (format 2 or 3) at its root."""
    return (path / ".zgroup").is_file() or (path / "zarr.json").is_file()


def is_zip_store(path: Path) -> bool:
    return path.suffix == ".zip" and path.is_file()


def open_group(path: Path, mode: Literal["r", "r+", "a"]) -> Group:
    """Open the root group of a local directory ("a" creates a format-2 group if there is none).

    A `.zip` file (zarr ZipStore, as UMI's `dataset.zarr.zip`) opens read-only.
    """
    register_codecs()
    if is_zip_store(path):
        if mode != "r":
            raise ValueError("zip datasets open read-only")
        return zarr.open_group(store=ZipStore(str(path), mode="r"), mode="r")
    if ZARR_MAJOR >= 3 and mode == "a":
        return zarr.open_group(store=str(path), mode="a", zarr_format=2)
    return zarr.open_group(store=str(path), mode=mode)


def zarr_format(group: Group) -> int:
    if ZARR_MAJOR >= 3:
        return int(group.metadata.zarr_format)
    return 2


def require_group(group: Group, name: str) -> Group:
    return group.require_group(name)


def create_array(
    group: Group,
    name: str,
    *,
    shape: Sequence[int],
    chunks: Sequence[int],
    dtype: Any,
    compressor: Codec | None,
    fill_value: Any,
    attrs: Mapping[str, Any] | None = None,
) -> Array:
    """Create a format-2 array in `group` (no filters, C order)."""
    if ZARR_MAJOR >= 3:
        array = group.create_array(
            name,
            shape=tuple(shape),
            chunks=tuple(chunks),
            dtype=np.dtype(dtype),
            filters=None,
            compressors=compressor,
            fill_value=fill_value,
            attributes=dict(attrs or {}),
        )
    else:
        array = group.create_dataset(
            name,
            shape=tuple(shape),
            chunks=tuple(chunks),
            dtype=np.dtype(dtype),
            compressor=compressor,
            fill_value=fill_value,
        )
        if attrs:
            array.attrs.update(dict(attrs))
    return array


def compressor_of(array: Array) -> Codec | None:
    if ZARR_MAJOR >= 3:
        return array.metadata.compressor
    return array.compressor


def resize(array: Array, shape: Sequence[int]) -> None:
    """Set the array's shape; chunks wholly outside a smaller shape are deleted."""
    if ZARR_MAJOR >= 3:
        array.resize(tuple(shape))
    else:
        array.resize(*shape)


def write_rows(array: Array, start: int, values: np.ndarray) -> None:
    """array[start:start + len(values)] = values, in one call."""
    array[start : start + len(values)] = values


def get_attrs(node: Group | Array) -> dict[str, Any]:
    return dict(node.attrs.asdict())


def update_attrs(node: Group | Array, attrs: Mapping[str, Any]) -> None:
    """Merge `attrs` into the node's attributes (one atomic metadata write in both versions)."""
    node.attrs.update(dict(attrs))


def _array_dir(array: Array) -> Path:
    store = array.store_path.store if ZARR_MAJOR >= 3 else array.store
    root = getattr(store, "root", None) if ZARR_MAJOR >= 3 else getattr(store, "path", None)
    if root is None:
        raise TypeError(f"direct chunk access needs a local directory store, not {type(store).__name__}")
    return Path(root) / array.path


def _separator(array: Array) -> str:
    sep = array.metadata.dimension_separator if ZARR_MAJOR >= 3 else array._dimension_separator
    return sep or "."


def chunk_file(array: Array, index: Sequence[int]) -> Path:
    """Path of the format-2 chunk file for chunk grid position `index`."""
    return _array_dir(array) / _separator(array).join(str(i) for i in index)


def chunk_writer(array: Array) -> Callable[[Sequence[int], bytes], None]:
    """A fast `write_chunk_bytes` bound to one array (its directory is looked up once)."""
    directory = str(_array_dir(array))
    sep = _separator(array)

    def write(index: Sequence[int], data: bytes) -> None:
        with open(os.path.join(directory, sep.join(map(str, index))), "wb") as f:
            f.write(data)

    return write


def write_chunk_bytes(array: Array, index: Sequence[int], data: bytes, *, atomic: bool = False) -> None:
    """Store already-encoded bytes as the chunk at grid position `index`.

    The chunk may lie beyond the array's current shape (it becomes visible on the next resize).
    `atomic` writes a temporary file and renames it, for chunks that hold committed data.
    """
    if not atomic:
        chunk_writer(array)(index, data)
        return
    path = chunk_file(array, index)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def encode_chunk(array: Array, chunk: np.ndarray) -> bytes:
    """Encode a full chunk of `array` the way zarr would (C order, array dtype, its compressor)."""
    raw = np.ascontiguousarray(chunk, dtype=array.dtype)
    compressor = compressor_of(array)
    return raw.tobytes() if compressor is None else bytes(compressor.encode(raw))


def read_chunk(array: Array, index: Sequence[int]) -> np.ndarray | None:
    """Decode the chunk file at `index` (also beyond the shape); None where no file exists."""
    path = chunk_file(array, index)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    compressor = compressor_of(array)
    buf = raw if compressor is None else compressor.decode(raw)
    return np.frombuffer(buf, dtype=array.dtype).reshape(array.chunks).copy()


def write_rows_direct(array: Array, start: int, values: np.ndarray, committed: int) -> None:
    """array[start:start + len(values)] = values, written as chunk files without touching the shape.

    The rows stay invisible until the array is resized over them, so data can be written ahead of a
    commit while the array keeps the committed length (diffusion_policy checks that every array is
    exactly `episode_ends[-1]` long). A chunk that also holds rows below `committed` is replaced
    atomically; rows before `start` in a chunk are kept, rows after the written ones are filled.
    """
    rows = int(array.chunks[0])
    stop = start + len(values)
    tail = (0,) * (len(array.shape) - 1)
    fill = array.fill_value
    for k in range(start // rows, (stop - 1) // rows + 1):
        first = k * rows
        lo, hi = max(start, first), min(stop, first + rows)
        chunk = read_chunk(array, (k, *tail)) if lo > first else None
        if chunk is None:
            chunk = np.full(array.chunks, fill, dtype=array.dtype)
        chunk[lo - first : hi - first] = values[lo - start : hi - start]
        write_chunk_bytes(array, (k, *tail), encode_chunk(array, chunk), atomic=first < committed)


def remove_chunks_from(array: Array, start: int) -> int:
    """Delete chunk files whose first grid index (a chunk index, not a row) is >= `start`.

    An interrupted writer can leave such files behind; zarr's own resize only deletes chunks
    inside the old shape. A symbolic link there goes too (a later chunk write would follow it).
    Returns the number of files removed.
    """
    sep = _separator(array)
    removed = 0
    with os.scandir(_array_dir(array)) as entries:
        for entry in entries:
            head = entry.name.split(sep, 1)[0]
            if head.isdigit() and int(head) >= start and (entry.is_symlink() or entry.is_file()):
                os.unlink(entry.path)
                removed += 1
    return removed
