"""Hand-overlay renderer (numpy/OpenCV only): skeleton and z-buffered mesh, blending, hidden hands."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vidihand_ros.errors import InputError
from vidihand_ros.testing.synthetic_mano import synthetic_mano_arrays
from vidihand_ros.testing.synthetic_windows import SyntheticHandSet, canonical_hand
from vidihand_ros.training.overlay import (
    BONES,
    FINGER_COLOURS,
    HandTrack,
    OverlayRenderer,
    blend,
    rasterize_meshes,
)

K = np.array([[200.0, 0.0, 79.5], [0.0, 200.0, 59.5], [0.0, 0.0, 1.0]])


def _keypoints(frames: int = 1) -> np.ndarray:
    uv = canonical_hand("right") * 600 + np.array([80.0, 100.0, 0.0])
    return np.repeat(uv[None, :, :2], frames, axis=0)


def test_renderer_config_and_synthetic_set_import_without_torch() -> None:
    code = (
        "import sys, vidihand_ros.model, vidihand_ros.training, vidihand_ros.training.overlay,"
        " vidihand_ros.testing.synthetic_windows;"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bones_form_the_21_joint_tree() -> None:
    assert len(BONES) == 20
    assert sorted(child for _, child in BONES) == list(range(1, 21))
    assert all(parent < child for parent, child in BONES)


def test_skeleton_blends_only_where_drawn_and_respects_alpha() -> None:
    frames = np.full((2, 120, 160, 3), 100, np.uint8)
    hand = HandTrack("right", keypoints=_keypoints(2), present=np.array([True, False]))
    out = OverlayRenderer("skeleton", alpha=0.5)(frames, [hand])
    changed = np.any(out[0] != frames[0], axis=-1)
    assert 50 < changed.sum() < 0.3 * changed.size
    assert np.array_equal(out[1], frames[1]), "an absent hand draws nothing"
    _, xs = np.nonzero(changed)
    kp = hand.keypoints[0]  # type: ignore[index]
    assert xs.min() >= kp[:, 0].min() - 4 and xs.max() <= kp[:, 0].max() + 4
    assert np.array_equal(OverlayRenderer("skeleton", alpha=0.0)(frames, [hand]), frames)
    # Opaque (3 px lines at 480 px): the middle of the index finger's middle bone has its colour.
    big = np.full((1, 480, 640, 3), 100, np.uint8)
    kp4 = kp * 4
    opaque = OverlayRenderer("skeleton", alpha=1.0)(big, [HandTrack("right", keypoints=kp4[None])])
    mid = np.round((kp4[6] + kp4[7]) / 2).astype(int)
    assert tuple(opaque[0, mid[1], mid[0]]) == FINGER_COLOURS["right"][1]


def test_left_and_right_differ_and_nan_joints_are_skipped() -> None:
    frames = np.full((1, 120, 160, 3), 100, np.uint8)
    kp = _keypoints()
    right = OverlayRenderer("skeleton", alpha=1.0)(frames, [HandTrack("right", keypoints=kp)])
    left = OverlayRenderer("skeleton", alpha=1.0)(frames, [HandTrack("left", keypoints=kp)])
    covered = np.any(right[0] != 100, axis=-1)
    assert np.array_equal(covered, np.any(left[0] != 100, axis=-1))
    assert np.mean(np.abs(right[0][covered].astype(int) - left[0][covered].astype(int))) > 50
    with_nan = kp.copy()
    with_nan[0, 8:13] = np.nan
    partial = OverlayRenderer("skeleton", alpha=1.0)(frames, [HandTrack("right", keypoints=with_nan)])
    assert 0 < np.count_nonzero(partial != 100) < np.count_nonzero(right != 100)
    with pytest.raises(InputError):
        HandTrack("middle")


def test_hidden_hands_are_drawn_over_the_occluder() -> None:
    window = SyntheticHandSet(1, frames=5, size=(64, 64), seed=3, occlusion=1.0)[0]
    hand = window.hands[1]
    frames = window.frames.copy()
    frames[:] = 128  # the whole frame is an "occluder": nothing of the hand is visible
    out = OverlayRenderer("skeleton")(frames, window.hands)
    for t in range(frames.shape[0]):
        if hand.is_present(t):
            assert np.any(out[t] != frames[t])


def test_rasterizer_covers_a_triangle_exactly() -> None:
    z = 2.0
    # A triangle whose projection is (20, 20), (60, 20), (20, 60) in pixels.
    pix = np.array([[20.0, 20.0], [60.0, 20.0], [20.0, 60.0]])
    verts = np.column_stack([(pix - K[:2, 2]) / K[0, 0] * z, np.full(3, z)])
    layer, cov = rasterize_meshes([verts], [np.array([[0, 1, 2]])], [(200, 100, 50)], K, (120, 160))
    ys, xs = np.mgrid[0:120, 0:160]
    inside = (xs >= 20) & (ys >= 20) & (xs + ys <= 80)
    assert np.array_equal(cov > 0, inside)
    # Facing the camera (up to the off-axis viewing angle): nearly the full base colour.
    assert np.allclose(layer[30, 30], (200, 100, 50), atol=6)


def test_rasterizer_keeps_the_nearest_surface_in_any_order() -> None:
    def square(z: float, cx: float) -> np.ndarray:
        corners = np.array([[cx - 20, 40.0], [cx + 20, 40.0], [cx + 20, 80.0], [cx - 20, 80.0]])
        return np.column_stack([(corners - K[:2, 2]) / K[0, 0] * z, np.full(4, z)])

    quads = np.array([[0, 1, 2], [0, 2, 3]])
    near, far = square(1.0, 70.0), square(3.0, 90.0)
    for order in ((near, far), (far, near)):
        colours = [(255, 0, 0), (0, 0, 255)] if order[0] is near else [(0, 0, 255), (255, 0, 0)]
        layer, _ = rasterize_meshes(list(order), [quads, quads], colours, K, (120, 160))
        assert np.argmax(layer[60, 80]) == 0 and layer[60, 80, 2] == 0, "overlap shows the near square"
        assert np.argmax(layer[60, 105]) == 2 and layer[60, 105, 0] == 0, "the far square beside it"
    behind = square(-1.0, 70.0)
    _, cov = rasterize_meshes([behind], [quads], [(1, 2, 3)], K, (120, 160))
    assert not cov.any()


def test_mano_mesh_overlay() -> None:
    mano = synthetic_mano_arrays("right", seed=0)
    verts = np.asarray(mano["v_template"], np.float64)
    faces = np.asarray(mano["f"], np.int64)
    placed = verts - verts.mean(axis=0) + np.array([0.0, 0.0, 0.5])
    track = HandTrack("right", vertices=placed[None], faces=faces)
    frames = np.full((1, 120, 160, 3), 30, np.uint8)
    out = OverlayRenderer("mesh", alpha=0.6)(frames, [track], K)
    changed = np.any(out[0] != frames[0], axis=-1)
    uv = placed @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 200
    assert xs.min() >= np.floor(uv[:, 0].min()) and xs.max() <= np.ceil(uv[:, 0].max())
    assert ys.min() >= np.floor(uv[:, 1].min()) and ys.max() <= np.ceil(uv[:, 1].max())
    with pytest.raises(InputError, match="intrinsics"):
        OverlayRenderer("mesh")(frames, [track])


def test_blend_formula() -> None:
    frame = np.full((1, 2, 3), 100, np.uint8)
    layer = np.full((1, 2, 3), 200, np.uint8)
    cov = np.array([[255, 0]], np.uint8)
    out = blend(frame, layer, cov, 0.25)
    assert out[0, 0, 0] == 125 and out[0, 1, 0] == 100


def test_synthetic_set_is_deterministic_and_consistent() -> None:
    a, b = SyntheticHandSet(3, seed=7), SyntheticHandSet(3, seed=7)
    assert len(a) == 3
    wa, wb = a[2], b[2]
    assert np.array_equal(wa.frames, wb.frames) and wa.frames.shape == (9, 32, 32, 3)
    assert wa.K is not None
    for hand in wa.hands:
        assert hand.keypoints is not None and hand.vertices is not None and hand.faces is not None
        assert hand.keypoints.shape == (9, 21, 2) and hand.vertices.shape[0] == 9
    with pytest.raises(IndexError):
        a[3]
