#!/usr/bin/env bash
# Create a virtual environment, install vidihand_ros into it (editable, with extras) and build the
# example recording examples/hands_demo/ when it is absent.
#   PYTHON  interpreter to use          (default: python3; 3.10–3.12 supported)
#   VENV    where the environment lives (default: .venv)
#   EXTRAS  pip extras to install       (default: dev,baseline: tests, lint, video, MediaPipe)
#   ROS     1: also install ROS 2 Jazzy's rclpy wheels and build our messages into the venv
#           (scripts/ros_interfaces.sh; needs cmake and a C++ compiler), for the node (default: 0)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev,baseline}
ROS=${ROS:-0}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
if [ "$ROS" = 1 ]; then
  VENV="$VENV" bash scripts/ros_interfaces.sh
fi
# The example recording is built from third-party photos (kept outside the repository, see README),
# so it is made here, once, instead of being committed. Missing photos (exit 2) only warn, so that
# the tests can still be set up; any other failure stops.
if [ ! -e examples/hands_demo/metadata.yaml ]; then
  PYTHONPATH=. "$VENV/bin/python" examples/make_example.py || {
    status=$?
    [ "$status" -eq 2 ] || exit "$status"
    echo "setup.sh: examples/hands_demo not built (see above, and Hand photos in the README)" >&2
  }
fi
echo "vidihand_ros installed in $VENV ($("$VENV/bin/python" --version)); run: $VENV/bin/vidihand --help"
