"""Fitting MANO to 3D joints: accuracy, missing data, the temporal term (synthetic MANO files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.mano_fixtures import mano_dir, mano_layers  # noqa: F401  (pytest fixtures)

torch = pytest.importorskip("torch")
pytest.importorskip("smplx")

from vidihand_ros.mano.fit import ManoFit, fit_mano  # noqa: E402
from vidihand_ros.mano.layer import ManoLayer  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """Windows this small are fastest on one thread (and shared CI runners are busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def motion(layer: ManoLayer, frames: int, seed: int) -> dict[str, np.ndarray]:
    """A smooth random motion (about a second of video): moderate finger articulation, any
    orientation turning by ~0.5 rad, drifting by a few cm, about 0.45 m from the camera."""
    rng = np.random.default_rng(seed)
    s = np.linspace(0.0, 1.0, frames)[:, None]
    start, end = rng.normal(0.0, 0.35, (2, 45))
    hand_pose = start * (1 - s) + end * s
    orient = rng.normal(0.0, 1.0, 3) + s * rng.normal(0.0, 0.3, 3)
    transl = np.array([0.0, 0.0, 0.45]) + rng.normal(0.0, 0.05, 3) + s * rng.normal(0.0, 0.03, 3)
    betas = rng.normal(0.0, 1.0, 10)
    with torch.no_grad():
        joints = layer.joints(
            torch.tensor(orient, dtype=torch.float32),
            torch.tensor(hand_pose, dtype=torch.float32),
            torch.tensor(betas, dtype=torch.float32),
            torch.tensor(transl, dtype=torch.float32),
        )
    return {"joints": joints.numpy().astype(np.float64), "transl": transl, "betas": betas}


def mean_error_mm(fit: ManoFit, joints: np.ndarray) -> float:
    return float(np.nanmean(np.linalg.norm(fit.joints - joints, axis=2)) * 1000)


def jitter_mm(joints: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(joints, n=2, axis=0), axis=2).mean() * 1000)


@pytest.mark.parametrize("side", ["right", "left"])
def test_noise_free_fit_recovers_joints_and_translation(mano_layers: dict, side: str) -> None:  # noqa: F811
    truth = motion(mano_layers[side], frames=12, seed=1 if side == "right" else 2)
    fit = fit_mano(truth["joints"], side, mano_layers[side])
    assert fit.converged
    assert mean_error_mm(fit, truth["joints"]) < 2.0
    assert np.linalg.norm(fit.transl - truth["transl"], axis=1).max() * 1000 < 2.0
    assert np.all(fit.residual_mm < 2.0)
    shapes = {
        "global_orient": (12, 3),
        "hand_pose": (12, 15, 3),
        "betas": (10,),
        "transl": (12, 3),
        "joints": (12, 21, 3),
        "residual_mm": (12,),
    }
    for name, shape in shapes.items():
        value = getattr(fit, name)
        assert value.shape == shape and value.dtype == np.float32, name
        assert np.isfinite(value).all(), name
    # The returned parameters reproduce the returned joints through the layer.
    with torch.no_grad():
        again = mano_layers[side].joints(
            *(torch.from_numpy(v) for v in (fit.global_orient, fit.hand_pose, fit.betas, fit.transl))
        )
    np.testing.assert_allclose(again.numpy(), fit.joints, atol=1e-5)


def test_noisy_fit_stays_within_noise(mano_layers: dict) -> None:  # noqa: F811
    truth = motion(mano_layers["right"], frames=12, seed=3)
    noisy = truth["joints"] + np.random.default_rng(0).normal(0.0, 0.003, truth["joints"].shape)
    fit = fit_mano(noisy, "right", mano_layers["right"])
    assert mean_error_mm(fit, truth["joints"]) < 5.0


def test_temporal_term_lowers_jitter(mano_layers: dict) -> None:  # noqa: F811
    truth = motion(mano_layers["right"], frames=16, seed=4)
    noisy = truth["joints"] + np.random.default_rng(1).normal(0.0, 0.003, truth["joints"].shape)
    rough = fit_mano(noisy, "right", mano_layers["right"], smooth_weight=0.0)
    smooth = fit_mano(noisy, "right", mano_layers["right"])
    assert jitter_mm(smooth.joints) < 0.5 * jitter_mm(rough.joints)
    assert mean_error_mm(smooth, truth["joints"]) < mean_error_mm(rough, truth["joints"])


def test_missing_frames_and_joints(mano_layers: dict) -> None:  # noqa: F811
    truth = motion(mano_layers["right"], frames=10, seed=5)
    joints = truth["joints"].copy()
    joints[[3, 4]] = np.nan  # frames with no hand
    joints[7, 10:15] = np.nan  # a few joints not observed
    fit = fit_mano(joints, "right", mano_layers["right"])
    missing = np.isin(np.arange(10), [3, 4])
    np.testing.assert_array_equal(fit.valid, ~missing)
    for name in ("global_orient", "hand_pose", "transl", "joints", "residual_mm"):
        values = getattr(fit, name)
        assert np.isnan(values[missing]).all(), name
        assert np.isfinite(values[~missing]).all(), name
    # Every fitted frame, including the unobserved joints of frame 7, is close to the truth.
    errors = np.linalg.norm(fit.joints[~missing] - truth["joints"][~missing], axis=2) * 1000
    assert errors.mean() < 2.0 and errors.max() < 10.0
    nothing = fit_mano(np.full((4, 21, 3), np.nan), "right", mano_layers["right"])
    assert not nothing.converged and not nothing.valid.any()
    assert np.isnan(nothing.betas).all() and np.isnan(nothing.joints).all()


def test_fixed_betas_and_rigid_initialisation(mano_layers: dict) -> None:  # noqa: F811
    layer = mano_layers["left"]
    truth = motion(layer, frames=6, seed=6)
    fit = fit_mano(truth["joints"], "left", layer, betas=truth["betas"])
    np.testing.assert_allclose(fit.betas, truth["betas"], rtol=1e-6)
    assert mean_error_mm(fit, truth["joints"]) < 2.0
    # A flat hand moved rigidly is placed exactly by the Kabsch initialisation alone.
    rng = np.random.default_rng(7)
    orient, transl = rng.normal(0.0, 1.0, (4, 3)), rng.normal(0.0, 0.1, (4, 3))
    with torch.no_grad():
        flat = layer.joints(
            *(torch.tensor(v, dtype=torch.float32) for v in (orient, np.zeros((4, 45)), np.zeros(10), transl))
        )
    start = fit_mano(flat.numpy(), "left", layer, iters=0)
    assert mean_error_mm(start, flat.numpy()) < 0.01


def test_fit_from_a_folder_and_bad_input(mano_dir: Path, mano_layers: dict) -> None:  # noqa: F811
    truth = motion(mano_layers["right"], frames=3, seed=8)  # three frames: too short to smooth
    fit = fit_mano(truth["joints"], "right", mano_dir, smooth_weight=0.0)
    assert mean_error_mm(fit, truth["joints"]) < 2.0
    with pytest.raises(ValueError, match="a right MANO layer cannot fit the left hand"):
        fit_mano(truth["joints"], "left", mano_layers["right"])
    with pytest.raises(ValueError, match=r"\(T, 21, 3\)"):
        fit_mano(truth["joints"][:, :20], "right", mano_layers["right"])
