"""`vidihand convert --ray`: one Ray task per recording, each into a part dataset, merged in order.

Why parts: a task that dies (a worker killed, a node lost) must leave nothing in the output, and
Ray retries it (`max_retries`) on another worker. So each *attempt* writes a fresh part folder of
its own, and the driver merges exactly the part whose task returned, once per recording, in input
order: a dead attempt's half-written folder is never looked at and goes with the staging folder.
The merge copies JPEG chunks byte for byte (`merge.copy_episodes`) and uses the same safe
replacement as `convert`: a new output is built beside and moved in; `append` appends (one
publish per recording); `overwrite` replaces the old dataset only once the merge succeeded.

What crosses to the workers is an `EstimatorSpec` (registry name and options), never a live
estimator: each task builds its own, so `mediapipe`, `vidihand`, `remote` and `module:factory`
all work. On a real cluster the recordings, the staging folder beside the output and any files
named in options (checkpoint, token file) must be at the same paths on every node (a shared
filesystem), and vidihand_ros installed there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidihand_ros.dataset import zarr_compat as zc
from vidihand_ros.dataset.reader import DatasetReader
from vidihand_ros.dataset.schema import LAYOUT, LAYOUT_VERSION
from vidihand_ros.dataset.staging import open_for_writing
from vidihand_ros.dataset.writer import LOCK_FILE, WriterLock, acquire_lock, layout_refusal
from vidihand_ros.distributed.merge import copy_episodes
from vidihand_ros.distributed.session import import_ray, ray_session
from vidihand_ros.episodes import checked_time_ranges
from vidihand_ros.errors import DatasetError, InputError
from vidihand_ros.estimators.spec import EstimatorSpec
from vidihand_ros.native_stderr import native_stderr_filtered
from vidihand_ros.pipeline import (
    ConvertOptions,
    ConvertReport,
    EpisodeReport,
    ProgressCallback,
    convert,
    open_input,
)
from vidihand_ros.stream import resolve_window
from vidihand_ros.swap import swap_in

__all__ = ["EstimatorSpec", "RayOptions", "convert_on_ray", "convert_part"]

#: Estimators that want a GPU per task when the cluster has GPUs (the others run on CPU or remotely).
GPU_ESTIMATORS = ("vidihand",)


@dataclass(frozen=True)
class RayOptions:
    """Where and how the tasks run. `num_gpus` None: one per task for a GPU estimator on a cluster
    with GPUs, else none."""

    address: str | None = None
    #: Re-runs of a task whose worker died (Ray's `max_retries`); an error in the task is not retried.
    max_retries: int = 3
    num_cpus: float = 1.0
    num_gpus: float | None = None
    #: Let native libraries' routine log lines (MediaPipe's) through from the workers (`-v`).
    native_logs: bool = False


@dataclass
class PartResult:
    """What a task hands back: which recording, the part it wrote, and its episodes' reports."""

    index: int
    path: str
    episodes: list[EpisodeReport]


def convert_part(
    index: int,
    recording: str,
    parts: str,
    estimator: EstimatorSpec,
    options: ConvertOptions,
    native_logs: bool = False,
) -> PartResult:
    """The Ray task: one recording → a new part dataset in `parts` (a new folder per attempt)."""
    path = Path(parts) / f"{index:05d}-{uuid.uuid4().hex[:12]}"
    with contextlib.nullcontext() if native_logs else native_stderr_filtered():
        built = estimator.build()
        try:
            report = convert([Path(recording)], path, estimator=built, options=options)
        finally:
            if built is not None:
                built.close()
    return PartResult(index, str(path), report.episodes)


