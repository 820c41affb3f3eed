"""What every dataset loader returns: a `Sequence` of frames with per-frame ground-truth poses.

Each published dataset has its own units, frames and MANO convention; its loader converts them
to the project's (metres, camera optical frame, axis-angle, flat-hand-mean full pose, 21 joints
wrist then thumb→pinky, NaN = not given) so that training, evaluation and the dataset writer
never see a dataset's quirks. Poses are read eagerly (they are small); images are read lazily,
one frame at a time, when `Sequence.frames()` is iterated.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vidihand_ros.dataset.schema import HAND_FIELDS, hand_key
from vidihand_ros.dataset.validity import usable
from vidihand_ros.errors import InputError
from vidihand_ros.geometry.resize import scale_intrinsics
from vidihand_ros.mano.pickles import PickleBudgetError, UnsafePickleError, restricted_unpickle
from vidihand_ros.training_data.mano import ManoModel, load_mano
from vidihand_ros.types import HAND_SIDES, NUM_JOINTS, CameraModel, Frame, FramePoses, HandPose

F64 = NDArray[np.float64]

#: Lens models `project_points` understands (ROS names, plus Meta's Aria/Quest fisheye).
FISHEYE624 = "fisheye624"


@dataclass
class Sequence:
    """One recording: lazily read frames and, per frame, the ground-truth poses of both hands.

    `poses[i]` and `cameras[i]` belong to the i-th frame of `frames()` and carry its stamp. A hand
    that the dataset does not annotate in a frame is None (no ground truth); an annotated hand
    that is out of view has presence 0.
    """

    name: str
    dataset: str
    fps: float
    poses: list[FramePoses]
    cameras: list[CameraModel]
    read_frames: Callable[[], Iterator[Frame]] = field(repr=False)
    #: Provenance and conversion notes (source files, camera, MANO handling, task text, ...).
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def stamps_ns(self) -> NDArray[np.int64]:
        return np.array([p.stamp_ns for p in self.poses], dtype=np.int64)

    def frames(self) -> Iterator[Frame]:
        """The images, decoded or copied one at a time; checked against the ground-truth rows."""
        count = 0
        for frame in self.read_frames():
            if count >= len(self.poses):
                raise InputError(
                    f"more frames than ground-truth rows ({len(self.poses)})", source=self.name, index=count
                )
            if frame.stamp_ns != self.poses[count].stamp_ns:
                raise InputError(
                    "frame stamp differs from its ground-truth row", source=self.name, index=count
                )
            yield frame
            count += 1
        if count != len(self.poses):
            raise InputError(
                f"only {count} frames for {len(self.poses)} ground-truth rows", source=self.name, index=count
            )

    def __iter__(self) -> Iterator[tuple[Frame, FramePoses]]:
        for i, frame in enumerate(self.frames()):
            yield frame, self.poses[i]


class SequenceLoader(Protocol):
    """A dataset reader: options (MANO files, stream, ...) are given to the loader's constructor."""

    dataset: str

    def list_sequences(self, root: str | Path) -> list[str]:
        """Names of the sequences under `root`, sorted (what `load` accepts)."""
        ...

    def load(self, root: str | Path, name: str, *, camera: str | int | None = None) -> Sequence:
        """One sequence; `camera` picks a view or stream where the dataset has several."""
        ...


# -- small readers with errors that name the file and field -------------------------------------


def need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputError(f"missing {what} directory", source=path)
    return path


def read_json(data: bytes | Path, source: str | Path) -> Any:
    try:
        raw = data.read_bytes() if isinstance(data, Path) else data
        return json.loads(raw)
    except OSError as err:
        raise InputError(f"cannot read: {err}", source=source) from err
    except ValueError as err:
        raise InputError(f"not valid JSON: {err}", source=source) from err


def load_npy(path: Path) -> Any:
    """An `.npy` file; pickled object arrays (dicts saved with np.save) via the restricted unpickler."""
    try:
        with path.open("rb") as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            if dtype.hasobject:
                value = safe_unpickle(fp, path)
                return value.item() if isinstance(value, np.ndarray) and value.shape == () else value
            _check_npy_size(fp, shape, dtype, path)
        return np.load(path, allow_pickle=False)
    except OSError as err:
        raise InputError(f"cannot read: {err}", source=path) from err
    except ValueError as err:
        raise InputError(f"not a .npy file: {err}", source=path) from err


