"""Starting a real ``ossframe serve`` process for the service tests (shared by the modules)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

AK, SK = "test-access-key", "test-secret-key"
REGION = "cn-hangzhou"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running ``ossframe serve``: its process, endpoint and store root."""

    process: subprocess.Popen
    endpoint: str
    root: Path
    port: int
    stderr: str = ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _out, self.stderr = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, self.stderr = self.process.communicate()
        return self.process.returncode


def start_server(root: Path, env: dict[str, str], *extra: str, port: int | None = None) -> Server:
    """Starts ``python -m ossframe_native.cli serve`` and waits for its ready line."""
    port = port or free_port()
    env = dict(env, OSS_ACCESS_KEY_ID=AK, OSS_ACCESS_KEY_SECRET=SK, PYTHONUNBUFFERED="1")
    argv = [
        sys.executable,
        "-m",
        "ossframe_native.cli",
        "serve",
        "--root",
        str(root),
        "--port",
        str(port),
        "--region",
        REGION,
        *extra,
    ]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    expected = f"ossframe: serving http://127.0.0.1:{port} (root {os.path.abspath(root)})\n"
    if line != expected:
        process.kill()
        _out, err = process.communicate()
        raise AssertionError(f"server did not start: {line!r} {err!r}")
    return Server(process, f"http://127.0.0.1:{port}", root, port)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    """Polls ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def read_reply(sock: socket.socket) -> bytes:
    """An HTTP error reply read from a raw socket: headers and the XML body."""
    reply = b""
    while b"</Error>" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


def padded_mp4(clip: Path, out: Path, size: int) -> Path:
    """``clip`` followed by an MP4 ``free`` box of random bytes: a valid video of ``size``
    bytes that decodes exactly like ``clip`` (large objects for multipart tests)."""
    data = clip.read_bytes()
    pad = size - len(data)
    assert pad > 8
    out.write_bytes(data + pad.to_bytes(4, "big") + b"free" + os.urandom(pad - 8))
    return out


def v2_client(endpoint: str):
    """An ``alibabacloud_oss_v2`` client of the test credentials."""
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(AK, SK)
    cfg.region = REGION
    cfg.endpoint = endpoint
    return oss.Client(cfg)


def task_state(endpoint: str, bucket: str, task_id: str) -> dict:
    """A task's state as ``GET /<bucket>?taskId=`` shows it (through the V2 SDK)."""
    import alibabacloud_oss_v2 as oss

    result = v2_client(endpoint).invoke_operation(
        oss.OperationInput(
            op_name="GetTask", method="GET", bucket=bucket, parameters={"taskId": task_id}
        )
    )
    return json.loads(result.http_response.content)


def finished_task(endpoint: str, bucket: str, task_id: str, timeout: float = 60.0) -> dict:
    """The state of a task once it has Succeeded or Failed."""

    def finished() -> dict | None:
        state = task_state(endpoint, bucket, task_id)
        return state if state["State"] in ("Succeeded", "Failed") else None

    return wait_for(finished, timeout, f"task {task_id}")


def signed_head(method: str, bucket: str, key: str, extra: str = "") -> str:
    """The head of a raw V1-signed request (``extra``: more header lines), for requests the
    SDKs cannot send (trickled, cut off, malformed)."""
    import oss2

    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    req = oss2.http.Request(method, "http://x/", headers={"Date": date}, data=b"")
    req.headers["Content-Type"] = ""
    oss2.Auth(AK, SK)._sign_request(req, bucket, key)
    path = oss2.compat.urlquote(key, safe="")
    return (
        f"{method} /{bucket}/{path} HTTP/1.1\r\nHost: x\r\nDate: {date}\r\n"
        f"Authorization: {req.headers['authorization']}\r\n{extra}\r\n"
    )


def signed_part_head(bucket: str, key: str, upload_id: str, number: int, length: int) -> str:
    """The head of a raw V1-signed UploadPart request of ``length`` bytes (its sub-resources
    signed as sent), for parts cut off on purpose."""
    head = signed_head("PUT", bucket, key, f"Content-Length: {length}\r\n")
    params = {"partNumber": str(number), "uploadId": upload_id}
    head = head.replace(" HTTP/1.1", f"?partNumber={number}&uploadId={upload_id} HTTP/1.1", 1)
    date = head.split("Date: ", 1)[1].split("\r\n", 1)[0]
    import oss2

    req = oss2.http.Request("PUT", "http://x/", headers={"Date": date}, data=b"", params=params)
    req.headers["Content-Type"] = ""
    oss2.Auth(AK, SK)._sign_request(req, bucket, key)
    unsigned = head.split("Authorization: ", 1)[1].split("\r\n", 1)[0]
    return head.replace(unsigned, req.headers["authorization"])


def error_of(call) -> tuple[int, str]:
    """(status, code) of the OSS error ``call`` raises through oss2 (the failed call's
    traceback, which holds its connection, is not kept)."""
    import oss2

    try:
        call()
    except oss2.exceptions.OssError as exc:
        return exc.status, exc.code
    raise AssertionError("no error")
