"""Camera intrinsics given by the user: "fx,fy,cx,cy" or a ROS camera calibration YAML.

The YAML is the format `camera_calibration` / `camera_info_manager` write (camera_matrix,
distortion_model, distortion_coefficients, image_width, image_height), so a calibration file a
robot already has can be passed as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidihand_ros.errors import InputError
from vidihand_ros.types import CameraModel
from vidihand_ros.yaml_file import read_yaml_mapping

#: Larger image sides in a calibration file are a typo, not a camera.
MAX_IMAGE_SIDE = 1 << 16


def parse_intrinsics(text: str) -> CameraModel:
    """'fx,fy,cx,cy' → pinhole camera; an existing file path → its calibration."""
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        return load_calibration_yaml(path)
    parts = text.replace(" ", "").split(",")
    try:
        fx, fy, cx, cy = (float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"--intrinsics {text!r}: expected 'fx,fy,cx,cy' (pixels) or a camera calibration YAML file"
        ) from None
    camera = CameraModel.from_fxfycxcy(fx, fy, cx, cy)
    problem = camera.problem()
    if problem is not None:
        raise InputError(f"--intrinsics {text!r}: {problem.message}")
    return camera


def load_calibration_yaml(path: Path) -> CameraModel:
    """A `camera_calibration` YAML; a missing or wrong entry is an InputError naming it."""
    _, doc = read_yaml_mapping(path, "calibration file", "a camera calibration mapping")
    K = _matrix(doc, "camera_matrix", (3, 3), path)
    D = (
        _matrix(doc, "distortion_coefficients", None, path)
        if "distortion_coefficients" in doc
        else np.zeros(0)
    )
    model = doc.get("distortion_model", "plumb_bob" if D.size else "")
    if not isinstance(model, str):
        raise InputError("distortion_model must be a name", source=path, field="distortion_model")
    camera = CameraModel(
        K=K,
        width=_size(doc, "image_width", path),
        height=_size(doc, "image_height", path),
        distortion_model=model,
        D=D.ravel(),
    )
    problem = camera.problem()
    if problem is not None:
        key = "camera_matrix" if problem.matrix == "K" else "distortion_coefficients"
        raise InputError(problem.message, source=path, field=key)
    return camera


def _size(doc: dict, key: str, path: Path) -> int:
    value = doc.get(key, 0)
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 0 <= value <= MAX_IMAGE_SIDE:
        raise InputError(f"expected a pixel count, got {value!r:.40}", source=path, field=key)
    return int(value)


def _matrix(doc: dict, key: str, shape: tuple[int, int] | None, path: Path) -> np.ndarray:
    entry = doc.get(key)
    data = entry.get("data") if isinstance(entry, dict) else None
    if data is None:
        raise InputError(f"missing {key}.data", source=path, field=key)
    try:
        array = np.asarray(data, dtype=np.float64)
        return array.reshape(shape) if shape else array
    except (ValueError, TypeError) as err:
        raise InputError(f"bad {key}: {err}", source=path, field=key) from err
