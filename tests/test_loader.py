"""loader.py: several sources decoding at once, results in source order, bounded; the device
default; and the batch executor built on it, run with CPU decoders (the GPU-only parts are the
decoders' and renderers' own: hwdecode, open_gpu, torch_ops, tested in test_ml.py).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from media import make_clip, saveas

from ossframe_native import hwdecode, loader, pipeline, task
from ossframe_native.batch import process_many
from ossframe_native.errors import InvalidArgument, MediaError
from ossframe_native.params import SnapshotsRequest
from ossframe_native.store import LocalStore


class Recorder:
    """A produce function for :func:`loader.ordered` that records, under a lock, how many items
    run at once, how far each one is ahead of the caller and which were closed."""

    def __init__(self, counts: list[int], fail_at: int | None = None, pause: float = 0.002):
        self.counts, self.fail_at, self.pause = counts, fail_at, pause
        self.lock = threading.Lock()
        self.running = self.most_running = 0
        self.started: list[int] = []
        self.closed: set[int] = set()
        self.produced = [0] * len(counts)
        self.taken = [0] * len(counts)
        self.most_ahead = 0

    def __call__(self, item: int):
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.started.append(item)
        try:
            for k in range(self.counts[item]):
                time.sleep(self.pause * ((item * 7 + k) % 3))  # items finish out of order
                if item == self.fail_at and k == 1:
                    raise MediaError(f"item {item} is broken")
                with self.lock:
                    self.produced[item] += 1
                    self.most_ahead = max(self.most_ahead, self.produced[item] - self.taken[item])
                yield (item, k)
        finally:
            with self.lock:
                self.running -= 1
                self.closed.add(item)

    def take(self, position: int) -> None:
        with self.lock:
            self.taken[position] += 1


def test_ordered_keeps_the_order_and_its_bounds() -> None:
    counts = [3, 0, 5, 1, 4, 2, 6, 0, 3, 2, 5, 1]
    produce = Recorder(counts)
    got = []
    outstanding = []
    for position, result in loader.ordered(range(len(counts)), produce, 3, window=5, ahead=2):
        produce.take(position)
        got.append((position, result))
        with produce.lock:  # sources started and not yet handed out in full
            outstanding.append(len(produce.started) - position)
    assert got == [(i, (i, k)) for i, n in enumerate(counts) for k in range(n)]
    assert produce.most_running <= 3 and produce.most_running >= 2
    assert max(outstanding) <= 5  # the window
    assert produce.most_ahead <= 2 + 1  # `ahead` waiting, plus the one being put
    assert produce.closed == set(range(len(counts)))


def test_an_error_comes_in_turn_and_stops_the_rest() -> None:
    counts = [2, 2, 4, 2, 2, 2, 2, 2]
    produce = Recorder(counts, fail_at=2)
    got = []
    threads_before = threading.active_count()
    with pytest.raises(MediaError, match="item 2 is broken"):
        for position, result in loader.ordered(range(len(counts)), produce, 2, ahead=1):
            produce.take(position)
            got.append(result)
    assert got == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]  # everything before the error
    assert produce.running == 0 and set(produce.started) == produce.closed
    assert len(produce.started) <= 2 + 4  # the window: later items never started
    assert threading.active_count() == threads_before  # the workers are gone


def test_stopping_early_releases_every_source() -> None:
    produce = Recorder([50] * 20, pause=0.001)
    results = loader.ordered(range(20), produce, 4)
    assert next(results) == (0, (0, 0))
    results.close()  # the caller stops: running items stop at their next result
    assert produce.running == 0 and set(produce.started) == produce.closed
    assert len(produce.started) <= 8 and sum(produce.produced) < 1000


def test_decoders_for_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loader.ENV, raising=False)
    assert loader.decoders_for("cpu") == 1
    assert loader.decoders_for("cuda:0", "NVIDIA H200") == 7
    assert loader.decoders_for("cuda", "NVIDIA H100 80GB HBM3") == 7
    assert loader.decoders_for("cuda", "NVIDIA A100-SXM4-80GB") == 5
    assert loader.decoders_for("cuda", "NVIDIA GeForce RTX 3090") == loader.DEFAULT_GPU_DECODERS
    monkeypatch.setenv(loader.ENV, "3")
    assert loader.decoders_for("cuda", "NVIDIA H200") == loader.decoders_for("cpu") == 3
    monkeypatch.setenv(loader.ENV, "0")
    with pytest.raises(InvalidArgument) as info:
        loader.decoders_for("cpu")
    assert info.value.param == loader.ENV
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(InvalidArgument, match="integer >= 1"):
            loader.check_decoders(bad)
    assert loader.threads_per_source(10_000) == 1


# -- batches: the executor that runs sources on a device ------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("loader_clips")
    for name in "abcd":
        make_clip(folder / f"{name}.mp4", n_frames=20, size=(128, 72), gop=10, seed=ord(name))
    (folder / "bad.mp4").write_bytes(b"\x00not a video" * 50)
    return folder


SPEC = saveas("frames", "{barename}/{index}.{autoext}", "video/snapshots,f_jpg,m_key,w_64,h_48")


def _objects(root: Path) -> dict[str, bytes]:
    store = LocalStore(root)
    return {key: (root / "frames" / key).read_bytes() for key in store.list("frames")}


def test_device_executor_writes_what_the_pool_writes(clips: Path, tmp_path: Path) -> None:
    """process_many(decoders=N): N sources at once in this process (the scheduler a GPU batch
    uses, here with CPU decoders): the same objects, byte for byte, and one line per source."""
    sources = [str(clips / f"{n}.mp4") for n in ("a", "bad", "b", "c", "d")]
    pool = process_many(sources, SPEC, store=tmp_path / "pool", workers=1, progress=False)
    report = tmp_path / "report.jsonl"
    on_device = process_many(
        sources, SPEC, store=tmp_path / "dev", decoders=3, report=report, progress=False
    )
    assert (on_device.succeeded, on_device.failed) == (pool.succeeded, pool.failed) == (4, 1)
    assert on_device.workers == 3
    assert _objects(tmp_path / "dev") == _objects(tmp_path / "pool")
    lines = report.read_text().splitlines()
    assert [line.split('"source": "')[1].split('"')[0] for line in lines] == sources
    with pytest.raises(InvalidArgument) as info:
        process_many(sources, SPEC, store=tmp_path / "x", decoders=0, progress=False)
    assert info.value.param == "decoders"


def test_decoding_on_a_gpu_falls_back_to_the_cpu_with_a_reason(
    clips: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task run by a GPU executor (pipeline.decoding_on) where no GPU decoder opens: decoded
    on the CPU, the reason logged, the same bytes as without."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: test_gpu_batch_decodes_on_nvdec runs instead")
    monkeypatch.setattr(hwdecode, "_logged", set())
    source = str(clips / "a.mp4")
    with caplog.at_level(logging.DEBUG, logger="ossframe_native.hwdecode"):
        with pipeline.decoding_on("cuda"):
            on_gpu = task.process(source, SPEC, store=LocalStore(tmp_path / "gpu"))
        plain = task.process(source, SPEC, store=LocalStore(tmp_path / "cpu"))
    assert "on the CPU" in caplog.text
    assert on_gpu.outputs == plain.outputs == 2
    assert _objects(tmp_path / "gpu") == _objects(tmp_path / "cpu")
    assert getattr(pipeline._device, "hw", None) is None  # reset after the block


@pytest.mark.cuda
def test_gpu_batch_decodes_on_nvdec(clips: Path, tmp_path: Path) -> None:
    """ossframe batch --device cuda: sources decoded by NVDEC (hashed and rendered on the GPU,
    encoded on the CPU), several at once; the images are the CPU batch's within 40 dB."""
    import cv2
    from media import psnr

    from ossframe_native.cli import main

    sources = [str(clips / f"{n}.mp4") for n in "abcd"]
    cpu = process_many(sources, SPEC, store=tmp_path / "cpu", workers=1, progress=False)
    argv = ["batch", *sources, SPEC, "--root", str(tmp_path / "gpu"), "--device", "cuda"]
    assert main([*argv, "--decoders", "3", "--no-progress", "--report", str(tmp_path / "r")]) == 0
    keyframes = SnapshotsRequest.from_kwargs(dict(m="key"))
    with pipeline.decoding_on("cuda"), pipeline.open_capture(sources[0], keyframes) as run:
        assert run.source.hw is not None and next(run.outputs()).frame.format.name == "cuda"
    got, expected = _objects(tmp_path / "gpu"), _objects(tmp_path / "cpu")
    assert cpu.succeeded == 4 and sorted(got) == sorted(expected)
    for key, data in got.items():
        on_gpu, on_cpu = (
            cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
            for b in (data, expected[key])
        )
        assert psnr(on_gpu, on_cpu) >= 40, key
