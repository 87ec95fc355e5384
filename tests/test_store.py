"""Stores: name validation, atomic writes, appends under concurrency, fsspec and S3 backends."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from media import all_files, decode_image, make_clip, saveas

from ossframe_native.errors import InvalidArgument, InvalidObjectName
from ossframe_native.store import (
    TEMP_SUFFIX,
    FsspecStore,
    LocalStore,
    Store,
    StoreError,
    open_store,
    validate_bucket,
    validate_key,
)

# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["abc", "my-bucket", "123", "a1-b2-c3", "a" * 63, "test-bucket"])
def test_valid_bucket_names(bucket: str) -> None:
    assert validate_bucket(bucket) == bucket


@pytest.mark.parametrize(
    "bucket",
    ["", "ab", "a" * 64, "Abc", "-abc", "abc-", "a_b", "a.b", "a b", "ab/c", "..", "日本語"],
)
def test_invalid_bucket_names(bucket: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_bucket(bucket)
    assert info.value.param == "b"
    assert "3 to 63" in str(info.value)


@pytest.mark.parametrize(
    "key",
    [
        "a.jpg",
        "frames/1.jpg",
        "a/b/c/d.png",
        "名前/フレーム_1.jpg",
        "with space/x.jpg",
        "a..b/c..d.jpg",  # dots inside a segment are fine
        ".hidden/x.jpg",
        ("x" * 255 + "/") * 3 + "x" * 255,  # 1023 bytes, segments of the 255-byte maximum
        ("é" * 127 + "/") * 4 + "xxx",  # 1023 bytes of UTF-8
    ],
)
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs.jpg",
        "/etc/passwd",
        "../x.jpg",
        "a/../../x.jpg",
        "a/..",
        "..",
        "./a.jpg",
        "a/./b.jpg",
        "a//b.jpg",
        "a/",
        "a\\b.jpg",
        "..\\x.jpg",
        "a\x00b.jpg",
        "a\nb.jpg",
        "x" * 1024,
        "é" * 512,  # 1024 bytes of UTF-8
    ],
)
def test_invalid_keys(key: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_key(key)
    assert info.value.param == "o"


# -- LocalStore ----------------------------------------------------------------------------------


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    assert store.put("my-bucket", "a/b/c.jpg", b"abc") == 3
    store.put("my-bucket", "top.png", b"x")
    assert store.get("my-bucket", "a/b/c.jpg") == b"abc"
    assert store.exists("my-bucket", "top.png")
    assert not store.exists("my-bucket", "nope.png")
    assert not store.exists("other-bucket", "top.png")
    assert store.list("my-bucket") == ["a/b/c.jpg", "top.png"]
    assert store.list("my-bucket", prefix="a/") == ["a/b/c.jpg"]
    assert store.list("empty-bucket") == []
    assert store.url("my-bucket", "a/b/c.jpg") == str(tmp_path / "root/my-bucket/a/b/c.jpg")
    with pytest.raises(KeyError):
        store.get("my-bucket", "nope.png")
    store.put("my-bucket", "top.png", b"replaced")
    assert store.get("my-bucket", "top.png") == b"replaced"
    assert all_files(tmp_path / "root") == ["my-bucket/a/b/c.jpg", "my-bucket/top.png"]


def test_local_store_refuses_escapes_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LocalStore(root)
    for key in ["../x.jpg", "/tmp/x.jpg", "a\\..\\x.jpg", "a//b", "a\x00"]:
        with pytest.raises(InvalidArgument):
            store.put("my-bucket", key, b"data")
    with pytest.raises(InvalidArgument):
        store.put("../up", "x.jpg", b"data")
    assert not root.exists()
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("kind", ["local", "fsspec-file"])
def test_names_a_local_store_cannot_hold(tmp_path: Path, kind: str) -> None:
    """A key under an object, or the name of a folder of objects: InvalidObjectName (an
    InvalidArgument), nothing written, not even a folder."""
    store = LocalStore(tmp_path) if kind == "local" else FsspecStore(f"file://{tmp_path}")
    store.put("my-bucket", "a.txt", b"an object")
    store.put("my-bucket", "dir/x.jpg", b"x")
    for key, why in [
        ("a.txt/x.jpg", "'a.txt' is an object"),
        ("a.txt/sub/x.jpg", "'a.txt' is an object"),
        ("dir", "folder of other objects"),
    ]:
        with pytest.raises(InvalidObjectName, match=why) as refused:
            store.put("my-bucket", key, b"data")
        assert (
            isinstance(refused.value, InvalidArgument) and refused.value.code == "InvalidObjectName"
        )
        assert str(tmp_path) not in str(refused.value)
    assert all_files(tmp_path) == ["my-bucket/a.txt", "my-bucket/dir/x.jpg"]


def test_process_into_a_name_under_an_object_fails_and_writes_nothing(
    tmp_path: Path, clip_h264_b
) -> None:
    import ossframe_native as ofn
    from ossframe_native.task import exit_status

    clip = clip_h264_b
    store = LocalStore(tmp_path / "root")
    store.put("out-bucket", "a.txt", b"an object")
    result = ofn.process(str(clip.path), saveas("out-bucket", "a.txt/{index}.jpg"), store=store)
    assert result.state == "Failed" and result.error_code == "InvalidObjectName"
    assert "'a.txt' is an object" in (result.error_message or "") and result.objects == ()
    assert exit_status(result) == 2  # as InvalidArgument on the command line
    assert store.list("out-bucket") == ["a.txt"]
    assert [p for p in (tmp_path / "root" / "out-bucket").rglob("*")] == [
        tmp_path / "root" / "out-bucket" / "a.txt"
    ]


def test_local_store_refuses_symlink_out_of_bucket(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    bucket = tmp_path / "root" / "my-bucket"
    bucket.mkdir(parents=True)
    (bucket / "link").symlink_to(outside, target_is_directory=True)
    store = LocalStore(tmp_path / "root")
    with pytest.raises(StoreError, match="outside"):
        store.put("my-bucket", "link/x.jpg", b"data")
    assert list(outside.iterdir()) == []


def test_local_store_write_failure_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path)
    store.put("my-bucket", "x.jpg", b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="No space left"):
        store.put("my-bucket", "x.jpg", b"new")
    with pytest.raises(StoreError):
        store.put("my-bucket", "y.jpg", b"new")
    monkeypatch.undo()
    assert all_files(tmp_path) == ["my-bucket/x.jpg"]
    assert store.get("my-bucket", "x.jpg") == b"old"


def test_local_store_killed_mid_write_leaves_only_a_hidden_temp(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    """SIGKILL between writing the data and renaming it: the final name never appears."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from ossframe_native.store import LocalStore
        store = LocalStore({str(tmp_path)!r})
        store.put("my-bucket", "frames/1.jpg", b"complete")
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        store.put("my-bucket", "frames/2.jpg", b"x" * 100000)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=child_env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    names = os.listdir(tmp_path / "my-bucket" / "frames")
    temps = [n for n in names if n.endswith(TEMP_SUFFIX)]
    assert "2.jpg" not in names
    assert len(temps) == 1 and temps[0].startswith(".") and temps[0].endswith(TEMP_SUFFIX)
    store = LocalStore(tmp_path)
    assert store.list("my-bucket") == ["frames/1.jpg"]
    assert store.get("my-bucket", "frames/1.jpg") == b"complete"


