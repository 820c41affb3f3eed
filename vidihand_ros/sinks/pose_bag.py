"""Write `FramePoses` as `vidihand_ros/msg/HandPoses` into a ROS 2 bag, without ROS.

The bag stores the message definition with its connection, so `ros2 bag info` and readers such
as `rosbags.highlevel.AnyReader` or Foxglove understand it without our package installed;
`ros2 bag play` additionally needs the built `vidihand_ros` interfaces to publish it.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Literal

from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from vidihand_ros.errors import InputError
from vidihand_ros.sinks.hand_poses import HAND_POSES, make_typestore, poses_to_message
from vidihand_ros.types import Frame, FramePoses

DEFAULT_TOPIC = "/vidihand/hand_poses"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
#: Bag format version per distro: Jazzy writes 9; Humble cannot parse version 9's QoS list and
#: reads version 8 (QoS as a YAML string).
BAG_VERSIONS: dict[str, Literal[8, 9]] = {"humble": 8, "jazzy": 9}


class PoseBagWriter:
    """A new ROS 2 bag with one `HandPoses` topic, each message at its source frame's stamp.

    Opens on construction (refusing an existing path), so use it as a context manager or call
    `close()`, which writes `metadata.yaml`; a bag without it is not readable by `ros2 bag`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        storage: str = "mcap",
        distro: str = "jazzy",
        topic: str = DEFAULT_TOPIC,
    ) -> None:
        self.path = Path(path)
        self.topic = topic
        if storage not in STORAGES:
            raise InputError(f"unknown bag storage {storage!r}; expected one of {sorted(STORAGES)}")
        if distro not in BAG_VERSIONS:
            raise InputError(f"unknown ROS 2 distro {distro!r}; expected one of {sorted(BAG_VERSIONS)}")
        if self.path.exists():
            raise InputError("already exists; refusing to overwrite it with a pose bag", source=self.path)
        self._typestore = make_typestore(distro)
        self._writer = Writer(self.path, version=BAG_VERSIONS[distro], storage_plugin=STORAGES[storage])
        try:
            self._writer.open()
        except WriterError as exc:
            raise InputError(f"cannot create bag: {exc}", source=self.path) from exc
        self._connection = self._writer.add_connection(topic, HAND_POSES, typestore=self._typestore)
        self._closed = False
        self.count = 0
        self.name = f"pose bag {self.path}"

    def write(self, frame: Frame, poses: FramePoses | None) -> None:
        """Sink form: a frame without an estimate (frames-only) has no message."""
        if poses is not None:
            self.write_poses(poses)

    def write_poses(self, poses: FramePoses) -> None:
        """Append one frame's poses, timestamped with the frame's stamp."""
        if self._closed:
            raise RuntimeError(f"pose bag {self.path} is closed")
        if poses.stamp_ns < 0:
            raise InputError(f"negative stamp {poses.stamp_ns} ns is not a bag timestamp", source=self.path)
        msg = poses_to_message(poses, self._typestore)
        data = self._typestore.serialize_cdr(msg, HAND_POSES)
        self._writer.write(self._connection, poses.stamp_ns, data)
        self.count += 1

    def close(self) -> None:
        """Finish the storage file and write `metadata.yaml`; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._writer.close()

    def __enter__(self) -> PoseBagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Close even on error: the poses written so far stay a readable bag.
        self.close()
