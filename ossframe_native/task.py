"""``process()``: a capture action plus ``sys/saveas`` and ``notify`` → a ``TaskResult``.

A front end over :mod:`ossframe_native.pipeline` (through ``api.capture``). Every process string
gives a :class:`TaskResult`: without ``sys/saveas`` it carries the captured images
(``result.images``) and nothing is stored. A task with ``sys/saveas`` is a :class:`TaskPlan`
(made once by :func:`prepare`) run on one source by :func:`run_task`, the one task runner of the
command line, batches (local pool and Ray) and the service; a task that could not run to its
end anywhere is :meth:`TaskResult.failed`. The order (docs/TASKS.md, docs/BEHAVIOUR.md "Saving
and naming" and "Notify"):

1. Everything that can be checked without the media is checked first: the process string
   (``parse_process`` checks the bucket name, the object-name template and the topic name), the
   store, the template with the source's ``{barename}`` and the webhook mapping. Any problem
   raises ``InvalidArgument``; nothing is decoded and nothing is written.
2. Outputs are streamed from ``capture()`` into the store one by one, each written atomically.
3. A failure midway ends the task ``Failed`` with its error code and message; what was saved
   stays and is listed, and no partial object exists under a final name.
4. With ``notify``, the result is delivered as one JSON message to the topic.
5. The result is recorded in the store as ``.tasks/<task key>.json`` (the key hashes the
   source's absolute path and the process string), which is what a batch re-run reads to skip
   finished sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ossframe_native import notify as _notify
from ossframe_native import sources as _sources
from ossframe_native.errors import EXIT_STATUS, FrameError, InvalidArgument, error_code
from ossframe_native.names import NameTemplate
from ossframe_native.params import ProcessRequest, SpriteRequest, parse_process
from ossframe_native.store import Store, open_store

__all__ = [
    "SavedObject",
    "TaskPlan",
    "TaskResult",
    "exit_status",
    "prepare",
    "process",
    "run_request",
    "run_task",
    "task_key",
]

SUCCEEDED = "Succeeded"
FAILED = "Failed"


@dataclass(frozen=True)
class SavedObject:
    """One object in the store after the task: its key and the output it holds."""

    key: str
    index: int  # output number from 1 ({index})
    time_ms: int  # the frame's time ({ms})
    width: int
    height: int
    bytes: int  # size of the object in bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "index": self.index,
            "time_ms": self.time_ms,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class TaskResult:
    """What a task did; ``to_dict()`` is the notify message and the record.

    Without ``sys/saveas`` nothing is stored: ``images`` holds the captured ``Image`` objects
    (in time order; not part of ``to_dict()``), ``store`` and ``bucket`` are empty and
    ``outputs`` counts the images.
    """

    task_id: str
    state: str  # "Succeeded" or "Failed"
    source: str
    spec: str
    store: str
    bucket: str
    objects: tuple[SavedObject, ...]  # the objects as they are in the store, in write order
    outputs: int  # outputs written (more than len(objects) when names repeat)
    overwritten: int  # outputs that replaced an earlier output of this task
    bytes_written: int
    error_code: str | None = None
    error_message: str | None = None
    timings: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    notify: Mapping[str, Any] | None = None
    images: tuple[Any, ...] = field(default=(), repr=False, compare=False)  # api.Image

    @property
    def ok(self) -> bool:
        return self.state == SUCCEEDED

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.objects]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "state": self.state,
            "source": self.source,
            "spec": self.spec,
            "store": self.store,
            "bucket": self.bucket,
            "objects": [o.to_dict() for o in self.objects],
            "outputs": self.outputs,
            "overwritten": self.overwritten,
            "bytes_written": self.bytes_written,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "timings": dict(self.timings),
            "notes": list(self.notes),
            "notify": None if self.notify is None else dict(self.notify),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def failed(
        cls,
        source: Any,
        spec: str,
        error: BaseException | None = None,
        *,
        code: str | None = None,
        message: str | None = None,
        store: str = "",
        bucket: str = "",
        task_id: str | None = None,
    ) -> TaskResult:
        """The one failure record of a task that did not run to its end: ``error`` raised
        around it (its code and message as :func:`run_task` reports them), or ``code`` and
        ``message`` for what stopped it from outside (a worker that died, a time limit).
        Nothing is listed as saved; objects it wrote before that stay in the store."""
        if error is not None:
            code, message = error_code(error), _error_message(error)
        return cls(
            task_id=task_id or uuid.uuid4().hex,
            state=FAILED,
            source=_source_label(source),
            spec=spec,
            store=store,
            bucket=bucket,
            objects=(),
            outputs=0,
            overwritten=0,
            bytes_written=0,
            error_code=code or "InternalError",
            error_message=message or "",
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        return cls(
            task_id=data["task_id"],
            state=data["state"],
            source=data["source"],
            spec=data["spec"],
            store=data["store"],
            bucket=data["bucket"],
            objects=tuple(SavedObject(**o) for o in data["objects"]),
            outputs=data["outputs"],
            overwritten=data["overwritten"],
            bytes_written=data["bytes_written"],
            error_code=data.get("error_code"),
            error_message=data.get("error_message"),
            timings=dict(data.get("timings") or {}),
            notes=tuple(data.get("notes") or ()),
            notify=data.get("notify"),
        )


@dataclass(frozen=True)
class TaskPlan:
    """A process string with ``sys/saveas``, parsed and checked once, with where it saves: what
    :func:`run_task` runs on each source (small and picklable: batch workers receive it)."""

    spec: str
    request: ProcessRequest  # with saveas
    store: Store
    topics: Mapping[str, _notify.Webhook]

    @property
    def bucket(self) -> str:
        assert self.request.saveas is not None  # prepare() made sure
        return self.request.saveas.bucket

    @property
    def template(self) -> NameTemplate:
        assert self.request.saveas is not None
        return self.request.saveas.template

    @property
    def topic(self) -> str | None:
        return None if self.request.notify is None else self.request.notify.topic

    def failed(
        self,
        source: Any,
        error: BaseException | None = None,
        *,
        code: str | None = None,
        message: str | None = None,
        task_id: str | None = None,
    ) -> TaskResult:
        """:meth:`TaskResult.failed` for a task of this plan."""
        return TaskResult.failed(
            source,
            self.spec,
            error,
            code=code,
            message=message,
            store=self.store.location,
            bucket=self.bucket,
            task_id=task_id,
        )


def process(
    source: Any,
    spec: str,
    store: Store | str | os.PathLike[str] | None = None,
    topics: Mapping[str, str | _notify.Webhook] | None = None,
    task_id: str | None = None,
    threads: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> TaskResult:
    """Runs a process string on ``source`` and returns a :class:`TaskResult`.

    Without ``sys/saveas`` the captured ``Image`` objects are in ``result.images`` and errors
    raise (nothing was stored that a result could report). With it, each output is saved to
    ``store`` (a :class:`Store`, a directory path or an fsspec URL), and the result is
    ``Failed`` rather than raised when the media or the store fails midway. ``topics`` maps topic
    names to http(s) webhook URLs (or :class:`Webhook`); unmapped topics are appended to
    ``.notify/<topic>.jsonl`` in the store. ``threads``: decoder threads (see ``frames``).
    ``source`` and ``storage_options`` as for ``snapshot`` (paths, URLs, bytes, file objects).

    Raises ``InvalidArgument`` before decoding anything when the process string, a parameter
    checked against the media, the store, the bucket, the object name or the topic is not valid.
    """
    source = _sources.bind(source, storage_options)
    return run_request(source, spec, parse_process(spec), store, topics, task_id, threads)


def run_request(
    source: Any,
    spec: str,
    request: ProcessRequest,
    store: Store | str | os.PathLike[str] | None = None,
    topics: Mapping[str, str | _notify.Webhook] | None = None,
    task_id: str | None = None,
    threads: int | None = None,
) -> TaskResult:
    """:func:`process` for a process string already parsed into ``request`` (a
    ``ProcessRequest``), so that callers holding one do not parse it again."""
    if request.saveas is None:  # parse_process refuses notify without it
        return _capture_only(source, spec, request, task_id, threads)
    plan = prepare(spec, store, topics, request=request)
    return run_task(plan, source, task_id=task_id, raise_invalid=True, threads=threads)


def _capture_only(
    source: Any, spec: str, request: ProcessRequest, task_id: str | None, threads: int | None
) -> TaskResult:
    from ossframe_native import api

    started_at = _now()
    t0 = time.perf_counter()
    images: tuple[Any, ...]
    if isinstance(request.action, SpriteRequest):  # the encoded sheets (sprites.EncodedSheet)
        images = _sprite_sheets(source, request.action, threads)
    else:
        images = tuple(api.capture(source, request.action, threads=threads))
    total_ms = round((time.perf_counter() - t0) * 1000, 3)
    return TaskResult(
        task_id=task_id or uuid.uuid4().hex,
        state=SUCCEEDED,
        source=_source_label(source),
        spec=spec,
        store="",
        bucket="",
        objects=(),
        outputs=len(images),
        overwritten=0,
        bytes_written=0,
        timings={"started_at": started_at, "finished_at": _now(), "total_ms": total_ms},
        images=images,
    )


def _sprite_sheets(source: Any, action: SpriteRequest, threads: int | None) -> tuple[Any, ...]:
    from ossframe_native import sprites

    if action.vtt:
        raise InvalidArgument(
            "vtt",
            "the storyboard points at the sheets by name: vtt_1 needs '|sys/saveas,b_..,o_..' "
            "(or ossframe process -o FILE); sprites.Sprite.storyboard(urls) builds one for "
            "sheets you name yourself",
        )
    return tuple(sprites.open_sprite(source, action, threads=threads, bgr=True).encoded())


def prepare(
    spec: str,
    store: Store | str | os.PathLike[str] | None,
    topics: Mapping[str, str | _notify.Webhook] | None = None,
    *,
    request: ProcessRequest | None = None,
) -> TaskPlan:
    """The :class:`TaskPlan` of a process string with ``sys/saveas``: parses ``spec`` (unless
    ``request``, its parse, is given; ``parse_process`` checks the bucket, object name and
    topic), opens the store and checks the webhooks. Raises ``InvalidArgument``."""
    if request is None:
        request = parse_process(spec)
    if request.saveas is None:
        raise InvalidArgument(
            "spec",
            "this needs '|sys/saveas,b_..,o_..' in the process string: a batch or a queued "
            "task keeps its outputs only in the store",
        )
    if store is None:
        raise InvalidArgument(
            "store",
            "sys/saveas needs a store: pass store=LocalStore(root), a directory path or an fsspec "
            "URL (--root DIR on the command line)",
        )
    # parse_process checked the bucket, the object name (with a neutral {barename}) and the
    # topic; what depends on the source is checked in run_task.
    return TaskPlan(spec, request, open_store(store), _notify.normalize_topics(topics))


def task_key(source: Any, spec: str) -> str | None:
    """The key under which a path or URL source's result is recorded (``None`` for other
    sources): its absolute path, or its URL without signing parameters."""
    name = _sources.identity(source)
    if name is None:
        return None
    return hashlib.sha256(f"{name}\n{spec}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


def source_stat(source: Any) -> dict[str, Any] | None:
    """What is recorded with a result to tell the source unchanged: a path's size and
    modification time, a URL's size and ETag."""
    return _sources.stat(source)


