"""Ray: batches on a cluster (:class:`RayExecutor`) and frame datasets (:func:`read_frames`).

Needs the ``ray`` extra (``pip install 'ossframe_native[ray]'``); ``import ossframe_native``
never imports this module. See docs/RAY.md.

* :class:`RayExecutor` runs a batch's jobs as Ray tasks. Each task runs the same per-source
  function as the local process pool (:func:`ossframe_native.jobs.run_source`), so the objects,
  report lines and resume records are the same. At most a few tasks per cluster CPU are in
  flight; a task whose worker or node dies is retried ``max_retries`` times, then reported
  ``WorkerCrashed``.
* :func:`read_frames` is a ``ray.data.Dataset`` of exactly the frames ``ofn.frames`` captures,
  one row per frame (or one per source with ``clips=True``, as ``ofn.frames_batch``).
"""

from __future__ import annotations

import functools
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import ray
import ray.exceptions

from ossframe_native.errors import InvalidArgument
from ossframe_native.jobs import Job, expand_sources, failed_line, run_source

__all__ = ["RayExecutor", "read_frames"]

# Tasks in flight per task slot: enough to hide scheduling latency, few enough that a batch of
# a million sources never holds a million object refs.
IN_FLIGHT_PER_SLOT = 2


def connect(address: str | None = None) -> bool:
    """Connects this process to Ray unless it is already; returns True when it connected.

    ``address`` (else ``RAY_ADDRESS``) names a running cluster; without one a local Ray is
    started (no dashboard). Workers of a local Ray see this process's ``PYTHONPATH``.
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(  # "local": a new instance, never a cluster some other program left running
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=_local_runtime_env(),
        )
    return True


def _local_runtime_env() -> dict[str, Any]:
    """Lets workers of a local Ray import this package from where this process found it."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package's
    path = os.pathsep.join(p for p in (parent, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def assigned_cpus() -> int:
    """The CPUs Ray gave the running task (at least 1): its decoder thread count."""
    resources = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(resources.get("CPU", 1)))


# untyped-decorator: where ray is not installed, type checkers see ray.remote as Any.
@ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)  # type: ignore[untyped-decorator, unused-ignore]
def _run_task(job: Job) -> tuple[dict[str, Any], str]:
    """One job as a Ray task: decoding on the CPUs Ray assigned; returns (line, node id)."""
    line = run_source(job._replace(threads=assigned_cpus()))
    return line, ray.get_runtime_context().get_node_id()


class RayExecutor:
    """Runs batch jobs as Ray tasks (see the module docstring).

    ``address``: the cluster (default ``RAY_ADDRESS``, else a local Ray started and stopped by
    :meth:`run`). ``cpus_per_task``: the CPUs each task reserves and decodes with.
    ``max_retries``: how often a task whose worker or node died is run again. After a run,
    ``nodes`` maps each source to the id of the node that ran it.
    """

    def __init__(
        self, address: str | None = None, cpus_per_task: int = 1, max_retries: int = 3
    ) -> None:
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.max_retries = max_retries
        self.workers = 0
        self.threads: int | None = cpus_per_task
        self.nodes: dict[str, str] = {}

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, dict[str, Any]]]:
        """``(job, line)`` for every job in completion order (the :class:`Executor` protocol)."""
        if not jobs:
            return
        started_here = connect(self.address)
        try:
            yield from self._run(jobs)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, dict[str, Any]]]:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, cpus // self.cpus_per_task)
        window = IN_FLIGHT_PER_SLOT * self.workers
        # SPREAD: sources go to every node from the start, rather than queueing on the
        # driver's node until it is busy (a source is seconds of work; locality buys nothing).
        task = _run_task.options(
            num_cpus=self.cpus_per_task, max_retries=self.max_retries, scheduling_strategy="SPREAD"
        )
        queue: deque[Job] = deque(jobs)
        inflight: dict[ray.ObjectRef[Any], Job] = {}
        try:
            while queue or inflight:
                while queue and len(inflight) < window:
                    job = queue.popleft()
                    inflight[task.remote(job)] = job
                for ref in _finished(list(inflight)):
                    job = inflight.pop(ref)
                    yield job, self._outcome(job, ref)
        finally:
            for ref in inflight:  # an abandoned batch (Ctrl-C, an error) leaves no tasks behind
                ray.cancel(ref)

    def _outcome(self, job: Job, ref: ray.ObjectRef[Any]) -> dict[str, Any]:
        """The job's line; a task that Ray could not complete becomes a ``Failed`` line."""
        try:
            line, node = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # a Python error around run_source (import)
            return failed_line(job, exc.cause if exc.cause is not None else exc)
        except ray.exceptions.RayError as exc:  # the worker, its node or the result was lost
            text = str(exc).strip()
            why = text.splitlines()[0] if text else ""
            message = (
                f"the Ray worker running this source died or was lost, {self.max_retries + 1} "
                f"time(s) with retries ({type(exc).__name__}: {why})"
            )
            return failed_line(job, message=message)
        self.nodes[job.source] = node
        result: dict[str, Any] = line
        return result


