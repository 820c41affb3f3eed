"""Hand poses from a recording: `ros2 bag play` and the hand-pose node (live.launch.py).

    ros2 launch vidihand_ros offline.launch.py bag:=examples/hands_demo estimator:=mediapipe
    ros2 launch vidihand_ros offline.launch.py bag:=recs/take1 rate:=0.5 loop:=true rviz:=true
    ros2 launch vidihand_ros offline.launch.py bag:=recs/take1 start_server:=true estimator:=mediapipe

The player waits `delay` seconds before the first message, so the node (which subscribes once the
player advertises the image topic) sees every frame. `image_topic` and `camera_info_topic` name the
bag's topics; `remap` renames more of them for the player (`"/a:=/b /c:=/d"`). Every argument of
live.launch.py is accepted too; the node's parameters start from config/offline.yaml.
"""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

SHARE = Path(get_package_share_directory("vidihand_ros"))

ARGUMENTS = {
    "bag": ("", "rosbag2 folder or file to play (required)"),
    "rate": ("1.0", "Playback rate"),
    "loop": ("false", "Play the bag again and again"),
    "delay": ("2.0", "Seconds between advertising the topics and the first message"),
    "remap": ("", "More topic remaps for the player, 'from:=to' separated by spaces"),
    "params_file": (str(SHARE / "config" / "offline.yaml"), "Node parameters on top of config/live.yaml"),
}
TRUE = ("true", "1", "yes", "on")


def _player(context: LaunchContext) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    if not arg["bag"]:
        raise RuntimeError("offline.launch.py needs bag:=PATH (a rosbag2 folder or file)")
    command = ["ros2", "bag", "play", arg["bag"], "--rate", arg["rate"], "--delay", arg["delay"]]
    if arg["loop"].lower() in TRUE:
        command.append("--loop")
    if arg["remap"].split():
        command += ["--remap", *arg["remap"].split()]
    return [ExecuteProcess(cmd=command, name="bag_play", output="screen")]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(SHARE / "launch" / "live.launch.py")),
        launch_arguments={"params_file": LaunchConfiguration("params_file")}.items(),
    )
    # The player first: a missing `bag` stops the launch before the node is started (a node
    # started before the error would be left running).
    return LaunchDescription([*declared, OpaqueFunction(function=_player), node])
