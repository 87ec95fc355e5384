"""The durable queue of asynchronous processing tasks and the worker processes that run them.

A task is a row of ``<root>/.server/tasks.db`` (SQLite, WAL, synchronous commits), written
before ``POST ?x-oss-async-process`` is answered. Its states: ``Queued`` → ``Running`` →
``Succeeded`` / ``Failed``. Each of ``workers`` slot threads owns one worker process, claims the
oldest queued task, hands it over a pipe and waits at most the time limit; past it, the worker
is killed and replaced and the task fails ``TaskTimeout``. On start, tasks a killed server left
``Running`` are queued again: objects are written atomically by ``LocalStore``, so a rerun
replaces them and nothing partial is ever visible. On stop, workers are killed and their tasks
left ``Queued`` for the next start.

The worker runs the task with the engine's task runner (``ossframe_native.task.run_task``, as
``ossframe process`` and ``ossframe batch`` do), whose notify step delivers one IMM-shaped message
(``imm_message``) instead of the engine's result (webhooks with retries and dead letters, or
``.notify/<topic>.jsonl``). A task that does not run to its end (a time limit, a worker that
died) is recorded as ``TaskResult.failed``, the engine's one failure record.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ossframe_native.server.xml import OssError

if TYPE_CHECKING:
    from ossframe_native.task import TaskResult

QUEUED, RUNNING, SUCCEEDED, FAILED = "Queued", "Running", "Succeeded", "Failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, created);
"""


def new_task_id() -> str:
    return f"MediaConvert-{uuid.uuid4()}"


def new_event_id() -> str:
    return f"{uuid.uuid4().hex[:3].upper()}-{uuid.uuid4().hex[:27]}"


@dataclass(frozen=True)
class Task:
    """One row of the task table."""

    id: str
    request_id: str
    event_id: str
    bucket: str
    key: str
    spec: str
    state: str
    result: dict[str, Any] | None
    attempts: int
    created: float
    updated: float

    def to_dict(self) -> dict[str, Any]:
        """The task as ``GET /<bucket>/?taskId=..`` and ``ossframe tasks`` show it."""
        return {
            "TaskId": self.id,
            "RequestId": self.request_id,
            "EventId": self.event_id,
            "Bucket": self.bucket,
            "Object": self.key,
            "Process": self.spec,
            "State": self.state,
            "Attempts": self.attempts,
            "Created": _iso(self.created),
            "Updated": _iso(self.updated),
            "Result": self.result,
        }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


class TaskQueue:
    """The task table; safe to use from several threads of one process."""

    def __init__(self, path: str, max_queued: int = 1000) -> None:
        self.path = path
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.wakeup = threading.Condition()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, row: tuple[Any, ...] | None) -> Task | None:
        if row is None:
            return None
        values = list(row)
        values[7] = json.loads(values[7]) if values[7] else None
        return Task(*values)

    def submit(self, bucket: str, key: str, spec: str, request_id: str) -> Task:
        """Records a queued task durably; 503 ``SlowDown`` when the queue is full."""
        now = time.time()
        task = Task(
            new_task_id(), request_id, new_event_id(), bucket, key, spec, QUEUED, None, 0, now, now
        )
        with self._lock:
            (queued,) = self._db.execute(
                "SELECT COUNT(*) FROM tasks WHERE state IN (?, ?)", (QUEUED, RUNNING)
            ).fetchone()
            if queued >= self.max_queued:
                raise OssError(503, "SlowDown", f"the task queue is full ({self.max_queued} tasks)")
            self._db.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, ?)",
                (task.id, request_id, task.event_id, bucket, key, spec, QUEUED, now, now),
            )
        with self.wakeup:
            self.wakeup.notify()
        return task

    def claim(self) -> Task | None:
        """The oldest queued task, now ``Running`` (its attempts counted), or ``None``."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT id FROM tasks WHERE state = ? ORDER BY created LIMIT 1", (QUEUED,)
                ).fetchone()
                if row is not None:
                    self._db.execute(
                        "UPDATE tasks SET state = ?, attempts = attempts + 1, updated = ? "
                        "WHERE id = ?",
                        (RUNNING, time.time(), row[0]),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return None if row is None else self.get(row[0])

    def finish(self, task_id: str, state: str, result: Mapping[str, Any] | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE tasks SET state = ?, result = ?, updated = ? WHERE id = ?",
                (state, json.dumps(result, ensure_ascii=False), time.time(), task_id),
            )

    def requeue(self, task_id: str) -> None:
        """Back to ``Queued`` (the server stops while it runs)."""
        with self._lock:
            self._db.execute(
                "UPDATE tasks SET state = ?, updated = ? WHERE id = ? AND state = ?",
                (QUEUED, time.time(), task_id, RUNNING),
            )

    def recover(self) -> int:
        """Queues again the tasks a previous run left ``Running``; returns how many."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE tasks SET state = ?, updated = ? WHERE state = ?",
                (QUEUED, time.time(), RUNNING),
            )
            return cursor.rowcount

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return self._row(row)

    def recent(self, limit: int = 100) -> list[Task]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM tasks ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [t for t in (self._row(r) for r in rows) if t is not None]


