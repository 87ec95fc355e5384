"""Seeded HTTP fuzzing of a live ``ossframe serve`` on 127.0.0.1.

Each case is one request of a random shape sent over a raw socket: a method (the OSS ones and
others), a path with bucket and key made of hostile pieces (percent-encoded control characters,
reserved names, ``..``, non-UTF-8 bytes, very long names), query parameters the service reads
(numbers as Unicode digits, 5,000 digits, negatives; sub-resources of every operation), headers
(Range, Content-Length that lies, Date in the year 99999, copy sources, append positions) and a
body (absent, short, cut off). About half are signed correctly with the test credentials (V1),
so that they reach the routes behind authentication.

Every answer must be an HTTP response with an OSS XML error (or ``x-oss-err`` on HEAD) whose
status is below 500, or ``501 NotImplemented`` / ``503 SlowDown`` / ``507``; no answer may
show the server's root path, the server must stay up, and afterwards no temporary file may
be left and nothing written outside the root. The test suite runs a short pass
(``tests/test_fuzz_http.py``); a longer one::

    python tests/fuzz_http.py --cases 20000 --seed 7

(it starts its own server in a temporary root and exits 1 when any case failed).
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUCKET = "fuzz-bucket"
KEYS = ["a.txt", "dir/b.bin", "v.mp4"]

_PIECES = [
    "a", "dir/b.bin", "v.mp4", "%0A", "%0D%0A", "%00", "%7F", "%FF%FE", "..", ".", "%2E%2E",
    "//", "x.ossframe-tmp", ".server", "%C2%B2", "é", "%E2%80%AE", "a" * 300, "%2F", " ", "+",
    "?", "#", "%", "%ZZ", "\\", "a.txt/x",
]  # fmt: skip
_NUMBERS = ["0", "1", "-1", "²", "%C2%B2", "9" * 5000, "99999999999999999999", "1e3", " 1", "", "٣"]
_PARAMS = [
    "x-oss-process", "x-oss-async-process", "uploads", "uploadId", "partNumber", "append",
    "position", "max-keys", "marker", "list-type", "continuation-token", "delete", "taskId",
    "max-parts", "part-number-marker", "max-uploads", "encoding-type", "prefix", "delimiter",
    "objectMeta", "acl", "Expires", "OSSAccessKeyId", "Signature", "x-oss-expires",
    "x-oss-signature-version", "x-oss-date", "x-oss-credential", "x-oss-signature",
]  # fmt: skip
_PROCESS = [
    "video/snapshot,t_0,f_jpg", "video/info", "video/snapshot,t_²", "video/snapshots,f_jpg",
    "video/snapshot,t_0,f_png|sys/saveas,b_ZnV6ei1idWNrZXQ,o_YS50eHQveC5qcGc",
    "image/resize,w_10", "video/snapshot,t_" + "9" * 400,
]  # fmt: skip
_HEADERS = [
    ("Range", ["bytes=0-1", "bytes=²-", "bytes=" + "9" * 5000 + "-", "bytes=-0", "bytes=5-1", "x"]),
    ("Content-Length", _NUMBERS),
    ("Date", ["Mon, 01 Jan 99999 00:00:00 GMT", "yesterday", ""]),
    ("x-oss-copy-source", [f"/{BUCKET}/a.txt", "/x/../y", "/%FF", f"/{BUCKET}/missing"]),
    ("x-oss-copy-source-range", ["bytes=0-0", "bytes=²-", "bytes=9-1"]),
    ("x-oss-metadata-directive", ["COPY", "REPLACE", "BOTH"]),
    ("Content-MD5", ["AAAA", "not base64", ""]),
    ("x-oss-complete-all", ["yes"]),
    ("Transfer-Encoding", ["chunked"]),
    ("If-Match", ['"0"', "*"]),
    ("If-Modified-Since", ["Mon, 01 Jan 99999 00:00:00 GMT"]),
]  # fmt: skip
_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "PROPFIND"]


@dataclass(frozen=True)
class Failure:
    case: int
    what: str


def make_request(rng: random.Random, signer: Callable[..., str] | None) -> tuple[bytes, bool]:
    """One random request as bytes, and whether its body is cut off (``signer(method, bucket,
    key, params, headers)`` adds a V1 Authorization header value when given)."""
    method = rng.choice(_METHODS)
    bucket = rng.choice([BUCKET, BUCKET, "%FF", "ab", "no-such-bucket", ""])
    key = "/".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 3)))
    params: list[tuple[str, str]] = []
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(_PARAMS)
        if name in ("x-oss-process", "x-oss-async-process"):
            value = rng.choice(_PROCESS)
        elif rng.random() < 0.6:
            value = rng.choice(_NUMBERS)
        else:
            value = rng.choice(["", "url", "2", "/", "0" * 32, "ZZZ"])
        params.append((name, value))
    headers: dict[str, str] = {"Host": "127.0.0.1"}
    for name, values in rng.sample(_HEADERS, rng.randint(0, 3)):
        headers[name] = rng.choice(values)
    body = b""
    if method in ("PUT", "POST") and rng.random() < 0.7:
        body = rng.choice([b"x" * rng.randint(0, 3000), b"x-oss-process=video/info",
                           b"<Delete><Object><Key>a.txt</Key></Object></Delete>",
                           b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
                           b"<ETag>x</ETag></Part></CompleteMultipartUpload>"])  # fmt: skip
    if "Transfer-Encoding" not in headers:
        headers.setdefault("Content-Length", str(len(body)))
    elif body:
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    headers.setdefault("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
    if signer is not None and rng.random() < 0.5:
        try:
            decoded = urllib.parse.unquote(key, errors="strict")
            headers["Authorization"] = signer(method, bucket, decoded, params, headers)
        except (UnicodeDecodeError, ValueError):
            pass
    query = "&".join(f"{k}={v}" if v else k for k, v in params)
    target = f"/{bucket}/{key}" + (f"?{query}" if query else "")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    cut = bool(body) and rng.random() < 0.15
    if cut:
        body = body[: len(body) // 2]  # then the client stops sending (half-close)
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body, cut


def oss2_signer() -> Callable[..., str]:
    import oss2
    from server_support import AK, SK

    auth = oss2.Auth(AK, SK)

    def sign(method: str, bucket: str, key: str, params: list, headers: dict) -> str:
        req = oss2.http.Request(method, "http://x/", headers=dict(headers), params=dict(params))
        req.headers["Content-Type"] = headers.get("Content-Type", "")
        auth._sign_request(req, bucket, key)
        return str(req.headers["authorization"])

    return sign


def check_reply(reply: bytes, method: str, root: str) -> str | None:
    """What is wrong with a reply, or ``None``."""
    if not reply:
        return None  # closed without an answer: allowed only for cut-off bodies (timeouts)
    if not reply.startswith(b"HTTP/1.1 "):
        return f"not HTTP: {reply[:60]!r}"
    status = int(reply[9:12])
    if status >= 500 and status not in (501, 503, 507):  # NotImplemented, SlowDown, full disk
        return f"status {status}: {reply[:400]!r}"
    if root.encode() in reply:
        return "the server's root path is in the reply"
    if status >= 400 or status == 304:
        head, _, body = reply.partition(b"\r\n\r\n")
        if method == "HEAD" or status == 304:
            if b"x-oss-err:" not in head.lower():
                return f"{status} without x-oss-err on {method}"
        elif b"<Code>" not in body and b"content-type: application/xml" not in head:
            return f"{status} is not OSS XML: {reply[:300]!r}"
    return None


def send(port: int, data: bytes, cut: bool, timeout: float) -> bytes:
    """Sends one request and reads its reply (until complete, closed or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if cut:
            s.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
                head, sep, rest = reply.partition(b"\r\n\r\n")
                if sep and _complete(head, rest):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return reply


def _complete(head: bytes, rest: bytes) -> bool:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def run_cases(
    port: int, root: str, cases: int, seed: int, log: Callable[[str], None] = print
) -> tuple[int, list[Failure]]:
    """Sends ``cases`` random requests; returns (answered, failures)."""
    rng = random.Random(seed)
    signer = oss2_signer()
    failures: list[Failure] = []
    answered = 0
    for case in range(cases):
        data, cut = make_request(rng, signer)
        method = data.split(b" ", 1)[0].decode()
        try:
            reply = send(port, data, cut, timeout=5)
        except OSError as exc:
            failures.append(Failure(case, f"cannot connect: {exc}"))
            break
        answered += bool(reply)
        problem = check_reply(reply, method, root)
        if problem:
            failures.append(Failure(case, problem))
            log(f"case {case}: {problem}\n  request: {data[:300]!r}")
    return answered, failures


def prepare(endpoint: str, clip: Path | None) -> None:
    """The bucket and a few objects the requests aim at."""
    import oss2
    from server_support import AK, SK

    bucket = oss2.Bucket(oss2.Auth(AK, SK), endpoint, BUCKET)
    bucket.create_bucket()
    bucket.put_object("a.txt", b"0123456789")
    bucket.put_object("dir/b.bin", b"b" * 1000)
    if clip is not None:
        bucket.put_object_from_file("v.mp4", str(clip))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import os

    from server_support import start_server

    clip = HERE.parent / "examples" / "sample.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        srv = start_server(root, dict(os.environ), "--idle-timeout", "1", "--header-timeout", "2")
        try:
            prepare(srv.endpoint, clip if clip.exists() else None)
            answered, failures = run_cases(srv.port, str(root), args.cases, args.seed)
            alive = srv.process.poll() is None
        finally:
            srv.stop()
        leftovers = list(root.rglob("*.ossframe-tmp"))
    print(f"{args.cases} cases, {answered} answered, {len(failures)} failures, "
          f"server alive: {alive}, temporary files left: {len(leftovers)}")  # fmt: skip
    return 0 if not failures and alive and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
