"""``process_many()``: one process string over many sources, in a process pool, resumable.

* Sources: paths, glob patterns (``*``, ``?``, ``[``; ``**`` recurses) and manifest files
  (``@list`` or any ``*.txt``: one path per line, blank lines and ``#`` comments ignored,
  relative paths taken from the manifest's folder). Duplicates are dropped, the first kept.
* Workers: a pool of ``workers`` processes (default: one per core), each decoding with
  ``cores // workers`` threads (``OSSFRAME_DECODE_THREADS``), so the machine is not
  oversubscribed. ``workers=1`` runs in this process.
* Every source's result is recorded in the store (``.tasks/<key>.json``) by the task itself;
  a re-run skips sources whose record says ``Succeeded`` for the same file (same size and
  modification time), so an interrupted batch resumes where it stopped.
* A failing source is reported (``Failed``, with its error) and the others go on; a worker
  process that dies is replaced, and the sources it might have been working on are retried
  one at a time so the one that kills its worker is found and reported ``WorkerCrashed``.
* One JSON line per source goes to ``report`` (a path or a text file object): the task result
  plus ``"skipped": true|false``. A progress bar on stderr counts sources, frames written and
  frames per second.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # the pool modules are imported when a pool starts (CLI start-up time)
    import concurrent.futures as cf

from ossframe_native import notify as _notify
from ossframe_native import task as _task
from ossframe_native.errors import InvalidArgument
from ossframe_native.store import Store, open_store

__all__ = ["BatchSummary", "add_cli_arguments", "cli_main", "expand_sources", "process_many"]

THREADS_ENV = "OSSFRAME_DECODE_THREADS"
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


def expand_sources(items: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Paths, globs and manifests → the list of source paths, in order, without duplicates.

    A glob that matches nothing, or a manifest that cannot be read, is ``InvalidArgument``; a
    plain path is passed on as it is (a missing file fails as that source's ``MediaError``).
    """
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.abspath(path)
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
        paths.append(entry if os.path.isabs(entry) else os.path.join(base, entry))
    return paths


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
) -> BatchSummary:
    """Runs ``spec`` (which must have ``sys/saveas``) on every source; see the module docstring.

    Raises ``InvalidArgument`` before any work when the spec, store, topics, sources or worker
    counts are not valid; per-source failures are reported, not raised.
    """
    from ossframe_native.params import parse_process

    request = parse_process(spec)
    if request.saveas is None:
        raise InvalidArgument(
            "spec", "a batch needs '|sys/saveas,b_..,o_..' in the process string to keep outputs"
        )
    plan = _task.prepare(spec, request, store, topics)
    paths = expand_sources(sources)
    cores = cpu_count()
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InvalidArgument("workers", f"workers must be an integer >= 1, not {workers!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidArgument("threads", f"threads must be an integer >= 1, not {threads!r}")
    if plan.store.in_process:
        if workers is not None and workers > 1:
            raise InvalidArgument(
                "workers",
                f"{plan.store!r} lives in this process only; worker processes cannot write to "
                "it: use workers=1 or a store on disk / object storage",
            )
        workers = 1
    requested_workers, requested_threads = workers, threads
    summary = BatchSummary(total=len(paths))
    started = time.perf_counter()
    own_report = report is not None and not hasattr(report, "write")
    out: IO[str] | None = (
        open(os.fspath(report), "w", encoding="utf-8")  # type: ignore[arg-type]  # noqa: SIM115
        if own_report
        else report  # type: ignore[assignment]
    )
    bar = _progress_bar(len(paths), progress)
    try:

        def emit(line: dict[str, Any], skipped: bool) -> None:
            line = dict(line, skipped=skipped)
            line.pop("source_stat", None)
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
            if out is not None:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                out.flush()
            if bar is not None:
                elapsed = max(time.perf_counter() - started, 1e-9)
                postfix = {
                    "frames": summary.frames,
                    "fps": f"{summary.frames / elapsed:.1f}",
                    "failed": summary.failed,
                    "skipped": summary.skipped,
                }
                bar.set_postfix(ordered_dict=postfix, refresh=False)
                bar.update(1)

        pending: list[str] = []
        for path in paths:
            record = _task.load_record(plan.store, path, spec) if resume else None
            if record is not None and _task.is_complete(record, path):
                emit(record, skipped=True)
            else:
                pending.append(path)
        jobs = [(path, spec, plan.store, plan.topics) for path in pending]
        workers = max(1, min(requested_workers or cores, len(jobs) or 1))
        threads = requested_threads
        if threads is None and workers > 1:
            threads = max(1, cores // workers)
        summary.workers, summary.threads = workers, threads
        if workers == 1:
            for line in _run_inline(jobs, threads):
                emit(line, skipped=False)
        else:
            for line in _run_pool(jobs, _run_source, workers, threads or 1):
                emit(line, skipped=False)
    finally:
        summary.elapsed_s = time.perf_counter() - started
        if bar is not None:
            bar.close()
        if own_report and out is not None:
            out.close()
    return summary


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="src", desc="ossframe", file=sys.stderr, dynamic_ncols=True)


Job = tuple[str, str, Store, Mapping[str, _notify.Webhook]]


def _run_source(source: str, spec: str, store: Store, topics: Mapping[str, Any]) -> dict[str, Any]:
    """One source, in a worker: a result dict, whatever happens."""
    task_id = uuid.uuid4().hex
    try:
        from ossframe_native.params import parse_process

        plan = _task.prepare(spec, parse_process(spec), store, topics)
        return _task.run_task(plan, source, task_id=task_id, raise_invalid=False).to_dict()
    except Exception as exc:  # noqa: BLE001 - reported as this source's failure
        return _failed(source, spec, store, exc, task_id)


def _failed(
    source: str, spec: str, store: Store, exc: BaseException | None, task_id: str | None = None
) -> dict[str, Any]:
    code = "WorkerCrashed" if exc is None else _task._error_code(exc)
    message = (
        "the worker process died while working on this source (a crash in a native library, "
        "or it was killed)"
        if exc is None
        else str(exc)
    )
    return {
        "task_id": task_id or uuid.uuid4().hex,
        "state": _task.FAILED,
        "source": source,
        "spec": spec,
        "store": store.location,
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
    }


def _run_inline(jobs: list[Job], threads: int | None) -> Iterator[dict[str, Any]]:
    saved = os.environ.get(THREADS_ENV)
    if threads is not None:
        os.environ[THREADS_ENV] = str(threads)
    try:
        for job in jobs:
            yield _run_source(*job)
    finally:
        if threads is not None:
            if saved is None:
                os.environ.pop(THREADS_ENV, None)
            else:
                os.environ[THREADS_ENV] = saved


def _init_worker(threads: int) -> None:
    os.environ[THREADS_ENV] = str(threads)
    # Ctrl-C goes to the whole process group: the parent stops handing out work and the
    # workers finish (and record) the source they are on instead of dying mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _new_pool(workers: int, threads: int) -> cf.ProcessPoolExecutor:
    import concurrent.futures as cf
    import multiprocessing

    # Workers fork from a server that imported the engine once (each spawned worker would pay
    # numpy/PyAV/OpenCV imports again); the server itself is single-threaded, so forking it is
    # safe. Where there is no forkserver, spawn.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["ossframe_native.api", "ossframe_native.task"])
    else:
        context = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads,),
    )


