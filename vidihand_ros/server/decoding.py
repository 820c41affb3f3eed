"""Where a window's JPEG frames are decoded: on the GPU (nvJPEG through torchvision) when serving on
CUDA, else by the estimator itself on the CPU (`Frame.rgb()`).

A GPU box serving many robots decodes 81-frame windows for every client; on the CPU that is the
bottleneck before the model is. The decoded pixels are put where `Frame.rgb()` finds them, so
estimators need no change and the JPEG bytes stay as they came. Selecting is separate from
decoding so the choice can be tested on machines without a GPU.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from vidihand_ros.types import Frame, Window

__all__ = ["CpuDecoder", "FrameDecoder", "GpuJpegDecoder", "choose_decoder", "cpu_decoder", "gpu_available"]

log = logging.getLogger(__name__)


class FrameDecoder(Protocol):
    """Decodes what it can of a batch's frames before the estimator sees them."""

    name: str

    def prepare(self, windows: Sequence[Window]) -> None: ...


class CpuDecoder:
    """Nothing ahead of time: the estimator decodes each frame (`Frame.rgb()`) when it needs it."""

    name = "cpu"

    def prepare(self, windows: Sequence[Window]) -> None:
        pass


def cpu_decoder() -> CpuDecoder:
    return CpuDecoder()


class GpuJpegDecoder:
    """Every JPEG frame of the batch decoded in one `torchvision.io.decode_jpeg(device=...)` call."""

    name = "gpu"

    def __init__(self, device: str) -> None:
        self.device = device

    def prepare(self, windows: Sequence[Window]) -> None:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        frames = [f for w in windows for f in w.frames if f.is_jpeg and "_decoded" not in f.__dict__]
        unique: dict[int, Frame] = {id(f): f for f in frames}  # padding repeats a frame object
        if not unique:
            return
        todo = list(unique.values())
        data = [torch.frombuffer(bytearray(f.data or b""), dtype=torch.uint8) for f in todo]
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError as err:  # one bad frame: leave all to the CPU path, which names it
            log.warning("GPU JPEG decoding failed (%s); decoding on the CPU", err)
            return
        for frame, image in zip(todo, images, strict=True):
            rgb = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy(), dtype=np.uint8)
            if rgb.shape != (frame.height, frame.width, 3):
                continue  # let Frame.rgb() decode (and report) it
            frame.__dict__["_decoded"] = rgb  # where Frame's cached_property keeps the pixels


def gpu_available() -> bool:
    """torch with CUDA and torchvision both importable, and a CUDA device present."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_decoder(device: str, available: Callable[[], bool] = gpu_available) -> FrameDecoder:
    """The GPU decoder when serving on a CUDA device and it can run here, else the CPU path."""
    if device.startswith("cuda") and available():
        return GpuJpegDecoder(device)
    if device.startswith("cuda"):
        log.info("JPEG frames are decoded on the CPU: torch with CUDA and torchvision are not both here")
    return cpu_decoder()
