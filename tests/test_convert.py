"""End to end: real bags written by rosbags → `vidihand convert` → real Zarr stores on disk,
reopened with the project's reader and with plain zarr + imagecodecs as a downstream user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
import zarr
from rosbags.highlevel import AnyReader

from tests.bagfactory import hand_photos, synthetic_frames, write_image_bag, write_video
from tests.estimators import expected_pose
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.zarr_compat import register_codecs
from vidihand_ros.sinks.hand_poses import message_to_poses
from vidihand_ros.types import CameraModel

CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
STAMP_ESTIMATOR = "tests.estimators:stamp_estimator"
BAG_KINDS = ("rosbag1", "sqlite3", "mcap")


def jpeg_bag(path: Path, kind: str = "mcap", n: int = 20, **kwargs: object):
    path.mkdir(parents=True, exist_ok=True)
    photos = hand_photos(64, 48)
    frames = [photos[i % len(photos)] for i in range(n)]
    return write_image_bag(
        path / f"rec_{kind}{'.bag' if kind == 'rosbag1' else ''}",
        frames,
        kind=kind,
        compressed_format="jpeg",
        camera_info=CAMERA,
        **kwargs,  # type: ignore[arg-type]
    )


def plain_zarr(path: Path) -> Any:
    """Open as a diffusion_policy / UMI user would: plain zarr with imagecodecs' codecs registered."""
    imagecodecs.numcodecs.register_codecs()
    return zarr.open_group(str(path), mode="r")


def chunk_bytes(dataset: Path, row: int) -> bytes:
    return (dataset / "data" / "camera0_rgb" / f"{row}.0.0.0").read_bytes()


@pytest.mark.parametrize("kind", BAG_KINDS)
def test_frames_only_copies_jpegs_and_marks_poses_missing(tmp_path: Path, kind: str) -> None:
    bag = jpeg_bag(tmp_path, kind)
    out = tmp_path / "demo.zarr"

    assert main(["convert", str(bag.path), "-o", str(out), "-q"]) == 0

    root = plain_zarr(out)
    assert list(root["meta"]["episode_ends"][:]) == [20]
    images = root["data"]["camera0_rgb"]
    assert images.shape == (20, 48, 64, 3) and images.dtype == np.uint8
    assert images.chunks == (1, 48, 64, 3)
    for row, payload in enumerate(bag.payloads):
        assert chunk_bytes(out, row) == payload  # pass-through: the source JPEG, byte for byte
    np.testing.assert_array_equal(images[3], imagecodecs.jpeg8_decode(bag.payloads[3]))
    np.testing.assert_array_equal(root["data"]["stamp_ns"][:], bag.stamps_ns)
    np.testing.assert_allclose(root["data"]["timestamp"][:], np.asarray(bag.stamps_ns) / 1e9)
    np.testing.assert_allclose(root["data"]["camera0_intrinsics"][5], CAMERA.K)
    assert not root["data"]["left_hand_valid"][:].any()
    assert np.isnan(root["data"]["right_hand_joints_3d"][:]).all()


def test_estimator_poses_are_stitched_per_frame_and_written_to_dataset_and_pose_bag(tmp_path: Path) -> None:
    bag = jpeg_bag(tmp_path, "mcap", n=23)
    out, pose_bag = tmp_path / "demo.zarr", tmp_path / "poses"

    rc = main(
        [
            *["convert", str(bag.path), "-o", str(out), "-q", "--estimator", STAMP_ESTIMATOR],
            *["--window", "8", "--stride", "3", "--batch-windows", "2", "--pose-bag", str(pose_bag)],
        ]
    )

    assert rc == 0
    episode = DatasetReader(out).episode(0)
    for row, stamp in enumerate(bag.stamps_ns):
        for side in ("left", "right"):
            want = expected_pose(stamp, side)
            assert episode[f"{side}_hand_valid"][row]
            assert episode[f"{side}_hand_presence"][row] == pytest.approx(want.presence)
            np.testing.assert_allclose(episode[f"{side}_hand_joints_3d"][row], want.joints_3d, atol=1e-6)
            np.testing.assert_allclose(episode[f"{side}_hand_transl"][row], want.transl, atol=1e-6)
            np.testing.assert_allclose(episode[f"{side}_hand_wrist_pos"][row], want.joints_3d[0], atol=1e-6)
    with AnyReader([pose_bag]) as reader:
        messages = [
            (t, message_to_poses(reader.deserialize(raw, conn.msgtype))) for conn, t, raw in reader.messages()
        ]
        assert [c.msgtype for c in reader.connections] == ["vidihand_ros/msg/HandPoses"]
    assert [t for t, _ in messages] == bag.stamps_ns
    assert [p.stamp_ns for _, p in messages] == bag.stamps_ns  # the source frame's stamp
    assert messages[4][1].frame_id == "camera_optical_frame"
    left = messages[4][1].left
    assert left is not None
    np.testing.assert_allclose(left.transl, expected_pose(bag.stamps_ns[4], "left").transl, atol=1e-6)


