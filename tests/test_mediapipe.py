"""The MediaPipe baseline on real photographs (HaMeR's example images, MIT; ../shared/data/hands).

Hand boxes below were read off the photos by eye (original pixel coordinates, x0, y0, x1, y1, with
a margin of ~15 px). The photos are third-person and not mirrored: a subject facing the camera
has their right hand on the image's left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

pytest.importorskip(
    "mediapipe", reason="the mediapipe estimator needs the [baseline] extra: pip install -e '.[baseline]'"
)

from scipy.spatial.transform import Rotation

from vidihand_ros.estimators import create_estimator
from vidihand_ros.estimators.mediapipe.detector import MediaPipeHandDetector
from vidihand_ros.estimators.mediapipe.filtering import jitter
from vidihand_ros.estimators.mediapipe.hands import MediaPipeHandsEstimator, MediaPipeOptions
from vidihand_ros.geometry.distortion import undistort_points
from vidihand_ros.geometry.translation import solve_translation
from vidihand_ros.testing.shared_data import hand_photo_path
from vidihand_ros.types import CameraModel, Frame, FramePoses, HandPose, Window

Box = tuple[float, float, float, float]

# hamer_test5 (1200×1799): a woman covering her face with both hands.
T5_RIGHT: Box = (370, 470, 610, 940)  # her right hand, image left
T5_LEFT: Box = (565, 450, 805, 930)  # her left hand, image right
# hamer_test1 (848×565): the woman's right hand making an "OK" sign, image left.
T1_OK: Box = (245, 150, 395, 350)
# hamer_test3 (1024×683): a man's two hands crossed in front of his chest (heavy occlusion).
T3_HANDS: Box = (330, 200, 620, 555)

# The 640×480 test sequence: hamer_test5 cut to 4:3 around the hands and shrunk.
SEQ_CROP = (0, 300, 1200, 1200)  # x0, y0, x1, y1 in the photo
SEQ_SIZE = (640, 480)


def photo(n: int) -> np.ndarray:
    return np.asarray(imagecodecs.jpeg8_decode(hand_photo_path(n).read_bytes()), dtype=np.uint8)


def camera_for(width: int, height: int, f_scale: float = 1.2, **kwargs: object) -> CameraModel:
    """A plausible pinhole camera for a photo: focal length 1.2 × the long side, centred."""
    f = f_scale * max(width, height)
    return CameraModel(
        K=np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]]),
        width=width,
        height=height,
        **kwargs,  # type: ignore[arg-type]
    )


def frame_of(rgb: np.ndarray, i: int = 0, camera: CameraModel | None = None, fps: float = 30.0) -> Frame:
    h, w = rgb.shape[:2]
    return Frame(
        stamp_ns=1_700_000_000_000_000_000 + round(i * 1e9 / fps),
        frame_id="camera",
        encoding="rgb8",
        width=w,
        height=h,
        pixels=np.ascontiguousarray(rgb),
        camera=camera if camera is not None else camera_for(w, h),
        index=i,
    )


def single(
    estimator: MediaPipeHandsEstimator, rgb: np.ndarray, camera: CameraModel | None = None
) -> FramePoses:
    (poses,) = estimator.estimate([Window([frame_of(rgb, camera=camera)], start=0, num_valid=1, segment=0)])
    return poses[0]


def of(poses: FramePoses, side: str) -> HandPose:
    """The estimate of one side, which this estimator always gives (presence 0 when not found)."""
    found = poses.hand(side)
    assert found is not None
    return found


def inside(keypoints: np.ndarray, box: Box) -> bool:
    x0, y0, x1, y1 = box
    kp = np.asarray(keypoints)
    return bool(
        np.isfinite(kp).all()
        and (kp[:, 0] >= x0).all()
        and (kp[:, 0] <= x1).all()
        and (kp[:, 1] >= y0).all()
        and (kp[:, 1] <= y1).all()
    )


def mirror_box(box: Box, width: int) -> Box:
    x0, y0, x1, y1 = box
    return (width - 1 - x1, y0, width - 1 - x0, y1)


def seq_box(box: Box) -> Box:
    """A photo box in the 640×480 sequence's pixels."""
    cx0, cy0, cx1, _ = SEQ_CROP
    s = SEQ_SIZE[0] / (cx1 - cx0)
    x0, y0, x1, y1 = box
    return ((x0 - cx0) * s, (y0 - cy0) * s, (x1 - cx0) * s, (y1 - cy0) * s)


