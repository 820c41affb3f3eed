"""MANO model files: a safe loader for the real pickles, and a finder.

The MANO files are licensed, so users bring their own `MANO_RIGHT.pkl` / `MANO_LEFT.pkl`. Those
files were pickled under Python 2 with chumpy: `shapedirs` is a `chumpy.reordering.Select` over a
`chumpy.ch.Ch`, `J_regressor` a `scipy.sparse.csc.csc_matrix`. chumpy does not install on current
Python/numpy, and unpickling runs whatever a file names, so `load_mano_file` uses a restricted
unpickler: numpy arrays, a few builtins, chumpy and scipy-sparse *state* captured by inert stand-ins
(evaluated here with numpy), and nothing else. No torch, no chumpy, no scipy import.

Tests and benchmarks write files in the same format with `vidihand_ros.testing.synthetic_mano`.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.types import NUM_BETAS


def left_shapedirs_need_fix(left: np.ndarray, right: np.ndarray) -> bool:
    """The left file repeats the right file's x shape column instead of negating it (issue 48)."""
    return bool(np.sum(np.abs(left[:, 0, :NUM_BETAS] - right[:, 0, :NUM_BETAS])) < 1.0)


NUM_VERTICES = 778
NUM_FACES = 1538
#: Joints produced by the MANO layer (wrist + 3 per finger, MANO's own finger order).
NUM_LAYER_JOINTS = 16
NUM_POSE_BLEND = 9 * (NUM_LAYER_JOINTS - 1)
#: Vertices used as fingertips, thumb → pinky (appended to the 16 layer joints as joints 16..20).
FINGERTIP_VERTICES = (744, 320, 443, 554, 671)
#: Index into [16 layer joints + 5 fingertips] giving the usual 21-joint order
#: (wrist, then thumb → pinky, each base → tip).
JOINT_ORDER = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
#: Parent of each layer joint (MANO order: wrist, index, middle, pinky, ring, thumb).
LAYER_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
FILE_NAMES = {"right": "MANO_RIGHT.pkl", "left": "MANO_LEFT.pkl"}

#: Keys smplx reads from a MANO file, with their shapes (`shapedirs` may hold more than 10 columns).
REQUIRED_SHAPES: dict[str, tuple[int, ...]] = {
    "v_template": (NUM_VERTICES, 3),
    "f": (NUM_FACES, 3),
    "J_regressor": (NUM_LAYER_JOINTS, NUM_VERTICES),
    "kintree_table": (2, NUM_LAYER_JOINTS),
    "weights": (NUM_VERTICES, NUM_LAYER_JOINTS),
    "posedirs": (NUM_VERTICES, 3, NUM_POSE_BLEND),
    "shapedirs": (NUM_VERTICES, 3, -1),
    "hands_components": (45, 45),
    "hands_mean": (45,),
}
MAX_FILE_BYTES = 64 * 1024 * 1024

MANOData = dict[str, Any]


class UnsafePickleError(pickle.UnpicklingError):
    """A global that `restricted_unpickle` refuses to resolve (it would let a data file run code)."""


class _StateCapture:
    """Inert stand-in for a foreign class: keeps the pickled state, runs no foreign code."""

    kind: ClassVar[str] = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyNode(_StateCapture):
    """A chumpy object (`Ch` holds its array in state['x']; `Select` indexes another node)."""


class _SparseNode(_StateCapture):
    """A scipy CSC/CSR matrix; densified with numpy so that loading never imports scipy."""


def _capture(base: type[_StateCapture], module: str, name: str) -> type[_StateCapture]:
    return type(name, (base,), {"kind": f"{module}.{name}"})


def _numpy_globals() -> dict[str, Any]:
    # The reconstructors by value, so that files pickled under numpy 1 (`numpy.core`) and
    # numpy 2 (`numpy._core`) both load on either.
    reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]
    scalar = np.float64(0).__reduce__()[0]
    from_buffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 (in-band buffers)
    found: dict[str, Any] = {}
    for core in ("numpy.core", "numpy._core"):
        found[f"{core}.multiarray._reconstruct"] = reconstruct
        found[f"{core}.multiarray.scalar"] = scalar
        found[f"{core}.numeric._frombuffer"] = from_buffer
    found["numpy.ndarray"] = np.ndarray
    found["numpy.dtype"] = np.dtype
    return found