# -- the notify message ---------------------------------------------------------------------


def imm_message(
    task: Task,
    status: str,
    code: str,
    message: str,
    saved: list[tuple[str, str]],
    region: str,
    started: float,
    ended: float,
) -> dict[str, Any]:
    """The notification of a finished task, shaped like IMM's asynchronous notification.

    ``id`` is the task's EventId; ``content`` (a JSON string, as in IMM) carries ``TaskId``,
    ``RequestId``, ``Status`` (``Succeeded``/``Failed``), ``Code``, ``Message``, ``Sources`` and
    ``Targets`` (one per saved object: ``oss://bucket/key``).
    """
    from ossframe_native import parse_process

    action = parse_process(task.spec).action  # checked when the task was submitted
    content = {
        "ProjectName": "ossframe",
        "DatasetName": "",
        "RequestId": task.request_id,
        "StartTime": _iso(started),
        "EndTime": _iso(ended),
        "UserData": "",
        "TaskType": "MediaConvert",
        "TaskId": task.id,
        "Status": status,
        "Code": code,
        "Message": message,
        "EventSourceId": task.event_id,
        "Process": task.spec,
        "Sources": [{"URI": f"oss://{task.bucket}/{task.key}"}],
        "Targets": [_target(action, b, k) for b, k in saved],
    }
    return {
        "id": task.event_id,
        "source": "acs.imm",
        "specversion": "1.0",
        "type": "imm:Task:MediaConvert",
        "subject": f"acs:imm:{region}:ossframe:ossframe/imm:Task:MediaConvert",
        "time": str(int(ended * 1000)),
        "datacontenttype": "application/json;charset=utf-8",
        "content": json.dumps(content, ensure_ascii=False),
    }


def _target(action: Any, bucket: str, key: str) -> dict[str, Any]:
    """One saved object as an IMM target: a snapshot, a sprite sheet, or (beyond IMM) the
    storyboard of a ``video/sprite,..,vtt_1`` task, listed by its URI alone."""
    uri = f"oss://{bucket}/{key}"
    if action.action != "video/sprite":
        return {"URI": uri, "Image": {"Snapshots": [{"URI": uri}]}}
    if action.vtt and key.endswith(".vtt"):  # vtt_1 gives no sheet a name ending in .vtt
        return {"URI": uri}
    return {"URI": uri, "Image": {"Sprites": [{"URI": uri}]}}


def _result_message(task: Task, result: TaskResult, region: str, started: float) -> dict[str, Any]:
    """:func:`imm_message` of a task's result (given as :func:`_public` shows it)."""
    code, text = result.error_code or "", result.error_message or ""
    saved = [(result.bucket, key) for key in result.keys]
    return imm_message(task, result.state, code, text, saved, region, started, time.time())


def _public(result: TaskResult, task: Task, root: str) -> TaskResult:
    """The result as the task's state and notification show it: no server path, the source as
    ``oss://bucket/key`` and the store as ``oss://`` (a path in the message reads so too)."""
    text = result.error_message
    if text:
        text = text.replace(root + os.sep, "oss://").replace(root, "oss://")
    uri = f"oss://{task.bucket}/{task.key}"
    return replace(result, source=uri, store="oss://", error_message=text)


def _deliver(task: Task, message: dict[str, Any], root: str, topics: Mapping[str, str]) -> Any:
    """Delivers ``message`` to the task's topic, if its process string has one (for a task the
    runner did not finish; the runner delivers its own)."""
    from ossframe_native import notify, parse_process
    from ossframe_native.store import LocalStore

    request = parse_process(task.spec)  # checked when the task was submitted
    if request.notify is None:
        return None
    topic = request.notify.topic
    return notify.deliver(topic, message, LocalStore(root), notify.normalize_topics(topics))


