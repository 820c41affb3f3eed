#!/usr/bin/env bash
# Load `vidihand export lerobot` output with the lerobot package itself.
#
#   LEROBOT_PYTHON=/path/to/venv-lerobot/bin/python scripts/check_lerobot_export.sh [WORK_DIR]
#
# lerobot 0.6.1 needs Python >= 3.12 and torch, so it lives in its own venv (LEROBOT_PYTHON, with
# `pip install "lerobot[dataset]==0.6.1"`); this repository's Python (PYTHON, default .venv) makes a
# dataset from real rosbags (tests.converted), exports it twice (one file per kind, and split into
# one file per episode), and saves the values the export must hold. lerobot then opens each folder
# with `LeRobotDataset(repo_id, root=DIR)` and every frame is compared: episode, frame index, task
# text, state and action against the dataset, the decoded image against the stored JPEG.
# WORK_DIR (default: a new temporary folder) keeps the dataset and the exports.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
LEROBOT_PYTHON=${LEROBOT_PYTHON:?set LEROBOT_PYTHON to a Python with lerobot[dataset]==0.6.1}
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 HF_LEROBOT_HOME="$WORK/hf_lerobot"

"$PYTHON" - "$WORK" <<'EOF'
import shutil
import sys
from pathlib import Path

import numpy as np

from tests.converted import convert_bags
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.export.lerobot import export_lerobot
from vidihand_ros.types import HAND_SIDES

work = Path(sys.argv[1])
for name in ("bags", "lerobot_one_file", "lerobot_split"):
    shutil.rmtree(work / name, ignore_errors=True)
dataset = convert_bags(work / "bags", (12, 9))
meta = zc.open_group(dataset, "r+")["meta"]
records = zc.get_attrs(meta)["episodes"]
records[1]["task"] = "stack the cups"  # episode 0 keeps the default task text
zc.update_attrs(meta, {"episodes": records})

reader = DatasetReader(dataset)
n = reader.num_frames
state = np.concatenate(
    [np.asarray(reader.array(hand_key(s, f))[:n]) for s in HAND_SIDES for f in ("wrist_pos", "wrist_rot_axis_angle")],
    axis=1,
).astype(np.float32)
frames = np.stack([f for i in range(reader.num_episodes) for f in reader.frames(i)])
episode = np.repeat(np.arange(reader.num_episodes), np.diff(np.r_[0, reader.episode_ends]))
np.savez(work / "expected.npz", state=state, frames=frames, episode=episode, tasks=np.array(["pick", "stack the cups"]))
print(export_lerobot(dataset, work / "lerobot_one_file", repo_id="vidihand/one_file", task="pick").summary())
print(export_lerobot(dataset, work / "lerobot_split", repo_id="vidihand/split", task="pick",
                     data_file_mb=1e-6, video_file_mb=1e-6).summary())
EOF

"$LEROBOT_PYTHON" - "$WORK" <<'EOF' 2> >(grep -v -e '^  ' -e 'libtorchcodec' -e '^\[' -e '^Traceback' -e '^OSError' -e '^$' -e 'direct cause' -e '^FFmpeg version' >&2)
import sys
from pathlib import Path

import numpy as np
import lerobot
from lerobot.datasets.lerobot_dataset import LeRobotDataset

work = Path(sys.argv[1])
want = np.load(work / "expected.npz")
print(f"lerobot {lerobot.__version__}, Python {sys.version.split()[0]}")
for folder, repo_id in (("lerobot_one_file", "vidihand/one_file"), ("lerobot_split", "vidihand/split")):
    ds = LeRobotDataset(repo_id, root=work / folder)
    n = len(ds)
    assert n == len(want["state"]) and ds.num_episodes == 2 and ds.fps == 30, (n, ds.num_episodes, ds.fps)
    worst = 0.0
    for i in range(n):
        item = ds[i]
        e = int(item["episode_index"])
        assert e == want["episode"][i], (i, e)
        assert item["task"] == str(want["tasks"][e]), (i, item["task"])
        np.testing.assert_array_equal(item["observation.state"].numpy(), want["state"][i])
        nxt = i + 1 if i + 1 < n and want["episode"][i + 1] == e else i
        np.testing.assert_array_equal(item["action"].numpy(), want["state"][nxt])
        image = item["observation.images.camera0"]
        assert tuple(image.shape) == (3, 48, 64), image.shape
        error = float(np.abs(image.numpy().transpose(1, 2, 0) * 255 - want["frames"][i]).mean())
        assert error < 12, (i, error)
        worst = max(worst, error)
    first, last = ds[0], ds[n - 1]
    print(
        f"{folder}: LeRobotDataset({repo_id!r}) {n} frames, {ds.num_episodes} episodes, {ds.fps} fps, "
        f"video backend {ds._video_backend}; all {n} frames: state, action, task equal, image mean abs "
        f"error <= {worst:.1f}/255; ds[0] episode {int(first['episode_index'])} frame "
        f"{int(first['frame_index'])} task {first['task']!r}; ds[{n - 1}] episode "
        f"{int(last['episode_index'])} frame {int(last['frame_index'])} task {last['task']!r}"
    )
print("OK: lerobot loads the exports")
EOF
