"""The Sink protocol: where stitched `(frame, poses)` pairs go (dataset, pose bag, ROS publisher).

Front ends hand every pair to a list of sinks, so adding an output never touches the loop. Sinks
that keep episodes (the dataset) also take episode boundaries; the others ignore them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from vidihand_ros.errors import InputError
from vidihand_ros.types import Frame, FramePoses


@runtime_checkable
class Sink(Protocol):
    """Takes each frame with its poses (None: no estimate), in frame order."""

    #: Named in errors, e.g. "dataset out/demo.zarr".
    name: str

    def write(self, frame: Frame, poses: FramePoses | None) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class EpisodeSink(Sink, Protocol):
    """A sink that groups frames into episodes: begin, write…, then end (commit) or abort."""

    def begin_episode(self, attrs: Mapping[str, Any]) -> None: ...

    def end_episode(self, attrs: Mapping[str, Any] | None = None) -> None: ...

    def abort_episode(self) -> None: ...


class SinkError(InputError):
    """A sink failed (disk full, closed bag, …); the message names the sink."""


def write_all(sinks: Sequence[Sink], pairs: Iterable[tuple[Frame, FramePoses | None]]) -> int:
    """Hand each pair to every sink; returns the number of pairs. Errors name the failing sink."""
    count = 0
    for frame, poses in pairs:
        for sink in sinks:
            try:
                sink.write(frame, poses)
            except InputError:
                raise  # about the input (e.g. a frame of another size): it names the input already
            except Exception as err:
                raise SinkError(f"{sink.name}: {type(err).__name__}: {err}", index=frame.index) from err
        count += 1
    return count


def episode_sinks(sinks: Sequence[Sink]) -> list[EpisodeSink]:
    return [sink for sink in sinks if isinstance(sink, EpisodeSink)]
