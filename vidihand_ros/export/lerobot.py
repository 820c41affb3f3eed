"""`vidihand export lerobot`: a dataset as a LeRobot v3.0 folder, written without importing lerobot.

The layout is what lerobot 0.6.1 reads (`LeRobotDataset(repo_id, root=DIR)`):

    meta/info.json                         codebase_version "v3.0", fps, features, counts, paths
    meta/tasks.parquet                     task text (the pandas index) → task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, tasks, where its rows
                                           and video frames are, its stats (`stats/<feature>/<stat>`)
    meta/stats.json                        dataset stats per feature
    data/chunk-CCC/file-FFF.parquet        one row per frame, one row group per episode
    videos/observation.images.camera0/chunk-CCC/file-FFF.mp4   episodes back to back (H.264)

Features and NaN handling: `lerobot_features`; video: `lerobot_video`; stats: `lerobot_stats`.
LeRobot has one integer frame rate and takes frame k of an episode at `k / fps`: `fps` is the
dataset's median rate rounded (or `--fps`), and `timestamp` is `frame_index / fps` (the source
stamps stay in the zarr dataset). Episode task text is the episode record's `task`, else `task`.
Episodes without frames are left out. Provenance goes to `meta/vidihand.json` (lerobot ignores
it), a dataset card with the repo id to `README.md`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vidihand_ros import __version__
from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.attrs import to_json, utc_now
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import IMAGE_KEY
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.export.lerobot_features import EpisodeVectors, VectorLayout, layout_for
from vidihand_ros.export.lerobot_stats import ImageStats, Stats, aggregate, vector_stats
from vidihand_ros.export.lerobot_video import VideoFiles, chunk_file
from vidihand_ros.export.output import check_target, replaced_atomically
from vidihand_ros.retarget.keys import qpos_keys

__all__ = ["CODEBASE_VERSION", "VIDEO_KEY", "LeRobotExport", "dataset_fps", "export_lerobot"]

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
VIDEO_KEY = "observation.images.camera0"
DEFAULT_TASK = "manipulation"
#: lerobot's defaults (`lerobot.datasets.utils`): files per chunk folder, file sizes before a new one.
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
#: lerobot's `DEFAULT_FEATURES`, appended after ours as lerobot does.
INDEX_FEATURES: dict[str, str] = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}


@dataclass(frozen=True)
class LeRobotExport:
    """What was written."""

    path: Path
    repo_id: str
    episodes: int
    frames: int
    tasks: int
    fps: int
    action: str

    def summary(self) -> str:
        return (
            f"wrote LeRobot v3.0 dataset {self.repo_id!r} to {self.path}: {self.episodes} episode(s), "
            f"{self.frames} frames at {self.fps} fps, {self.tasks} task(s), action = {self.action}"
        )


def dataset_fps(reader: DatasetReader) -> int:
    """The median of the episodes' frame rates, rounded to LeRobot's integer fps."""
    rates = [r for i in range(reader.num_episodes) if math.isfinite(r := reader.fps(i))]
    if not rates:
        raise DatasetError(
            "cannot tell the frame rate (no episode has two frames); pass --fps", source=reader.path
        )
    rate = float(np.median(rates))
    fps = max(1, round(rate))
    if abs(rate - fps) > 0.01 * fps:
        log.warning("%s: frame rate %.3f fps is exported as %d fps", reader.path, rate, fps)
    return fps


def export_lerobot(
    source: Path,
    out: Path,
    *,
    repo_id: str | None = None,
    task: str = DEFAULT_TASK,
    fps: int | None = None,
    action: str = "auto",
    overwrite: bool = False,
    data_file_mb: float = DATA_FILES_SIZE_IN_MB,
    video_file_mb: float = VIDEO_FILES_SIZE_IN_MB,
) -> LeRobotExport:
    """Write the dataset at `source` as a LeRobot v3.0 dataset folder `out`.

    `data_file_mb` / `video_file_mb` are when a new data / video file is started (lerobot's
    defaults; smaller values split a small dataset into several files).
    """
    reader = DatasetReader(source)
    check_target(source, out, overwrite=overwrite)
    if not task.strip():
        raise InputError("--task must not be empty")
    hand_joints = {
        key: list(zc.get_attrs(reader.array(key)).get("joint_names") or []) for key in qpos_keys(reader.keys)
    }
    layout = layout_for(reader.keys, action, hand_joints)
    missing = [k for k in layout.keys if k not in reader.keys]
    if missing:
        raise DatasetError(f"not a hand-pose dataset: no data/{', data/'.join(missing)}", source=source)
    writer = _Writer(
        reader,
        layout,
        repo_id=repo_id or out.name,
        default_task=task,
        fps=fps or dataset_fps(reader),
        data_file_mb=data_file_mb,
        video_file_mb=video_file_mb,
    )
    with replaced_atomically(out) as tmp:
        writer.write(tmp)
    return LeRobotExport(
        path=out,
        repo_id=writer.repo_id,
        episodes=writer.episodes,
        frames=writer.frames,
        tasks=len(writer.tasks),
        fps=writer.fps,
        action=layout.action_source,
    )


def features(layout: VectorLayout, image_size: tuple[int, int] | None) -> dict[str, dict[str, Any]]:
    """meta/info.json `features`, without the video's probed `info` (added once it is written)."""

    def vector(names: tuple[str, ...]) -> dict[str, Any]:
        return {"dtype": "float32", "shape": [len(names)], "names": list(names)}

    feats: dict[str, dict[str, Any]] = {}
    if image_size is not None:
        width, height = image_size
        feats[VIDEO_KEY] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        }
    feats |= {
        "observation.state": vector(layout.state_names),
        "observation.state_mask": vector(layout.state_names),
        "observation.hand_joints": vector(layout.joint_names),
        "observation.hand_joints_mask": vector(layout.joint_names),
        "observation.hand_valid": vector(("left", "right")),
        "action": vector(layout.action_names),
        "action_mask": vector(layout.action_names),
    }
    feats |= {name: {"dtype": dtype, "shape": [1], "names": None} for name, dtype in INDEX_FEATURES.items()}
    return feats