def convert_on_ray(
    inputs: Sequence[Path],
    output: Path,
    *,
    estimator: EstimatorSpec | None = None,
    options: ConvertOptions | None = None,
    append: bool = False,
    overwrite: bool = False,
    ray_options: RayOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ConvertReport:
    """Convert `inputs` on a Ray cluster into the dataset at `output` (module docstring).

    Every input is opened and the output checked before any task starts, so bad input fails at
    once. If any recording fails, nothing is merged and the error (one line) propagates.
    """
    estimator = estimator or EstimatorSpec()
    options = options or ConvertOptions()
    ray_options = ray_options or RayOptions()
    if append and overwrite:
        raise ValueError("append and overwrite exclude each other")
    if options.pose_bag is not None:
        raise InputError("--pose-bag is not supported with --ray (convert without --ray to write one)")
    checked_time_ranges(options.time_ranges)
    if options.window is not None:
        resolve_window(None, options.window, options.stride)
    recordings = [Path(path).absolute() for path in inputs]
    for path in recordings:
        open_input(path, options)  # the checks convert makes before writing, here in the driver
    output = Path(output).absolute()
    parts = output.with_name(f".{output.name}.parts-{os.getpid()}")
    with _held(output, append=append, overwrite=overwrite) as release, ray_session(ray_options.address):
        try:
            parts.mkdir(parents=True, exist_ok=True)
            results = _run_tasks(recordings, parts, estimator, options, ray_options, progress)
            release()
            _merge([Path(r.path) for r in results], output, options, append, overwrite, progress)
        finally:
            shutil.rmtree(parts, ignore_errors=True)
    return ConvertReport([episode for result in results for episode in result.episodes])


def _run_tasks(
    recordings: list[Path],
    parts: Path,
    estimator: EstimatorSpec,
    options: ConvertOptions,
    ray_options: RayOptions,
    progress: ProgressCallback | None,
) -> list[PartResult]:
    """Submit one task per recording; their results in input order, or the first failure raised."""
    ray = import_ray()
    num_gpus = ray_options.num_gpus
    if num_gpus is None:
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        num_gpus = 1.0 if has_gpus and estimator.name in GPU_ESTIMATORS else 0.0
    task = ray.remote(convert_part).options(
        max_retries=ray_options.max_retries,
        retry_exceptions=False,
        num_cpus=ray_options.num_cpus,
        num_gpus=num_gpus,
    )
    logs = ray_options.native_logs
    refs = [
        task.remote(i, str(path), str(parts), estimator, options, logs) for i, path in enumerate(recordings)
    ]
    results: list[PartResult | None] = [None] * len(refs)
    advance = progress("recordings converted on Ray", len(refs)) if progress else None
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                result = _result(ray, ref, recordings[refs.index(ref)])
                results[result.index] = result
                if advance is not None:
                    advance(1)
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _result(ray: Any, ref: Any, recording: Path) -> PartResult:
    """A task's result; its InputError as itself, a task lost for good as one line naming the file."""
    try:
        result: PartResult = ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, InputError):
            raise err.cause from None
        raise
    except ray.exceptions.RayError as err:  # the worker died more than max_retries times, a node lost
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"its Ray task failed: {reason}", source=recording) from None
    return result


def _merge(
    parts: list[Path],
    output: Path,
    options: ConvertOptions,
    append: bool,
    overwrite: bool,
    progress: ProgressCallback | None,
) -> None:
    """The parts into `output`, in order, replacing or creating it as `convert` would."""
    readers = [DatasetReader(part) for part in parts]
    writer_options: dict[str, Any] = {
        "image_size": options.image_size,
        "jpeg_quality": options.jpeg_quality,
        "reencode": False,  # the parts re-encoded what was asked; their JPEGs are copied as they are
        "attrs": readers[0].attrs.get("provenance") if readers else None,
    }
    episodes = sum(reader.num_episodes for reader in readers)
    advance = progress("episodes merged", episodes) if progress else None
    if append or (overwrite and not _vacant(output)):
        with open_for_writing(output, append=append, overwrite=overwrite, **writer_options) as writer:
            for reader in readers:
                copy_episodes(reader, writer, advance=advance)
                writer.publish()  # as `convert`: a failure later keeps the recordings before it
        return
    staged = output.with_name(f".{output.name}.new-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    try:
        with open_for_writing(staged, **writer_options) as writer:
            for reader in readers:
                copy_episodes(reader, writer, advance=advance)
        if not _vacant(output):  # someone wrote there while the tasks ran: keep theirs
            raise DatasetError("a dataset with data appeared here during the conversion", source=output)
        swap_in(staged, output)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


@contextlib.contextmanager
def _held(output: Path, *, append: bool, overwrite: bool) -> Iterator[Any]:
    """Check `output` as the writer will, and hold its writer lock while the tasks run (the
    merge's own writer takes it over); yields a function releasing it early."""
    lock: WriterLock | None = None
    if output.exists() or output.is_symlink():
        if not output.is_dir():
            raise DatasetError("exists and is not a directory", source=output)
        if not _vacant(output):
            if not zc.is_group_dir(output):
                raise DatasetError("exists and is not a zarr dataset; refusing to replace it", source=output)
            if append:
                _check_appendable(output)
            elif not overwrite:
                raise DatasetError(
                    "a dataset with data exists here; append to it, or replace it with --overwrite",
                    source=output,
                )
        lock = acquire_lock(output)
    try:
        yield lambda: lock.close() if lock is not None else None
    finally:
        if lock is not None:
            lock.close()


def _check_appendable(output: Path) -> None:
    attrs = DatasetReader(output).attrs
    if attrs.get("layout") != LAYOUT:
        raise DatasetError("not a vidihand_ros dataset; can only append to one", source=output)
    if attrs.get("layout_version") != LAYOUT_VERSION:
        raise DatasetError(layout_refusal(attrs.get("layout_version")), source=output)


def _vacant(path: Path) -> bool:
    """Nothing there to keep: no such path, an empty folder, or a dataset without episodes."""
    if not path.exists():
        return True
    if path.is_dir() and not any(child.name != LOCK_FILE for child in path.iterdir()):
        return True
    if not zc.is_group_dir(path):
        return False
    try:
        reader = DatasetReader(path)
    except DatasetError:
        return False
    return reader.attrs.get("layout") == LAYOUT and reader.num_episodes == 0
