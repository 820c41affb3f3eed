#!/usr/bin/env bash
# Set up (if needed) and run the test suite. Extra arguments go to pytest.
#   PYTHON / VENV as for scripts/setup.sh; EXTRAS defaults to "all" here, so that the MediaPipe
#   baseline, MANO and model tests run too (their tests skip, saying why, when an extra is absent),
#   and ROS defaults to 1, so that the node's tests run against real rclpy (scripts/ros_interfaces.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV=${VENV:-.venv}
export EXTRAS=${EXTRAS:-all}
export ROS=${ROS:-1}
bash scripts/setup.sh
"$VENV/bin/python" -m pytest "$@"