def record_name(key: str) -> str:
    return f".tasks/{key}.json"


def _source_label(source: Any) -> str:
    return _sources.display(source)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"


#: Makes the notify message from a task's result (default: ``TaskResult.to_dict``).
Message = Callable[[TaskResult], Mapping[str, Any]]


def run_task(
    plan: TaskPlan,
    source: Any,
    task_id: str | None = None,
    raise_invalid: bool = True,
    threads: int | None = None,
    message: Message | None = None,
) -> TaskResult:
    """The task runner: runs ``plan`` on ``source`` (the order is in the module docstring).

    Every failure ends in a ``Failed`` result (:meth:`TaskResult.failed` for an error around
    the task itself, e.g. in recording it), never an exception, except ``InvalidArgument``
    found before anything is decoded or written when ``raise_invalid`` (what ``process()``
    promises; a batch and the service pass False). ``threads``: decoder threads (a batch
    worker passes its share of the cores). ``message``: makes what the notify step delivers
    from the result (the service delivers an IMM-shaped message).
    """
    task_id = task_id or uuid.uuid4().hex
    try:
        result = _save_outputs(plan, source, task_id, raise_invalid, threads)
        if plan.topic is not None:
            result = _notified(result, plan, message or TaskResult.to_dict)
        return _record(result, source, plan)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a Failed result
        if raise_invalid and isinstance(exc, InvalidArgument):
            raise
        return plan.failed(source, exc, task_id=task_id)