def _builtin_globals() -> dict[str, Any]:
    import builtins
    import copyreg

    allowed: dict[str, Any] = {}
    for module in ("builtins", "__builtin__"):
        for name in ("set", "frozenset", "complex", "bytearray", "object"):
            allowed[f"{module}.{name}"] = getattr(builtins, name)
    # Protocol 0/1 pickles build plain objects with copyreg._reconstructor; protocol-2 pickles
    # written by Python 3 carry bytes through _codecs.encode.
    allowed["copy_reg._reconstructor"] = copyreg._reconstructor  # type: ignore[attr-defined]
    allowed["copyreg._reconstructor"] = copyreg._reconstructor  # type: ignore[attr-defined]
    allowed["_codecs.encode"] = _latin1_encode
    return allowed


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as pickle uses it (bytes as latin-1 text), and no other codec."""
    import codecs

    if codecs.lookup(encoding).name not in ("iso8859-1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode with codec {encoding!r}")
    return text.encode(encoding)


_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "csc_array", "csr_array")


class _ManoUnpickler(pickle.Unpickler):
    """Resolves only numpy, a few builtins, and stand-ins for chumpy / scipy.sparse classes."""

    _allowed: ClassVar[dict[str, Any]] = {}

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, encoding="latin1")
        if not _ManoUnpickler._allowed:
            _ManoUnpickler._allowed = {**_numpy_globals(), **_builtin_globals()}

    def find_class(self, module: str, name: str) -> Any:
        allowed = self._allowed.get(f"{module}.{name}")
        if allowed is not None:
            return allowed
        if module == "chumpy" or module.startswith("chumpy."):
            return _capture(_ChumpyNode, module, name)
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_NAMES:
            return _capture(_SparseNode, module, name)
        raise UnsafePickleError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("a persistent reference")


def _evaluate_chumpy(node: _ChumpyNode, depth: int = 0) -> NDArray[np.float64]:
    """Value of the chumpy node types MANO files use (what chumpy's `compute_r` returns)."""
    if depth > 8:
        raise ValueError("chumpy expression nested too deeply")
    state = node.state if isinstance(node.state, dict) else {}
    if node.kind == "chumpy.ch.Ch":
        value = state.get("x")
        if isinstance(value, _ChumpyNode):
            return _evaluate_chumpy(value, depth + 1)
        if not isinstance(value, np.ndarray):
            raise ValueError("chumpy.ch.Ch without an array 'x'")
        return np.asarray(value, dtype=np.float64)
    if node.kind == "chumpy.reordering.Select":
        source = state.get("a")
        array = (
            _evaluate_chumpy(source, depth + 1)
            if isinstance(source, _ChumpyNode)
            else np.asarray(source, dtype=np.float64)
        )
        idxs = np.asarray(state.get("idxs"))
        if idxs.dtype.kind not in "iu" or (idxs.size and (idxs.min() < 0 or idxs.max() >= array.size)):
            raise ValueError("chumpy Select with invalid indices")
        result = array.ravel()[idxs.ravel()].copy()
        shape = state.get("preferred_shape")
        return result.reshape(tuple(shape)) if shape is not None else result
    raise ValueError(f"unsupported chumpy class {node.kind}")


def _densify_sparse(node: _SparseNode) -> NDArray[np.float64]:
    """Dense copy of a pickled CSC/CSR matrix (J_regressor is only 16×778)."""
    state = node.state if isinstance(node.state, dict) else {}
    shape = state.get("_shape", state.get("shape"))
    data, indices, indptr = (np.asarray(state.get(key)) for key in ("data", "indices", "indptr"))
    if shape is None or len(shape) != 2 or data.ndim != 1 or indices.shape != data.shape:
        raise ValueError(f"malformed {node.kind}")
    rows, cols = int(shape[0]), int(shape[1])
    by_column = node.kind.split(".")[-1].startswith("csc")
    major, minor = (cols, rows) if by_column else (rows, cols)
    if (
        indptr.shape != (major + 1,)
        or indptr[0] != 0
        or indptr[-1] != data.size
        or np.any(np.diff(indptr) < 0)
    ):
        raise ValueError(f"malformed {node.kind}: bad index pointer")
    if indices.size and (indices.min() < 0 or indices.max() >= minor):
        raise ValueError(f"malformed {node.kind}: index out of range")
    outer = np.repeat(np.arange(major), np.diff(indptr))
    dense = np.zeros((rows, cols), dtype=np.float64)
    at = (indices, outer) if by_column else (outer, indices)
    np.add.at(dense, at, data.astype(np.float64))
    return dense


def _plain(value: Any) -> Any:
    if isinstance(value, _ChumpyNode):
        return _evaluate_chumpy(value)
    if isinstance(value, _SparseNode):
        return _densify_sparse(value)
    return value


def _check_shapes(data: Mapping[str, Any], path: Path) -> None:
    for key, expected in REQUIRED_SHAPES.items():
        if key not in data:
            raise InputError(f"not a MANO model: key '{key}' is missing", source=path)
        value = data[key]
        shape = getattr(value, "shape", None)
        ok = (
            isinstance(value, np.ndarray)
            and value.dtype.kind in "fiu"
            and shape is not None
            and len(shape) == len(expected)
            and all(e in (-1, s) for s, e in zip(shape, expected, strict=True))
        )
        if not ok:
            want = "×".join("N" if e < 0 else str(e) for e in expected)
            raise InputError(f"MANO key '{key}' has shape {shape}, expected {want}", source=path)
    if data["shapedirs"].shape[2] < 10:
        raise InputError("MANO 'shapedirs' has fewer than 10 shape components", source=path)
    faces = data["f"]
    if faces.min() < 0 or faces.max() >= NUM_VERTICES:
        raise InputError("MANO faces index vertices that do not exist", source=path)


def restricted_unpickle(stream: BinaryIO) -> Any:
    """Unpickle data made of numpy arrays and plain containers (Python 2 pickles too), nothing else.

    The one restricted unpickler of the project: MANO files and the pickled annotations of public
    hand datasets go through it, so a data file cannot name a class or function that runs code.
    Raises `pickle.UnpicklingError` for a refused global; chumpy / scipy.sparse objects come back as
    inert stand-ins that only `load_mano_file` interprets.
    """
    return _ManoUnpickler(stream).load()


def load_mano_file(path: str | Path) -> MANOData:
    """Read a MANO pickle (the official chumpy/Python-2 one, or a chumpy-free copy) safely.

    Returns the file's dict with chumpy values evaluated to float64 arrays and sparse matrices
    (`J_regressor`) made dense; other values as stored. Anything the file names beyond numpy,
    basic builtins, chumpy and scipy.sparse is refused with an `InputError` before it runs.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read MANO file: {exc.strerror}", source=path) from exc
    if size > MAX_FILE_BYTES:
        raise InputError(f"{size} bytes is too large for a MANO file", source=path)
    try:
        with path.open("rb") as handle:
            raw = restricted_unpickle(handle)
    except UnsafePickleError as exc:
        raise InputError(
            f"refusing to load {exc}: a MANO file holds only numpy, chumpy and scipy.sparse data",
            source=path,
        ) from exc
    except Exception as exc:  # any malformed pickle: truncated, wrong format, bad state
        raise InputError(f"not a readable MANO pickle ({type(exc).__name__}: {exc})", source=path) from exc
    if not isinstance(raw, dict):
        raise InputError(f"not a MANO model: the pickle holds a {type(raw).__name__}", source=path)
    data: MANOData = {}
    for key, value in raw.items():
        try:
            data[str(key)] = _plain(value)
        except ValueError as exc:
            raise InputError(f"MANO key '{key}': {exc}", source=path) from exc
    _check_shapes(data, path)
    return data


def find_mano_files(mano_dir: str | Path) -> dict[str, Path]:
    """`{'right': …/MANO_RIGHT.pkl, 'left': …/MANO_LEFT.pkl}` in `mano_dir` (or its `models/`).

    Names match case-insensitively. Both sides are required: the left model's shape fix is
    decided by comparing it with the right one.
    """
    root = Path(mano_dir)
    if not root.is_dir():
        raise InputError("MANO directory does not exist", source=root)
    found: dict[str, Path] = {}
    for folder in (root, root / "models"):
        if not folder.is_dir():
            continue
        by_name = {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_file()}
        for side, name in FILE_NAMES.items():
            if side not in found and name.lower() in by_name:
                found[side] = by_name[name.lower()]
    missing = [FILE_NAMES[side] for side in ("right", "left") if side not in found]
    if missing:
        raise InputError(
            f"no {' or '.join(missing)} here: download MANO (https://mano.is.tue.mpg.de) and pass the "
            "folder that holds MANO_RIGHT.pkl and MANO_LEFT.pkl",
            source=root,
        )
    return found