def run_task(task: Task, root: str, topics: Mapping[str, str], region: str) -> dict[str, Any]:
    """Runs one task to its end in this process with the engine's task runner; returns
    ``{"state", "result"}``: the task's result, whose notify step delivered ``imm_message``
    (also kept as ``"message"``)."""
    from ossframe_native.store import LocalStore
    from ossframe_native.task import TaskResult, prepare
    from ossframe_native.task import run_task as run_plan

    started = time.time()
    source = os.path.join(root, task.bucket, *task.key.split("/"))
    sent: dict[str, Any] = {}

    def message(result: TaskResult) -> dict[str, Any]:
        sent.update(_result_message(task, _public(result, task, root), region, started))
        return sent

    try:
        plan = prepare(task.spec, LocalStore(root), topics)  # checked when it was submitted
    except Exception as exc:  # noqa: BLE001 - a task ends Failed, never crashes the worker
        result = TaskResult.failed(source, task.spec, exc, task_id=task.id)
    else:
        result = run_plan(plan, source, task_id=task.id, raise_invalid=False, message=message)
    record = _public(result, task, root).to_dict()
    record["message"] = sent or message(result)
    return {"state": result.state, "result": record}


def _worker_main(conn: Any, root: str, topics: Mapping[str, str], region: str) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    _die_with_parent()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        conn.send(run_task(task, root, topics, region))


def _die_with_parent() -> None:
    """A worker must not outlive a killed server: it would finish (and notify) a task that the
    next start runs again. Linux: PR_SET_PDEATHSIG; elsewhere the pipe's EOF ends the loop."""
    import ctypes
    import signal

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(0)


class WorkerPool:
    """``workers`` slot threads, each feeding one worker process from the queue."""

    def __init__(
        self,
        queue: TaskQueue,
        root: str,
        workers: int,
        topics: Mapping[str, str],
        region: str,
        time_limit_s: float,
    ) -> None:
        self.queue = queue
        self.root = root
        self.topics = dict(topics)
        self.region = region
        self.time_limit_s = time_limit_s
        self._stop = threading.Event()
        self._ctx = multiprocessing.get_context("spawn")  # never fork a threaded server
        self._threads = [
            threading.Thread(target=self._slot, name=f"task-slot-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Kills the workers; their tasks go back to ``Queued``."""
        self._stop.set()
        with self.queue.wakeup:
            self.queue.wakeup.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self) -> tuple[Any, Any]:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self.root, self.topics, self.region),
            name="ossframe-task-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return process, parent

    def _slot(self) -> None:
        process, conn = self._spawn()
        try:
            while not self._stop.is_set():
                task = self.queue.claim()
                if task is None:
                    with self.queue.wakeup:
                        self.queue.wakeup.wait(timeout=0.5)
                    continue
                if not process.is_alive():
                    process, conn = self._spawn()
                process, conn = self._run(task, process, conn)
        finally:
            process.kill()
            process.join()

    def _run(self, task: Task, process: Any, conn: Any) -> tuple[Any, Any]:
        started = time.time()
        conn.send(task)
        deadline = time.monotonic() + self.time_limit_s
        while not self._stop.is_set():
            if conn.poll(min(0.2, max(0.0, deadline - time.monotonic()))):
                try:
                    outcome = conn.recv()
                except EOFError:  # the worker died (out of memory, killed)
                    self._fail(task, "InternalError", "the worker process died", started)
                    return self._spawn()
                self.queue.finish(task.id, outcome["state"], outcome["result"])
                return process, conn
            if not process.is_alive():
                self._fail(task, "InternalError", "the worker process died", started)
                return self._spawn()
            if time.monotonic() >= deadline:
                process.kill()
                process.join()
                self._fail(
                    task,
                    "TaskTimeout",
                    f"the task ran longer than its time limit of {self.time_limit_s:g} s and "
                    "was stopped; objects it had saved stay",
                    started,
                )
                return self._spawn()
        process.kill()  # stopping: the task runs again on the next start
        process.join()
        self.queue.requeue(task.id)
        return process, conn

    def _fail(self, task: Task, code: str, text: str, started: float) -> None:
        from ossframe_native.task import TaskResult

        source = f"oss://{task.bucket}/{task.key}"
        result = TaskResult.failed(
            source, task.spec, code=code, message=text, store="oss://", task_id=task.id
        )
        message = _result_message(task, result, self.region, started)
        record = result.to_dict()
        try:
            record["notify"] = _deliver(task, message, self.root, self.topics)
        except Exception as exc:  # noqa: BLE001 - the task is failed either way
            record["notify"] = {"delivered": False, "error": str(exc)}
        record["message"] = message
        self.queue.finish(task.id, FAILED, record)
