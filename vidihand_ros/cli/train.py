"""`vidihand train adapt|decoder`: train a model checkpoint on a ground-truth dataset.

    vidihand train adapt   --checkpoint CK --data GT.zarr [--stage skeleton|mesh] [--mano-dir M]
    vidihand train decoder --checkpoint CK --data GT.zarr --mano-dir M

Both read windows of the model's length from a dataset holding ground-truth poses (`vidihand
import`; see `training.windows`), train with resumable safetensors checkpoints under the run
directory (`--out`, default `CK.adapt-<stage>` / `CK.decoder` beside the checkpoint), and at the
end write the trained weights back into the model checkpoint (`--save-to` to write a copy
elsewhere). `adapt` trains the backbone's trainable part (VACE branch or LoRA) with the
hand-overlay objective; `decoder` precomputes the frozen backbone's features into
`RUN_DIR/examples/` once and trains the pose decoder on them.

A run directory that already holds checkpoints is continued only with `--resume` (otherwise the
command refuses to mix two runs); `--resume` on an empty one starts fresh. `--steps N` is the
step the run trains *to*, so a resumed run continues up to N.

The parser builds without torch: the training code is imported inside `run_adapt`/`run_decoder`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from vidihand_ros.cli.options import add_command, non_negative_int, positive, positive_number
from vidihand_ros.errors import InputError

__all__ = ["add_parser", "run_adapt", "run_decoder"]

EPILOG = """\
examples:
  vidihand model init --config wan21-vace-1.3b --pretrained Wan2.1-VACE-1.3B-diffusers -o ck
  vidihand import arctic /data/arctic -o arctic.zarr --mano-dir mano
  vidihand train adapt --checkpoint ck --data arctic.zarr --stage skeleton --steps 2000
  vidihand train adapt --checkpoint ck --data arctic.zarr --stage mesh --mano-dir mano --steps 2000
  vidihand train decoder --checkpoint ck --data arctic.zarr --mano-dir mano --steps 20000
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `train` with its verbs `adapt` and `decoder` to the `vidihand` sub-commands."""
    p = add_command(
        subparsers,
        "train",
        help="train a model checkpoint on ground-truth data (needs the [model] extra)",
        description=(
            "Train a ViDiHand checkpoint (`vidihand model init`) on a dataset holding ground-truth "
            "poses (`vidihand import`): `adapt` teaches the backbone the hand-overlay objective, "
            "`decoder` trains the pose decoder on the frozen backbone's features. Checkpoints of the "
            "run (safetensors + JSON) go to --out; the trained weights are written back into the "
            "model checkpoint at the end."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    adapt = add_command(
        verbs,
        "adapt",
        run=run_adapt,
        help="hand-overlay adaptation of the backbone's trainable part (VACE branch or LoRA)",
        description=(
            "Train the backbone to generate each window with its hands drawn over it (stage skeleton: "
            "the 2D keypoints; stage mesh: the MANO mesh, computed from the stored MANO parameters "
            "with --mano-dir). Only the trainable part (VACE branch or LoRA) changes."
        ),
    )
    _common(adapt, steps_default=1000, lr_default=1e-4, batch_default=1, every_default=500)
    adapt.add_argument("--stage", choices=("skeleton", "mesh"), default="skeleton")
    adapt.add_argument(
        "--mano-dir", type=Path, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (needed by --stage mesh)"
    )

    decoder = add_command(
        verbs,
        "decoder",
        run=run_decoder,
        help="train the pose decoder on the frozen backbone's features",
        description=(
            "Compute the frozen backbone's features of every window once (RUN_DIR/examples/, kept for "
            "--resume), then train the pose decoder against the stored ground truth."
        ),
    )
    _common(decoder, steps_default=20_000, lr_default=3e-4, batch_default=8, every_default=1000)
    decoder.add_argument(
        "--mano-dir", type=Path, required=True, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl"
    )
    decoder.add_argument(
        "--warmup-steps",
        type=non_negative_int,
        help="linear warm-up steps (default: 500, at most a tenth of --steps)",
    )


def _common(
    p: argparse.ArgumentParser,
    *,
    steps_default: int,
    lr_default: float,
    batch_default: int,
    every_default: int,
) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        metavar="DIR",
        help="model checkpoint (`vidihand model init`)",
    )
    p.add_argument(
        "--data", required=True, type=Path, metavar="GT", help="dataset with ground-truth poses (.zarr)"
    )
    p.add_argument(
        "--steps", type=positive, default=steps_default, help=f"train to this step (default {steps_default})"
    )
    p.add_argument("--out", type=Path, metavar="RUN_DIR", help="run directory for the training checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    p.add_argument(
        "--save-to",
        type=Path,
        metavar="DIR",
        help="write the trained model here instead of into --checkpoint",
    )
    p.add_argument(
        "--stride", type=positive, help="frames between window starts (default: the window length)"
    )
    p.add_argument(
        "--lr", type=positive_number, default=lr_default, help=f"learning rate (default {lr_default:g})"
    )
    p.add_argument(
        "--batch-size",
        type=positive,
        default=batch_default,
        help=f"windows per step (default {batch_default})",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive,
        default=every_default,
        help=f"steps between checkpoints (default {every_default})",
    )
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--log-every", type=positive, default=50, metavar="N", help="print the loss every N steps")


def _check_args(args: argparse.Namespace) -> None:
    if args.steps < 0:
        raise InputError(f"--steps must be at least 0, got {args.steps}")
    if not math.isfinite(args.lr) or args.lr <= 0:
        raise InputError(f"--lr must be positive, got {args.lr}")
    if not (args.checkpoint / "state.json").is_file():
        raise InputError("not a model checkpoint (see `vidihand model init`)", source=args.checkpoint)


def _run_dir(args: argparse.Namespace, name: str) -> Path:
    """--out, or `<checkpoint>.<name>` beside the checkpoint; refuse to mix runs without --resume."""
    from vidihand_ros.training.checkpoints import list_checkpoints

    run = args.out if args.out is not None else args.checkpoint.parent / f"{args.checkpoint.name}.{name}"
    if list_checkpoints(run) and not args.resume:
        raise InputError(
            "the run directory already holds training checkpoints: pass --resume to continue that run, "
            "or choose another --out",
            source=run,
        )
    return run


def _device(name: str | None) -> Any:
    import torch

    if name:
        try:
            return torch.device(name)
        except RuntimeError as err:
            raise InputError(f"--device {name!r}: {err}") from None
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _logger(every: int, label: str) -> Any:
    start = time.monotonic()

    def on_step(step: int, loss: float) -> None:
        if step % every == 0:
            print(f"{label} step {step} loss {loss:.6g} ({time.monotonic() - start:.1f} s)", flush=True)

    return on_step


def _summary(label: str, losses: list[float], first: int, step: int) -> str:
    if not losses:
        return f"{label}: already at step {step}, nothing to train"
    return (
        f"{label}: steps {first}→{step}, loss {losses[0]:.6g} → {losses[-1]:.6g} "
        f"(mean of the last {min(10, len(losses))}: {sum(losses[-10:]) / min(10, len(losses)):.6g})"
    )


def run_adapt(args: argparse.Namespace) -> int:
    """`vidihand train adapt`: adapt the backbone, then write it into the model checkpoint."""
    _check_args(args)
    if args.stage == "mesh" and args.mano_dir is None:
        raise InputError(
            "--stage mesh draws MANO meshes and needs --mano-dir (MANO_RIGHT.pkl, MANO_LEFT.pkl)"
        )
    run = _run_dir(args, f"adapt-{args.stage}")

    from vidihand_ros.model.vidihand import load_model, save_model
    from vidihand_ros.training.adaptation import AdaptationTrainer
    from vidihand_ros.training.config import AdaptationConfig
    from vidihand_ros.training.windows import OverlayWindows

    model = load_model(args.checkpoint, device=_device(args.device))
    windows = OverlayWindows(
        args.data, model.config, stage=args.stage, stride=args.stride, mano_dir=args.mano_dir
    )
    config = AdaptationConfig(
        stage=args.stage,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"adapt ({args.stage}): {len(windows)} windows of {model.config.window} frames from {args.data}")
    trainer = AdaptationTrainer(
        model.backbone,
        windows,
        config,
        checkpoint_dir=run,
        model_config={"model": model.config.to_dict()},
    )
    result = trainer.run(on_step=_logger(args.log_every, "adapt"))
    model.eval()
    target = save_model(model, args.save_to or args.checkpoint)
    print(_summary(f"adapt ({args.stage})", result.losses, result.first_step, result.step))
    print(f"run checkpoints in {run}; adapted model written to {target}")
    return 0


def run_decoder(args: argparse.Namespace) -> int:
    """`vidihand train decoder`: precompute features, train the decoder, write it into the checkpoint."""
    _check_args(args)
    if args.warmup_steps is not None and args.warmup_steps < 0:
        raise InputError(f"--warmup-steps must be at least 0, got {args.warmup_steps}")
    run = _run_dir(args, "decoder")

    from vidihand_ros.model.vidihand import load_model, save_model
    from vidihand_ros.training.config import DecoderTrainConfig
    from vidihand_ros.training.decoder import DecoderTrainer
    from vidihand_ros.training.windows import GroundTruthWindows, precompute_window_examples

    model = load_model(args.checkpoint, mano_dir=args.mano_dir, device=_device(args.device))
    windows = GroundTruthWindows(
        args.data,
        window=model.config.window,
        image_size=model.config.image_size,
        stride=args.stride,
        require=("joints_3d",),
        need_intrinsics=True,
    )
    print(f"decoder: {len(windows)} windows of {model.config.window} frames from {args.data}")

    def progress(done: int, total: int) -> None:
        if done == total or done % args.log_every == 0:
            print(f"features: {done}/{total} windows", flush=True)

    examples = precompute_window_examples(
        model.backbone, windows, run / "examples", seed=args.seed, progress=progress
    )
    warmup = args.warmup_steps if args.warmup_steps is not None else min(500, args.steps // 10)
    config = DecoderTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=warmup,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    trainer = DecoderTrainer(model.decoder, examples, config, checkpoint_dir=run)
    result = trainer.run(on_step=_logger(args.log_every, "decoder"))
    model.eval()
    target = save_model(model, args.save_to or args.checkpoint)
    print(_summary("decoder", result.losses, result.first_step, result.step))
    if result.last_terms:
        print("last loss terms: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.last_terms.items())))
    print(f"run checkpoints in {run}; trained decoder written to {target}")
    return 0
