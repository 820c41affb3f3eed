"""Dataset writer and reader: replay-buffer layout, JPEG pass-through, append and crash safety.

Every dataset is reopened both with DatasetReader and the way diffusion_policy / UMI code reads
it (plain zarr + imagecodecs' numcodecs registration, in a fresh interpreter).
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import EPISODE_ENDS, IMAGE_KEY, LOWDIM_SPECS, MAX_DISTORTION, hand_key
from vidihand_ros.dataset.staging import open_for_writing
from vidihand_ros.dataset.writer import DatasetWriter
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.geometry.resize import scale_intrinsics
from vidihand_ros.types import CameraModel, Frame, FramePoses, HandPose

REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48
T0 = 1_700_000_000_000_000_000
STEP = 33_333_333
CAMERA = CameraModel(
    K=np.array([[60.0, 0, 31.5], [0, 61.0, 23.5], [0, 0, 1]]),
    width=W,
    height=H,
    distortion_model="plumb_bob",
    D=np.array([0.1, -0.05, 0.001, 0.002, 0.0]),
)


def image(i: int, width: int = W, height: int = H) -> np.ndarray:
    """A smooth test picture that changes with `i` (JPEG keeps it close)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y + 8 * i) % 256], axis=-1)
    return rgb.astype(np.uint8)


def jpeg_frame(i: int, width: int = W, height: int = H, camera: CameraModel | None = CAMERA) -> Frame:
    data = bytes(imagecodecs.jpeg8_encode(image(i, width, height), level=85))
    return Frame(T0 + i * STEP, "cam", "jpeg", width, height, data=data, camera=camera, index=100 + i)


def rgb_frame(i: int, width: int = W, height: int = H) -> Frame:
    pixels = image(i, width, height)
    return Frame(T0 + i * STEP, "cam", "rgb8", width, height, pixels=pixels, camera=CAMERA, index=i)


def decoded(frame: Frame) -> np.ndarray:
    """What any JPEG reader makes of the frame's source bytes."""
    assert frame.data is not None
    return np.asarray(imagecodecs.jpeg8_decode(frame.data))


def hand(i: int, presence: float = 0.9) -> HandPose:
    rng = np.random.default_rng(i)
    return HandPose(
        presence=presence,
        global_orient=rng.normal(size=3).astype(np.float32),
        hand_pose=rng.normal(size=(15, 3)).astype(np.float32),
        betas=rng.normal(size=10).astype(np.float32),
        transl=rng.normal(size=3).astype(np.float32),
        joints_3d=rng.normal(size=(21, 3)).astype(np.float32),
        keypoints_2d=rng.uniform(0, W, size=(21, 2)).astype(np.float32),
        wrist_orient=rng.normal(size=3).astype(np.float32),
    )


def poses(frame: Frame, i: int) -> FramePoses | None:
    """Cycle through: both hands, right only (left low presence), no estimate at all."""
    if i % 3 == 2:
        return None
    left = hand(2 * i, presence=0.95) if i % 3 == 0 else hand(2 * i, presence=0.2)
    return FramePoses(frame.stamp_ns, frame.frame_id, left=left, right=hand(2 * i + 1))


def write_episode(
    writer: DatasetWriter, frames: list[Frame], *, with_poses: bool = True, **attrs: object
) -> int:
    with writer.begin_episode(attrs) as ep:
        for i, frame in enumerate(frames):
            ep.add(frame, poses(frame, i) if with_poses else None)
    assert ep.num_frames == len(frames)
    return ep.start


def snapshot(path: Path) -> dict[str, bytes]:
    """Metadata files and image chunk files, byte for byte.

    Low-dim chunk files are left out: a chunk shared by two episodes is rewritten (atomically, the
    earlier rows unchanged) when the later one is written; `committed_rows` compares their values.
    """
    files = {}
    for p in sorted(path.rglob("*")):
        name = p.relative_to(path).as_posix()
        if p.is_file() and (p.name.startswith(".z") or name.startswith(f"data/{IMAGE_KEY}/")):
            files[name] = p.read_bytes()
    return files


