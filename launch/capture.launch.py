"""Record teleoperation episodes: camera, co-recorded robot topics, a trigger, into a dataset.

    ros2 launch vidihand_ros capture.launch.py dataset:=$HOME/demos.zarr \\
        image_topic:=/camera/color/image_raw/compressed camera_info_topic:=/camera/color/camera_info \\
        params_file:=$(ros2 pkg prefix vidihand_ros)/share/vidihand_ros/config/capture_ur5e.yaml \\
        trigger_topic:=/pedal estimator:=remote server:=http://gpu-box:8000
    ros2 service call /capture_node/start_episode vidihand_ros/srv/StartEpisode "{task: 'pour water'}"
    ros2 service call /capture_node/stop_episode vidihand_ros/srv/StopEpisode "{success: true}"
    ros2 service call /capture_node/discard_episode std_srvs/srv/Trigger

Parameters come from config/live.yaml (the hand-pose ones), config/capture.yaml, then
`params_file` (the robot's co-recorded topics, a trigger), then the arguments given here, each
winning over the one before; an argument left empty takes the files' value.
"""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = Path(get_package_share_directory("vidihand_ros"))
BASE_PARAMETERS = [str(SHARE / "config" / "live.yaml"), str(SHARE / "config" / "capture.yaml")]

ARGUMENTS = {
    "dataset": ("", "Dataset folder episodes are appended to (required)"),
    "params_file": ("", "Parameters on top (co-recorded topics: config/capture_ur5e.yaml)"),
    "image_topic": ("", "Image or CompressedImage topic (files: /camera/image_raw/compressed)"),
    "camera_info_topic": ("", "CameraInfo topic (files: /camera/camera_info)"),
    "intrinsics_file": ("", "Calibration YAML used until a CameraInfo arrives"),
    "estimator": ("", "mediapipe (the files' default), vidihand, remote, none or package.module:factory"),
    "server": ("", "Inference server URL for estimator:=remote"),
    "token_file": ("", "File with the server's bearer token"),
    "checkpoint": ("", "ViDiHand checkpoint folder (estimator:=vidihand)"),
    "mano_dir": ("", "Folder with MANO_RIGHT.pkl and MANO_LEFT.pkl (estimator:=vidihand)"),
    "task": ("", "Task text of episodes the trigger starts"),
    "trigger_topic": ("", "std_msgs/Bool pedal or sensor_msgs/Joy topic that starts / stops"),
    "trigger_type": ("", "bool (the files' default) or joy"),
    "trigger_button": ("", "Joy button index (trigger_type:=joy; files: 0)"),
    "blur_faces": ("", "true: blur faces in the stored frames (needs mediapipe; files: false)"),
    "node_name": ("capture_node", "Name of the capture node"),
}
#: Arguments that are node parameters of the same name (the rest are the launch's own).
STRING_PARAMETERS = (
    "dataset",
    "image_topic",
    "camera_info_topic",
    "intrinsics_file",
    "estimator",
    "server",
    "token_file",
    "checkpoint",
    "mano_dir",
    "task",
    "trigger_topic",
    "trigger_type",
)
#: After SIGINT the node stores the episode in progress, then finishes the windows in flight.
NODE_STOP_S = "15"


def _actions(context: LaunchContext) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    parameters: dict[str, str | int | bool] = {name: arg[name] for name in STRING_PARAMETERS if arg[name]}
    if arg["trigger_button"]:
        parameters["trigger_button"] = int(arg["trigger_button"])
    if arg["blur_faces"]:
        if arg["blur_faces"].lower() not in ("true", "false"):
            raise ValueError(f"blur_faces must be true or false, got {arg['blur_faces']!r}")
        parameters["blur_faces"] = arg["blur_faces"].lower() == "true"
    files = [*BASE_PARAMETERS, *([arg["params_file"]] if arg["params_file"] else [])]
    return [
        Node(
            package="vidihand_ros",
            executable="capture_node",
            name=arg["node_name"],
            parameters=[*files, parameters],
            output="screen",
            sigterm_timeout=NODE_STOP_S,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_actions)])
