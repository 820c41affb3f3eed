"""ViDiHand as an estimator: `vidihand model init` → checkpoint → `vidihand convert --estimator vidihand`.

Real diffusers models from the tiny config (random weights), real smplx MANO layers from synthetic
MANO files, real bags and Zarr stores.
"""

from __future__ import annotations

import json
import pickle
import shutil
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


# -- bad checkpoints: one line naming the file, exit 2, before anything big is allocated ------------


def _edit_state(directory: Path, edit) -> None:
    state_path = directory / "state.json"
    state = json.loads(state_path.read_text())
    edit(state)
    state_path.write_text(json.dumps(state))


def _set(path: tuple[str, ...], value):
    def edit(state: dict) -> None:
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


BAD_CHECKPOINTS = {
    "only_a_pickle": (
        lambda d: (
            [(d / n).unlink() for n in ("model.safetensors", "state.json")]
            + [(d / "pytorch_model.bin").write_bytes(pickle.dumps({"w": [1.0]}))]
        ),
        "state.json",
        "pickle checkpoints are refused",
    ),
    "pickle_beside_state": (
        lambda d: [(d / "model.safetensors").unlink(), (d / "model.pt").write_bytes(b"\x80\x02N.")],
        "model.safetensors",
        "only model.pt: pickle checkpoints are refused",
    ),
    "pickle_renamed": (
        lambda d: (d / "model.safetensors").write_bytes(pickle.dumps({"w": [1.0]})),
        "model.safetensors",
        "a pickle (torch.save), not safetensors",
    ),
    "damaged_safetensors": (
        lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100]),
        "model.safetensors",
        "not a safetensors file",
    ),
    "state_not_json": (lambda d: (d / "state.json").write_text("{step: 1"), "state.json", "not valid JSON"),
    "state_not_text": (lambda d: (d / "state.json").write_bytes(b"\xff\xfe\x00"), "state.json", "not a text"),
    "state_not_object": (
        lambda d: (d / "state.json").write_text("[1]"),
        "state.json",
        "expected a JSON object",
    ),
    "step_a_string": (lambda d: _edit_state(d, _set(("step",), "7")), "state.json", "field 'step'"),
    "config_a_list": (lambda d: _edit_state(d, _set(("config",), [1])), "state.json", "field 'config'"),
    "model_config_incomplete": (
        lambda d: _edit_state(d, _set(("config", "model"), {"name": "tiny"})),
        "state.json",
        "bad model config",
    ),
    "decoder_config_wrong_type": (
        lambda d: _edit_state(d, _set(("config", "decoder", "dim"), "wide")),
        "state.json",
        "bad model config",
    ),
    "decoder_wider_than_its_tensors": (
        lambda d: _edit_state(d, _set(("config", "decoder", "dim"), 65536)),
        "model.safetensors",
        "does not match its config",
    ),
    "layer_count_beyond_the_tensors": (
        lambda d: _edit_state(d, _set(("config", "model", "backbone", "transformer", "num_layers"), 10**7)),
        "state.json",
        "num_layers",
    ),
    "nan_in_config": (
        lambda d: _edit_state(d, _set(("config", "model", "backbone", "tau"), float("nan"))),
        "state.json",
        "not a finite number",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_is_one_line_naming_the_file(
    tmp_path: Path,
    checkpoint: Path,
    mano_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture,
    case: str,
) -> None:
    damage, file_name, expected = BAD_CHECKPOINTS[case]
    broken = tmp_path / "ckpt"
    shutil.copytree(checkpoint, broken)
    damage(broken)
    argv = ["convert", str(tmp_path / "rec.mp4"), "-o", str(tmp_path / "x.zarr"), "-q"]
    argv += ["--estimator", "vidihand", "--checkpoint", str(broken), "--mano-dir", str(mano_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(broken / file_name) in err and expected in err, err


def test_missing_checkpoint_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["convert", str(tmp_path / "rec.mp4"), "-o", str(tmp_path / "x.zarr"), "-q", "--estimator"]
    assert main([*argv, "vidihand", "--checkpoint", str(tmp_path / "nope"), "--mano-dir", str(tmp_path)]) == 2
    assert "no such checkpoint directory" in capsys.readouterr().err
