"""The server's parts without HTTP: JPEG decoder choice, the per-process runner, the batcher."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from tests import test_server_support as support
from vidihand_ros.server.batching import Batcher, ThreadLane
from vidihand_ros.server.decoding import CpuDecoder, GpuJpegDecoder, choose_decoder, gpu_available
from vidihand_ros.server.errors import Failure
from vidihand_ros.server.runner import EstimatorSpec, Job, WindowRunner
from vidihand_ros.server.settings import BatchSettings, ServerSettings
from vidihand_ros.wire import decode_poses


@pytest.mark.parametrize(
    ("device", "available", "chosen"),
    [
        ("cuda", True, GpuJpegDecoder),
        ("cuda:1", True, GpuJpegDecoder),
        ("cuda", False, CpuDecoder),
        ("cpu", True, CpuDecoder),
        ("cpu", False, CpuDecoder),
    ],
)
def test_jpeg_frames_are_decoded_on_the_gpu_only_when_serving_on_one_that_works(
    device: str, available: bool, chosen: type
) -> None:
    decoder = choose_decoder(device, available=lambda: available)
    assert type(decoder) is chosen
    if isinstance(decoder, GpuJpegDecoder):
        assert decoder.device == device and decoder.name == "gpu"


def test_gpu_decoding_needs_torch_cuda_and_torchvision() -> None:
    has_both = (
        importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchvision") is not None
    )
    if not has_both:
        assert gpu_available() is False
        assert isinstance(choose_decoder("cuda"), CpuDecoder)
    else:
        import torch

        assert gpu_available() is bool(torch.cuda.is_available())


def test_a_stateful_runner_keeps_at_most_max_streams_instances_and_closes_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    support.INSTANCES.clear()
    closed: list[int] = []
    monkeypatch.setattr(support.OrderedEstimator, "close", lambda self: closed.append(id(self)))
    runner = WindowRunner(EstimatorSpec("tests.test_server_support:ordered"), max_streams=2)
    runner.warm_up()
    warmup_instance = support.INSTANCES[0]
    assert id(warmup_instance) in closed  # its state never reaches a client's stream
    outcomes = runner.run([Job(f"s{k}", f"w{k}", support.jpeg_window(2, frame_id=f"s{k}")) for k in range(3)])
    assert all(isinstance(o, bytes) for o in outcomes)
    assert runner.streams() == 2
    assert len(closed) == 2  # warm-up's, then the least recently used stream's (s0)
    again = runner.run([Job("s2", "again", support.jpeg_window(2, frame_id="s2", start=2))])[0]
    assert isinstance(again, bytes) and len(decode_poses(again, "again")) == 2
    runner.close()
    assert len(set(closed)) == len(support.INSTANCES)


def test_a_failing_window_fails_alone_in_a_runner_batch() -> None:
    runner = WindowRunner(EstimatorSpec("tests.test_server_support:picky"))
    jobs = [Job("a", "a", support.jpeg_window(2)), Job("b", "b", support.jpeg_window(2, frame_id="bad"))]
    good, bad = runner.run(jobs)
    assert isinstance(good, bytes)
    assert bad == Failure(422, "this window has no usable intrinsics", "K")


def test_the_batcher_refuses_when_not_ready_and_when_full() -> None:
    async def scenario() -> list[object]:
        spec = EstimatorSpec("tests.test_server_support:slow", {"delay": "0.2"})
        settings = ServerSettings(batch=BatchSettings(queue=1, max_batch=1), retry_after_s=2)
        batcher = Batcher([ThreadLane(spec, max_streams=4)], settings)
        loop = asyncio.get_running_loop()
        job = Job("s", "w", support.jpeg_window(2))
        early = batcher.submit(job, loop.time() + 5)
        await batcher.start()
        first = batcher.submit(job, loop.time() + 5)
        await asyncio.sleep(0.05)  # `first` is in the estimator
        second = batcher.submit(job, loop.time() + 5)
        third = batcher.submit(job, loop.time() + 5)
        assert not isinstance(first, Failure) and not isinstance(second, Failure)
        done = [await first.future, await second.future]
        await batcher.stop()
        return [early, third, *done]

    early, third, *done = asyncio.run(scenario())
    assert early == Failure(503, "the server is warming up; retry later", retry_after=2)
    assert isinstance(third, Failure) and third.status == 429 and third.retry_after == 2
    assert all(isinstance(d, bytes) for d in done)
