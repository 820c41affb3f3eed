"""Hand poses from a live camera driver's topics.

    ros2 launch vidihand_ros live.launch.py image_topic:=/camera/color/image_raw/compressed \\
        camera_info_topic:=/camera/color/camera_info estimator:=mediapipe
    ros2 launch vidihand_ros live.launch.py estimator:=remote server:=http://gpu-box:8000 \
        token_file:=$HOME/.vidihand_token
    ros2 launch vidihand_ros live.launch.py start_server:=true    # and a local `vidihand serve`
    ros2 launch vidihand_ros live.launch.py robot_hand:=allegro robot_hand_urdf_dir:=$HOME/hands
        # and a JointState per hand on ~/<side>/robot_hand_joint_states (dex-urdf's robots/hands)

The node's parameters come from config/live.yaml, then `params_file` (if given), then these
arguments, each winning over the one before. offline.launch.py includes this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = Path(get_package_share_directory("vidihand_ros"))
#: Every parameter with its default and a comment; `params_file` goes on top of it.
BASE_PARAMETERS = str(SHARE / "config" / "live.yaml")

ARGUMENTS = {
    "params_file": ("", "Node parameters (YAML) on top of config/live.yaml"),
    "image_topic": ("/camera/image_raw/compressed", "Image or CompressedImage topic"),
    "camera_info_topic": ("/camera/camera_info", "CameraInfo topic ('' for intrinsics_file only)"),
    "intrinsics_file": ("", "Calibration YAML used until a CameraInfo arrives"),
    "estimator": ("mediapipe", "mediapipe, vidihand, remote, none or package.module:factory"),
    "server": ("", "Inference server URL for estimator:=remote"),
    "token_file": ("", "File with the server's bearer token"),
    "checkpoint": ("", "ViDiHand checkpoint folder (estimator:=vidihand)"),
    "mano_dir": ("", "Folder with MANO_RIGHT.pkl and MANO_LEFT.pkl (estimator:=vidihand)"),
    "window": ("0", "Frames per window (0: the estimator's own)"),
    "stride": ("0", "Frames between window starts (0: the estimator's own)"),
    "start_server": ("false", "Run a local `vidihand serve` with `estimator` and use it"),
    "server_port": ("8000", "Port of the local server (start_server:=true)"),
    "robot_hand": ("", "Retarget the hands to this robot hand (allegro, leap, ...; retarget extra)"),
    "robot_hand_mode": ("", "vector, dexpilot or position (default: the parameter's, vector)"),
    "robot_hand_urdf_dir": ("", "Folder of robot hand models (dex-urdf's robots/hands)"),
    "rviz": ("false", "Start RViz with the image, markers and wrist poses"),
    "node_name": ("hand_pose_node", "Name of the hand-pose node"),
}
#: Arguments that are node parameters of the same name and type (the rest are the launch's own).
STRING_PARAMETERS = (
    "image_topic",
    "camera_info_topic",
    "intrinsics_file",
    "token_file",
    "checkpoint",
    "mano_dir",
)
INT_PARAMETERS = ("window", "stride")
#: Node parameters set only when the argument is given, so that params_file's values stand.
OPTIONAL_STRING_PARAMETERS = ("robot_hand", "robot_hand_mode", "robot_hand_urdf_dir")
TRUE = ("true", "1", "yes", "on")
NODE_STOP_S = "15"


def _actions(context: LaunchContext) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    parameters = {name: arg[name] for name in STRING_PARAMETERS}
    parameters.update({name: int(arg[name]) for name in INT_PARAMETERS})
    parameters.update(estimator=arg["estimator"], server=arg["server"])
    parameters.update({name: arg[name] for name in OPTIONAL_STRING_PARAMETERS if arg[name]})
    actions: list = []
    if arg["start_server"].lower() in TRUE:
        # `python -m vidihand_ros.cli` is `vidihand` from this install: colcon installs no
        # console script, and another `vidihand` on PATH may be another version.
        command = [sys.executable, "-m", "vidihand_ros.cli", "serve", "--estimator", arg["estimator"]]
        command += ["--port", arg["server_port"]]
        if arg["estimator"] == "vidihand":
            command += ["--checkpoint", arg["checkpoint"], "--mano-dir", arg["mano_dir"]]
        actions.append(ExecuteProcess(cmd=command, name="vidihand_serve", output="screen"))
        parameters.update(estimator="remote", server=f"http://127.0.0.1:{arg['server_port']}")
    actions.append(
        Node(
            package="vidihand_ros",
            executable="hand_pose_node",
            name=arg["node_name"],
            parameters=[BASE_PARAMETERS, *([arg["params_file"]] if arg["params_file"] else []), parameters],
            output="screen",
            # after SIGINT the node publishes the windows in flight (up to 10 s, then 2 s for
            # acknowledgements) before it exits: launch's default 5 s would cut that short
            sigterm_timeout=NODE_STOP_S,
        )
    )
    if arg["rviz"].lower() in TRUE:
        actions.append(
            Node(
                package="rviz2", executable="rviz2", arguments=["-d", str(SHARE / "rviz" / "hand_poses.rviz")]
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_actions)])
