"""Stitcher: each frame emitted once, in order, with estimates of overlapping windows blended."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.transform import Rotation

from tests.test_windowing import GAP_NS, frames_at, make_frame, streams
from vidihand_ros.stitching import PRESENCE_FLOOR, Stitcher, blend_hands, position_weights
from vidihand_ros.types import Frame, FramePoses, HandPose, Window
from vidihand_ros.windowing import Windower

Z = np.array([0.0, 0.0, 1.0])


def hand(presence: float = 1.0, **arrays: object) -> HandPose:
    return HandPose(presence=presence, **arrays)  # type: ignore[arg-type]


def poses_for(frames: list[Frame], *hands: HandPose | None) -> list[FramePoses]:
    return [FramePoses(f.stamp_ns, f.frame_id, left=h) for f, h in zip(frames, hands, strict=True)]


def two_overlapping_windows(
    first: HandPose | None, second: HandPose | None, weighting: str = "uniform"
) -> FramePoses:
    """W=2, S=1 over three frames: frame 1 is estimated by both windows; return its blended result."""
    frames = frames_at([0, 1, 2])
    stitcher = Stitcher(2, 1, weighting)  # type: ignore[arg-type]
    out = stitcher.add(Window(frames[:2], 0, 2, 0), poses_for(frames[:2], hand(0.5), first))
    out += stitcher.add(Window(frames[1:], 1, 2, 0), poses_for(frames[1:], second, hand(0.5)))
    out += stitcher.flush()
    assert [f for f, _ in out] == frames
    return out[1][1]


def angle_between(a: Rotation, b: Rotation) -> float:
    return float((a.inv() * b).magnitude())


# --- weights ------------------------------------------------------------------------------------


def test_position_weights() -> None:
    assert_array_equal(position_weights(4, "triangular"), [1, 2, 2, 1])
    assert_array_equal(position_weights(5, "triangular"), [1, 2, 3, 2, 1])
    assert_array_equal(position_weights(1, "triangular"), [1])
    assert_array_equal(position_weights(3, "uniform"), [1, 1, 1])
    with pytest.raises(ValueError, match="weighting"):
        position_weights(3, "gaussian")  # type: ignore[arg-type]


# --- emission order and timing ------------------------------------------------------------------


def test_w4_s2_emission_by_hand() -> None:
    frames = frames_at([i * 10 for i in range(7)])
    stitcher = Stitcher(4, 2)
    w0 = Window(frames[0:4], 0, 4, 0)
    w2 = Window(frames[2:6], 2, 4, 0)
    w4 = Window([*frames[4:7], frames[6]], 4, 3, 0)
    values = {0: [1.0, 2.0, 3.0, 4.0], 2: [30.0, 40.0, 50.0, 60.0], 4: [500.0, 600.0, 700.0, -1.0]}

    def estimate(w: Window) -> list[FramePoses]:
        return poses_for(w.frames, *(hand(transl=[v, 0, 0]) for v in values[w.start]))

    out0 = stitcher.add(w0, estimate(w0))
    assert [f for f, _ in out0] == frames[0:2]
    assert stitcher.pending == 2
    out2 = stitcher.add(w2, estimate(w2))
    assert [f for f, _ in out2] == frames[2:4]
    out4 = stitcher.add(w4, estimate(w4))  # padded: ends the segment, so everything is final
    assert [f for f, _ in out4] == frames[4:7]
    assert stitcher.pending == 0
    assert stitcher.flush() == []

    transl_x = [fp.left.transl[0] for _, fp in out0 + out2 + out4 if fp.left is not None]
    # Triangular weights [1, 2, 2, 1]: frame 2 = (2·3 + 1·30) / 3, frame 3 = (1·4 + 2·40) / 3, ...
    expected = [1, 2, (2 * 3 + 30) / 3, (4 + 2 * 40) / 3, (2 * 50 + 500) / 3, (60 + 2 * 600) / 3, 700]
    assert_allclose(transl_x, expected, rtol=1e-6)


def test_full_last_window_is_held_until_flush_or_next_window() -> None:
    frames = frames_at([0, 1, 2, 3])
    stitcher = Stitcher(4, 2)
    out = stitcher.add(Window(frames, 0, 4, 0), poses_for(frames, *[hand()] * 4))
    assert [f for f, _ in out] == frames[:2]
    assert [f for f, _ in stitcher.flush()] == frames[2:]


def test_output_carries_the_frames_stamp_and_id_and_ignores_padding() -> None:
    frames = [make_frame(100), make_frame(200)]
    padded = Window([*frames, frames[1], frames[1]], 0, 2, 0)
    poses = [
        FramePoses(999, "wrong", left=hand(0.25, transl=[1, 2, 3])),
        FramePoses(999, "wrong", left=hand(0.75, transl=[4, 5, 6])),
        FramePoses(999, "wrong", left=hand(1.0, transl=[90, 90, 90])),
        FramePoses(999, "wrong", left=hand(1.0, transl=[90, 90, 90])),
    ]
    out = Stitcher(4, 2).add(padded, poses)
    assert [(f, fp.stamp_ns, fp.frame_id) for f, fp in out] == [
        (frames[0], 100, "cam"),
        (frames[1], 200, "cam"),
    ]
    lefts = [fp.left for _, fp in out]
    assert lefts[0] is not None and lefts[1] is not None
    assert (lefts[0].presence, lefts[1].presence) == (0.25, 0.75)
    assert_array_equal(lefts[1].transl, [4, 5, 6])


@pytest.mark.parametrize(
    ("window", "stride", "weighting"),
    [(0, None, "uniform"), (3, 4, "uniform"), (3, 0, "uniform"), (3, 1, "box")],
)
def test_invalid_parameters_are_rejected(window: int, stride: int | None, weighting: str) -> None:
    with pytest.raises(ValueError):
        Stitcher(window, stride, weighting)  # type: ignore[arg-type]


def test_malformed_or_out_of_order_windows_are_rejected() -> None:
    frames = frames_at([0, 1, 2, 3, 4])
    stitcher = Stitcher(3, 2)
    with pytest.raises(ValueError, match="poses"):
        stitcher.add(Window(frames[:3], 0, 3, 0), poses_for(frames[:2], hand(), hand()))
    with pytest.raises(ValueError, match="frames"):
        stitcher.add(Window(frames[:2], 0, 2, 0), poses_for(frames[:2], hand(), hand()))
    with pytest.raises(ValueError, match="num_valid"):
        stitcher.add(Window(frames[:3], 0, 0, 0), poses_for(frames[:3], hand(), hand(), hand()))
    stitcher.add(Window(frames[:3], 0, 3, 0), poses_for(frames[:3], hand(), hand(), hand()))
    with pytest.raises(ValueError, match="already emitted"):
        stitcher.add(Window(frames[1:4], 1, 3, 0), poses_for(frames[1:4], hand(), hand(), hand()))


# --- blending -----------------------------------------------------------------------------------


def test_same_axis_equal_weights_give_the_half_way_rotation() -> None:
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    result = two_overlapping_windows(hand(global_orient=0.2 * axis), hand(global_orient=1.4 * axis))
    assert result.left is not None
    assert_allclose(np.linalg.norm(result.left.global_orient), 0.8, atol=1e-6)
    assert_allclose(result.left.global_orient, 0.8 * axis, atol=1e-6)


def test_rotations_near_pi_are_averaged_as_rotations_not_vectors() -> None:
    a, b = (np.pi - 0.1) * Z, -(np.pi - 0.1) * Z
    assert_allclose((a + b) / 2, 0.0)  # what naive axis-angle averaging would give: the identity
    result = two_overlapping_windows(
        hand(global_orient=a, wrist_orient=a), hand(global_orient=b, wrist_orient=b)
    )
    assert result.left is not None
    for rotvec in (result.left.global_orient, result.left.wrist_orient):
        assert angle_between(Rotation.from_rotvec(rotvec), Rotation.from_rotvec(np.pi * Z)) < 1e-5
        assert_allclose(np.linalg.norm(rotvec), np.pi, atol=1e-5)


def test_unequal_weights_give_the_weighted_rotation_mean() -> None:
    # Triangular W=4: the middle frame of the overlap has weight 2 in the first window, 1 in the next.
    frames = frames_at([0, 1, 2, 3, 4, 5])
    stitcher = Stitcher(4, 2, "triangular")
    pose_a = np.zeros((15, 3))
    pose_a[4] = 0.3 * Z
    pose_b = np.zeros((15, 3))
    pose_b[4] = 0.9 * Z
    stitcher.add(Window(frames[:4], 0, 4, 0), poses_for(frames[:4], *[hand(hand_pose=pose_a)] * 4))
    out = stitcher.add(Window(frames[2:], 2, 4, 0), poses_for(frames[2:], *[hand(hand_pose=pose_b)] * 4))
    left = out[0][1].left
    assert out[0][0] is frames[2] and left is not None
    # About one axis the quaternion mean is the circular mean of the angles (not (2·0.3 + 0.9) / 3).
    expected = np.arctan2(2 * np.sin(0.3) + np.sin(0.9), 2 * np.cos(0.3) + np.cos(0.9))
    assert abs(expected - 0.5) > 1e-3
    assert_allclose(left.hand_pose[4], expected * Z, atol=1e-6)
    assert_allclose(np.delete(left.hand_pose, 4, axis=0), 0.0, atol=1e-7)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
    st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
)
def test_equal_weights_give_the_geodesic_midpoint(rv1: list[float], rv2: list[float]) -> None:
    r1, r2 = Rotation.from_rotvec(rv1), Rotation.from_rotvec(rv2)
    assume(angle_between(r1, r2) < np.pi - 0.1)
    midpoint = r1 * Rotation.from_rotvec(0.5 * (r1.inv() * r2).as_rotvec())
    result = two_overlapping_windows(hand(global_orient=rv1), hand(global_orient=rv2))
    assert result.left is not None
    assert angle_between(Rotation.from_rotvec(result.left.global_orient), midpoint) < 1e-5


def test_equal_rotations_blend_to_exactly_themselves() -> None:
    # Tiny angles are where a quaternion round trip would lose the last float32 bit.
    rotvecs = np.random.default_rng(0).normal(scale=1e-6, size=(1000, 3)).astype(np.float32)
    weights = [(1.0, 1.0), (2.0, 1.0), (1.0, 3.0)]
    for k, rotvec in enumerate(rotvecs):
        pose = np.tile(rotvec, (15, 1))
        blended = blend_hands([(w, hand(global_orient=rotvec, hand_pose=pose)) for w in weights[k % 3]])
        assert blended is not None
        assert_array_equal(blended.global_orient, rotvec)
        assert_array_equal(blended.hand_pose, pose)


def test_presence_is_position_weighted_and_values_presence_weighted() -> None:
    frames = frames_at([0, 1, 2, 3, 4, 5])
    stitcher = Stitcher(4, 2, "triangular")
    stitcher.add(Window(frames[:4], 0, 4, 0), poses_for(frames[:4], *[hand(0.5, transl=[1, 0, 0])] * 4))
    out = stitcher.add(Window(frames[2:], 2, 4, 0), poses_for(frames[2:], *[hand(1.0, transl=[4, 0, 0])] * 4))
    left = out[0][1].left  # frame 2: weight 2 in the first window, 1 in the second
    assert left is not None
    assert left.presence == pytest.approx((2 * 0.5 + 1 * 1.0) / 3)
    assert_allclose(left.transl, [(2 * 0.5 * 1 + 1 * 1.0 * 4) / (2 * 0.5 + 1 * 1.0), 0, 0], rtol=1e-6)


def test_a_window_that_saw_the_hand_dominates_one_that_did_not() -> None:
    result = two_overlapping_windows(hand(1.0, transl=[1, 1, 1]), hand(0.0, transl=[3, 3, 3]))
    assert result.left is not None
    assert result.left.presence == pytest.approx(0.5)
    expected = (1.0 * 1 + PRESENCE_FLOOR * 3) / (1.0 + PRESENCE_FLOOR)
    assert_allclose(result.left.transl, [expected] * 3, rtol=1e-6)


@pytest.mark.parametrize(("p1", "p2"), [(0.0, 0.0), (0.4, 0.4), (np.nan, np.nan), (np.nan, 1.0), (2.0, 1.0)])
def test_equal_or_unknown_presence_gives_the_plain_mean(p1: float, p2: float) -> None:
    result = two_overlapping_windows(hand(p1, transl=[1, 1, 1]), hand(p2, transl=[3, 3, 3]))
    assert result.left is not None
    assert_allclose(result.left.transl, [2, 2, 2], rtol=1e-6)
    finite = [p for p in (p1, p2) if np.isfinite(p)]
    if finite:
        assert result.left.presence == pytest.approx(np.mean(finite))
    else:
        assert np.isnan(result.left.presence)


def test_non_finite_values_are_skipped_element_wise() -> None:
    joints_a = np.full((21, 3), np.nan)
    joints_a[0] = [1, 2, 3]
    joints_b = np.full((21, 3), np.nan)
    joints_b[0] = [3, np.nan, 5]
    joints_b[1] = [7, 8, 9]
    result = two_overlapping_windows(
        hand(transl=[np.nan, 5, 6], joints_3d=joints_a, betas=np.arange(10.0)),
        hand(transl=[1, np.nan, 8], joints_3d=joints_b, betas=np.full(10, -np.inf)),
    )
    left = result.left
    assert left is not None
    assert_array_equal(left.transl, [1, 5, 7])
    assert_array_equal(left.joints_3d[0], [2, 2, 4])
    assert_array_equal(left.joints_3d[1], [7, 8, 9])
    assert np.isnan(left.joints_3d[2:]).all()
    assert_array_equal(left.betas, np.arange(10.0))
    assert np.isnan(left.keypoints_2d).all()
    assert left.transl.dtype == np.float32 and left.hand_pose.shape == (15, 3)


def test_nan_rotations_are_skipped() -> None:
    pose_a = np.full((15, 3), np.nan)
    pose_a[0] = 0.2 * Z
    pose_a[1] = 0.5 * Z
    pose_b = np.full((15, 3), np.nan)
    pose_b[0] = 0.6 * Z
    pose_b[2] = [np.nan, 0.0, 0.0]  # a partly NaN rotation is no rotation
    result = two_overlapping_windows(
        hand(global_orient=[np.nan] * 3, wrist_orient=0.3 * Z, hand_pose=pose_a),
        hand(global_orient=0.7 * Z, hand_pose=pose_b),
    )
    left = result.left
    assert left is not None
    assert_allclose(left.global_orient, 0.7 * Z, atol=1e-7)
    assert_allclose(left.wrist_orient, 0.3 * Z, atol=1e-7)
    assert_allclose(left.hand_pose[0], 0.4 * Z, atol=1e-6)
    assert_allclose(left.hand_pose[1], 0.5 * Z, atol=1e-7)
    assert np.isnan(left.hand_pose[2:]).all()


def test_none_means_no_estimate() -> None:
    only_second = two_overlapping_windows(None, hand(0.3, transl=[1, 2, 3], global_orient=0.5 * Z))
    assert only_second.left is not None and only_second.right is None
    assert only_second.left.presence == pytest.approx(0.3)
    assert_array_equal(only_second.left.transl, [1, 2, 3])
    assert_allclose(only_second.left.global_orient, 0.5 * Z, atol=1e-7)
    neither = two_overlapping_windows(None, None)
    assert neither.left is None and neither.right is None
    assert blend_hands([]) is None


def test_hands_are_blended_independently() -> None:
    frames = frames_at([0])
    left, right = hand(0.9, transl=[1, 1, 1]), hand(0.2, transl=[-1, -1, -1])
    out = Stitcher(1).add(Window(frames, 0, 1, 0), [FramePoses(0, "cam", left=left, right=right)])
    blended = out[0][1]
    assert blended.left is not None and blended.right is not None
    assert (blended.left.presence, blended.right.presence) == pytest.approx((0.9, 0.2))
    assert_array_equal(blended.right.transl, [-1, -1, -1])


# --- Windower + Stitcher, streaming -------------------------------------------------------------


def derived(frame: Frame) -> HandPose:
    """An exact function of the frame's stamp, as an ideal estimator would give in every window."""
    ms = frame.stamp_ns // 1_000_000
    return hand(
        presence=(ms % 1000) / 1024,
        transl=np.array([ms % 1000, ms % 7, 1 + ms % 3]) * 0.01,
        global_orient=((ms % 600) / 100 - 3) * Z,
    )


