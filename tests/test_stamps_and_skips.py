"""Stamps strictly increase within every episode; skipped frames are counted wherever they are;
a pose bag needs poses. Real bags written by rosbags, converted by the real CLI."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from tests.bagfactory import hand_photos, write_image_bag
from vidihand_ros.cli import main
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.episodes import MAX_CLOCK_RESETS, StampLog, split_episodes
from vidihand_ros.errors import InputError
from vidihand_ros.types import CameraModel, Frame

CAMERA = CameraModel.from_fxfycxcy(500.0, 510.0, 32.0, 24.0, width=64, height=48)
T0 = 1_700_000_000 * 1_000_000_000
STEP = 33_000_000


def payloads(n: int) -> list[bytes]:
    photos = hand_photos(64, 48)
    return [bytes(imagecodecs.jpeg8_encode(photos[i % len(photos)], level=90)) for i in range(n)]


def convert(tmp_path: Path, stamps: list[int], *extra: str, data: list[bytes] | None = None) -> int:
    bag = write_image_bag(
        tmp_path / "rec",
        data or payloads(len(stamps)),
        compressed_format="jpeg",
        camera_info=CAMERA,
        stamps_ns=stamps,
        receive_ns=[T0 + i * STEP for i in range(len(stamps))],  # received in order, stamped as given
    )
    return main(["convert", str(bag.path), "-o", str(tmp_path / "out.zarr"), "-q", *extra])


def frames_at(stamps: list[int]) -> list[Frame]:
    return [Frame(s, "cam", "jpeg", 1, 1, data=b"", index=i) for i, s in enumerate(stamps)]


def test_duplicates_are_dropped_and_a_backward_stamp_starts_a_new_episode(tmp_path: Path, capsys) -> None:
    stamps = [T0 + k * STEP for k in (0, 1, 1, 2, 3, 1, 2, 2, 3)]
    assert convert(tmp_path, stamps) == 0
    assert "2 frames with a repeated stamp dropped" in capsys.readouterr().out
    reader = DatasetReader(tmp_path / "out.zarr")
    episodes = [reader.episode(i, ["timestamp"])["timestamp"] for i in range(reader.num_episodes)]
    assert len(episodes) == 2
    for stamps_s in episodes:
        assert np.all(np.diff(stamps_s) > 0)
    assert reader.episode_attrs(1)["starts_at_clock_reset"] is True
    assert [reader.episode_attrs(i)["duplicate_stamps_dropped"] for i in range(2)] == [1, 1]
    assert not np.isnan(float(np.median(np.diff(episodes[0]))))


def test_reversed_stamps_are_refused_in_one_line(tmp_path: Path, capsys) -> None:
    stamps = [T0 + (30 - k) * STEP for k in range(MAX_CLOCK_RESETS + 3)]
    assert convert(tmp_path, stamps) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "header stamps go back more than" in err and "header.stamp" in err


def test_time_ranges_keep_increasing_stamps_too() -> None:
    stamps = [T0 + k * STEP for k in (0, 1, 2, 1, 2, 3, 40, 41)]
    log = StampLog("rec")
    episodes = [
        [f.index for f in ep]
        for ep in split_episodes(frames_at(stamps), time_ranges=[(0.0, 0.5), (1.0, 2.0)], stamps=log)
    ]
    assert episodes == [[0, 1, 2], [3, 4, 5], [6, 7]] and log.clock_resets == 1


def test_a_corrupt_first_message_is_counted(tmp_path: Path, capsys) -> None:
    data = payloads(6)
    data[0] = data[0][: len(data[0]) // 2]
    assert convert(tmp_path, [T0 + k * STEP for k in range(6)], data=data) == 0
    assert "1 corrupt frames skipped" in capsys.readouterr().out
    skipped = DatasetReader(tmp_path / "out.zarr").episode_attrs(0)["skipped_frames"]
    assert [s["index"] for s in skipped] == [0]


def test_a_pose_bag_without_an_estimator_is_refused(tmp_path: Path, capsys) -> None:
    stamps = [T0 + k * STEP for k in range(3)]
    assert convert(tmp_path, stamps, "--pose-bag", str(tmp_path / "poses")) == 2
    assert "--pose-bag needs an estimator" in capsys.readouterr().err
    assert not (tmp_path / "poses").exists()


def test_stamp_log_refuses_past_the_limit() -> None:
    stamps = [T0 - k for k in range(MAX_CLOCK_RESETS + 2)]
    with pytest.raises(InputError, match="go back more than"):
        for episode in split_episodes(frames_at(stamps), stamps=StampLog("rec")):
            list(episode)
