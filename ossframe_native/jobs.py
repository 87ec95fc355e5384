"""The executor interface of a batch: what an executor is given and the one function it runs.

A batch is a list of :class:`Job`: a source and the batch's :class:`~ossframe_native.task.TaskPlan`
(the process string parsed and checked once, with the store and webhooks). An :class:`Executor`
runs every job with :func:`run_source` wherever it runs (this process, a process pool, Ray
tasks), so every executor writes the same objects, records and report lines, and a batch
started on one can be resumed on another. ``batch.py`` (``process_many`` and the local process
pool) and ``ray.py`` (the Ray executor) both build on this module; neither imports the other.
:func:`expand_sources` turns paths, URLs, globs and manifests into a batch's list of sources.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from ossframe_native import sources as _sources
from ossframe_native import task as _task
from ossframe_native.errors import InvalidArgument, MediaError

__all__ = ["WORKER_CRASHED", "Executor", "Job", "expand_sources", "failed_line", "run_source"]

#: The error code of a source whose worker process died while running it.
WORKER_CRASHED = "WorkerCrashed"
_GLOB_CHARS = frozenset("*?[")


class Job(NamedTuple):
    """One source of a batch: everything :func:`run_source` needs (small and picklable: a
    source name, not its bytes; the task writes its outputs itself)."""

    source: str
    plan: _task.TaskPlan
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


def run_source(job: Job) -> dict[str, Any]:
    """Runs one job and returns its report line, whatever happens (never raises).

    With ``job.resume`` a source the store records as done is not run again (its recorded
    line comes back with ``"skipped": true``); a record that cannot be read (a directory, a
    symbolic link or a FIFO where the record should be, a store error) does not stop the
    source: it runs, and its line has a note saying why. The task saves its outputs and records
    its result in the store itself (:func:`ossframe_native.task.run_task`).
    """
    note = None
    if job.resume:
        try:
            done = done_line(job)
        except Exception as exc:  # noqa: BLE001 - a record never stops its source
            note = f"the recorded result could not be read, so the source ran again: {exc}"
        else:
            if done is not None:
                return done
    result = _task.run_task(job.plan, job.bound_source(), raise_invalid=False, threads=job.threads)
    line = dict(result.to_dict(), skipped=False)
    if note is not None:
        line["notes"] = [note, *line["notes"]]
    return line


def done_line(job: Job) -> dict[str, Any] | None:
    """The recorded line of a source the store records as done (same file), else ``None``.

    Raises ``StoreError`` when the record exists but cannot be read.
    """
    record = _task.load_record(job.plan.store, job.source, job.plan.spec)
    if record is None or not _task.is_complete(record, job.bound_source()):
        return None
    record.pop("source_stat", None)
    return dict(record, skipped=True)


def failed_line(
    job: Job,
    error: BaseException | None = None,
    *,
    code: str = WORKER_CRASHED,
    message: str | None = None,
) -> dict[str, Any]:
    """The report line of a job that did not run to its end: ``error`` raised around it, or
    (without one) its worker died (``WorkerCrashed``, ``message`` saying how)."""
    if error is None and message is None:
        message = (
            "the worker process died while working on this source (a crash in a native "
            "library, or it was killed)"
        )
    result = job.plan.failed(job.source, error, code=code, message=message)
    return dict(result.to_dict(), skipped=False)


# -- a batch's sources -----------------------------------------------------------------------------


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
