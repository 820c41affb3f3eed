"""MANO files (safe loader, finder, synthetic writer) and the smplx-based layer with 21 joints."""

from __future__ import annotations

import pickle
import pickletools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.mano_fixtures import MANO_SEED, mano_dir, mano_layers  # noqa: F401  (pytest fixtures)
from vidihand_ros.errors import InputError
from vidihand_ros.mano import FINGERTIP_VERTICES, JOINT_ORDER
from vidihand_ros.mano.files import LAYER_PARENTS, find_mano_files, load_mano_file
from vidihand_ros.testing.synthetic_mano import synthetic_mano_arrays, write_synthetic_mano_file

#: Keys of the official MANO_RIGHT.pkl / MANO_LEFT.pkl (v1.2).
REAL_KEYS = {
    "hands_components",
    "f",
    "J_regressor",
    "kintree_table",
    "J",
    "bs_style",
    "hands_coeffs",
    "weights",
    "posedirs",
    "hands_mean",
    "v_template",
    "shapedirs",
    "bs_type",
}
REAL_SHAPES = {
    "hands_components": (45, 45),
    "f": (1538, 3),
    "J_regressor": (16, 778),
    "kintree_table": (2, 16),
    "J": (16, 3),
    "hands_coeffs": (1554, 45),
    "weights": (778, 16),
    "posedirs": (778, 3, 135),
    "hands_mean": (45,),
    "v_template": (778, 3),
    "shapedirs": (778, 3, 10),
}


