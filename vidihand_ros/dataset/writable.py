"""Whether a tool may write into an existing dataset: checked before the lock file is made.

`vidihand annotate`, `label` and `retarget` change datasets in place, so all refuse the same
things first, each naming itself in the one-line message: a path that is not there or not a zarr
group, a `.zip` (read-only), another tool's replay buffer, another layout version, and a dataset
made read-only (also by its mode bits, which root would otherwise ignore).
"""

from __future__ import annotations

import os
from pathlib import Path

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.schema import EPISODE_ENDS, LAYOUT, LAYOUT_VERSION
from vidihand_ros.errors import DatasetError

__all__ = ["check_writable", "check_writable_episodes"]


def check_writable(path: Path, tool: str) -> int:
    """Refuse (a `DatasetError` naming `tool`) what `tool` must not write into; the episode count."""
    if not path.exists():
        raise DatasetError("no such dataset", source=path)
    if zc.is_zip_store(path):
        raise DatasetError(f"a .zip dataset is read-only; {tool} the directory dataset", source=path)
    if not zc.is_group_dir(path):
        raise DatasetError("not a zarr dataset (no zarr group here)", source=path)
    try:
        root = zc.open_group(path, "r")
        attrs = zc.get_attrs(root)
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(f"cannot open the dataset: {err}", source=path) from err
    if zc.zarr_format(root) != 2 or attrs.get("layout") != LAYOUT:
        raise DatasetError("not a vidihand_ros dataset (no replay-buffer layout attributes)", source=path)
    version = attrs.get("layout_version")
    if version != LAYOUT_VERSION:
        raise DatasetError(
            f"dataset layout version {version}; {tool} writes into layout {LAYOUT_VERSION} only",
            source=path,
        )
    if not (os.access(path, os.W_OK) and path.stat().st_mode & 0o222):
        raise DatasetError(f"the dataset is read-only; {tool} writes into it", source=path)
    try:
        return int(root["meta"][EPISODE_ENDS].shape[0])
    except KeyError as err:
        raise DatasetError(f"dataset is missing {err}", source=path) from err


def check_writable_episodes(path: Path, tool: str) -> int:
    """`check_writable`, and a dataset without episodes refused too (nothing for `tool` to do)."""
    episodes = check_writable(path, tool)
    if episodes == 0:
        raise DatasetError(f"the dataset holds no episodes; nothing to {tool}", source=path)
    return episodes