def _save_outputs(
    plan: TaskPlan, source: Any, task_id: str, raise_invalid: bool, threads: int | None
) -> TaskResult:
    """Captures and saves every output; the result before notify and recording."""
    from ossframe_native import api

    started_at = _now()
    t0 = time.perf_counter()
    barename = _sources.barename_of(source)
    action = plan.request.action
    objects: dict[str, SavedObject] = {}
    outputs = overwritten = written = 0
    write_s = 0.0
    error: BaseException | None = None
    last_key = ""
    images: Iterator[Any] | None = None
    try:
        # The one check that needs the source's name (parse_process checked the name with a
        # neutral one), still before any decode; then the source is opened and the request
        # resolved against it (parameter errors surface here).
        if "barename" in plan.template.variables:
            plan.template.render(index=1, ms=0, autoext=action.f, barename=barename)
        if isinstance(action, SpriteRequest):  # sheets (+ storyboard), each with its own key
            from ossframe_native import sprites

            images = sprites.task_outputs(source, action, plan.template, barename, threads)
        else:
            images = api.capture(source, action, threads=threads)
    except InvalidArgument as exc:
        if raise_invalid:
            raise
        error = exc
    except Exception as exc:  # noqa: BLE001 - every failure becomes a Failed result
        error = exc
    if images is not None:
        try:
            for image in images:
                outputs += 1
                key = getattr(image, "key", None) or plan.template.render(
                    index=outputs, ms=image.time_ms, autoext=image.format, barename=barename
                )
                tw = time.perf_counter()
                size = plan.store.put(plan.bucket, key, image.data)
                write_s += time.perf_counter() - tw
                written += size
                if objects.pop(key, None) is not None:
                    overwritten += 1
                objects[key] = SavedObject(
                    key, outputs, image.time_ms, image.width, image.height, size
                )
                last_key = key
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Failed result
            error = exc
        finally:
            close = getattr(images, "close", None)
            if close is not None:
                close()
    total_s = time.perf_counter() - t0
    notes: list[str] = []
    if overwritten:
        notes.append(_overwrite_note(plan.template, outputs, overwritten, objects, last_key))
    if error is None and outputs == 0:
        notes.append("the action returned no output; nothing was saved")
    return TaskResult(
        task_id=task_id,
        state=SUCCEEDED if error is None else FAILED,
        source=_source_label(source),
        spec=plan.spec,
        store=plan.store.location,
        bucket=plan.bucket,
        objects=tuple(objects.values()),
        outputs=outputs,
        overwritten=overwritten,
        bytes_written=written,
        error_code=None if error is None else error_code(error),
        error_message=None if error is None else _error_message(error),
        timings={
            "started_at": started_at,
            "finished_at": _now(),
            "total_ms": round(total_s * 1000, 3),
            "capture_ms": round((total_s - write_s) * 1000, 3),
            "write_ms": round(write_s * 1000, 3),
        },
        notes=tuple(notes),
    )


