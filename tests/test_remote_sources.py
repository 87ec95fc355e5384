"""Sources anywhere (docs/BEHAVIOUR.md, "Sources"): local paths opened as exactly that file, and
``s3://`` (moto's S3 in server mode), ``oss://`` (a real ``ossframe serve``) and ``http(s)://``
(a threaded Range server; presigned URLs) read by ranged requests that the servers count.

Every capture is checked for the frame that came out (the number drawn in the picture, and the
pixels against a local decode of the same file), and every remote read for what the server sent:
requests and body bytes, counted on the server's side, equal to ``DecodeStats`` and bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import boto3
import numpy as np
import pytest
from media import (
    ClipTruth,
    decode_image,
    make_clip,
    read_frame_number,
    reference_frames,
    repeat_clip,
    saveas,
    shown_at,
)
from remote_support import MotoServer, RangeServer

import ossframe_native as ofn
from ossframe_native import sources
from ossframe_native.batch import process_many
from ossframe_native.cli import main as cli_main
from ossframe_native.errors import InvalidArgument, MediaError
from ossframe_native.pipeline import collect_stats

BUCKET = "videos-bucket"
SECRET = "SECRETSIGNATURE0123456789"  # must never appear in a message
COPIES = 20  # the small joined file: 20 stream copies of the 3-s clip (60 s, MKV)
GIB = 1 << 30


# -- media ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def joined(tmp_path_factory, clip_h264_b: ClipTruth) -> Path:
    """A 60-s recording joined from 20 copies of the 3-s clip (MKV): frame i shows i % 90."""
    path = tmp_path_factory.mktemp("remote") / "joined.mkv"
    return repeat_clip(clip_h264_b.path, path, COPIES, "matroska")


@pytest.fixture(scope="module")
def joined_refs(joined: Path):
    return reference_frames(joined)


class Big:
    """A 1 GiB+ MKV of copies of a 2-s 640x360 clip at a high bit rate (GOP 30)."""

    def __init__(self, folder: Path) -> None:
        self.clip = make_clip(
            folder / "dense.mp4",
            n_frames=60,
            fps=30,
            gop=30,
            bframes=2,
            size=(640, 360),
            noise=40,
            options={"crf": "4"},
        )
        copies = GIB // self.clip.path.stat().st_size + 1
        self.path = repeat_clip(self.clip.path, folder / "big.mkv", copies, "matroska")
        self.refs = reference_frames(self.clip.path)
        self.span_ms = Fraction(self.clip.duration_ms)  # each copy starts one clip later

    def expected(self, t_ms: int) -> tuple[int, np.ndarray]:
        """The number and pixels of the frame shown at ``t_ms``."""
        ref = self.refs[shown_at(self.refs, t_ms % self.span_ms)]
        return ref.number, ref.rgb


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Big:
    made = Big(tmp_path_factory.mktemp("big"))
    assert made.path.stat().st_size > GIB
    return made


# -- servers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(joined: Path, big: Big):
    with RangeServer({"joined.mkv": joined, "big.mkv": big.path}) as server:
        yield server


@pytest.fixture(scope="module")
def s3(joined: Path):
    """moto's S3 with the joined file at videos/2024/joined.mkv and a copy at
    videos/other.mkv; AWS_* variables (credentials, AWS_ENDPOINT_URL) point at it."""
    import s3fs

    with pytest.MonkeyPatch.context() as env, MotoServer() as server:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", server.endpoint)
        env.delenv("AWS_PROFILE", raising=False)
        s3fs.S3FileSystem.clear_instance_cache()  # a filesystem made with other variables
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        for key in ("videos/2024/joined.mkv", "videos/other.mkv"):
            client.upload_file(str(joined), BUCKET, key)
        server.client = client
        yield server
        s3fs.S3FileSystem.clear_instance_cache()


def presigned(s3: MotoServer, key: str, expires: int = 600) -> str:
    return s3.client.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=expires
    )


def counted(fn):
    """``fn()`` and the DecodeStats of the one capture it opened."""
    with collect_stats() as stats:
        result = fn()
    assert len(stats) == 1
    return result, stats[0]


def frame_number(data: bytes) -> int:
    return read_frame_number(decode_image(data))


# -- local paths ----------------------------------------------------------------------------------


def test_a_local_path_opens_exactly_that_file(
    tmp_path: Path, monkeypatch, clip_h264_b: ClipTruth, clip_h264_long_gop: ClipTruth
) -> None:
    """A file named like an FFmpeg protocol (``concat:x.mp4``, ``subfile,,...:x.mp4``) is that
    file: FFmpeg's protocol layer would join or cut ``x.mp4`` instead."""
    monkeypatch.chdir(tmp_path)
    Path("x.mp4").write_bytes(clip_h264_b.path.read_bytes())  # 192x108
    for name in ("concat:x.mp4", "concat:x.mp4|x.mp4", "subfile,,start,0,end,0,,:x.mp4"):
        Path(name).write_bytes(clip_h264_long_gop.path.read_bytes())
        image = ofn.snapshot(name, t=1000, f="png")
        assert (image.width, image.height) == clip_h264_long_gop.size != clip_h264_b.size
        assert frame_number(image.data) == image.index == 30
        assert ofn.probe(name)["width"] == clip_h264_long_gop.size[0]
    with pytest.raises(MediaError, match="no such file: concat:missing.mp4"):
        ofn.snapshot("concat:missing.mp4")
    url = Path("concat:x.mp4").resolve().as_uri()  # file:// URLs are local paths too
    assert ofn.snapshot(url, t=1000).data == ofn.snapshot("concat:x.mp4", t=1000).data


