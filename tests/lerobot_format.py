"""A check of a LeRobot v3.0 dataset folder against what lerobot 0.6.1 reads, without lerobot.

CI cannot install lerobot (it needs Python >= 3.12 and torch), so the export's tests check the
written folder against the layout lerobot 0.6.1 reads (`lerobot.datasets.utils.DatasetInfo`,
`io_utils.load_info/load_tasks/load_episodes/load_stats`, `dataset_reader.DatasetReader`,
`video_utils.decode_video_frames_*`, `compute_stats`); `scripts/check_lerobot_export.sh` loads the
same folders with lerobot itself. Every problem found is collected, then reported together.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["check_lerobot_folder"]

#: `DatasetInfo`'s fields; lerobot warns about (and ignores) any other.
INFO_KEYS = {
    "codebase_version",
    "fps",
    "features",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "chunks_size",
    "data_files_size_in_mb",
    "video_files_size_in_mb",
    "data_path",
    "video_path",
    "robot_type",
    "splits",
    "tools",
}
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
#: `lerobot.utils.constants.DEFAULT_FEATURES`.
DEFAULT_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
STAT_KEYS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
#: lerobot's default `tolerance_s` between a frame's timestamp and the decoded frame's.
TOLERANCE_S = 1e-4
_ARROW_NAMES = {"float32": "float", "float64": "double"}


class _Problems:
    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.found.append(message)
        return ok


def check_lerobot_folder(root: Path) -> dict[str, Any]:
    """Raise AssertionError listing every way `root` differs from a loadable v3.0 dataset.

    Returns the parsed info.json (for further checks by the caller).
    """
    p = _Problems()
    info: dict[str, Any] = json.loads((root / "meta" / "info.json").read_text())
    _check_info(info, p)
    features = info.get("features", {})
    tasks = _check_tasks(root, info, p)
    episodes = _check_episodes(root, info, tasks, p)
    _check_data(root, info, episodes, p)
    for key, ft in features.items():
        if ft.get("dtype") == "video":
            _check_video(root, key, ft, int(info.get("fps", 1)), episodes, p)
    _check_stats(root, features, p)
    if p.found:
        raise AssertionError(f"{root} is not a loadable LeRobot v3.0 dataset:\n  " + "\n  ".join(p.found))
    return info


def _check_info(info: dict[str, Any], p: _Problems) -> None:
    p.check(set(info) <= INFO_KEYS, f"info.json: unknown fields {sorted(set(info) - INFO_KEYS)}")
    p.check(info.get("codebase_version") == "v3.0", "info.json: codebase_version is not v3.0")
    for key in ("fps", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb"):
        value = info.get(key)
        p.check(
            isinstance(value, int) and value > 0, f"info.json: {key} must be a positive int, is {value!r}"
        )
    p.check(info.get("data_path") == DATA_PATH, "info.json: data_path is not the v3.0 template")
    features = info.get("features", {})
    has_video = any(ft.get("dtype") == "video" for ft in features.values())
    p.check(info.get("video_path") == (VIDEO_PATH if has_video else None), "info.json: video_path")
    p.check(info.get("splits") == {"train": f"0:{info.get('total_episodes')}"}, "info.json: splits")
    for name, dtype in DEFAULT_FEATURES.items():
        ft = features.get(name, {})
        p.check(ft.get("dtype") == dtype and ft.get("shape") == [1], f"feature {name}: {dtype} of shape [1]")
    for name, ft in features.items():
        p.check("/" not in name, f"feature {name}: '/' in a name")
        shape = ft.get("shape")
        p.check(isinstance(shape, list) and all(isinstance(n, int) for n in shape), f"feature {name}: shape")
        names = ft.get("names")
        if ft.get("dtype") == "video":
            p.check(names == ["height", "width", "channels"], f"feature {name}: names")
            p.check(len(shape) == 3 and shape[2] == 3, f"feature {name}: shape (h, w, 3)")
            video = ft.get("info", {})
            p.check(
                video.get("video.height") == shape[0] and video.get("video.width") == shape[1],
                f"feature {name}: info video size",
            )
            p.check(video.get("video.fps") == info.get("fps"), f"feature {name}: info video.fps")
        elif names is not None:
            p.check(len(names) == math.prod(shape), f"feature {name}: {len(names)} names for shape {shape}")
            p.check(len(set(names)) == len(names), f"feature {name}: repeated names")


def _check_tasks(root: Path, info: dict[str, Any], p: _Problems) -> list[str]:
    table = pq.read_table(root / "meta" / "tasks.parquet")
    pandas = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    # lerobot reads it with pandas and names a frame's task by `tasks.iloc[task_index].name`
    p.check(pandas.get("index_columns") == ["task"], "tasks.parquet: the pandas index is not `task`")
    p.check(table.column_names == ["task_index", "task"], f"tasks.parquet: columns {table.column_names}")
    index = table.column("task_index").to_pylist()
    p.check(index == list(range(len(index))), "tasks.parquet: task_index is not 0..n-1")
    p.check(len(index) == info.get("total_tasks"), "tasks.parquet: total_tasks differs")
    return [str(t) for t in table.column("task").to_pylist()]


def _check_episodes(root: Path, info: dict[str, Any], tasks: list[str], p: _Problems) -> list[dict[str, Any]]:
    paths = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    p.check(bool(paths), "meta/episodes: no parquet file")
    rows = [row for path in paths for row in pq.read_table(path).to_pylist()]
    p.check([r["episode_index"] for r in rows] == list(range(len(rows))), "episodes: episode_index order")
    p.check(len(rows) == info.get("total_episodes"), "episodes: total_episodes differs")
    p.check(sum(r["length"] for r in rows) == info.get("total_frames"), "episodes: total_frames differs")
    features = info.get("features", {})
    start = 0
    places = ("data/chunk_index", "data/file_index", "meta/episodes/chunk_index", "meta/episodes/file_index")
    for r in rows:
        e = r["episode_index"]
        p.check(r["dataset_from_index"] == start, f"episode {e}: dataset_from_index")
        p.check(r["dataset_to_index"] == start + r["length"], f"episode {e}: dataset_to_index")
        start += r["length"]
        p.check(all(t in tasks for t in r["tasks"]), f"episode {e}: tasks not in tasks.parquet")
        for key in places:
            p.check(isinstance(r.get(key), int), f"episode {e}: {key}")
        for name, ft in features.items():
            if ft.get("dtype") == "video":
                for col in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
                    p.check(f"videos/{name}/{col}" in r, f"episode {e}: videos/{name}/{col}")
            for stat in STAT_KEYS:
                p.check(f"stats/{name}/{stat}" in r, f"episode {e}: stats/{name}/{stat}")
    return rows


def _check_data(root: Path, info: dict[str, Any], episodes: list[dict[str, Any]], p: _Problems) -> None:
    features = {k: ft for k, ft in info["features"].items() if ft["dtype"] != "video"}
    files: dict[tuple[int, int], pa.Table] = {}
    for path in sorted((root / "data").glob("*/*.parquet")):
        chunk, file = int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1])
        files[(chunk, file)] = pq.read_table(path)
    for (chunk, file), table in files.items():
        p.check(sorted(table.column_names) == sorted(features), f"data {chunk}/{file}: columns")
        for name, ft in features.items():
            if name not in table.column_names:
                continue
            kind = table.schema.field(name).type
            listed = pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind)
            value = kind.value_type if listed else kind
            p.check(str(value) == _ARROW_NAMES.get(ft["dtype"], ft["dtype"]), f"data {name}: type {value}")
            p.check(listed == (ft["shape"] != [1]), f"data {name}: a list exactly when shape is not [1]")
            if listed:
                lengths = set(pc.list_value_length(table.column(name)).to_pylist())
                p.check(lengths <= {math.prod(ft["shape"])}, f"data {name}: list lengths {lengths}")
    fps = info["fps"]
    for r in episodes:
        e = r["episode_index"]
        table = files.get((r["data/chunk_index"], r["data/file_index"]))
        if table is None:
            p.check(False, f"episode {e}: its data file is missing")
            continue
        ep = table.filter(pc.equal(table.column("episode_index"), e))
        n = r["length"]
        p.check(ep.num_rows == n, f"episode {e}: {ep.num_rows} data rows, length {n}")
        index = ep.column("index").to_pylist()
        p.check(index == list(range(r["dataset_from_index"], r["dataset_to_index"])), f"episode {e}: index")
        frames = np.asarray(ep.column("frame_index").to_pylist())
        p.check(frames.tolist() == list(range(n)), f"episode {e}: frame_index")
        stamps = np.asarray(ep.column("timestamp").to_pylist())
        p.check(bool(np.all(np.abs(stamps - frames / fps) < TOLERANCE_S)), f"episode {e}: timestamp != k/fps")
        task_index = set(ep.column("task_index").to_pylist())
        p.check(task_index <= set(range(info["total_tasks"])), f"episode {e}: task_index out of range")


def _check_video(
    root: Path, key: str, ft: dict[str, Any], fps: int, episodes: list[dict[str, Any]], p: _Problems
) -> None:
    by_file: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in episodes:
        by_file.setdefault((r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]), []).append(r)
    height, width = ft["shape"][:2]
    for (chunk, file), rows in by_file.items():
        path = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
        if not p.check(path.is_file(), f"{key}: file {file} of chunk {chunk} is missing"):
            continue
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            p.check((stream.width, stream.height) == (width, height), f"{path}: size")
            times = np.asarray([float(f.time) for f in container.decode(stream)])
        expected = sum(r["length"] for r in rows)
        p.check(len(times) == expected, f"{path}: {len(times)} frames, its episodes have {expected}")
        ideal = np.arange(len(times)) / fps
        p.check(bool(np.all(np.abs(times - ideal) < TOLERANCE_S)), f"{path}: frame k is not at k/fps")
        at = 0.0
        for r in rows:
            start, stop = r[f"videos/{key}/from_timestamp"], r[f"videos/{key}/to_timestamp"]
            e = r["episode_index"]
            p.check(abs(start - at) < TOLERANCE_S, f"{key}: episode {e} from_timestamp")
            p.check(abs(stop - start - r["length"] / fps) < TOLERANCE_S, f"{key}: episode {e} to_timestamp")
            at = stop


def _check_stats(root: Path, features: dict[str, Any], p: _Problems) -> None:
    stats = json.loads((root / "meta" / "stats.json").read_text())
    for name, ft in features.items():
        if not p.check(name in stats, f"stats.json: no {name}"):
            continue
        for key in STAT_KEYS:
            value = np.asarray(stats[name].get(key, []), dtype=np.float64)
            p.check(
                value.size > 0 and bool(np.all(np.isfinite(value))), f"stats.json: {name}/{key} not finite"
            )
            if key == "count":
                p.check(value.shape == (1,), f"stats.json: {name}/count shape {value.shape}")
            elif ft["dtype"] == "video":
                p.check(value.shape == (3, 1, 1), f"stats.json: {name}/{key} shape {value.shape}")
                p.check(bool(np.all((value >= 0) & (value <= 1))), f"stats.json: {name}/{key} not in [0, 1]")
            else:
                shape = (math.prod(ft["shape"]),)
                p.check(value.shape == shape, f"stats.json: {name}/{key} shape {value.shape}")
