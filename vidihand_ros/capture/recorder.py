"""Recorder: the episodes of a live capture, on disk at once, poses filled in as they come.

A frame's image is written the moment it arrives (`EpisodeWriter.stage`); its row (stamps,
intrinsics, co-recorded values, poses) follows in frame order as soon as nothing can change it
any more: the estimate is back (or will not come: a later frame's came first, or `pose_wait_s`
passed) and every co-recorded topic has a sample at or after the frame's time (or its maximum age
passed). Stopping never waits: the rows still open are written with the poses they have (NaN,
masks false where none came) and the episode is published at once (`commit_interval_s` 0), so a
crash afterwards cannot lose it; `vidihand annotate` fills the missing poses later. Any dataset
error (a full disk, a folder made read-only) ends the episode in progress, discarding it, and
is kept as `last_error`; earlier episodes are untouched. With `blur_faces`, faces are blurred in
each frame before its image is written (one `FaceBlurrer` for the recorder's life, loaded at
construction so a missing mediapipe fails at start-up); the estimator still gets the frame as it
came. Thread-safe: frames, samples and
service calls come from the ROS executor, estimates from the live stream's worker.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vidihand_ros.capture.topics import CorecordedTopic, TopicSpec
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.episode import EpisodeWriter, StagedFrame
from vidihand_ros.dataset.schema import EPISODE_ENDS
from vidihand_ros.dataset.validity import estimation_record
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.privacy import FaceBlurrer
from vidihand_ros.stream import Pair
from vidihand_ros.types import Frame, FramePoses

State = Literal["idle", "recording", "error"]
#: How long past a topic's maximum age a row waits for a late sample of it (transport delay, s).
SAMPLE_SLACK_S = 0.05


class CaptureStateError(Exception):
    """A request that does not fit the recorder's state (start while recording, stop while idle)."""


@dataclass(frozen=True)
class RecorderStatus:
    """What the status topic and the diagnostics show."""

    state: State
    #: The episode being recorded, or the index the next one will get.
    episode_index: int
    frames: int
    duration_s: float
    task: str
    episodes_recorded: int
    last_error: str
    #: Rows written to disk but still waiting for their estimate or co-recorded samples.
    rows_open: int


@dataclass(frozen=True)
class EpisodeSummary:
    """A stopped episode: its index (None: it had no frame, nothing was stored) and counts."""

    index: int | None
    frames: int
    poses_missing: int
    duration_s: float


@dataclass
class _Row:
    staged: StagedFrame
    index: int
    received_at: float
    poses: FramePoses | None = None
    poses_done: bool = False


