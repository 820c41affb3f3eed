"""Ground-truth datasets on disk → the training inputs of ViDiHand, read lazily.

A dataset with ground-truth poses is cut into windows of the model's length and resized as the
estimator does at inference: `GroundTruthWindows` (frames, K, per-hand rows), `OverlayWindows`
(for adaptation) and `window_targets` / `precompute_window_examples` (for decoder training).
Details: docs/model.md, "Training windows".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY, LOWDIM_CHUNK_ROWS, hand_key
from vidihand_ros.errors import InputError
from vidihand_ros.geometry.resize import scale_intrinsics, scale_pixels
from vidihand_ros.imaging import resize_rgb
from vidihand_ros.model.config import ViDiHandConfig
from vidihand_ros.training.config import Stage
from vidihand_ros.training.overlay import HandTrack, OverlayWindow
from vidihand_ros.types import HAND_SIDES

if TYPE_CHECKING:
    from vidihand_ros.mano.layer import ManoLayer
    from vidihand_ros.model.backbone import Backbone
    from vidihand_ros.training.decoder import ExampleDirectory
    from vidihand_ros.training.losses import DecoderTargets

__all__ = [
    "MANO_FIELDS",
    "GroundTruthWindows",
    "OverlayWindows",
    "WindowData",
    "WindowSpan",
    "precompute_window_examples",
    "window_starts",
    "window_targets",
]

#: Per-hand fields a window carries (`<side>_hand_<field>` keys).
HAND_ROW_FIELDS = (
    "valid",
    "presence",
    "global_orient",
    "hand_pose",
    "betas",
    "transl",
    "joints_3d",
    "keypoints_2d",
)
#: The MANO parameters the mesh overlay needs.
MANO_FIELDS = ("global_orient", "hand_pose", "betas", "transl")
INTRINSICS_KEY = "camera0_intrinsics"
EXAMPLES_MANIFEST = "examples.json"


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start frames of the windows of an episode of `length` frames: every `stride` frames, plus a
    last window ending at the episode's end; none when the episode is shorter than a window."""
    if length < window:
        return []
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


@dataclass(frozen=True)
class WindowSpan:
    """Frames `start … start + window − 1` of episode `episode` (frame numbers within the episode)."""

    episode: int
    start: int


@dataclass
class WindowData:
    """One window at the model's image size.

    Attributes:
        span: where it comes from.
        frames: (T, H, W, 3) uint8 RGB, resized.
        K: (3, 3) intrinsics of the resized frames (the window's first frame), None if not stored.
        hands: per side, the `HAND_ROW_FIELDS` arrays over the window (keypoints scaled).
    """

    span: WindowSpan
    frames: NDArray[np.uint8]
    K: NDArray[np.float64] | None
    hands: dict[str, dict[str, NDArray[Any]]]

    def present(self, side: str, min_presence: float = 0.5) -> NDArray[np.bool_]:
        """(T,) frames where the `side` hand is valid (annotated, pose finite) and present."""
        rows = self.hands[side]
        presence = np.nan_to_num(rows["presence"].astype(np.float32), nan=0.0)
        return np.asarray(rows["valid"], dtype=bool) & (presence >= min_presence)


