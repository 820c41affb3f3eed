"""An estimator as the registry builds it: what crosses to worker processes, Ray tasks and replicas.

A live estimator holds a model, a graph or connections and cannot (and must not) be pickled; a
registry name with its string options can, and each process builds its own from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import AnyPoseEstimator

__all__ = ["EstimatorSpec"]


@dataclass(frozen=True)
class EstimatorSpec:
    """`create_estimator(name, options)`, deferred."""

    name: str = "none"
    options: Mapping[str, str] = field(default_factory=dict)

    def build(self) -> AnyPoseEstimator | None:
        """The estimator; None for frames-only ("none")."""
        from vidihand_ros.estimators import create_estimator

        return create_estimator(self.name, dict(self.options))

    def build_required(self) -> AnyPoseEstimator:
        """The estimator, where frames-only makes no sense (a server)."""
        estimator = self.build()
        if estimator is None:
            raise InputError("a server needs an estimator; 'none' estimates nothing", field="--estimator")
        return estimator