def pickled_globals(path: Path) -> set[str]:
    return {str(arg) for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"}


# ------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("side", ["right", "left"])
def test_synthetic_file_has_the_real_format(mano_dir: Path, side: str) -> None:  # noqa: F811
    path = find_mano_files(mano_dir)[side]
    # Pickled like the official files: chumpy objects and a scipy.sparse.csc matrix.
    assert {"chumpy.ch Ch", "chumpy.reordering Select", "scipy.sparse.csc csc_matrix"} <= pickled_globals(
        path
    )
    model = load_mano_file(path)
    assert set(model) == REAL_KEYS
    for key, shape in REAL_SHAPES.items():
        assert model[key].shape == shape, key
    assert model["f"].dtype == np.uint32 and model["kintree_table"].dtype == np.int64
    assert model["shapedirs"].dtype == np.float64 and model["J_regressor"].dtype == np.float64
    assert (model["bs_style"], model["bs_type"]) == ("lbs", "lrotmin")
    # Values round-trip exactly through chumpy Select/Ch and the CSC matrix.
    expected = synthetic_mano_arrays(side, MANO_SEED)
    for key in ("shapedirs", "J_regressor", "v_template", "posedirs", "weights", "f"):
        np.testing.assert_array_equal(model[key], expected[key], err_msg=key)


def test_synthetic_values_are_sane(mano_dir: Path) -> None:  # noqa: F811
    model = load_mano_file(mano_dir / "MANO_RIGHT.pkl")
    np.testing.assert_allclose(model["J_regressor"].sum(axis=1), 1.0)
    np.testing.assert_allclose(model["weights"].sum(axis=1), 1.0)
    assert model["J_regressor"].min() >= 0 and model["weights"].min() >= 0
    np.testing.assert_allclose(model["J"], model["J_regressor"] @ model["v_template"])
    extent = np.ptp(model["v_template"], axis=0)
    assert 0.05 < extent.max() < 0.3  # hand-sized, in metres
    parents = model["kintree_table"][0]
    assert parents[0] == 4294967295 and list(parents[1:]) == list(LAYER_PARENTS[1:])
    assert all(0 <= parents[j] < j for j in range(1, 16))
    assert model["f"].max() < 778 and len(np.unique(model["f"])) == 778
    # A unit of any β moves the hand by millimetres, not by nothing or by decimetres.
    motion = np.linalg.norm(model["shapedirs"], axis=1).max(axis=0)
    assert np.all((motion > 1e-4) & (motion < 0.02))
    # Each fingertip vertex is the far end of its finger: beyond that finger's last joint.
    joints = model["J"]
    for tip, distal in zip(FINGERTIP_VERTICES, (15, 3, 6, 12, 9), strict=True):
        wrist_to_tip = np.linalg.norm(model["v_template"][tip] - joints[0])
        assert wrist_to_tip > np.linalg.norm(joints[distal] - joints[0]) + 0.01


def test_same_seed_gives_mirrored_hands_with_the_left_shapedirs_bug() -> None:
    right, left = synthetic_mano_arrays("right", 3), synthetic_mano_arrays("left", 3)
    np.testing.assert_allclose(left["v_template"], right["v_template"] * [-1.0, 1.0, 1.0])
    # As in the official files, the left x column repeats the right one (smplx issue 48).
    np.testing.assert_array_equal(left["shapedirs"][:, 0], right["shapedirs"][:, 0])
    np.testing.assert_array_equal(left["shapedirs"][:, 1:], right["shapedirs"][:, 1:])


def test_loading_needs_neither_chumpy_nor_scipy_nor_torch(mano_dir: Path) -> None:  # noqa: F811
    code = (
        "import sys\n"
        "from vidihand_ros.mano import load_mano_file\n"
        f"model = load_mano_file({str(mano_dir / 'MANO_LEFT.pkl')!r})\n"
        "assert model['shapedirs'].shape == (778, 3, 10)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('chumpy', 'scipy', 'torch', 'smplx')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "chumpy" not in sys.modules


@pytest.mark.parametrize("protocol", [0, 1, 4, 5])
def test_other_pickle_protocols_load(tmp_path: Path, protocol: int) -> None:
    path = write_synthetic_mano_file(tmp_path / "MANO_RIGHT.pkl", "right", seed=1, protocol=protocol)
    np.testing.assert_array_equal(
        load_mano_file(path)["shapedirs"], synthetic_mano_arrays("right", 1)["shapedirs"]
    )


@pytest.mark.parametrize("spelling", [b"numpy.core.multiarray", b"numpy._core.multiarray"])
def test_numpy_1_and_2_module_names_both_load(tmp_path: Path, spelling: bytes) -> None:
    """The official files name numpy 1's `numpy.core`; numpy 2 writes `numpy._core`."""
    path = write_synthetic_mano_file(tmp_path / "a.pkl", "right", seed=1)
    blob = path.read_bytes()
    current = next(
        name for name in (b"numpy._core.multiarray", b"numpy.core.multiarray") if b"c" + name in blob
    )
    path.write_bytes(blob.replace(b"c" + current + b"\n", b"c" + spelling + b"\n"))
    assert b"c" + spelling + b"\n_reconstruct" in path.read_bytes()
    assert load_mano_file(path)["v_template"].shape == (778, 3)


def test_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(InputError, match=r"refusing to load os\.system") as info:
        load_mano_file(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


class NotAManoClass:
    pass


def test_refuses_unknown_classes_and_codecs(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"v_template": NotAManoClass()}, protocol=2))
    with pytest.raises(InputError, match="NotAManoClass"):
        load_mano_file(path)
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(InputError, match="zlib"):
        load_mano_file(path)


def test_rejects_files_that_are_not_mano(tmp_path: Path) -> None:
    model = synthetic_mano_arrays("right", 0)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({k: v for k, v in model.items() if k != "posedirs"}))
    with pytest.raises(InputError, match="'posedirs' is missing"):
        load_mano_file(path)
    path.write_bytes(pickle.dumps({**model, "v_template": np.zeros((6890, 3))}))
    with pytest.raises(InputError, match=r"'v_template' has shape \(6890, 3\), expected 778×3"):
        load_mano_file(path)
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InputError, match="holds a list"):
        load_mano_file(path)
    path.write_bytes(pickle.dumps(model)[:1000])
    with pytest.raises(InputError, match="not a readable MANO pickle"):
        load_mano_file(path)
    with pytest.raises(InputError, match="cannot read"):
        load_mano_file(tmp_path / "absent.pkl")