class Recorder:
    """Start, stop and discard episodes of `dataset`; `add_frame`, `add_sample`, `on_poses` feed it.

    The dataset is opened for each episode (so `vidihand annotate` or an append can run between
    takes) and appended to; `estimator` describes what estimates the frames (None: frames only),
    for the episode records. `blur_faces` blurs faces in the stored frames (module docstring).
    """

    def __init__(
        self,
        dataset: str | Path,
        topics: Sequence[TopicSpec] = (),
        *,
        estimator: Mapping[str, Any] | None = None,
        pose_wait_s: float = 30.0,
        writer_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        blur_faces: bool = False,
    ) -> None:
        names = [t.name for t in topics]
        if len(set(names)) != len(names):
            raise InputError(f"co-recorded topic names repeat: {', '.join(names)}")
        self.dataset = Path(dataset)
        self.topics = {spec.name: CorecordedTopic(spec) for spec in topics}
        self.estimator = None if estimator is None else dict(estimator)
        self.pose_wait_s = pose_wait_s
        self._writer_options = dict(writer_options or {})
        self._clock = clock
        self._lock = threading.RLock()
        self._writer: DatasetWriter | None = None
        self._episode: EpisodeWriter | None = None
        self._rows: deque[_Row] = deque()
        self._awaiting: dict[int, _Row] = {}  # frame index → row, in frame order
        self._state: State = "idle"
        self._task = ""
        self._started_at = 0.0
        self._poses_missing = 0
        self._stale: dict[str, int] = {}
        self._episodes_recorded = 0
        self._last_error = ""
        self._next_index = _episodes_in(self.dataset)
        self.blur_faces = blur_faces
        self._blurrer: FaceBlurrer | None = FaceBlurrer() if blur_faces else None

    # -- episodes -----------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self._episode is not None

    def start(self, task: str = "", attrs: Mapping[str, Any] | None = None) -> int:
        """Begin an episode (its index); `attrs` go into its record beside the task."""
        with self._lock:
            if self._episode is not None:
                raise CaptureStateError(f"already recording episode {self._next_index}")
            if self.blur_faces and self._blurrer is None:  # after close(): loaded again
                self._blurrer = FaceBlurrer()
            try:
                writer = DatasetWriter(
                    self.dataset,
                    mode="a",
                    commit_interval_s=0.0,
                    face_blurrer=self._blurrer,
                    **self._writer_options,
                )
            except DatasetError as err:
                self._fail(err)
                raise
            try:
                for topic in self.topics.values():
                    writer.add_keys(topic.key_specs(), topic.key_attrs())
                record = {"task": task, "source": "capture", **dict(attrs or {})}
                self._episode = writer.begin_episode(record)
            except BaseException as err:
                writer.close()
                if isinstance(err, DatasetError):
                    self._fail(err)
                raise
            self._writer = writer
            self._next_index = writer.num_episodes
            self._state, self._task, self._last_error = "recording", task, ""
            self._started_at = self._clock()
            self._poses_missing = 0
            self._stale = {name: 0 for name in self.topics}
            return self._next_index

    def stop(self, success: bool | None, *, ended: str = "stop") -> EpisodeSummary:
        """Write the open rows as they are and publish the episode now (never waits for poses)."""
        with self._lock:
            episode = self._episode
            if episode is None:
                raise CaptureStateError("not recording")
            duration = self._clock() - self._started_at
            try:
                self._flush(force=True)
                episode.attrs.update(self._record(success, ended, duration))
                index = episode.commit()
            except DatasetError as err:
                self._fail(err)
                raise
            frames, missing = episode.num_frames, self._poses_missing
            self._close_writer()
            self._state = "idle"
            if index is not None:
                self._episodes_recorded += 1
                self._next_index = index + 1
            return EpisodeSummary(index, frames, missing, duration)

    def discard(self) -> int:
        """Drop the episode in progress (its frames are removed); returns how many it had."""
        with self._lock:
            episode = self._episode
            if episode is None:
                raise CaptureStateError("not recording")
            frames = episode.num_staged
            try:
                episode.abort()
            except DatasetError as err:
                self._fail(err)
                raise
            self._close_writer()
            self._state = "idle"
            return frames

    def close(self) -> EpisodeSummary | None:
        """Stop an episode still being recorded (kept, `ended: shutdown`), release the dataset
        and the face blurrer."""
        with self._lock:
            try:
                if self._episode is None:
                    return None
                try:
                    return self.stop(None, ended="shutdown")
                except DatasetError:
                    return None
            finally:
                blurrer, self._blurrer = self._blurrer, None
                if blurrer is not None:
                    blurrer.close()

    # -- input --------------------------------------------------------------------------------

    def add_frame(self, frame: Frame, *, expect_poses: bool) -> bool:
        """Write the frame's image now, if recording; `expect_poses`: it went to the estimator.

        `frame.index` must grow from frame to frame (it pairs the frame with its estimate).
        """
        with self._lock:
            episode = self._episode
            if episode is None:
                return False
            try:
                staged = episode.stage(frame)
            except DatasetError as err:
                self._fail(err)
                return False
            row = _Row(staged, frame.index, self._clock(), poses_done=not expect_poses)
            self._rows.append(row)
            if expect_poses:
                self._awaiting[frame.index] = row
            self._flush()
            return True

    def add_sample(self, name: str, stamp_ns: int, message: Any) -> None:
        """One message of the co-recorded topic `name`, stamped; a first message whose fields hold
        no number is an InputError (the topic is not recorded)."""
        with self._lock:
            topic = self.topics[name]
            first = topic.columns is None
            topic.add(stamp_ns, message)
            if first and self._writer is not None:
                try:
                    self._writer.add_keys(topic.key_specs(), topic.key_attrs())
                except DatasetError as err:
                    self._fail(err)
                    return
            if self._episode is None:
                topic.forget_before(stamp_ns)  # idle: only the newest samples may still be needed
            elif self._rows:
                self._flush()

    def set_type(self, name: str, msgtype: str) -> None:
        """The message type of co-recorded topic `name`, once known (for the keys' attributes)."""
        with self._lock:
            self.topics[name].msgtype = msgtype

    def on_poses(self, pairs: list[Pair]) -> None:
        """Estimates in frame order (the live stream's `deliver`); a frame skipped by them was
        dropped by the stream and gets none. Estimates of frames no longer open are ignored."""
        with self._lock:
            for frame, poses in pairs:
                row = self._awaiting.pop(frame.index, None)
                if row is None:
                    continue
                while self._awaiting:  # the frames before it were dropped: no estimate will come
                    first = next(iter(self._awaiting))
                    if first >= frame.index:
                        break
                    self._awaiting.pop(first).poses_done = True
                row.poses, row.poses_done = poses, True
            if self._rows:
                self._flush()

    def poll(self) -> None:
        """Write the rows whose waiting time is up (call it a few times a second)."""
        with self._lock:
            if self._rows:
                self._flush()

    def status(self) -> RecorderStatus:
        with self._lock:
            episode = self._episode
            return RecorderStatus(
                state=self._state,
                episode_index=self._next_index,
                frames=episode.num_staged if episode is not None else 0,
                duration_s=self._clock() - self._started_at if episode is not None else 0.0,
                task=self._task if episode is not None else "",
                episodes_recorded=self._episodes_recorded,
                last_error=self._last_error,
                rows_open=len(self._rows),
            )

    # -- rows ---------------------------------------------------------------------------------

    def _ready(self, row: _Row, now: float) -> bool:
        age = now - row.received_at
        if not (row.poses_done or age >= self.pose_wait_s):
            return False
        stamp = row.staged.frame.stamp_ns
        return all(t.covers(stamp) or age >= t.spec.max_age_s + SAMPLE_SLACK_S for t in self.topics.values())

    def _flush(self, *, force: bool = False) -> None:
        """Write the rows at the head that nothing can change any more (all of them: `force`)."""
        episode = self._episode
        if episode is None:
            return
        now = self._clock()
        ready: list[_Row] = []
        for row in self._rows:
            if not (force or self._ready(row, now)):
                break
            ready.append(row)
        if not ready:
            return
        at = np.fromiter((r.staged.frame.stamp_ns for r in ready), np.int64, len(ready))
        columns: dict[str, np.ndarray] = {}
        for name, topic in self.topics.items():
            values, stale = topic.values_at(at)
            columns.update(values)
            self._stale[name] = self._stale.get(name, 0) + stale
        try:
            for i, row in enumerate(ready):
                episode.add_staged(row.staged, row.poses, {key: v[i] for key, v in columns.items()})
                self._rows.popleft()
                self._awaiting.pop(row.index, None)
                self._poses_missing += row.poses is None
        except DatasetError as err:
            self._fail(err)
            return
        head = self._rows[0].staged.frame.stamp_ns if self._rows else int(at[-1])
        for topic in self.topics.values():
            topic.forget_before(head)

    def _record(self, success: bool | None, ended: str, duration_s: float) -> dict[str, Any]:
        corecorded = {
            name: {
                "topic": t.spec.topic,
                "type": t.msgtype,
                "keys": [k.key for k in t.layout],
                "stale_rows": self._stale.get(name, 0),
            }
            for name, t in self.topics.items()
        }
        return {
            "success": success,
            "ended": ended,
            "duration_s": round(duration_s, 3),
            **estimation_record(self.estimator),
            "poses_missing": self._poses_missing,
            "corecorded": corecorded,
        }

    def _fail(self, err: Exception) -> None:
        """A dataset error ends the episode in progress (discarded); earlier ones stay as they are."""
        self._last_error = str(err)
        self._state = "error"
        if self._episode is not None:
            with contextlib.suppress(DatasetError, OSError):
                self._episode.abort()
        self._close_writer()

    def _close_writer(self) -> None:
        self._episode = None
        self._rows.clear()
        self._awaiting.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(DatasetError, OSError):
                writer.close()


def _episodes_in(path: Path) -> int:
    """Episodes the dataset at `path` holds (0 when there is none yet or it cannot be read)."""
    with contextlib.suppress(Exception):
        if zc.is_group_dir(path):
            return int(zc.open_group(path, "r")["meta"][EPISODE_ENDS].shape[0])
    return 0
