"""Multipart uploads, copies and appends through ``oss2`` and ``alibabacloud-oss-v2`` against a
real ``ossframe serve``: the SDKs' resumable transfers run unchanged (CRC-64 checks on), and an
object they upload is processed like any other."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
from pathlib import Path

import alibabacloud_oss_v2 as oss
import oss2
import pytest
from media import ClipTruth, b64, decode_image, read_frame_number, reference_frames, shown_at
from server_support import (
    AK,
    SK,
    error_of,
    finished_task,
    padded_mp4,
    signed_part_head,
    start_server,
    v2_client,
    wait_for,
)

import ossframe_native as ofn
from ossframe_native.store import TEMP_SUFFIX

pytestmark = pytest.mark.needs("server")

BUCKET = "up-bucket"
PART = 5 << 20
SIZE = 31 << 20  # seven parts of 5 MiB, the last smaller


@pytest.fixture(scope="module")
def big_video(tmp_path_factory, clip_h264_b: ClipTruth) -> Path:
    """The 90-frame clip padded to 31 MiB with an MP4 ``free`` box."""
    return padded_mp4(clip_h264_b.path, tmp_path_factory.mktemp("big") / "big.mp4", SIZE)


@pytest.fixture(scope="module")
def server(tmp_path_factory, child_env):
    srv = start_server(tmp_path_factory.mktemp("transfer-root"), child_env, "--workers", "1")
    oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET).create_bucket()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return v2_client(server.endpoint)


@pytest.fixture(scope="module")
def bucket(server):
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)
    yield bucket
    bucket.session.session.close()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def no_temporaries(root: Path) -> bool:
    return not [p for p in root.rglob(f"*{TEMP_SUFFIX}")]


def test_resumable_upload_across_a_restart_then_download_process_and_task(
    tmp_path, child_env, big_video, clip_h264_b
) -> None:
    """oss2.resumable_upload interrupted after two parts, the server killed and restarted,
    the upload resumed; then resumable_download, a processed GET and an async task on it."""
    root = tmp_path / "root"
    root.mkdir()
    srv = start_server(root, child_env, "--workers", "1")
    bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
    bucket.create_bucket()
    record_dir = tmp_path / "records"
    store = oss2.ResumableStore(root=str(record_dir))

    def stop_after_two_parts(done: int, total: int | None) -> None:
        if done >= 2 * PART:
            raise KeyboardInterrupt("interrupted")

    with pytest.raises(KeyboardInterrupt):
        oss2.resumable_upload(
            bucket, "big.mp4", str(big_video), store=store, part_size=PART, num_threads=1,
            progress_callback=stop_after_two_parts,
        )  # fmt: skip
    (upload,) = list(oss2.MultipartUploadIterator(bucket))
    assert [p.part_number for p in oss2.PartIterator(bucket, "big.mp4", upload.upload_id)] == [1, 2]
    srv.stop(signal.SIGKILL)
    srv = start_server(root, child_env, "--workers", "1", port=srv.port)
    try:
        parts = list(oss2.PartIterator(bucket, "big.mp4", upload.upload_id))
        assert [(p.part_number, p.size) for p in parts] == [(1, PART), (2, PART)]
        assert not bucket.object_exists("big.mp4")  # never an object before completion
        uploaded: list[int] = []
        oss2.resumable_upload(
            bucket, "big.mp4", str(big_video), store=store, part_size=PART, num_threads=2,
            progress_callback=lambda done, total: uploaded.append(done),
        )  # fmt: skip
        assert uploaded[0] >= 2 * PART  # the two stored parts were not sent again
        head = bucket.head_object("big.mp4")
        assert head.content_length == SIZE and head.object_type == "Multipart"
        assert head.etag.endswith("-7")
        assert not list(oss2.MultipartUploadIterator(bucket))

        got = tmp_path / "got.mp4"
        bucket.get_object_to_file("big.mp4", str(got))  # CRC-64 checked by oss2
        assert md5(got) == md5(big_video)
        down = tmp_path / "down.mp4"
        oss2.resumable_download(
            bucket, "big.mp4", str(down), multiget_threshold=1, part_size=PART, num_threads=3,
            store=oss2.ResumableDownloadStore(root=str(record_dir)),
        )  # fmt: skip
        assert md5(down) == md5(big_video)

        spec = "video/snapshot,t_1400,f_png"
        served = bucket.get_object("big.mp4", process=spec).read()
        assert served == ofn.process(str(clip_h264_b.path), spec).images[0].data
        refs = reference_frames(clip_h264_b.path)
        assert read_frame_number(decode_image(served)) == refs[shown_at(refs, 1400)].number

        async_spec = (
            f"video/snapshots,f_png,inter_1000|sys/saveas,b_{b64(BUCKET)},o_{b64('f/{index}.png')}"
        )
        task = bucket.async_process_object("big.mp4", async_spec)

        def state() -> str | None:
            with sqlite3.connect(root / ".server" / "tasks.db") as db:
                row = db.execute("SELECT state FROM tasks WHERE id = ?", (task.task_id,))
                found = row.fetchone()
            return found[0] if found and found[0] in ("Succeeded", "Failed") else None

        assert wait_for(state, 120, "the task") == "Succeeded"
        expected = ofn.process(str(clip_h264_b.path), "video/snapshots,f_png,inter_1000").images
        for i, image in enumerate(expected, 1):
            assert bucket.get_object(f"f/{i}.png").read() == image.data
        assert no_temporaries(root)
    finally:
        bucket.session.session.close()  # its pooled connections, not left to the collector
        assert srv.stop() == 0


def test_v2_uploader_downloader_and_copier(client, big_video, tmp_path) -> None:
    uploader = client.uploader(part_size=PART, parallel_num=3)
    result = uploader.upload_file(
        oss.PutObjectRequest(bucket=BUCKET, key="v2/big.mp4"), str(big_video)
    )
    assert result.etag.strip('"').endswith("-7")
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="v2/big.mp4"))
    assert head.content_length == SIZE and result.hash_crc64 == head.hash_crc64

    down = tmp_path / "v2.mp4"
    client.downloader(part_size=PART, parallel_num=3).download_file(
        oss.GetObjectRequest(bucket=BUCKET, key="v2/big.mp4"), str(down)
    )  # CRC-64 checked by the SDK
    assert md5(down) == md5(big_video)

    # Above the threshold the copier uses UploadPartCopy, then compares the CRC-64.
    copier = client.copier(part_size=PART, multipart_copy_threshold=PART)
    copied = copier.copy(
        oss.CopyObjectRequest(
            bucket=BUCKET, key="v2/copy.mp4", source_bucket=BUCKET, source_key="v2/big.mp4"
        )
    )
    assert copied.hash_crc64 == head.hash_crc64
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="v2/copy.mp4"))
    assert hashlib.md5(got.body.read()).hexdigest() == md5(big_video)
    small = client.copy_object(
        oss.CopyObjectRequest(
            bucket=BUCKET, key="v2/copy2.mp4", source_bucket=BUCKET, source_key="v2/copy.mp4"
        )
    )
    assert small.hash_crc64 == head.hash_crc64


def test_multipart_rules(bucket) -> None:
    key = "rules/obj.bin"
    init = bucket.init_multipart_upload(key, headers={"Content-Type": "x/y", "x-oss-meta-a": "1"})
    first, second = os.urandom(200_000), os.urandom(1000)
    p1 = bucket.upload_part(key, init.upload_id, 1, b"wrong bytes " * 20_000)
    p1 = bucket.upload_part(key, init.upload_id, 1, first)  # a part retried replaces it whole
    p2 = bucket.upload_part(key, init.upload_id, 2, second)
    listed = bucket.list_parts(key, init.upload_id)
    assert [(p.part_number, p.size) for p in listed.parts] == [(1, 200_000), (2, 1000)]
    assert listed.parts[0].etag == hashlib.md5(first).hexdigest().upper()

    def complete(parts):
        return bucket.complete_multipart_upload(key, init.upload_id, parts)

    assert error_of(lambda: complete([oss2.models.PartInfo(1, "0" * 32), p2_info(p2)])) == (
        400, "InvalidPart",
    )  # fmt: skip
    repeated = [oss2.models.PartInfo(1, p1.etag), oss2.models.PartInfo(1, p1.etag)]
    assert error_of(lambda: complete(repeated)) == (400, "InvalidPartOrder")  # oss2 sorts parts
    small = bucket.init_multipart_upload("rules/small.bin")
    a = bucket.upload_part("rules/small.bin", small.upload_id, 1, b"tiny")
    b = bucket.upload_part("rules/small.bin", small.upload_id, 2, b"tiny")
    listed_small = [oss2.models.PartInfo(1, a.etag), oss2.models.PartInfo(2, b.etag)]
    assert error_of(
        lambda: bucket.complete_multipart_upload("rules/small.bin", small.upload_id, listed_small)
    ) == (400, "EntityTooSmall")
    assert not bucket.object_exists(key)  # failed completions leave no object

    done = complete([oss2.models.PartInfo(1, p1.etag), p2_info(p2)])
    expected_etag = hashlib.md5(hashlib.md5(first).digest() + hashlib.md5(second).digest())
    assert done.etag == f"{expected_etag.hexdigest().upper()}-2"
    got = bucket.get_object(key)
    assert got.read() == first + second
    assert got.headers["Content-Type"] == "x/y" and got.headers["x-oss-meta-a"] == "1"
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part(key, init.upload_id, 3, b"late")

    bucket.abort_multipart_upload("rules/small.bin", small.upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("rules/small.bin", small.upload_id)
    assert not bucket.object_exists("rules/small.bin")
    pending = bucket.init_multipart_upload("rules/pending.bin")
    bucket.upload_part("rules/pending.bin", pending.upload_id, 1, b"never completed")
    keys = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="rules/")]
    assert keys == ["rules/obj.bin"]
    uploads = list(oss2.MultipartUploadIterator(bucket, prefix="rules/"))
    assert [(u.key, u.upload_id) for u in uploads] == [("rules/pending.bin", pending.upload_id)]
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("rules/other.bin", pending.upload_id, 1, b"another key")
    bucket.abort_multipart_upload("rules/pending.bin", pending.upload_id)


def test_parts_of_one_size_are_assembled_in_place(server, bucket) -> None:
    """Parts of the SDKs' common size are written where they belong in the object: completing
    renames that file (same inode, no copy), also after a retried part, a part cut off mid-body
    and parts sent out of order; a list that skips a part is assembled by copying."""
    size, key = 150_000, "inplace/obj.bin"
    parts = [os.urandom(size) for _ in range(4)] + [os.urandom(1234)]
    init = bucket.init_multipart_upload(key)
    infos = {n: bucket.upload_part(key, init.upload_id, n, parts[n - 1]) for n in (3, 1)}
    with socket.create_connection(("127.0.0.1", server.port)) as s:  # part 4 cut off
        s.sendall(signed_part_head(BUCKET, key, init.upload_id, 4, size).encode() + b"x" * 1000)
    for number in (2, 4, 5):
        infos[number] = bucket.upload_part(key, init.upload_id, number, parts[number - 1])
    parts[1] = os.urandom(size)  # part 2 sent again with other bytes: stored apart
    infos[2] = bucket.upload_part(key, init.upload_id, 2, parts[1])
    folder = server.root / ".server" / "uploads" / init.upload_id
    data_inode = (folder / "data").stat().st_ino
    listed = [oss2.models.PartInfo(n, infos[n].etag) for n in range(1, 6)]
    bucket.complete_multipart_upload(key, init.upload_id, listed)
    assert bucket.get_object(key).read() == b"".join(parts)
    assert (server.root / BUCKET / key).stat().st_ino == data_inode
    assert not folder.exists() and no_temporaries(server.root)

    skipping = bucket.init_multipart_upload(key)
    infos = {n: bucket.upload_part(key, skipping.upload_id, n, parts[n - 1]) for n in (1, 2, 3)}
    listed = [oss2.models.PartInfo(n, infos[n].etag) for n in (1, 3)]
    bucket.complete_multipart_upload(key, skipping.upload_id, listed)
    assert bucket.get_object(key).read() == parts[0] + parts[2]


def p2_info(result) -> object:
    return oss2.models.PartInfo(2, result.etag)


def test_copy_object_and_metadata_directive(bucket) -> None:
    bucket.put_object(
        "c/src.txt", b"source", headers={"Content-Type": "text/x-a", "x-oss-meta-k": "v"}
    )
    bucket.copy_object(BUCKET, "c/src.txt", "c/same.txt")
    got = bucket.get_object("c/same.txt")
    assert (got.read(), got.headers["Content-Type"], got.headers["x-oss-meta-k"]) == (
        b"source", "text/x-a", "v",
    )  # fmt: skip
    src = bucket.head_object("c/src.txt")
    assert got.headers["ETag"].strip('"') == src.etag
    bucket.copy_object(
        BUCKET, "c/src.txt", "c/new.txt",
        headers={"x-oss-metadata-directive": "REPLACE", "Content-Type": "text/x-b",
                 "x-oss-meta-z": "9"},
    )  # fmt: skip
    head = bucket.head_object("c/new.txt")
    assert head.content_type == "text/x-b" and "x-oss-meta-k" not in head.headers
    assert head.headers["x-oss-meta-z"] == "9"
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(BUCKET, "c/missing.txt", "c/x.txt")
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.copy_object(
            BUCKET, "c/src.txt", "c/x.txt", headers={"x-oss-copy-source-if-match": '"0000"'}
        )
    assert not bucket.object_exists("c/x.txt")


def test_append_object(client, bucket, clip_h264_b) -> None:
    video = clip_h264_b.path.read_bytes()
    pieces = [video[:1000], video[1000:50_000], video[50_000:]]
    position, crc = 0, 0
    for piece in pieces:
        result = bucket.append_object("a/clip.mp4", position, piece, init_crc=crc)  # CRC checked
        position, crc = result.next_position, result.crc
    assert position == len(video)
    with pytest.raises(oss2.exceptions.PositionNotEqualToLength) as info:
        bucket.append_object("a/clip.mp4", 5, b"x")
    assert info.value.next_position == len(video)
    got = bucket.get_object("a/clip.mp4")
    assert got.read() == video and got.headers["x-oss-object-type"] == "Appendable"
    spec = "video/snapshot,t_2000,f_png"
    expected = ofn.process(str(clip_h264_b.path), spec).images[0].data
    assert bucket.get_object("a/clip.mp4", process=spec).read() == expected

    bucket.put_object("a/normal.txt", b"normal")
    with pytest.raises(oss2.exceptions.ObjectNotAppendable):
        bucket.append_object("a/normal.txt", 6, b"more")
    first = client.append_object(
        oss.AppendObjectRequest(bucket=BUCKET, key="a/v2.txt", position=0, body=b"one,")
    )
    second = client.append_object(
        oss.AppendObjectRequest(
            bucket=BUCKET, key="a/v2.txt", position=first.next_position, body=b"two"
        )
    )
    assert second.next_position == 7
    assert bucket.get_object("a/v2.txt").read() == b"one,two"


def test_sigkill_mid_part_keeps_stored_parts(tmp_path, child_env) -> None:
    srv = start_server(tmp_path, child_env)
    bucket = oss2.Bucket(oss2.Auth(AK, SK), srv.endpoint, BUCKET)
    bucket.create_bucket()
    init = bucket.init_multipart_upload("k.bin")
    first = os.urandom(300_000)
    bucket.upload_part("k.bin", init.upload_id, 1, first)
    head = signed_part_head(BUCKET, "k.bin", init.upload_id, 2, 1_000_000)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(head.encode() + b"z" * 400_000)
        wait_for(lambda: list((tmp_path / ".server" / "tmp").iterdir()), 10, "the part's temp file")
        srv.stop(signal.SIGKILL)
    assert not no_temporaries(tmp_path)  # the killed part's bytes are left behind...
    srv = start_server(tmp_path, child_env, port=srv.port)
    try:
        assert no_temporaries(tmp_path)  # ...and swept at start
        parts = list(oss2.PartIterator(bucket, "k.bin", init.upload_id))
        assert [(p.part_number, p.size) for p in parts] == [(1, 300_000)]
        second = bucket.upload_part("k.bin", init.upload_id, 2, b"end")
        bucket.complete_multipart_upload(
            "k.bin", init.upload_id, [oss2.models.PartInfo(1, parts[0].etag), p2_info(second)]
        )
        assert bucket.get_object("k.bin").read() == first + b"end"
    finally:
        bucket.session.session.close()
        assert srv.stop() == 0


def test_task_state_and_notification_show_no_server_path(server, client, bucket) -> None:
    bucket.put_object("bad.mp4", b"not a video")
    saveas = f"sys/saveas,b_{b64(BUCKET)},o_{b64('o/{index}.jpg')}"
    spec = f"video/snapshots,f_jpg|{saveas}/notify,topic_{b64('t')}"
    task = bucket.async_process_object("bad.mp4", spec)
    state = finished_task(server.endpoint, BUCKET, task.task_id)
    assert state["State"] == "Failed"
    text = json.dumps(state)
    notified = (server.root / ".notify" / "t.jsonl").read_text()
    for shown in (text, notified):
        assert str(server.root) not in shown and f"oss://{BUCKET}/bad.mp4" in shown
