"""ViDiHand as an estimator: `vidihand model init` → checkpoint → `vidihand convert --estimator vidihand`.

Real diffusers models from the tiny config (random weights), real smplx MANO layers from synthetic
MANO files, real bags and Zarr stores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the ViDiHand model needs the [model] extra")
pytest.importorskip("smplx", reason="the ViDiHand model needs the [model] extra")

import torch

from tests.bagfactory import synthetic_frames, write_image_bag
from tests.mano_fixtures import mano_dir  # noqa: F401
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import hand_key
from vidihand_ros.model.vidihand import build_model, checkpoint_sha256, load_model, save_model
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(60.0, 60.0, 32.0, 24.0, width=64, height=48)


def jpeg_bag(tmp_path: Path, frames: int):
    return write_image_bag(
        tmp_path / "rec", synthetic_frames(frames, 64, 48), compressed_format="jpeg", camera_info=CAMERA
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    assert main(["model", "init", "--config", "tiny", "-o", str(path), "--seed", "3"]) == 0
    return path


def test_the_estimator_module_imports_without_torch() -> None:
    code = "import sys, vidihand_ros.estimators.vidihand; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_init_writes_safetensors_and_json_only(checkpoint: Path) -> None:
    assert sorted(p.name for p in checkpoint.iterdir()) == ["model.safetensors", "state.json"]
    assert checkpoint.joinpath("model.safetensors").read_bytes()[8:9] == b"{"  # safetensors header, no pickle


def test_checkpoint_round_trip_gives_the_same_model_output(tmp_path: Path, mano_dir: Path) -> None:  # noqa: F811
    model = build_model("tiny", seed=7)
    path = save_model(model, tmp_path / "ck")
    loaded = load_model(path, mano_dir=mano_dir)
    again = load_model(path, mano_dir=mano_dir)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    video = torch.randint(0, 255, (1, 3, 9, 32, 32), dtype=torch.uint8)
    K = torch.tensor([[[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]]])
    out_a, out_b = again(video, K), loaded(video, K)
    torch.testing.assert_close(out_a.joints_3d, out_b.joints_3d)
    assert out_a.joints_3d.shape == (1, 9, 2, 21, 3)
    assert len(checkpoint_sha256(path)) == 64


def test_a_checkpoint_without_a_typed_decoder_config_loads(tmp_path: Path) -> None:
    model = build_model("tiny", seed=7)
    path = save_model(model, tmp_path / "ck")
    state = json.loads((path / "state.json").read_text())
    state["config"]["model"]["decoder"] = {}  # as written before the model config typed it
    (path / "state.json").write_text(json.dumps(state))
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.decoder.config == model.decoder.config


def test_convert_with_the_vidihand_estimator_fills_every_pose_key(
    tmp_path: Path,
    checkpoint: Path,
    mano_dir: Path,  # noqa: F811
) -> None:
    bag = write_image_bag(
        tmp_path / "rec", synthetic_frames(14, 64, 48), compressed_format="jpeg", camera_info=CAMERA
    )
    out = tmp_path / "pred.zarr"

    rc = main(
        [
            *["convert", str(bag.path), "-o", str(out), "-q", "--estimator", "vidihand"],
            *["--checkpoint", str(checkpoint), "--mano-dir", str(mano_dir), "--window", "9", "--stride", "5"],
        ]
    )

    assert rc == 0
    reader = DatasetReader(out)
    episode = reader.episode(0)
    for side in ("left", "right"):
        assert episode[hand_key(side, "valid")].all()
        presence = episode[hand_key(side, "presence")]
        assert ((presence > 0) & (presence < 1)).all()
        for field, shape in (
            ("hand_pose", (15, 3)),
            ("betas", (10,)),
            ("joints_3d", (21, 3)),
            ("transl", (3,)),
        ):
            values = episode[hand_key(side, field)]
            assert values.shape == (14, *shape) and np.isfinite(values).all(), field
        # MANO joints and translation agree: joint 0 is the wrist, stored as wrist_pos
        np.testing.assert_allclose(
            episode[hand_key(side, "wrist_pos")], episode[hand_key(side, "joints_3d")][:, 0]
        )
    info = reader.episode_attrs(0)["estimator"]
    assert info["name"] == "vidihand" and info["checkpoint_sha256"] == checkpoint_sha256(checkpoint)
    assert info["window"] == 9  # the model's window, the default --window


def test_wrong_window_length_and_missing_mano_are_clear_errors(
    tmp_path: Path,
    checkpoint: Path,
    mano_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture,
) -> None:
    bag = write_image_bag(
        tmp_path / "rec", synthetic_frames(5, 64, 48), compressed_format="jpeg", camera_info=CAMERA
    )
    base = ["convert", str(bag.path), "-o", str(tmp_path / "x.zarr"), "-q", "--estimator", "vidihand"]
    assert main([*base, "--checkpoint", str(checkpoint)]) == 2
    assert "--mano-dir" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(checkpoint), "--mano-dir", str(mano_dir), "--window", "8"]) == 2
    assert "windows of 9 frames" in capsys.readouterr().err