def _finished(refs: list[ray.ObjectRef[Any]]) -> list[ray.ObjectRef[Any]]:
    """Waits for one of ``refs`` to finish; returns it and all others finished by then (one
    pass over the window per wake-up, not one per task)."""
    done: list[ray.ObjectRef[Any]]
    done, rest = ray.wait(refs, num_returns=1)
    if rest:
        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
        done += more
    return done


# -- frames as a Ray Dataset -----------------------------------------------------------------------


_NOT_CAPTURE = ("paths", "clips", "storage_options", "num_cpus", "device", "decoders")
_DEVICES = ("cpu", "cuda", "cuda:<index>")
# Sources one task takes on a device when decoders is not given (on the driver the GPU model is
# unknown): twice an H100/H200's NVDEC engines.
_SOURCES_PER_DEVICE_TASK = 14


def read_frames(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    m: str = "default",
    thr: int = 0,
    inter: int = 0,
    num: int = 0,
    ss: int = 0,
    w: int | None = None,
    h: int | None = None,
    pw: int | None = None,
    ph: int | None = None,
    scaletype: str = "stretch",
    clips: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    num_cpus: float = 1,
    device: str = "cpu",
    decoders: int | None = None,
) -> Any:
    """A ``ray.data.Dataset`` of the frames ``ofn.frames`` captures from each source.

    ``paths``: paths, URLs (``s3://``, ``oss://``, ``gs://``, ``http(s)://``, opened with
    ``storage_options``), globs over folders or buckets and manifests, as ``ossframe batch``
    takes them, that every node can read. The capture
    arguments are those of ``ofn.frames`` (OSS ``video/snapshots`` parameters). Rows:

    * default: one per frame, ``{"source", "time_ms", "index", "keyframe", "score", "frame"}``,
      ``frame`` an (H, W, 3) RGB uint8 array;
    * ``clips=True``: one per source, ``{"source", "times_ms", "indices", "keyframes",
      "frames"}``, ``frames`` the (N, H, W, 3) array of ``ofn.frames_batch``.

    Each source is one task of ``num_cpus`` CPUs and decodes with that many threads. With
    ``device="cuda"`` each task takes one GPU and a group of sources (twice ``decoders``, else
    14), decoding ``decoders`` of them at once on it (default: one per NVDEC engine); rows are
    the same, NumPy arrays. ``decoders`` on the CPU groups sources the same way. The
    arguments are checked here; a source that cannot be read fails the dataset's execution
    with its ``MediaError``, as any Ray Data read does.
    """
    options = {name: value for name, value in locals().items() if name not in _NOT_CAPTURE}
    from ossframe_native.loader import check_decoders
    from ossframe_native.params import SnapshotsRequest

    SnapshotsRequest.from_kwargs(options)  # InvalidArgument now, not in a task later
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus <= 0:
        raise InvalidArgument("num_cpus", f"must be a number > 0, not {num_cpus!r}")
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        # The driver may have no GPU: whether CUDA works is checked in the tasks.
        raise InvalidArgument("device", f"must be one of {', '.join(_DEVICES)}, got {device!r}")
    if decoders is not None:
        check_decoders(decoders)
    sources = expand_sources(_as_list(paths), storage_options)
    if not sources:
        raise InvalidArgument("paths", "give at least one source")
    connect()
    items = [{"source": s} for s in sources]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    bound = {"options": options, "storage_options": dict(storage_options or {})}
    if device != "cpu" or decoders is not None:
        grouped = functools.partial(
            _grouped_rows, **bound, clips=clips, device=device, decoders=decoders
        )
        return ds.map_batches(
            grouped,
            batch_size=2 * decoders if decoders else _SOURCES_PER_DEVICE_TASK,
            num_cpus=num_cpus,
            num_gpus=0 if device == "cpu" else 1,
        )
    if clips:
        return ds.map(functools.partial(_clip_row, **bound), num_cpus=num_cpus)
    return ds.flat_map(functools.partial(_frame_rows, **bound), num_cpus=num_cpus)


