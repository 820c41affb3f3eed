"""The one restricted unpickler: numpy data and plain containers only, within a memory budget.

MANO files and the pickled annotations of public hand datasets come from elsewhere, so a pickle
may neither run code nor make us allocate what it does not hold. `pickle.Unpickler` with a
`find_class` allow-list stops the first but not the second: the C unpickler allocates whatever a
length field declares before reading it (BINBYTES8, FRAME), numpy's `ndarray.__setstate__`
allocates a declared object-array shape before checking its data, and `bytearray(2_000_000_000)`,
`_reconstruct(ndarray, (10**9,), 'f8')` or a dtype grown by BUILD are single allowed calls. So:

- the pure-Python unpickler (`pickle._Unpickler`) runs, reading through `_ChunkedReader` so that
  no declared length becomes an allocation, and every opcode is charged to a `_Budget` derived
  from the input's size (`pickle_budget`, hard cap `BUDGET_CAP`);
- each allowed global is a `_Guard` that checks its arguments and charges what it will allocate
  (shape × itemsize, lengths, copies) *before* calling numpy or the builtin;
- BUILD is only allowed on numpy arrays and dtypes (state checked first) and on the inert
  stand-ins that capture chumpy / scipy.sparse state; NEWOBJ only on those stand-ins.

Errors: `UnsafePickleError` for a refused global or call, `PickleBudgetError` for too much memory,
`pickle.UnpicklingError` for anything else malformed (never another exception type).
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
import struct
from collections.abc import Callable
from typing import Any, BinaryIO, ClassVar

import numpy as np

__all__ = [
    "BUDGET_CAP",
    "PickleBudgetError",
    "UnsafePickleError",
    "pickle_budget",
    "printable",
    "restricted_unpickle",
]

#: Memory a pickle may make us allocate: BASE + PER_BYTE × its size in bytes, at most CAP.
BUDGET_BASE = 16 * 1024 * 1024
BUDGET_PER_BYTE = 16
BUDGET_CAP = 1024 * 1024 * 1024
#: What one opcode may cost in Python objects (a float, a tuple, an empty dict, a list slot…).
OPCODE_COST = 64
#: Opcodes that cost more: memo entries (a dict entry and its int key), empty sets.
_OPCODE_COSTS = {
    **dict.fromkeys((pickle.MEMOIZE, pickle.PUT, pickle.BINPUT, pickle.LONG_BINPUT), 192),
    **dict.fromkeys((pickle.EMPTY_SET, pickle.FROZENSET), 256),
}
#: A stand-in class for one foreign class name; a container item; a dtype field.
CLASS_COST = 2048
ITEM_COST = 64
_MAX_DIMS = 64
_CHUNK = 1 << 20
_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "csc_array", "csr_array")


class UnsafePickleError(pickle.UnpicklingError):
    """A global or call that `restricted_unpickle` refuses (it would let a data file run code)."""


class PickleBudgetError(pickle.UnpicklingError):
    """The pickle asks for more memory than its size justifies (a decompression-bomb pickle)."""


# Inert stand-ins for foreign classes ------------------------------------------------------------


class StateCapture:
    """Inert stand-in for a foreign class: keeps the pickled state, runs no foreign code."""

    kind: ClassVar[str] = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class ChumpyNode(StateCapture):
    """A chumpy object (`Ch` holds its array in state['x']; `Select` indexes another node)."""


class SparseNode(StateCapture):
    """A scipy CSC/CSR matrix; densified with numpy so that loading never imports scipy."""


def _stand_in(module: str, name: str) -> type[StateCapture] | None:
    if module == "chumpy" or module.startswith("chumpy."):
        return type(name, (ChumpyNode,), {"kind": f"{module}.{name}"})
    if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_NAMES:
        return type(name, (SparseNode,), {"kind": f"{module}.{name}"})
    return None


# The budget ----------------------------------------------------------------------------------------


def pickle_budget(size: int | None) -> int:
    """Bytes a pickle of `size` bytes may make us allocate (the cap when the size is unknown)."""
    if size is None:
        return BUDGET_CAP
    return min(BUDGET_CAP, BUDGET_BASE + BUDGET_PER_BYTE * max(0, size))


class _Budget:
    """Bytes left to allocate for one pickle; `charge` refuses before anything is allocated."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def charge(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise PickleBudgetError(
                f"{what} needs {_size(nbytes)}, but only {_size(self.left)} of this pickle's "
                f"{_size(self.limit)} memory budget (set by its size) is left"
            )
        self.left -= nbytes

    def check_itemsize(self, dtype: np.dtype, what: str) -> np.dtype:
        """A dtype whose single item would not fit is refused where it is made."""
        if dtype.itemsize > self.left:
            self.charge(dtype.itemsize, f"{what} of {dtype.itemsize} bytes per item")
        return dtype


