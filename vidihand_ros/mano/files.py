"""MANO model files: a safe loader for the real pickles, and a finder.

The MANO files are licensed, so users bring their own `MANO_RIGHT.pkl` / `MANO_LEFT.pkl`. Those
files were pickled under Python 2 with chumpy: `shapedirs` is a `chumpy.reordering.Select` over a
`chumpy.ch.Ch`, `J_regressor` a `scipy.sparse.csc.csc_matrix`. chumpy does not install on current
Python/numpy, and unpickling runs whatever a file names, so `load_mano_file` uses the restricted,
memory-bounded unpickler of `vidihand_ros.mano.pickles`: numpy arrays, a few builtins, chumpy and
scipy-sparse *state* captured by inert stand-ins (evaluated here with numpy), and nothing else.
No torch, no chumpy, no scipy import.

Tests and benchmarks write files in the same format with `vidihand_ros.testing.synthetic_mano`.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.mano.pickles import (
    ChumpyNode,
    PickleBudgetError,
    SparseNode,
    UnsafePickleError,
    printable,
    restricted_unpickle,
)
from vidihand_ros.types import NUM_BETAS

__all__ = [
    "PickleBudgetError",
    "UnsafePickleError",
    "find_mano_files",
    "load_mano_file",
    "restricted_unpickle",
]


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
#: All arrays of a model once chumpy / sparse values are evaluated (a real one has about 5 MB).
MAX_MODEL_BYTES = 64 * 1024 * 1024
#: A sparse matrix made dense must stay small (J_regressor is 16×778): its shape is file data.
MAX_DENSE_ELEMENTS = 1 << 22

MANOData = dict[str, Any]


def _evaluate_chumpy(node: ChumpyNode, depth: int = 0) -> NDArray[np.float64]:
    """Value of the chumpy node types MANO files use (what chumpy's `compute_r` returns)."""
    if depth > 8:
        raise ValueError("chumpy expression nested too deeply")
    state = node.state if isinstance(node.state, dict) else {}
    if node.kind == "chumpy.ch.Ch":
        value = state.get("x")
        if isinstance(value, ChumpyNode):
            return _evaluate_chumpy(value, depth + 1)
        if not isinstance(value, np.ndarray):
            raise ValueError("chumpy.ch.Ch without an array 'x'")
        return np.asarray(value, dtype=np.float64)
    if node.kind == "chumpy.reordering.Select":
        source = state.get("a")
        array = (
            _evaluate_chumpy(source, depth + 1)
            if isinstance(source, ChumpyNode)
            else np.asarray(source, dtype=np.float64)
        )
        idxs = np.asarray(state.get("idxs"))
        if idxs.dtype.kind not in "iu" or (idxs.size and (idxs.min() < 0 or idxs.max() >= array.size)):
            raise ValueError("chumpy Select with invalid indices")
        result = array.ravel()[idxs.ravel()].copy()
        shape = state.get("preferred_shape")
        return result.reshape(tuple(shape)) if shape is not None else result
    raise ValueError(f"unsupported chumpy class {node.kind}")


def _densify_sparse(node: SparseNode) -> NDArray[np.float64]:
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
    if rows < 0 or cols < 0 or rows * cols > MAX_DENSE_ELEMENTS:
        raise ValueError(f"{node.kind} of shape {rows}×{cols} is too large to make dense")
    outer = np.repeat(np.arange(major), np.diff(indptr))
    dense = np.zeros((rows, cols), dtype=np.float64)
    at = (indices, outer) if by_column else (outer, indices)
    np.add.at(dense, at, data.astype(np.float64))
    return dense


def _plain(value: Any) -> Any:
    if isinstance(value, ChumpyNode):
        return _evaluate_chumpy(value)
    if isinstance(value, SparseNode):
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


def _reason(exc: Exception) -> str:
    return str(exc) if type(exc) is pickle.UnpicklingError else f"{type(exc).__name__}: {exc}"


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
    except PickleBudgetError as exc:
        raise InputError(f"refusing to load: {exc}", source=path) from exc
    except Exception as exc:  # any malformed pickle: truncated, wrong format, bad state
        raise InputError(f"not a readable MANO pickle ({_reason(exc)})", source=path) from exc
    if not isinstance(raw, dict):
        raise InputError(f"not a MANO model: the pickle holds a {type(raw).__name__}", source=path)
    if not all(isinstance(key, str) for key in raw):
        raise InputError("not a MANO model: its keys are not all names", source=path)
    data: MANOData = {}
    produced = 0
    for key, value in raw.items():
        try:
            data[key] = plain = _plain(value)
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            raise InputError(f"MANO key '{printable(key)}': {exc}", source=path) from exc
        # Many keys may evaluate the same large chumpy node: bound what evaluation produces.
        produced += plain.nbytes if isinstance(plain, np.ndarray) else 0
        if produced > MAX_MODEL_BYTES:
            raise InputError(f"the model's arrays exceed {MAX_MODEL_BYTES} bytes once evaluated", source=path)
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