def hand_sequence(n: int, *, noise: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    """`n` 640×480 frames of hamer_test5 drifting a few pixels, optionally with pixel noise."""
    import cv2

    x0, y0, x1, y1 = SEQ_CROP
    base = photo(5)[y0:y1, x0:x1]
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        dx, dy = (4 * np.sin(i / 4), 3 * np.cos(i / 5)) if noise == 0 else (0.0, 0.0)
        shift = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
        moved = cv2.warpAffine(base, shift, (base.shape[1], base.shape[0]), borderMode=cv2.BORDER_REFLECT)
        small = cv2.resize(moved, SEQ_SIZE, interpolation=cv2.INTER_AREA).astype(np.float64)
        if noise:
            small += rng.normal(0.0, noise, small.shape)
        frames.append(np.clip(small, 0, 255).astype(np.uint8))
    return frames


def windows_of(frames: list[Frame], size: int, stride: int, segment: int = 0, start: int = 0) -> list[Window]:
    """What the Windower makes of one segment: full windows, then a padded tail if needed."""
    out, s = [], 0
    while True:
        chunk = frames[s : s + size]
        valid = len(chunk)
        out.append(Window(chunk + [chunk[-1]] * (size - valid), start + s, valid, segment))
        if s + size >= len(frames):
            return out
        s += stride


@pytest.fixture(scope="module")
def estimator() -> Iterator[MediaPipeHandsEstimator]:
    est = MediaPipeHandsEstimator(MediaPipeOptions(smoothing="off"))
    yield est
    est.close()


def fresh(**options: str) -> MediaPipeHandsEstimator:
    est = create_estimator("mediapipe", options)
    assert isinstance(est, MediaPipeHandsEstimator)
    return est


# --- detection, keypoints, handedness on real photos --------------------------------------------


def test_info_names_the_estimator_the_mediapipe_version_and_options() -> None:
    est = fresh(max_gap="2", mirrored="true")
    info = est.info
    est.close()
    assert (info.name, info.version) == ("mediapipe", "0.10.21")
    assert info.options["max_gap"] == 2 and info.options["mirrored"] is True
    assert info.options["mano_dir"] is None


def test_both_hands_found_on_their_true_sides_with_keypoints_on_each_hand(estimator) -> None:
    poses = single(estimator, photo(5))
    right, left = poses.right, poses.left
    assert right is not None and left is not None
    assert 0.5 <= right.presence <= 1.0 and 0.5 <= left.presence <= 1.0
    assert inside(right.keypoints_2d, T5_RIGHT), right.keypoints_2d
    assert inside(left.keypoints_2d, T5_LEFT), left.keypoints_2d
    assert right.keypoints_2d[0, 0] < 560 < left.keypoints_2d[0, 0]  # wrists apart, right on the left
    assert not right.filled and not left.filled


def test_ok_sign_is_found_on_the_hand_and_labelled_right() -> None:
    detector = MediaPipeHandDetector(static_image_mode=True)
    hands = detector.detect(photo(1))
    detector.close()
    ok = [h for h in hands if inside(h.keypoints_2d, T1_OK)]
    assert len(ok) == 1, [h.keypoints_2d.mean(axis=0) for h in hands]
    assert ok[0].side == "right" and ok[0].score > 0.5
    assert ok[0].world.shape == (21, 3) and np.isfinite(ok[0].world).all()
    # World landmarks are metres around the hand's centre: a hand is 5-15 cm from wrist to tip.
    assert 0.05 < np.linalg.norm(ok[0].world[12] - ok[0].world[0]) < 0.25


def test_occluded_crossed_hands_are_still_found_on_the_hands(estimator) -> None:
    poses = single(estimator, photo(3))
    found = [h for h in (poses.left, poses.right) if h is not None and h.presence > 0]
    assert found
    for hand in found:
        assert inside(hand.keypoints_2d, T3_HANDS), hand.keypoints_2d


def test_a_mirrored_copy_flips_the_sides_unless_declared_mirrored() -> None:
    flipped = np.ascontiguousarray(photo(5)[:, ::-1])
    width = flipped.shape[1]
    her_right, her_left = mirror_box(T5_RIGHT, width), mirror_box(T5_LEFT, width)

    as_head_camera = fresh()
    poses = single(as_head_camera, flipped)
    as_head_camera.close()
    assert poses.left is not None and poses.right is not None
    assert inside(of(poses, "left").keypoints_2d, her_right)  # her right hand, now read as a left hand
    assert inside(of(poses, "right").keypoints_2d, her_left)

    as_selfie = fresh(mirrored="true")
    poses = single(as_selfie, flipped)
    as_selfie.close()
    assert poses.left is not None and poses.right is not None
    assert inside(of(poses, "right").keypoints_2d, her_right)  # true sides again
    assert inside(of(poses, "left").keypoints_2d, her_left)


def test_no_hands_gives_looked_but_absent_not_missing(estimator) -> None:
    poses = single(estimator, np.full((480, 640, 3), 127, np.uint8))
    for hand in (poses.left, poses.right):
        assert hand is not None and hand.presence == 0.0 and not hand.filled
        for name in HandPose.ARRAY_FIELDS:
            assert np.isnan(getattr(hand, name)).all(), name


# --- metric 3D -------------------------------------------------------------------------------------


def test_metric_joints_are_plausible_and_reproject_onto_the_keypoints(estimator) -> None:
    rgb = photo(5)
    camera = camera_for(rgb.shape[1], rgb.shape[0])
    poses = single(estimator, rgb, camera)
    for hand in (poses.left, poses.right):
        assert hand is not None
        joints = hand.joints_3d.astype(np.float64)
        assert np.isfinite(joints).all()
        assert joints[:, 2].min() > 0.2 and joints[:, 2].max() < 3.0
        palm_length = np.linalg.norm(joints[9] - joints[0])  # wrist → middle base: ~8-11 cm
        assert 0.05 < palm_length < 0.14
        np.testing.assert_array_equal(hand.wrist_position, hand.joints_3d[0])
        uv = joints @ camera.K.T
        uv = uv[:, :2] / uv[:, 2:]
        assert np.linalg.norm(uv - hand.keypoints_2d, axis=1).mean() < 25.0  # px, on a ~400 px hand
        # No MANO files given: MANO keys stay missing, never zeros.
        for name in ("global_orient", "hand_pose", "betas", "transl"):
            assert np.isnan(getattr(hand, name)).all(), name


def test_wrist_orientation_follows_the_palms(estimator) -> None:
    """Her palms rest on her face, so the backs of both hands face the camera, fingers up."""
    poses = single(estimator, photo(5))
    for hand in (poses.left, poses.right):
        assert hand is not None
        R = Rotation.from_rotvec(hand.wrist_orient).as_matrix()
        fingers, back = R[:, 0], R[:, 2]
        assert fingers[1] < -0.5  # up in the image
        assert back[2] < 0.0  # out of the back of the hand, towards the camera
    # Mirror images: the backs face outwards, to each hand's own side of the image.
    assert Rotation.from_rotvec(of(poses, "right").wrist_orient).as_matrix()[0, 2] < 0
    assert Rotation.from_rotvec(of(poses, "left").wrist_orient).as_matrix()[0, 2] > 0


def test_keypoints_are_undistorted_before_the_translation_solve() -> None:
    """The joints lie on the rays of the undistorted keypoints: projected with K alone they land on
    them, not on the distorted pixels the detector saw."""
    rgb = photo(5)
    h, w = rgb.shape[:2]
    distorted = camera_for(w, h, distortion_model="plumb_bob", D=np.array([-0.3, 0.1, 0.0, 0.0, 0.0]))
    est = fresh(smoothing="off")
    poses = single(est, rgb, distorted)
    est.close()
    detector = MediaPipeHandDetector()
    raw = {hand.side: hand for hand in detector.detect(rgb)}
    detector.close()
    for side in ("left", "right"):
        hand = poses.hand(side)
        assert hand is not None
        np.testing.assert_allclose(hand.keypoints_2d, raw[side].keypoints_2d, atol=1e-3)  # not smoothed
        undistorted = undistort_points(raw[side].keypoints_2d, distorted)
        uv = hand.joints_3d.astype(np.float64) @ distorted.K.T
        np.testing.assert_allclose(uv[:, :2] / uv[:, 2:], undistorted, atol=0.05)
        assert np.abs(undistorted - raw[side].keypoints_2d).max() > 2.0  # the distortion mattered
        # Depth from the shared solve, on MediaPipe's landmarks rescaled to one hand size.
        depth = solve_translation(raw[side].world, undistorted, distorted.K)[2]
        assert 0.5 < hand.joints_3d[:, 2].mean() / depth < 2.0


def test_without_intrinsics_keypoints_are_given_and_metric_values_missing() -> None:
    est = fresh()
    (poses,) = est.estimate([Window([Frame(0, "c", "rgb8", 1200, 1799, pixels=photo(5))], 0, 1, 0)])
    est.close()
    hand = poses[0].right
    assert hand is not None and hand.presence > 0.5
    assert inside(hand.keypoints_2d, T5_RIGHT)
    assert np.isnan(hand.joints_3d).all() and np.isnan(hand.wrist_orient).all()


# --- streams: windows, tracking, smoothing, gaps ---------------------------------------------------


def test_overlapping_windows_process_each_frame_once_and_agree_on_shared_frames() -> None:
    frames = [frame_of(rgb, i) for i, rgb in enumerate(hand_sequence(14))]
    windows = windows_of(frames, size=6, stride=3)
    assert [w.start for w in windows] == [0, 3, 6, 9] and windows[-1].num_valid == 5
    est = fresh()
    results = [est.estimate([w])[0] for w in windows[:2]] + est.estimate(windows[2:])
    assert est.frames_processed == 14
    for window, poses in zip(windows, results, strict=True):
        assert len(poses) == len(window.frames)
        assert [p.stamp_ns for p in poses] == [f.stamp_ns for f in window.frames]
    # Frame 3 is in windows 0 and 1: detected once; smoothed with more context in window 1, so
    # the two estimates differ a little, never by more than the smoothing moves a still hand.
    first, second = of(results[0][3], "right"), of(results[1][0], "right")
    assert np.abs(first.joints_3d - second.joints_3d).max() < 0.01
    assert np.abs(first.keypoints_2d - second.keypoints_2d).max() < 2.0
    # Padding repeats the last valid frame's estimate.
    last = results[-1]
    assert last[5].right is last[4].right and last[5].left is last[4].left
    # A new segment (or a new episode) starts over: its frames are processed again.
    est.estimate(windows_of(frames[:6], size=6, stride=6, segment=1, start=20))
    assert est.frames_processed == 20
    est.close()


def test_tracked_sides_stay_put_over_a_moving_sequence() -> None:
    frames = [frame_of(rgb, i) for i, rgb in enumerate(hand_sequence(24))]
    est = fresh()
    poses = [p for w in windows_of(frames, 8, 8) for p in est.estimate([w])[0][: w.num_valid]]
    est.close()
    right_box, left_box = seq_box(T5_RIGHT), seq_box(T5_LEFT)
    for p in poses:
        assert p.right is not None and p.left is not None
        assert of(p, "right").presence > 0.5 and of(p, "left").presence > 0.5
        assert inside(of(p, "right").keypoints_2d, right_box) and inside(of(p, "left").keypoints_2d, left_box)
        assert np.isfinite(of(p, "right").joints_3d).all() and np.isfinite(of(p, "left").joints_3d).all()


def test_smoothing_lowers_jitter_on_a_still_hand_seen_through_noise() -> None:
    frames = [frame_of(rgb, i) for i, rgb in enumerate(hand_sequence(30, noise=8.0, seed=1))]

    def wrists(**options: str) -> np.ndarray:
        est = fresh(**options)
        poses = [p for w in windows_of(frames, 10, 10) for p in est.estimate([w])[0][: w.num_valid]]
        est.close()
        return np.stack([of(p, "right").joints_3d for p in poses])

    raw, smooth = wrists(smoothing="off"), wrists()
    assert np.isfinite(raw).all() and np.isfinite(smooth).all()
    raw_jitter, smooth_jitter = jitter(raw), jitter(smooth)
    assert raw_jitter > 0.5  # mm/frame²: the noise does shake MediaPipe's estimate
    assert smooth_jitter < 0.5 * raw_jitter
    # A still hand: smoothing does not move it away from where it is (mean within 1 cm).
    assert np.linalg.norm(raw.mean(axis=0) - smooth.mean(axis=0), axis=-1).max() < 0.01


def test_short_gaps_are_filled_and_flagged_only_when_asked() -> None:
    seq = hand_sequence(10)
    blank = np.full_like(seq[0], 127)
    rgbs = [*seq[:4], blank, blank, *seq[6:]]
    frames = [frame_of(rgb, i) for i, rgb in enumerate(rgbs)]

    def run(**options: str) -> list[FramePoses]:
        est = fresh(**options)
        (poses,) = est.estimate(windows_of(frames, 10, 10))
        est.close()
        return poses

    plain = run()
    assert [of(p, "right").presence > 0 for p in plain] == [True] * 4 + [False] * 2 + [True] * 4
    assert np.isnan(of(plain[4], "right").joints_3d).all()

    filled = run(max_gap="2")
    flags = [of(p, "right").filled for p in filled]
    assert flags == [False] * 4 + [True] * 2 + [False] * 4
    for i in (4, 5):
        hand = of(filled[i], "right")
        assert 0.5 < hand.presence <= 1.0 and np.isfinite(hand.joints_3d).all()
        assert np.isfinite(hand.wrist_orient).all()
        before, after = of(filled[3], "right").keypoints_2d, of(filled[6], "right").keypoints_2d
        frac = (i - 3) / 3
        np.testing.assert_allclose(hand.keypoints_2d, before + frac * (after - before), atol=1e-3)
    # Observed frames are the same with and without gap filling.
    np.testing.assert_array_equal(of(filled[3], "right").joints_3d, of(plain[3], "right").joints_3d)

    assert not any(of(p, "right").filled for p in run(max_gap="1"))  # a 2-frame gap is longer than 1


# --- MANO ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mano_fit_fills_the_mano_keys_with_one_shape_per_segment(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the MANO fit needs the [mano] extra")
    pytest.importorskip("smplx", reason="the MANO fit needs the [mano] extra")
    from vidihand_ros.testing.synthetic_mano import write_synthetic_mano_dir

    mano_dir = write_synthetic_mano_dir(tmp_path / "mano", seed=3)
    frames = [frame_of(rgb, i) for i, rgb in enumerate(hand_sequence(6))]
    est = fresh(mano_dir=str(mano_dir))
    assert est.info.options["mano_dir"] == str(mano_dir)
    first, second = (est.estimate([w])[0] for w in windows_of(frames, 3, 3))
    est.close()
    poses = first + second
    for p in poses:
        for hand in (p.left, p.right):
            assert hand is not None and hand.presence > 0.5
            for name in ("global_orient", "hand_pose", "betas", "transl", "joints_3d"):
                assert np.isfinite(getattr(hand, name)).all(), name
            assert hand.joints_3d[:, 2].min() > 0.2
    # β is fitted once per segment and shared by its windows.
    np.testing.assert_array_equal(of(first[0], "right").betas, of(second[2], "right").betas)
    assert not np.array_equal(of(first[0], "right").betas, of(first[0], "left").betas)


def test_missing_mano_files_are_reported_before_any_frame() -> None:
    from vidihand_ros.errors import InputError

    with pytest.raises(InputError, match="MANO"):
        fresh(mano_dir="/nonexistent/mano")


# --- pictures --------------------------------------------------------------------------------------


def test_visualize_command_draws_both_sides_on_a_real_photo(tmp_path: Path) -> None:
    import cv2

    from vidihand_ros.cli import main
    from vidihand_ros.visualize import SIDE_COLOURS

    out = tmp_path / "hands.png"
    assert main(["visualize", str(hand_photo_path(5)), "-o", str(out), "--crop", "150,300,1050,1300"]) == 0
    written = cv2.imread(str(out))
    assert written is not None
    picture = cv2.cvtColor(written, cv2.COLOR_BGR2RGB)
    assert picture.shape == (1000, 900, 3)
    for side, box in (("right", T5_RIGHT), ("left", T5_LEFT)):
        x0, y0, x1, y1 = (int(v) for v in box)
        region = picture[y0 - 300 : y1 - 300, x0 - 150 : x1 - 150].reshape(-1, 3)
        share = (np.abs(region.astype(int) - SIDE_COLOURS[side]).sum(axis=1) < 30).mean()
        assert share > 0.01, side  # the side's skeleton is drawn over that hand
    assert main(["visualize", str(tmp_path / "missing.jpg"), "-o", str(out)]) == 2
