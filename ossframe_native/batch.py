"""``process_many()``: one process string over many sources, on an executor, resumable.

* Sources: paths, URLs (``s3://``, ``oss://``, ``gs://``, ``http(s)://``), glob patterns
  (``*``, ``?``, ``[``; ``**`` recurses) over folders and over buckets
  (``s3://bucket/videos/**/*.mp4``) and manifest files (``@list`` or any ``*.txt``: one path or
  URL per line, blank lines and ``#`` comments ignored, relative paths taken from the
  manifest's folder). Duplicates are dropped, the first kept.
* Executors: ``"local"`` (default) is a pool of ``workers`` processes (default: one per core),
  each decoding with ``cores // workers`` threads, so the machine is not oversubscribed;
  ``workers=1`` runs in this process. ``"ray"`` runs the same per-source function as Ray tasks
  on a cluster (``ossframe_native.ray``, ``pip install 'ossframe_native[ray]'``; see
  docs/RAY.md). Both call :func:`ossframe_native.jobs.run_source` (the executor interface lives
  in :mod:`ossframe_native.jobs`), so the outputs, report lines and records are the same
  whichever runs a batch, and a batch started on one can be resumed on the other. The process
  string is parsed and checked once per batch (a :class:`~ossframe_native.task.TaskPlan`
  carried by every job).
* Every source's result is recorded in the store (``.tasks/<key>.json``) by the task itself;
  a re-run skips sources whose record says ``Succeeded`` for the same file (same size and
  modification time), so an interrupted batch resumes where it stopped.
* A failing source is reported (``Failed``, with its error) and the others go on; a worker
  process that dies is replaced, and the sources it might have been working on are retried
  one at a time so the one that kills its worker is found and reported ``WorkerCrashed``
  (on Ray: retried ``max_retries`` times, then reported ``WorkerCrashed``). A record that
  cannot be read (a directory, a symbolic link, a FIFO) does not stop its source or the batch.
* Ctrl-C (SIGINT): the batch stops handing out sources, the sources being run finish and are
  reported, then ``KeyboardInterrupt`` is raised; a second Ctrl-C stops at once. Pool workers
  watch the batch process: if it is killed they exit at once (within about a second) instead
  of running the sources queued for them.
* One JSON line per source goes to ``report`` (a path or a text file object): the task result
  plus ``"skipped": true|false``. A progress bar on stderr counts sources, frames written and
  frames per second.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # the pool modules are imported when a pool starts (CLI start-up time)
    import concurrent.futures as cf
    from multiprocessing.connection import Connection

from ossframe_native import notify as _notify
from ossframe_native import sources as _sources
from ossframe_native import task as _task
from ossframe_native.errors import InvalidArgument
from ossframe_native.jobs import (
    Executor,
    Job,
    done_line,
    expand_sources,
    failed_line,
    run_source,
)
from ossframe_native.store import Store

__all__ = [
    "BatchSummary",
    "Executor",
    "Job",
    "LocalExecutor",
    "expand_sources",
    "process_many",
    "run_source",
]

EXECUTORS = ("local", "ray")
# How often the pool loop looks at Ctrl-C while it waits for sources to finish (s).
_POLL_S = 0.2


@dataclass
class BatchSummary:
    """Counts of a batch run; the per-source details are in the report and the store."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0  # outputs written in this run
    bytes: int = 0
    elapsed_s: float = 0.0
    workers: int = 1
    threads: int | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "frames": self.frames,
            "bytes": self.bytes,
            "elapsed_s": round(self.elapsed_s, 3),
            "workers": self.workers,
            "threads": self.threads,
            "failures": self.failures,
        }


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def process_many(
    sources: Iterable[str | os.PathLike[str]] | str,
    spec: str,
    store: Store | str | os.PathLike[str] | None = None,
    workers: int | None = None,
    topics: Mapping[str, str | _notify.Webhook] | None = None,
    report: str | os.PathLike[str] | IO[str] | None = None,
    progress: bool = True,
    resume: bool = True,
    threads: int | None = None,
    executor: str | Executor = "local",
    address: str | None = None,
    max_retries: int = 3,
    storage_options: Mapping[str, Any] | None = None,
    device: str = "cpu",
    decoders: int | None = None,
) -> BatchSummary:
    """Runs ``spec`` (which must have ``sys/saveas``) on every source; see the module docstring.

    ``executor``: ``"local"`` (a process pool of ``workers``, each with ``threads`` decoder
    threads), ``"ray"`` (Ray tasks on the cluster at ``address``, else ``RAY_ADDRESS``, else a
    local Ray started and stopped for this batch; ``threads`` is then the CPUs each task asks
    for, and a task whose worker dies is retried ``max_retries`` times), or an object with the
    :class:`Executor` protocol. ``device="cuda"`` (or ``decoders``) runs the sources in this
    process instead, ``decoders`` at once on that device (``loader.DeviceExecutor``).
    ``storage_options`` open URL sources and list bucket globs (see ``ofn.snapshot``); they
    travel with each job to the workers.

    Raises ``InvalidArgument`` before any work when the spec, store, topics, sources, worker
    counts or executor are not valid; per-source failures are reported, not raised.
    """
    plan = _task.prepare(spec, store, topics)  # the one parse of the process string
    _sources.check_options(storage_options)  # InvalidArgument now, not per source
    paths = expand_sources(sources, storage_options)
    _check_count("workers", workers)
    _check_count("threads", threads)
    if plan.store.in_process and (executor != "local" or (workers is not None and workers > 1)):
        raise InvalidArgument(
            "workers",
            f"{plan.store!r} lives in this process only; workers elsewhere cannot write to "
            "it: use workers=1 or a store on disk / object storage",
        )
    if plan.store.in_process:
        workers = 1
    if device != "cpu" or decoders is not None:
        from ossframe_native.loader import DeviceExecutor

        executor = DeviceExecutor(device, decoders, threads)
    runner = _executor(executor, workers, threads, address, max_retries, len(paths))
    summary = BatchSummary(total=len(paths))
    started = time.perf_counter()
    with _Reporter(summary, report, progress, started) as reporter:
        jobs = [Job(path, plan, resume=resume, storage_options=storage_options) for path in paths]
        if resume and isinstance(runner, LocalExecutor):
            # Here the records are as near as the sources: skip done sources before a pool
            # starts, and size the pool to what is left. Elsewhere each task checks its own
            # record, on the cluster, in parallel.
            jobs = _drop_done(jobs, reporter)
            runner = _executor("local", workers, threads, None, max_retries, len(jobs))
        try:
            for _job, line in runner.run(jobs):
                reporter.emit(line)
        finally:
            summary.workers, summary.threads = runner.workers, runner.threads
    return summary