GARBAGE = hand(1.0, transl=[1e3, 1e3, 1e3], global_orient=[1.0, 0.0, 0.0])


def identity_estimate(window: Window) -> list[FramePoses]:
    """Derived values for real frames, garbage for padding; the right hand only on even milliseconds."""
    out = []
    for i, f in enumerate(window.frames):
        real = i < window.num_valid
        right = derived(f) if (f.stamp_ns // 1_000_000) % 2 == 0 else None
        out.append(
            FramePoses(f.stamp_ns, f.frame_id, derived(f) if real else GARBAGE, right if real else GARBAGE)
        )
    return out


@settings(max_examples=40, deadline=None)
@given(streams(), st.sampled_from(["triangular", "uniform"]))
def test_windower_and_stitcher_emit_every_frame_once_in_order(
    stream: tuple[int, int, list[int]], weighting: str
) -> None:
    window, stride, stamps = stream
    frames = frames_at(stamps)
    windower = Windower(window, stride, GAP_NS)
    stitcher = Stitcher(window, stride, weighting)  # type: ignore[arg-type]
    windows = [w for f in frames for w in windower.push(f)] + windower.flush()

    emitted: list[tuple[Frame, FramePoses]] = []
    for k, w in enumerate(windows):
        emitted += stitcher.add(w, identity_estimate(w))
        assert stitcher.pending <= window
        # Emitted as soon as no later window can cover it, and never before.
        final = w.start + (w.num_valid if w.num_valid < window else stride)
        assert len(emitted) == final
        assert all(later.start >= final for later in windows[k + 1 :])
    emitted += stitcher.flush()
    assert stitcher.pending == 0

    assert [f for f, _ in emitted] == frames
    for frame, fp in emitted:
        assert (fp.stamp_ns, fp.frame_id) == (frame.stamp_ns, frame.frame_id)
        expected = derived(frame)
        assert fp.left is not None
        assert fp.left.presence == expected.presence
        assert_array_equal(fp.left.transl, expected.transl)
        assert_array_equal(fp.left.global_orient, expected.global_orient)
        assert np.isnan(fp.left.hand_pose).all() and np.isnan(fp.left.wrist_orient).all()
        if (frame.stamp_ns // 1_000_000) % 2 == 0:
            assert fp.right is not None
            assert_array_equal(fp.right.transl, expected.transl)
        else:
            assert fp.right is None


def test_filled_flag_survives_blending_only_when_no_window_observed_the_hand() -> None:
    observed = HandPose(presence=0.9)
    filled = HandPose(presence=0.9, filled=True)
    blended = blend_hands([(1.0, filled), (2.0, filled)])
    assert blended is not None and blended.filled
    mixed = blend_hands([(1.0, filled), (2.0, observed)])
    assert mixed is not None and not mixed.filled
