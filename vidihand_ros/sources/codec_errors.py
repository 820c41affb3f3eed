"""The exceptions the libraries under rosbags raise for damaged data, imported where available.

Kept in one place so that every reader (bag opening, message iteration, the mcap chunk check)
turns the same set into an InputError:

- sqlite3 bags: rosbags reads them with apsw (`apsw.Error`: CorruptError for a truncated or
  damaged database, raised while iterating rows, not only when opening); older rosbags used
  the standard `sqlite3` module (`sqlite3.Error`).
- zstd chunks (mcap, ROS 2 file compression): `ZstdError` (backports.zstd / compression.zstd).
- lz4 chunks (mcap, ROS 1): lz4.frame raises a plain `RuntimeError` ("LZ4F_decompress failed").
- bz2 chunks (ROS 1): `OSError` ("Invalid data stream") or `ValueError` (data cut off).
- short reads of a cut-off file: `EOFError`, `OSError`.
"""

from __future__ import annotations

import importlib
import sqlite3


def _optional(module: str, name: str) -> tuple[type[Exception], ...]:
    """(module.name,) when the module is installed, else ()."""
    try:
        error: type[Exception] = getattr(importlib.import_module(module), name)
    except ImportError:
        return ()
    return (error,)


#: Damaged compressed data (and cut-off files).
DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (
    *_optional("backports.zstd", "ZstdError"),
    *_optional("compression.zstd", "ZstdError"),  # Python ≥ 3.14
    RuntimeError,
    EOFError,
    ValueError,
    OSError,
)
#: Damaged sqlite3 databases, whichever binding rosbags uses.
DATABASE_ERRORS: tuple[type[Exception], ...] = (*_optional("apsw", "Error"), sqlite3.Error)
