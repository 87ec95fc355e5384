"""``ossframe serve`` under faults: SIGKILL mid-task, time limits, full queues, stalled uploads,
webhook delivery. Each test starts its own server (real processes on 127.0.0.1)."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import oss2
import pytest
from media import ClipTruth, b64, decode_image, read_frame_number, reference_frames
from server_support import AK, SK, read_reply, start_server, wait_for

from ossframe_native.store import TEMP_SUFFIX

pytestmark = pytest.mark.needs("server")

BUCKET = "src-bucket"
VIDEO = "long.mp4"
# Every frame of the 300-frame clip, enlarged: a few seconds of work for one worker.
EVERY_FRAME = "video/snapshots,f_png,w_640,h_480"


def async_spec(action: str, obj: str, topic: str) -> str:
    return f"{action}|sys/saveas,b_{b64(BUCKET)},o_{b64(obj)}/notify,topic_{b64(topic)}"


def task_state(root, task_id: str) -> str | None:
    with sqlite3.connect(root / ".server" / "tasks.db") as db:
        row = db.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else row[0]


def setup_bucket(srv, clip: ClipTruth):
    bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
    bucket.create_bucket()
    bucket.put_object_from_file(VIDEO, str(clip.path))
    return bucket


def notify_lines(root, topic: str) -> list[dict]:
    path = root / ".notify" / f"{topic}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_task_then_restart_completes_it(tmp_path, child_env, clip_h264_long_gop):
    srv = start_server(tmp_path, child_env, "--workers", "1")
    bucket = setup_bucket(srv, clip_h264_long_gop)
    spec = async_spec(EVERY_FRAME, "out/{index}.png", "done")
    result = bucket.async_process_object(VIDEO, spec)
    wait_for(lambda: task_state(tmp_path, result.task_id) == "Running", 30, "the task to start")
    time.sleep(0.5)
    srv.stop(signal.SIGKILL)
    assert task_state(tmp_path, result.task_id) == "Running"  # killed mid-task
    assert notify_lines(tmp_path, "done") == []

    srv = start_server(tmp_path, child_env, "--workers", "1", port=srv.port)
    try:
        wait_for(lambda: task_state(tmp_path, result.task_id) == "Succeeded", 120, "the rerun")
        messages = notify_lines(tmp_path, "done")
        assert [m["id"] for m in messages] == [result.event_id]
        content = json.loads(messages[0]["content"])
        assert content["TaskId"] == result.task_id and content["Status"] == "Succeeded"
        refs = reference_frames(clip_h264_long_gop.path)
        keys = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="out/")]
        assert sorted(keys) == sorted(f"out/{i}.png" for i in range(1, len(refs) + 1))
        for i in (1, 150, len(refs)):  # complete, decodable, the right frame
            image = decode_image(bucket.get_object(f"out/{i}.png").read())
            assert image.shape == (480, 640, 3)
        # A kill in the middle of a write can leave that write's hidden temporary file (the
        # rerun writes its own); it is never an object: not listed (above), never served.
        for temp in tmp_path.rglob(f"*{TEMP_SUFFIX}"):
            key = temp.relative_to(tmp_path / BUCKET).as_posix()
            with pytest.raises(oss2.exceptions.NoSuchKey):
                bucket.get_object(key)
        with sqlite3.connect(tmp_path / ".server" / "tasks.db") as db:
            (attempts,) = db.execute(
                "SELECT attempts FROM tasks WHERE id = ?", (result.task_id,)
            ).fetchone()
        assert attempts == 2
    finally:
        assert srv.stop() == 0


@pytest.mark.slow
def test_time_limit_and_full_queue(tmp_path, child_env, clip_h264_long_gop):
    srv = start_server(
        tmp_path, child_env, "--workers", "1", "--task-time-limit", "1", "--max-queued-tasks", "2"
    )
    try:
        bucket = setup_bucket(srv, clip_h264_long_gop)
        spec = async_spec(EVERY_FRAME, "slow/{index}.png", "t")
        first = bucket.async_process_object(VIDEO, spec)
        bucket.async_process_object(VIDEO, spec)
        with pytest.raises(oss2.exceptions.ServerError) as info:
            bucket.async_process_object(VIDEO, spec)
        assert (info.value.status, info.value.code) == (503, "SlowDown")
        wait_for(lambda: task_state(tmp_path, first.task_id) == "Failed", 60, "the time limit")
        message = next(m for m in notify_lines(tmp_path, "t") if m["id"] == first.event_id)
        content = json.loads(message["content"])
        assert content["Status"] == "Failed" and content["Code"] == "TaskTimeout"
    finally:
        assert srv.stop() == 0


def test_stalled_upload_is_dropped(tmp_path, child_env):
    srv = start_server(tmp_path, child_env, "--idle-timeout", "1")
    try:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
        bucket.create_bucket()
        date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        req = oss2.http.Request("PUT", "http://x/", headers={"Date": date}, data=b"")
        req.headers["Content-Type"] = ""
        oss2.Auth(AK, SK)._sign_request(req, BUCKET, "stall.bin")
        head = (
            f"PUT /{BUCKET}/stall.bin HTTP/1.1\r\nHost: x\r\nDate: {date}\r\n"
            f"Authorization: {req.headers['authorization']}\r\nContent-Length: 100000\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(head.encode() + b"z" * 1000)
            s.settimeout(10)
            reply = read_reply(s)
            assert reply.startswith(b"HTTP/1.1 400") and b"<Code>RequestTimeout</Code>" in reply
        assert not list((tmp_path / ".server" / "tmp").iterdir())
        assert not bucket.object_exists("stall.bin")
        # Oversized and malformed request heads are refused by the HTTP parser.
        for raw in (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", srv.port)) as s:
                s.sendall(raw)
                s.settimeout(10)
                assert s.recv(4096).startswith(b"HTTP/1.1 4")
        assert bucket.object_exists("stall.bin") is False  # and it still serves
    finally:
        assert srv.stop() == 0


class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_webhook_topic(tmp_path, child_env, clip_h264_b):
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/notify"
    srv = start_server(tmp_path, child_env, "--topic", f"hook={url}")
    try:
        bucket = setup_bucket(srv, clip_h264_b)
        spec = async_spec("video/snapshots,f_png,m_key", "k/{index}.png", "hook")
        result = bucket.async_process_object(VIDEO, spec)
        wait_for(lambda: _Hook.received, 60, "the webhook")
        message = json.loads(_Hook.received[0])
        content = json.loads(message["content"])
        assert message["id"] == result.event_id and content["TaskId"] == result.task_id
        refs = reference_frames(clip_h264_b.path)
        keyframes = [refs[i].number for i in clip_h264_b.keyframes]
        saved = [t["URI"] for t in content["Targets"]]
        assert saved == [f"oss://{BUCKET}/k/{i}.png" for i in range(1, len(keyframes) + 1)]
        for i, number in enumerate(keyframes, 1):
            data = bucket.get_object(f"k/{i}.png").read()
            assert read_frame_number(decode_image(data)) == number
    finally:
        srv.stop()
        hook.shutdown()
        hook.server_close()


@pytest.mark.slow
def test_sigterm_leaves_the_running_task_queued_and_busy_processing_is_503(
    tmp_path, child_env, clip_h264_long_gop
):
    srv = start_server(tmp_path, child_env, "--workers", "1", "--max-processing", "1")
    bucket = setup_bucket(srv, clip_h264_long_gop)
    try:
        spec = "video/snapshot,t_8200,f_png"  # frame 246: 247 frames decoded from keyframe 0
        codes: list[object] = []

        def get() -> None:
            try:
                bucket.get_object(VIDEO, process=spec).read()
                codes.append(200)
            except oss2.exceptions.ServerError as exc:
                codes.append(exc.status if exc.code == "SlowDown" else exc)

        threads = [threading.Thread(target=get) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 200 in codes and 503 in codes and set(codes) == {200, 503}

        result = bucket.async_process_object(VIDEO, async_spec(EVERY_FRAME, "q/{index}.png", "q"))
        wait_for(lambda: task_state(tmp_path, result.task_id) == "Running", 30, "the task")
    finally:
        assert srv.stop(signal.SIGTERM) == 0
    assert task_state(tmp_path, result.task_id) == "Queued"
    assert notify_lines(tmp_path, "q") == []


def test_virtual_hosted_style_under_localhost(tmp_path, child_env):
    srv = start_server(tmp_path, child_env)
    try:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
        bucket.create_bucket()
        bucket.put_object("dir/v.txt", b"virtual")
        url = bucket.sign_url("GET", "dir/v.txt", 60)
        path = url.split(f"/{BUCKET}", 1)[1]  # '/dir%2Fv.txt?OSSAccessKeyId=...'
        host = f"{BUCKET}.localhost:{srv.port}"
        reply = httpx.get(f"{srv.endpoint}{path}", headers={"Host": host})
        assert reply.status_code == 200 and reply.content == b"virtual"
    finally:
        srv.stop()
