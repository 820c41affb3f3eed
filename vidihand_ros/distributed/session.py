"""One way to get a Ray session, for `convert --ray` and `serve --ray`: join, or start and own one.

Ray is imported here, at call time, so that importing the CLI or the core never pays for it (nor
needs the `ray` extra). A session some caller already opened (a test's, a notebook's) is used as
it is and left running; one opened here is shut down on the way out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from types import ModuleType

from vidihand_ros.errors import InputError

__all__ = ["import_ray", "ray_session"]

RAY_EXTRA = "pip install 'vidihand_ros[ray]'"


def import_ray() -> ModuleType:
    """The `ray` module, or an InputError saying which extra to install."""
    try:
        import ray
    except ImportError as err:
        raise InputError(f"--ray needs Ray ({RAY_EXTRA}): {err}") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[bool]:
    """Connect to the cluster at `address` (None: start a local one); yields whether it is ours.

    `address` is what `ray.init` takes: "auto" (the cluster this machine is part of, after
    `ray start`), "HOST:6379" (a head node's GCS), or "ray://HOST:10001" (Ray Client).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield False
        return
    kwargs: dict[str, object] = {"logging_level": logging.WARNING}
    if address is None:
        kwargs["include_dashboard"] = False  # seconds of start-up, and a port, nobody asked for
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"cannot start or join {where}: {reason}") from None
    try:
        yield True
    finally:
        ray.shutdown()
