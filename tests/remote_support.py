"""Real servers on 127.0.0.1 that count what they send, for the remote-source tests and
``bench/bench_remote.py``.

* :class:`RangeServer`: a threaded HTTP/1.1 file server with single-range ``Range`` support (as
  object stores and CDNs answer: ``206`` with ``Content-Range``), ``HEAD``, ``404`` for a
  missing name and ``403`` for a name marked denied.
* :class:`MotoServer`: moto's S3 in server mode (the same WSGI application
  ``moto.server.ThreadedMotoServer`` serves) behind a counting middleware.

Both count, per object, the requests received and the body bytes actually written to the
socket (in 64 KiB pieces: a client that hangs up early stops the count within one piece), so
a test bounds what a capture fetched from the server's side, not from the client's word.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PIECE = 64 * 1024


class Counts:
    """Requests and body bytes sent per object name (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()

    def request(self, name: str) -> None:
        with self._lock:
            self.requests[name] += 1

    def sent(self, name: str, count: int) -> None:
        with self._lock:
            self.bytes_sent[name] += count

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_sent.clear()

    def total(self) -> tuple[int, int]:
        """(requests, bytes sent) over every object."""
        with self._lock:
            return sum(self.requests.values()), sum(self.bytes_sent.values())

    def settled(self, timeout: float = 5.0) -> tuple[int, int]:
        """:meth:`total` once it has stopped changing (a server thread may still be counting
        the last piece its client already received)."""
        deadline = time.monotonic() + timeout
        last = self.total()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.total()
            if now == last:
                return now
            last = now
        return last


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    """Serves ``files`` (URL name -> local path) at ``http://127.0.0.1:PORT/<name>``; the
    query string is ignored (a presigned URL's signature is accepted as it is)."""

    def __init__(self, files: dict[str, Path] | None = None) -> None:
        self.files: dict[str, Path] = dict(files or {})
        self.denied: set[str] = set()
        self.ranges = True  # False: answer every GET with the whole object, as some servers do
        self.counts = Counts()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                name = self.path.split("?", 1)[0].lstrip("/")
                server.counts.request(name)
                if name in server.denied:
                    return self._status(403)
                path = server.files.get(name)
                if path is None or not path.is_file():
                    return self._status(404)
                size = path.stat().st_size
                start, end = 0, size - 1
                found = _RANGE.match(self.headers.get("Range", ""))
                if server.ranges and found and (found.group(1) or found.group(2)):
                    if found.group(1):
                        start = int(found.group(1))
                        end = min(int(found.group(2) or size - 1), size - 1)
                    else:  # a suffix: the last N bytes
                        start = max(0, size - int(found.group(2)))
                    if start >= size or start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                if body:
                    self._send(name, path, start, end + 1)

            def _send(self, name: str, path: Path, start: int, stop: int) -> None:
                with open(path, "rb") as f:
                    f.seek(start)
                    while start < stop:
                        piece = f.read(min(PIECE, stop - start))
                        try:
                            self.wfile.write(piece)
                        except OSError:  # the client hung up
                            self.close_connection = True
                            return
                        server.counts.sent(name, len(piece))
                        start += len(piece)

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _CountingApp:
    """WSGI middleware: counts each request and the body bytes handed to the server."""

    def __init__(self, app: Any, counts: Counts) -> None:
        self.app = app
        self.counts = counts

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        name = environ.get("PATH_INFO", "").lstrip("/")
        self.counts.request(name)
        return self._pieces(name, self.app(environ, start_response))

    def _pieces(self, name: str, body: Iterable[bytes]) -> Iterator[bytes]:
        try:
            for chunk in body:
                for at in range(0, len(chunk), PIECE):
                    piece = chunk[at : at + PIECE]
                    yield piece  # the server writes it before asking for the next one
                    self.counts.sent(name, len(piece))
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


class MotoServer:
    """moto's S3 on ``http://127.0.0.1:PORT`` with per-object counts (name ``bucket/key``)."""

    def __init__(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log(self, *args: Any) -> None:
                pass

        self.counts = Counts()
        app = _CountingApp(DomainDispatcherApplication(create_backend_app), self.counts)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MotoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