def test_local_sources_count_bytes_read(clip_h264_b: ClipTruth) -> None:
    """A path, bytes and a file object each count what the demuxer read; no requests."""
    size = clip_h264_b.path.stat().st_size
    data = clip_h264_b.path.read_bytes()
    with open(clip_h264_b.path, "rb") as f:
        for source in (clip_h264_b.path, data, f):
            image, stats = counted(lambda s=source: ofn.snapshot(s, t=2000))
            assert frame_number(image.data) == image.index == 60
            assert 0 < stats.bytes_read <= 2 * size and stats.requests == 0
    described = ofn.probe(clip_h264_b.path)
    assert size <= described["bytes_read"] <= 3 * size and described["requests"] == 0


def test_urls_are_named_without_credentials() -> None:
    url = (
        "https://user:pw@bucket.s3.amazonaws.com/a/clip%20one.mp4?versionId=3"
        f"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID&X-Amz-Signature={SECRET}"
    )
    assert sources.display(url) == "https://bucket.s3.amazonaws.com/a/clip%20one.mp4?versionId=3"
    oss = f"http://h:9000/b/k.mkv?OSSAccessKeyId=AK&Expires=9&Signature={SECRET}&x-oss-process=x"
    assert sources.display(oss) == "http://h:9000/b/k.mkv?x-oss-process=x"
    assert sources.identity(url) == sources.display(url)  # a new signature: the same record
    assert sources.name_of(url) == "clip one.mp4" and sources.name_of("s3://b/v/a.mkv") == "a.mkv"
    assert sources.is_url("s3://b/k") and not sources.is_url(Path("s3://b/k"))
    remote = sources.bind("s3://b/k", {"secret": SECRET})
    assert SECRET not in repr(remote) + str(remote)
    with pytest.raises(InvalidArgument, match="storage_options"):
        sources.bind("s3://b/k", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="unknown option"):
        ofn.snapshot("http://127.0.0.1:9/x.mp4", storage_options={"endpoint_url": "x"})
    with pytest.raises(InvalidArgument, match="not supported"):
        ofn.snapshot("ftp://host/x.mp4")


# -- http(s) --------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0, 13_370, 59_990])
def test_http_snapshot_is_exact_and_counted(http: RangeServer, joined, joined_refs, t) -> None:
    """A presigned-style URL: the frame of a local decode, and what the server sent is what
    the capture counted."""
    local, local_stats = counted(lambda: ofn.snapshot(joined, t=t, f="png"))
    http.counts.reset()
    url = http.url("joined.mkv") + f"?X-Amz-Expires=600&X-Amz-Signature={SECRET}"
    image, stats = counted(lambda: ofn.snapshot(url, t=t, f="png"))
    ref = joined_refs[shown_at(joined_refs, t)]
    assert frame_number(image.data) == ref.number
    assert np.array_equal(decode_image(image.data), decode_image(local.data))
    assert http.counts.settled() == (stats.requests, stats.bytes_read)
    assert stats.bytes_read <= 1.5 * local_stats.bytes_read + sources.MAX_BLOCK
    assert stats.requests <= 4


