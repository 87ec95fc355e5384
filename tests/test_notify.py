"""notify: JSON-lines topic files, webhooks with retries against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ossframe_native.errors import InvalidArgument
from ossframe_native.notify import (
    Webhook,
    deliver,
    normalize_topics,
    parse_topic_args,
    topic_file,
    validate_topic,
)
from ossframe_native.store import LocalStore

MESSAGE = {"task_id": "t-1", "state": "Succeeded", "objects": [{"key": "a.jpg", "time_ms": 0}]}


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # e.g. the client timed out and closed the connection first


class Hook:
    """A webhook receiver on 127.0.0.1 that answers ``statuses`` in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0, headers=None):
        self.statuses = list(statuses or [])
        self.delay = delay
        self.headers = dict(headers or {})
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    hook.requests.append((dict(self.headers), body))
                    status = hook.statuses.pop(0) if hook.statuses else 200
                if hook.delay:
                    time.sleep(hook.delay)
                self.send_response(status)
                for name, value in hook.headers.items():
                    self.send_header(name, value)
                if status in (301, 302):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_factory() -> Iterator:
    hooks: list[Hook] = []

    def make(*args, **kwargs) -> Hook:
        hooks.append(Hook(*args, **kwargs))
        return hooks[-1]

    yield make
    for h in hooks:
        h.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# -- names and mappings ---------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["test-topic", "t", "T1", "a_b", "1abc", "x" * 256])
def test_valid_topics(topic: str) -> None:
    assert validate_topic(topic) == topic


@pytest.mark.parametrize(
    "topic", ["", "-a", "_a", "a/b", "../a", "a.b", "a b", "a\nb", "x" * 257, "é"]
)
def test_invalid_topics(topic: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_topic(topic)
    assert info.value.param == "topic"


def test_topic_files() -> None:
    assert topic_file("test-topic") == ".notify/test-topic.jsonl"
    assert topic_file("test-topic", dead=True) == ".notify/test-topic.dead.jsonl"


def test_topic_mappings() -> None:
    hooks = parse_topic_args(["a=http://127.0.0.1:9/x", "b=https://example.invalid/hook?k=v"])
    assert hooks["a"] == Webhook("http://127.0.0.1:9/x")
    assert hooks["b"].url == "https://example.invalid/hook?k=v"
    assert parse_topic_args(None) == {}
    for bad in (["a"], ["=http://x"], ["a="], ["a=ftp://x"], ["a=x=y"], ["bad/name=http://x"]):
        with pytest.raises(InvalidArgument):
            parse_topic_args(bad)
    with pytest.raises(InvalidArgument, match="twice"):
        parse_topic_args(["a=http://h/1", "a=http://h/2"])
    assert normalize_topics({"a": Webhook("http://h/", retries=0)})["a"].retries == 0
    with pytest.raises(InvalidArgument):
        normalize_topics({"a": 42})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument):
        normalize_topics(["a"])  # type: ignore[arg-type]
    for kwargs in ({"timeout": 0}, {"retries": -1}, {"backoff": -1.0}):
        with pytest.raises(InvalidArgument):
            Webhook("http://h/", **kwargs)


# -- the JSON-lines file ---------------------------------------------------------------------------


def test_file_topic_appends_one_line_per_message(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for i in range(3):
        record = deliver("test-topic", dict(MESSAGE, task_id=f"t-{i}"), store)
        assert record == {
            "topic": "test-topic",
            "target": "file",
            "delivered": True,
            "attempts": 1,
            "location": str(tmp_path / ".notify" / "test-topic.jsonl"),
            "error": None,
        }
    lines = (tmp_path / ".notify" / "test-topic.jsonl").read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["t-0", "t-1", "t-2"]
    assert json.loads(lines[0])["objects"] == MESSAGE["objects"]


def test_file_topic_failure_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / ".notify").write_text("a file where the folder should be")
    record = deliver("test-topic", MESSAGE, LocalStore(tmp_path))
    assert record["delivered"] is False
    assert "cannot append" in record["error"]


