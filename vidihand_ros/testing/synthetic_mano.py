"""Synthetic MANO-format files for tests and benchmarks, which cannot ship the licensed real ones.

`write_synthetic_mano_file` writes a pickle in the official format — same keys, shapes, dtypes and
pickled class names (chumpy `Select` over `Ch`, scipy `csc_matrix`) — with random but plausible
hand-shaped values, so that `vidihand_ros.mano.files.load_mano_file` is exercised as on real files.
"""

from __future__ import annotations

import itertools
import pickle
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.mano.files import (
    FILE_NAMES,
    FINGERTIP_VERTICES,
    LAYER_PARENTS,
    NUM_FACES,
    NUM_LAYER_JOINTS,
    NUM_POSE_BLEND,
    NUM_VERTICES,
    MANOData,
)
from vidihand_ros.types import HAND_SIDES

__all__ = ["synthetic_mano_arrays", "write_synthetic_mano_dir", "write_synthetic_mano_file"]


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
