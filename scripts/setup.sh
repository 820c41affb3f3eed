#!/usr/bin/env bash
# Create a virtual environment and install vidihand_ros into it (editable, with extras).
#   PYTHON  interpreter to use          (default: python3; 3.10–3.12 supported)
#   VENV    where the environment lives (default: .venv)
#   EXTRAS  pip extras to install       (default: dev,baseline: tests, lint, video, MediaPipe)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev,baseline}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
echo "vidihand_ros installed in $VENV ($("$VENV/bin/python" --version)); run: $VENV/bin/vidihand --help"