class GroundTruthWindows(Sequence[WindowData]):
    """The windows of a ground-truth dataset, read lazily.

    Args:
        path: the dataset (directory or `.zarr.zip`).
        window: frames per window (the model's `config.window`).
        image_size: (H, W) the frames are resized to (the model's `config.image_size`).
        stride: frames between window starts (default: `window`, no overlap).
        require: per-hand fields that must hold ground truth somewhere in the dataset (checked on
            open, so that a dataset without poses fails at once with a clear message).
        need_intrinsics: fail (on open, and for any window without K) when K is not stored.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        window: int,
        image_size: tuple[int, int],
        stride: int | None = None,
        require: Sequence[str] = ("keypoints_2d",),
        need_intrinsics: bool = False,
    ) -> None:
        stride = window if stride is None else stride
        if window < 1 or stride < 1:
            raise InputError(f"window and stride must be at least 1, got {window} and {stride}")
        self.path = Path(path)
        self.reader = DatasetReader(self.path)
        self.window = int(window)
        self.stride = int(stride)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.need_intrinsics = need_intrinsics
        if IMAGE_KEY not in self.reader.keys:
            raise InputError(f"the dataset has no images ({IMAGE_KEY})", source=self.path)
        self._check_poses(require)
        if need_intrinsics and INTRINSICS_KEY not in self.reader.keys:
            raise InputError(f"the dataset has no camera intrinsics ({INTRINSICS_KEY})", source=self.path)
        self.spans = [
            WindowSpan(i, s)
            for i in range(self.reader.num_episodes)
            for s in window_starts(self._length(i), self.window, self.stride)
        ]
        if not self.spans:
            raise InputError(
                f"no episode has the {self.window} frames of one window "
                f"(longest: {max((self._length(i) for i in range(self.reader.num_episodes)), default=0)})",
                source=self.path,
            )
        stored = self.reader.array(IMAGE_KEY).shape
        self.source_size = (int(stored[1]), int(stored[2]))  # (H, W) of the stored images
        if need_intrinsics:
            self._intrinsics(self.spans[0])  # fail on open, not at the first training step

    def _length(self, episode: int) -> int:
        start, stop = self.reader.bounds(episode)
        return stop - start

    def _check_poses(self, require: Sequence[str]) -> None:
        """Raise unless some frame has a valid hand with every required field finite.

        The reader narrows valid masks of older layouts (`DatasetReader.array`), so a NaN row never
        counts, whichever version wrote the dataset.
        """
        keys = set(self.reader.keys)
        fields = ["valid", *require]
        missing = [hand_key(s, f) for s in HAND_SIDES for f in fields if hand_key(s, f) not in keys]
        if missing:
            raise InputError(
                f"the dataset holds no ground-truth poses (missing keys: {', '.join(missing[:4])}…)",
                source=self.path,
            )
        block = 16 * LOWDIM_CHUNK_ROWS
        n = self.reader.num_frames
        for side in HAND_SIDES:
            for start in range(0, n, block):  # stops at the first block with a usable hand
                stop = min(start + block, n)
                ok = np.asarray(self.reader.array(hand_key(side, "valid"))[start:stop], dtype=bool)
                for f in require:
                    values = np.asarray(self.reader.array(hand_key(side, f))[start:stop])
                    ok &= np.isfinite(values.reshape(len(values), -1)).all(axis=1)
                if ok.any():
                    return
        raise InputError(
            "the dataset holds no ground-truth poses: no frame has an annotated hand with "
            f"{', '.join(require)} (is it a frames-only dataset? ground truth comes from `vidihand import`)",
            source=self.path,
        )

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, index: int) -> WindowData:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.load(self.spans[index])

    def __iter__(self) -> Iterator[WindowData]:
        for span in self.spans:
            yield self.load(span)

    def _scale(self) -> tuple[float, float]:
        (h0, w0), (h, w) = self.source_size, self.image_size
        return w / w0, h / h0

    def _intrinsics(self, span: WindowSpan) -> NDArray[np.float64] | None:
        if INTRINSICS_KEY not in self.reader.keys:
            return None
        row = self.reader.bounds(span.episode)[0] + span.start
        K = np.asarray(self.reader.array(INTRINSICS_KEY)[row], dtype=np.float64)
        if not np.isfinite(K).all():
            if self.need_intrinsics:
                raise InputError(
                    f"episode {span.episode}, frame {span.start}: no camera intrinsics stored",
                    source=self.path,
                )
            return None
        return scale_intrinsics(K, *self._scale())

    def load(self, span: WindowSpan) -> WindowData:
        """Read and resize one window."""
        first = self.reader.bounds(span.episode)[0] + span.start
        rows = slice(first, first + self.window)
        h, w = self.image_size
        frames = np.stack(
            [resize_rgb(self.reader.frame(span.episode, span.start + t), w, h) for t in range(self.window)]
        )
        sx, sy = self._scale()
        hands: dict[str, dict[str, NDArray[Any]]] = {}
        for side in HAND_SIDES:
            part: dict[str, NDArray[Any]] = {}
            for f in HAND_ROW_FIELDS:
                key = hand_key(side, f)
                if key in self.reader.keys:
                    part[f] = np.asarray(self.reader.array(key)[rows])
            valid = part.setdefault("valid", np.zeros(self.window, bool)).astype(bool)
            part.setdefault("presence", np.full(self.window, np.nan, np.float32))
            if "keypoints_2d" in part and (sx, sy) != (1.0, 1.0):
                part["keypoints_2d"] = scale_pixels(part["keypoints_2d"].astype(np.float32), sx, sy)
            for f, array in part.items():  # a frame without a valid hand carries no ground truth
                if f not in ("valid", "presence") and array.dtype.kind == "f":
                    array[~valid] = np.nan
            hands[side] = part
        return WindowData(span=span, frames=frames, K=self._intrinsics(span), hands=hands)


class OverlayWindows(Sequence[OverlayWindow]):
    """Adaptation windows (`OverlayWindow`) of a ground-truth dataset for one overlay stage.

    Stage "skeleton" draws the stored 2D keypoints; stage "mesh" draws MANO meshes computed from
    the stored MANO parameters with the user's MANO files (`mano_dir`, required). A hand is drawn
    in the frames where it is annotated with presence ≥ `min_presence` and its stage's inputs are
    finite — also where it is occluded, which is the point of the objective.
    """

    def __init__(
        self,
        path: str | Path,
        config: ViDiHandConfig,
        *,
        stage: Stage = "skeleton",
        stride: int | None = None,
        mano_dir: str | Path | None = None,
        min_presence: float = 0.5,
    ) -> None:
        if stage not in ("skeleton", "mesh"):
            raise InputError(f"stage must be 'skeleton' or 'mesh', not {stage!r}")
        if stage == "mesh" and mano_dir is None:
            raise InputError(
                "the mesh stage draws MANO meshes and needs the MANO files: pass --mano-dir "
                "(mano_dir=) with MANO_RIGHT.pkl and MANO_LEFT.pkl"
            )
        self.stage: Stage = stage
        self.min_presence = min_presence
        self.windows = GroundTruthWindows(
            path,
            window=config.window,
            image_size=config.image_size,
            stride=stride,
            require=("keypoints_2d",) if stage == "skeleton" else MANO_FIELDS,
            need_intrinsics=stage == "mesh",
        )
        self._mano: dict[str, ManoLayer] = {}
        if stage == "mesh":
            from vidihand_ros.mano.layer import load_mano_layers

            assert mano_dir is not None
            self._mano = load_mano_layers(mano_dir)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> OverlayWindow:  # type: ignore[override]
        return self.overlay(self.windows[index])

    def __iter__(self) -> Iterator[OverlayWindow]:
        for data in self.windows:
            yield self.overlay(data)

    def overlay(self, data: WindowData) -> OverlayWindow:
        hands = []
        for side in HAND_SIDES:
            rows = data.hands[side]
            present = data.present(side, self.min_presence)
            if self.stage == "skeleton":
                kp = rows.get("keypoints_2d")
                if kp is None:
                    continue
                present &= np.isfinite(kp).any(axis=(1, 2))
                track = HandTrack(side=side, keypoints=kp.astype(np.float64), present=present)
            else:
                if any(f not in rows for f in MANO_FIELDS):
                    continue
                present &= np.all(
                    [np.isfinite(rows[f].reshape(len(present), -1)).all(axis=1) for f in MANO_FIELDS], axis=0
                )
                if not present.any():
                    continue
                layer = self._mano[side]
                track = HandTrack(
                    side=side,
                    vertices=mano_vertices(layer, rows, present),
                    faces=layer.faces,
                    present=present,
                )
            if present.any():
                hands.append(track)
        return OverlayWindow(frames=data.frames, hands=hands, K=data.K)


def mano_vertices(
    layer: ManoLayer, rows: dict[str, NDArray[Any]], present: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """(T, 778, 3) camera-frame MANO vertices of the frames in `present` (NaN elsewhere)."""
    import torch

    t = len(present)
    out = np.full((t, layer.mano.v_template.shape[0], 3), np.nan)
    idx = np.flatnonzero(present)
    if idx.size:
        params = [torch.from_numpy(np.asarray(rows[f][idx], np.float32)) for f in MANO_FIELDS]
        with torch.no_grad():
            out[idx] = layer(*params).vertices.double().numpy()
    return out


# --------------------------------------------------------------------------------------------------
# Decoder training


def window_targets(data: WindowData) -> DecoderTargets:
    """`DecoderTargets` (batch of one window) from the stored poses: a hand without a valid row has
    NaN geometry; its presence is the stored one (0: annotated absent, NaN: unknown, as
    `DecoderTargets.from_frame_poses` makes a `None` hand)."""
    import torch

    from vidihand_ros.training.losses import DecoderTargets

    t = len(data.frames)
    shapes = {
        "global_orient": (3,),
        "hand_pose": (15, 3),
        "betas": (10,),
        "joints_3d": (21, 3),
        "keypoints_2d": (21, 2),
    }
    parts: dict[str, list[NDArray[np.float32]]] = {name: [] for name in ("presence", *shapes)}
    for side in HAND_SIDES:
        rows = data.hands[side]
        # Presence is known wherever it is finite: 0 on an annotated absent hand, NaN where unknown.
        parts["presence"].append(np.asarray(rows["presence"], dtype=np.float32))
        for name, shape in shapes.items():
            value = rows.get(name)
            parts[name].append(
                np.full((t, *shape), np.nan, np.float32) if value is None else value.astype(np.float32)
            )
    tensors = {name: torch.from_numpy(np.stack(v, axis=1))[None] for name, v in parts.items()}
    return DecoderTargets(**tensors)


def precompute_window_examples(
    backbone: Backbone,
    windows: GroundTruthWindows,
    directory: str | Path,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ExampleDirectory:
    """Run the frozen backbone once per window and write `example-XXXXXXX.safetensors` files.

    The feature noise of window i is seeded by (seed, i), so a file does not depend on which
    others were computed with it; existing files are kept, which makes an interrupted precompute
    resumable. `examples.json` records what the files were computed from; a directory holding
    examples of other windows (dataset, window, stride, size, seed) is refused.
    """
    import torch

    from vidihand_ros.training.decoder import ExampleDirectory, precompute_examples

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "dataset": str(windows.path.resolve()),
        "windows": len(windows),
        "window": windows.window,
        "stride": windows.stride,
        "image_size": list(windows.image_size),
        "seed": seed,
        "tau": backbone.config.tau,
        "layer": backbone.config.feature_layer,
    }
    manifest_path = out / EXAMPLES_MANIFEST
    if manifest_path.is_file():
        saved = json.loads(manifest_path.read_text(encoding="utf-8"))
        if saved != manifest:
            changed = sorted(k for k in manifest if saved.get(k) != manifest[k])
            raise InputError(
                f"holds decoder examples of other windows (differs in {', '.join(changed)}); "
                "use a new run directory",
                source=out,
            )
    else:
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    backbone.eval()
    for i, span in enumerate(windows.spans):
        path = out / f"example-{i:07d}.safetensors"
        if not path.is_file():
            data = windows.load(span)
            assert data.K is not None  # need_intrinsics
            video = torch.from_numpy(data.frames).permute(3, 0, 1, 2)[None].to(backbone.device)
            K = torch.from_numpy(data.K).float()[None]
            generator = torch.Generator(device=backbone.device).manual_seed(seed * 1_000_003 + i)
            (example,) = precompute_examples(backbone, video, K, window_targets(data), generator=generator)
            example.save(path)
        if progress is not None:
            progress(i + 1, len(windows))
    return ExampleDirectory(out)