def _size(nbytes: int) -> str:
    if nbytes < 1 << 20:
        return f"{nbytes} bytes"
    return f"{nbytes / (1 << 20):.1f} MiB" if nbytes < 1 << 30 else f"{nbytes / (1 << 30):.1f} GiB"


def printable(text: str, limit: int = 100) -> str:
    """A pickle-supplied name made safe for a one-line message."""
    shown = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return shown if len(shown) <= limit else shown[:limit] + "…"


# Argument checks -----------------------------------------------------------------------------------


def _shape(value: Any, what: str) -> tuple[int, ...]:
    """A shape as numpy takes it (an int or a sequence of non-negative ints)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, tuple | list) or len(value) > _MAX_DIMS:
        raise pickle.UnpicklingError(f"{what}: the shape is a {type(value).__name__}, not a tuple of sizes")
    dims = []
    for dim in value:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 0:
            raise pickle.UnpicklingError(f"{what}: a shape entry is not a size ({type(dim).__name__})")
        dims.append(int(dim))
    return tuple(dims)


def _dtype_arg(value: Any, what: str) -> np.dtype:
    if isinstance(value, np.dtype):
        return value
    if isinstance(value, str | bytes) and len(value) <= 32:
        try:
            return np.dtype(value.decode("latin-1") if isinstance(value, bytes) else value)
        except TypeError as err:
            raise pickle.UnpicklingError(f"{what}: {err}") from None
    raise UnsafePickleError(f"{what} with a {type(value).__name__} as dtype")


def _latin1(text: Any, encoding: Any, what: str) -> str:
    """The text of a str → bytes call as pickle makes it (latin-1, one byte per character), and
    no other codec; the caller charges len(text) before encoding."""
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise pickle.UnpicklingError(f"{what} needs text and an encoding name")
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = encoding
    if name not in ("iso8859-1", "latin-1"):
        raise UnsafePickleError(f"{what} with codec {printable(encoding)!r}")
    return text


# The allowed globals -------------------------------------------------------------------------------


class _Guard:
    """An allowed global: callable from a pickle, checking and charging sizes before it allocates."""

    def __init__(self, name: str, call: Callable[..., Any]) -> None:
        self.__name__ = name
        self.call = call

    def __call__(self, *args: Any) -> Any:
        return self.call(*args)

    def __repr__(self) -> str:
        return self.__name__


def _numpy_functions() -> tuple[Any, Any, Any]:
    # By value, so that files pickled under numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`)
    # both load on either.
    reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]
    scalar = np.float64(0).__reduce__()[0]
    from_buffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 (in-band buffers)
    return reconstruct, scalar, from_buffer


class _Constructors:
    """The allowed globals of one unpickling, all charging one budget."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self._reconstruct, self._scalar, self._frombuffer = _numpy_functions()
        self.ndarray = _Guard("numpy.ndarray", self.make_ndarray)
        self.object = _Guard("builtins.object", self.make_object)
        guards = [
            self.ndarray,
            self.object,
            _Guard("numpy.dtype", self.make_dtype),
            _Guard("builtins.bytearray", self.make_bytearray),
            _Guard("builtins.bytes", self.make_bytes),
            _Guard("builtins.set", self.make_set),
            _Guard("builtins.frozenset", self.make_frozenset),
            _Guard("builtins.complex", self.make_complex),
        ]
        table: dict[str, _Guard] = {}
        for guard in guards:
            short = guard.__name__.split(".")[-1]
            module = guard.__name__.rsplit(".", 1)[0]
            names = [module] if module == "numpy" else ["builtins", "__builtin__"]
            table.update({f"{m}.{short}": guard for m in names})
        numpy_calls = (
            ("multiarray._reconstruct", self.reconstruct),
            ("multiarray.scalar", self.scalar),
            ("numeric._frombuffer", self.frombuffer),
        )
        for core in ("numpy.core", "numpy._core"):
            for name, call in numpy_calls:
                table[f"{core}.{name}"] = _Guard(f"{core}.{name}", call)
        # Protocol 0/1 pickles build plain objects with copyreg._reconstructor; protocol-2 pickles
        # written by Python 3 carry bytes through _codecs.encode.
        for module in ("copy_reg", "copyreg"):
            table[f"{module}._reconstructor"] = _Guard(f"{module}._reconstructor", self.reconstructor)
        table["_codecs.encode"] = _Guard("_codecs.encode", self.codecs_encode)
        self.table = table

    # builtins

    def make_object(self) -> object:
        return object()

    def _byte_source(self, what: str, source: Any, encoding: Any) -> Any:
        """What `bytes(...)` / `bytearray(...)` may be built from, its size charged."""
        if encoding is not None:
            text = _latin1(source, encoding, what)
            self.budget.charge(len(text), what)
            return text.encode("latin-1")
        if isinstance(source, int) and not isinstance(source, bool):
            self.budget.charge(max(0, source), what)
            return source
        if isinstance(source, bytes | bytearray | list | tuple):
            self.budget.charge(len(source), what)
            return source
        raise UnsafePickleError(f"{what} of a {type(source).__name__}")

    def make_bytearray(self, source: Any = b"", encoding: Any = None, errors: Any = None) -> bytearray:
        return bytearray(self._byte_source("bytearray", source, encoding))

    def make_bytes(self, source: Any = b"", encoding: Any = None, errors: Any = None) -> bytes:
        """Protocol 2 writes an empty bytes object as `bytes()`."""
        return bytes(self._byte_source("bytes", source, encoding))

    def _items(self, items: Any, what: str) -> Any:
        if not isinstance(items, list | tuple | set | frozenset):
            raise UnsafePickleError(f"{what} of a {type(items).__name__}")
        self.budget.charge(ITEM_COST * (len(items) + 4), what)
        return items

    def make_set(self, items: Any = ()) -> set[Any]:
        return set(self._items(items, "set"))

    def make_frozenset(self, items: Any = ()) -> frozenset[Any]:
        return frozenset(self._items(items, "frozenset"))

    def make_complex(self, real: Any = 0, imag: Any = 0) -> complex:
        for part in (real, imag):
            if isinstance(part, bool) or not isinstance(part, int | float | str) or len(str(part)) > 100:
                raise pickle.UnpicklingError("complex of something that is not a short number")
        return complex(real, imag)

    def reconstructor(self, cls: Any, base: Any, state: Any) -> StateCapture:
        """copyreg._reconstructor(cls, object, None): an empty stand-in, nothing else."""
        if not (isinstance(cls, type) and issubclass(cls, StateCapture)) or base is not self.object:
            raise UnsafePickleError(
                f"copyreg._reconstructor of {printable(repr(cls))} on {printable(repr(base))}"
            )
        if state is not None:
            raise UnsafePickleError("copyreg._reconstructor with a base state")
        return cls.__new__(cls)

    def codecs_encode(self, text: Any, encoding: Any = "utf-8") -> bytes:
        checked = _latin1(text, encoding, "_codecs.encode")
        self.budget.charge(len(checked), "_codecs.encode")
        return checked.encode("latin-1")

    # numpy

    def make_dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        """numpy.dtype('f8', False, True) as numpy pickles it; structure comes via BUILD."""
        if not isinstance(align, bool | int):
            raise pickle.UnpicklingError("numpy.dtype: align is not a flag")
        dtype = _dtype_arg(spec, "numpy.dtype")
        # Always a copy: BUILD on a shared builtin dtype would change it for the whole process.
        return self.budget.check_itemsize(np.dtype(dtype, align=bool(align), copy=True), "numpy.dtype")

    def _nbytes(self, shape: tuple[int, ...], dtype: np.dtype, what: str) -> int:
        nbytes = math.prod(shape) * dtype.itemsize
        self.budget.charge(nbytes, f"{what} of shape {shape} × {dtype.itemsize} bytes")
        return nbytes

    def reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        """numpy's `_reconstruct(ndarray, (0,), b'b')`: a placeholder that BUILD then fills."""
        if subtype is not self.ndarray:
            raise UnsafePickleError(f"numpy._reconstruct of {printable(repr(subtype))}")
        dims = _shape(shape, "numpy._reconstruct")
        descr = self.budget.check_itemsize(_dtype_arg(dtype, "numpy._reconstruct"), "numpy._reconstruct")
        self._nbytes(dims, descr, "numpy._reconstruct")
        return self._reconstruct(np.ndarray, dims, descr)

    def make_ndarray(
        self, shape: Any, dtype: Any = float, buffer: Any = None, offset: Any = 0, *rest: Any
    ) -> np.ndarray:
        """numpy.ndarray(shape, dtype, buffer): new memory is charged, a buffer is only viewed."""
        dims = _shape(shape, "numpy.ndarray")
        descr = _dtype_arg(np.dtype(dtype) if dtype is float else dtype, "numpy.ndarray")
        if rest or not isinstance(offset, int):
            raise UnsafePickleError("numpy.ndarray with strides or order")
        if buffer is None:
            self._nbytes(dims, descr, "numpy.ndarray")
            return np.ndarray(dims, descr)
        if not isinstance(buffer, bytes | bytearray | memoryview | pickle.PickleBuffer):
            raise UnsafePickleError(f"numpy.ndarray over a {type(buffer).__name__}")
        return np.ndarray(dims, descr, memoryview(buffer), offset)

    def scalar(self, dtype: Any, obj: Any = None) -> Any:
        """numpy.core.multiarray.scalar(dtype, bytes): one item, copied from the bytes."""
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("numpy scalar without a dtype")
        self.budget.charge(dtype.itemsize, "numpy scalar")
        if not dtype.hasobject and not isinstance(obj, bytes | str):
            raise pickle.UnpicklingError("numpy scalar without its bytes")
        return self._scalar(dtype, obj)

    def frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any, *axis_order: Any) -> np.ndarray:
        """numpy's protocol-5 `_frombuffer`: a view of bytes the pickle holds (no copy)."""
        if not isinstance(buf, bytes | bytearray | memoryview | pickle.PickleBuffer):
            raise UnsafePickleError(f"numpy._frombuffer of a {type(buf).__name__}")
        dims = _shape(shape, "numpy._frombuffer")
        descr = _dtype_arg(dtype, "numpy._frombuffer")
        if math.prod(dims) * descr.itemsize != memoryview(buf).nbytes:
            raise pickle.UnpicklingError("numpy._frombuffer: the buffer does not match shape × dtype")
        return self._frombuffer(buf, descr, dims, order, *axis_order)

    # BUILD on numpy objects

    def set_array_state(self, array: np.ndarray, state: Any) -> None:
        """ndarray.__setstate__, once the data is known to match shape × dtype."""
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("numpy array state is not a 4- or 5-tuple")
        shape, dtype, _fortran, data = state[-4:]
        dims = _shape(shape, "numpy array")
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("numpy array state without a dtype")
        count = math.prod(dims)
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                held = len(data) if isinstance(data, list) else type(data).__name__
                raise pickle.UnpicklingError(f"numpy object array of {count} items holds {held}")
            self.budget.charge(8 * count, "numpy object array")
        else:
            if not isinstance(data, bytes | bytearray | str):
                raise pickle.UnpicklingError("numpy array data is not bytes")
            if len(data) != count * dtype.itemsize:
                raise pickle.UnpicklingError(
                    f"numpy array data holds {len(data)} bytes, shape {dims} × {dtype.itemsize} "
                    f"needs {count * dtype.itemsize}"
                )
            self._nbytes(dims, dtype, "numpy array")
        array.__setstate__(state)

    def set_dtype_state(self, dtype: np.dtype, state: Any) -> None:
        """dtype.__setstate__ (structured and subarray dtypes), sizes checked first."""
        if not isinstance(state, tuple) or not 5 <= len(state) <= 9:
            raise pickle.UnpicklingError("numpy dtype state is not a 5- to 9-tuple")
        for entry in state:
            if isinstance(entry, int) and not isinstance(entry, bool) and entry > self.budget.left:
                self.budget.charge(entry, "numpy dtype state")
        subarray = state[2]
        if subarray is not None:
            if not (isinstance(subarray, tuple) and len(subarray) == 2 and isinstance(subarray[0], np.dtype)):
                raise pickle.UnpicklingError("numpy dtype state: bad subarray")
            dims = _shape(subarray[1], "numpy subarray dtype")
            if math.prod(dims) * subarray[0].itemsize > self.budget.left:
                self._nbytes(dims, subarray[0], "numpy subarray dtype")
        fields = [entry for entry in state[3:5] if isinstance(entry, tuple | dict)]
        self.budget.charge(ITEM_COST * (sum(len(f) for f in fields) + 1), "numpy dtype fields")
        dtype.__setstate__(state)  # type: ignore[attr-defined]
        self.budget.check_itemsize(dtype, "numpy dtype")


