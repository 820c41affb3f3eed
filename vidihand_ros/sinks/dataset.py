"""The Zarr dataset as a Sink: each episode of the front end becomes one committed episode.

The writer publishes committed episodes in groups (`DatasetWriter.commit_interval_s`); a front end
calls `publish()` where a group should end, e.g. after each input file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vidihand_ros.dataset.episode import EpisodeWriter
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.errors import DatasetError
from vidihand_ros.types import Frame, FramePoses


class DatasetSink:
    """Implements EpisodeSink over an open `DatasetWriter` (which the caller opens and closes)."""

    def __init__(self, writer: DatasetWriter) -> None:
        self.writer = writer
        self.name = f"dataset {writer.path}"
        self._episode: EpisodeWriter | None = None
        #: The last episode ended (committed), for its counts.
        self.last_episode: EpisodeWriter | None = None

    def begin_episode(self, attrs: Mapping[str, Any]) -> None:
        self._episode = self.writer.begin_episode(attrs)

    def write(self, frame: Frame, poses: FramePoses | None) -> None:
        if self._episode is None:
            raise DatasetError("no episode begun; frames belong to an episode", source=self.writer.path)
        self._episode.add(frame, poses)

    def end_episode(self, attrs: Mapping[str, Any] | None = None) -> None:
        """Commit the episode, with `attrs` added to its record."""
        episode, self._episode = self._episode, None
        if episode is None:
            return
        episode.attrs.update(attrs or {})
        episode.commit()
        self.last_episode = episode

    def publish(self) -> None:
        """Make the episodes ended so far visible to readers now (one group commit)."""
        self.writer.publish()

    def abort_episode(self) -> None:
        episode, self._episode = self._episode, None
        if episode is not None:
            episode.abort()

    def close(self) -> None:
        """Drop an episode still open (a crash or an error mid-episode); the writer stays the caller's."""
        self.abort_episode()
