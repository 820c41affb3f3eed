"""Where stitched poses go: the Zarr dataset, a pose bag, (later) the ROS publisher."""

from vidihand_ros.sinks.base import EpisodeSink, Sink, SinkError, episode_sinks, write_all

__all__ = ["EpisodeSink", "Sink", "SinkError", "episode_sinks", "write_all"]
