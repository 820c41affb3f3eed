"""`vidihand model init`: write a randomly initialised (or pretrained-backbone) model checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidihand_ros.cli.options import add_command

__all__ = ["add_parser", "run_init"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "model", help="ViDiHand model checkpoints (needs the [model] extra)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    init = add_command(
        verbs,
        "init",
        run=run_init,
        help="write a randomly initialised checkpoint (safetensors + JSON) of a model config",
        description=(
            "Build the model from a preset (tiny, wan21-vace-1.3b, wan22-5b-lora) or a JSON config with "
            "random weights and save it as a checkpoint directory that `--estimator vidihand "
            "--checkpoint DIR` and training load. Real pretrained backbone weights can be loaded into "
            "it from a local diffusers folder with --pretrained."
        ),
    )
    init.add_argument("--config", required=True, help="preset name or JSON config file")
    init.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    init.add_argument(
        "--pretrained", type=Path, help="local diffusers-format folder or safetensors of the backbone"
    )
    init.add_argument("--seed", type=int, default=0)


def run_init(args: argparse.Namespace) -> int:
    from vidihand_ros.model.config import ViDiHandConfig, preset, preset_names

    config = (
        preset(args.config) if args.config in preset_names() else ViDiHandConfig.from_json(Path(args.config))
    )
    from vidihand_ros.model.vidihand import build_model, checkpoint_sha256, save_model

    model = build_model(config, seed=args.seed, pretrained=args.pretrained)
    path = save_model(model, args.output)
    print(f"wrote {config.name} checkpoint to {path} (sha256 {checkpoint_sha256(path)[:12]})")
    return 0
