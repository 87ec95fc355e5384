"""``ossframe serve`` driven by the official SDKs: oss2 (V1 and V4) and alibabacloud-oss-v2.

One real server process per module, on a free port of 127.0.0.1; outputs are identified by the
frame numbers the generated clips show and compared byte for byte with ``ofn.process``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import alibabacloud_oss_v2 as oss
import httpx
import oss2
import pytest
from media import ClipTruth, b64, decode_image, read_frame_number, reference_frames, shown_at
from server_support import AK, REGION, SK, read_reply, start_server, task_state, wait_for

import ossframe_native as ofn
from ossframe_native.store import TEMP_SUFFIX

pytestmark = pytest.mark.needs("server")

BUCKET = "media-bucket"
OUT = "out-bucket"
VIDEO = "videos/clip one.mp4"


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    root = tmp_path_factory.mktemp("service-root")
    srv = start_server(root, child_env, "--workers", "1", "--max-object-size", str(8 << 20))
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def v1(server):
    return oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)


@pytest.fixture(scope="module")
def v4(server):
    auth = oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider(AK, SK))
    return oss2.Bucket(auth, server.endpoint, BUCKET, region=REGION)


@pytest.fixture(scope="module")
def client(server):
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(AK, SK)
    cfg.region = REGION
    cfg.endpoint = server.endpoint
    return oss.Client(cfg)


@pytest.fixture(scope="module")
def video(server, v1, clip_h264_b: ClipTruth) -> ClipTruth:
    """The 90-frame clip (192x108, 30 fps), uploaded through oss2 as ``VIDEO``."""
    v1.create_bucket()
    oss2.Bucket(v1.auth, server.endpoint, OUT).create_bucket()
    v1.put_object_from_file(VIDEO, str(clip_h264_b.path))
    return clip_h264_b


def frame_number(data: bytes) -> int:
    return read_frame_number(decode_image(data))


# -- buckets and objects ---------------------------------------------------------------------------


def test_buckets(server, v1, video) -> None:
    names = [b.name for b in oss2.Service(v1.auth, server.endpoint).list_buckets().buckets]
    assert names == [BUCKET, OUT]
    assert v1.get_bucket_info().name == BUCKET
    spare = oss2.Bucket(v1.auth, server.endpoint, "spare-bucket")
    spare.create_bucket()
    spare.put_object("x", b"1")
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        spare.delete_bucket()
    spare.delete_object("x")
    spare.delete_bucket()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        spare.get_object("x")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        spare.delete_object("x")


@pytest.mark.parametrize("sdk", ["v1", "v4"])
def test_put_get_head_delete_with_oss2(sdk, request, video) -> None:
    bucket = request.getfixturevalue(sdk)
    key = f"{sdk}/a b+c/ü.txt"
    data = os.urandom(100_000)
    put = bucket.put_object(key, data, headers={"x-oss-meta-author": "alice"})
    assert put.etag == hashlib.md5(data).hexdigest().upper()
    got = bucket.get_object(key)
    assert got.read() == data
    assert got.headers["x-oss-meta-author"] == "alice"
    assert got.headers["Content-Type"] == "text/plain"
    assert got.headers["x-oss-object-type"] == "Normal"
    assert int(got.headers["x-oss-hash-crc64ecma"]) == put.crc
    assert bucket.get_object(key, byte_range=(10, 19)).read() == data[10:20]
    assert bucket.head_object(key).content_length == len(data)
    assert bucket.object_exists(key)
    bucket.delete_object(key)
    bucket.delete_object(key)  # 204 again
    assert not bucket.object_exists(key)
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object(key)
    with pytest.raises(oss2.exceptions.NotFound) as info:
        bucket.head_object(key)
    assert info.value.code == "NoSuchKey"  # read from the x-oss-err header


def test_content_md5_is_checked(v1, video, server) -> None:
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(oss2.exceptions.InvalidDigest):
        v1.put_object("md5.bin", b"data", headers={"Content-MD5": bad})
    assert not v1.object_exists("md5.bin")
    assert not list((server.root / ".server" / "tmp").iterdir())


def test_listings(v1, v4, client, video) -> None:
    for i in range(5):
        v1.put_object(f"list/{i}.txt", b"x")
    v1.put_object("list/sub/deep.txt", b"y")
    keys = [o.key for o in oss2.ObjectIteratorV2(v4, prefix="list/", max_keys=2)]
    assert keys == [*(f"list/{i}.txt" for i in range(5)), "list/sub/deep.txt"]
    keys = [o.key for o in oss2.ObjectIterator(v1, prefix="list/", max_keys=2)]
    assert keys == [*(f"list/{i}.txt" for i in range(5)), "list/sub/deep.txt"]
    page = v1.list_objects_v2(prefix="list/", delimiter="/")
    assert page.prefix_list == ["list/sub/"] and len(page.object_list) == 5
    top = v1.list_objects(delimiter="/")
    assert "list/" in top.prefix_list and "videos/" in top.prefix_list
    result = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="list/sub/"))
    assert [o.key for o in result.contents] == ["list/sub/deep.txt"]
    v1.batch_delete_objects([f"list/{i}.txt" for i in range(5)] + ["list/sub/deep.txt"])
    assert not list(oss2.ObjectIteratorV2(v1, prefix="list/"))


def test_v2_sdk_objects(client, video) -> None:
    data = b"v2 bytes" * 1000
    put = client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="v2/x.bin", body=data))
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/x.bin"))
    assert got.body.read() == data and got.hash_crc64 == put.hash_crc64
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="v2/x.bin"))
    assert head.content_length == len(data)
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key="v2/x.bin"))
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="v2/x.bin"))
    assert "NoSuchKey" in str(info.value)


def test_metadata_survives_a_restart(tmp_path, child_env) -> None:
    srv = start_server(tmp_path, child_env)
    try:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, "keep-bucket")
        bucket.create_bucket()
        bucket.put_object("k.dat", b"abc", headers={"Content-Type": "x/y", "x-oss-meta-a": "1"})
    finally:
        srv.stop()
    srv = start_server(tmp_path, child_env)
    try:
        got = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, "keep-bucket").get_object("k.dat")
        assert (got.read(), got.headers["Content-Type"], got.headers["x-oss-meta-a"]) == (
            b"abc",
            "x/y",
            "1",
        )
    finally:
        srv.stop()


# -- authentication --------------------------------------------------------------------------------


def test_presigned_urls_with_a_plain_client(v1, v4, client, video) -> None:
    v1.put_object("signed.txt", b"presigned")
    for url in (v1.sign_url("GET", "signed.txt", 60), v4.sign_url("GET", "signed.txt", 60)):
        assert httpx.get(url).content == b"presigned"
        tampered = url.replace("signed.txt", "other.txt")
        assert httpx.get(tampered).status_code == 403
    v2_url = client.presign(oss.GetObjectRequest(bucket=BUCKET, key="signed.txt")).url
    assert httpx.get(v2_url).content == b"presigned"
    short_v1, short_v4 = v1.sign_url("GET", "signed.txt", 1), v4.sign_url("GET", "signed.txt", 1)
    time.sleep(2.1)
    for expired in (short_v1, short_v4):
        reply = httpx.get(expired)
        assert reply.status_code == 403 and b"<Code>AccessDenied</Code>" in reply.content


def test_anonymous_bad_signature_and_skew(server, v1, video) -> None:
    reply = httpx.get(f"{server.endpoint}/{BUCKET}/{VIDEO}")
    assert reply.status_code == 403 and b"<Code>AccessDenied</Code>" in reply.content
    assert reply.headers["date"] and reply.headers["x-oss-request-id"]
    bad = oss2.Bucket(oss2.Auth(AK, "wrong"), server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        bad.get_object(VIDEO)
    stale = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 20 * 60))
    with pytest.raises(oss2.exceptions.ServerError) as info:
        v1.get_object(VIDEO, headers={"x-oss-date": stale})
    assert (info.value.status, info.value.code) == (403, "RequestTimeTooSkewed")


def test_a_thousand_bad_signatures_write_nothing(server, video) -> None:
    before = sorted(p for p in server.root.rglob("*") if ".server" not in p.parts)
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    with httpx.Client() as http:
        for i in range(1000):
            reply = http.put(
                f"{server.endpoint}/{BUCKET}/evil{i}.bin",
                content=b"x" * 100,
                headers={"Date": date, "Authorization": f"OSS {AK}:bm90IGl0"},
            )
            assert reply.status_code == 403
    after = sorted(p for p in server.root.rglob("*") if ".server" not in p.parts)
    assert after == before
    assert not list((server.root / ".server" / "tmp").iterdir())


# -- processing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "fmt"), [(1000, "png"), (2345, "jpg")])
def test_processed_get_is_the_engines_output(v1, v4, client, video, t, fmt) -> None:
    spec = f"video/snapshot,t_{t},f_{fmt}"
    expected = ofn.process(str(video.path), spec).images[0].data
    got = v1.get_object(VIDEO, process=spec)
    data = got.read()
    assert data == expected
    assert got.headers["Content-Type"] == ("image/png" if fmt == "png" else "image/jpeg")
    assert v4.get_object(VIDEO, process=spec).read() == expected
    v2 = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=VIDEO, process=spec))
    assert v2.body.read() == expected
    if fmt == "png":  # lossless: the frame number reads back exactly
        refs = reference_frames(video.path)
        assert frame_number(data) == refs[shown_at(refs, t)].number


def test_processed_get_to_file_checks_crc(v1, video, tmp_path) -> None:
    spec = "video/snapshot,t_500,f_png"
    v1.get_object_to_file(VIDEO, str(tmp_path / "o.png"), process=spec)  # verifies the CRC
    assert (tmp_path / "o.png").read_bytes() == ofn.process(str(video.path), spec).images[0].data


def test_processing_errors(v1, video) -> None:
    with pytest.raises(oss2.exceptions.InvalidArgument) as info:
        v1.get_object(VIDEO, process="video/snapshots,f_jpg,m_key")
    assert "asynchronous" in info.value.message
    with pytest.raises(oss2.exceptions.InvalidArgument):
        v1.get_object(VIDEO, process="video/snapshot,t_0,f_gif")
    v1.put_object("not-a-video.mp4", b"this is text")
    with pytest.raises(oss2.exceptions.InvalidArgument) as info:
        v1.get_object("not-a-video.mp4", process="video/snapshot,t_0,f_jpg")
    assert "MediaError" in info.value.message
    with pytest.raises(oss2.exceptions.NoSuchKey):
        v1.get_object("missing.mp4", process="video/snapshot,t_0,f_jpg")


def test_process_object_saves(v1, video) -> None:
    spec = f"video/snapshot,t_1500,f_png|sys/saveas,b_{b64(OUT)},o_{b64('sync/one.png')}"
    result = v1.process_object(VIDEO, spec)
    assert (result.bucket, result.object, result.process_status) == (OUT, "sync/one.png", "OK")
    out = oss2.Bucket(v1.auth, v1.endpoint, OUT).get_object("sync/one.png").read()
    assert out == ofn.process(str(video.path), "video/snapshot,t_1500,f_png").images[0].data
    assert result.fileSize == len(out)


def test_documentation_async_example(server, video) -> None:
    # The OSS documentation's Python example; only endpoint, credentials and bucket changed.
    auth = oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider(AK, SK))
    bucket = oss2.Bucket(auth, server.endpoint, BUCKET, region="cn-hangzhou")
    source_key = VIDEO
    target_bucket = OUT
    target_key = "doc/{index}.{autoext}"
    topic = "test-topic"
    style = "video/snapshots,f_png,inter_1000"
    process = "{0}|sys/saveas,b_{1},o_{2}/notify,topic_{3}".format(  # noqa: UP030
        style,
        oss2.compat.to_string(
            base64.urlsafe_b64encode(oss2.compat.to_bytes(target_bucket))
        ).replace("=", ""),
        oss2.compat.to_string(base64.urlsafe_b64encode(oss2.compat.to_bytes(target_key))).replace(
            "=", ""
        ),
        oss2.compat.to_string(base64.urlsafe_b64encode(oss2.compat.to_bytes(topic))).replace(
            "=", ""
        ),
    )
    result = bucket.async_process_object(source_key, process)
    assert result.status == 200 and result.task_id.startswith("MediaConvert-")

    notify_file = server.root / ".notify" / "test-topic.jsonl"

    def message():
        for line in notify_file.read_text().splitlines() if notify_file.exists() else []:
            if json.loads(line)["id"] == result.event_id:
                return json.loads(line)
        return None

    msg = wait_for(message, what="the notify message")
    content = json.loads(msg["content"])
    assert (content["TaskId"], content["RequestId"]) == (result.task_id, result.async_request_id)
    assert content["Status"] == "Succeeded" and content["Code"] == ""
    assert content["Sources"] == [{"URI": f"oss://{BUCKET}/{VIDEO}"}]
    refs = reference_frames(video.path)
    expected = [shown_at(refs, t) for t in range(0, 3000, 1000)]
    uris = [t["URI"] for t in content["Targets"]]
    assert uris == [f"oss://{OUT}/doc/{i}.png" for i in range(1, len(expected) + 1)]
    out = oss2.Bucket(auth, server.endpoint, OUT, region="cn-hangzhou")
    engine = ofn.process(str(video.path), style).images
    for i, (n, image) in enumerate(zip(expected, engine, strict=True), 1):
        data = out.get_object(f"doc/{i}.png").read()
        assert frame_number(data) == refs[n].number and data == image.data

    # The task over HTTP (a signed generic request) and on the command line.
    state = task_state(server.endpoint, BUCKET, result.task_id)
    assert state["State"] == "Succeeded" and state["TaskId"] == result.task_id
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "ossframe_native.cli",
            "tasks",
            "--root",
            str(server.root),
            result.task_id,
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert cli.returncode == 0 and json.loads(cli.stdout)["State"] == "Succeeded"
    # The task database, the notify files and the task records are not buckets.
    assert (server.root / ".notify").is_dir() and (server.root / ".server" / "tasks.db").exists()
    service = oss2.Service(auth, server.endpoint, region="cn-hangzhou")
    names = [b.name for b in service.list_buckets().buckets]
    assert names == [BUCKET, OUT]


def _env() -> dict[str, str]:
    import ossframe_native

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(ossframe_native.__file__).resolve().parents[1])
    return env


def test_async_errors(v1, video) -> None:
    with pytest.raises(oss2.exceptions.InvalidArgument):
        v1.async_process_object(VIDEO, "video/snapshots,f_jpg,m_key")  # no saveas
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        v1.async_process_object(
            VIDEO, f"video/snapshots,f_jpg|sys/saveas,b_{b64('nobucket')},o_{b64('x')}"
        )
    with pytest.raises(oss2.exceptions.NoSuchKey):
        v1.async_process_object(
            "nope.mp4", f"video/snapshots,f_jpg|sys/saveas,b_{b64(OUT)},o_{b64('x')}"
        )


# -- limits and bad input --------------------------------------------------------------------------


def test_object_size_limit(v1, video, server) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as info:
        v1.put_object("big.bin", b"\0" * ((8 << 20) + 1))
    assert (info.value.status, info.value.code) == (400, "EntityTooLarge")
    assert not v1.object_exists("big.bin")
    assert not list((server.root / ".server" / "tmp").iterdir())


@pytest.mark.parametrize("key", ["../escape.txt", "a/../../escape.txt", "a//b", "a\\b", "./x"])
def test_bad_keys_write_nothing(server, key, video) -> None:
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    auth = oss2.Auth(AK, SK)
    # Sign exactly what is sent: requests would normalise '..' away.
    req = oss2.http.Request("PUT", "http://x/", headers={"Date": date}, data=b"x")
    req.headers["Content-Type"] = ""
    auth._sign_request(req, BUCKET, key)
    raw = oss2.compat.urlquote(key, safe="")
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(
            f"PUT /{BUCKET}/{raw} HTTP/1.1\r\nHost: x\r\nDate: {date}\r\nAuthorization: "
            f"{req.headers['authorization']}\r\nContent-Length: 1\r\n\r\nx".encode()
        )
        reply = read_reply(s)
    assert b" 400 " in reply.split(b"\r\n")[0] and b"InvalidObjectName" in reply
    assert not (server.root.parent / "escape.txt").exists()
    assert not (server.root / "escape.txt").exists()


def test_saveas_escape_writes_nothing_outside(v1, video, server) -> None:
    for name in ("../../outside.png", "/abs.png"):
        spec = f"video/snapshot,t_0,f_png|sys/saveas,b_{b64(OUT)},o_{b64(name)}"
        with pytest.raises(oss2.exceptions.InvalidArgument):
            v1.process_object(VIDEO, spec)
    assert not (server.root.parent / "outside.png").exists()
    assert not (server.root / "outside.png").exists()


def test_cut_off_upload_leaves_nothing(v1, server, video) -> None:
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    req = oss2.http.Request("PUT", "http://x/", headers={"Date": date}, data=b"")
    req.headers["Content-Type"] = ""
    oss2.Auth(AK, SK)._sign_request(req, BUCKET, "cut.bin")
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(
            f"PUT /{BUCKET}/cut.bin HTTP/1.1\r\nHost: x\r\nDate: {date}\r\nAuthorization: "
            f"{req.headers['authorization']}\r\nContent-Length: 1000000\r\n\r\n".encode()
        )
        s.sendall(b"y" * 300_000)
        time.sleep(0.3)
    wait_for(lambda: not list((server.root / ".server" / "tmp").iterdir()), 10, "temp cleanup")
    assert not v1.object_exists("cut.bin")
    assert not [p for p in server.root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_refuses_to_start_without_credentials(tmp_path, child_env) -> None:
    env = {k: v for k, v in child_env.items() if not k.startswith("OSS_ACCESS_KEY")}
    run = subprocess.run(
        [sys.executable, "-m", "ossframe_native.cli", "serve", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "credentials" in run.stderr


def test_readme_service_example(server, tmp_path, monkeypatch) -> None:
    """The README's oss2 example runs as written against the server: only the endpoint and the
    credentials are replaced."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    (example,) = [
        b for b in re.findall(r"^```python\n(.*?)^```$", readme, re.M | re.S) if "oss2" in b
    ]
    example = example.replace("http://127.0.0.1:9000", server.endpoint)
    example = example.replace('"my-key"', repr(AK)).replace('"my-secret"', repr(SK))
    sample = Path(__file__).resolve().parent.parent / "examples" / "sample.mp4"
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "sample.mp4").write_bytes(sample.read_bytes())
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert scope["jpg"] == ofn.process(sample, "video/snapshot,t_3500,f_jpg,w_320").images[0].data
    bucket = scope["bucket"]
    wait_for(lambda: bucket.object_exists("frames/1.jpg"), 60, "the task's first output")
    expected = ofn.process(sample, "video/snapshots,f_jpg,inter_1000").images
    wait_for(lambda: bucket.object_exists(f"frames/{len(expected)}.jpg"), 60, "the last output")
    for i, image in enumerate(expected, 1):
        assert bucket.get_object(f"frames/{i}.jpg").read() == image.data


def test_a_write_in_progress_is_never_an_object(server, v1, video) -> None:
    """A store's temporary file (a write not yet renamed, or a killed writer's leftover) is not
    listed, and its name is reserved: no request reads, writes or deletes it."""
    temp = server.root / BUCKET / "partial" / f".{'0' * 32}{TEMP_SUFFIX}"
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(b"half an image")
    key = f"partial/{temp.name}"
    try:
        assert key not in [o.key for o in oss2.ObjectIteratorV2(v1)]
        for call in (
            lambda: v1.get_object(key),
            lambda: v1.put_object(key, b"overwrite"),
            lambda: v1.delete_object(key),
            lambda: v1.put_object(f"sub/x{TEMP_SUFFIX}/y", b"a folder name"),
        ):
            with pytest.raises(oss2.exceptions.InvalidObjectName):
                call()
        assert temp.read_bytes() == b"half an image"
        assert not (server.root / BUCKET / "sub").exists()
    finally:
        temp.unlink()
        temp.parent.rmdir()