def test_append_adds_episodes_without_touching_earlier_ones(tmp_path: Path) -> None:
    first = jpeg_bag(tmp_path / "a", "rosbag1", n=12)
    second = jpeg_bag(tmp_path / "b", "sqlite3", n=7)
    out = tmp_path / "demo.zarr"
    assert main(["convert", str(first.path), "-o", str(out), "-q"]) == 0
    before = DatasetReader(out).episode(0)
    chunk0 = chunk_bytes(out, 0)

    assert main(["convert", str(second.path), "-o", str(out), "-q", "--append"]) == 0

    reader = DatasetReader(out)
    assert list(reader.episode_ends) == [12, 19]
    after = reader.episode(0)
    for key, values in before.items():
        np.testing.assert_array_equal(after[key], values)
    assert chunk_bytes(out, 0) == chunk0
    assert reader.episode_attrs(1)["source"]["path"] == str(second.path)


def test_existing_dataset_is_not_overwritten_without_asking(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bag = jpeg_bag(tmp_path, n=5)
    out = tmp_path / "demo.zarr"
    assert main(["convert", str(bag.path), "-o", str(out), "-q"]) == 0
    assert main(["convert", str(bag.path), "-o", str(out), "-q"]) == 2
    assert str(out) in capsys.readouterr().err
    assert main(["convert", str(bag.path), "-o", str(out), "-q", "--overwrite"]) == 0
    assert list(DatasetReader(out).episode_ends) == [5]


def test_split_at_gaps_and_by_time_ranges(tmp_path: Path) -> None:
    start = 1_700_000_000_000_000_000
    stamps = [start + i * 100_000_000 for i in range(10)] + [
        start + 5_000_000_000 + i * 100_000_000 for i in range(6)
    ]
    bag = write_image_bag(
        tmp_path / "gappy",
        synthetic_frames(16, 64, 48),
        compressed_format="jpeg",
        stamps_ns=stamps,
        camera_info=CAMERA,
    )
    gaps, ranges = tmp_path / "gaps.zarr", tmp_path / "ranges.zarr"

    assert main(["convert", str(bag.path), "-o", str(gaps), "-q", "--split-gaps", "1.0"]) == 0
    assert (
        main(
            [
                "convert",
                str(bag.path),
                "-o",
                str(ranges),
                "-q",
                "--time-range",
                "0.2:0.5",
                "--time-range",
                "5:5.25",
            ]
        )
        == 0
    )

    assert list(DatasetReader(gaps).episode_ends) == [10, 16]
    reader = DatasetReader(ranges)
    assert list(reader.episode_ends) == [3, 6]  # [0.2, 0.5) → frames 2,3,4; [5, 5.25) → 10,11,12
    np.testing.assert_array_equal(reader.episode(1)["stamp_ns"], stamps[10:13])


def test_raw_images_are_encoded_and_resized_with_intrinsics_scaled(tmp_path: Path) -> None:
    frames = list(synthetic_frames(6, 64, 48))
    bag = write_image_bag(tmp_path / "raw", frames, encoding="bgr8", camera_info=CAMERA)
    out = tmp_path / "demo.zarr"

    assert main(["convert", str(bag.path), "-o", str(out), "-q", "--image-size", "32x24"]) == 0

    root = plain_zarr(out)
    assert root["data"]["camera0_rgb"].shape == (6, 24, 32, 3)
    np.testing.assert_allclose(root["data"]["camera0_intrinsics"][0][0, 0], 250.0)
    small = frames[2].reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(root["data"]["camera0_rgb"][2].astype(float) - small).mean() < 6


def test_video_needs_intrinsics_and_converts_with_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("av")
    video = write_video(tmp_path / "clip.mp4", list(synthetic_frames(9, 64, 48)))
    out = tmp_path / "video.zarr"

    assert main(["convert", str(video), "-o", str(out), "-q"]) == 2
    assert "intrinsics" in capsys.readouterr().err
    assert main(["convert", str(video), "-o", str(out), "-q", "--intrinsics", "500,500,32,24"]) == 0
    reader = DatasetReader(out)
    assert list(reader.episode_ends) == [9]
    assert reader.fps(0) == pytest.approx(30.0, rel=0.01)


def test_inspect_reports_episodes_keys_fps_and_hand_shares(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bag = jpeg_bag(tmp_path, n=30)  # 30 fps; right hand absent on every third millisecond-stamp
    out = tmp_path / "demo.zarr"
    assert (
        main(
            ["convert", str(bag.path), "-o", str(out), "-q", "--estimator", STAMP_ESTIMATOR, "--window", "4"]
        )
        == 0
    )
    capsys.readouterr()

    assert main(["inspect", str(out), "--json"]) == 0

    summary = json.loads(capsys.readouterr().out)
    (episode,) = summary["episodes"]
    assert episode["frames"] == 30
    assert episode["fps"] == pytest.approx(30.0, rel=1e-3)
    assert episode["left_hand_share"] == 1.0
    right = [expected_pose(s, "right").presence >= 0.5 for s in bag.stamps_ns]
    assert episode["right_hand_share"] == pytest.approx(sum(right) / 30, abs=1e-3)
    assert summary["keys"]["camera0_rgb"]["shape"] == [30, 48, 64, 3]
    assert summary["attrs"]["sessions"][-1]["provenance"]["estimator"]["name"] == "stamp-test"
    assert DatasetReader(out).episode_attrs(0)["estimator"]["name"] == "stamp-test"

    assert main(["inspect", str(out)]) == 0
    table = capsys.readouterr().out
    assert "1 episodes, 30 frames" in table and "camera0_rgb" in table


def test_inspect_says_no_estimate_rather_than_zero_share_for_frames_only(tmp_path: Path, capsys) -> None:
    out = tmp_path / "frames.zarr"
    assert main(["convert", str(jpeg_bag(tmp_path, n=4).path), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    (episode,) = json.loads(capsys.readouterr().out)["episodes"]
    assert episode["left_hand_share"] is None and episode["right_hand_share"] is None


# --- bad input: one-line error naming the place, non-zero exit, dataset unchanged ---------------


@pytest.fixture
def dataset_with_one_episode(tmp_path: Path) -> Path:
    out = tmp_path / "existing.zarr"
    assert main(["convert", str(jpeg_bag(tmp_path / "first", n=6).path), "-o", str(out), "-q"]) == 0
    return out


def snapshot(dataset: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted(dataset.rglob("*")) if p.is_file()}


def assert_fails_cleanly(
    args: list[str], dataset: Path, capsys: pytest.CaptureFixture, *needles: str
) -> None:
    before = snapshot(dataset)
    assert main([*args, "-o", str(dataset), "-q", "--append"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    reader = DatasetReader(dataset)
    assert list(reader.episode_ends) == [6]
    committed = {k: v for k, v in snapshot(dataset).items() if k in before}
    for name in ("data/camera0_rgb/0.0.0.0", "data/camera0_rgb/5.0.0.0", "meta/episode_ends/0"):
        assert committed[name] == before[name]


def test_missing_topic_lists_the_image_topics(tmp_path: Path, dataset_with_one_episode: Path, capsys) -> None:
    bag = jpeg_bag(tmp_path, n=3, topic="/head/image_raw/compressed")
    assert_fails_cleanly(
        ["convert", str(bag.path), "--topic", "/nope"],
        dataset_with_one_episode,
        capsys,
        str(bag.path),
        "/nope",
        "/head/image_raw/compressed",
    )


def test_empty_bag(tmp_path: Path, dataset_with_one_episode: Path, capsys) -> None:
    bag = write_image_bag(tmp_path / "empty", [], compressed_format="jpeg")
    assert_fails_cleanly(["convert", str(bag.path)], dataset_with_one_episode, capsys, str(bag.path))


def test_truncated_bag(tmp_path: Path, dataset_with_one_episode: Path, capsys) -> None:
    bag = jpeg_bag(tmp_path, "rosbag1", n=10)
    data = bag.path.read_bytes()
    bag.path.write_bytes(data[: len(data) // 2])
    assert_fails_cleanly(["convert", str(bag.path)], dataset_with_one_episode, capsys, str(bag.path))


def test_corrupt_jpeg_is_skipped_and_counted_or_fails_when_strict(
    tmp_path: Path, dataset_with_one_episode: Path, capsys
) -> None:
    payloads = [bytes(imagecodecs.jpeg8_encode(p, level=90)) for p in hand_photos(64, 48)] * 3
    payloads[4] = payloads[4][: len(payloads[4]) // 2]  # cut mid-stream
    bag = write_image_bag(tmp_path / "corrupt", payloads, compressed_format="jpeg", camera_info=CAMERA)

    assert_fails_cleanly(
        ["convert", str(bag.path), "--strict"], dataset_with_one_episode, capsys, str(bag.path), "message 4"
    )
    assert main(["convert", str(bag.path), "-o", str(dataset_with_one_episode), "-q", "--append"]) == 0
    assert "1 corrupt frames skipped" in capsys.readouterr().out
    reader = DatasetReader(dataset_with_one_episode)
    assert list(reader.episode_ends) == [6, 6 + len(payloads) - 1]
    skipped = reader.episode_attrs(1)["skipped_frames"]
    assert [s["index"] for s in skipped] == [4]


def test_unknown_encoding(tmp_path: Path, dataset_with_one_episode: Path, capsys) -> None:
    bag = write_image_bag(
        tmp_path / "odd", list(synthetic_frames(3, 8, 6)), encoding="rgb8", camera_info=CAMERA
    )
    # Rewrite the encoding field in a copy: a driver that invents its own encodings.
    odd = tmp_path / "odd_copy"
    shutil.copytree(bag.path, odd)
    with AnyReader([bag.path]) as reader:
        (conn,) = [c for c in reader.connections if c.topic == "/camera/image_raw"]
        msgs: list[tuple[int, Any]] = [
            (t, reader.deserialize(raw, conn.msgtype)) for _, t, raw in reader.messages([conn])
        ]
    shutil.rmtree(odd)
    for _, msg in msgs:
        msg.encoding = "rgb7x"
    from tests.bagfactory import BagWriter

    with BagWriter(odd, "mcap") as writer:
        for t, msg in msgs:
            writer.write("/camera/image_raw", "sensor_msgs/msg/Image", t, msg)
    assert_fails_cleanly(
        ["convert", str(odd), "--intrinsics", "10,10,4,3"],
        dataset_with_one_episode,
        capsys,
        "encoding",
        "rgb7x",
    )


def test_image_size_changing_mid_stream(tmp_path: Path, dataset_with_one_episode: Path, capsys) -> None:
    frames = [*synthetic_frames(3, 64, 48), *synthetic_frames(2, 32, 24)]
    bag = write_image_bag(tmp_path / "resized", frames, compressed_format="jpeg", camera_info=CAMERA)
    assert_fails_cleanly(
        ["convert", str(bag.path)], dataset_with_one_episode, capsys, str(bag.path), "message 3"
    )


def test_no_intrinsics(tmp_path: Path, dataset_with_one_episode: Path, capsys) -> None:
    bag = write_image_bag(tmp_path / "nok", list(synthetic_frames(3, 64, 48)), compressed_format="jpeg")
    assert_fails_cleanly(
        ["convert", str(bag.path)], dataset_with_one_episode, capsys, str(bag.path), "--intrinsics"
    )


def test_bad_arguments_are_reported_not_raised(tmp_path: Path, capsys) -> None:
    bag = jpeg_bag(tmp_path, n=3)
    out = str(tmp_path / "x.zarr")
    assert main(["convert", str(bag.path), "-o", out, "--window", "4", "--stride", "5"]) == 2
    assert "--stride" in capsys.readouterr().err
    assert main(["convert", str(bag.path), "-o", out, "--estimator", "no-such-model"]) == 2
    assert "unknown estimator" in capsys.readouterr().err
    assert main(["convert", str(bag.path), "-o", out, "--time-range", "5:1"]) == 2
    assert main(["inspect", str(tmp_path / "nothing.zarr")]) == 2
    assert "not a zarr dataset" in capsys.readouterr().err


def test_console_script_is_installed_and_helpful() -> None:
    exe = Path(sys.executable).parent / "vidihand"
    result = subprocess.run([str(exe), "convert", "--help"], capture_output=True, text=True, check=True)
    for flag in ("--topic", "--camera-info-topic", "--intrinsics", "--window", "--stride", "--estimator"):
        assert flag in result.stdout
    for flag in ("--append", "--split-gaps", "--time-range", "--pose-bag"):
        assert flag in result.stdout


def test_downstream_replay_buffer_layout(tmp_path: Path) -> None:
    """What diffusion_policy's ReplayBuffer reads: data/<key> along time + int64 meta/episode_ends."""
    bag = jpeg_bag(tmp_path, n=8)
    out = tmp_path / "demo.zarr"
    assert main(["convert", str(bag.path), "-o", str(out), "-q"]) == 0
    register_codecs()
    root = plain_zarr(out)
    ends = root["meta"]["episode_ends"]
    assert ends.dtype == np.int64 and ends.shape == (1,)
    for key in root["data"].array_keys():
        assert root["data"][key].shape[0] == 8, key


def test_eval_command_scores_a_prediction_against_itself_as_perfect(tmp_path: Path, capsys) -> None:
    bag = jpeg_bag(tmp_path, n=12)
    pred, gt = tmp_path / "pred.zarr", tmp_path / "gt.zarr"
    for out in (pred, gt):
        assert main(["convert", str(bag.path), "-o", str(out), "-q", "--estimator", STAMP_ESTIMATOR]) == 0
    capsys.readouterr()

    assert main(["eval", str(pred), str(gt), "--json"]) == 0

    both = json.loads(capsys.readouterr().out)["metrics"]["both"]
    assert both["mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert both["ct"] == pytest.approx(0.0, abs=1e-6)
    assert both["facc"] == 1.0


# --- regressions found in review ------------------------------------------------------------------


def test_overwrite_keeps_the_old_dataset_when_the_new_conversion_fails(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo.zarr"
    assert main(["convert", str(jpeg_bag(tmp_path / "a", n=6).path), "-o", str(out), "-q"]) == 0
    before = snapshot(out)

    assert main(["convert", str(tmp_path / "no-such-bag"), "-o", str(out), "-q", "--overwrite"]) == 2
    assert snapshot(out) == before
    assert (
        main(["convert", str(jpeg_bag(tmp_path / "b", n=4).path), "-o", str(out), "-q", "--overwrite"]) == 0
    )
    assert list(DatasetReader(out).episode_ends) == [4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "demo.zarr"]  # no staging left over


def test_overwrite_keeps_the_old_dataset_when_the_new_conversion_fails_midway(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo.zarr"
    assert main(["convert", str(jpeg_bag(tmp_path / "a", n=6).path), "-o", str(out), "-q"]) == 0
    before = snapshot(out)
    payloads = [bytes(imagecodecs.jpeg8_encode(p, level=90)) for p in hand_photos(64, 48)] * 4
    payloads[9] = payloads[9][:50]  # the new conversion fails at message 9, after 9 frames written
    bag = write_image_bag(tmp_path / "bad", payloads, compressed_format="jpeg", camera_info=CAMERA)
    assert main(["convert", str(bag.path), "-o", str(out), "-q", "--overwrite", "--strict"]) == 2
    assert "message 9" in capsys.readouterr().err
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "bad", "demo.zarr"]


def test_an_estimator_error_is_one_line_naming_the_input_and_the_stamps(tmp_path: Path, capsys) -> None:
    bag = jpeg_bag(tmp_path, n=12)
    out = tmp_path / "demo.zarr"
    args = ["convert", str(bag.path), "-o", str(out), "-q", "--window", "4"]
    assert main([*args, "--estimator", "tests.estimators:failing_estimator"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bag.path) in err and "field 'K'" in err
    assert "estimator failed on the window(s) of frames 4..7" in err and "no intrinsics" in err
    assert not out.exists() or DatasetReader(out).num_episodes == 0


def test_time_ranges_are_sorted_and_must_not_overlap_or_miss(tmp_path: Path, capsys) -> None:
    bag = jpeg_bag(tmp_path, n=15)  # 30 fps: 0.0 .. 0.467 s
    out = tmp_path / "r.zarr"
    assert (
        main(
            [
                "convert",
                str(bag.path),
                "-o",
                str(out),
                "-q",
                "--time-range",
                "0.3:0.4",
                "--time-range",
                "0:0.1",
            ]
        )
        == 0
    )
    reader = DatasetReader(out)
    np.testing.assert_array_equal(reader.episode(0)["stamp_ns"], bag.stamps_ns[0:3])
    np.testing.assert_array_equal(reader.episode(1)["stamp_ns"], bag.stamps_ns[9:12])

    args = ["convert", str(bag.path), "-o", str(tmp_path / "x.zarr"), "-q", "--time-range"]
    assert main([*args, "0:0.3", "--time-range", "0.1:0.5"]) == 2
    assert "overlap" in capsys.readouterr().err
    assert main([*args, "100:200"]) == 2
    assert "no frames inside" in capsys.readouterr().err


def test_jpeg_padding_after_the_end_marker_is_accepted_and_dropped(tmp_path: Path) -> None:
    jpegs = [bytes(imagecodecs.jpeg8_encode(p, level=90)) for p in hand_photos(64, 48)]
    bag = write_image_bag(
        tmp_path / "pad", [j + b"\0" * 7 for j in jpegs], compressed_format="jpeg", camera_info=CAMERA
    )
    out = tmp_path / "pad.zarr"
    assert main(["convert", str(bag.path), "-o", str(out), "-q"]) == 0
    assert [chunk_bytes(out, i) for i in range(len(jpegs))] == jpegs


def test_twelve_bit_jpegs_are_reencoded_not_copied(tmp_path: Path) -> None:
    deep = (np.indices((48, 64)).sum(axis=0) * 40 % 4096).astype(np.uint16)
    jpeg12 = bytes(imagecodecs.jpeg8_encode(np.stack([deep] * 3, axis=-1), bitspersample=12, level=95))
    bag = write_image_bag(tmp_path / "j12", [jpeg12] * 2, compressed_format="jpeg", camera_info=CAMERA)
    out = tmp_path / "j12.zarr"
    assert main(["convert", str(bag.path), "-o", str(out), "-q"]) == 0
    image = plain_zarr(out)["data"]["camera0_rgb"][0]  # readable by a downstream user
    assert abs(float(image[..., 0].mean()) - float((deep >> 4).mean())) < 3
    assert chunk_bytes(out, 0) != jpeg12


def test_split_gaps_counts_skipped_frames_per_episode_and_splits_on_clock_resets(
    tmp_path: Path, capsys
) -> None:
    start = 1_700_000_000_000_000_000
    stamps = [start + i * 100_000_000 for i in range(5)] + [start - 10**9 + i * 100_000_000 for i in range(4)]
    payloads = [bytes(imagecodecs.jpeg8_encode(f, level=90)) for f in synthetic_frames(9, 64, 48)]
    payloads[2] = payloads[2][:100]  # corrupt, in the first episode
    received = [start + i * 100_000_000 for i in range(9)]  # the bag's clock runs on; the header's resets
    bag = write_image_bag(
        tmp_path / "reset", payloads, compressed_format="jpeg", stamps_ns=stamps, receive_ns=received
    )
    out = tmp_path / "reset.zarr"

    assert (
        main(
            [
                "convert",
                str(bag.path),
                "-o",
                str(out),
                "-q",
                "--split-gaps",
                "1.0",
                "--intrinsics",
                "60,60,32,24",
            ]
        )
        == 0
    )

    assert "1 corrupt frames skipped" in capsys.readouterr().out
    reader = DatasetReader(out)
    assert list(reader.episode_ends) == [4, 8]  # the backward jump starts episode 2
    assert [s["index"] for s in reader.episode_attrs(0)["skipped_frames"]] == [2]
    assert reader.episode_attrs(1)["skipped_frames"] == []


def test_a_failed_first_episode_does_not_fix_the_image_size(tmp_path: Path, capsys) -> None:
    out = tmp_path / "d.zarr"
    changing = [*synthetic_frames(2, 64, 48), *synthetic_frames(2, 32, 24)]
    bad = write_image_bag(tmp_path / "bad", changing, compressed_format="jpeg", camera_info=CAMERA)
    assert main(["convert", str(bad.path), "-o", str(out), "-q"]) == 2
    capsys.readouterr()
    big = write_image_bag(
        tmp_path / "big", synthetic_frames(3, 128, 96), compressed_format="jpeg", camera_info=CAMERA
    )
    assert main(["convert", str(big.path), "-o", str(out), "-q", "--append"]) == 0
    assert plain_zarr(out)["data"]["camera0_rgb"].shape == (3, 96, 128, 3)

    small = jpeg_bag(tmp_path / "small", n=2)
    assert main(["convert", str(small.path), "-o", str(out), "-q", "--append"]) == 2
    err = capsys.readouterr().err
    assert str(small.path) in err and "--image-size" in err


def test_unusable_outputs_are_one_line_errors(tmp_path: Path, capsys) -> None:
    bag = jpeg_bag(tmp_path / "in", n=3)
    (tmp_path / "file").write_text("not a folder")
    cases = [(tmp_path / "file" / "sub.zarr", "Not a directory")]
    if Path("/proc/self").exists():
        cases.append((Path("/proc/x.zarr"), "No such file or directory"))
    for out, reason in cases:
        assert main(["convert", str(bag.path), "-o", str(out), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"vidihand convert: error: {out}: cannot open for writing: {reason}"
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_failed_conversion_into_a_new_output_leaves_nothing_behind(tmp_path: Path, capsys) -> None:
    payloads = [bytes(imagecodecs.jpeg8_encode(p, level=90)) for p in hand_photos(64, 48)] * 2
    payloads[5] = payloads[5][:50]
    bad = write_image_bag(tmp_path / "bad", payloads, compressed_format="jpeg", camera_info=CAMERA)
    out = tmp_path / "new" / "demo.zarr"
    assert main(["convert", str(bad.path), "-o", str(out), "-q", "--strict"]) == 2
    assert "message 5" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # neither demo.zarr nor new/

    empty = tmp_path / "empty"  # an empty folder given as the output stays, and stays empty
    empty.mkdir()
    assert main(["convert", str(bad.path), "-o", str(empty), "-q", "--strict"]) == 2
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_many_short_episodes_are_written_as_one_long_one_is(tmp_path: Path) -> None:
    bag = jpeg_bag(tmp_path / "in", n=30)  # 30 fps
    one, many = tmp_path / "one.zarr", tmp_path / "many.zarr"
    assert main(["convert", str(bag.path), "-o", str(one), "-q"]) == 0
    ranges = [f"{max(0.0, (3 * k - 0.5) / 30):.4f}:{(3 * k + 2.5) / 30:.4f}" for k in range(10)]
    args = [a for r in ranges for a in ("--time-range", r)]
    assert main(["convert", str(bag.path), "-o", str(many), "-q", *args]) == 0
    reader, whole = DatasetReader(many), DatasetReader(one)
    assert list(reader.episode_ends) == list(range(3, 31, 3))
    root = plain_zarr(many)
    assert {a.shape[0] for _, a in root["data"].arrays()} == {30}
    for key in whole.keys:
        np.testing.assert_array_equal(root["data"][key][:], plain_zarr(one)["data"][key][:], err_msg=key)
    assert [reader.episode_attrs(i)["split_index"] for i in range(10)] == list(range(10))
    assert [reader.episode_attrs(i)["start_row"] for i in range(10)] == list(range(0, 30, 3))


def test_a_symlinked_writer_lock_is_refused(tmp_path: Path, dataset_with_one_episode: Path, capsys) -> None:
    lock = dataset_with_one_episode / ".vidihand-writer.lock"
    lock.unlink()
    outside = tmp_path / "outside"
    lock.symlink_to(outside)
    bag = jpeg_bag(tmp_path / "in", n=3)
    assert main(["convert", str(bag.path), "-o", str(dataset_with_one_episode), "-q", "--append"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is a symbolic link; refusing to follow it") and "\n" not in err
    assert not outside.exists()
    assert list(DatasetReader(dataset_with_one_episode).episode_ends) == [6]