class _Writer:
    """Writes the folder episode by episode (data, video and stats), then the metadata files."""

    def __init__(
        self,
        reader: DatasetReader,
        layout: VectorLayout,
        *,
        repo_id: str,
        default_task: str,
        fps: int,
        data_file_mb: float,
        video_file_mb: float,
    ) -> None:
        self.reader = reader
        self.layout = layout
        self.repo_id = repo_id
        self.default_task = default_task
        self.fps = fps
        self.data_file_mb = data_file_mb
        self.video_file_mb = video_file_mb
        self.has_video = IMAGE_KEY in reader.image_keys
        size = None
        if self.has_video:
            height, width = (int(v) for v in reader.array(IMAGE_KEY).shape[1:3])
            size = (width, height)
        self.features = features(layout, size)
        self.tasks: dict[str, int] = {}
        self.episodes = 0
        self.frames = 0
        self.episode_stats: list[dict[str, Stats]] = []

    def write(self, root: Path) -> None:
        import pyarrow as pa

        root.mkdir(parents=True)
        schema = pa.schema(
            [(name, _arrow_type(pa, ft)) for name, ft in self.features.items() if ft["dtype"] != "video"]
        )
        data = _ParquetFiles(root, schema, self.data_file_mb)
        video = None
        if self.has_video:
            height, width = self.features[VIDEO_KEY]["shape"][:2]
            video = VideoFiles(root, VIDEO_KEY, self.fps, width, height, self.video_file_mb, CHUNKS_SIZE)
        records = []
        try:
            for i in range(self.reader.num_episodes):
                start, stop = self.reader.bounds(i)
                if stop == start:
                    log.warning("%s: episode %d has no frames; left out", self.reader.path, i)
                    continue
                records.append(self._episode(i, stop - start, data, video))
        finally:
            data.close()
            if video is not None:
                video.close()
        if not records:
            raise DatasetError("no episode with frames to export", source=self.reader.path)
        if video is not None:
            self.features[VIDEO_KEY]["info"] = video.info()
        self._write_meta(root, records)

    def _episode(self, i: int, n: int, data: _ParquetFiles, video: VideoFiles | None) -> dict[str, Any]:
        """Write episode `i` (n frames) as episode `self.episodes`; its meta/episodes row."""
        import pyarrow as pa

        text = self._task(i)
        task_index = self.tasks.setdefault(text, len(self.tasks))
        vectors = EpisodeVectors.build(self.reader.episode(i, self.layout.keys), self.layout)
        frame_index = np.arange(n, dtype=np.int64)
        columns: dict[str, NDArray[Any]] = {
            **vectors.columns,
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(n, self.episodes, dtype=np.int64),
            "index": self.frames + frame_index,
            "task_index": np.full(n, task_index, dtype=np.int64),
        }
        arrays = [_arrow_column(pa, columns[name], self.features[name]) for name in data.schema.names]
        record: dict[str, Any] = {
            "episode_index": self.episodes,
            "tasks": [text],
            "length": n,
            **data.add(pa.Table.from_arrays(arrays, schema=data.schema)),
            "dataset_from_index": self.frames,
            "dataset_to_index": self.frames + n,
        }
        stats = {name: vector_stats(values) for name, values in columns.items()}
        if video is not None:
            image_stats = ImageStats()
            record |= video.add_episode(_counted(self.reader.frames(i), image_stats))
            if image_stats.frames != n:
                raise DatasetError(
                    f"episode {i}: {image_stats.frames} images for {n} rows", source=self.reader.path
                )
            stats[VIDEO_KEY] = image_stats.stats()
        record |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        record |= {f"stats/{name}/{key}": v.tolist() for name, s in stats.items() for key, v in s.items()}
        self.episode_stats.append(stats)
        self.episodes += 1
        self.frames += n
        return record

    def _task(self, i: int) -> str:
        task = self.reader.episode_attrs(i).get("task")
        return task.strip() if isinstance(task, str) and task.strip() else self.default_task

    def _write_meta(self, root: Path, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(records), root / EPISODES_FILE)
        pq.write_table(_tasks_table(pa, list(self.tasks)), meta / "tasks.parquet")
        names = self.episode_stats[0]
        totals = {name: aggregate([s[name] for s in self.episode_stats]) for name in names}
        _write_json(
            meta / "stats.json", {n: {k: v.tolist() for k, v in s.items()} for n, s in totals.items()}
        )
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": None,
            "total_episodes": self.episodes,
            "total_frames": self.frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": self.fps,
            "splits": {"train": f"0:{self.episodes}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.has_video else None,
            "features": self.features,
        }
        _write_json(meta / "info.json", info)
        _write_json(
            meta / "vidihand.json",
            to_json(
                {
                    "exported_by": f"vidihand_ros {__version__}",
                    "exported": utc_now(),
                    "source": str(self.reader.path.resolve()),
                    "source_episodes": self.reader.num_episodes,
                    "action": self.layout.action_source,
                    "fill": "hold the last observed value (first observed before it; 0 if never); "
                    "*_mask features are 1 where observed",
                    "timestamp": "frame_index / fps (source stamps are in the zarr dataset)",
                    "default_task": self.default_task,
                }
            ),
        )
        (root / "README.md").write_text(_card(self.repo_id, info), encoding="utf-8")


