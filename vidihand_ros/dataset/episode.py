"""One episode being written: frames in, commit or roll back.

Images are written as chunks immediately (they are the bulk of the data and need no buffering);
low-dimensional rows go to the dataset writer's `RowBuffer`, shared by consecutive episodes. Both
land past the arrays' shape and become visible only when the writer publishes the episode.
A live capture writes each image the moment it arrives (`stage`) and the frame's row once its
poses and co-recorded values are known (`add_staged`, in frame order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from vidihand_ros.dataset.attrs import to_json, utc_now
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import Frame, FramePoses


class EpisodeStore(Protocol):
    """What an episode needs from its dataset (`DatasetWriter` implements it)."""

    path: Path
    session: int

    @property
    def num_frames(self) -> int: ...

    @property
    def num_episodes(self) -> int: ...

    @property
    def image_size(self) -> tuple[int, int] | None: ...

    @property
    def jpeg_quality(self) -> int: ...

    def store_image(self, row: int, frame: Frame, index: int) -> tuple[bool, tuple[float, float]]: ...

    def store_row(
        self,
        row: int,
        frame: Frame,
        poses: FramePoses | None,
        scale: tuple[float, float],
        extras: Mapping[str, np.ndarray | float] | None = None,
    ) -> None: ...

    def commit_episode(self, record: dict[str, Any], end: int) -> int: ...

    def discard_uncommitted(self) -> None: ...

    def episode_closed(self) -> None: ...


@dataclass(frozen=True)
class StagedFrame:
    """A frame whose image is written and whose row is still to come (`EpisodeWriter.add_staged`).

    `frame` keeps the metadata only (stamp, frame_id, size, camera): the bytes are on disk.
    """

    frame: Frame
    row: int
    scale: tuple[float, float]
    passed_through: bool


def _metadata_only(frame: Frame) -> Frame:
    return dataclasses.replace(frame, data=b"", pixels=None)


class EpisodeWriter:
    """Appends frames to the dataset's next episode; `commit()` publishes it, `abort()` drops it.

    As a context manager it commits on success and aborts on an exception. `attrs` is the episode's
    record in `meta` attrs and may be updated until commit.
    """

    def __init__(self, writer: EpisodeStore, attrs: dict[str, Any]) -> None:
        self._writer = writer
        self.attrs = attrs
        self.start = writer.num_frames
        self.num_frames = 0
        self.num_staged = 0
        self.passthrough_frames = 0
        self.reencoded_frames = 0
        self._first_stamp: int | None = None
        self._last_stamp: int | None = None
        self._frame_id = ""
        self._source_size: tuple[int, int] | None = None
        self._distortion_models: set[str] = set()
        self._closed = False

    def add(
        self,
        frame: Frame,
        poses: FramePoses | None = None,
        extras: Mapping[str, np.ndarray | float] | None = None,
    ) -> None:
        """Append one frame and its poses (None: no estimate for this frame) and extra keys' values.

        A frame whose row is refused (poses of another stamp) leaves the episode as it was."""
        staged = self.stage(frame)
        try:
            self.add_staged(staged, poses, extras)
        except BaseException:
            self.num_staged -= 1  # the next frame's image replaces this one's
            raise

    def stage(self, frame: Frame) -> StagedFrame:
        """Write the frame's image now; its row follows with `add_staged`, in the same order."""
        if self._closed:
            raise DatasetError("episode already committed or aborted", source=self._writer.path)
        row = self.start + self.num_staged
        passed, scale = self._writer.store_image(row, frame, self.num_staged)
        self.num_staged += 1
        return StagedFrame(_metadata_only(frame), row, scale, passed)

    def add_staged(
        self,
        staged: StagedFrame,
        poses: FramePoses | None = None,
        extras: Mapping[str, np.ndarray | float] | None = None,
    ) -> None:
        """Write the row of the oldest staged frame: its poses and extra keys' values."""
        if self._closed:
            raise DatasetError("episode already committed or aborted", source=self._writer.path)
        row = self.start + self.num_frames
        if staged.row != row:
            raise RuntimeError(f"staged row {staged.row} added out of order (expected {row})")
        frame, passed = staged.frame, staged.passed_through
        self._writer.store_row(row, frame, poses, staged.scale, extras)
        self.num_frames += 1
        if passed:
            self.passthrough_frames += 1
        else:
            self.reencoded_frames += 1
        if self._first_stamp is None:
            self._first_stamp = frame.stamp_ns
            self._frame_id = frame.frame_id
            self._source_size = (frame.width, frame.height)
        self._last_stamp = frame.stamp_ns
        if frame.camera is not None and frame.camera.distortion_model:
            self._distortion_models.add(frame.camera.distortion_model)

    def commit(self) -> int | None:
        """Commit the episode; returns its index, or None for an episode without frames (dropped).

        The writer publishes it now or with the next group of episodes (`commit_interval_s`).
        """
        if self._closed:
            raise DatasetError("episode already committed or aborted", source=self._writer.path)
        if self.num_staged != self.num_frames:
            raise RuntimeError(f"{self.num_staged - self.num_frames} staged frames have no row yet")
        if self.num_frames == 0:
            self.abort()
            return None
        try:
            index = self._writer.commit_episode(self._record(), self.start + self.num_frames)
        except BaseException:
            self.abort()
            raise
        self._close()
        return index

    def abort(self) -> None:
        """Drop everything written since `begin_episode` (the dataset is as it was)."""
        if self._closed:
            return
        self._closed = True  # before discarding: a failed discard leaves no half-open episode
        try:
            self._writer.discard_uncommitted()
        finally:
            self._writer.episode_closed()

    def _close(self) -> None:
        self._closed = True
        self._writer.episode_closed()

    def _record(self) -> dict[str, Any]:
        """The episode's meta record: caller attrs plus what the writer knows (which wins)."""
        size = self._writer.image_size
        return to_json(
            {
                **self.attrs,
                "index": self._writer.num_episodes,
                "start_row": self.start,
                "num_frames": self.num_frames,
                "start_stamp_ns": self._first_stamp,
                "end_stamp_ns": self._last_stamp,
                "frame_id": self._frame_id,
                "source_image_size": list(self._source_size) if self._source_size else None,
                "image_size": list(size) if size else None,
                "camera0_distortion_models": sorted(self._distortion_models),
                "passthrough_frames": self.passthrough_frames,
                "reencoded_frames": self.reencoded_frames,
                "jpeg_quality": self._writer.jpeg_quality,
                "session": self._writer.session,
                "committed": utc_now(),
            }
        )

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()
