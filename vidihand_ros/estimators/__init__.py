"""Choosing a PoseEstimator by name.

Built-in names are resolved lazily so that choosing "none" (frames-only) imports nothing heavy.
Any other estimator can be named as "package.module:factory", where `factory(**options)` returns
a PoseEstimator: this is how tests and third parties plug in without touching the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from vidihand_ros.errors import InputError
from vidihand_ros.estimators.base import AnyPoseEstimator, AsyncPoseEstimator, EstimatorInfo, PoseEstimator

__all__ = [
    "BUILTIN_ESTIMATORS",
    "AnyPoseEstimator",
    "AsyncPoseEstimator",
    "EstimatorInfo",
    "PoseEstimator",
    "create_estimator",
    "parse_options",
]

#: name → "module:factory"; filled in as estimators land (mediapipe, vidihand, remote).
BUILTIN_ESTIMATORS: dict[str, str] = {
    # MediaPipe Hands baseline (CPU, needs the `[baseline]` extra).
    "mediapipe": "vidihand_ros.estimators.mediapipe.hands:create",
    # ViDiHand in-process (needs the `[model]` extra, a checkpoint and MANO files; a GPU in practice).
    "vidihand": "vidihand_ros.estimators.vidihand:create",
    # A `vidihand serve` inference server over HTTP (`--server URL`, token from `--token-file`).
    "remote": "vidihand_ros.estimators.remote:create",
}

FRAMES_ONLY = ("none", "frames-only")


def create_estimator(name: str, options: dict[str, str] | None = None) -> AnyPoseEstimator | None:
    """Build the estimator called `name`; None means frames-only (no poses)."""
    options = options or {}
    if name in FRAMES_ONLY:
        if options:
            raise InputError(f"estimator options {sorted(options)} given, but no estimator is chosen")
        return None
    spec = BUILTIN_ESTIMATORS.get(name, name)
    if ":" not in spec:
        known = ", ".join([*FRAMES_ONLY, *BUILTIN_ESTIMATORS])
        raise InputError(
            f"unknown estimator {name!r}; choose one of: {known}, or give 'package.module:factory'"
        )
    factory = _load_factory(spec)
    try:
        estimator = factory(**options)
    except TypeError as err:
        raise InputError(f"estimator {name!r} does not take these options: {err}") from err
    if not isinstance(estimator, (PoseEstimator, AsyncPoseEstimator)):
        raise InputError(f"estimator {name!r} ({spec}) implements neither estimate() nor submit()")
    return estimator


def _load_factory(spec: str) -> Callable[..., object]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"cannot import estimator module {module_name!r}: {err}") from err
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise InputError(f"estimator module {module_name!r} has no {attr!r}") from None
    if not callable(factory):
        raise InputError(f"estimator {spec!r} is not callable")
    return factory


def parse_options(pairs: list[str]) -> dict[str, str]:
    """'key=value' strings from the command line → dict (values stay strings; factories convert)."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"estimator option {pair!r} is not of the form key=value")
        options[key.strip()] = value.strip()
    return options
