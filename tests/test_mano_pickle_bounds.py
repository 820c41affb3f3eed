"""The restricted unpickler is memory-bounded: no small pickle can make us allocate gigabytes.

Every bomb is written here opcode by opcode (never by calling the bomb), then loaded in one child
process whose address space is capped at its size after imports + 768 MiB: a bomb that allocated
would fail there with MemoryError instead of being refused by the budget. Each case asserts the
refusal is an InputError naming the file with the expected reason, and that the child's peak
RSS grew by less than 200 MiB while loading it.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from vidihand_ros.errors import InputError
from vidihand_ros.mano.files import load_mano_file
from vidihand_ros.mano.pickles import PickleBudgetError, pickle_budget, restricted_unpickle
from vidihand_ros.testing.synthetic_mano import synthetic_mano_arrays, write_synthetic_mano_file
from vidihand_ros.training_data.base import safe_unpickle

GIB2 = 2_000_000_000
MAX_RSS_GROWTH_KB = 200 * 1024

# -- opcode helpers (protocol 2 unless a case needs more) --------------------------------------------


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def i32(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def text(value: str) -> bytes:
    """SHORT_BINSTRING: a Python 2 str, a str when loaded with encoding='latin1'."""
    return b"U" + bytes([len(value)]) + value.encode("latin-1")


def shape(*dims: int) -> bytes:
    return b"(" + b"".join(i32(d) for d in dims) + b"t"


def dtype(spec: str) -> bytes:
    """numpy.dtype(spec, False, True), exactly as numpy pickles a dtype."""
    return glob("numpy", "dtype") + text(spec) + b"\x89\x88\x87R"


RECONSTRUCT = glob("numpy.core.multiarray", "_reconstruct")
EMPTY_ARRAY = RECONSTRUCT + glob("numpy", "ndarray") + b"K\x00\x85" + text("b") + b"\x87R"
P2 = b"\x80\x02"


def memoize_flood() -> bytes:
    return P2 + b"]" + b"\x94" * 3_000_000 + b"."


def encode_repeats(callable_: bytes, *extra: bytes) -> bytes:
    """A 1 MiB string copied 5000 times by an allowed call (5 GiB unbounded, 1 MiB in the file)."""
    head = P2 + callable_ + b"q\x00" + b"T" + struct.pack("<I", 1 << 20) + b"x" * (1 << 20) + b"q\x01"
    head += b"".join(e + b"q" + bytes([2 + i]) for i, e in enumerate(extra))
    gets = b"h\x00h\x01" + b"".join(b"h" + bytes([2 + i]) for i in range(len(extra)))
    call = gets + (b"\x86" if len(extra) == 1 else b"\x85") + b"R" + b"a"
    return head + b"]" + call * 5000 + b"."


def huge_sparse_mano() -> bytes:
    """A MANO dict whose sparse J_regressor declares 100000×100000 (80 GB once dense)."""
    model = synthetic_mano_arrays("right", 0)
    state = {
        "_shape": (100_000, 100_000),
        "data": np.zeros(0),
        "indices": np.zeros(0, np.int32),
        "indptr": np.zeros(100_001, dtype=np.int32),
    }
    scipy_ = types.ModuleType("scipy")
    sparse = types.ModuleType("scipy.sparse")
    sparse.csc_matrix = _Csc  # type: ignore[attr-defined]
    with mock.patch.dict(sys.modules, {"scipy": scipy_, "scipy.sparse": sparse}):
        return pickle.dumps({**model, "J_regressor": _Csc(state)}, protocol=2)


def shared_chumpy_mano() -> bytes:
    """100 keys selecting all of one shared 8 MB chumpy array: 800 MB once evaluated, 16 MB stored."""
    model = synthetic_mano_arrays("right", 0)
    source = _Ch(np.zeros(1_000_000))
    select = _Select(source, np.arange(1_000_000))
    ch = types.ModuleType("chumpy.ch")
    ch.Ch = _Ch  # type: ignore[attr-defined]
    reordering = types.ModuleType("chumpy.reordering")
    reordering.Select = _Select  # type: ignore[attr-defined]
    fakes = {"chumpy": types.ModuleType("chumpy"), "chumpy.ch": ch, "chumpy.reordering": reordering}
    with mock.patch.dict(sys.modules, fakes):
        return pickle.dumps({**model, **{f"k{i}": select for i in range(100)}}, protocol=2)


class _Ch:
    __module__ = "chumpy.ch"
    __qualname__ = "Ch"

    def __init__(self, x: np.ndarray) -> None:
        self.x = x


class _Select:
    __module__ = "chumpy.reordering"
    __qualname__ = "Select"

    def __init__(self, a: _Ch, idxs: np.ndarray) -> None:
        self.a, self.idxs, self.preferred_shape = a, idxs, None


class _Csc:
    """Pickled as scipy.sparse.csc_matrix with the given state (no scipy needed)."""

    __module__ = "scipy.sparse"
    __qualname__ = "csc_matrix"

    def __init__(self, state: dict) -> None:
        self.__dict__.update(state)


#: name → (pickle bytes, what the refusal must say)
BOMBS: dict[str, tuple[bytes, str]] = {
    "bytearray": (P2 + glob("__builtin__", "bytearray") + i32(GIB2) + b"\x85R.", "memory budget"),
    "reconstruct_shape": (
        P2 + RECONSTRUCT + glob("numpy", "ndarray") + shape(1_000_000_000) + text("f8") + b"\x87R.",
        "memory budget",
    ),
    "ndarray_call": (P2 + glob("numpy", "ndarray") + shape(1_000_000_000) + b"\x85R.", "memory budget"),
    "object_array_state": (
        P2 + EMPTY_ARRAY + b"(K\x01" + shape(250_000_000) + dtype("O") + b"\x89]Nat" + b"b.",
        "object array of 250000000 items",
    ),
    "dtype_itemsize_state": (
        P2 + dtype("V8") + b"(K\x03" + text("|") + b"NNN" + i32(GIB2) + b"K\x01K\x00tb.",
        "memory budget",
    ),
    "dtype_subarray_state": (
        P2 + dtype("V8") + b"(K\x03" + text("|") + b"(" + dtype("f8") + shape(250_000_000) + b"t"
        b"NN" + i32(-1) + b"K\x01K\x00tb.",
        "memory budget",
    ),
    "scalar_of_huge_void": (
        P2 + glob("numpy.core.multiarray", "scalar") + dtype(f"V{GIB2}") + b"N\x86R.",
        "memory budget",
    ),
    "reconstructor_ndarray": (
        P2
        + glob("copy_reg", "_reconstructor")
        + glob("numpy", "ndarray")
        + glob("numpy", "ndarray")
        + shape(1_000_000_000)
        + b"\x87R.",
        "_reconstructor of numpy.ndarray",
    ),
    "newobj_ndarray": (
        P2 + glob("numpy", "ndarray") + b"(" + shape(1_000_000_000) + b"t\x81.",
        "refusing to load NEWOBJ of numpy.ndarray",
    ),
    "binbytes8_length": (b"\x80\x04\x8e" + struct.pack("<Q", GIB2) + b"xx.", "truncated"),
    "frame_length": (b"\x80\x04\x95" + struct.pack("<Q", GIB2) + b"xx.", "invalid load key"),
    "bytearray8_length": (b"\x80\x05\x96" + struct.pack("<Q", GIB2) + b"xx.", "truncated"),
    "codecs_encode_repeated": (
        encode_repeats(glob("_codecs", "encode"), text("latin1")),
        "_codecs.encode needs",
    ),
    "bytearray_repeated": (
        encode_repeats(glob("__builtin__", "bytearray"), text("latin-1")),
        "bytearray needs",
    ),
    "memoize_flood": (memoize_flood(), "building its objects needs"),
    "set_flood": (P2 + b"]" + b"\x8fa" * 2_000_000 + b".", "building its objects needs"),
}

CHILD = r"""
import json, resource, sys, traceback
from pathlib import Path
from vidihand_ros.errors import InputError
from vidihand_ros.mano.files import load_mano_file
from vidihand_ros.training_data.base import load_npy, safe_unpickle

def vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
limit = vm_size() + (768 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
loaders = {
    "mano": load_mano_file,
    "bytes": lambda p: safe_unpickle(Path(p).read_bytes(), p),
    "stream": lambda p: safe_unpickle(open(p, "rb"), p),
    "npy": lambda p: load_npy(Path(p)),
}
results = {}
for key, (kind, path) in json.loads(sys.argv[1]).items():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        loaders[kind](path)
        outcome = "loaded"
    except InputError as err:
        outcome = "InputError: " + str(err)
    except BaseException as err:
        outcome = "".join(traceback.format_exception_only(type(err), err)).strip()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    results[key] = {"outcome": outcome, "rss_growth_kb": grown}
print(json.dumps(results))
"""


def _npy_with_pickle(body: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    return buffer.getvalue() + body


def _npy_header_only(dims: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": dims})
    return buffer.getvalue() + b"\x00" * 8


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("bombs")
    cases: dict[str, tuple[str, str]] = {}
    for name, (body, _) in BOMBS.items():
        path = folder / f"{name}.pkl"
        path.write_bytes(body)
        for kind in ("mano", "bytes", "stream"):
            cases[f"{kind}:{name}"] = (kind, str(path))
        npy = folder / f"{name}.npy"
        npy.write_bytes(_npy_with_pickle(body))
        cases[f"npy:{name}"] = ("npy", str(npy))
    sparse = folder / "sparse.pkl"
    sparse.write_bytes(huge_sparse_mano())
    cases["mano:sparse_shape"] = ("mano", str(sparse))
    shared = folder / "shared.pkl"
    shared.write_bytes(shared_chumpy_mano())
    cases["mano:shared_chumpy"] = ("mano", str(shared))
    header = folder / "header.npy"
    header.write_bytes(_npy_header_only((GIB2,)))
    cases["npy:header_shape"] = ("npy", str(header))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, dict] = json.loads(done.stdout)
    for key, (_, where) in cases.items():
        results[key]["path"] = where
    return results


def _check(outcome: dict, expected: str) -> None:
    text_ = outcome["outcome"]
    assert text_.startswith("InputError: "), text_
    assert outcome["path"] in text_, text_
    assert expected in text_, text_
    assert "\n" not in text_
    assert outcome["rss_growth_kb"] < MAX_RSS_GROWTH_KB, outcome


@pytest.mark.parametrize("kind", ["mano", "bytes", "stream", "npy"])
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_is_refused_with_little_memory(outcomes: dict, name: str, kind: str) -> None:
    _check(outcomes[f"{kind}:{name}"], BOMBS[name][1])


def test_huge_sparse_shape_is_not_densified(outcomes: dict) -> None:
    _check(outcomes["mano:sparse_shape"], "too large to make dense")


def test_shared_chumpy_nodes_cannot_multiply_the_model(outcomes: dict) -> None:
    _check(outcomes["mano:shared_chumpy"], "exceed")


def test_npy_header_cannot_declare_more_than_the_file_holds(outcomes: dict) -> None:
    _check(outcomes["npy:header_shape"], "the header declares")


# -- in-process: the budget itself, and real files still load ------------------------------------------


def test_budget_grows_with_the_file_up_to_a_cap() -> None:
    assert pickle_budget(30) < pickle_budget(10_000_000) <= pickle_budget(None)
    assert pickle_budget(10**12) == pickle_budget(None)


def test_cumulative_allocations_share_one_budget() -> None:
    """Many allowed allocations, each small, cannot add up past the budget."""
    one = P2 + glob("__builtin__", "bytearray") + b"q\x00" + b"]"
    call = b"h\x00" + i32(1 << 20) + b"\x85Ra"
    with pytest.raises(PickleBudgetError, match="bytearray"):
        restricted_unpickle(io.BytesIO(one + call * 64 + b"."), budget=32 << 20)
    assert len(restricted_unpickle(io.BytesIO(one + call * 16 + b"."), budget=32 << 20)) == 16


def test_legitimate_arrays_and_protocols_fit_the_budget(tmp_path: Path) -> None:
    values = np.arange(300_000, dtype=np.float64)
    arrays = {"a": values, "b": np.zeros((3, 4), np.int32), "s": {1, 2}}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        blob = pickle.dumps(arrays, protocol=protocol)
        loaded = restricted_unpickle(io.BytesIO(blob))
        np.testing.assert_array_equal(loaded["a"], values)
        assert loaded["s"] == {1, 2}
    path = write_synthetic_mano_file(tmp_path / "MANO_RIGHT.pkl", "right", seed=3)
    assert load_mano_file(path)["v_template"].shape == (778, 3)


def test_dtype_state_cannot_change_a_builtin_dtype() -> None:
    blob = P2 + dtype("f8") + b"(K\x03" + text(">") + b"NNN" + i32(-1) + i32(-1) + b"K\x00tb."
    restricted_unpickle(io.BytesIO(blob))
    assert np.dtype("f8").byteorder == "="


def test_structured_dtypes_still_load() -> None:
    value = np.zeros(3, dtype=[("a", "f8"), ("b", "i4", (3,))])
    np.testing.assert_array_equal(restricted_unpickle(io.BytesIO(pickle.dumps(value, protocol=2))), value)


def test_training_loader_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "frame.pickle"
    with pytest.raises(InputError, match="memory budget") as info:
        safe_unpickle(BOMBS["bytearray"][0], path)
    assert str(path) in str(info.value)
    path.write_bytes(b"\x80\x02K")
    with pytest.raises(InputError, match="cannot read pickle"):
        safe_unpickle(path.read_bytes(), path)
