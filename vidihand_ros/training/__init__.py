"""Training ViDiHand: hand-overlay adaptation of the backbone and pose-decoder training.

One loop (`loop`) with resumable checkpoints (`checkpoints`) runs both trainings (`adaptation`,
`decoder`) on ground-truth windows (`windows`). This `__init__` and `config`, `overlay` import no
torch; the rest needs the `[model]` extra. See docs/model.md.
"""

from __future__ import annotations

from vidihand_ros.training.config import AdaptationConfig, DecoderTrainConfig, LoopConfig, LossWeights

__all__ = ["AdaptationConfig", "DecoderTrainConfig", "LoopConfig", "LossWeights"]
