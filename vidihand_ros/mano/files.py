"""MANO model files: a safe loader for the real pickles, a finder, and a synthetic-file writer.

The MANO files are licensed, so users bring their own `MANO_RIGHT.pkl` / `MANO_LEFT.pkl`. Those
files were pickled under Python 2 with chumpy: `shapedirs` is a `chumpy.reordering.Select` over a
`chumpy.ch.Ch`, `J_regressor` a `scipy.sparse.csc.csc_matrix`. chumpy does not install on current
Python/numpy, and unpickling runs whatever a file names, so `load_mano_file` uses a restricted
unpickler: numpy arrays, a few builtins, chumpy and scipy-sparse *state* captured by inert stand-ins
(evaluated here with numpy), and nothing else. No torch, no chumpy, no scipy import.

Tests and benchmarks cannot ship the real files either, so `write_synthetic_mano_file` writes files
in the same format (same keys, shapes, dtypes and pickled class names), with random but plausible
hand-shaped values.
"""

from __future__ import annotations

import itertools
import pickle
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.errors import InputError
from vidihand_ros.types import HAND_SIDES, NUM_BETAS


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


# --------------------------------------------------------------------------------------------
# Synthetic MANO-format files


class _WriteCh:
    """Pickled as `chumpy.ch.Ch`, with chumpy's own state layout (`x` holds the array)."""

    __module__ = "chumpy.ch"
    __qualname__ = "Ch"

    def __init__(self, x: NDArray[np.float64]) -> None:
        self.x = x
        self._dirty_vars: set[str] = set()
        self._itr = None
        self._depends_on_deps: dict[str, Any] = {}
        self._make_dense = False
        self._make_sparse = False


class _WriteSelect(_WriteCh):
    """Pickled as `chumpy.reordering.Select`: `a.ravel()[idxs].reshape(preferred_shape)`."""

    __module__ = "chumpy.reordering"
    __qualname__ = "Select"

    def __init__(self, a: _WriteCh, idxs: NDArray[np.int64], preferred_shape: tuple[int, ...]) -> None:
        super().__init__(np.zeros(0))
        del self.x
        self.a = a
        self.idxs = idxs
        self.preferred_shape = preferred_shape


class _WriteCsc:
    """Pickled as `scipy.sparse.csc.csc_matrix` with scipy's attribute layout."""

    __module__ = "scipy.sparse.csc"
    __qualname__ = "csc_matrix"

    def __init__(self, dense: NDArray[np.float64]) -> None:
        cols, rows = np.nonzero(dense.T)  # column-major order
        self._shape = dense.shape
        self.maxprint = 50
        counts = np.bincount(cols, minlength=dense.shape[1])
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        self.indices = rows.astype(np.int32)
        self.data = dense[rows, cols].astype(np.float64)


_LEGACY_CLASSES = {
    "chumpy.ch": ("Ch", _WriteCh),
    "chumpy.reordering": ("Select", _WriteSelect),
    "scipy.sparse.csc": ("csc_matrix", _WriteCsc),
}
_legacy_lock = threading.Lock()


@contextmanager
def _legacy_modules() -> Iterator[None]:
    """Register the stand-ins under the real files' module names, only while pickling."""
    with _legacy_lock:
        names = ["chumpy", *_LEGACY_CLASSES]
        saved = {name: sys.modules.get(name) for name in names}
        try:
            sys.modules["chumpy"] = types.ModuleType("chumpy")
            for module, (name, cls) in _LEGACY_CLASSES.items():
                fake = types.ModuleType(module)
                setattr(fake, name, cls)
                sys.modules[module] = fake
            yield
        finally:
            for name, previous in saved.items():
                if previous is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = previous


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return v / np.linalg.norm(v)