def _check_npy_size(fp: Any, shape: tuple[int, ...], dtype: np.dtype, path: Path) -> None:
    """numpy allocates the header's shape before reading: a short file must not declare a huge one."""
    needed = math.prod(shape) * dtype.itemsize
    here = fp.tell()
    held = fp.seek(0, io.SEEK_END) - here
    if needed > held:
        raise InputError(
            f"the header declares {shape} × {dtype.itemsize} bytes = {needed} bytes, the file holds {held}",
            source=path,
        )


def safe_unpickle(data: Any, source: str | Path) -> Any:
    """Unpickle dicts / lists of numpy arrays (Python 2 pickles too) from bytes or a binary file.

    Through `restricted_unpickle`: no code runs, and memory stays within a budget from the size.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        return restricted_unpickle(stream)
    except UnsafePickleError as err:
        raise InputError(
            f"refusing to load {err}: a data file may hold only numpy data", source=source
        ) from err
    except PickleBudgetError as err:
        raise InputError(f"refusing to load: {err}", source=source) from err
    except pickle.UnpicklingError as err:  # restricted_unpickle raises nothing else
        raise InputError(f"cannot read pickle: {err}", source=source) from err


def get_field(container: Any, key: str, source: str | Path, *, shape: tuple[int, ...] | None = None) -> F64:
    """`container[key]` as float64, with the expected trailing shape; InputError naming the field."""
    try:
        value = container[key]
    except (KeyError, IndexError, TypeError):
        raise InputError("missing field", source=source, field=key) from None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"not numeric: {err}", source=source, field=key) from err
    if shape is not None:
        tail = array.shape[len(array.shape) - len(shape) :] if len(array.shape) >= len(shape) else ()
        if tuple(tail) != shape and array.size == math.prod(shape):
            array = array.reshape(shape)
        elif tuple(tail) != shape:
            raise InputError(
                f"expected shape (..., {', '.join(map(str, shape))}), got {array.shape}",
                source=source,
                field=key,
            )
    return array


def load_optional_mano(mano_dir: str | Path | None) -> dict[str, ManoModel] | None:
    return None if mano_dir is None else load_mano(mano_dir)


def stamp_ns(index: int, fps: float) -> int:
    """Stamp of frame `index` for datasets without per-frame times (relative to the first frame)."""
    return round(index * 1e9 / fps)


def decode_to_rgb(data: bytes, source: str | Path) -> NDArray[np.uint8]:
    from vidihand_ros.imaging import CorruptImageError, decode_rgb

    try:
        return decode_rgb(data, "jpeg")
    except CorruptImageError as err:
        raise InputError(str(err), source=source) from err


def jpeg_size(data: bytes, source: str | Path) -> tuple[int, int]:
    from vidihand_ros.imaging import CorruptImageError, jpeg_info

    try:
        info = jpeg_info(data)
    except CorruptImageError as err:
        raise InputError(str(err), source=source) from err
    return info.width, info.height


def jpeg_frame(
    data: bytes, stamp: int, frame_id: str, camera: CameraModel, index: int, source: Path | str
) -> Frame:
    """A compressed frame (copied into datasets without re-encoding)."""
    width, height = jpeg_size(data, source)
    return Frame(stamp, frame_id, "jpeg", width, height, data=data, camera=camera, index=index)


# -- camera geometry ---------------------------------------------------------------------------


def fit_camera(camera: CameraModel, width: int, height: int) -> CameraModel:
    """The calibration for an image of `width`×`height` (calibrations give their own size).

    Downscaled copies of a dataset (e.g. ARCTIC's cropped ego images at 0.3×) keep the lens model;
    only K scales, with pixel centres at integer coordinates. Distortion acts on normalised
    coordinates and is unchanged.
    """
    if not camera.width or not camera.height or (camera.width, camera.height) == (width, height):
        return CameraModel(camera.K, width, height, camera.distortion_model, camera.D)
    K = scale_intrinsics(camera.K, width / camera.width, height / camera.height)
    return CameraModel(K, width, height, camera.distortion_model, camera.D)


def project_points(points: ArrayLike, camera: CameraModel) -> F64:
    """Camera-frame points (..., 3) → pixels (..., 2) through K and the lens model; NaN behind the camera.

    Models: "" / "none" (pinhole), "plumb_bob" / "rational_polynomial" (OpenCV radial-tangential,
    4, 5, 8 or 12 coefficients), "equidistant" (Kannala-Brandt, 4), "fisheye624" (Meta's
    FISHEYE624 as the hand_tracking_toolkit evaluates it: arctan projection, 6 radial, 2
    tangential and 4 thin-prism coefficients).
    """
    p = np.asarray(points, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    model = camera.distortion_model.strip().lower()
    D = camera.D
    with np.errstate(invalid="ignore", divide="ignore"):
        if model == FISHEYE624:
            u, v = _fisheye624(x, y, z, D)
        else:
            a, b = x / z, y / z
            if model in ("", "none") or not np.any(D):
                u, v = a, b
            elif model in ("plumb_bob", "rational_polynomial"):
                u, v = _radtan(a, b, D)
            elif model == "equidistant":
                u, v = _equidistant(a, b, D)
            else:
                raise InputError(
                    f"cannot project through distortion model {camera.distortion_model!r}",
                    field="distortion_model",
                )
        K = camera.K
        uv = np.stack([K[0, 0] * u + K[0, 1] * v + K[0, 2], K[1, 1] * v + K[1, 2]], axis=-1)
    uv[~(z > 0)] = np.nan
    return uv


def _radtan(a: F64, b: F64, D: F64) -> tuple[F64, F64]:
    if D.size not in (4, 5, 8, 12):
        raise InputError(f"radial-tangential model with {D.size} coefficients is not supported", field="D")
    k = np.zeros(12)
    k[: D.size] = D
    k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4 = k
    r2 = a * a + b * b
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    u = a * radial + 2 * p1 * a * b + p2 * (r2 + 2 * a * a) + s1 * r2 + s2 * r2 * r2
    v = b * radial + p1 * (r2 + 2 * b * b) + 2 * p2 * a * b + s3 * r2 + s4 * r2 * r2
    return u, v


def _equidistant(a: F64, b: F64, D: F64) -> tuple[F64, F64]:
    if D.size != 4:
        raise InputError(f"'equidistant' needs 4 coefficients, got {D.size}", field="D")
    r = np.hypot(a, b)
    theta = np.arctan(r)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (D[0] + t2 * (D[1] + t2 * (D[2] + t2 * D[3]))))
    scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
    return a * scale, b * scale


def _fisheye624(x: F64, y: F64, z: F64, D: F64) -> tuple[F64, F64]:
    if D.size != 12:
        raise InputError(f"'{FISHEYE624}' needs 12 coefficients, got {D.size}", field="D")
    k1, k2, k3, k4, k5, k6, p1, p2, s1, s2, s3, s4 = D
    r = np.hypot(x, y)
    theta = np.arctan2(r, z)
    scale = theta / np.maximum(r, 2.0**-128)
    a, b = x * scale, y * scale
    t2 = np.minimum(a * a + b * b, np.pi**2)
    radial = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * (k4 + t2 * (k5 + t2 * k6)))))
    u, v = a * radial, b * radial
    r2 = u * u + v * v
    uv = u * v
    u_t = u + 2 * p2 * uv + p1 * (r2 + 2 * u * u) + s1 * r2 + s2 * r2 * r2
    v_t = v + 2 * p1 * uv + p2 * (r2 + 2 * v * v) + s3 * r2 + s4 * r2 * r2
    return u_t, v_t


def in_view(uv: ArrayLike, width: int, height: int) -> bool:
    """ARCTIC's visibility rule: the wrist and at least 3 joints project inside the image."""
    pts = np.asarray(uv, dtype=np.float64)
    inside = (
        (pts[:, 0] >= -0.5) & (pts[:, 0] < width - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] < height - 0.5)
    )
    return bool(inside[0] and inside.sum() >= 3)


