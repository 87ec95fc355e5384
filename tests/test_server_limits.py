"""``ossframe serve`` under hostile and heavy use: numbers that are not numbers, names it
reserves, partial deletes, listing pages, slow clients, a full disk, overload. Every error must
be OSS XML with a defined code, nothing partial may stay, and normal clients keep being served.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import oss2
import pytest
from media import b64
from server_support import (
    AK,
    REGION,
    SK,
    error_of,
    finished_task,
    read_reply,
    signed_head,
    start_server,
)

import ossframe_native as ofn
from ossframe_native.store import TEMP_SUFFIX, root_lock

pytestmark = pytest.mark.needs("server")

BUCKET = "lim-bucket"


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    root = tmp_path_factory.mktemp("limits-root")
    srv = start_server(root, child_env, "--max-object-size", str(4 << 20), "--idle-timeout", "2")
    oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET).create_bucket()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def bucket(server):
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)
    yield bucket
    bucket.session.session.close()


def xml_code(reply: httpx.Response) -> str:
    """The OSS error code of a reply, which must be an XML error document."""
    assert reply.headers["content-type"] == "application/xml", reply.content[:200]
    text = reply.content.decode()
    assert text.startswith("<?xml") and "<RequestId>" in text
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        s.settimeout(10)
        return read_reply(s)


# -- numbers, names and error shapes ----------------------------------------------------------


def test_numbers_that_are_not_numbers(server, bucket) -> None:
    bucket.put_object("n.txt", b"0123456789")
    url = f"{server.endpoint}/{BUCKET}/n.txt"
    digits = "9" * 5000
    v4 = (
        "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-date=20261121T120000Z"
        f"&x-oss-credential={AK}%2F20261121%2F{REGION}%2Foss%2Faliyun_v4_request"
        "&x-oss-signature=00&x-oss-expires="
    )
    anonymous = [
        f"{url}?{v4}%C2%B2",
        f"{url}?{v4}{digits}",
        f"{url}?OSSAccessKeyId={AK}&Expires=%C2%B2&Signature=x",
    ]
    for target in anonymous:
        reply = httpx.get(target)
        assert reply.status_code == 403 and xml_code(reply) == "AccessDenied", target[:120]
    signed = bucket.sign_url("GET", "n.txt", 60)
    reply = httpx.get(signed.rsplit("Signature=", 1)[0] + "Signature=%C3%A9t%C3%A9")
    assert reply.status_code == 403 and xml_code(reply) == "SignatureDoesNotMatch"
    reply = httpx.get(
        url, headers={"Date": "Mon, 01 Jan 99999 00:00:00 GMT", "Authorization": f"OSS {AK}:x"}
    )
    assert reply.status_code == 403 and xml_code(reply) == "AccessDenied"
    for max_keys in ("²", digits, "0", "1001", "-1"):
        assert error_of(lambda m=max_keys: bucket.list_objects(max_keys=m)) == (
            400,
            "InvalidArgument",
        )
    for header in ("bytes=²-", f"bytes={digits}-", "bytes=-²"):  # not a range: the whole object
        got = bucket.get_object("n.txt", headers={"Range": header})
        assert got.status == 200 and got.read() == b"0123456789"
    assert bucket.get_object("n.txt", byte_range=(2, 4)).read() == b"234"


def test_every_error_is_xml(server, bucket) -> None:
    head = signed_head("GET", BUCKET, "a\nb")
    reply = raw(server.port, head.replace("a%0Ab", "a%0Ab", 1).encode())
    assert b" 400 " in reply.split(b"\r\n")[0] and b"<Code>InvalidObjectName</Code>" in reply
    for key in ("a\x01b", "tab\tkey", "x\x7f"):
        assert error_of(lambda k=key: bucket.put_object(k, b"x")) == (400, "InvalidObjectName")
    assert not [p for p in (server.root / BUCKET).rglob("*") if "\x01" in p.name]
    reply = httpx.request("PATCH", f"{server.endpoint}/{BUCKET}/k")
    assert reply.status_code == 403 and xml_code(reply) == "AccessDenied"
    for bad in (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    ):
        reply = raw(server.port, bad)
        assert reply.startswith(b"HTTP/1.1 400") and b"<Code>InvalidRequest</Code>" in reply
    assert error_of(lambda: bucket.get_object("n.txt", params={"acl": ""})) == (
        501,
        "NotImplemented",
    )


def test_body_limits_are_entity_too_large(server, bucket) -> None:
    def chunks():
        for _ in range(5):
            yield b"\0" * (1 << 20)

    bucket.put_object("chunked.bin", b"x")  # the bucket works; then a chunked body too large
    assert error_of(lambda: bucket.put_object("chunked.bin", chunks())) == (400, "EntityTooLarge")
    assert bucket.get_object("chunked.bin").read() == b"x"
    keys = [("&" * 250 + "/") * 3 + str(i) for i in range(1000)]  # over 1 MiB of XML
    assert error_of(lambda: bucket.batch_delete_objects(keys)) == (400, "EntityTooLarge")
    head = signed_head("PUT", BUCKET, "", "Content-Length: 2000000\r\n").replace(
        f"/{BUCKET}/ ", f"/{BUCKET} "
    )
    reply = raw(server.port, head.encode() + b"<x/>" * 100)
    assert b"<Code>" in reply  # an XML error (the signature of this hand-made request aside)
    assert not list((server.root / ".server" / "tmp").iterdir())


def test_delete_multiple_is_all_or_nothing(bucket) -> None:
    for key in ("d/1", "d/2", "d/3"):
        bucket.put_object(key, b"x")
    assert error_of(lambda: bucket.batch_delete_objects(["d/1", "d/../x", "d/3"])) == (
        400, "InvalidObjectName",
    )  # fmt: skip
    assert [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="d/")] == ["d/1", "d/2", "d/3"]
    bucket.batch_delete_objects(["d/1", "d/2", "d/3"])


def test_names_the_store_cannot_hold_are_409_and_write_nothing(server, bucket, clip_h264_b):
    """A key under an object, or a key that is the folder of others: 409 InvalidObjectName for
    every write (saveas with a fixed name or a template, sync or as a task), nothing written."""
    bucket.put_object("v.mp4", clip_h264_b.path.read_bytes())
    bucket.put_object("a.txt", b"an object")
    bucket.put_object("f/1.jpg/x", b"makes f/1.jpg a folder")
    before = sorted(o.key for o in oss2.ObjectIteratorV2(bucket))
    shot = "video/snapshot,t_0,f_jpg"
    for name in ("a.txt/x.jpg", "a.txt/{index}.jpg", "a.txt/sub/{index}.jpg", "f/{index}.jpg"):
        spec = f"{shot}|sys/saveas,b_{b64(BUCKET)},o_{b64(name)}"
        assert error_of(lambda s=spec: bucket.process_object("v.mp4", s)) == (
            409, "InvalidObjectName",
        ), name  # fmt: skip
    task = bucket.async_process_object(
        "v.mp4", f"video/snapshots,f_jpg,num_2|sys/saveas,b_{b64(BUCKET)},o_{b64('a.txt/{index}')}"
    )
    state = finished_task(server.endpoint, BUCKET, task.task_id)
    assert state["State"] == "Failed" and state["Result"]["error_code"] == "InvalidObjectName"
    assert "'a.txt' is an object" in state["Result"]["error_message"]
    assert str(server.root) not in json.dumps(state)
    writes = [
        lambda: bucket.put_object("a.txt/y", b"y"),
        lambda: bucket.put_object("f/1.jpg", b"y"),
        lambda: bucket.append_object("a.txt/y", 0, b"y"),
        lambda: bucket.copy_object(BUCKET, "a.txt", "f/1.jpg"),
        lambda: bucket.init_multipart_upload("a.txt/big.mp4"),
    ]
    for write in writes:
        assert error_of(write) == (409, "InvalidObjectName")
    assert sorted(o.key for o in oss2.ObjectIteratorV2(bucket)) == before
    assert not list((server.root / BUCKET / "a.txt").parent.glob("a.txt?*"))
    assert not [p for p in server.root.rglob(f"*{TEMP_SUFFIX}")]
    # An object removed behind the service's back leaves its record; the name is free again.
    (server.root / BUCKET / "a.txt").unlink()
    bucket.put_object("a.txt/y", b"now a folder")
    assert bucket.get_object("a.txt/y").read() == b"now a folder"


def test_names_too_long_for_the_file_system(tmp_path) -> None:
    """Under a root with a long path a 1000-byte key no longer fits the 4096 bytes of a Linux
    path: the service's store refuses to write it (409), reads it as absent (404) and deletes
    it as absent; the library's store raises InvalidObjectName. Nothing is written. (The
    service itself cannot run there: SQLite opens no database under such a path.)"""
    from ossframe_native.errors import InvalidObjectName
    from ossframe_native.server.objects import ObjectStore
    from ossframe_native.server.xml import OssError

    root = tmp_path
    while len(str(root)) < 3200:
        root = root / ("d" * 200)
    key = "/".join(["k" * 249] * 4)
    store = ObjectStore(str(root), 1 << 20)
    store.open()
    try:
        store.create_bucket(BUCKET)
        with pytest.raises(OssError) as refused:
            store.check_storable(BUCKET, key)
        assert (refused.value.status, refused.value.code) == (409, "InvalidObjectName")
        assert "too long" in refused.value.message and str(tmp_path) not in refused.value.message
        with pytest.raises(OssError) as missing:
            store.stat(BUCKET, key)
        assert missing.value.code == "NoSuchKey"
        store.delete(BUCKET, key)
    finally:
        store.close()
    with pytest.raises(InvalidObjectName, match="too long"):
        ofn.LocalStore(root).put(BUCKET, key, b"x")
    assert not [p for p in (root / BUCKET).rglob("*")]


def test_listing_pages_match_a_reference(bucket) -> None:
    """Every listing, paged with any max-keys, V1 and V2, equals the reference listing."""
    rng = random.Random(7)
    names = {"".join(rng.choice("ab/.-") for _ in range(rng.randint(1, 5))) for _ in range(60)}
    keys = sorted(
        k for k in names
        if "//" not in k and k[0] != "/" and k[-1] != "/" and not {".", ".."} & set(k.split("/"))
    )  # fmt: skip
    stored = []
    for key in keys:  # a name that is also a folder of another cannot be stored: skipped
        try:
            bucket.put_object(f"L/{key}", b"")
            stored.append(f"L/{key}")
        except oss2.exceptions.ServerError:
            pass
    for prefix, delimiter in (("L/", "/"), ("L/a", "/"), ("L/", "."), ("L/", "")):
        reference = []
        for key in stored:
            if not key.startswith(prefix):
                continue
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            name = key[: cut + len(delimiter)] if cut >= 0 else key
            if name not in reference:
                reference.append(name)
        for max_keys in (1, 2, 7):
            for version in (1, 2):
                assert _paged(bucket, prefix, delimiter, max_keys, version) == reference, (
                    prefix, delimiter, max_keys, version,
                )  # fmt: skip
    bucket.batch_delete_objects(stored)


def _paged(bucket, prefix: str, delimiter: str, max_keys: int, version: int) -> list[str]:
    names: list[str] = []
    marker = ""
    while True:
        if version == 1:
            page = bucket.list_objects(prefix, delimiter, marker, max_keys)
            marker = page.next_marker
        else:
            page = bucket.list_objects_v2(prefix, delimiter, marker, max_keys=max_keys)
            marker = page.next_continuation_token
        names += sorted([o.key for o in page.object_list] + page.prefix_list)
        if not page.is_truncated:
            return names


def test_hashing_a_big_object_does_not_block_others(server, bucket) -> None:
    """An object written behind the service's back is hashed on first access, in a thread: a
    small GET sent meanwhile is answered before the big one."""
    big = server.root / BUCKET / "unhashed.bin"
    with open(big, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(200):
            f.write(block[:-8] + i.to_bytes(8, "little"))
    bucket.put_object("small.txt", b"small")
    finished: list[str] = []

    def get(key: str) -> None:
        bucket_ = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)
        bucket_.head_object(key)
        finished.append(key)

    slow = threading.Thread(target=get, args=("unhashed.bin",))
    slow.start()
    time.sleep(0.05)
    get("small.txt")
    slow.join()
    assert finished == ["small.txt", "unhashed.bin"]
    big.unlink()


def test_presigned_urls_bind_processing(bucket, clip_h264_b) -> None:
    bucket.put_object("p.mp4", clip_h264_b.path.read_bytes())
    spec = "video/snapshot,t_0,f_jpg"
    v4 = oss2.Bucket(
        oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider(AK, SK)),
        bucket.endpoint, BUCKET, region=REGION,
    )  # fmt: skip
    for signer in (bucket, v4):
        plain = signer.sign_url("GET", "p.mp4", 60)
        reply = httpx.get(f"{plain}&x-oss-process={urllib.parse.quote(spec)}")
        assert reply.status_code == 403 and xml_code(reply) == "SignatureDoesNotMatch"
        processed = signer.sign_url("GET", "p.mp4", 60, params={"x-oss-process": spec})
        reply = httpx.get(processed)
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"


def test_video_info_and_head_with_process(bucket, clip_h264_b) -> None:
    bucket.put_object("i.mp4", clip_h264_b.path.read_bytes())
    info = json.loads(bucket.get_object("i.mp4", process="video/info").read())
    probe = ofn.probe(str(clip_h264_b.path))
    assert info["Size"] == clip_h264_b.path.stat().st_size
    assert (info["VideoWidth"], info["VideoHeight"]) == (probe["width"], probe["height"])
    video = info["VideoStreams"][0]
    assert video["FrameCount"] == probe["frames"] == 90 and video["CodecName"] == "h264"
    assert video["Duration"] == pytest.approx(probe["duration_ms"] / 1000)
    assert video["KeyframeTimes"] == [t / 1000 for t in probe["keyframes_ms"]]
    for spec in ("video/snapshot,t_1000,f_png", "video/info"):
        got = bucket.get_object("i.mp4", process=spec)
        data = got.read()
        head = bucket.head_object("i.mp4", params={"x-oss-process": spec})
        for name in ("Content-Type", "Content-Length", "x-oss-hash-crc64ecma"):
            assert head.headers[name] == got.headers[name], name
        assert int(head.headers["Content-Length"]) == len(data)


# -- slow clients, full disks, overload, restarts ------------------------------------------------


def test_slow_clients_are_dropped_and_do_not_lock_others_out(tmp_path, child_env) -> None:
    srv = start_server(
        tmp_path,
        child_env,
        "--header-timeout",
        "2",
        "--idle-timeout",
        "2",
        "--max-connections",
        "150",
    )
    try:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
        bucket.create_bucket()
        bucket.put_object("ok.txt", b"served")
        slow = []
        for _ in range(300):  # twice the connection limit, each with an unfinished head
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        for _ in range(20):
            assert bucket.get_object("ok.txt").read() == b"served"
        body = socket.create_connection(("127.0.0.1", srv.port))
        body.sendall(signed_head("PUT", BUCKET, "trickle.bin", "Content-Length: 1000\r\n").encode())
        started = time.monotonic()
        body.settimeout(1)
        reply = b""
        while b"</Error>" not in reply and time.monotonic() - started < 15:
            body.sendall(b"x")  # one byte a second: below the minimum rate
            with contextlib.suppress(TimeoutError):
                reply += body.recv(4096)
        assert b"<Code>RequestTimeout</Code>" in reply and time.monotonic() - started < 8
        body.close()
        for s in slow:  # every slow head is answered and closed within the header timeout
            s.settimeout(10)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            assert data == b"" or b"<Code>RequestTimeout</Code>" in data
            s.close()
        assert bucket.get_object("ok.txt").read() == b"served"
    finally:
        assert srv.stop() == 0


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def test_full_disk_is_insufficient_storage_and_leaves_nothing(
    tmp_path, child_env, clip_h264_b
) -> None:
    root = tmp_path / "small"
    if not _tmpfs(root, "6m"):
        pytest.skip("mounting a tmpfs needs privileges this machine does not give")
    srv = None
    try:
        srv = start_server(root, child_env, "--workers", "1")
        bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
        bucket.create_bucket()
        bucket.put_object("fits.bin", os.urandom(1 << 20))
        for call in (
            lambda: bucket.put_object("big.bin", os.urandom(8 << 20)),
            lambda: bucket.append_object("app.bin", 0, os.urandom(8 << 20)),
        ):
            status, code = error_of(call)
            assert (status, code) == (507, "InsufficientStorage")
        init = bucket.init_multipart_upload("mp.bin")
        part = os.urandom(8 << 20)
        upload = init.upload_id
        assert error_of(lambda: bucket.upload_part("mp.bin", upload, 1, part)) == (
            507, "InsufficientStorage",
        )  # fmt: skip
        assert [o.key for o in oss2.ObjectIteratorV2(bucket)] == ["fits.bin"]
        assert not [p for p in root.rglob(f"*{TEMP_SUFFIX}")]
        assert bucket.get_object("fits.bin").read()  # still serving
        bucket.put_object("v.mp4", clip_h264_b.path.read_bytes())
        with contextlib.suppress(OSError), open(root / "filler", "wb") as filler:
            while True:  # the disk full to the last byte: a saved snapshot cannot fit
                filler.write(b"\0" * 65536)
        spec = f"video/snapshot,t_0,f_jpg|sys/saveas,b_{b64(BUCKET)},o_{b64('shot.jpg')}"
        assert error_of(lambda: bucket.process_object("v.mp4", spec)) == (
            507, "InsufficientStorage",
        )  # fmt: skip
        (root / "filler").unlink()
        assert sorted(o.key for o in oss2.ObjectIteratorV2(bucket)) == ["fits.bin", "v.mp4"]
        assert not [p for p in root.rglob(f"*{TEMP_SUFFIX}")]
    finally:
        if srv is not None:
            srv.stop()
        subprocess.run(["umount", str(root)], check=False)
    log = srv.stderr
    assert "InsufficientStorage" in log and "Traceback" in log and "No space left" in log
    assert "request " in log  # each logged with its request id


def test_start_sweeps_leftovers_only_when_no_writer_is_live(tmp_path, child_env) -> None:
    bucket_dir = tmp_path / BUCKET / "f"
    bucket_dir.mkdir(parents=True)
    leftovers = [
        bucket_dir / f".{'a' * 32}{TEMP_SUFFIX}",
        tmp_path / ".server" / "tmp" / f"x{TEMP_SUFFIX}",
    ]
    leftovers[1].parent.mkdir(parents=True)
    for path in leftovers:
        path.write_bytes(b"killed write")
    with root_lock(str(tmp_path), shared=True):  # a live writer: nothing is swept
        srv = start_server(tmp_path, child_env)
        srv.stop()
    assert all(p.exists() for p in leftovers)
    srv = start_server(tmp_path, child_env)
    try:
        assert not any(p.exists() for p in leftovers)
    finally:
        srv.stop()


@pytest.mark.slow
def test_overload_goodput(tmp_path, child_env, clip_h264_long_gop) -> None:
    """Under 8x more clients than processing threads, the server's CPU per answered processed
    GET stays within 1.25x of its cost at full but not over load (goodput >= 80 %)."""
    srv = start_server(tmp_path, child_env, "--workers", "1")
    try:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
        bucket.create_bucket()
        bucket.put_object_from_file("v.mp4", str(clip_h264_long_gop.path))
        spec = "video/snapshot,t_1000,f_jpg"
        threads = 2  # the server's processing threads on this machine's cores
        cost = {}
        for clients, per_client in ((threads, 6), (8 * threads, 2)):
            answered, refused = _hammer(srv, spec, clients, per_client)
            cost[clients] = answered, refused
        base_cpu, base_ok = cost[threads][0]
        over_cpu, over_ok = cost[8 * threads][0]
        assert cost[8 * threads][1] == 0  # admitted and queued, not bounced
        assert over_cpu / over_ok <= 1.25 * base_cpu / base_ok, cost
    finally:
        assert srv.stop() == 0


def _hammer(srv, spec: str, clients: int, per_client: int) -> tuple[tuple[float, int], int]:
    """``clients`` threads each getting ``per_client`` processed GETs; returns ((server CPU
    seconds, answered), refused)."""
    answered, refused = [0], [0]

    def run() -> None:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
        for _ in range(per_client):
            try:
                bucket.get_object("v.mp4", process=spec).read()
                answered[0] += 1
            except oss2.exceptions.ServerError as exc:
                assert exc.status == 503
                refused[0] += 1

    before = _cpu(srv.process.pid)
    workers = [threading.Thread(target=run) for _ in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (_cpu(srv.process.pid) - before, answered[0]), refused[0]


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