# The unpickler -------------------------------------------------------------------------------------


class _ChunkedReader:
    """A binary file whose `read(n)` allocates what the file holds, not the n a pickle declares."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise pickle.UnpicklingError("unbounded read")
        if n <= _CHUNK:
            return self._raw.read(n)
        parts: list[bytes] = []
        while n > 0:
            part = self._raw.read(min(n, _CHUNK))
            if not part:
                break
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def readline(self) -> bytes:
        return self._raw.readline()


class _Dispatch(dict[int, Callable[[Any], None]]):
    def __missing__(self, code: int) -> Callable[[Any], None]:
        raise pickle.UnpicklingError(f"invalid load key {bytes([code])!r}")


class _BoundedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with the allowed globals, BUILD/REDUCE/NEWOBJ narrowed, and every
    opcode charged to the budget (see the module docstring)."""

    # Set by `pickle._Unpickler.load`.
    read: Callable[[int], bytes]
    append: Callable[[Any], None]
    stack: list[Any]
    memo: dict[int, Any]

    def __init__(self, stream: BinaryIO, budget: int) -> None:
        super().__init__(_ChunkedReader(stream), encoding="latin1")
        self.budget = _Budget(budget)
        self.constructors = _Constructors(self.budget)
        self._stand_ins: dict[str, type[StateCapture]] = {}

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        allowed = self.constructors.table.get(qualified)
        if allowed is not None:
            return allowed
        if qualified not in self._stand_ins:
            stand_in = _stand_in(module, name)
            if stand_in is None:
                raise UnsafePickleError(printable(qualified))
            self.budget.charge(CLASS_COST + len(qualified), "a class")
            self._stand_ins[qualified] = stand_in
        return self._stand_ins[qualified]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("a persistent reference")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(args, tuple):
            raise pickle.UnpicklingError("REDUCE arguments are not a tuple")
        if not isinstance(func, _Guard):
            raise UnsafePickleError(f"calling a {type(func).__name__}")
        self.stack[-1] = func(*args)

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        """INST / OBJ (protocols 0 and 1): an allowed call, or an empty stand-in."""
        if isinstance(klass, _Guard):
            self.append(klass(*args))
        elif isinstance(klass, type) and issubclass(klass, StateCapture) and not args:
            self.append(klass.__new__(klass))
        else:
            raise UnsafePickleError(f"instantiating a {type(klass).__name__}")

    def load_newobj(self) -> None:
        self.stack.pop()  # a stand-in takes no constructor arguments: they are ignored
        self.append(self._new_stand_in(self.stack.pop()))

    def load_newobj_ex(self) -> None:
        del self.stack[-2:]
        self.append(self._new_stand_in(self.stack.pop()))

    def _new_stand_in(self, cls: Any) -> StateCapture:
        if not (isinstance(cls, type) and issubclass(cls, StateCapture)):
            raise UnsafePickleError(f"NEWOBJ of {printable(repr(cls))}")
        return cls.__new__(cls)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.ndarray):
            self.constructors.set_array_state(inst, state)
        elif isinstance(inst, np.dtype):
            self.constructors.set_dtype_state(inst, state)
        elif isinstance(inst, StateCapture):
            inst.__setstate__(state)
        else:
            raise UnsafePickleError(f"setting the state of a {type(inst).__name__}")

    def load_bytearray8(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.budget.charge(size, "BYTEARRAY8")
        self.append(bytearray(data))


def _charged(load: Callable[[Any], None], cost: int) -> Callable[[Any], None]:
    def run(unpickler: _BoundedUnpickler) -> None:
        unpickler.budget.charge(cost, "building its objects")
        load(unpickler)

    return run


def _dispatch_table() -> _Dispatch:
    loads: dict[int, Callable[[Any], None]] = dict(pickle._Unpickler.dispatch)
    narrowed = {
        pickle.REDUCE: _BoundedUnpickler.load_reduce,
        pickle.NEWOBJ: _BoundedUnpickler.load_newobj,
        pickle.NEWOBJ_EX: _BoundedUnpickler.load_newobj_ex,
        pickle.BUILD: _BoundedUnpickler.load_build,
        pickle.BYTEARRAY8: _BoundedUnpickler.load_bytearray8,
    }
    loads.update({code[0]: load for code, load in narrowed.items()})
    costs = {code[0]: cost for code, cost in _OPCODE_COSTS.items()}
    return _Dispatch({code: _charged(load, costs.get(code, OPCODE_COST)) for code, load in loads.items()})


_BoundedUnpickler.dispatch = _dispatch_table()


def _input_size(stream: BinaryIO) -> int | None:
    """Bytes left in `stream`, or None when it cannot tell."""
    try:
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return max(0, end - here)


def restricted_unpickle(stream: BinaryIO, *, budget: int | None = None) -> Any:
    """Unpickle data made of numpy arrays and plain containers (Python 2 pickles too), nothing else.

    The one restricted unpickler of the project: MANO files and the pickled annotations of public
    hand datasets go through it, so a data file can neither name a class or function that runs
    code nor make us allocate more than `budget` bytes (default: `pickle_budget` of the bytes
    left in `stream`). chumpy / scipy.sparse objects come back as inert `StateCapture` stand-ins.
    Raises `UnsafePickleError`, `PickleBudgetError` or another `pickle.UnpicklingError`.
    """
    limit = pickle_budget(_input_size(stream)) if budget is None else budget
    try:
        return _BoundedUnpickler(stream, limit).load()
    except pickle.UnpicklingError:
        raise
    except (EOFError, struct.error) as err:
        raise pickle.UnpicklingError("pickle data was truncated") from err
    except Exception as err:  # truncated, a bad opcode argument, numpy refusing a state…
        raise pickle.UnpicklingError(printable(f"{type(err).__name__}: {err}", 200)) from err
