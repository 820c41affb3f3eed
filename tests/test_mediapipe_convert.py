"""End to end: a bag of real frames → `vidihand convert --estimator mediapipe` → a dataset with both
hands' poses that reopens with plain zarr (as diffusion_policy / UMI code would open it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip(
    "mediapipe", reason="the mediapipe estimator needs the [baseline] extra: pip install -e '.[baseline]'"
)

import imagecodecs
import zarr

from tests.bagfactory import write_image_bag
from tests.test_mediapipe import T5_LEFT, T5_RIGHT, hand_sequence, inside, seq_box
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(520.0, 520.0, 319.5, 239.5, width=640, height=480)
FRAMES = 16


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("bags") / "hands"
    return write_image_bag(
        path, hand_sequence(FRAMES), kind="mcap", compressed_format="jpeg", camera_info=CAMERA
    )


def convert(bag_path: Path, out: Path, *options: str) -> None:
    args = [
        "convert",
        str(bag_path),
        "-o",
        str(out),
        "-q",
        "--estimator",
        "mediapipe",
        "--window",
        "8",
        "--stride",
        "4",
    ]
    for option in options:
        args += ["--estimator-option", option]
    assert main(args) == 0


def test_convert_fills_both_hands_and_reopens_with_plain_zarr(bag, tmp_path: Path) -> None:
    out = tmp_path / "hands.zarr"
    convert(bag.path, out)

    imagecodecs.numcodecs.register_codecs()
    data: Any = zarr.open_group(str(out), mode="r")["data"]
    assert data["camera0_rgb"].shape == (FRAMES, 480, 640, 3)
    np.testing.assert_array_equal(data["stamp_ns"][:], bag.stamps_ns)
    right_box, left_box = seq_box(T5_RIGHT), seq_box(T5_LEFT)
    for side, box in (("right", right_box), ("left", left_box)):
        assert data[f"{side}_hand_valid"][:].all()
        presence = data[f"{side}_hand_presence"][:]
        assert ((presence > 0.5) & (presence <= 1.0)).all()
        assert not data[f"{side}_hand_filled"][:].any()
        joints = data[f"{side}_hand_joints_3d"][:]
        assert joints.shape == (FRAMES, 21, 3) and np.isfinite(joints).all()
        assert (joints[..., 2] > 0.2).all() and (joints[..., 2] < 3.0).all()
        keypoints = data[f"{side}_hand_keypoints_2d"][:]
        assert all(inside(k, box) for k in keypoints), side
        np.testing.assert_array_equal(data[f"{side}_hand_wrist_pos"][:], joints[:, 0])
        assert np.isfinite(data[f"{side}_hand_wrist_rot_axis_angle"][:]).all()
        for key in ("global_orient", "hand_pose", "betas", "transl"):  # no MANO files: missing
            assert np.isnan(data[f"{side}_hand_{key}"][:]).all(), key
    # Her right hand is on the image's left: the sides are the true ones for a non-mirrored camera.
    assert (data["right_hand_wrist_pos"][:, 0] < data["left_hand_wrist_pos"][:, 0]).all()

    attrs = DatasetReader(out).episode_attrs(0)
    assert attrs["estimator"]["name"] == "mediapipe"
    assert attrs["estimator"]["version"] == "0.10.21"
    assert attrs["estimator"]["options"]["model_complexity"] == 1
    json.dumps(attrs["estimator"])  # provenance stays JSON


def test_convert_with_mirrored_option_swaps_the_sides(bag, tmp_path: Path) -> None:
    plain, mirrored = tmp_path / "plain.zarr", tmp_path / "mirrored.zarr"
    convert(bag.path, plain, "model_complexity=0")
    convert(bag.path, mirrored, "model_complexity=0", "mirrored=true")
    a = DatasetReader(plain).episode(0)
    b = DatasetReader(mirrored).episode(0)
    np.testing.assert_allclose(a["right_hand_keypoints_2d"], b["left_hand_keypoints_2d"], atol=1e-3)
    np.testing.assert_allclose(a["left_hand_keypoints_2d"], b["right_hand_keypoints_2d"], atol=1e-3)


def test_bad_option_fails_with_one_line(bag, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bad.zarr"
    args = ["convert", str(bag.path), "-o", str(out), "-q", "--estimator", "mediapipe"]
    assert main([*args, "--estimator-option", "model_complexity=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model_complexity" in err
