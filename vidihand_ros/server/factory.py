"""Building a whole server app from plain settings: what `vidihand serve` and Ray Serve replicas run.

`AppFactory` is a picklable callable (registry name, options, settings, device): calling it builds
the lanes (the estimator thread, or `workers` worker processes), the Batcher and the FastAPI app.
Nothing is loaded until the app starts, so a Ray replica or a uvicorn worker builds its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI

from vidihand_ros.server.app import create_app
from vidihand_ros.server.batching import Batcher, Lane, ThreadLane
from vidihand_ros.server.decoding import choose_decoder
from vidihand_ros.server.runner import EstimatorSpec
from vidihand_ros.server.settings import ServerSettings

__all__ = ["AppFactory"]


@dataclass
class AppFactory:
    """`factory()` → the FastAPI app serving `spec` with `settings` on `device`."""

    spec: EstimatorSpec
    settings: ServerSettings = field(default_factory=ServerSettings)
    device: str = "cpu"

    def __call__(self, on_fatal: Callable[[str], None] | None = None) -> FastAPI:
        batch = self.settings.batch
        lanes: list[Lane]
        if batch.workers > 0:
            from vidihand_ros.server.workers import ProcessLane

            lanes = [
                ProcessLane(
                    self.spec,
                    max_streams=batch.max_streams,
                    limits=self.settings.limits,
                    device=self.device,
                    name=f"worker {i}",
                )
                for i in range(batch.workers)
            ]
            decoder_name = choose_decoder(self.device).name
        else:
            decoder = choose_decoder(self.device)
            lanes = [ThreadLane(self.spec, max_streams=batch.max_streams, decoder=decoder)]
            decoder_name = decoder.name
        engine = Batcher(lanes, self.settings)
        return create_app(
            engine, None, self.settings, device=self.device, decoder=decoder_name, on_fatal=on_fatal
        )