def committed_rows(path: Path) -> list[dict[str, np.ndarray]]:
    reader = DatasetReader(path)
    return [reader.episode(i) for i in range(reader.num_episodes)]


def assert_same_rows(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for ea, eb in zip(a, b, strict=True):
        assert ea.keys() == eb.keys()
        for key in ea:
            assert_array_equal(ea[key], eb[key], err_msg=key)


def read_like_diffusion_policy(path: Path, code: str) -> object:
    """Run `code` in a fresh interpreter that knows only zarr and imagecodecs, as training code would."""
    script = textwrap.dedent(
        f"""
        import json, zarr, numpy as np
        from imagecodecs.numcodecs import register_codecs
        register_codecs()
        root = zarr.open({str(path)!r}, mode="r")
        data, meta = root["data"], root["meta"]
        """
    ) + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)


@pytest.fixture
def frames() -> list[Frame]:
    return [jpeg_frame(i) for i in range(7)]


# --- writing and reading ------------------------------------------------------------------------


def test_jpeg_passthrough_roundtrip(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path, attrs={"estimator": "test", "version": 3}, flush_frames=3) as writer:
        write_episode(writer, frames, task="pick", sources=[Path("/bags/a.mcap")])
        assert writer.passthrough_frames == 7 and writer.reencoded_frames == 0
        assert writer.num_episodes == 1 and writer.num_frames == 7 and writer.image_size == (W, H)

    # chunk files are the source JPEG bytes, unchanged
    for i, frame in enumerate(frames):
        assert (path / "data" / IMAGE_KEY / f"{i}.0.0.0").read_bytes() == frame.data

    reader = DatasetReader(path)
    assert reader.num_episodes == 1 and reader.num_frames == 7
    assert_array_equal(reader.episode_ends, [7])
    assert set(reader.keys) == {IMAGE_KEY} | {s.name for s in LOWDIM_SPECS}
    for i, img in enumerate(reader.frames(0)):
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        assert_array_equal(img, decoded(frames[i]))

    ep = reader.episode(0)
    assert IMAGE_KEY not in ep
    assert_array_equal(ep["stamp_ns"], [f.stamp_ns for f in frames])
    assert_allclose(ep["timestamp"], [f.stamp_ns * 1e-9 for f in frames], rtol=0, atol=1e-6)
    assert ep["timestamp"].dtype == np.float64
    assert_allclose(ep["camera0_intrinsics"], np.broadcast_to(CAMERA.K, (7, 3, 3)))
    assert_allclose(ep["camera0_distortion"][:, :5], np.broadcast_to(CAMERA.D, (7, 5)))
    assert np.isnan(ep["camera0_distortion"][:, 5:]).all() and ep["camera0_distortion"].shape == (
        7,
        MAX_DISTORTION,
    )

    for i, frame in enumerate(frames):
        expected = poses(frame, i)
        for side in ("left", "right"):
            h = expected.hand(side) if expected else None
            valid = ep[hand_key(side, "valid")][i]
            assert valid == (h is not None)
            if h is None:
                assert np.isnan(ep[hand_key(side, "presence")][i])  # nothing estimated: unknown, not 0
                for field in ("global_orient", "hand_pose", "betas", "transl", "joints_3d", "keypoints_2d",
                              "wrist_pos", "wrist_rot_axis_angle"):  # fmt: skip
                    assert np.isnan(ep[hand_key(side, field)][i]).all(), field
                continue
            assert ep[hand_key(side, "presence")][i] == np.float32(h.presence)
            assert_array_equal(ep[hand_key(side, "hand_pose")][i], h.hand_pose)
            assert_array_equal(ep[hand_key(side, "betas")][i], h.betas)
            assert_array_equal(ep[hand_key(side, "joints_3d")][i], h.joints_3d)
            assert_array_equal(ep[hand_key(side, "keypoints_2d")][i], h.keypoints_2d)
            assert_array_equal(ep[hand_key(side, "wrist_pos")][i], h.joints_3d[0])
            assert_array_equal(ep[hand_key(side, "wrist_rot_axis_angle")][i], h.wrist_orient)
            assert ep[hand_key(side, "global_orient")].dtype == np.float32

    assert reader.fps(0) == pytest.approx(30.0, rel=1e-6)
    assert reader.hand_share(0, "right") == pytest.approx(5 / 7)  # frames 2 and 5 have no estimate
    assert reader.hand_share(0, "left") == pytest.approx(3 / 7)  # frames 0, 3, 6 present
    record = reader.episode_attrs(0)
    assert record["task"] == "pick" and record["sources"] == ["/bags/a.mcap"]
    assert record["num_frames"] == 7 and record["passthrough_frames"] == 7 and record["reencoded_frames"] == 0
    assert record["start_stamp_ns"] == frames[0].stamp_ns and record["end_stamp_ns"] == frames[-1].stamp_ns
    assert record["camera0_distortion_models"] == ["plumb_bob"] and record["frame_id"] == "cam"
    assert reader.attrs["layout_version"] == reader.layout_version == 2
    assert reader.attrs["image_size"] == [W, H]
    assert reader.attrs["camera_keys"] == [IMAGE_KEY]
    assert "metres" in reader.attrs["keys"][hand_key("left", "joints_3d")]
    assert reader.attrs["provenance"] == {"estimator": "test", "version": 3}
    assert reader.attrs["sessions"][0]["mode"] == "w"
    assert reader.array("stamp_ns").attrs["description"].startswith("Exact source header stamp")