def test_append_line_refuses_newlines(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(ValueError):
        store.append_line(".notify/t.jsonl", b'{"a":\n1}')
    with pytest.raises(ValueError):
        store.append_line("../escape.jsonl", b"{}")
    with pytest.raises(ValueError):
        store.put_record("my-bucket/x.json", b"{}")


def test_concurrent_appends_never_interleave(tmp_path: Path, child_env: dict[str, str]) -> None:
    """Three processes append 50 lines of ~20 KB each (far above the pipe atomic size)."""
    script = textwrap.dedent(
        """
        import json, sys
        from ossframe_native.store import LocalStore
        store = LocalStore(sys.argv[1])
        who = sys.argv[2]
        for i in range(50):
            line = json.dumps({"who": who, "i": i, "pad": who * (20000 + i)})
            store.append_line(".notify/t.jsonl", line.encode())
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), w], env=child_env)
        for w in "abc"
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    raw = (tmp_path / ".notify" / "t.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert len(lines) == 150
    for who in "abc":
        mine = [m for m in lines if m["who"] == who]
        assert [m["i"] for m in mine] == list(range(50))
        assert all(m["pad"] == who * (20000 + m["i"]) for m in mine)
    assert LocalStore(tmp_path).read_lines(".notify/t.jsonl") == raw.splitlines()


def test_records(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.get_record(".tasks/abc.json") is None
    store.put_record(".tasks/abc.json", b'{"state":"Succeeded"}')
    assert store.get_record(".tasks/abc.json") == b'{"state":"Succeeded"}'
    assert (tmp_path / ".tasks" / "abc.json").is_file()


def test_local_store_pickles(tmp_path: Path) -> None:
    store = pickle.loads(pickle.dumps(LocalStore(tmp_path)))
    assert isinstance(store, LocalStore) and store.root == str(tmp_path)


def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    local = open_store(f"file://{tmp_path}")
    assert isinstance(local, LocalStore) and local.root == str(tmp_path)
    mem = open_store("memory://open-store-test")
    assert isinstance(mem, FsspecStore) and mem.in_process
    same = LocalStore(tmp_path)
    assert open_store(same) is same
    with pytest.raises(InvalidArgument):
        open_store("")
    with pytest.raises(InvalidArgument):
        open_store("nosuchscheme-xyz://bucket")


# -- FsspecStore ---------------------------------------------------------------------------------


def memory_store() -> FsspecStore:
    return FsspecStore(f"memory://ossframe-test-{uuid.uuid4().hex}/prefix")


def exercise(store: Store) -> None:
    """The same checks for every backend."""
    assert store.put("my-bucket", "a/b/c.jpg", b"abc") == 3
    store.put("my-bucket", "top.png", b"x")
    store.put("my-bucket", "top.png", b"replaced")
    assert store.get("my-bucket", "a/b/c.jpg") == b"abc"
    assert store.get("my-bucket", "top.png") == b"replaced"
    assert store.exists("my-bucket", "top.png")
    assert not store.exists("my-bucket", "missing.png")
    assert store.list("my-bucket") == ["a/b/c.jpg", "top.png"]
    assert store.list("my-bucket", "a/") == ["a/b/c.jpg"]
    with pytest.raises(InvalidArgument):
        store.put("my-bucket", "../escape.jpg", b"x")
    with pytest.raises(InvalidArgument):
        store.put("BAD", "x.jpg", b"x")
    with pytest.raises(KeyError):
        store.get("my-bucket", "missing.png")
    assert store.read_lines(".notify/t.jsonl") == []
    for i in range(3):
        store.append_line(".notify/t.jsonl", json.dumps({"i": i}).encode())
    assert [json.loads(x)["i"] for x in store.read_lines(".notify/t.jsonl")] == [0, 1, 2]
    store.put_record(".tasks/k.json", b"{}")
    assert store.get_record(".tasks/k.json") == b"{}"
    assert store.get_record(".tasks/none.json") is None


def test_fsspec_memory_store() -> None:
    store = memory_store()
    exercise(store)
    assert store.in_process
    assert store.url("my-bucket", "top.png").startswith("memory://")
    copy = pickle.loads(pickle.dumps(store))
    assert copy.get("my-bucket", "top.png") == b"replaced"  # same process, same memory


def test_fsspec_local_store_is_atomic(tmp_path: Path) -> None:
    store = FsspecStore(f"file://{tmp_path}")
    exercise(store)
    assert not store.in_process
    assert (tmp_path / "my-bucket" / "a" / "b" / "c.jpg").read_bytes() == b"abc"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


# -- S3 through a local moto server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (ephemeral port); skipped where it cannot run."""
    try:
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"S3 test needs s3fs and moto[server]: {exc}")
    try:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
    except Exception as exc:  # noqa: BLE001 - any start failure means "cannot run here"
        pytest.skip(f"moto S3 server could not start: {exc}")
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=False)
def aws_env(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def s3_store(endpoint: str, url: str) -> FsspecStore:
    return FsspecStore(
        url,
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        skip_instance_cache=True,
    )


def make_s3_bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)