def test_chumpy_free_copies_load_too(tmp_path: Path) -> None:
    """Users often have de-chumpified copies: plain arrays, dense or scipy-pickled regressor."""
    model = synthetic_mano_arrays("right", 0)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(model, protocol=4))
    np.testing.assert_array_equal(load_mano_file(path)["J_regressor"], model["J_regressor"])
    scipy_sparse = pytest.importorskip("scipy.sparse")
    path.write_bytes(pickle.dumps({**model, "J_regressor": scipy_sparse.csr_matrix(model["J_regressor"])}))
    np.testing.assert_array_equal(load_mano_file(path)["J_regressor"], model["J_regressor"])


def test_find_mano_files(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mano_right.PKL").write_bytes(b"")
    (tmp_path / "models" / "MANO_LEFT.pkl").write_bytes(b"")
    found = find_mano_files(tmp_path)
    assert found == {
        "right": tmp_path / "models" / "mano_right.PKL",
        "left": tmp_path / "models" / "MANO_LEFT.pkl",
    }
    (tmp_path / "models" / "MANO_LEFT.pkl").unlink()
    with pytest.raises(InputError, match=r"no MANO_LEFT\.pkl here") as info:
        find_mano_files(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(InputError, match="does not exist"):
        find_mano_files(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------
# Layer

MIRROR = np.array([-1.0, 1.0, 1.0])


def random_inputs(batch: int, seed: int) -> tuple:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    values = (
        rng.normal(0, 1.0, (batch, 3)),
        rng.normal(0, 0.4, (batch, 45)),
        rng.normal(0, 1.0, (batch, 10)),
        rng.normal(0, 0.1, (batch, 3)) + np.array([0.0, 0.0, 0.5]),
    )
    return tuple(torch.tensor(v, dtype=torch.float32) for v in values)


def test_layer_is_real_smplx_mano(mano_layers: dict) -> None:  # noqa: F811
    smplx = pytest.importorskip("smplx")
    for side, layer in mano_layers.items():
        assert isinstance(layer.mano, smplx.MANO)
        assert layer.side == side and not layer.mano.use_pca and layer.mano.flat_hand_mean
        assert layer.faces.shape == (1538, 3)
    assert "chumpy" not in sys.modules


def test_shapes_dtypes_and_joint_order(mano_layers: dict) -> None:  # noqa: F811
    torch = pytest.importorskip("torch")
    for layer in mano_layers.values():
        go, hp, betas, transl = random_inputs(4, seed=0)
        out = layer(go, hp, betas, transl)
        assert out.vertices.shape == (4, 778, 3) and out.joints.shape == (4, 21, 3)
        assert out.vertices.dtype == torch.float32 and out.joints.dtype == torch.float32
        # Joints 4, 8, 12, 16, 20 (thumb → pinky tips) are the fingertip vertices.
        for joint, vertex in zip((4, 8, 12, 16, 20), FINGERTIP_VERTICES, strict=True):
            torch.testing.assert_close(out.joints[:, joint], out.vertices[:, vertex])
        # (B, 15, 3) and (B, 45) poses are the same thing.
        torch.testing.assert_close(layer(go, hp.reshape(4, 15, 3), betas, transl).joints, out.joints)
        # The fast joints-only path gives the same joints.
        torch.testing.assert_close(layer.joints(go, hp, betas, transl), out.joints, atol=1e-6, rtol=0)


def test_zero_pose_gives_the_template(mano_dir: Path, mano_layers: dict) -> None:  # noqa: F811
    torch = pytest.importorskip("torch")
    for side, path in find_mano_files(mano_dir).items():
        model = load_mano_file(path)
        zero = torch.zeros(1, 3)
        out = mano_layers[side](zero, torch.zeros(1, 45), torch.zeros(1, 10), zero)
        np.testing.assert_allclose(out.vertices[0].numpy(), model["v_template"], atol=1e-6)
        regressed = model["J_regressor"] @ model["v_template"]
        for i, layer_joint in enumerate(JOINT_ORDER):
            expected = (
                regressed[layer_joint]
                if layer_joint < 16
                else model["v_template"][FINGERTIP_VERTICES[layer_joint - 16]]
            )
            np.testing.assert_allclose(out.joints[0, i].numpy(), expected, atol=1e-6)
        shifted = mano_layers[side](
            zero, torch.zeros(1, 45), torch.zeros(1, 10), torch.tensor([[0.1, -0.2, 0.5]])
        )
        torch.testing.assert_close(
            shifted.joints - out.joints, torch.tensor([0.1, -0.2, 0.5]).expand(1, 21, 3)
        )


def test_left_shapedirs_fix(mano_layers: dict, mano_dir: Path) -> None:  # noqa: F811
    torch = pytest.importorskip("torch")
    from vidihand_ros.mano.layer import ManoLayer

    left, right = mano_layers["left"], mano_layers["right"]
    assert left.shapedirs_fixed and not right.shapedirs_fixed
    torch.testing.assert_close(left.mano.shapedirs[:, 0], -right.mano.shapedirs[:, 0])
    # With the fix the left hand is the exact mirror of the right for any shape and pose:
    # mirroring across x maps an axis-angle (x, y, z) to (x, −y, −z).
    go, hp, betas, transl = random_inputs(3, seed=1)
    flip = torch.tensor([1.0, -1.0, -1.0])
    mirror = torch.tensor(MIRROR, dtype=torch.float32)
    out_r = right(go, hp, betas, transl)
    out_l = left(go * flip, (hp.reshape(3, 15, 3) * flip), betas, transl * mirror)
    torch.testing.assert_close(out_l.vertices, out_r.vertices * mirror, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_l.joints, out_r.joints * mirror, atol=1e-5, rtol=0)
    # A left model whose x column is already mirrored is left alone; the left side needs the right.
    paths = find_mano_files(mano_dir)
    right_model, left_model = load_mano_file(paths["right"]), load_mano_file(paths["left"])
    left_model["shapedirs"][:, 0] *= -1
    repaired = ManoLayer(left_model, "left", right_model=right_model)
    assert not repaired.shapedirs_fixed
    torch.testing.assert_close(repaired.mano.shapedirs, left.mano.shapedirs)
    with pytest.raises(ValueError, match="right_model"):
        ManoLayer(left_model, "left")


def test_joint_jacobians_match_finite_differences(mano_dir: Path) -> None:  # noqa: F811
    torch = pytest.importorskip("torch")
    from vidihand_ros.mano.layer import joint_jacobians, load_mano_layers

    eps = 1e-6
    for layer in load_mano_layers(mano_dir, dtype=torch.float64).values():
        go, hp, betas, _ = (v.double() for v in random_inputs(2, seed=2))
        pose = torch.cat([go, hp], dim=1)
        jac_pose, jac_beta = joint_jacobians(layer, layer.kinematics(go, hp, betas, torch.zeros(2, 3)))
        for b in range(2):
            # Central differences, all perturbations in one batch.
            steps = torch.cat([torch.eye(48), -torch.eye(48)]).double() * eps
            poses = pose[b] + steps
            shapes = betas[b].expand(96, -1)
            moved = layer.joints(poses[:, :3], poses[:, 3:], shapes, torch.zeros(96, 3)).reshape(96, 63)
            numeric = ((moved[:48] - moved[48:]) / (2 * eps)).T
            torch.testing.assert_close(jac_pose[b], numeric, atol=1e-7, rtol=1e-6)
            shapes = betas[b] + torch.cat([torch.eye(10), -torch.eye(10)]).double() * eps
            moved = layer.joints(
                pose[b, :3].expand(20, -1), pose[b, 3:].expand(20, -1), shapes, torch.zeros(20, 3)
            )
            numeric = ((moved[:10] - moved[10:]).reshape(10, 63) / (2 * eps)).T
            torch.testing.assert_close(jac_beta[b], numeric, atol=1e-7, rtol=1e-6)