def test_read_like_diffusion_policy(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:4])
        write_episode(writer, frames[4:], with_poses=False)
    out = read_like_diffusion_policy(
        path,
        """
        print(json.dumps({
            "ends": meta["episode_ends"][:].tolist(),
            "ends_dtype": str(meta["episode_ends"].dtype),
            "rgb": [data["camera0_rgb"][i].tolist() for i in range(7)],
            "rgb_chunks": list(data["camera0_rgb"].chunks),
            "valid": data["right_hand_valid"][:].tolist(),
            "joints": np.nan_to_num(data["right_hand_joints_3d"][:], nan=-1e9).tolist(),
            "episodes": meta.attrs["episodes"],
        }))
        """,
    )
    assert isinstance(out, dict)
    assert out["ends"] == [4, 7] and out["ends_dtype"] == "int64" and out["rgb_chunks"] == [1, H, W, 3]
    for i, frame in enumerate(frames):
        assert_array_equal(np.array(out["rgb"][i], dtype=np.uint8), decoded(frame))
    assert out["valid"] == [True, True, False, True, False, False, False]
    joints = np.array(out["joints"], dtype=np.float32)
    assert_array_equal(joints[0], hand(1).joints_3d)
    assert (joints[4:] == -1e9).all()  # NaN, not zeros, where nothing was estimated
    assert [e["num_frames"] for e in out["episodes"]] == [4, 3]


def test_pixel_frames_are_encoded(tmp_path: Path) -> None:
    path = tmp_path / "ds.zarr"
    frames = [rgb_frame(i) for i in range(3)]
    with DatasetWriter(path, jpeg_quality=95) as writer:
        write_episode(writer, frames)
        assert writer.passthrough_frames == 0 and writer.reencoded_frames == 3
    reader = DatasetReader(path)
    for frame, img in zip(frames, reader.frames(0), strict=True):
        assert frame.pixels is not None
        assert np.abs(img.astype(int) - frame.pixels.astype(int)).mean() < 3.0
    assert reader.episode_attrs(0)["reencoded_frames"] == 3