def test_s3_store(s3_endpoint: str, aws_env) -> None:
    make_s3_bucket(s3_endpoint, "ossframe-store")
    store = s3_store(s3_endpoint, "s3://ossframe-store/prefix")
    exercise(store)
    assert store.url("my-bucket", "top.png") == "s3://ossframe-store/prefix/my-bucket/top.png"
    copy = pickle.loads(pickle.dumps(store))
    assert copy.list("my-bucket") == ["a/b/c.jpg", "top.png"]


def test_s3_store_oss_bucket_is_the_s3_bucket(s3_endpoint: str, aws_env) -> None:
    make_s3_bucket(s3_endpoint, "frames-out")
    store = s3_store(s3_endpoint, "s3://")
    store.put("frames-out", "x/1.jpg", b"1")
    assert store.list("frames-out") == ["x/1.jpg"]
    assert store.url("frames-out", "x/1.jpg") == "s3://frames-out/x/1.jpg"


def test_process_to_s3(s3_endpoint: str, aws_env, tmp_path: Path) -> None:
    """A whole saveas task written straight to S3; the objects decode as images."""
    from ossframe_native.task import process, task_key

    make_s3_bucket(s3_endpoint, "ossframe-task")
    clip = tmp_path / "clip.mp4"
    make_clip(clip, n_frames=20, size=(128, 72), gop=10)
    store = s3_store(s3_endpoint, "s3://ossframe-task/out")

    spec = saveas("test-bucket", "{barename}/k_{index}")  # video/snapshots,f_jpg,m_key
    result = process(str(clip), spec, store=store)
    assert result.ok, result.error_message
    assert store.list("test-bucket") == ["clip/k_1", "clip/k_2"]
    for key in store.list("test-bucket"):
        assert decode_image(store.get("test-bucket", key)).shape == (72, 128, 3)
    record = store.get_record(f".tasks/{task_key(str(clip), spec)}.json")
    assert record is not None and json.loads(record)["state"] == "Succeeded"


def test_longest_valid_segment_is_writable(tmp_path: Path) -> None:
    """A 255-byte file name (the usual file-system limit) still fits its temporary name."""
    store = LocalStore(tmp_path)
    name = "f" * 251 + ".jpg"
    store.put("bucket-a", name, b"data")
    assert (tmp_path / "bucket-a" / name).read_bytes() == b"data"
