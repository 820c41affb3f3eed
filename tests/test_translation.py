"""The closed-form translation solve: exact on clean data, robust to masked joints, numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.synthetic_hands import project, random_hands, random_intrinsics
from vidihand_ros.geometry import solve_translation


def _scene(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n hands with random pose, random K and a translation whose hand projects near the image."""
    rng = np.random.default_rng(seed)
    joints = random_hands(rng, n)
    K = random_intrinsics(rng, n)
    z = rng.uniform(0.2, 1.5, n)
    # Up to ~30° off-axis, so the projection lands in a wide image.
    t = np.stack([rng.uniform(-0.5, 0.5, n) * z, rng.uniform(-0.4, 0.4, n) * z, z], axis=-1)
    uv = project(joints + t[:, None, :], K)
    return joints, uv, K, t


def test_exact_on_noise_free_batches() -> None:
    joints, uv, K, t = _scene(0, 500)
    solved = solve_translation(joints, uv, K)
    assert solved.shape == (500, 3)
    np.testing.assert_allclose(solved, t, atol=1e-9)


def test_any_frame_offset_of_the_joints_is_absorbed() -> None:
    joints, uv, K, t = _scene(1, 50)
    offset = np.array([0.3, -0.2, 0.1])
    np.testing.assert_allclose(solve_translation(joints + offset, uv, K), t - offset, atol=1e-9)


def test_skewed_intrinsics() -> None:
    joints, _, K, t = _scene(2, 20)
    K[:, 0, 1] = 3.0
    uv = project(joints + t[:, None, :], K)
    np.testing.assert_allclose(solve_translation(joints, uv, K), t, atol=1e-9)


def test_zero_weight_ignores_a_wild_keypoint() -> None:
    joints, uv, K, t = _scene(3, 30)
    uv[:, 8] += [400.0, -250.0]  # index fingertip far off
    weights = np.ones((30, 21))
    weights[:, 8] = 0.0
    np.testing.assert_allclose(solve_translation(joints, uv, K, weights), t, atol=1e-9)
    # The same outlier at full weight does move the answer: the weights really act.
    err = np.linalg.norm(solve_translation(joints, uv, K) - t, axis=-1)
    assert err.min() > 1e-3


def test_weights_are_scale_free() -> None:
    joints, uv, K, t = _scene(4, 10)
    rng = np.random.default_rng(4)
    w = rng.uniform(0.1, 1.0, (10, 21))
    noisy = uv + rng.normal(0, 2.0, uv.shape)
    a = solve_translation(joints, noisy, K, w)
    np.testing.assert_allclose(solve_translation(joints, noisy, K, 7.0 * w), a, rtol=1e-12)
    err = np.linalg.norm(a - t, axis=-1)
    assert np.all(err < 0.05) and np.all(err > 1e-6)


def test_nan_keypoints_and_joints_are_skipped() -> None:
    joints, uv, K, t = _scene(5, 8)
    uv[:, [2, 5, 11]] = np.nan
    joints[:, 17] = np.nan
    np.testing.assert_allclose(solve_translation(joints, uv, K), t, atol=1e-9)


def test_fewer_than_two_weighted_joints_give_nan() -> None:
    joints, uv, K, t = _scene(6, 4)
    w = np.zeros((4, 21))
    w[1, 3] = 1.0  # one joint only
    w[2, [3, 9]] = 1.0  # two joints: solvable
    w[3, 3] = 1.0
    uv[3, 4:] = np.nan  # NaN keypoints with weight: still one usable joint
    w[3, 4:] = 1.0
    solved = solve_translation(joints, uv, K, w)
    assert np.all(np.isnan(solved[[0, 1, 3]]))
    np.testing.assert_allclose(solved[2], t[2], atol=1e-9)


def test_coincident_keypoints_are_degenerate() -> None:
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    joints = np.array([[0.0, 0, 0], [0.0, 0, 0.1]])  # both on the optical axis
    assert np.all(np.isnan(solve_translation(joints, np.full((2, 2), [320.0, 240.0]), K)))


def test_broadcast_shapes() -> None:
    joints, uv, K, t = _scene(7, 12)
    joints, uv, t = joints.reshape(3, 4, 21, 3), uv.reshape(3, 4, 21, 2), t.reshape(3, 4, 3)
    K = K.reshape(3, 4, 3, 3)
    np.testing.assert_allclose(solve_translation(joints, uv, K), t, atol=1e-9)
    # One K for a whole sequence of frames.
    K0 = K[0, 0]
    uv0 = project(joints + t[..., None, :], K0)
    out = solve_translation(joints, uv0, K0, np.ones(21))
    assert out.shape == (3, 4, 3)
    np.testing.assert_allclose(out, t, atol=1e-9)


def test_float32_in_float32_out() -> None:
    joints, uv, K, t = _scene(8, 5)
    out = solve_translation(joints.astype(np.float32), uv.astype(np.float32), K.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, t, atol=2e-4)


def test_shape_mismatch_is_an_error() -> None:
    joints, uv, K, _ = _scene(9, 2)
    with pytest.raises(ValueError, match="joints_3d"):
        solve_translation(joints[:, :20], uv, K)


def test_torch_matches_numpy_and_is_differentiable() -> None:
    torch = pytest.importorskip("torch")
    joints, uv, K, t = _scene(10, 6)
    uv[:, 4] = np.nan
    joints_t = torch.tensor(joints, requires_grad=True)
    out = solve_translation(joints_t, torch.tensor(uv), torch.tensor(K))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy(), t, atol=1e-9)
    # A numpy K with tensors is accepted (K usually comes from a CameraModel).
    np.testing.assert_allclose(
        solve_translation(joints_t, torch.tensor(uv), K).detach().numpy(), t, atol=1e-9
    )
    # NaN (masked) keypoints must not poison the gradient.
    out.sum().backward()
    assert joints_t.grad is not None and torch.isfinite(joints_t.grad).all()
    assert joints_t.grad.abs().sum() > 0


def test_torch_gradcheck() -> None:
    torch = pytest.importorskip("torch")
    joints, uv, K, _ = _scene(11, 2)
    rng = np.random.default_rng(11)
    args = (
        torch.tensor(joints[:, :6], requires_grad=True),
        torch.tensor(uv[:, :6] + rng.normal(0, 3.0, (2, 6, 2)), requires_grad=True),
        torch.tensor(K, requires_grad=True),
        torch.tensor(rng.uniform(0.2, 1.0, (2, 6)), requires_grad=True),
    )
    assert torch.autograd.gradcheck(solve_translation, args, eps=1e-6, atol=1e-5)
