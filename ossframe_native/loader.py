"""Many sources at once: a bounded number of decoders in flight, results in source order.

A GPU has several hardware decoders (NVDEC engines: 7 on an H100 or H200), and one source at a
time keeps only a few of them busy. :func:`ordered` runs a per-source function on up to
``decoders`` worker threads: each one opens its source, demuxes it on that CPU thread, decodes
(on its own NVDEC sessions where ``hwdecode`` allows, else on the CPU) and renders, while the
caller takes the results in the order of the sources. ``ml.frames_batches``, ``FrameDataset``,
``ray.read_frames`` and ``process_many(device=...)`` run on it.

Bounds, so that memory (GPU memory too) stays bounded whatever the number of sources:

* ``decoders`` sources are decoded at once (:func:`decoders_for` chooses it from the device;
  ``OSSFRAME_DECODERS`` overrides it);
* at most ``window`` sources (default twice ``decoders``) are started and not yet handed out:
  a source that finished before the ones ahead of it waits there, with its results;
* each source hands over at most ``ahead`` results before the caller takes them: its worker
  waits (keeping its decoder) until the caller catches up.

Everything a source holds (its container, decoder sessions and frames) is released when its
function finishes, or as soon as the caller stops iterating (the remaining sources are not
started, the running ones are stopped at their next result).
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .devices import device_of, import_torch
from .errors import InvalidArgument

__all__ = ["NVDEC_ENGINES", "DeviceExecutor", "decoders_for", "ordered", "threads_per_source"]

T = TypeVar("T")
R = TypeVar("R")

# NVDEC engines per GPU (NVIDIA's video encode and decode support matrix), by a word of the name
# torch reports; a GPU not listed gets DEFAULT_GPU_DECODERS.
NVDEC_ENGINES = {
    "H100": 7,
    "H200": 7,
    "H800": 7,
    "GH200": 7,
    "A100": 5,
    "A800": 5,
    "A30": 4,
    "L4": 4,
    "L40": 3,
    "L40S": 3,
    "T4": 2,
}
DEFAULT_GPU_DECODERS = 2
ENV = "OSSFRAME_DECODERS"

_POLL_S = 0.1  # how often a waiting worker checks whether the caller stopped


def decoders_for(device: str, name: str | None = None) -> int:
    """How many sources decode at once on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``):
    ``OSSFRAME_DECODERS`` when set; on the CPU 1 (one source, decoded with every core); on a
    GPU its number of NVDEC engines (:data:`NVDEC_ENGINES`, from ``name``, else the name torch
    reports for the device), so that each engine has a source to decode."""
    value = os.environ.get(ENV, "")
    if value:
        return check_decoders(int(value) if value.isdigit() else value, ENV)
    if device == "cpu":
        return 1
    if name is None:
        name = import_torch("a GPU device").cuda.get_device_name(device)
    words = name.replace("-", " ").split()
    return next((NVDEC_ENGINES[w] for w in words if w in NVDEC_ENGINES), DEFAULT_GPU_DECODERS)


def check_decoders(value: Any, param: str = "decoders") -> int:
    """``value`` if it is an integer >= 1, else InvalidArgument naming ``param``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(
            param, f"must be an integer >= 1 (sources decoded at once), got {value!r}"
        )
    return value


def threads_per_source(decoders: int) -> int:
    """Decoder threads for each of ``decoders`` sources in flight: the cores this process may
    use, shared evenly (at least 1). On a GPU they demux, and each is one NVDEC session for
    a source's runs decoded in parallel."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // decoders)


def ordered(
    items: Sequence[T],
    produce: Callable[[T], Iterable[R]],
    decoders: int,
    *,
    window: int | None = None,
    ahead: int = 64,
) -> Iterator[tuple[int, R]]:
    """``(position, result)`` for every result of ``produce(item)``, item by item in order,
    with up to ``decoders`` items produced at once on worker threads (see the module docstring
    for ``window`` and ``ahead``). An exception of ``produce`` is raised here when its item's
    turn comes, after the results it gave before it."""
    window = max(window or 2 * decoders, decoders)
    stop = threading.Event()
    upcoming = iter(enumerate(items))
    started: deque[tuple[int, queue.Queue[tuple[str, Any]]]] = deque()
    with ThreadPoolExecutor(decoders, thread_name_prefix="ossframe-decoder") as pool:

        def start() -> None:
            for position, item in upcoming:
                results: queue.Queue[tuple[str, Any]] = queue.Queue(ahead)
                pool.submit(_produce, produce, item, results, stop)
                started.append((position, results))
                return

        try:
            for _ in range(window):
                start()
            while started:
                position, results = started[0]
                while (message := results.get())[0] == "result":
                    yield position, message[1]
                if message[0] == "error":
                    raise message[1]
                started.popleft()
                start()
        finally:
            stop.set()  # workers stop at their next result; queued items do not start


def _produce(
    produce: Callable[[T], Iterable[R]],
    item: T,
    results: queue.Queue[tuple[str, Any]],
    stop: threading.Event,
) -> None:
    """Runs ``produce(item)`` into ``results``; ends with ``("done", None)`` or ``("error",
    exception)``. Returns early (closing the producer) once ``stop`` is set."""
    if stop.is_set():
        return
    produced: Iterator[R] = iter(())
    try:
        produced = iter(produce(item))
        for result in produced:
            if not _put(results, ("result", result), stop):
                return
        _put(results, ("done", None), stop)
    except BaseException as exc:  # handed to the caller, in order
        _put(results, ("error", exc), stop)
    finally:
        close = getattr(produced, "close", None)
        if close is not None:
            close()  # a generator's with-blocks exit: the source and its decoders are released


def _put(
    results: queue.Queue[tuple[str, Any]], message: tuple[str, Any], stop: threading.Event
) -> bool:
    """Puts ``message`` once there is room; False (nothing put) if the caller stopped first."""
    while not stop.is_set():
        try:
            results.put(message, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class DeviceExecutor:
    """A batch executor (the ``jobs.Executor`` protocol) that runs every job in this process,
    ``decoders`` sources at once (:func:`ordered`), their captures decoding on ``device``
    (``"cuda"``, ``"cuda:N"``; NVDEC where ``hwdecode`` allows, rendered on that GPU, encoded
    on the CPU). CUDA cannot run in forked worker processes: a pool of threads shares the GPU.
    ``device="cpu"`` runs the same scheduler on CPU decoders."""

    def __init__(self, device: str, decoders: int | None = None, threads: int | None = None):
        self.device = device_of(device)
        self.workers = decoders_for(self.device) if decoders is None else check_decoders(decoders)
        self.threads: int | None = threads or threads_per_source(self.workers)

    def run(self, jobs: Sequence[Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``(job, report line)`` for every job, in the order of ``jobs``."""
        from .jobs import run_source
        from .pipeline import decoding_on

        hw = None if self.device == "cpu" else self.device

        def one(job: Any) -> Iterator[dict[str, Any]]:
            with decoding_on(hw):
                yield run_source(job._replace(threads=self.threads))

        for position, line in ordered(jobs, one, self.workers, ahead=1):
            yield jobs[position], line