@pytest.mark.parametrize("where", ["http", "s3"])
def test_one_gib_object(where: str, request, big: Big) -> None:
    """Snapshots deep into a 1 GiB+ object fetch a few MiB in a few requests (server-side
    counts), and give the frame a local decode gives."""
    if where == "http":
        server = request.getfixturevalue("http")
        url = server.url("big.mkv")
    else:
        server = request.getfixturevalue("s3")
        with big.path.open("rb") as body:
            server.client.put_object(Bucket=BUCKET, Key="big.mkv", Body=body)
        url = f"s3://{BUCKET}/big.mkv"
    gop_bytes = big.clip.path.stat().st_size  # the clip is two GOPs
    for t in (150_123, 37_300):
        local, local_stats = counted(lambda t=t: ofn.snapshot(big.path, t=t, f="png"))
        server.counts.reset()
        image, stats = counted(lambda t=t: ofn.snapshot(url, t=t, f="png"))
        number, pixels = big.expected(t)
        assert frame_number(image.data) == number
        assert np.array_equal(decode_image(image.data), decode_image(local.data))
        assert np.array_equal(decode_image(image.data), pixels)
        assert server.counts.settled() == (stats.requests, stats.bytes_read)
        assert stats.bytes_read <= 1.5 * local_stats.bytes_read + sources.MAX_BLOCK
        assert stats.bytes_read <= 3 * gop_bytes + 2 * sources.MAX_BLOCK  # never the object
        assert stats.requests <= 8
    if where == "s3":
        server.client.delete_object(Bucket=BUCKET, Key="big.mkv")


def test_a_server_without_ranges_is_refused_without_downloading(http: RangeServer, big) -> None:
    http.ranges = False
    try:
        http.counts.reset()
        with pytest.raises(MediaError, match="does not answer ranged reads"):
            ofn.snapshot(http.url("big.mkv"))
        assert http.counts.settled()[1] < 64 << 20  # closed after the headers
    finally:
        http.ranges = True


# -- s3:// ----------------------------------------------------------------------------------------


def test_s3_in_every_front_end(s3: MotoServer, joined: Path, joined_refs, tmp_path) -> None:
    url = f"s3://{BUCKET}/videos/2024/joined.mkv"
    image, stats = counted(lambda: ofn.snapshot(url, t=31_000, f="png"))
    assert frame_number(image.data) == joined_refs[shown_at(joined_refs, 31_000)].number
    assert stats.requests >= 2 and stats.bytes_read > 0  # the HEAD and the reads

    images = list(ofn.snapshots(url, m="default", inter=20_000, f="png"))
    expected = [joined_refs[shown_at(joined_refs, t)] for t in (0, 20_000, 40_000)]
    assert [frame_number(i.data) for i in images] == [r.number for r in expected]
    batch = ofn.frames_batch(url, inter=20_000)
    assert [read_frame_number(a) for a in batch.data] == [r.number for r in expected]
    assert all(np.array_equal(a, r.rgb) for a, r in zip(batch.data, expected, strict=True))

    store = tmp_path / "store"
    result = ofn.process(
        url, saveas("out", "{barename}/{index}.jpg", "video/snapshot,t_3100,f_jpg"), store=store
    )
    assert result.ok and result.source == url and result.objects[0].key == "joined/1.jpg"

    s3.counts.reset()
    described = ofn.probe(url)
    assert described["frames"] == len(joined_refs)
    assert s3.counts.settled() == (described["requests"], described["bytes_read"])


def test_s3_batch_globs_records_and_resume(s3: MotoServer, tmp_path: Path, joined_refs) -> None:
    """Globs over the bucket, a missing object reported (the batch goes on), records keyed on
    the URL: a re-run skips what is done, a presigned URL signed again included."""
    spec = saveas("out", "{barename}.jpg", "video/snapshot,t_1000,f_jpg")
    report = tmp_path / "report.jsonl"
    store = tmp_path / "store"
    first = presigned(s3, "videos/other.mkv")
    items = [f"s3://{BUCKET}/videos/**/*.mkv", f"s3://{BUCKET}/videos/missing.mkv", first]
    summary = process_many(items, spec, store=store, workers=1, progress=False, report=report)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line["source"] for line in lines] == [
        f"s3://{BUCKET}/videos/2024/joined.mkv",
        f"s3://{BUCKET}/videos/other.mkv",
        f"s3://{BUCKET}/videos/missing.mkv",
        sources.display(first),
    ]
    assert (summary.succeeded, summary.failed) == (3, 1)
    assert lines[2]["error_code"] == "MediaError"
    assert lines[2]["error_message"] == f"no such object: s3://{BUCKET}/videos/missing.mkv"
    assert SECRET not in report.read_text() and "Signature" not in report.read_text()
    assert sorted(p.name for p in (store / "out").iterdir()) == ["joined.jpg", "other.jpg"]
    assert frame_number((store / "out" / "joined.jpg").read_bytes()) == 30

    again = process_many(
        [items[0], presigned(s3, "videos/other.mkv", expires=900)],
        spec,
        store=store,
        workers=1,
        progress=False,
    )
    assert (again.skipped, again.succeeded, again.failed) == (3, 0, 0)
    with pytest.raises(InvalidArgument, match="matches no object"):
        process_many([f"s3://{BUCKET}/nothing/*.mkv"], spec, store=store, progress=False)