def _drop_done(jobs: list[Job], reporter: _Reporter) -> list[Job]:
    """The jobs still to run; a skipped line is reported for each done one. A job whose record
    cannot be read stays to be resumed, so that the worker running it reports why."""
    pending = []
    for job in jobs:
        try:
            line = done_line(job)
        except Exception:  # noqa: BLE001 - a record never stops the batch
            pending.append(job)
            continue
        if line is None:
            pending.append(job._replace(resume=False))
        else:
            reporter.emit(line)
    return pending


def _check_count(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidArgument(name, f"{name} must be an integer >= 1, not {value!r}")


def _executor(
    executor: str | Executor,
    workers: int | None,
    threads: int | None,
    address: str | None,
    max_retries: int,
    jobs: int,
) -> Executor:
    """The executor named by ``executor`` (or ``executor`` itself when it is one)."""
    if not isinstance(executor, str):
        if not callable(getattr(executor, "run", None)):
            raise InvalidArgument(
                "executor", f"must be one of {', '.join(EXECUTORS)} or an Executor object"
            )
        return executor
    if executor == "local":
        if address is not None:
            raise InvalidArgument("address", "an address is for executor='ray' only")
        cores = cpu_count()
        count = max(1, min(workers or cores, jobs or 1))
        if threads is None and count > 1:
            threads = max(1, cores // count)
        return LocalExecutor(count, threads)
    if executor == "ray":
        if workers is not None:
            raise InvalidArgument(
                "workers",
                "Ray runs as many tasks as the cluster has CPUs; give threads= (CPUs "
                "per task) instead",
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidArgument("max_retries", f"must be an integer >= 0, not {max_retries!r}")
        try:
            from ossframe_native.ray import RayExecutor
        except ImportError as exc:
            raise InvalidArgument(
                "executor", f"executor='ray' needs Ray: pip install 'ossframe_native[ray]' ({exc})"
            ) from exc
        return RayExecutor(address=address, cpus_per_task=threads or 1, max_retries=max_retries)
    raise InvalidArgument(
        "executor", f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}"
    )


class _Reporter:
    """Counts lines into the summary, writes the JSON-lines report and moves the progress bar."""

    def __init__(
        self,
        summary: BatchSummary,
        report: str | os.PathLike[str] | IO[str] | None,
        progress: bool,
        started: float,
    ) -> None:
        self.summary = summary
        self.started = started
        self.own_report = report is not None and not hasattr(report, "write")
        self.out: IO[str] | None = (
            open(os.fspath(report), "w", encoding="utf-8")  # type: ignore[arg-type]  # noqa: SIM115
            if self.own_report
            else report  # type: ignore[assignment]
        )
        self.bar = _progress_bar(summary.total, progress)

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.summary.elapsed_s = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.close()
        if self.own_report and self.out is not None:
            self.out.close()

    def emit(self, line: dict[str, Any]) -> None:
        summary = self.summary
        skipped = bool(line.get("skipped"))
        if skipped:
            summary.skipped += 1
        elif line.get("state") == _task.SUCCEEDED:
            summary.succeeded += 1
        else:
            summary.failed += 1
            summary.failures.append(
                {
                    "source": line.get("source"),
                    "error_code": line.get("error_code"),
                    "error_message": line.get("error_message"),
                }
            )
        if not skipped:
            summary.frames += int(line.get("outputs") or 0)
            summary.bytes += int(line.get("bytes_written") or 0)
        if self.out is not None:
            self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.out.flush()
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            postfix = {
                "frames": summary.frames,
                "fps": f"{summary.frames / elapsed:.1f}",
                "failed": summary.failed,
                "skipped": summary.skipped,
            }
            self.bar.set_postfix(ordered_dict=postfix, refresh=False)
            self.bar.update(1)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="src", desc="ossframe", file=sys.stderr, dynamic_ncols=True)


# -- the local executor: this process, or a process pool -------------------------------------------


class LocalExecutor:
    """Runs jobs in this process (``workers=1``) or in a pool of ``workers`` processes, each
    job decoding with ``threads`` threads (passed with the job, not through the environment).

    Ctrl-C while it runs: no more jobs start, those running finish and are yielded, then
    ``KeyboardInterrupt`` is raised (a second Ctrl-C raises it at once).
    """

    def __init__(self, workers: int = 1, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, dict[str, Any]]]:
        jobs = [job._replace(threads=self.threads) for job in jobs]
        with _first_interrupt_stops() as stop:
            if self.workers == 1:
                for job in jobs:
                    if stop.is_set():
                        break
                    yield job, run_source(job)
            else:
                yield from _run_pool(jobs, run_source, self.workers, stop)
        if stop.is_set():
            raise KeyboardInterrupt