class _ParquetFiles:
    """`data/chunk-CCC/file-FFF.parquet`: one row group per episode, a new file past `max_mb`."""

    def __init__(self, root: Path, schema: Any, max_mb: float) -> None:
        self.root = root
        self.schema = schema
        self.max_mb = max_mb
        self.chunk = self.file = 0
        self._writer: Any = None

    @property
    def path(self) -> Path:
        return self.root / "data" / f"{chunk_file(self.chunk, self.file)}.parquet"

    def add(self, table: Any) -> dict[str, int]:
        import pyarrow.parquet as pq

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="snappy")
        where = {"data/chunk_index": self.chunk, "data/file_index": self.file}
        self._writer.write_table(table)
        if self.path.stat().st_size >= self.max_mb * 1024**2:
            self.close()
            self.file += 1
            if self.file == CHUNKS_SIZE:
                self.chunk, self.file = self.chunk + 1, 0
        return where

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _arrow_type(pa: Any, feature: dict[str, Any]) -> Any:
    """A scalar for shape (1,) (lerobot's `datasets.Value`), else a fixed-size list (`List(length=)`)."""
    value = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    shape = feature["shape"]
    return value if shape == [1] else pa.list_(value, int(np.prod(shape)))


def _arrow_column(pa: Any, values: NDArray[Any], feature: dict[str, Any]) -> Any:
    kind = _arrow_type(pa, feature)
    flat = np.ascontiguousarray(values, dtype=np.dtype(feature["dtype"])).reshape(-1)
    if pa.types.is_fixed_size_list(kind):
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=kind.value_type), kind.list_size)
    return pa.array(flat, type=kind)


def _tasks_table(pa: Any, tasks: list[str]) -> Any:
    """meta/tasks.parquet as pandas writes it: `task` is the index (lerobot looks tasks up by it)."""
    table = pa.table(
        {"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())}
    )
    pandas = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({"pandas": json.dumps(pandas)})


def _counted(frames: Iterator[NDArray[np.uint8]], stats: ImageStats) -> Iterator[NDArray[np.uint8]]:
    for frame in frames:
        stats.add(frame)
        yield frame


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=4, allow_nan=False) + "\n", encoding="utf-8")


def _card(repo_id: str, info: dict[str, Any]) -> str:
    """A Hugging Face dataset card, as lerobot's `create_lerobot_dataset_card` makes one."""
    return (
        "---\n"
        "tags:\n- LeRobot\n- vidihand\n"
        "task_categories:\n- robotics\n"
        "configs:\n- config_name: default\n  data_files: data/*/*.parquet\n"
        "---\n\n"
        f"# {repo_id}\n\n"
        "Exported by `vidihand export lerobot` (vidihand_ros): two-hand poses from egocentric video.\n"
        "See meta/vidihand.json for how the features were made.\n\n"
        f"```python\nfrom lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
        f'ds = LeRobotDataset("{repo_id}", root="<this folder>")\n```\n\n'
        "meta/info.json:\n\n"
        f"```json\n{json.dumps(info, indent=4)}\n```\n"
    )
