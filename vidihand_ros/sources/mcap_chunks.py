"""Which chunk of an mcap file is damaged, so that the error can name it.

rosbags' mcap reader already checks each Chunk record as it decompresses it (`uncompressed_crc`,
the crc32 of the decompressed records, when the writer set it: the ROS 2 mcap plugin does; 0 means
unset, as rosbags' own writer leaves it), and raises "Chunk checksum mismatch." without saying
where. A mismatch stops the conversion (`bag.py`): a CRC covers a whole chunk, every topic and the
records' framing in it, so which frames are wrong cannot be told, and rosbags cannot read past the
chunk. This module runs only after such an error: it walks the file's records one chunk at a time
(memory: one chunk) and reports the first that does not decompress or check out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from rosbags.rosbag2 import ReaderError

from vidihand_ros.sources.codec_errors import DECOMPRESSION_ERRORS

Decompress = Callable[[bytes, str, int, int], bytes]
_decompress: Decompress | None
try:  # rosbags' own chunk check (decompress, size, CRC), so the diagnosis matches the reader's
    from rosbags.rosbag2.storage_mcap import decompress as _decompress
except ImportError:  # pragma: no cover - a rosbags without it: no chunk is named
    _decompress = None

_MAGIC = b"\x89MCAP0\r\n"
_CHUNK, _FOOTER, _DATA_END = 0x06, 0x02, 0x0F
#: What decompressing or checking one damaged chunk can raise.
_CHUNK_ERRORS: tuple[type[Exception], ...] = (ReaderError, *DECOMPRESSION_ERRORS)


def mcap_files(path: Path) -> list[Path]:
    """The mcap storage files of a bag (the file itself, or those in a ROS 2 bag directory)."""
    if path.is_file():
        return [path] if path.suffix.lower() == ".mcap" else []
    return sorted(p for p in path.glob("*.mcap") if p.is_file()) if path.is_dir() else []


def find_damaged_chunk(path: Path) -> str | None:
    """'FILE: chunk at byte N (log times A–B s): why' for the first damaged chunk of
    the bag's mcap files; None when every chunk checks out (or none can be walked)."""
    if _decompress is None:
        return None
    for file in mcap_files(path):
        try:
            found = _first_damaged_chunk(file, _decompress)
        except OSError:
            return None
        if found is not None:
            return f"{file.name}: {found}"
    return None


def _first_damaged_chunk(file: Path, decompress: Decompress) -> str | None:
    with file.open("rb") as f:
        if f.read(8) != _MAGIC:
            return None
        size = file.stat().st_size
        while True:
            offset = f.tell()
            head = f.read(9)
            if len(head) < 9:
                return None
            opcode, length = head[0], struct.unpack("<Q", head[1:])[0]
            if opcode in (_FOOTER, _DATA_END) or offset + 9 + length > size:
                return None
            if opcode != _CHUNK:
                f.seek(length, 1)
                continue
            problem, start_ns, end_ns = _check_chunk(f.read(length), decompress)
            if problem:
                return (
                    f"chunk at byte {offset} (log times {start_ns / 1e9:.3f}–{end_ns / 1e9:.3f} s): {problem}"
                )


def _check_chunk(body: bytes, decompress: Decompress) -> tuple[str | None, int, int]:
    """(what is wrong or None, message start ns, message end ns) of one Chunk record's body."""
    try:
        start_ns, end_ns, size, crc, name_len = struct.unpack_from("<QQQII", body)
        compression = body[32 : 32 + name_len].decode()
        (records_len,) = struct.unpack_from("<Q", body, 32 + name_len)
        records = body[40 + name_len : 40 + name_len + records_len]
    except (struct.error, UnicodeDecodeError):
        return "chunk record cut off or garbled", 0, 0
    try:
        decompress(records, compression, size, crc)
    except _CHUNK_ERRORS as err:
        text = str(err).strip() or type(err).__name__
        return text.splitlines()[0].rstrip("."), start_ns, end_ns
    return None, start_ns, end_ns
