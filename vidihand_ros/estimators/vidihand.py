"""ViDiHand as a PoseEstimator: `vidihand convert --estimator vidihand --checkpoint DIR --mano-dir M`.

Whole frames go in (no hand detector): each window is resized to the model's image size with K
scaled to match, run through backbone + decoder as one batch, and the keypoints are mapped back to
the source pixels. Windows must have the model's length (`info.window`, the default `--window`).
Importing this module imports no torch; `create` loads the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vidihand_ros import __version__
from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import EstimatorInfo
from vidihand_ros.geometry.resize import scale_intrinsics
from vidihand_ros.imaging import resize_rgb
from vidihand_ros.types import FramePoses, Window

if TYPE_CHECKING:
    import torch

    from vidihand_ros.model.vidihand import ViDiHand


class ViDiHandEstimator:
    """Implements PoseEstimator with an in-process ViDiHand model."""

    def __init__(
        self, model: ViDiHand, *, checkpoint_sha256: str = "", options: dict[str, object] | None = None
    ):
        self.model = model
        self._sha = checkpoint_sha256
        self._options = dict(options or {})

    @property
    def info(self) -> EstimatorInfo:
        return EstimatorInfo(
            "vidihand", __version__, self._sha, self._options, window=self.model.config.window
        )

    @property
    def device(self) -> torch.device:
        return self.model.backbone.device

    def estimate(self, windows: Sequence[Window]) -> list[list[FramePoses]]:
        import torch

        from vidihand_ros.model.decoder import to_frame_poses

        if not windows:
            return []
        height, width = self.model.config.image_size
        prepared = [self._prepare(window, width, height) for window in windows]
        clips = torch.from_numpy(np.stack([p[0] for p in prepared])).to(self.device)
        intrinsics = torch.from_numpy(np.stack([p[1] for p in prepared])).to(self.device, torch.float32)
        scales = [p[2] for p in prepared]
        output = self.model(clips.permute(0, 4, 1, 2, 3), intrinsics)  # (B, 3, T, H, W)
        stamps = [[f.stamp_ns for f in w.frames] for w in windows]
        frame_ids = [[f.frame_id for f in w.frames] for w in windows]
        results = to_frame_poses(output, stamps, frame_ids)
        for poses, (sx, sy) in zip(results, scales, strict=True):
            _to_source_pixels(poses, sx, sy)
        return results

    def _prepare(
        self, window: Window, width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        if len(window) != self.model.config.window:
            raise InputError(
                f"the vidihand model takes windows of {self.model.config.window} frames, got {len(window)} "
                f"(use --window {self.model.config.window})"
            )
        first = window.frames[0]
        if first.camera is None:
            raise InputError("the vidihand estimator needs intrinsics", index=first.index, field="K")
        sx, sy = width / first.width, height / first.height
        frames = [resize_rgb(f.rgb(), width, height) for f in window.frames]
        return np.stack(frames), scale_intrinsics(first.camera.K, sx, sy), (sx, sy)

    def close(self) -> None:
        pass


def _to_source_pixels(poses: list[FramePoses], sx: float, sy: float) -> None:
    """Undo the resize on 2D keypoints (pixel centres at integer coordinates, as in the dataset)."""
    scale = np.array([sx, sy], dtype=np.float32)
    for frame in poses:
        for hand in (frame.left, frame.right):
            if hand is not None:
                hand.keypoints_2d = (hand.keypoints_2d + 0.5) / scale - 0.5


def create(checkpoint: str = "", mano_dir: str = "", device: str = "", **unknown: str) -> ViDiHandEstimator:
    """Factory for the registry: string options as given on the command line."""
    if unknown:
        raise InputError(f"the vidihand estimator does not take options {sorted(unknown)}")
    if not checkpoint:
        raise InputError("the vidihand estimator needs --checkpoint DIR (see `vidihand model init`)")
    if not mano_dir:
        raise InputError("the vidihand estimator needs --mano-dir with MANO_RIGHT.pkl and MANO_LEFT.pkl")
    import torch

    from vidihand_ros.model.vidihand import checkpoint_sha256, load_model

    device = _device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(checkpoint, mano_dir=mano_dir, device=device)
    return ViDiHandEstimator(
        model,
        checkpoint_sha256=checkpoint_sha256(checkpoint),
        options={"checkpoint": checkpoint, "device": device, "config": model.config.name},
    )


def _device(name: str) -> str:
    """The `device` option as torch names it; an unknown or absent device is an InputError."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(
            f"vidihand option device={name!r} is not a torch device (e.g. cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"vidihand option device={name!r}: no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"vidihand option device={name!r}: only {torch.cuda.device_count()} CUDA devices"
            )
    elif device.type not in ("cpu", "mps"):
        raise InputError(f"vidihand option device={name!r}: use cpu or cuda")
    return str(device)