def _run_pool(
    jobs: list[Job],
    runner: Callable[..., dict[str, Any]],
    workers: int,
    threads: int,
) -> Iterator[dict[str, Any]]:
    """Results of ``runner(*job)`` for every job, in completion order, surviving worker deaths.

    At most ``2 * workers`` jobs are in flight. When a worker dies every job in flight is a
    suspect; suspects are run again afterwards one at a time in a one-worker pool, where a
    death can only be that job's.
    """
    queue: deque[Job] = deque(jobs)
    suspects: list[Job] = []
    yield from _drain(queue, runner, workers, threads, suspects, isolate=False)
    while suspects:
        queue = deque(suspects)
        suspects = []
        yield from _drain(queue, runner, 1, threads, suspects, isolate=True)


def _drain(
    queue: deque[Job],
    runner: Callable[..., dict[str, Any]],
    workers: int,
    threads: int,
    suspects: list[Job],
    isolate: bool,
) -> Iterator[dict[str, Any]]:
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    limit = 1 if isolate else 2 * workers
    while queue:
        pool = _new_pool(workers, threads)
        inflight: dict[cf.Future[dict[str, Any]], Job] = {}
        broken = False
        try:
            while (queue or inflight) and not broken:
                while queue and len(inflight) < limit:
                    job = queue.popleft()
                    inflight[pool.submit(runner, *job)] = job
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    job = inflight.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        broken = True
                        if isolate:
                            yield _failed(job[0], job[1], job[2], None)
                        else:
                            suspects.append(job)
            if broken:
                # A broken pool fails every pending future at once; collect them all.
                cf.wait(inflight)
                for future, job in inflight.items():
                    if not future.cancelled() and future.exception() is None:
                        yield future.result()
                    elif isolate:
                        queue.appendleft(job)
                    else:
                        suspects.append(job)
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


# -- command line --------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ossframe batch SOURCE... SPEC --root DIR [--workers N] ...``."""
    parser.add_argument(
        "items",
        nargs="+",
        metavar="SOURCE... SPEC",
        help="sources (paths, quoted globs such as 'videos/**/*.mp4', @manifest or a .txt "
        "manifest with one path per line), then the process string, which needs sys/saveas",
    )
    _task.add_cli_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: one per core)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write the JSON-lines report (one line per source) here instead of stdout",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="run every source again, even those recorded as done in the store",
    )


def cli_main(args: argparse.Namespace) -> int:
    """Runs ``ossframe batch``; returns 0 when every source succeeded (or was done), else 1."""
    if len(args.items) < 2:
        raise InvalidArgument("SOURCE", "give at least one source, then the process string")
    *sources, spec = args.items
    if not args.root:
        raise InvalidArgument(
            "--root", "a batch writes to a store: give --root DIR (or an fsspec URL)"
        )
    store = open_store(args.root)
    summary = process_many(
        sources,
        spec,
        store=store,
        workers=args.workers,
        topics=_notify.parse_topic_args(args.topic),
        report=args.report or sys.stdout,
        progress=not args.no_progress,
        resume=not args.no_resume,
    )
    print(
        f"ossframe: batch: {summary.total} sources, {summary.succeeded} succeeded, "
        f"{summary.failed} failed, {summary.skipped} skipped (done before), "
        f"{summary.frames} frames in {summary.elapsed_s:.1f} s",
        file=sys.stderr,
    )
    return 0 if summary.ok else 1
