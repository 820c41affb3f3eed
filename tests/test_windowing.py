"""Windower: fixed-length windows, segments at time gaps, padded tails, bounded buffering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidihand_ros.types import Frame, Window
from vidihand_ros.windowing import Windower, resolve_stride

STEP_NS = 33_000_000
GAP_NS = 500_000_000


def make_frame(stamp_ns: int, index: int = 0) -> Frame:
    return Frame(stamp_ns=stamp_ns, frame_id="cam", encoding="jpeg", width=1, height=1, data=b"", index=index)


def frames_at(stamps: list[int]) -> list[Frame]:
    return [make_frame(s, i) for i, s in enumerate(stamps)]


def run(windower: Windower, frames: list[Frame]) -> list[tuple[int | None, Window]]:
    """All windows, each with the stream index of the push that returned it (None: flush)."""
    out: list[tuple[int | None, Window]] = []
    for i, frame in enumerate(frames):
        out.extend((i, w) for w in windower.push(frame))
    out.extend((None, w) for w in windower.flush())
    return out


def summary(windows: list[Window], frames: list[Frame]) -> list[tuple[int, int, int, list[int]]]:
    """(start, num_valid, segment, stream indices of all W frames) per window."""
    index = {id(f): i for i, f in enumerate(frames)}
    return [(w.start, w.num_valid, w.segment, [index[id(f)] for f in w.frames]) for w in windows]


# --- explicit examples --------------------------------------------------------------------------


def test_w4_s2_seven_frames_by_hand() -> None:
    frames = frames_at([i * STEP_NS for i in range(7)])
    windower = Windower(window=4, stride=2, gap_ns=GAP_NS)
    returned = [[(w.start, w.num_valid) for w in windower.push(f)] for f in frames]
    assert returned == [[], [], [], [(0, 4)], [], [(2, 4)], []]
    tail = windower.flush()
    assert [(w.start, w.num_valid, w.segment) for w in tail] == [(4, 3, 0)]
    assert tail[0].frames == [frames[4], frames[5], frames[6], frames[6]]
    assert tail[0].valid_frames == frames[4:7]
    assert windower.flush() == []


def test_w4_s2_six_frames_need_no_tail() -> None:
    frames = frames_at([i * STEP_NS for i in range(6)])
    windows = [w for _, w in run(Windower(4, 2), frames)]
    assert summary(windows, frames) == [(0, 4, 0, [0, 1, 2, 3]), (2, 4, 0, [2, 3, 4, 5])]


def test_default_stride_is_window_and_defaults() -> None:
    windower = Windower()
    assert (windower.window, windower.stride, windower.gap_ns) == (81, 81, 500_000_000)
    frames = frames_at([i * STEP_NS for i in range(5)])
    windows = [w for _, w in run(Windower(window=2), frames)]
    assert summary(windows, frames) == [(0, 2, 0, [0, 1]), (2, 2, 0, [2, 3]), (4, 1, 0, [4, 4])]


def test_gap_starts_new_segment_and_pads_the_old_tail() -> None:
    stamps = [0, STEP_NS, 2 * STEP_NS, 2 * STEP_NS + GAP_NS + 1, 3 * STEP_NS + GAP_NS + 1]
    frames = frames_at(stamps)
    out = run(Windower(window=2, stride=1, gap_ns=GAP_NS), frames)
    assert [(pushed_at, w.start) for pushed_at, w in out] == [(1, 0), (2, 1), (4, 3)]
    # Frame 2 is covered by the full window at 1, so segment 0 needs no padded tail.
    assert summary([w for _, w in out], frames) == [
        (0, 2, 0, [0, 1]),
        (1, 2, 0, [1, 2]),
        (3, 2, 1, [3, 4]),
    ]


def test_step_of_exactly_gap_ns_keeps_the_segment() -> None:
    frames = frames_at([0, GAP_NS, 2 * GAP_NS])
    windows = [w for _, w in run(Windower(window=3, gap_ns=GAP_NS), frames)]
    assert summary(windows, frames) == [(0, 3, 0, [0, 1, 2])]


def test_backward_jump_starts_new_segment_and_equal_stamps_do_not() -> None:
    frames = frames_at([10 * STEP_NS, 10 * STEP_NS, 0, STEP_NS])
    windows = [w for _, w in run(Windower(window=3, stride=2), frames)]
    assert summary(windows, frames) == [(0, 2, 0, [0, 1, 1]), (2, 2, 1, [2, 3, 3])]


def test_push_after_flush_starts_new_segment_and_keeps_counting() -> None:
    frames = frames_at([0, STEP_NS, 2 * STEP_NS])
    windower = Windower(window=2)
    first = [w for f in frames[:1] for w in windower.push(f)] + windower.flush()
    second = [w for f in frames[1:] for w in windower.push(f)] + windower.flush()
    assert summary(first + second, frames) == [(0, 1, 0, [0, 0]), (1, 2, 1, [1, 2])]


def test_window_of_one() -> None:
    frames = frames_at([0, STEP_NS, 10 * GAP_NS])
    windows = [w for _, w in run(Windower(window=1), frames)]
    assert summary(windows, frames) == [(0, 1, 0, [0]), (1, 1, 0, [1]), (2, 1, 1, [2])]


def test_empty_stream() -> None:
    assert Windower(4, 2).flush() == []


@pytest.mark.parametrize(
    ("window", "stride", "gap_ns"),
    [(0, None, GAP_NS), (-1, None, GAP_NS), (4, 5, GAP_NS), (4, 0, GAP_NS), (4, -2, GAP_NS), (4, 2, -1)],
)
def test_invalid_parameters_are_rejected(window: int, stride: int | None, gap_ns: int) -> None:
    with pytest.raises(ValueError):
        Windower(window, stride, gap_ns)


def test_resolve_stride() -> None:
    assert resolve_stride(5, None) == 5
    assert resolve_stride(5, 1) == 1
    with pytest.raises(ValueError, match="stride"):
        resolve_stride(5, 6)


# --- properties ---------------------------------------------------------------------------------


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """(window, stride, stamps) with time gaps, backward jumps and repeated stamps at random places."""
    window = draw(st.integers(1, 12))
    stride = draw(st.integers(1, window))
    n = draw(st.integers(0, 300))
    steps = draw(
        st.lists(
            st.sampled_from([STEP_NS] * 6 + [0, GAP_NS, GAP_NS + 1, 3 * GAP_NS, -STEP_NS]),
            min_size=n,
            max_size=n,
        )
    )
    stamps: list[int] = []
    stamp = 10 * GAP_NS
    for step in steps:
        stamp += step
        stamps.append(stamp)
    return window, stride, stamps


def reference_segments(stamps: list[int]) -> list[int]:
    """Segment number of each frame, straight from the definition."""
    segments: list[int] = []
    for i, stamp in enumerate(stamps):
        step = stamp - stamps[i - 1] if i else 0
        new = i > 0 and (step < 0 or step > GAP_NS)
        segments.append(segments[-1] + new if i else 0)
    return segments


def reference_windows(window: int, stride: int, segments: list[int]) -> list[tuple[int, int, int]]:
    """(start, num_valid, segment) of every window, computed per whole segment (not streaming)."""
    out: list[tuple[int, int, int]] = []
    first = 0
    for segment in sorted(set(segments)):
        length = segments.count(segment)
        starts = list(range(0, length - window + 1, stride))
        out.extend((first + s, window, segment) for s in starts)
        covered = starts[-1] + window if starts else 0
        if covered < length:
            tail = starts[-1] + stride if starts else 0
            out.append((first + tail, length - tail, segment))
        first += length
    return out


@settings(max_examples=150, deadline=None)
@given(streams())
def test_windows_match_the_definition(stream: tuple[int, int, list[int]]) -> None:
    window, stride, stamps = stream
    frames = frames_at(stamps)
    windows = [w for _, w in run(Windower(window, stride, GAP_NS), frames)]
    segments = reference_segments(stamps)
    assert [(w.start, w.num_valid, w.segment) for w in windows] == reference_windows(window, stride, segments)


@settings(max_examples=150, deadline=None)
@given(streams())
def test_window_invariants(stream: tuple[int, int, list[int]]) -> None:
    window, stride, stamps = stream
    frames = frames_at(stamps)
    segments = reference_segments(stamps)
    windower = Windower(window, stride, GAP_NS)
    out: list[tuple[int | None, Window]] = []
    for i, frame in enumerate(frames):
        out.extend((i, w) for w in windower.push(frame))
        assert windower.buffered <= window
    out.extend((None, w) for w in windower.flush())
    assert windower.buffered == 0

    covered: set[int] = set()
    for k, (pushed_at, w) in enumerate(out):
        assert len(w) == window
        assert 1 <= w.num_valid <= window
        valid = list(range(w.start, w.start + w.num_valid))
        assert w.valid_frames == [frames[i] for i in valid]
        assert w.frames[w.num_valid :] == [frames[valid[-1]]] * (window - w.num_valid)
        assert {segments[i] for i in valid} == {w.segment}
        covered.update(valid)
        later_same_segment = [v for _, v in out[k + 1 :] if v.segment == w.segment]
        if w.num_valid < window:
            # Padding only at a segment's tail: the last window of its segment, ending at its last frame.
            assert not later_same_segment
            assert valid[-1] + 1 == len(frames) or segments[valid[-1] + 1] != w.segment
        else:
            # A full window is handed out by the push of its last frame.
            assert pushed_at == w.start + window - 1
        if later_same_segment:
            assert later_same_segment[0].start == w.start + stride
    assert covered == set(range(len(frames)))
    assert [w.segment for _, w in out] == sorted(w.segment for _, w in out)