def test_file_topic_under_concurrent_processes(tmp_path: Path, child_env: dict[str, str]) -> None:
    """Three processes deliver 40 messages each (some large) to one topic at once."""
    script = textwrap.dedent(
        """
        import sys
        from ossframe_native.notify import deliver
        from ossframe_native.store import LocalStore
        store = LocalStore(sys.argv[1])
        for i in range(40):
            msg = {"task_id": f"{sys.argv[2]}-{i}", "objects": [{"key": "k" * 50}] * (i * 20)}
            assert deliver("busy", msg, store)["delivered"]
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), w], env=child_env)
        for w in "xyz"
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    lines = (tmp_path / ".notify" / "busy.jsonl").read_text().splitlines()
    messages = [json.loads(line) for line in lines]
    assert sorted(m["task_id"] for m in messages) == sorted(
        f"{w}-{i}" for w in "xyz" for i in range(40)
    )
    assert all(len(m["objects"]) == int(m["task_id"].split("-")[1]) * 20 for m in messages)


# -- webhooks ------------------------------------------------------------------------------------


def test_webhook_retries_until_delivered(tmp_path: Path, hook_factory) -> None:
    hook = hook_factory([503, 500])
    topics = {"t": Webhook(hook.url, retries=3, backoff=0.01)}
    record = deliver("t", MESSAGE, LocalStore(tmp_path), topics)
    assert record["delivered"] is True
    assert record["attempts"] == 3
    assert record["target"] == hook.url and record["error"] is None
    assert len(hook.requests) == 3
    headers, body = hook.requests[-1]
    assert json.loads(body) == MESSAGE
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Ossframe-Task-Id"] == "t-1"
    assert headers["X-Ossframe-Topic"] == "t"
    assert not (tmp_path / ".notify").exists()  # no file line, no dead letter


def test_webhook_backoff_doubles(tmp_path: Path, hook_factory) -> None:
    hook = hook_factory([503, 503, 503])
    started = time.perf_counter()
    record = deliver("t", MESSAGE, LocalStore(tmp_path), {"t": Webhook(hook.url, backoff=0.1)})
    elapsed = time.perf_counter() - started
    assert record["delivered"] and record["attempts"] == 4
    assert elapsed >= 0.1 + 0.2 + 0.4


def test_webhook_gives_up_into_dead_letters(tmp_path: Path, hook_factory) -> None:
    hook = hook_factory([500] * 10)
    topics = {"t": Webhook(hook.url, retries=2, backoff=0.01)}
    record = deliver("t", MESSAGE, LocalStore(tmp_path), topics)
    dead_file = tmp_path / ".notify" / "t.dead.jsonl"
    assert record["delivered"] is False
    assert record["attempts"] == 3 and len(hook.requests) == 3
    assert "HTTP 500" in record["error"] and "3 attempts" in record["error"]
    assert record["location"] == str(dead_file)
    (dead,) = [json.loads(line) for line in dead_file.read_text().splitlines()]
    assert dead["message"] == MESSAGE
    assert dead["url"] == hook.url and dead["attempts"] == 3 and dead["topic"] == "t"
    assert not (tmp_path / ".notify" / "t.jsonl").exists()


@pytest.mark.parametrize("status", [400, 404, 302])
def test_webhook_permanent_errors_are_not_retried(tmp_path: Path, hook_factory, status) -> None:
    hook = hook_factory([status] * 5)
    record = deliver("t", MESSAGE, LocalStore(tmp_path), {"t": Webhook(hook.url, backoff=0.01)})
    assert record["delivered"] is False and record["attempts"] == 1
    assert f"HTTP {status}" in record["error"]
    assert (tmp_path / ".notify" / "t.dead.jsonl").is_file()


def test_webhook_429_honours_retry_after(tmp_path: Path, hook_factory) -> None:
    hook = hook_factory([429], headers={"Retry-After": "0"})
    record = deliver("t", MESSAGE, LocalStore(tmp_path), {"t": Webhook(hook.url, backoff=30)})
    assert record["delivered"] and record["attempts"] == 2


def test_webhook_timeout(tmp_path: Path, hook_factory) -> None:
    hook = hook_factory(delay=0.5)
    topics = {"t": Webhook(hook.url, timeout=0.1, retries=1, backoff=0.01)}
    record = deliver("t", MESSAGE, LocalStore(tmp_path), topics)
    assert record["delivered"] is False and record["attempts"] == 2
    assert "timed out" in record["error"].lower()
    assert (tmp_path / ".notify" / "t.dead.jsonl").is_file()


def test_webhook_unreachable(tmp_path: Path) -> None:
    url = closed_port_url()
    record = deliver("t", MESSAGE, LocalStore(tmp_path), {"t": Webhook(url, backoff=0.01)})
    assert record["delivered"] is False and record["attempts"] == 4
    assert "refused" in record["error"].lower()
    (dead,) = (tmp_path / ".notify" / "t.dead.jsonl").read_text().splitlines()
    assert json.loads(dead)["message"] == MESSAGE


def test_only_mapped_topics_use_webhooks(tmp_path: Path, hook_factory) -> None:
    hook = hook_factory()
    topics = {"web": Webhook(hook.url)}
    assert deliver("web", MESSAGE, LocalStore(tmp_path), topics)["target"] == hook.url
    assert deliver("other", MESSAGE, LocalStore(tmp_path), topics)["target"] == "file"
    assert len(hook.requests) == 1
    assert (tmp_path / ".notify" / "other.jsonl").is_file()
