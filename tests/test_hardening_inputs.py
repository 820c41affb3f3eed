"""Unusable intrinsics are refused where they enter, naming the field and the bad value.

One check (`CameraModel.problem`, `vidihand_ros.types.calibration_problem`) serves CameraInfo
messages in real bags, `--intrinsics fx,fy,cx,cy` and calibration YAML files; an all-zero K stays
the uncalibrated convention ("K = 0"), and nothing else is reported as such.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.bagfactory import hand_photos, write_image_bag
from vidihand_ros.calibration import load_calibration_yaml, parse_intrinsics
from vidihand_ros.errors import InputError
from vidihand_ros.sources import BagFrameSource
from vidihand_ros.sources.camera_info import camera_info_to_model
from vidihand_ros.sources.image_messages import MessageRef
from vidihand_ros.types import CameraModel

W, H = 64, 48
NAN, INF = float("nan"), float("inf")


def camera(fx: float = 50.0, fy: float = 50.0, cx: float = 32.0, cy: float = 24.0, D=()) -> CameraModel:
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return CameraModel(K=K, width=W, height=H, distortion_model="plumb_bob" if len(D) else "", D=np.array(D))


BAD = {
    "fx_nan": (camera(fx=NAN), "k", "fx = nan is not a positive finite focal length"),
    "fy_inf": (camera(fy=INF), "k", "fy = inf is not a positive finite focal length"),
    "fx_zero": (camera(fx=0.0), "k", "fx = 0 is not a positive finite focal length"),
    "fy_negative": (camera(fy=-50.0), "k", "fy = -50 is not a positive finite focal length"),
    "cx_nan": (camera(cx=NAN), "k", "cx = nan is not finite"),
    "cy_inf": (camera(cy=-INF), "k", "cy = -inf is not finite"),
    "d_inf": (camera(D=[0.1, INF, 0.0, 0.0, 0.0]), "d", "distortion coefficient 1 = inf is not finite"),
}


@pytest.fixture(scope="module")
def photos() -> list:
    return hand_photos(W, H)[:2]


@pytest.mark.parametrize("kind", ["mcap", "rosbag1"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_camera_info_names_the_field_and_value(tmp_path: Path, photos, kind: str, case: str) -> None:
    cam, field, message = BAD[case]
    bag = write_image_bag(tmp_path / "bag", photos, kind=kind, compressed_format="jpeg", camera_info=cam)
    with pytest.raises(InputError) as info:
        BagFrameSource(bag.path)
    name = field.upper() if kind == "rosbag1" else field  # ROS 1 spells the fields K / D
    text = str(info.value)
    assert f"CameraInfo {name}: {message}" in text and info.value.field == name, text
    assert str(bag.path) in text and info.value.index == 0, text
    assert "K = 0" not in text


def test_all_zero_k_is_still_uncalibrated(tmp_path: Path, photos) -> None:
    zero = CameraModel(K=np.zeros((3, 3)), width=W, height=H)
    bag = write_image_bag(tmp_path / "bag", photos, compressed_format="jpeg", camera_info=zero)
    with pytest.raises(InputError, match=r"K = 0.*--intrinsics"):
        BagFrameSource(bag.path)


class _Info:
    """A ROS 2 CameraInfo as rosbags deserialises it (only the fields read here)."""

    def __init__(self, K: list[float]) -> None:
        self.k = np.array(K)
        self.d = np.zeros(5)
        self.width, self.height, self.distortion_model = W, H, "plumb_bob"


def test_camera_info_error_names_the_message_when_told_where() -> None:
    where = MessageRef(Path("rec.mcap"), "/cam/info", 7)
    with pytest.raises(InputError) as info:
        camera_info_to_model(_Info([NAN, 0, 32, 0, 50, 24, 0, 0, 1]), where)
    assert str(info.value) == (
        "rec.mcap, topic /cam/info, message 7, field 'k': "
        "CameraInfo k: fx = nan is not a positive finite focal length"
    )
    assert camera_info_to_model(_Info([0.0] * 8 + [1.0]), where) is None  # uncalibrated, K[8] = 1
    assert camera_info_to_model(_Info([50, 0, 32, 0, 50, 24, 0, 0, 1]), where) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nan,50,32,24", "fx = nan is not a positive finite focal length"),
        ("50,0,32,24", "fy = 0 is not a positive finite focal length"),
        ("50,50,1e999,24", "cx = inf is not finite"),
        ("-50,50,32,24", "fx = -50 is not a positive finite focal length"),
    ],
)
def test_bad_intrinsics_text(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_intrinsics(text)


YAML = """\
image_width: {width}
image_height: 48
camera_matrix: {{rows: 3, cols: 3, data: [{fx}, 0, 32, 0, 50, 24, 0, 0, 1]}}
distortion_model: plumb_bob
distortion_coefficients: {{rows: 1, cols: 5, data: [0.1, {d1}, 0, 0, 0]}}
"""


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"fx": ".nan"}, "camera_matrix", "fx = nan is not a positive finite focal length"),
        ({"fx": "-3"}, "camera_matrix", "fx = -3 is not a positive finite focal length"),
        ({"d1": ".inf"}, "distortion_coefficients", "distortion coefficient 1 = inf is not finite"),
        ({"width": "abc"}, "image_width", "expected a pixel count"),
        ({"width": "-64"}, "image_width", "expected a pixel count"),
    ],
)
def test_bad_calibration_yaml(tmp_path: Path, values: dict, field: str, message: str) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(YAML.format(**{"width": 64, "fx": 50, "d1": 0.0, **values}))
    with pytest.raises(InputError, match=message) as info:
        load_calibration_yaml(path)
    assert info.value.field == field and str(path) in str(info.value)


def test_good_calibration_yaml_loads(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(YAML.format(width=64, fx=50, d1=0.0))
    cam = load_calibration_yaml(path)
    assert (cam.width, cam.K[0, 0], cam.D.size) == (64, 50.0, 5) and cam.problem() is None


def test_bad_camera_info_in_a_bag_names_file_topic_and_message(tmp_path: Path, photos) -> None:
    bag = write_image_bag(tmp_path / "bag", photos, compressed_format="jpeg", camera_info=camera(fx=NAN))
    with pytest.raises(InputError) as info:
        BagFrameSource(bag.path)
    assert str(bag.path) in str(info.value) and info.value.index == 0
