"""What a server is configured with, in one place, so the CLI, tests and Ray build the same server.

Plain dataclasses of plain values: an `AppFactory` holding them is pickled to Ray replicas and
worker processes, so nothing here may hold a live object (estimator, socket, lock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidihand_ros.wire import WireLimits

__all__ = ["BatchSettings", "ServerSettings"]


@dataclass
class BatchSettings:
    """How windows are queued and batched before they reach the estimator."""

    #: Windows per `estimate` call at most (one GPU batch).
    max_batch: int = 8
    #: How long the first window of a batch waits for others to join it.
    max_wait_s: float = 0.005
    #: Windows queued (not yet handed to an estimator) at most; past it a request gets 429.
    queue: int = 64
    #: Worker processes (0: estimate in the server process, on one thread).
    workers: int = 0
    #: Stateful estimators keep one instance per stream; past this many, the least recently
    #: used stream's instance is closed (that stream then starts afresh, as after a cut).
    max_streams: int = 64


@dataclass
class ServerSettings:
    """What the app needs besides the estimator: who may call it, how big and how slow a request
    may be, and how queueing behaves."""

    token: str | None = None
    limits: WireLimits = field(default_factory=WireLimits)
    batch: BatchSettings = field(default_factory=BatchSettings)
    #: A request not answered within this many seconds gets 504 (its window is dropped if queued).
    deadline_s: float = 60.0
    #: The Retry-After (seconds) sent with 429 and 503.
    retry_after_s: int = 1