def test_reencode_flag_and_grey_jpeg(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path, reencode=True) as writer:
        write_episode(writer, frames[:2])
        assert writer.reencoded_frames == 2
    assert (path / "data" / IMAGE_KEY / "0.0.0.0").read_bytes() != frames[0].data
    stored = next(DatasetReader(path).frames(0))
    assert np.abs(stored.astype(int) - decoded(frames[0]).astype(int)).mean() < 3.0

    grey = bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(image(0)[:, :, 0]), level=90))
    path2 = tmp_path / "grey.zarr"
    with DatasetWriter(path2) as writer, writer.begin_episode() as ep:
        ep.add(Frame(T0, "cam", "jpeg", W, H, data=grey))
        assert ep.passthrough_frames == 0 and ep.reencoded_frames == 1  # 1 channel: decoded to RGB
    img = DatasetReader(path2).frame(0, 0)
    assert img.shape == (H, W, 3) and (img[:, :, 0] == img[:, :, 1]).all()


def test_image_size_resizes_and_scales_pixels(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path, image_size=(W // 2, H // 2)) as writer:
        write_episode(writer, frames[:3])
        assert writer.reencoded_frames == 3
    reader = DatasetReader(path)
    assert reader.frame(0, 0).shape == (H // 2, W // 2, 3)
    ep = reader.episode(0)
    assert_allclose(ep["camera0_intrinsics"][0], scale_intrinsics(CAMERA.K, 0.5, 0.5), rtol=1e-6)
    assert_allclose(ep["camera0_intrinsics"][0][0], [30.0, 0.0, 15.5])  # pixel centres stay centred
    right = poses(frames[0], 0).right  # type: ignore[union-attr]
    assert right is not None
    kp = right.keypoints_2d
    assert_allclose(ep["right_hand_keypoints_2d"][0], (kp + 0.5) * 0.5 - 0.5, rtol=1e-6)
    assert_array_equal(ep["right_hand_joints_3d"][0], right.joints_3d)
    assert reader.episode_attrs(0)["source_image_size"] == [W, H]


def test_many_flush_blocks_and_no_camera(tmp_path: Path) -> None:
    path = tmp_path / "ds.zarr"
    frames = [jpeg_frame(i, camera=None) for i in range(11)]
    with DatasetWriter(path, flush_frames=4) as writer:
        write_episode(writer, frames[:5])
        write_episode(writer, frames[5:])
    reader = DatasetReader(path)
    assert_array_equal(reader.episode_ends, [5, 11])
    assert_array_equal(reader.episode(1)["stamp_ns"], [f.stamp_ns for f in frames[5:]])
    assert_array_equal(
        reader.episode(1)["right_hand_valid"], [poses(f, i) is not None for i, f in enumerate(frames[5:])]
    )
    assert np.isnan(reader.episode(0)["camera0_intrinsics"]).all()
    assert_array_equal(reader.frame(1, 5), decoded(frames[10]))
    assert reader.episode_attrs(-1)["start_row"] == 5


# --- append -------------------------------------------------------------------------------------


def test_append_keeps_earlier_episodes(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:4], task="first")
    before = DatasetReader(path)
    old_rows = before.episode(0)
    old_images = {
        k: v for k, v in snapshot(path).items() if re.fullmatch(rf"data/{IMAGE_KEY}/\d+\.0\.0\.0", k)
    }
    assert len(old_images) == 4

    with DatasetWriter(path, mode="a", attrs={"estimator": "second"}) as writer:
        assert writer.num_episodes == 1 and writer.num_frames == 4
        write_episode(writer, frames[4:], task="second")

    after = DatasetReader(path)
    assert_array_equal(after.episode_ends, [4, 7])
    for key, values in old_rows.items():
        assert_array_equal(after.episode(0)[key], values)
    files = snapshot(path)
    assert all(files[name] == data for name, data in old_images.items())
    assert (path / "data" / IMAGE_KEY / "6.0.0.0").read_bytes() == frames[6].data
    assert [after.episode_attrs(i)["task"] for i in range(2)] == ["first", "second"]
    assert [after.episode_attrs(i)["session"] for i in range(2)] == [0, 1]
    assert after.attrs["sessions"][1]["provenance"] == {"estimator": "second"}


def test_append_creates_missing_dataset(tmp_path: Path, frames: list[Frame]) -> None:
    with DatasetWriter(tmp_path / "new.zarr", mode="a") as writer:
        write_episode(writer, frames[:2])
    assert DatasetReader(tmp_path / "new.zarr").num_frames == 2


def test_size_mismatch_is_an_error(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:2])
        with pytest.raises(DatasetError, match=r"frame 1 of the episode is 32x24.*64x48") as info:
            write_episode(writer, [frames[2], jpeg_frame(3, W // 2, H // 2)])
        assert info.value.index == 103
        assert writer.num_frames == 2  # the failed episode was rolled back
    assert DatasetReader(path).num_frames == 2

    with pytest.raises(DatasetError, match=r"64x48.*32x24"):
        DatasetWriter(path, mode="a", image_size=(W // 2, H // 2))
    with DatasetWriter(path, mode="a", image_size=(W, H)) as writer:  # same size is fine
        write_episode(writer, [rgb_frame(9, W * 2, H * 2)])  # and resizes other frames
    assert DatasetReader(path).frame(1, 0).shape == (H, W, 3)


def test_overwrite_rules(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:2])
    with pytest.raises(DatasetError, match="replace it with overwrite"):
        DatasetWriter(path)
    assert DatasetReader(path).num_frames == 2
    with open_for_writing(path, overwrite=True) as writer:
        write_episode(writer, frames[:1])
        assert DatasetReader(path).num_frames == 2  # the old one stays until the new one is done
    assert DatasetReader(path).num_frames == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.zarr"]  # no staging left behind

    DatasetWriter(tmp_path / "empty.zarr").close()  # a dataset without episodes is replaced silently
    DatasetWriter(tmp_path / "empty.zarr").close()

    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not a zarr dataset"), open_for_writing(other, overwrite=True):
        pass
    with pytest.raises(DatasetError, match="not a zarr dataset"):
        DatasetWriter(other, mode="a")
    assert (other / "keep.txt").read_text() == "precious"


def test_a_failed_replacement_leaves_the_old_dataset_and_no_staging(
    tmp_path: Path, frames: list[Frame]
) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:3])
    with pytest.raises(RuntimeError, match="disk on fire"), open_for_writing(path, overwrite=True) as writer:
        write_episode(writer, frames[:1])
        raise RuntimeError("disk on fire")
    assert DatasetReader(path).num_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.zarr"]


def test_a_dataset_being_appended_to_is_not_replaced(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:2])
    with (
        DatasetWriter(path, mode="a"),
        pytest.raises(DatasetError, match="another writer"),
        open_for_writing(path, overwrite=True),
    ):
        pass
    assert DatasetReader(path).num_frames == 2


def test_one_writer_and_one_episode_at_a_time(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        with pytest.raises(DatasetError, match="another writer"):
            DatasetWriter(path, mode="a")
        ep = writer.begin_episode()
        with pytest.raises(DatasetError, match="already being written"):
            writer.begin_episode()
        assert ep.commit() is None  # no frames: nothing published
        with pytest.raises(DatasetError, match="already committed"):
            ep.add(frames[0])
    with DatasetWriter(path, mode="a") as writer:  # lock released on close
        assert writer.num_episodes == 0


def test_bad_inputs(tmp_path: Path, frames: list[Frame]) -> None:
    with DatasetWriter(tmp_path / "ds.zarr") as writer, writer.begin_episode() as ep:
        broken = Frame(T0, "cam", "jpeg", W, H, data=(frames[0].data or b"")[:-20], index=42)
        with pytest.raises(InputError, match="truncated") as info:
            ep.add(broken)
        assert info.value.index == 42
        mismatched = FramePoses(T0 + 1, "cam", right=hand(0))
        with pytest.raises(DatasetError, match="poses stamped"):
            ep.add(frames[0], mismatched)
        ep.add(frames[0])
        assert ep.num_frames == 1
    assert DatasetReader(tmp_path / "ds.zarr").num_frames == 1


# --- interruption -------------------------------------------------------------------------------


def test_exception_inside_episode_rolls_back(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path, flush_frames=2) as writer:
        write_episode(writer, frames[:3])
        before, rows = snapshot(path), committed_rows(path)
        with pytest.raises(RuntimeError, match="boom"), writer.begin_episode() as ep:
            for frame in frames[3:]:
                ep.add(frame)
            raise RuntimeError("boom")
        assert snapshot(path) == before  # metadata, attrs and image chunks as they were
        assert_same_rows(committed_rows(path), rows)
        write_episode(writer, frames[3:5])
    assert_array_equal(DatasetReader(path).episode_ends, [3, 5])


KILL_SCRIPT = """
import os, sys
import numpy as np
sys.path.insert(0, {repo!r})
from tests.test_dataset import jpeg_frame, poses
from vidihand_ros.dataset import writer as w
from vidihand_ros.dataset import zarr_compat as zc

stage = {stage!r}
if stage == "after_record":
    w.DatasetWriter._append_episode_ends = lambda self, ends: os._exit(9)
if stage == "after_ends_chunk":
    real_resize = zc.resize
    def resize(array, shape):
        if array.path.endswith("episode_ends"):
            os._exit(9)
        real_resize(array, shape)
    zc.resize = resize
writer = w.DatasetWriter({path!r}, mode="a", flush_frames=2)
ep = writer.begin_episode({{"task": "doomed"}})
for i in range(3, 8):
    frame = jpeg_frame(i)
    ep.add(frame, poses(frame, i))
if stage == "mid_episode":
    os._exit(9)
ep.commit()
"""


@pytest.mark.parametrize("stage", ["mid_episode", "after_record", "after_ends_chunk"])
def test_killed_writer_leaves_dataset_as_it_was(tmp_path: Path, frames: list[Frame], stage: str) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:3], task="kept")
    before = DatasetReader(path)
    rows, ends = before.episode(0), before.episode_ends

    script = KILL_SCRIPT.format(repo=str(REPO), stage=stage, path=str(path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 9, done.stderr
    assert (path / "data" / IMAGE_KEY / "3.0.0.0").exists()  # leftovers exist beyond the committed rows
    longest = max(a.shape[0] for _, a in zc.open_group(path, "r")["data"].arrays())
    assert longest == (3 if stage == "mid_episode" else 8)  # only a kill inside commit grows arrays

    after = DatasetReader(path)  # which only trusts rows below episode_ends[-1]
    assert_array_equal(after.episode_ends, ends)
    assert after.num_episodes == 1 and after.episode_attrs(0)["task"] == "kept"
    for key, values in rows.items():
        assert_array_equal(after.episode(0)[key], values)
    out = read_like_diffusion_policy(path, 'print(json.dumps(meta["episode_ends"][:].tolist()))')
    assert out == [3]

    with DatasetWriter(path, mode="a") as writer:  # truncates the leftovers, then appends
        assert zc.open_group(path, "r")["data"]["stamp_ns"].shape == (3,)
        assert not (path / "data" / IMAGE_KEY / "7.0.0.0").exists()
        write_episode(writer, frames[3:5], task="next")
    final = DatasetReader(path)
    assert_array_equal(final.episode_ends, [3, 5])
    assert [final.episode_attrs(i)["task"] for i in range(2)] == ["kept", "next"]
    assert_array_equal(final.frame(1, 1), decoded(frames[4]))
    assert_array_equal(final.episode(1)["stamp_ns"], [frames[3].stamp_ns, frames[4].stamp_ns])


# --- reader -------------------------------------------------------------------------------------


def test_reader_rejects_non_datasets(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a zarr dataset"):
        DatasetReader(tmp_path / "missing.zarr")
    with pytest.raises(DatasetError, match="not a zarr dataset"):
        DatasetReader(tmp_path)
    zc.open_group(tmp_path / "bare.zarr", "a")
    with pytest.raises(DatasetError, match="needs data/ and meta/episode_ends"):
        DatasetReader(tmp_path / "bare.zarr")


def test_recording_keeps_every_array_at_the_committed_length(tmp_path: Path, frames: list[Frame]) -> None:
    path = tmp_path / "ds.zarr"
    writer = DatasetWriter(path, flush_frames=2)
    write_episode(writer, frames[:2])
    ep = writer.begin_episode()
    for frame in frames[2:6]:
        ep.add(frame)  # two blocks flushed, as chunk files past the arrays' shape
    assert (path / "data" / "stamp_ns" / "0").exists() and (path / "data" / IMAGE_KEY / "5.0.0.0").exists()
    # diffusion_policy's ReplayBuffer asserts this for every key when it opens a dataset
    lengths = read_like_diffusion_policy(
        path, 'print(json.dumps([a.shape[0] for _, a in data.arrays()] + meta["episode_ends"][-1:].tolist()))'
    )
    assert lengths == [2] * (len(LOWDIM_SPECS) + 2)  # + camera0_rgb + episode_ends

    reader = DatasetReader(path)
    assert reader.num_frames == 2 and len(reader.episode(0)["stamp_ns"]) == 2
    with pytest.raises(IndexError):
        reader.episode(1)
    with pytest.raises(IndexError):
        reader.frame(0, 2)
    with pytest.raises(ValueError, match="hand side"):
        reader.hand_share(0, "middle")
    ep.add(frames[6])
    assert ep.commit() == 1
    writer.close()
    reader = DatasetReader(path)
    assert_array_equal(reader.episode(1)["stamp_ns"], [f.stamp_ns for f in frames[2:]])
    assert_array_equal(reader.frame(1, 3), decoded(frames[5]))


def iter_files(path: Path) -> Iterator[Path]:
    return (p for p in sorted(path.rglob("*")) if p.is_file())


def test_reader_opens_zip_export(tmp_path: Path, frames: list[Frame]) -> None:
    import zipfile

    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:3])
    zip_path = tmp_path / "dataset.zarr.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for f in iter_files(path):
            zf.write(f, f.relative_to(path).as_posix())
    reader = DatasetReader(zip_path)
    assert_array_equal(reader.episode_ends, [3])
    assert_array_equal(reader.frame(0, 2), decoded(frames[2]))
    assert json.loads((path / "meta" / EPISODE_ENDS / ".zarray").read_text())["dtype"] == "<i8"


def test_a_failed_swap_puts_the_old_dataset_back(
    tmp_path: Path, frames: list[Frame], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ds.zarr"
    with DatasetWriter(path) as writer:
        write_episode(writer, frames[:3])
    real_replace, calls = os.replace, []

    def moving_the_new_one_in_fails(src: Any, dst: Any) -> None:
        if Path(dst) == path:  # the swap's renames: old one aside (ok), new one in (fails)
            calls.append(Path(src).name)
            if Path(src).name.startswith(".ds.zarr.new-"):
                raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", moving_the_new_one_in_fails)
    with (
        pytest.raises(DatasetError, match=r"ds.zarr: could not replace .*No space left on device"),
        open_for_writing(path, overwrite=True) as writer,
    ):
        write_episode(writer, frames[:1])
    monkeypatch.undo()
    assert len(calls) == 2 and calls[0].startswith(".ds.zarr.new-")  # the new one failed; put back
    assert DatasetReader(path).num_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.zarr"]


def test_a_rejected_frame_leaves_nothing_in_the_next_row(tmp_path: Path) -> None:
    path = tmp_path / "ds.zarr"
    odd = CameraModel(K=CAMERA.K, width=W, height=H, distortion_model="odd", D=np.zeros(MAX_DISTORTION + 1))
    with DatasetWriter(path) as writer, writer.begin_episode() as ep:
        with pytest.raises(DatasetError, match="15 distortion coefficients"):
            ep.add(jpeg_frame(0, camera=odd))  # fails after its K was put into the row
        ep.add(jpeg_frame(1, camera=None))
    row = DatasetReader(path).episode(0)
    assert np.isnan(row["camera0_intrinsics"]).all() and row["stamp_ns"].tolist() == [T0 + STEP]
