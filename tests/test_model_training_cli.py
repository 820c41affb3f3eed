"""Training from data on disk: ground-truth dataset → windows → `vidihand train adapt|decoder`.

A small ground-truth dataset is written with `DatasetWriter`: MANO poses from synthetic MANO
files, their joints projected with K, and frames with skin-coloured blobs at the projected
keypoints, stored at 64 × 48 so that the windows are resized (to the tiny model's 32 × 32).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the ViDiHand model needs the [model] extra")
pytest.importorskip("smplx", reason="MANO layers need the [mano] extra")

import torch
from safetensors.torch import load_file

import vidihand_ros.cli as cli
from tests.mano_fixtures import mano_dir, mano_layers  # noqa: F401  (pytest fixtures)
from vidihand_ros.cli.train import add_parser as add_train_parser
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.errors import InputError
from vidihand_ros.mano.layer import ManoLayer
from vidihand_ros.model.config import preset
from vidihand_ros.training.overlay import OverlayRenderer
from vidihand_ros.training.windows import (
    GroundTruthWindows,
    OverlayWindows,
    window_starts,
    window_targets,
)
from vidihand_ros.types import CameraModel, Frame, FramePoses, HandPose

WIDTH, HEIGHT = 64, 48
CAMERA = CameraModel.from_fxfycxcy(60.0, 60.0, 31.5, 23.5, width=WIDTH, height=HEIGHT)
EPISODES = (12, 9, 5)  # windows of 9 frames: starts (0, 3), (0,), none
RIGHT_LEAVES = 9  # the right hand of episode 0 is annotated absent from frame 9 on


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _hand(layer: ManoLayer, rng: np.random.Generator, n: int, wrist: np.ndarray) -> dict[str, np.ndarray]:
    """MANO parameters and joints of a hand moving slowly with its wrist near `wrist` (metres)."""
    tt = np.linspace(0.0, 1.0, n)[:, None]
    go = np.array([np.pi, 0.0, 0.0]) + rng.normal(scale=0.3, size=3) + 0.2 * tt
    pose = (rng.normal(scale=0.2, size=(15, 3)) + 0.1 * tt[:, :, None]).reshape(n, 15, 3)
    betas = np.repeat(rng.normal(scale=0.5, size=(1, 10)), n, axis=0)
    args = [torch.tensor(a, dtype=torch.float32) for a in (go, pose, betas)]
    with torch.no_grad():
        rest = layer(*args, torch.zeros(n, 3)).joints.double().numpy()
    transl = wrist + 0.02 * tt - rest[:, 0]
    return {
        "global_orient": go,
        "hand_pose": pose,
        "betas": betas,
        "transl": transl,
        "joints": rest + transl[:, None],
    }


def _project(joints: np.ndarray) -> np.ndarray:
    uv = joints @ CAMERA.K.T
    return uv[..., :2] / uv[..., 2:]


def _frame(rng: np.random.Generator, keypoints: Sequence[np.ndarray]) -> np.ndarray:
    image = np.clip(rng.normal(110.0, 8.0, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    for kp in keypoints:
        for x, y in np.round(kp).astype(int):
            cv2.circle(image, (int(x), int(y)), 2, (224, 172, 140), -1)
    return image


def write_ground_truth(path: Path, layers: dict[str, ManoLayer], *, poses: bool = True) -> Path:
    rng = np.random.default_rng(0)
    with DatasetWriter(path, attrs={"estimator": "ground_truth"}) as writer:
        for e, n in enumerate(EPISODES):
            hands = {
                side: _hand(layers[side], rng, n, np.array([x, 0.0, 0.45]))
                for side, x in (("left", -0.06), ("right", 0.06))
            }
            with writer.begin_episode({"task": f"episode {e}"}) as episode:
                for t in range(n):
                    stamp = (e * 1000 + t) * 33_000_000
                    fp = FramePoses(stamp, "cam")
                    drawn = []
                    for side, h in hands.items():
                        if e == 1 and t == 0 and side == "left":
                            continue  # not annotated: presence unknown
                        if e == 0 and side == "right" and t >= RIGHT_LEAVES:
                            setattr(fp, side, HandPose(presence=0.0))
                            continue
                        kp = _project(h["joints"][t])
                        drawn.append(kp)
                        hand = HandPose(
                            presence=1.0,
                            global_orient=h["global_orient"][t],
                            hand_pose=h["hand_pose"][t],
                            betas=h["betas"][t],
                            transl=h["transl"][t],
                            joints_3d=h["joints"][t],
                            keypoints_2d=kp,
                        )
                        setattr(fp, side, hand)
                    pixels = _frame(rng, drawn)
                    frame = Frame(stamp, "cam", "rgb8", WIDTH, HEIGHT, pixels=pixels, camera=CAMERA)
                    episode.add(frame, fp if poses else None)
    return path


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory: pytest.TempPathFactory, mano_layers: dict[str, ManoLayer]) -> Path:  # noqa: F811
    return write_ground_truth(tmp_path_factory.mktemp("gt") / "gt.zarr", mano_layers)


def _has_train(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) and "train" in a.choices for a in parser._actions)


@pytest.fixture
def vidihand(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    """`vidihand_ros.cli.main`, with `train` wired in locally if cli.py does not add it yet."""
    if not _has_train(cli.build_parser()):
        original = cli.build_parser

        def build_parser() -> argparse.ArgumentParser:
            parser = original()
            commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            add_train_parser(commands)
            return parser

        monkeypatch.setattr(cli, "build_parser", build_parser)
    return cli.main


# -- windows --------------------------------------------------------------------------------------


def test_window_starts_cover_the_tail() -> None:
    assert window_starts(12, 9, 9) == [0, 3]
    assert window_starts(9, 9, 4) == [0]
    assert window_starts(17, 9, 4) == [0, 4, 8]
    assert window_starts(5, 9, 4) == []


def test_windows_are_resized_with_consistent_intrinsics_and_keypoints(ground_truth: Path) -> None:
    cfg = preset("tiny")
    windows = GroundTruthWindows(ground_truth, window=cfg.window, image_size=cfg.image_size)
    assert [(s.episode, s.start) for s in windows.spans] == [(0, 0), (0, 3), (1, 0)]
    data = windows[1]
    assert data.frames.shape == (9, 32, 32, 3) and data.frames.dtype == np.uint8
    assert data.K is not None
    right = data.hands["right"]
    present = data.present("right")
    assert present.tolist() == [t + 3 < RIGHT_LEAVES for t in range(9)]
    # Keypoints scaled with the image match the joints projected with the scaled K.
    uv = right["joints_3d"][present] @ data.K.T
    np.testing.assert_allclose(uv[..., :2] / uv[..., 2:], right["keypoints_2d"][present], atol=1e-3)
    assert np.isnan(right["joints_3d"][~present]).all()

    targets = window_targets(windows[2])
    assert targets.presence.shape == (1, 9, 2) and targets.joints_3d.shape == (1, 9, 2, 21, 3)
    assert torch.isnan(targets.presence[0, 0, 0]) and targets.presence[0, 1:].eq(1).all()


def test_overlay_windows_draw_skeletons_and_mano_meshes(ground_truth: Path, mano_dir: Path) -> None:  # noqa: F811
    cfg = preset("tiny")
    skeleton = OverlayWindows(ground_truth, cfg, stage="skeleton")
    mesh = OverlayWindows(ground_truth, cfg, stage="mesh", mano_dir=mano_dir)
    assert len(skeleton) == len(mesh) == 3
    for windows in (skeleton, mesh):
        window = windows[0]
        assert [h.side for h in window.hands] == ["left", "right"]
        drawn = OverlayRenderer(windows.stage).render_window(window)
        assert drawn.shape == window.frames.shape and not np.array_equal(drawn, window.frames)
    right = mesh[0].hands[1]
    assert right.vertices is not None and right.vertices.shape == (9, 778, 3)
    assert np.isfinite(right.vertices[:RIGHT_LEAVES]).all()
    with pytest.raises(InputError, match="mano"):
        OverlayWindows(ground_truth, cfg, stage="mesh")


# -- the command line -----------------------------------------------------------------------------


def _tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


def _losses(out: str, label: str) -> list[float]:
    return [float(v) for v in re.findall(rf"^{label} step \d+ loss (\S+)", out, flags=re.M)]


def _only_safetensors_and_json(root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files and {p.suffix for p in files} <= {".safetensors", ".json"}, files


def test_train_adapt_then_decoder_updates_the_checkpoint(
    tmp_path: Path,
    ground_truth: Path,
    mano_dir: Path,  # noqa: F811
    vidihand: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ck = tmp_path / "ck"
    assert vidihand(["model", "init", "--config", "tiny", "-o", str(ck)]) == 0
    initial = _tensors(ck)
    base = ["--checkpoint", str(ck), "--data", str(ground_truth), "--log-every", "1"]

    adapt = ["train", "adapt", *base, "--stage", "skeleton", "--out", str(tmp_path / "adapt")]
    assert vidihand([*adapt, "--steps", "3"]) == 0
    losses = _losses(capsys.readouterr().out, "adapt")
    assert len(losses) == 3 and all(np.isfinite(losses))
    _only_safetensors_and_json(tmp_path / "adapt")
    assert (tmp_path / "adapt" / "step-00000003" / "model.safetensors").is_file()
    adapted = _tensors(ck)
    changed = _changed(initial, adapted)
    assert changed and all(k.startswith("backbone.transformer.vace_") for k in changed), changed
    assert any(".vace_blocks." in k for k in changed)

    # A second run into the same directory needs --resume, and then continues where it stopped.
    assert vidihand([*adapt, "--steps", "4"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert vidihand([*adapt, "--steps", "4", "--resume"]) == 0
    assert "steps 3→4" in capsys.readouterr().out
    # Stage 2 (mesh overlay) starts from the stage-1 weights now in the checkpoint.
    mesh = ["train", "adapt", *base, "--stage", "mesh", "--mano-dir", str(mano_dir)]
    assert vidihand([*mesh, "--steps", "1", "--out", str(tmp_path / "mesh")]) == 0
    assert len(_losses(capsys.readouterr().out, "adapt")) == 1
    adapted = _tensors(ck)
    assert _changed(initial, adapted) == changed

    decoder = ["train", "decoder", *base, "--mano-dir", str(mano_dir), "--out", str(tmp_path / "dec")]
    assert vidihand([*decoder, "--steps", "5", "--batch-size", "2"]) == 0
    losses = _losses(capsys.readouterr().out, "decoder")
    assert len(losses) == 5 and all(np.isfinite(losses))
    _only_safetensors_and_json(tmp_path / "dec")
    assert len(list((tmp_path / "dec" / "examples").glob("*.safetensors"))) == 3
    trained = _tensors(ck)
    changed = _changed(adapted, trained)
    assert changed and all(k.startswith("decoder.") for k in changed), changed
    decoder_keys = {k for k in trained if k.startswith("decoder.")}
    assert len(changed) > len(decoder_keys) // 2


def test_bad_input_is_a_clear_error(
    tmp_path: Path,
    ground_truth: Path,
    mano_layers: dict[str, ManoLayer],  # noqa: F811
    vidihand: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ck = tmp_path / "ck"
    assert vidihand(["model", "init", "--config", "tiny", "-o", str(ck)]) == 0
    before = _tensors(ck)
    adapt = ["train", "adapt", "--checkpoint", str(ck), "--out", str(tmp_path / "run"), "--steps", "1"]

    assert vidihand([*adapt, "--data", str(ground_truth), "--stage", "mesh"]) == 2
    assert "--mano-dir" in capsys.readouterr().err

    frames_only = write_ground_truth(tmp_path / "frames.zarr", mano_layers, poses=False)
    assert vidihand([*adapt, "--data", str(frames_only)]) == 2
    assert "no ground-truth poses" in capsys.readouterr().err

    assert vidihand([*adapt, "--data", str(tmp_path / "missing.zarr")]) == 2
    assert "not a zarr dataset" in capsys.readouterr().err
    assert not _changed(before, _tensors(ck)) and not (tmp_path / "run").exists()