def _notified(result: TaskResult, plan: TaskPlan, message: Message) -> TaskResult:
    """``result`` with the delivery of ``message(result)`` to the plan's topic."""
    assert plan.topic is not None
    tn = time.perf_counter()
    delivery = _notify.deliver(plan.topic, message(result), plan.store, plan.topics)
    timings = dict(result.timings, notify_ms=round((time.perf_counter() - tn) * 1000, 3))
    return replace(result, notify=delivery, timings=timings)


def _overwrite_note(
    template: NameTemplate,
    outputs: int,
    overwritten: int,
    objects: Mapping[str, SavedObject],
    last_key: str,
) -> str:
    if template.fixed and len(objects) == 1:
        last = objects[last_key]
        return (
            f"object name {template.source!r} is the same for every output: {outputs} outputs "
            f"were written to {last_key!r} in turn, each replacing the last (as OSS does); it "
            f"holds output {last.index} (time_ms={last.time_ms}). Add {{index}} or {{ms}} to the "
            "name to keep them all"
        )
    return (
        f"{overwritten} of {outputs} outputs replaced an earlier output of this task with the "
        f"same object name (template {template.source!r}); the objects listed are what remains"
    )


def _record(result: TaskResult, source: Any, plan: TaskPlan) -> TaskResult:
    key = task_key(source, plan.spec)
    if key is None:
        return result
    record = result.to_dict()
    record["source_stat"] = source_stat(source)
    try:
        plan.store.put_record(record_name(key), json.dumps(record, ensure_ascii=False).encode())
    except FrameError as exc:
        return replace(result, notes=(*result.notes, f"the result was not recorded: {exc}"))
    return result


def load_record(store: Store, source: Any, spec: str) -> dict[str, Any] | None:
    """The recorded result of ``source`` + ``spec`` in ``store``, or ``None``."""
    key = task_key(source, spec)
    if key is None:
        return None
    data = store.get_record(record_name(key))
    if data is None:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def is_complete(record: Mapping[str, Any] | None, source: Any) -> bool:
    """True when ``record`` says the task succeeded on the source as it is now (same size and
    modification time), so a batch re-run may skip it."""
    if not record or record.get("state") != SUCCEEDED:
        return False
    then = record.get("source_stat")
    now = source_stat(source)
    return bool(then and now and then == now)


def exit_status(result: TaskResult) -> int:
    """The command-line exit status for a result: 0, 2 InvalidArgument, 3 MediaError, else 1."""
    if result.ok:
        return 0
    return EXIT_STATUS.get(result.error_code or "", 1)
