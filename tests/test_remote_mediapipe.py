"""MediaPipe served and converted over the wire gives exactly the dataset converted in process.

MediaPipe is stateful (tracking, hand sizes and smoothing context carry across a stream's
windows), so this needs the server to keep one estimator per stream and the wire to keep each
frame's stream index: overlapping windows share frames, which the estimator must recognise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe", reason="the mediapipe estimator needs the [baseline] extra")
pytest.importorskip("fastapi", reason="the server needs the [serve] extra")

from tests.bagfactory import write_image_bag
from tests.test_mediapipe import hand_sequence
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.server.factory import AppFactory
from vidihand_ros.server.local import running_server
from vidihand_ros.server.runner import EstimatorSpec
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(520.0, 520.0, 319.5, 239.5, width=640, height=480)


def test_remote_mediapipe_equals_in_process(tmp_path: Path) -> None:
    bag = write_image_bag(
        tmp_path / "hands", hand_sequence(40), kind="mcap", compressed_format="jpeg", camera_info=CAMERA
    )
    local, remote = tmp_path / "local.zarr", tmp_path / "remote.zarr"
    assert main(["convert", str(bag.path), "-o", str(local), "-q", "--estimator", "mediapipe"]) == 0
    with running_server(AppFactory(EstimatorSpec("mediapipe"))()) as url:
        args = ["convert", str(bag.path), "-o", str(remote), "-q", "--estimator", "remote", "--server", url]
        assert main(args) == 0
    a, b = DatasetReader(local).episode(0), DatasetReader(remote).episode(0)  # every key but images
    assert a["right_hand_valid"].sum() >= 30  # the hands were found: the comparison means something
    assert sorted(a) == sorted(b)
    for key in sorted(a):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