def _as_list(paths: Any) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _source_rows(
    source: str,
    options: Mapping[str, Any],
    storage_options: Mapping[str, Any],
    clips: bool,
    threads: int,
    device: str = "cpu",
) -> Iterator[dict[str, Any]]:
    """The rows of one source: its frames, or one clip row; on a GPU decoded and rendered
    there, rows in system memory."""
    from ossframe_native.ml import frames, frames_batch

    on_device: dict[str, Any] = {}
    if device != "cpu":  # tensors on the GPU, handed over as NumPy arrays
        on_device = {"output": "torch", "device": device, "layout": "HWC"}
    opened = {"threads": threads, "storage_options": storage_options, **options, **on_device}
    if clips:
        batch = frames_batch(source, **opened)
        yield {
            "source": source,
            "times_ms": list(batch.times_ms),
            "indices": list(batch.indices),
            "keyframes": list(batch.keyframes),
            "frames": _host(batch.data),
        }
        return
    for frame in frames(source, **opened):
        yield {
            "source": source,
            "time_ms": frame.time_ms,
            "index": frame.index,
            "keyframe": frame.keyframe,
            "score": frame.score,
            "frame": _host(frame.array),
        }


def _host(array: Any) -> Any:
    """A tensor's NumPy copy in system memory; an array as it is."""
    return array if isinstance(array, np.ndarray) else array.cpu().numpy()


def _frame_rows(
    row: dict[str, Any], options: Mapping[str, Any], storage_options: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    return _source_rows(row["source"], options, storage_options, False, assigned_cpus())


def _clip_row(
    row: dict[str, Any], options: Mapping[str, Any], storage_options: Mapping[str, Any]
) -> dict[str, Any]:
    return next(_source_rows(row["source"], options, storage_options, True, assigned_cpus()))


def _grouped_rows(
    batch: Mapping[str, Any],
    options: Mapping[str, Any],
    storage_options: Mapping[str, Any],
    clips: bool,
    device: str,
    decoders: int | None,
) -> dict[str, list[Any]]:
    """The rows of a group of sources, ``decoders`` of them decoding at once on ``device``
    (``loader.ordered``), as columns in source order."""
    from ossframe_native.devices import device_of
    from ossframe_native.loader import decoders_for, ordered

    count = decoders or decoders_for(device_of(device))
    threads = max(1, assigned_cpus() // count)
    sources = [str(s) for s in batch["source"]]

    def rows(source: str) -> Iterator[dict[str, Any]]:
        return _source_rows(source, options, storage_options, clips, threads, device)

    columns: dict[str, list[Any]] = {key: [] for key in (_CLIP_KEYS if clips else _FRAME_KEYS)}
    for _, row in ordered(sources, rows, count):
        for key, value in row.items():
            columns[key].append(value)
    return columns


_FRAME_KEYS = ("source", "time_ms", "index", "keyframe", "score", "frame")
_CLIP_KEYS = ("source", "times_ms", "indices", "keyframes", "frames")
