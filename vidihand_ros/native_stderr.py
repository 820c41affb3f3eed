"""Hiding native libraries' log lines (MediaPipe, TFLite, absl) while Python's stderr stays as it is.

MediaPipe's C++ code logs through absl and TFLite, which write straight to file descriptor 2:
`GLOG_minloglevel` and friends do not reach them, and the lines land in the progress bar and
before our one-line errors. `native_stderr_filtered()` points fd 2 at a pipe that a thread drains:
INFO and WARNING lines in those libraries' formats are dropped, anything else (an `E`/`F` line,
`ERROR: ...`, text that is no log line at all) is passed on, so a real native failure stays
visible. Python's own stderr users (`sys.stderr`, and root logging handlers on fd 2) are moved to a
copy of the real fd 2 meanwhile, so errors, warnings, tracebacks and the progress bar still reach
the terminal (and `isatty()` still tells the truth). Everything is put back on exit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["NOISE", "NativeStderr", "is_noise", "native_stderr_filtered"]

#: Lines dropped: absl/glog INFO and WARNING (`I0000 00:00:...`, `W0000 ...`) and TFLite's minimal
#: logger below ERROR (`INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`, `WARNING: ...`).
NOISE = re.compile(rb"(?:[IW]\d{4} [\d:.]+ +\d+ [^\]\s]+\]|(?:INFO|WARNING|VERBOSE): )")

#: The longest leaving the context waits for the drain thread: reached only if a child process
#: started inside still holds the pipe open (the thread then finishes on its own, as a daemon).
JOIN_TIMEOUT_S = 2.0


def is_noise(line: bytes) -> bool:
    """Whether a native stderr line is routine logging (hidden by default, shown with -v)."""
    return NOISE.match(line) is not None


@dataclass
class NativeStderr:
    """What the context did: `active` is False when fd 2 could not be redirected (closed, no pipes)."""

    active: bool = False
    #: Native lines hidden so far (read it after the context: the thread counts them).
    dropped: int = 0
    #: Native lines passed on to the real stderr.
    forwarded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _count(self, noise: bool) -> None:
        with self._lock:
            if noise:
                self.dropped += 1
            else:
                self.forwarded += 1


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[NativeStderr]:
    """Within the context, fd 2 goes through the noise filter and Python writes to the real stderr.

    Safe when stderr is a pipe or a file (CI, tests) and when `sys.stderr` is not on fd 2 at all
    (pytest's capture): then `sys.stderr` is left alone and only fd 2 is filtered. If fd 2 cannot
    be redirected (it is closed, out of descriptors or threads), the body runs with nothing changed.
    """
    state = NativeStderr()
    _flush(sys.stderr)
    _flush(sys.__stderr__)
    started = _redirect(state)
    if started is None:
        yield state
        return
    saved, drain = started
    state.active = True
    real = _text_stream(saved, sys.stderr)  # owns `saved`
    moved = _Moved()
    try:
        moved = _move_python_stderr(real)
        yield state
    finally:
        _flush(real)
        _put_back_python_stderr(real, moved)
        os.dup2(saved, 2)  # closes the pipe's last write end (unless a child holds a copy): the drain ends
        drain.join(JOIN_TIMEOUT_S)
        real.close()


def _redirect(state: NativeStderr) -> tuple[int, threading.Thread] | None:
    """Save fd 2, point it at a new pipe and start the thread that filters the pipe onto the saved
    fd; returns (saved fd, thread), or None with everything as it was if any step fails."""
    opened: list[int] = []
    try:
        saved = os.dup(2)
        opened.append(saved)
        read_end, write_end = os.pipe()
        opened += [read_end, write_end]
        forward = os.dup(saved)
        opened.append(forward)
        thread = threading.Thread(
            target=_drain, args=(read_end, forward, state), name="native-stderr", daemon=True
        )
        os.dup2(write_end, 2)
        try:
            thread.start()  # from here on the thread owns read_end and forward
        except RuntimeError:
            os.dup2(saved, 2)
            raise
    except (OSError, RuntimeError):
        for fd in opened:
            os.close(fd)
        return None
    os.close(write_end)  # fd 2 is now the only write end
    return saved, thread


def _drain(read_end: int, forward: int, state: NativeStderr) -> None:
    """Read native lines until every write end is closed; pass on those that are not noise."""
    with open(read_end, "rb", closefd=True) as lines, open(forward, "wb", closefd=True) as out:
        for line in lines:
            noise = is_noise(line)
            state._count(noise)
            if noise:
                continue
            with contextlib.suppress(OSError, ValueError):  # the real stderr went away: drop it
                out.write(line)
                out.flush()


def _text_stream(fd: int, like: IO[str] | None) -> io.TextIOWrapper:
    """A line-buffered text stream on `fd` with the encoding and error handling of `like`."""
    encoding = getattr(like, "encoding", None) or "utf-8"
    errors = getattr(like, "errors", None) or "backslashreplace"
    # Line buffered, not write-through: `print` writes the text and the newline separately, and a
    # line must reach the fd in one write so that the drain thread's lines cannot split it.
    binary = open(fd, "wb", closefd=True)  # noqa: SIM115 (owned by the text stream)
    return io.TextIOWrapper(binary, encoding=encoding, errors=errors, line_buffering=True)


@dataclass
class _Moved:
    """What `_move_python_stderr` changed, to undo exactly that."""

    stderr: IO[str] | None = None
    handlers: list[tuple[logging.StreamHandler[Any], Any]] = field(default_factory=list)


def _move_python_stderr(real: io.TextIOWrapper) -> _Moved:
    """Rebind `sys.stderr` and root logging handlers that write to fd 2 onto `real`."""
    moved = _Moved()
    if _on_fd_2(sys.stderr):
        moved.stderr = sys.stderr
        sys.stderr = real
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and _on_fd_2(handler.stream):
            moved.handlers.append((handler, handler.setStream(real)))
    return moved


def _put_back_python_stderr(real: io.TextIOWrapper, moved: _Moved) -> None:
    """Undo `_move_python_stderr` where nobody has replaced our stream since."""
    if moved.stderr is not None and sys.stderr is real:
        sys.stderr = moved.stderr
    for handler, stream in moved.handlers:
        if handler.stream is real:
            handler.setStream(stream)


def _on_fd_2(stream: object) -> bool:
    """Whether a Python stream writes to file descriptor 2 (pytest's capture streams do not)."""
    try:
        return bool(stream.fileno() == 2)  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):  # None, closed, io.UnsupportedOperation
        return False


def _flush(stream: object) -> None:
    """Flush a stream if it can be, so text written before the switch is not reordered."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        stream.flush()  # type: ignore[attr-defined]
