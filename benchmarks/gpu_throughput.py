"""ViDiHand end-to-end throughput on one GPU: JPEG bytes → poses.

The full-size architecture (Wan2.1-VACE-1.3B + the default decoder) with random weights, bf16,
81-frame 480×672 windows. Per batch: JPEG decode on the GPU (nvjpeg through torchvision when
available, else imagecodecs on the CPU) → VAE encode → blocks 0..15 at τ = 0.7 → decoder (MANO
from synthetic files, WLS translation) → poses. Printed in one table, ratios against the first
row measured in the same process:

- the configured run (truncated to block 15) per batch size,
- the same with all 30 blocks executed (what truncation saves),
- eager vs `torch.compile` of the transformer blocks.

Run on a GPU machine from the repository root (needs the [model] extra and a CUDA torch):
    python -m benchmarks.gpu_throughput [--batches 1 2 4] [--iters 5] [--compile]
A CPU smoke run with the tiny config checks the script itself:
    python -m benchmarks.gpu_throughput --config tiny --device cpu --batches 1 --iters 1
Target (issue #3): ≥ 100 frames/s on one H100 (paper: 5.5 fps on four A100s).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidihand_ros.imaging import encode_jpeg
from vidihand_ros.mano.layer import load_mano_layers
from vidihand_ros.model.config import preset
from vidihand_ros.model.features import Features
from vidihand_ros.model.flow import add_noise, shift_sigma
from vidihand_ros.model.vidihand import ViDiHand, build_model
from vidihand_ros.testing.synthetic_mano import write_synthetic_mano_dir


@dataclass
class Row:
    name: str
    batch: int
    frames_per_s: float
    peak_gib: float
    stages_ms: dict[str, float]


def jpeg_windows(batch: int, frames: int, height: int, width: int) -> list[list[bytes]]:
    """Distinct JPEG frames (a moving gradient), as a camera driver would deliver them."""
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for b in range(batch):
        window = []
        for t in range(frames):
            phase = (t + 7 * b) / frames
            rgb = np.stack(
                [(x + 40 * t) % 256, (y + 13 * b) % 256, np.full_like(x, int(255 * phase))], axis=-1
            )
            window.append(encode_jpeg(rgb.astype(np.uint8), 90))
        out.append(window)
    return out


def decoder_for(device: torch.device) -> Callable[[list[bytes]], torch.Tensor]:
    """JPEG bytes → (T, H, W, 3) uint8 on `device`: nvjpeg when torchvision has it, else the CPU."""
    try:
        from torchvision.io import decode_jpeg

        if device.type == "cuda":

            def gpu(frames: list[bytes]) -> torch.Tensor:
                data = [torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in frames]
                return torch.stack(decode_jpeg(data, device=device)).permute(0, 2, 3, 1)

            return gpu
    except ImportError:
        pass
    import imagecodecs

    def cpu(frames: list[bytes]) -> torch.Tensor:
        return torch.from_numpy(np.stack([imagecodecs.jpeg8_decode(f) for f in frames])).to(device)

    return cpu


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(
    model: ViDiHand,
    windows: list[list[bytes]],
    K: torch.Tensor,
    decode: Callable[[list[bytes]], torch.Tensor],
    layer: int,
) -> dict[str, float]:
    """One batch through every stage; returns milliseconds per stage."""
    device = model.backbone.device
    times: dict[str, float] = {}
    clock = time.perf_counter

    def mark(name: str, start: float) -> float:
        synchronize(device)
        now = clock()
        times[name] = (now - start) * 1e3
        return now

    t = clock()
    video = torch.stack([decode(w) for w in windows]).permute(0, 4, 1, 2, 3)  # B,3,T,H,W uint8
    t = mark("jpeg decode", t)
    x = video.float().div_(127.5).sub_(1.0)
    latents = model.backbone.encode(x)
    context = model.backbone.context(x, latents)
    t = mark("vae encode", t)
    cfg = model.config.backbone
    sigma = shift_sigma(cfg.tau, cfg.shift).expand(len(windows)).to(device)
    noisy = add_noise(latents, torch.randn_like(latents), sigma)
    hidden = model.backbone.hidden_states(noisy, sigma, context, layer=layer)
    t = mark("transformer", t)
    pt, ph, pw = cfg.patch_size
    grid = (latents.shape[2] // pt, latents.shape[3] // ph, latents.shape[4] // pw)
    features = Features(
        tokens=hidden.reshape(len(windows), *grid, hidden.shape[-1]),
        num_frames=int(video.shape[2]),
        image_size=(int(video.shape[3]), int(video.shape[4])),
        patch=cfg.patch_size,
        vae_scale=cfg.vae_scale,
    )
    output = model.decoder(features, K)
    output.joints_3d.float().cpu()  # poses on the host, as a client receives them
    mark("decoder + MANO + translation", t)
    return times


def measure(
    name: str,
    model: ViDiHand,
    batch: int,
    iters: int,
    layer: int,
    decode: Callable[[list[bytes]], torch.Tensor],
) -> Row:
    cfg = model.config
    height, width = cfg.image_size
    device = model.backbone.device
    windows = jpeg_windows(batch, cfg.window, height, width)
    K = torch.tensor([[500.0, 0, width / 2], [0, 500.0, height / 2], [0, 0, 1]], device=device).expand(
        batch, 3, 3
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"),
    ):
        run_once(model, windows, K, decode, layer)  # warm-up (and compilation)
        totals: dict[str, float] = {}
        for _ in range(iters):
            for stage, ms in run_once(model, windows, K, decode, layer).items():
                totals[stage] = totals.get(stage, 0.0) + ms / iters
    seconds = sum(totals.values()) / 1e3
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return Row(name, batch, batch * cfg.window / seconds, peak, totals)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="wan21-vace-1.3b", help="model preset (default: the full size)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="windows per batch")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile of the transformer blocks"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    config = preset(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        mano = load_mano_layers(write_synthetic_mano_dir(Path(tmp)))
    model = build_model(config, mano=mano, device=device, seed=0)
    if device.type == "cuda":
        model.decoder.to(device)
    decode = decoder_for(device)
    layer = config.backbone.feature_layer
    last = config.backbone.num_layers - 1
    print(
        f"{config.name} on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}: "
        f"{config.window}×{config.image_size[0]}×{config.image_size[1]} windows, bf16={device.type == 'cuda'}"
    )
    rows = [measure(f"blocks 0..{layer}, eager", model, b, args.iters, layer, decode) for b in args.batches]
    rows.append(measure(f"all {last + 1} blocks, eager", model, args.batches[-1], args.iters, last, decode))
    if args.compile:
        for block in model.backbone.transformer.blocks:
            block.compile()  # in place, so the backbone's own block loop runs the compiled blocks
        rows.append(
            measure(f"blocks 0..{layer}, torch.compile", model, args.batches[-1], args.iters, layer, decode)
        )
    base = rows[0].frames_per_s
    stages = list(rows[0].stages_ms)
    header = ["run", "batch", "frames/s", "vs first", "peak GiB", *[f"{s} ms" for s in stages]]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        cells = [
            r.name,
            str(r.batch),
            f"{r.frames_per_s:.1f}",
            f"{r.frames_per_s / base:.2f}×",
            f"{r.peak_gib:.1f}",
        ]
        cells += [f"{r.stages_ms.get(s, float('nan')):.1f}" for s in stages]
        print("| " + " | ".join(cells) + " |")
    best = max(r.frames_per_s for r in rows)
    if config.name == "wan21-vace-1.3b":
        print(f"\ntarget ≥ 100 frames/s on one H100: {'met' if best >= 100 else 'NOT met'} (best {best:.1f})")


if __name__ == "__main__":
    main()
