"""The core imports without ROS, torch, diffusers, mediapipe or the server's web stack: the layers the
front ends stand on (the remote client included: a robot needs httpx and msgpack only)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.ci import require

PACKAGE = Path(__file__).resolve().parent.parent / "vidihand_ros"

CORE = [
    "vidihand_ros.types",
    "vidihand_ros.errors",
    "vidihand_ros.imaging",
    "vidihand_ros.calibration",
    "vidihand_ros.windowing",
    "vidihand_ros.stitching",
    "vidihand_ros.stream",
    "vidihand_ros.live",
    "vidihand_ros.corecord",
    "vidihand_ros.episodes",
    "vidihand_ros.pipeline",
    "vidihand_ros.summary",
    "vidihand_ros.metrics",
    "vidihand_ros.evaluation",
    "vidihand_ros.sources",
    "vidihand_ros.sinks.base",
    "vidihand_ros.sinks.dataset",
    "vidihand_ros.sinks.pose_bag",
    "vidihand_ros.sinks.hand_poses",
    "vidihand_ros.dataset.reader",
    "vidihand_ros.dataset.staging",
    "vidihand_ros.geometry",
    "vidihand_ros.geometry.resize",
    "vidihand_ros.estimators",
    "vidihand_ros.estimators.asynchronous",
    "vidihand_ros.estimators.vidihand",
    "vidihand_ros.estimators.mediapipe.tracking",
    "vidihand_ros.estimators.mediapipe.filtering",
    "vidihand_ros.estimators.mediapipe.temporal",
    "vidihand_ros.estimators.remote",
    "vidihand_ros.wire",
    "vidihand_ros.quality",
    "vidihand_ros.native_stderr",
    "vidihand_ros.distributed",
    "vidihand_ros.model.config",
    "vidihand_ros.training.config",
    "vidihand_ros.cli",
    "vidihand_ros.privacy",
    "vidihand_ros.capture.recorder",
    "vidihand_ros.episode_quality",
    "vidihand_ros.plots",
    "vidihand_ros.render.frames",
    "vidihand_ros.render.mesh",
    "vidihand_ros.render.outputs",
    "vidihand_ros.render.rerun_log",
    "vidihand_ros.export.zarr_zip",
    "vidihand_ros.export.lerobot",
    "vidihand_ros.labels",
    "vidihand_ros.labels.label",
    "vidihand_ros.retarget.wrist_frame",
    "vidihand_ros.retarget.robots",
    "vidihand_ros.retarget.keys",
    "vidihand_ros.retarget.sequence",
    "vidihand_ros.retarget.dataset",
    "vidihand_ros.render.robot_hands",
    "vidihand_ros.render.rerun_robot",
    "vidihand_ros.cli.retarget",
]
FORBIDDEN = (
    "rclpy",
    "torch",
    "diffusers",
    "mediapipe",
    "smplx",
    "peft",
    "fastapi",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "ray",
)


def test_the_core_imports_without_ros_torch_diffusers_or_mediapipe() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_only_the_ros_adapter_imports_rclpy() -> None:
    ros_import = re.compile(r"^\s*(?:import|from)\s+(?:rclpy|rosidl_runtime_py|sensor_msgs|std_msgs)\b", re.M)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "ros" not in path.relative_to(PACKAGE).parts[:1] and ros_import.search(path.read_text("utf-8"))
    ]
    assert offenders == []


def test_the_ros_adapter_needs_no_torch_mediapipe_or_web_stack() -> None:
    require("rclpy", "bash scripts/ros_interfaces.sh")
    code = (
        "import sys\n"
        "import vidihand_ros.ros.hand_pose_node\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN[1:]!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
