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
  docs/RAY.md). Both call :func:`run_source`, so the outputs, report lines and records are the
  same whichever runs a batch, and a batch started on one can be resumed on the other.
* Every source's result is recorded in the store (``.tasks/<key>.json``) by the task itself;
  a re-run skips sources whose record says ``Succeeded`` for the same file (same size and
  modification time), so an interrupted batch resumes where it stopped.
* A failing source is reported (``Failed``, with its error) and the others go on; a worker
  process that dies is replaced, and the sources it might have been working on are retried
  one at a time so the one that kills its worker is found and reported ``WorkerCrashed``
  (on Ray: retried ``max_retries`` times, then reported ``WorkerCrashed``).
* One JSON line per source goes to ``report`` (a path or a text file object): the task result
  plus ``"skipped": true|false``. A progress bar on stderr counts sources, frames written and
  frames per second.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # the pool modules are imported when a pool starts (CLI start-up time)
    import concurrent.futures as cf

from ossframe_native import notify as _notify
from ossframe_native import sources as _sources
from ossframe_native import task as _task
from ossframe_native.errors import InvalidArgument, MediaError, error_code
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
WORKER_CRASHED = "WorkerCrashed"
_GLOB_CHARS = frozenset("*?[")


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


def expand_sources(
    items: Iterable[str | os.PathLike[str]], storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Paths, URLs, globs and manifests → the list of sources, in order, without duplicates.

    A glob that matches nothing, or a manifest that cannot be read, is ``InvalidArgument``; a
    plain path or URL is passed on as it is (a missing file or object fails as that source's
    ``MediaError``). Globs over buckets list them with ``storage_options``.
    """
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = _sources.identity(path) or path
        if key not in seen:
            seen.add(key)
            out.append(path)

    for item in items:
        text = os.fspath(item)
        if not isinstance(text, str) or not text:
            raise InvalidArgument("sources", f"{item!r} is not a path")
        if text.startswith("@"):
            for path in _read_manifest(text[1:]):
                add(path)
        elif text.lower().endswith(".txt") and os.path.isfile(text):
            for path in _read_manifest(text):
                add(path)
        elif _sources.is_url(text):
            for url in _expand_url(text, storage_options):
                add(url)
        elif _GLOB_CHARS & set(text) and not os.path.exists(text):
            matches = sorted(glob.glob(text, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            if not files:
                raise InvalidArgument("sources", f"the pattern {text!r} matches no file")
            for path in files:
                add(path)
        else:
            add(text)
    return out


def _expand_url(url: str, storage_options: Mapping[str, Any] | None) -> list[str]:
    """A URL as it is, or the objects a bucket glob matches (InvalidArgument if none)."""
    if not _sources.has_glob(url):
        return [url]
    try:
        urls = _sources.glob(url, storage_options)
    except MediaError as exc:
        raise InvalidArgument("sources", f"cannot list {url!r}: {exc}") from exc
    if not urls:
        raise InvalidArgument("sources", f"the pattern {url!r} matches no object")
    return urls


def _read_manifest(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument("sources", f"cannot read the manifest {path!r}: {exc}") from exc
    base = os.path.dirname(path)
    paths = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        absolute = os.path.isabs(entry) or _sources.is_url(entry)
        paths.append(entry if absolute else os.path.join(base, entry))
    return paths


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Job(NamedTuple):
    """One source of a batch: everything :func:`run_source` needs (small and picklable: a
    source name, not its bytes; the task writes its outputs itself)."""

    source: str
    spec: str
    store: Store
    topics: Mapping[str, _notify.Webhook]
    threads: int | None = None  # decoder threads; None: the decoder's default
    resume: bool = False  # skip the source when the store records it done
    storage_options: Mapping[str, Any] | None = None  # how URL sources are opened

    def bound_source(self) -> Any:
        """The source as the task opens it (a URL with its storage options)."""
        return _sources.bind(self.source, self.storage_options)


class Executor(Protocol):
    """Where a batch's jobs run. ``run`` yields ``(job, result line)`` as each job finishes, in
    completion order, one per job: a job that cannot run is a ``Failed`` line, never dropped.

    ``workers`` and ``threads`` describe the run for the summary once ``run`` has started.
    """

    workers: int
    threads: int | None

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, dict[str, Any]]]: ...


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
    from ossframe_native.params import parse_process

    request = parse_process(spec)
    if request.saveas is None:
        raise InvalidArgument(
            "spec", "a batch needs '|sys/saveas,b_..,o_..' in the process string to keep outputs"
        )
    plan = _task.prepare(spec, request, store, topics)
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
        jobs = [
            Job(path, spec, plan.store, plan.topics, resume=resume, storage_options=storage_options)
            for path in paths
        ]
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
    """The jobs still to run; a skipped line is reported for each done one."""
    pending = []
    for job in jobs:
        line = done_line(job)
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


# -- the per-source function both executors run ----------------------------------------------------


def run_source(job: Job) -> dict[str, Any]:
    """Runs one job and returns its report line, whatever happens (never raises).

    With ``job.resume`` a source the store records as done is not run again (its recorded
    line comes back with ``"skipped": true``). The task saves its outputs and records its
    result in the store itself; this is the only function an executor calls, so every executor
    produces the same objects, lines and records.
    """
    task_id = uuid.uuid4().hex
    try:
        from ossframe_native.params import parse_process

        done = done_line(job) if job.resume else None
        if done is not None:
            return done

        plan = _task.prepare(job.spec, parse_process(job.spec), job.store, job.topics)
        result = _task.run_task(
            plan, job.bound_source(), task_id=task_id, raise_invalid=False, threads=job.threads
        )
        return dict(result.to_dict(), skipped=False)
    except Exception as exc:  # noqa: BLE001 - reported as this source's failure
        return failed_line(job, exc, task_id=task_id)


def done_line(job: Job) -> dict[str, Any] | None:
    """The recorded line of a source the store records as done (same file), else ``None``."""
    record = _task.load_record(job.store, job.source, job.spec)
    if record is None or not _task.is_complete(record, job.bound_source()):
        return None
    record.pop("source_stat", None)
    return dict(record, skipped=True)


def failed_line(
    job: Job, exc: BaseException | None, message: str | None = None, task_id: str | None = None
) -> dict[str, Any]:
    """The result line of a job that did not finish: ``exc`` raised outside the task, or (with
    ``exc=None``) its worker died (``WorkerCrashed``, ``message`` saying how)."""
    if exc is None:
        code = WORKER_CRASHED
        message = message or (
            "the worker process died while working on this source (a crash in a native "
            "library, or it was killed)"
        )
    else:
        code = error_code(exc)
        message = str(exc) if code != "InternalError" else f"{type(exc).__name__}: {exc}"
    return {
        "task_id": task_id or uuid.uuid4().hex,
        "state": _task.FAILED,
        "source": _sources.display(job.source),
        "spec": job.spec,
        "store": job.store.location,
        "bucket": None,
        "objects": [],
        "outputs": 0,
        "overwritten": 0,
        "bytes_written": 0,
        "error_code": code,
        "error_message": message,
        "timings": {},
        "notes": [],
        "notify": None,
        "skipped": False,
    }


# -- the local executor: this process, or a process pool -------------------------------------------


class LocalExecutor:
    """Runs jobs in this process (``workers=1``) or in a pool of ``workers`` processes, each
    job decoding with ``threads`` threads (passed with the job, not through the environment)."""

    def __init__(self, workers: int = 1, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[Job, dict[str, Any]]]:
        jobs = [job._replace(threads=self.threads) for job in jobs]
        if self.workers == 1:
            for job in jobs:
                yield job, run_source(job)
        else:
            yield from _run_pool(jobs, run_source, self.workers)


def _init_worker() -> None:
    # Ctrl-C goes to the whole process group: the parent stops handing out work and the
    # workers finish (and record) the source they are on instead of dying mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _new_pool(workers: int) -> cf.ProcessPoolExecutor:
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
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)


Runner = Callable[[Job], dict[str, Any]]


def _run_pool(
    jobs: Sequence[Job], runner: Runner, workers: int
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """``(job, runner(job))`` for every job, in completion order, surviving worker deaths.

    At most ``2 * workers`` jobs are in flight. When a worker dies every job in flight is a
    suspect; suspects are run again afterwards one at a time in a one-worker pool, where a
    death can only be that job's.
    """
    queue: deque[Job] = deque(jobs)
    suspects: list[Job] = []
    yield from _drain(queue, runner, workers, suspects, isolate=False)
    while suspects:
        queue = deque(suspects)
        suspects = []
        yield from _drain(queue, runner, 1, suspects, isolate=True)


def _drain(
    queue: deque[Job],
    runner: Runner,
    workers: int,
    suspects: list[Job],
    isolate: bool,
) -> Iterator[tuple[Job, dict[str, Any]]]:
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    limit = 1 if isolate else 2 * workers
    while queue:
        pool = _new_pool(workers)
        inflight: dict[cf.Future[dict[str, Any]], Job] = {}
        broken = False
        try:
            while (queue or inflight) and not broken:
                while queue and len(inflight) < limit:
                    job = queue.popleft()
                    inflight[pool.submit(runner, job)] = job
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    job = inflight.pop(future)
                    try:
                        yield job, future.result()
                    except BrokenProcessPool:
                        broken = True
                        if isolate:
                            yield job, failed_line(job, None)
                        else:
                            suspects.append(job)
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
