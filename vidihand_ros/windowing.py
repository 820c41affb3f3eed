"""Cut a frame stream into fixed-length windows for the estimator, streaming.

The estimator wants exactly W consecutive frames, so the Windower buffers at most W frames and hands
out a window as soon as it is complete. A jump in time (a dropped recording, a new bag, a clock
reset) must not be smoothed over by a temporal model, so such a jump starts a new segment and no
window ever spans two segments. A segment's tail that no full window covers gets one padded window,
so every frame is estimated at least once without waiting for frames that will never come.
"""

from __future__ import annotations

from collections import deque

from vidihand_ros.types import Frame, Window

DEFAULT_WINDOW = 81
DEFAULT_GAP_NS = 500_000_000


def resolve_stride(window: int, stride: int | None) -> int:
    """Validate (window, stride) and return the stride (default: `window`, i.e. no overlap).

    A stride larger than the window would skip frames, so it is rejected.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    stride = window if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in 1..window ({window}), got {stride}")
    return stride


class Windower:
    """Streams windows of `window` frames, starting every `stride` frames within a segment.

    A stamp jump larger than `gap_ns`, or any backward jump, between consecutive frames starts a new
    segment. `flush()` ends the stream (a later `push` starts a new segment; stream indices keep
    counting).
    """

    def __init__(self, window: int = DEFAULT_WINDOW, stride: int | None = None, gap_ns: int = DEFAULT_GAP_NS):
        self.stride = resolve_stride(window, stride)
        if gap_ns < 0:
            raise ValueError(f"gap_ns must be >= 0, got {gap_ns}")
        self.window = window
        self.gap_ns = gap_ns
        # Frames from the next window's start onwards; never more than `window` of them.
        self._buffer: deque[Frame] = deque()
        self._buffer_start = 0  # stream index of _buffer[0]
        self._pushed = 0  # frames pushed so far (the next frame's stream index)
        self._segment = -1
        self._segment_len = 0  # frames of the current segment pushed so far
        self._covered = 0  # segment positions below this lie in an emitted window
        self._last_stamp: int | None = None

    @property
    def buffered(self) -> int:
        """Frames held now (at most `window`)."""
        return len(self._buffer)

    @property
    def segment(self) -> int:
        """Index of the current segment (-1 before the first frame); windows carry it too."""
        return self._segment

    @property
    def buffered_frames(self) -> list[Frame]:
        return list(self._buffer)

    def push(self, frame: Frame) -> list[Window]:
        """Add the next frame; return the windows it completes (possibly a padded segment tail)."""
        out = self._end_segment() if self._breaks_segment(frame.stamp_ns) else []
        if self._segment_len == 0:
            self._segment += 1
            self._buffer_start = self._pushed
        self._buffer.append(frame)
        self._pushed += 1
        self._segment_len += 1
        self._last_stamp = frame.stamp_ns
        if len(self._buffer) == self.window:
            out.append(Window(list(self._buffer), self._buffer_start, self.window, self._segment))
            self._covered = self._segment_len
            for _ in range(self.stride):
                self._buffer.popleft()
            self._buffer_start += self.stride
        return out

    def flush(self) -> list[Window]:
        """End the stream: return the padded tail window of the last segment, if it needs one."""
        return self._end_segment()

    def _breaks_segment(self, stamp_ns: int) -> bool:
        if self._last_stamp is None:
            return False
        step = stamp_ns - self._last_stamp
        return step < 0 or step > self.gap_ns

    def _end_segment(self) -> list[Window]:
        out: list[Window] = []
        if self._segment_len > self._covered:
            # The uncovered frames are all in the buffer, which starts at the next stride position.
            frames = list(self._buffer)
            num_valid = len(frames)
            frames.extend([frames[-1]] * (self.window - num_valid))
            out.append(Window(frames, self._buffer_start, num_valid, self._segment))
        self._buffer.clear()
        self._segment_len = 0
        self._covered = 0
        self._last_stamp = None
        return out