@contextlib.contextmanager
def _first_interrupt_stops() -> Iterator[threading.Event]:
    """While in the block, a first SIGINT only sets the event it gives (the batch then stops
    handing out sources and reports those in flight); a second raises ``KeyboardInterrupt``.

    Ctrl-C reaches the whole process group: pool workers ignore it and finish their source.
    Signal handlers belong to the main thread; elsewhere (or where SIGINT is ignored) nothing
    changes.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield stop
        return

    def first_stops(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, first_stops)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _init_worker(batch_alive: Connection) -> None:
    # Ctrl-C goes to the whole process group: the parent stops handing out work and the
    # workers finish (and record) the source they are on instead of dying mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with_batch, args=(batch_alive,), name="watch-batch", daemon=True
    ).start()


def _exit_with_batch(batch_alive: Connection) -> None:
    """Waits for the batch process to end (its end of the pipe closes: killed or not) and ends
    this worker at once. Without it a worker of a killed batch would run the sources queued for
    it, racing a resumed batch, and then wait forever for more. Leaving mid-source is safe: an
    object being written stays a hidden temporary file, and nothing is recorded."""
    with contextlib.suppress(EOFError, OSError):
        while True:
            batch_alive.recv_bytes()  # nothing is ever sent: this returns at EOF
    os._exit(1)


def _new_pool(workers: int, batch_alive: Connection) -> cf.ProcessPoolExecutor:
    import concurrent.futures as cf
    import multiprocessing

    # Workers fork from a server that imported the engine once (each spawned worker would pay
    # numpy/PyAV/OpenCV imports again); the server itself is single-threaded, so forking it is
    # safe. Where there is no forkserver, spawn.
    context: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(["ossframe_native.api", "ossframe_native.task"])
        context = forkserver
    else:
        context = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(batch_alive,),
    )


Runner = Callable[[Job], dict[str, Any]]


def _run_pool(
    jobs: Sequence[Job], runner: Runner, workers: int, stop: threading.Event | None = None
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """``(job, runner(job))`` for every job, in completion order, surviving worker deaths.

    At most ``2 * workers`` jobs are in flight. When a worker dies every job in flight is a
    suspect; suspects are run again afterwards one at a time in a one-worker pool, where a
    death can only be that job's. Once ``stop`` is set no job starts; those already running
    are waited for and yielded. Workers get the read end of a pipe whose write end only this
    process holds: they exit when it closes (:func:`_exit_with_batch`).
    """
    import multiprocessing

    stop = stop or threading.Event()
    batch_alive, alive = multiprocessing.Pipe(duplex=False)
    try:
        queue: deque[Job] = deque(jobs)
        suspects: list[Job] = []
        yield from _drain(queue, runner, workers, suspects, False, stop, batch_alive)
        while suspects and not stop.is_set():
            queue = deque(suspects)
            suspects = []
            yield from _drain(queue, runner, 1, suspects, True, stop, batch_alive)
    finally:
        alive.close()
        batch_alive.close()


def _drain(
    queue: deque[Job],
    runner: Runner,
    workers: int,
    suspects: list[Job],
    isolate: bool,
    stop: threading.Event,
    batch_alive: Connection,
) -> Iterator[tuple[Job, dict[str, Any]]]:
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    limit = 1 if isolate else 2 * workers
    while queue and not stop.is_set():
        pool = _new_pool(workers, batch_alive)
        inflight: dict[cf.Future[dict[str, Any]], Job] = {}
        broken = False
        try:
            while inflight or (queue and not stop.is_set()):
                while queue and len(inflight) < limit and not stop.is_set():
                    job = queue.popleft()
                    inflight[pool.submit(runner, job)] = job
                done, _ = cf.wait(inflight, timeout=_POLL_S, return_when=cf.FIRST_COMPLETED)
                if stop.is_set():
                    for future in inflight:
                        future.cancel()  # only those no worker has taken yet
                for future in done | {f for f in inflight if f.cancelled()}:
                    job = inflight.pop(future)
                    if future.cancelled():
                        continue
                    try:
                        yield job, future.result()
                    except BrokenProcessPool:
                        broken = True
                        if isolate:
                            yield job, failed_line(job)
                        else:
                            suspects.append(job)
                if broken:
                    break
            if broken:
                # A broken pool fails every pending future at once; collect them all.
                cf.wait(inflight)
                for future, job in inflight.items():
                    if not future.cancelled() and future.exception() is None:
                        yield job, future.result()
                    elif isolate:
                        queue.appendleft(job)
                    else:
                        suspects.append(job)
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