def test_cli_over_s3(s3: MotoServer, tmp_path: Path, child_env, joined: Path) -> None:
    """``ossframe process`` and ``ossframe batch`` (a process pool) in child processes that
    find the endpoint and credentials in the environment."""
    env = dict(child_env, **{k: v for k, v in os.environ.items() if k.startswith("AWS_")})

    def ossframe(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "ossframe_native.cli", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    out = tmp_path / "f.png"
    done = ossframe(
        "process", f"s3://{BUCKET}/videos/other.mkv", "video/snapshot,t_4500,f_png", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == ofn.snapshot(joined, t=4500, f="png").data
    spec = saveas("out", "{barename}.jpg", "video/snapshot,t_1000,f_jpg")
    store = tmp_path / "store"
    args = ("batch", f"s3://{BUCKET}/videos/**/*.mkv", spec, "--root", str(store), "--workers", "2")
    done = ossframe(*args, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (store / "out").iterdir()) == ["joined.jpg", "other.jpg"]


# -- errors ---------------------------------------------------------------------------------------


def test_missing_denied_and_unreachable_are_one_line_exit_3(
    s3: MotoServer, http: RangeServer, capsys
) -> None:
    from server_support import free_port

    http.denied.add("secret.mkv")
    http.files["secret.mkv"] = http.files["joined.mkv"]
    closed = free_port()
    cases = {
        f"s3://{BUCKET}/videos/missing.mkv": f"no such object: s3://{BUCKET}/videos/missing.mkv",
        "s3://no-such-bucket/x.mkv": "no such object: s3://no-such-bucket/x.mkv",
        http.url(f"nothing.mkv?Signature={SECRET}"): f"no such object: {http.url('nothing.mkv')}",
        http.url(f"secret.mkv?X-Amz-Signature={SECRET}"): (
            f"access denied reading {http.url('secret.mkv')} (HTTP 403)"
        ),
        f"http://127.0.0.1:{closed}/x.mkv?Signature={SECRET}": (
            f"cannot reach 127.0.0.1:{closed} for http://127.0.0.1:{closed}/x.mkv: "
            "Connection refused"
        ),
    }
    for url, message in cases.items():
        with pytest.raises(MediaError) as raised:
            ofn.snapshot(url)
        assert str(raised.value) == message
        for command in (
            ["probe", url],
            ["process", url, "video/snapshot,t_0,f_jpg", "-o", "x.jpg"],
        ):
            assert cli_main(command) == 3
            err = capsys.readouterr().err
            assert err == f"ossframe: MediaError: {message}\n"
    assert cli_main(["probe", "x.mkv", "--storage-options", "{bad json"]) == 2
    assert "--storage-options" in capsys.readouterr().err


def test_import_loads_no_storage_library(child_env, clip_h264_b: ClipTruth) -> None:
    code = (
        "import sys, ossframe_native as ofn\n"
        f"ofn.snapshot({str(clip_h264_b.path)!r}, t=1000)\n"
        "from ossframe_native import api, ml, task, batch, cli, sources\n"
        "print([m for m in ('fsspec', 's3fs', 'gcsfs', 'oss2', 'urllib3', 'botocore') "
        "if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- oss:// and presigned URLs of a real ossframe serve -------------------------------------------


def test_oss_and_presigned_urls_of_ossframe_serve(
    tmp_path: Path, child_env, joined: Path, joined_refs, monkeypatch
) -> None:
    oss2 = pytest.importorskip("oss2")
    from server_support import AK, SK, start_server

    root = tmp_path / "root"
    (root / "media" / "cams").mkdir(parents=True)
    os.link(joined, root / "media" / "cams" / "joined.mkv")  # the store's layout: no upload
    server = start_server(root, child_env)
    try:
        monkeypatch.setenv("OSS_ACCESS_KEY_ID", AK)
        monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SK)
        monkeypatch.setenv("OSS_ENDPOINT", server.endpoint)
        t = 45_678
        want = joined_refs[shown_at(joined_refs, t)]
        url = "oss://media/cams/joined.mkv"
        image, stats = counted(lambda: ofn.snapshot(url, t=t, f="png"))
        assert frame_number(image.data) == want.number
        assert np.array_equal(decode_image(image.data), want.rgb)
        assert 1 <= stats.requests <= 4
        assert sources.glob("oss://media/**/*.mkv") == [url]

        signed = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, "media").sign_url(
            "GET", "cams/joined.mkv", 600
        )
        image = ofn.snapshot(signed, t=t, f="png")
        assert frame_number(image.data) == want.number

        with pytest.raises(MediaError, match=r"^no such object: oss://media/cams/none.mkv"):
            ofn.snapshot("oss://media/cams/none.mkv")
        wrong = sources.bind(url, {"key": AK, "secret": SECRET})
        with pytest.raises(MediaError, match=r"^access denied reading oss://media/cams/joined"):
            ofn.snapshot(wrong)
    finally:
        server.stop()
