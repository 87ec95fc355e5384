"""Delivering one JSON message per task to a topic (docs/TASKS.md, docs/BEHAVIOUR.md "Notify").

Embedded default: the message is appended as one line to ``.notify/<topic>.jsonl`` in the
store. A topic mapped to an http(s) URL (``topics={"name": "https://..."}`` in the API,
``--topic NAME=URL`` on the command line) is POSTed there as JSON, with a timeout and retries
with exponential backoff; a message that cannot be delivered is appended to the dead-letter
file ``.notify/<topic>.dead.jsonl`` and the failure is reported in the task result.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ossframe_native.errors import InvalidArgument
from ossframe_native.names import validate_topic
from ossframe_native.store import Store, StoreError, dump_json_line

__all__ = [
    "Webhook",
    "deliver",
    "normalize_topics",
    "parse_topic_args",
    "topic_file",
    "validate_topic",
]

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "ossframe_native-notify/1"


@dataclass(frozen=True)
class Webhook:
    """An http(s) endpoint for a topic and how hard to try it.

    ``retries`` attempts follow the first one; before retry *k* (from 1) the sender waits
    ``min(backoff * 2**(k-1), max_backoff)`` seconds, or the server's ``Retry-After`` seconds
    if it sent one (capped the same way).
    """

    url: str
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    headers: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not re.match(r"https?://[^/\s]+", self.url):
            raise InvalidArgument(
                "topics", f"webhook URL {self.url!r} is not an http:// or https:// URL"
            )
        if not self.timeout > 0:
            raise InvalidArgument("topics", f"webhook timeout {self.timeout} must be > 0 s")
        if not (isinstance(self.retries, int) and self.retries >= 0):
            raise InvalidArgument("topics", f"webhook retries {self.retries} must be an int >= 0")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidArgument("topics", "webhook backoff times must be >= 0 s")


def topic_file(topic: str, dead: bool = False) -> str:
    """The store record name of a topic's message stream or of its dead letters.

    ``topic`` is a valid topic name (``Notify.topic`` of a parsed process string, checked by
    :func:`validate_topic` then); the store refuses any other record name.
    """
    return f".notify/{topic}{'.dead' if dead else ''}.jsonl"


def normalize_topics(topics: Mapping[str, str | Webhook] | None) -> dict[str, Webhook]:
    """Validate a topic → webhook mapping (values: a URL string or a :class:`Webhook`)."""
    if topics is None:
        return {}
    if not isinstance(topics, Mapping):
        raise InvalidArgument("topics", "topics must be a mapping of topic name to http(s) URL")
    out: dict[str, Webhook] = {}
    for name, target in topics.items():
        validate_topic(name, "topics")
        if isinstance(target, Webhook):
            out[name] = target
        elif isinstance(target, str):
            out[name] = Webhook(target)
        else:
            raise InvalidArgument(
                "topics", f"topic {name!r} maps to {target!r}; give an http(s) URL or a Webhook"
            )
    return out


def parse_topic_args(items: Iterable[str] | None) -> dict[str, Webhook]:
    """``["name=https://host/path", ...]`` (the CLI's ``--topic``) → topic mapping."""
    mapping: dict[str, str] = {}
    for item in items or ():
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise InvalidArgument("topic", f"--topic {item!r}: write NAME=URL")
        if name in mapping:
            raise InvalidArgument("topic", f"--topic {name!r} is given twice")
        mapping[name] = url
    return normalize_topics(mapping)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def deliver(
    topic: str,
    message: Mapping[str, Any],
    store: Store,
    topics: Mapping[str, Webhook] | None = None,
) -> dict[str, Any]:
    """Deliver ``message`` to ``topic`` (a valid topic name, as ``parse_process`` gives it);
    never raises for a delivery failure.

    Returns the delivery record put in the task result: ``topic``, ``target`` (``"file"`` or
    the URL), ``delivered``, ``attempts``, ``location`` (where the line or dead letter went),
    ``error`` (``None`` when delivered).
    """
    line = dump_json_line(message)
    webhook = (topics or {}).get(topic)
    if webhook is None:
        record: dict[str, Any] = {
            "topic": topic,
            "target": "file",
            "delivered": False,
            "attempts": 1,
            "location": None,
            "error": None,
        }
        try:
            record["location"] = store.append_line(topic_file(topic), line)
            record["delivered"] = True
        except StoreError as exc:
            record["error"] = str(exc)
        return record

    attempts, error = _post_with_retries(webhook, line, topic, message)
    record = {
        "topic": topic,
        "target": webhook.url,
        "delivered": error is None,
        "attempts": attempts,
        "location": webhook.url if error is None else None,
        "error": error,
    }
    if error is not None:
        dead = {
            "topic": topic,
            "url": webhook.url,
            "failed_at": _now(),
            "attempts": attempts,
            "error": error,
            "message": message,
        }
        try:
            record["location"] = store.append_line(
                topic_file(topic, dead=True), dump_json_line(dead)
            )
        except StoreError as exc:
            record["error"] = f"{error}; and the dead letter could not be written: {exc}"
    return record


@functools.cache
def _opener() -> Any:
    """A urllib opener that does not follow redirects (imported on first use: start-up time)."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        # A redirected POST would lose its body (urllib turns it into a GET): report instead.
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)


def _post_with_retries(
    webhook: Webhook, body: bytes, topic: str, message: Mapping[str, Any]
) -> tuple[int, str | None]:
    import http.client
    import urllib.error
    import urllib.request

    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Ossframe-Topic": topic,
    }
    task_id = message.get("task_id")
    if isinstance(task_id, str):
        headers["X-Ossframe-Task-Id"] = task_id
    headers.update(dict(webhook.headers))
    error: str | None = None
    attempt = 0
    for attempt in range(1, webhook.retries + 2):
        wait: float | None = None
        request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")
        try:
            with _opener().open(request, timeout=webhook.timeout) as response:
                response.read()
                status = response.status
            if 200 <= status < 300:
                return attempt, None
            error, retry = f"HTTP {status}", False  # pragma: no cover - urllib raises for these
        except urllib.error.HTTPError as exc:
            with exc:
                exc.read()
            error = f"HTTP {exc.code} {exc.reason}"
            retry = exc.code in _RETRY_STATUS
            wait = _retry_after(exc.headers.get("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
            reason = getattr(exc, "reason", exc)
            error = f"{type(reason).__name__}: {reason}"
            retry = True
        if not retry or attempt > webhook.retries:
            break
        delay = webhook.backoff * 2 ** (attempt - 1) if wait is None else wait
        time.sleep(min(delay, webhook.max_backoff))
    return attempt, f"{error} after {attempt} attempt{'s' if attempt != 1 else ''}"


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