def rigid_inverse(T: ArrayLike) -> F64:
    """Inverse of rigid transforms (..., 4, 4)."""
    M = np.asarray(T, dtype=np.float64)
    R = np.swapaxes(M[..., :3, :3], -1, -2)
    out = np.zeros((*M.shape[:-2], 4, 4))
    out[..., :3, :3] = R
    out[..., :3, 3] = -np.einsum("...ab,...b->...a", R, M[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def make_hand(
    camera: CameraModel,
    *,
    presence: float = 1.0,
    global_orient: ArrayLike | None = None,
    hand_pose: ArrayLike | None = None,
    betas: ArrayLike | None = None,
    transl: ArrayLike | None = None,
    joints_3d: ArrayLike | None = None,
    keypoints_2d: ArrayLike | None = None,
) -> HandPose:
    """A ground-truth HandPose: NaN where not given; 2D keypoints projected from the joints.

    `presence` None-safe: callers decide visibility. `wrist_orient` equals MANO's global
    orientation (the wrist frame of MANO), and stays NaN for datasets without MANO.
    """
    hand = HandPose(presence=float(presence))
    if global_orient is not None:
        hand.global_orient = np.asarray(global_orient, dtype=np.float32).reshape(3)
        hand.wrist_orient = hand.global_orient.copy()
    if hand_pose is not None:
        hand.hand_pose = np.asarray(hand_pose, dtype=np.float32).reshape(15, 3)
    if betas is not None:  # fewer than 10 betas: MANO's missing components are zero
        b = np.asarray(betas, dtype=np.float32).ravel()[: hand.betas.size]
        hand.betas = np.pad(b, (0, hand.betas.size - b.size))
    if transl is not None:
        hand.transl = np.asarray(transl, dtype=np.float32).reshape(3)
    if joints_3d is not None:
        hand.joints_3d = np.asarray(joints_3d, dtype=np.float32).reshape(NUM_JOINTS, 3)
    if keypoints_2d is not None:
        hand.keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32).reshape(NUM_JOINTS, 2)
    elif np.all(np.isfinite(hand.joints_3d)):
        hand.keypoints_2d = project_points(hand.joints_3d, camera).astype(np.float32)
    return hand


def visible_presence(hand: HandPose, camera: CameraModel) -> float:
    """1.0 when the hand passes `in_view`, else 0.0; 1.0 when neither joints nor keypoints are known.

    A wrist behind the camera projects to NaN and fails `in_view`.
    """
    known = np.all(np.isfinite(hand.joints_3d)) or np.any(np.isfinite(hand.keypoints_2d))
    if not known:
        return 1.0
    return 1.0 if in_view(hand.keypoints_2d, camera.width, camera.height) else 0.0


def gt_arrays(sequence: Sequence) -> dict[str, np.ndarray]:
    """The sequence's ground truth as stacked arrays named like the dataset keys (no images).

    `{side}_hand_valid` means what it means in a written dataset (`dataset.validity`): the hand's
    joints, 2D keypoints and wrist are all finite. A frame without annotation is NaN (presence
    too: unknown, not absent) and not valid; an annotated hand lacking any of those (joints
    without MANO files) is not valid either, though its other values (presence, MANO, keypoints)
    are kept.
    """
    n = len(sequence)
    out: dict[str, np.ndarray] = {
        "stamp_ns": sequence.stamps_ns,
        "camera0_intrinsics": np.stack([c.K for c in sequence.cameras]).astype(np.float32)
        if n
        else np.zeros((0, 3, 3), np.float32),
    }
    for side in HAND_SIDES:
        presence = np.full(n, np.nan, dtype=np.float32)  # not annotated: unknown, not absent
        fields = {name: np.full((n, *shape), np.nan, dtype=np.float32) for name, shape, _ in HAND_FIELDS}
        for i, poses in enumerate(sequence.poses):
            hand = poses.hand(side)
            if hand is None:
                continue
            presence[i] = hand.presence
            for name in fields:
                source = {"wrist_pos": "wrist_position", "wrist_rot_axis_angle": "wrist_orient"}.get(
                    name, name
                )
                fields[name][i] = getattr(hand, source)
        out[hand_key(side, "valid")] = usable(
            fields["joints_3d"], fields["keypoints_2d"], fields["wrist_pos"]
        )
        out[hand_key(side, "presence")] = presence
        out.update({hand_key(side, name): value for name, value in fields.items()})
    return out