def _frame(direction: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Two unit vectors perpendicular to `direction` (to place a ring of vertices)."""
    helper = np.array([0.0, 1.0, 0.0]) if abs(direction[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = _unit(np.cross(direction, helper))
    return u, np.cross(direction, u)


class _MeshBuilder:
    """Accumulates vertices (with their skinning joint) and faces of the synthetic hand."""

    def __init__(self) -> None:
        self.vertices: list[NDArray[np.float64]] = []
        self.skin: list[tuple[int, int, float]] = []  # joint, blend joint, blend weight
        self.faces: list[tuple[int, int, int]] = []
        self.regressor: dict[int, list[int]] = {}

    def ring(
        self,
        centre: NDArray[np.float64],
        u: NDArray[np.float64],
        w: NDArray[np.float64],
        radii: tuple[float, float],
        count: int,
        skin: tuple[int, int, float],
        phase: float,
    ) -> list[int]:
        start = len(self.vertices)
        for i in range(count):
            a = phase + 2.0 * np.pi * i / count
            self.vertices.append(centre + radii[0] * np.cos(a) * u + radii[1] * np.sin(a) * w)
            self.skin.append(skin)
        return list(range(start, start + count))

    def point(self, p: NDArray[np.float64], skin: tuple[int, int, float]) -> int:
        self.vertices.append(p)
        self.skin.append(skin)
        return len(self.vertices) - 1

    def tube(self, rings: list[list[int]]) -> None:
        for a, b in itertools.pairwise(rings):
            n = len(a)
            for i in range(n):
                j = (i + 1) % n
                self.faces += [(a[i], a[j], b[j]), (a[i], b[j], b[i])]

    def fan(self, ring: list[int], centre: int) -> None:
        n = len(ring)
        self.faces += [(ring[i], ring[(i + 1) % n], centre) for i in range(n)]


def _right_hand_arrays(rng: np.random.Generator) -> dict[str, Any]:
    """A plausible right hand in metres: palm tube + five finger tubes, MANO joint order."""
    mesh = _MeshBuilder()
    wrist = np.array([-0.07, 0.005, 0.005])
    # Per finger: layer joints base→distal, base offset from the wrist, direction, segment lengths,
    # radius, vertices per ring and rings per segment (chosen so that the total is 778 vertices).
    fingers = [
        ((1, 2, 3), (0.080, 0.0, 0.022), (1.0, -0.05, 0.08), (0.038, 0.024, 0.020), 0.0085, 8, 4),
        ((4, 5, 6), (0.085, 0.0, 0.002), (1.0, -0.05, 0.0), (0.042, 0.027, 0.021), 0.009, 8, 4),
        ((7, 8, 9), (0.070, 0.0, -0.033), (1.0, -0.05, -0.12), (0.030, 0.019, 0.018), 0.0075, 8, 4),
        ((10, 11, 12), (0.080, 0.0, -0.017), (1.0, -0.05, -0.06), (0.039, 0.025, 0.020), 0.0085, 8, 4),
        ((13, 14, 15), (0.020, -0.010, 0.025), (0.7, -0.25, 0.7), (0.035, 0.030, 0.025), 0.010, 12, 3),
    ]
    joints = np.zeros((NUM_LAYER_JOINTS, 3))
    joints[0] = wrist
    tips: list[int] = []
    base_rings: list[list[int]] = []
    for chain, offset, direction, lengths, radius, per_ring, stations in fingers:
        d = _unit(np.asarray(direction) + rng.normal(0.0, 0.03, 3))
        p = wrist + np.asarray(offset) + rng.normal(0.0, 0.002, 3)
        rings: list[list[int]] = []
        for k, (joint, length) in enumerate(zip(chain, lengths, strict=True)):
            joints[joint] = p
            seg = length * rng.uniform(0.92, 1.08)
            d = _unit(d + rng.normal(0.0, 0.03, 3) + np.array([0.0, -0.04, 0.0]))  # slight flexion
            u, w = _frame(d)
            parent = LAYER_PARENTS[joint]
            for s in range(stations):
                t = s / stations
                r = radius * (1.0 - 0.1 * k - 0.05 * t)
                skin = (joint, parent, 0.5) if s == 0 else (joint, joint, 0.0)
                ring = mesh.ring(p + t * seg * d, u, w, (r, 0.85 * r), per_ring, skin, rng.uniform(0, np.pi))
                if s == 0:
                    mesh.regressor[joint] = ring
                rings.append(ring)
            p = p + seg * d
        mesh.tube(rings)
        tip = mesh.point(p, (chain[-1], chain[-1], 0.0))
        mesh.fan(rings[-1], tip)
        tips.append(tip)
        base_rings.append(rings[0])
    # Palm: an elliptic tube from the wrist to the knuckles, closed at the knuckle end; its distal
    # part blends towards the nearest knuckle (finger base joint).
    palm_rings: list[list[int]] = []
    knuckles = np.array([1, 4, 7, 10])
    for s in range(14):
        t = s / 13
        ring = mesh.ring(
            wrist + np.array([0.078 * t, 0.0, 0.0]),
            np.array([0.0, 0.0, 1.0]),
            np.array([0.0, 1.0, 0.0]),
            (0.03 + 0.015 * t, 0.016),
            20,
            (0, 0, 0.0),
            0.0,
        )
        for i in ring:
            nearest = knuckles[np.argmin(np.linalg.norm(joints[knuckles] - mesh.vertices[i], axis=1))]
            mesh.skin[i] = (0, int(nearest), 0.5 * max(0.0, (t - 0.6) / 0.4))
        if s == 0:
            mesh.regressor[0] = ring
        palm_rings.append(ring)
    mesh.tube(palm_rings)
    mesh.fan(palm_rings[-1], mesh.point(wrist + np.array([0.08, 0.0, 0.0]), (0, 0, 0.0)))
    # Filler triangles up to MANO's face count: stitch finger bases to the palm, close the wrist.
    vertices = np.asarray(mesh.vertices)
    palm_ids = np.asarray([i for ring in palm_rings for i in ring])
    fillers: list[tuple[int, int, int]] = []
    for ring in base_rings:
        for i in range(len(ring)):
            a, b = ring[i], ring[(i + 1) % len(ring)]
            mid = 0.5 * (vertices[a] + vertices[b])
            nearest = palm_ids[np.argmin(np.linalg.norm(vertices[palm_ids] - mid, axis=1))]
            fillers.append((a, b, int(nearest)))
    wrist_ring = palm_rings[0]
    fillers += [(wrist_ring[0], wrist_ring[i + 1], wrist_ring[i]) for i in range(1, len(wrist_ring) - 1)]
    faces = mesh.faces + fillers[: NUM_FACES - len(mesh.faces)]
    if len(vertices) != NUM_VERTICES or len(faces) != NUM_FACES:
        raise AssertionError(f"synthetic MANO mesh has {len(vertices)} vertices, {len(faces)} faces")

    # Renumber so that the fingertips sit at MANO's fingertip vertex ids.
    tip_ids = [tips[4], tips[0], tips[1], tips[3], tips[2]]  # thumb, index, middle, ring, pinky
    new_of_old = np.empty(NUM_VERTICES, dtype=np.int64)
    new_of_old[tip_ids] = FINGERTIP_VERTICES
    rest = np.setdiff1d(np.arange(NUM_VERTICES), tip_ids)
    new_of_old[rest] = np.setdiff1d(np.arange(NUM_VERTICES), FINGERTIP_VERTICES)
    v_template = np.empty((NUM_VERTICES, 3))
    v_template[new_of_old] = vertices
    weights = np.zeros((NUM_VERTICES, NUM_LAYER_JOINTS))
    for old, (joint, other, blend) in enumerate(mesh.skin):
        weights[new_of_old[old], joint] += 1.0 - blend
        weights[new_of_old[old], other] += blend
    regressor = np.zeros((NUM_LAYER_JOINTS, NUM_VERTICES))
    for joint, ring in mesh.regressor.items():
        share = rng.uniform(0.5, 1.5, len(ring))
        regressor[joint, new_of_old[ring]] = share / share.sum()
    f = new_of_old[np.asarray(faces)].astype(np.uint32)

    # Shape space (a few mm per unit β, like MANO's; 20 columns stored, 10 selected, as in the
    # real files): column 0 scales the hand about the wrist, the others stretch it (symmetric
    # maps, so that no shape mimics a rotation) and lengthen or shorten single fingers.
    relative = v_template - joints[0]
    stretch = rng.normal(0.0, 0.015, (20, 3, 3)) / np.sqrt(1.0 + np.arange(20))[:, None, None]
    stretch = 0.5 * (stretch + stretch.transpose(0, 2, 1))
    stretch[0] = 0.03 * np.eye(3)
    shapedirs20 = np.einsum("kij,vj->vik", stretch, relative)
    owner = np.argmax(weights, axis=1)
    for chain, *_ in fingers:
        members = np.isin(owner, chain)
        lengths = rng.normal(0.0, 0.02, 20) / np.sqrt(1.0 + np.arange(20))
        lengths[0] = 0.0
        shapedirs20[members] += np.einsum("k,vi->vik", lengths, v_template[members] - joints[chain[0]])
    # Pose correctives: small, localised around the joint that rotates.
    posedirs = np.zeros((NUM_VERTICES, 3, NUM_POSE_BLEND))
    for joint in range(1, NUM_LAYER_JOINTS):
        near = np.exp(-np.sum((v_template - joints[joint]) ** 2, axis=1) / (2 * 0.015**2))
        block = rng.normal(0.0, 0.002, (NUM_VERTICES, 3, 9)) * near[:, None, None]
        posedirs[:, :, 9 * (joint - 1) : 9 * joint] = block
    components, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    return {
        "v_template": v_template,
        "f": f,
        "J_regressor": regressor,
        "weights": weights,
        "shapedirs20": shapedirs20,
        "posedirs": posedirs,
        "hands_components": components.T.copy(),
        "hands_mean": rng.normal(0.0, 0.15, 45),
        "hands_coeffs": rng.normal(0.0, 0.5, (1554, 45)),
    }


#: Mirror across the x=0 plane (the left MANO hand is the right one mirrored in x).
_MIRROR = np.array([-1.0, 1.0, 1.0])
_AXIS_ANGLE_MIRROR = np.tile([1.0, -1.0, -1.0], 15)


def _mirror_to_left(right: dict[str, Any]) -> dict[str, Any]:
    left = dict(right)
    left["v_template"] = right["v_template"] * _MIRROR
    left["f"] = right["f"][:, [0, 2, 1]].copy()  # mirroring flips the winding
    # The true mirrored shape space negates x, but the official left file repeats the right
    # file's x column (smplx issue 48); reproduce that bug so the loader's fix is exercised.
    left["shapedirs20"] = right["shapedirs20"].copy()
    # Pose correctives: feature (R - I)[a, b] mirrors with m_a m_b, the offset's axis c with m_c.
    m = _MIRROR
    sign = (m[:, None, None, None] * m[None, None, :, None] * m[None, None, None, :]).reshape(3, 1, 9)
    posedirs = right["posedirs"].reshape(NUM_VERTICES, 3, 15, 9) * sign.reshape(1, 3, 1, 9)
    left["posedirs"] = posedirs.reshape(NUM_VERTICES, 3, NUM_POSE_BLEND)
    left["hands_components"] = right["hands_components"] * _AXIS_ANGLE_MIRROR
    left["hands_mean"] = right["hands_mean"] * _AXIS_ANGLE_MIRROR
    left["hands_coeffs"] = right["hands_coeffs"]
    return left


def synthetic_mano_arrays(side: str, seed: int = 0) -> MANOData:
    """The values `write_synthetic_mano_file` stores (plain arrays, `J_regressor` dense).

    The same seed gives a right and a left hand that are exact mirror images once the left
    model's known shapedirs bug is fixed.
    """
    if side not in HAND_SIDES:
        raise ValueError(f"side must be one of {HAND_SIDES}, got {side!r}")
    arrays = _right_hand_arrays(np.random.default_rng(seed))
    if side == "left":
        arrays = _mirror_to_left(arrays)
    kintree = np.array([[4294967295, *LAYER_PARENTS[1:]], list(range(NUM_LAYER_JOINTS))], dtype=np.int64)
    shapedirs20 = arrays.pop("shapedirs20")
    return {
        **arrays,
        "shapedirs": shapedirs20[:, :, :10].copy(),
        "shapedirs_source": shapedirs20,
        "kintree_table": kintree,
        "J": arrays["J_regressor"] @ arrays["v_template"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_synthetic_mano_file(path: str | Path, side: str, seed: int = 0, protocol: int = 2) -> Path:
    """Write a MANO-format pickle with random, plausible values (for tests and benchmarks).

    Same keys, shapes and dtypes as the official files, and the same pickled classes:
    `shapedirs` is a `chumpy.reordering.Select` over a `chumpy.ch.Ch`, `J_regressor` a
    `scipy.sparse.csc.csc_matrix`. Not a real hand model: do not use it for anything but plumbing.
    """
    arrays = synthetic_mano_arrays(side, seed)
    source = arrays.pop("shapedirs_source")
    idxs = np.arange(source.size, dtype=np.int64).reshape(source.shape)[:, :, :10].ravel()
    payload = {
        "hands_components": arrays["hands_components"],
        "f": arrays["f"],
        "J_regressor": _WriteCsc(arrays["J_regressor"]),
        "kintree_table": arrays["kintree_table"],
        "J": arrays["J"],
        "bs_style": arrays["bs_style"],
        "hands_coeffs": arrays["hands_coeffs"],
        "weights": arrays["weights"],
        "posedirs": arrays["posedirs"],
        "hands_mean": arrays["hands_mean"],
        "v_template": arrays["v_template"],
        "shapedirs": _WriteSelect(_WriteCh(source), idxs, (NUM_VERTICES, 3, 10)),
        "bs_type": arrays["bs_type"],
    }
    path = Path(path)
    with _legacy_modules():
        blob = pickle.dumps(payload, protocol=protocol)
    path.write_bytes(blob)
    return path


def write_synthetic_mano_dir(directory: str | Path, seed: int = 0) -> Path:
    """Write synthetic `MANO_RIGHT.pkl` and `MANO_LEFT.pkl` (mirror images) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for side, name in FILE_NAMES.items():
        write_synthetic_mano_file(directory / name, side, seed)
    return directory
