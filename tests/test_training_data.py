"""Dataset loaders on tiny synthetic copies of the published formats, and GT → Zarr round trips.

Ground truth is chosen in the camera frame with our conventions and written the way each
dataset stores it (world frame, flat_hand_mean=False, PCA, ARKit transforms, pickles); a loader
passes when it gives the chosen values back, and a written dataset holds exactly them.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.transform import Rotation

from tests.training_fixtures import (
    ARCTIC_SIZE,
    HOI4D_JPG,
    HOI4D_MP4,
    HOI4D_SIZE,
    HOT3D_MONO,
    HOT3D_RGB,
    SIDES,
    to_mano_order,
    write_arctic,
    write_egodex,
    write_hoi4d,
    write_hot3d_clip,
)
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY, hand_key
from vidihand_ros.errors import InputError
from vidihand_ros.geometry.resize import scale_intrinsics
from vidihand_ros.testing.synthetic_mano import synthetic_mano_arrays, write_synthetic_mano_dir
from vidihand_ros.training_data import (
    ArcticLoader,
    EgoDexLoader,
    Hoi4dLoader,
    Hot3dLoader,
    ManoModel,
    gt_arrays,
    import_main,
    load_mano,
    make_loader,
    project_points,
    write_sequences,
)
from vidihand_ros.training_data.base import FISHEYE624, in_view, safe_unpickle
from vidihand_ros.training_data.hot3d import undistort_image
from vidihand_ros.training_data.mano import (
    FINGERTIP_VERTICES,
    MANO_TO_OURS,
    world_to_camera_mano,
)
from vidihand_ros.types import CameraModel, FramePoses, HandPose

ATOL = 2e-5  # float32 storage of the ground truth


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mano_dir(tmp_path_factory.mktemp("mano"))


@pytest.fixture(scope="module")
def mano(mano_dir: Path) -> dict[str, ManoModel]:
    return load_mano(mano_dir)


def hand(poses: FramePoses, side: str) -> HandPose:
    value = poses.hand(side)
    assert value is not None
    return value


#: Joints from MANO parameters run the smplx layer.
needs_mano = pytest.mark.skipif(
    importlib.util.find_spec("smplx") is None or importlib.util.find_spec("torch") is None,
    reason="MANO joints need the [mano] extra (torch, smplx)",
)


# -- MANO ----------------------------------------------------------------------------------------


def test_mano_models_from_synthetic_files(mano: dict[str, ManoModel]) -> None:
    right, left = synthetic_mano_arrays("right"), synthetic_mano_arrays("left")
    assert "chumpy" not in sys.modules
    assert_allclose(mano["right"].shapedirs, right["shapedirs"])
    assert_allclose(mano["right"].j_regressor, right["J_regressor"])
    assert_allclose(mano["left"].hands_mean, left["hands_mean"])
    # The left file repeats the right x-shape column (smplx #48); the loader negates it.
    assert_allclose(mano["left"].shapedirs[:, 0], -right["shapedirs"][:, 0])


@needs_mano
def test_left_hand_is_the_mirrored_right_hand(mano: dict[str, ManoModel]) -> None:
    """With the shapedirs fix, mirrored parameters give mirrored joints (x → −x)."""
    rng = np.random.default_rng(4)
    go, pose = rng.normal(scale=0.5, size=3), rng.normal(scale=0.3, size=(15, 3))
    betas, t = rng.normal(size=10), rng.normal(scale=0.1, size=3)
    flip = np.array([1.0, -1.0, -1.0])  # axis-angle under the x mirror
    right = mano["right"].joints(go, pose, betas, t)[0]
    left = mano["left"].joints(go * flip, pose * flip, betas, t * [-1.0, 1.0, 1.0])[0]
    assert_allclose(left, right * [-1.0, 1.0, 1.0], atol=1e-9)


def test_pickles_cannot_run_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            # os.system, not print: Ray (in the same test session) replaces builtins.print.
            return (os.system, ("echo pwned",))

    with pytest.raises(InputError, match=r"refusing to load (posix|os|nt)\.system"):
        safe_unpickle(pickle.dumps({"x": Evil()}), tmp_path / "x.pkl")
    assert safe_unpickle(pickle.dumps({"a": np.arange(3.0)}, protocol=2), "x")["a"].tolist() == [
        0.0,
        1.0,
        2.0,
    ]
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"x": Evil()}))
    (tmp_path / "MANO_LEFT.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match=r"MANO_(LEFT|RIGHT)\.pkl"):
        load_mano(tmp_path)
    with pytest.raises(InputError, match=r"MANO directory does not exist"):
        load_mano(tmp_path / "nowhere")


@needs_mano
def test_forward_kinematics_rest_pose_rotation_and_translation(mano: dict[str, ManoModel]) -> None:
    model = mano["right"]
    rng = np.random.default_rng(0)
    betas = rng.normal(size=10)
    v_shaped = model.v_template + model.shapedirs @ betas
    rest = np.concatenate([model.j_regressor @ v_shaped, v_shaped[list(FINGERTIP_VERTICES)]])[
        list(MANO_TO_OURS)
    ]
    zero = model.joints(np.zeros(3), np.zeros((15, 3)), betas, np.zeros(3))[0]
    assert_allclose(zero, rest, atol=1e-9)  # 1 nm: smplx's float64 arithmetic, summed in its own order
    assert_allclose(model.root_joint(betas), rest[0], atol=1e-12)

    R = Rotation.from_rotvec([0.3, -1.0, 0.5])
    t = np.array([0.1, -0.2, 0.6])
    moved = model.joints(R.as_rotvec(), np.zeros((15, 3)), betas, t)[0]
    assert_allclose(moved, R.apply(rest - rest[0]) + rest[0] + t, atol=1e-9)  # about J0, then t


@needs_mano
def test_world_to_camera_keeps_the_hand(mano: dict[str, ManoModel]) -> None:
    model = mano["left"]
    rng = np.random.default_rng(1)
    go, pose, betas, t = (
        rng.normal(size=3),
        rng.normal(scale=0.3, size=(15, 3)),
        rng.normal(size=10),
        rng.normal(size=3),
    )
    R = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    T = rng.normal(size=3)
    go_c, t_c = world_to_camera_mano(go, t, model.root_joint(betas), R, T)
    world = model.joints(go, pose, betas, t)[0]
    assert_allclose(model.joints(go_c, pose, betas, t_c)[0], world @ R.T + T, atol=1e-12)


# -- projection ----------------------------------------------------------------------------------


def test_projection_matches_opencv() -> None:
    rng = np.random.default_rng(2)
    pts = np.column_stack([rng.uniform(-0.2, 0.2, (20, 2)), rng.uniform(0.3, 1.0, 20)])
    K = np.array([[300.0, 0.0, 160.0], [0.0, 310.0, 120.0], [0.0, 0.0, 1.0]])
    for model, D in (
        ("plumb_bob", [0.1, -0.05, 0.001, 0.002, 0.01]),
        ("rational_polynomial", [0.1, -0.05, 0.001, 0.002, 0.01, 0.02, -0.01, 0.003]),
    ):
        expected, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), K, np.array(D))
        assert_allclose(
            project_points(pts, CameraModel(K, 320, 240, model, np.array(D))), expected[:, 0], atol=1e-9
        )
    D4 = np.array([0.05, -0.01, 0.002, -0.001])
    expected, _ = cv2.fisheye.projectPoints(pts[:, None], np.zeros(3), np.zeros(3), K, D4)
    assert_allclose(
        project_points(pts, CameraModel(K, 320, 240, "equidistant", D4)), expected[:, 0], atol=1e-9
    )
    assert np.all(np.isnan(project_points([0.0, 0.0, -1.0], CameraModel(K))))


def test_fisheye624_projection() -> None:
    K = np.array([[20.0, 0.0, 15.5], [0.0, 21.0, 15.0], [0.0, 0.0, 1.0]])
    cam = CameraModel(K, 32, 32, FISHEYE624, np.zeros(12))
    assert_allclose(project_points([0.0, 0.0, 2.0], cam), [15.5, 15.0])
    # Without distortion the arctan projection is equidistant: r = f·θ.
    theta = np.arctan2(0.3, 0.5)
    assert_allclose(project_points([0.3, 0.0, 0.5], cam), [15.5 + 20.0 * theta, 15.0])
    k1 = np.zeros(12)
    k1[0] = 0.1
    uv = project_points([0.3, 0.0, 0.5], CameraModel(K, 32, 32, FISHEYE624, k1))
    assert_allclose(uv, [15.5 + 20.0 * theta * (1 + 0.1 * theta**2), 15.0])


def test_undistort_keeps_the_principal_point() -> None:
    K = np.array([[20.0, 0.0, 15.0], [0.0, 20.0, 15.0], [0.0, 0.0, 1.0]])
    cam = CameraModel(K, 31, 31, FISHEYE624, np.array([0.05, -0.01, 0, 0, 0, 0, 0.001, 0, 0, 0, 0, 0]))
    image = np.zeros((31, 31, 3), np.uint8)
    image[15, 15] = 255
    out = undistort_image(image, cam, {})
    assert out.shape == image.shape and out[15, 15, 0] == 255 and out.sum() == 3 * 255


def test_in_view_rule() -> None:
    uv = np.full((21, 2), 5.0)
    assert in_view(uv, 10, 10)
    uv[0] = [-3.0, 5.0]
    assert not in_view(uv, 10, 10)
    uv = np.full((21, 2), 50.0)
    uv[:3] = 5.0
    assert in_view(uv, 10, 10)
    uv[2] = np.nan
    assert not in_view(uv, 10, 10)


# -- ARCTIC --------------------------------------------------------------------------------------


@needs_mano
def test_arctic_ego_view_with_mano(tmp_path: Path, mano_dir: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_arctic(tmp_path, mano)
    loader = ArcticLoader(mano_dir=mano_dir)
    assert loader.list_sequences(tmp_path) == ["s01/box_grab_01"]  # found from a parent of arctic_data/data
    seq = loader.load(tmp_path, fx.name)
    assert (seq.dataset, seq.fps, len(seq)) == ("arctic", 30.0, fx.num_images)  # MANO frame 4 has no image
    assert_array_equal(seq.stamps_ns, [round(t * 1e9 / 30) for t in range(fx.num_images)])
    cam = seq.cameras[0]
    assert_allclose(cam.K, fx.K_ego)
    assert (cam.width, cam.height, cam.distortion_model) == (*ARCTIC_SIZE, "rational_polynomial")
    assert_allclose(cam.D, fx.dist8)

    for side in SIDES:
        truth, model = fx.truth[side], mano[side]
        rot_w, trans_w = fx.world[side]
        joints_w = model.joints(rot_w, truth.hand_pose, truth.betas, trans_w)
        for t, poses in enumerate(seq.poses):
            h = hand(poses, side)
            assert_allclose(h.global_orient, truth.global_orient[t], atol=ATOL)
            assert_allclose(h.hand_pose, truth.hand_pose[t], atol=ATOL)  # pose + hands_mean
            assert_allclose(h.transl, truth.transl[t], atol=ATOL)
            assert_allclose(h.betas, truth.betas, atol=ATOL)
            # Joints in the world (mocap) frame come out in the moving ego camera's frame.
            T = fx.world2ego[t]
            assert_allclose(h.joints_3d, joints_w[t] @ T[:3, :3].T + T[:3, 3], atol=ATOL)
            expected_uv, _ = cv2.projectPoints(
                h.joints_3d.astype(np.float64), np.zeros(3), np.zeros(3), fx.K_ego, fx.dist8
            )
            assert_allclose(h.keypoints_2d, expected_uv[:, 0], atol=1e-3)  # on the distorted image
            assert_allclose(h.wrist_orient, h.global_orient)
            assert h.presence == 1.0
    # Left and right are not swapped: the left wrist is on the left of the image.
    assert hand(seq.poses[0], "left").keypoints_2d[0, 0] < hand(seq.poses[0], "right").keypoints_2d[0, 0]

    frames = list(seq.frames())
    assert [f.encoding for f in frames] == ["jpeg"] * fx.num_images
    assert frames[1].data == (fx.root / "images/s01/box_grab_01/0/00002.jpg").read_bytes()  # ioi_offset 1
    assert frames[0].camera is cam and frames[0].rgb().shape == (ARCTIC_SIZE[1], ARCTIC_SIZE[0], 3)


@needs_mano
def test_arctic_allocentric_view_from_processed_joints(tmp_path: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_arctic(tmp_path, mano, processed=True)
    seq = ArcticLoader().load(fx.root, fx.name, camera=1)  # no MANO files
    assert_allclose(seq.cameras[0].K, fx.K_allo)
    assert seq.cameras[0].distortion_model == ""
    R, T = fx.world2cam[0, :3, :3], fx.world2cam[0, :3, 3]
    for side in SIDES:
        truth = fx.truth[side]
        rot_w, trans_w = fx.world[side]
        joints_w = mano[side].joints(rot_w, truth.hand_pose, truth.betas, trans_w)
        for t, poses in enumerate(seq.poses):
            h = hand(poses, side)
            assert_allclose(h.joints_3d, joints_w[t] @ R.T + T, atol=ATOL)  # MANO order → ours
            R_c = R @ Rotation.from_rotvec(rot_w[t]).as_matrix()
            assert_allclose(Rotation.from_rotvec(h.global_orient).as_matrix(), R_c, atol=1e-6)
            # J0 recovered from the processed world joints: the MANO wrist lands on joint 0.
            assert_allclose(h.transl + mano[side].root_joint(truth.betas), h.joints_3d[0], atol=ATOL)
            assert np.all(np.isnan(h.hand_pose))  # needs hands_mean from the MANO files
            assert h.presence == fx.valid[side][t, 1]
            assert_allclose(h.keypoints_2d, project_points(h.joints_3d, seq.cameras[0]), atol=1e-4)


def test_arctic_without_mano_or_processed(tmp_path: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_arctic(tmp_path, mano)
    seq = ArcticLoader().load(fx.root, fx.name)
    h = hand(seq.poses[2], "right")
    assert_allclose(h.global_orient, fx.truth["right"].global_orient[2], atol=ATOL)
    assert_allclose(h.betas, fx.truth["right"].betas, atol=ATOL)
    for name in ("transl", "hand_pose", "joints_3d", "keypoints_2d"):
        assert np.all(np.isnan(getattr(h, name))), name
    assert h.presence == 1.0


def test_arctic_cropped_ego_images_scale_k(tmp_path: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_arctic(tmp_path, mano, cropped=True, full=False)
    seq = ArcticLoader(images="auto").load(fx.root, fx.name)
    cam = seq.cameras[0]
    assert (cam.width, cam.height) == (ARCTIC_SIZE[0] // 2, ARCTIC_SIZE[1] // 2)
    assert_allclose(cam.K, scale_intrinsics(fx.K_ego, 0.5, 0.5))
    assert seq.attrs["images"] == "cropped_images"
    (fx.root / "cropped_images/s01/box_grab_01/1").mkdir()
    with pytest.raises(InputError, match="cropped allocentric"):
        ArcticLoader().load(fx.root, fx.name, camera=1)


def test_arctic_errors_name_the_file(tmp_path: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_arctic(tmp_path, mano)
    loader = ArcticLoader()
    with pytest.raises(InputError, match="view index"):
        loader.load(fx.root, fx.name, camera=9)
    with pytest.raises(InputError, match="no such ARCTIC sequence"):
        loader.load(fx.root, "s01/nope")
    (fx.root / "meta/misc.json").write_text("{")
    with pytest.raises(InputError, match=r"misc\.json: not valid JSON"):
        loader.load(fx.root, fx.name)
    with pytest.raises(InputError, match="no raw_seqs"):
        loader.list_sequences(tmp_path / "empty")


# -- HOT3D ---------------------------------------------------------------------------------------


@needs_mano
def test_hot3d_clip_undistorted(tmp_path: Path, mano_dir: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_hot3d_clip(tmp_path, mano)
    loader = Hot3dLoader(mano_dir=mano_dir)
    assert loader.list_sequences(tmp_path) == [fx.name]
    seq = loader.load(tmp_path, fx.name)
    assert seq.attrs["stream"] == "214-1" and len(seq) == 3
    assert_array_equal(seq.stamps_ns, fx.stamps)
    cam = seq.cameras[0]
    assert cam.distortion_model == ""
    assert_allclose(cam.K, np.array([[20.0, 0, 15.5], [0, 21.0, 15.0], [0, 0, 1]]))

    # Frame 1 has no right hand, frame 2 only a UmeTrack right hand: both None (no ground truth).
    assert seq.poses[1].right is None and seq.poses[2].right is None
    assert hand(seq.poses[2], "left").presence == 0.0  # visibilities_modeled 0.05 < 0.1
    annotated: tuple[tuple[str, tuple[int, ...]], ...] = (("left", (0, 1, 2)), ("right", (0,)))
    for side, rows in annotated:
        truth, model = fx.truth[side], mano[side]
        for t in rows:
            h = hand(seq.poses[t], side)
            assert_allclose(h.global_orient, truth.global_orient[t], atol=1e-6)
            assert_allclose(h.hand_pose, truth.hand_pose[t], atol=1e-6)  # PCA → full, + hands_mean
            assert_allclose(h.transl, truth.transl[t], atol=1e-6)
            assert_allclose(h.betas, truth.betas, atol=1e-6)
            assert_allclose(h.joints_3d, truth.joints(model)[t], atol=1e-6)
            z = h.joints_3d[:, 2:]
            expected_uv = (h.joints_3d[:, :2] / z) * np.array([20.0, 21.0]) + np.array([15.5, 15.0])
            assert_allclose(h.keypoints_2d, expected_uv, atol=1e-4)
    assert hand(seq.poses[0], "left").joints_3d[0, 0] < hand(seq.poses[0], "right").joints_3d[0, 0]

    pixels = [f.rgb() for f in seq.frames() if f.encoding == "rgb8"]
    assert len(pixels) == 3 and pixels[0].shape == (HOT3D_RGB[1], HOT3D_RGB[0], 3)


@needs_mano
def test_hot3d_fisheye_kept_and_mono_stream(
    tmp_path: Path, mano_dir: Path, mano: dict[str, ManoModel]
) -> None:
    fx = write_hot3d_clip(tmp_path, mano)
    seq = Hot3dLoader(mano_dir=mano_dir, undistort=False).load(tmp_path, fx.name)
    cam = seq.cameras[0]
    assert cam.distortion_model == FISHEYE624
    assert_allclose(cam.D, fx.params[4:])
    h = hand(seq.poses[0], "right")
    assert_allclose(h.keypoints_2d, project_points(h.joints_3d, cam), atol=1e-4)
    frames = list(seq.frames())
    assert frames[0].is_jpeg  # copied, not re-encoded

    mono = Hot3dLoader(mano_dir=mano_dir).load(tmp_path, fx.name, camera="1201-1")
    assert mono.attrs["stream"] == "1201-1"
    assert_array_equal(mono.stamps_ns, np.array(fx.stamps) + 5)
    assert next(mono.frames()).rgb().shape == (HOT3D_MONO[1], HOT3D_MONO[0], 3)  # grey → RGB
    with pytest.raises(InputError, match="no stream '214-2'"):
        Hot3dLoader().load(tmp_path, fx.name, camera="214-2")


def test_hot3d_without_mano_and_test_clips(tmp_path: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_hot3d_clip(tmp_path, mano)
    h = hand(Hot3dLoader().load(tmp_path, fx.name).poses[0], "right")
    assert_allclose(h.global_orient, fx.truth["right"].global_orient[0], atol=1e-6)
    assert np.all(np.isnan(h.hand_pose)) and np.all(np.isnan(h.transl)) and np.all(np.isnan(h.joints_3d))
    assert h.presence == 1.0  # visibilities_modeled 0.8

    test_clip = write_hot3d_clip(tmp_path / "test", mano, with_hands=False)
    seq = Hot3dLoader().load(tmp_path / "test", test_clip.name)
    assert all(p.left is None and p.right is None for p in seq.poses)
    assert seq.attrs["ground_truth"] is False


# -- EgoDex --------------------------------------------------------------------------------------

needs_h5py = pytest.mark.skipif(
    importlib.util.find_spec("h5py") is None, reason="EgoDex is HDF5: needs the [train] extra (h5py)"
)


@needs_h5py
def test_egodex_episode(tmp_path: Path) -> None:
    fx = write_egodex(tmp_path)
    loader = EgoDexLoader()
    assert loader.list_sequences(tmp_path) == [fx.name]
    seq = loader.load(tmp_path, fx.name)
    assert len(seq) == fx.frames  # 5 annotated rows, 4 video frames
    assert seq.attrs["task"] == "Put the lid on the cup."
    assert seq.attrs["egodex_attrs"]["environment"] == "kitchen"
    assert_allclose(seq.cameras[0].K, fx.K)
    for side in SIDES:
        for t, poses in enumerate(seq.poses):
            h = hand(poses, side)
            assert_allclose(h.joints_3d, fx.joints_cam[side][t], atol=1e-5)  # ARKit world → camera
            assert_allclose(
                h.keypoints_2d, (h.joints_3d[:, :2] / h.joints_3d[:, 2:]) * 25.0 + [16.0, 12.0], atol=1e-3
            )
            assert np.all(np.isnan(h.global_orient)) and np.all(np.isnan(h.hand_pose))
            expected = fx.confidence_left[t] if side == "left" else 1.0
            assert h.presence == pytest.approx(expected)
    assert hand(seq.poses[0], "left").joints_3d[0, 0] < 0 < hand(seq.poses[0], "right").joints_3d[0, 0]
    frames = list(seq.frames())
    assert [f.stamp_ns for f in frames] == list(seq.stamps_ns)
    assert frames[0].pixels is not None and frames[0].pixels.shape == (24, 32, 3)
    with pytest.raises(InputError, match="one camera"):
        loader.load(tmp_path, fx.name, camera=1)


@needs_h5py
def test_egodex_short_video_is_an_error(tmp_path: Path) -> None:
    fx = write_egodex(tmp_path)
    seq = EgoDexLoader().load(tmp_path, fx.name)
    seq.poses.append(seq.poses[-1])  # pretend the header promised one frame more
    with pytest.raises(InputError, match="only 4 frames for 5"):
        list(seq.frames())


# -- HOI4D ---------------------------------------------------------------------------------------


@needs_mano
def test_hoi4d_sequences(tmp_path: Path, mano_dir: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_hoi4d(tmp_path)
    loader = Hoi4dLoader(mano_dir=mano_dir)
    assert loader.list_sequences(tmp_path) == [HOI4D_JPG, HOI4D_MP4]
    for name in (HOI4D_JPG, HOI4D_MP4):
        seq = loader.load(tmp_path, name)
        assert (len(seq), seq.fps) == (3, 15.0)
        assert_allclose(seq.cameras[0].K, fx.K)
        assert seq.poses[2].right is None and seq.poses[0].left is None and seq.poses[2].left is None
        for side, t in (("right", 0), ("right", 1), ("left", 1)):
            data = fx.pickles[(name, side, t)]
            h = hand(seq.poses[t], side)
            assert_allclose(h.global_orient, data["poseCoeff"][:3])
            assert_allclose(h.hand_pose.ravel(), data["poseCoeff"][3:])
            assert_allclose(h.transl, data["trans"])  # camera frame, metres: unchanged
            assert_allclose(h.betas, data["beta"])
            assert_allclose(h.keypoints_2d, data["kps2D"])
            expected = mano[side].joints(
                data["poseCoeff"][:3], data["poseCoeff"][3:], data["beta"], data["trans"]
            )[0]
            assert_allclose(h.joints_3d, expected, atol=1e-6)
            assert h.presence == 1.0
        frames = list(seq.frames())
        assert len(frames) == 3 and frames[0].rgb().shape == (HOI4D_SIZE[1], HOI4D_SIZE[0], 3)
    assert np.all(np.isnan(hand(Hoi4dLoader().load(tmp_path, HOI4D_JPG).poses[0], "right").joints_3d))


# -- to_dataset ----------------------------------------------------------------------------------


@needs_mano
def test_write_sequences_round_trip(tmp_path: Path, mano_dir: Path, mano: dict[str, ManoModel]) -> None:
    fx = write_arctic(tmp_path / "arctic", mano, processed=True)
    loader = ArcticLoader(mano_dir=mano_dir)
    sequences = [loader.load(fx.root, fx.name, camera=view) for view in (0, 1)]
    indices = write_sequences(sequences, tmp_path / "gt.zarr")
    assert indices == [0, 1]

    reader = DatasetReader(tmp_path / "gt.zarr")
    assert reader.num_episodes == 2
    assert reader.attrs["provenance"]["estimator"] == "ground_truth"
    for i, seq in enumerate(sequences):
        record = reader.episode_attrs(i)
        assert record["task"] == "box grab"
        assert record["ground_truth"]["dataset"] == "arctic"
        assert record["ground_truth"]["view"] == (0, 1)[i]
        stored = reader.episode(i)
        for key, value in gt_arrays(seq).items():
            assert_allclose(stored[key], value, atol=1e-6, err_msg=key)
        # every frame is annotated, but valid means a usable pose: in view 1 some joints are behind
        # the camera on frames 1 and 2, and their 2D keypoints are NaN
        assert np.isfinite(stored[hand_key("left", "joints_3d")]).all()
        kp_finite = np.isfinite(stored[hand_key("left", "keypoints_2d")]).all(axis=(1, 2))
        assert_array_equal(stored[hand_key("left", "valid")], kp_finite)
        assert_array_equal(kp_finite, [True, True, True, True] if i == 0 else [True, False, False, True])
        assert record["estimated"] is False and record["estimator"] is None
        assert reader.has_poses(i) is True  # ground truth
        frames = list(reader.frames(i))
        assert frames[0].shape == (ARCTIC_SIZE[1], ARCTIC_SIZE[0], 3)
        assert reader.fps(i) == pytest.approx(30.0)
    assert reader.array(IMAGE_KEY).shape[0] == 2 * fx.num_images


@needs_mano
def test_import_main(tmp_path: Path, mano_dir: Path) -> None:
    fx = write_hoi4d(tmp_path / "hoi4d")
    seen: list[tuple[int, str, int]] = []
    indices = import_main(
        "hoi4d",
        tmp_path / "hoi4d",
        tmp_path / "gt.zarr",
        mano_dir=mano_dir,
        progress=lambda *a: seen.append(a),
    )
    assert indices == [0, 1] and seen == [(0, HOI4D_JPG, 3), (1, HOI4D_MP4, 3)]
    reader = DatasetReader(tmp_path / "gt.zarr")
    assert reader.attrs["provenance"]["ground_truth"]["dataset"] == "hoi4d"
    episode = reader.episode(1)
    assert_array_equal(episode[hand_key("right", "valid")], [True, True, False])
    assert_array_equal(episode[hand_key("left", "valid")], [False, True, False])
    assert np.all(np.isfinite(episode[hand_key("right", "joints_3d")][:2]))

    only = import_main("hoi4d", tmp_path / "hoi4d", tmp_path / "one.zarr", [HOI4D_MP4], image_size=(24, 14))
    assert only == [0]
    stored = DatasetReader(tmp_path / "one.zarr").episode(0)
    assert_allclose(stored["camera0_intrinsics"][0], scale_intrinsics(fx.K, 0.5, 0.5), atol=1e-6)  # K follows
    kps = fx.pickles[(HOI4D_MP4, "right", 0)]["kps2D"]
    assert_allclose(stored[hand_key("right", "keypoints_2d")][0], (kps + 0.5) * 0.5 - 0.5, atol=1e-5)

    with pytest.raises(InputError, match="unknown dataset kind"):
        import_main("nope", tmp_path, tmp_path / "x.zarr")
    with pytest.raises(InputError, match="no such hoi4d sequence"):
        import_main("hoi4d", tmp_path / "hoi4d", tmp_path / "x.zarr", ["ZY1/H1/C1/N1/S1/s1/T9"])
    with pytest.raises(InputError, match="undistort do not apply to arctic"):
        make_loader("arctic", undistort=False)


def test_processed_joint_order_helper() -> None:
    ours = np.arange(21 * 3, dtype=float).reshape(21, 3)
    assert_array_equal(to_mano_order(ours)[list(MANO_TO_OURS)], ours)


@needs_mano
def test_import_command_then_eval_against_itself(tmp_path: Path, mano_dir: Path, capsys) -> None:
    from vidihand_ros.cli import main

    write_hoi4d(tmp_path / "hoi4d")
    gt = tmp_path / "gt.zarr"
    args = ["import", "hoi4d", str(tmp_path / "hoi4d"), "-o", str(gt), "--mano-dir", str(mano_dir)]
    assert main(args) == 0
    assert "wrote 2 episode(s) of hoi4d ground truth" in capsys.readouterr().out
    assert DatasetReader(gt).num_episodes == 2
    assert main(["eval", str(gt), str(gt), "--json"]) == 0
    assert '"mpjpe": 0.0' in capsys.readouterr().out
    assert main(["import", "hoi4d", str(tmp_path / "missing"), "-o", str(tmp_path / "x.zarr")]) == 2


def test_pickles_cannot_call_numpy_functions_either(tmp_path: Path) -> None:
    """numpy arrays are allowed, numpy's functions are not: `numpy.savetxt` would write files."""
    target = tmp_path / "written.txt"

    class WritesAFile:
        def __reduce__(self) -> tuple[object, tuple[str, np.ndarray]]:
            return (np.savetxt, (str(target), np.zeros(1)))

    with pytest.raises(InputError, match=r"refusing to load numpy\.savetxt"):
        safe_unpickle(pickle.dumps({"x": WritesAFile()}), tmp_path / "x.pkl")
    assert not target.exists()
