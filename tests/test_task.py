"""process() with sys/saveas and notify: names, results, failures, durability, the CLI part."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from media import ClipTruth, all_files, b64, decode_image, make_clip, saveas

import ossframe_native.api as api
from ossframe_native.errors import InvalidArgument, MediaError
from ossframe_native.notify import Webhook
from ossframe_native.store import TEMP_SUFFIX, FsspecStore, LocalStore, StoreError
from ossframe_native.task import (
    TaskResult,
    add_cli_arguments,
    cli_main,
    exit_status,
    is_complete,
    load_record,
    process,
    task_key,
)


@pytest.fixture
def clip(clip_h264_b: ClipTruth) -> str:
    """192x108, 90 frames at 30 fps, keyframes 0, 30, 60: m_key gives 3 outputs."""
    return str(clip_h264_b.path)


@pytest.fixture
def no_decode(monkeypatch) -> None:
    """Fail the test if anything reaches the decoder."""

    def refuse(*args, **kwargs):
        raise AssertionError("capture() was called: validation must come before any decode")

    monkeypatch.setattr(api, "capture", refuse)


# -- names, as in the OSS documentation -----------------------------------------------------------

SEED_BUCKET = "dGVzdC1idWNrZXQ"  # "test-bucket", no padding (the OSS examples)
SEED_TOPIC = "dGVzdC10b3BpYw"  # "test-topic"


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        # the OSS documentation's saveas/notify, verbatim
        (
            "sys/saveas,b_dGVzdC1idWNrZXQ,o_ZG9jX2ltYWdlcy97aW5kZXh9LnBuZw/notify,topic_dGVzdC10b3BpYw",
            ["doc_images/1.png", "doc_images/2.png", "doc_images/3.png"],
        ),
        # notify after '|' instead of '/'
        (
            "sys/saveas,b_dGVzdC1idWNrZXQ,o_ZG9jX2ltYWdlcy97aW5kZXh9LnBuZw|notify,topic_dGVzdC10b3BpYw",
            ["doc_images/1.png", "doc_images/2.png", "doc_images/3.png"],
        ),
        # padding kept; a trailing newline inside the base64 text (as `echo` makes)
        (
            f"sys/saveas,b_{b64('test-bucket', pad=True)},o_{b64('outobjprefix' + chr(10))}",
            ["outobjprefix_0_1.png", "outobjprefix_0_2.png", "outobjprefix_0_3.png"],
        ),
        (
            f"sys/saveas,b_{b64('test-bucket' + chr(10), pad=True)},o_{b64('frames/cut')}",
            ["frames/cut_0_1.png", "frames/cut_0_2.png", "frames/cut_0_3.png"],
        ),
        (
            f"sys/saveas,b_{SEED_BUCKET},o_{b64('{barename}/{ms}.{autoext}')}",
            ["h264_b/0.png", "h264_b/1000.png", "h264_b/2000.png"],
        ),
        (
            f"sys/saveas,b_{SEED_BUCKET},o_{b64('s{streamindex}/{{x}}-{index}.{autoext}')}",
            ["s0/{x}-1.png", "s0/{x}-2.png", "s0/{x}-3.png"],
        ),
    ],
)
def test_seed_examples_write_the_expected_names(clip, tmp_path, tail, expected) -> None:
    spec = f"video/snapshots,f_png,m_key|{tail}"
    result = process(clip, spec, store=LocalStore(tmp_path))
    assert isinstance(result, TaskResult)
    assert result.ok, result.error_message
    assert result.keys == expected
    assert LocalStore(tmp_path).list("test-bucket") == sorted(expected)
    for obj in result.objects:
        data = (tmp_path / "test-bucket" / obj.key).read_bytes()
        assert obj.bytes == len(data)
        assert decode_image(data).shape == (obj.height, obj.width, 3) == (108, 192, 3)
    assert [o.time_ms for o in result.objects] == [0, 1000, 2000]
    assert [o.index for o in result.objects] == [1, 2, 3]
    if "notify" in tail:
        (line,) = (tmp_path / ".notify" / "test-topic.jsonl").read_text().splitlines()
        message = json.loads(line)
        assert message["task_id"] == result.task_id
        assert message["state"] == "Succeeded"
        assert [o["key"] for o in message["objects"]] == expected
        assert result.notify is not None and result.notify["delivered"]


def test_result_contents(clip, tmp_path) -> None:
    spec = saveas("my-bucket", "f/{index}.jpg", "video/snapshots,f_jpg,m_key,num_2")
    result = process(clip, spec, store=tmp_path, task_id="my-task")
    assert isinstance(result, TaskResult)
    d = result.to_dict()
    assert d["task_id"] == "my-task" and d["state"] == "Succeeded"
    assert d["source"] == clip and d["spec"] == spec
    assert d["store"] == str(tmp_path) and d["bucket"] == "my-bucket"
    assert d["outputs"] == 2 and d["overwritten"] == 0
    assert d["bytes_written"] == sum(o["bytes"] for o in d["objects"]) > 0
    assert d["error_code"] is None and d["error_message"] is None and d["notify"] is None
    assert set(d["timings"]) >= {"started_at", "finished_at", "total_ms", "write_ms"}
    assert d["objects"][0] == {
        "key": "f/1.jpg",
        "index": 1,
        "time_ms": 0,
        "width": 192,
        "height": 108,
        "bytes": d["objects"][0]["bytes"],
    }
    assert TaskResult.from_dict(json.loads(result.to_json())) == result


def test_without_saveas_returns_images(clip, tmp_path) -> None:
    images = process(clip, "video/snapshots,f_jpg,m_key", store=tmp_path)
    assert isinstance(images, list) and [im.time_ms for im in images] == [0, 1000, 2000]
    assert all_files(tmp_path) == []


def test_fixed_name_overwrites_and_says_so(clip, tmp_path) -> None:
    spec = saveas("my-bucket", "poster/cover.jpg")
    result = process(clip, spec, store=tmp_path)
    images = process(clip, "video/snapshots,f_jpg,m_key")
    assert result.ok and result.outputs == 3 and result.overwritten == 2
    (obj,) = result.objects
    assert (obj.key, obj.index, obj.time_ms) == ("poster/cover.jpg", 3, 2000)
    assert (tmp_path / "my-bucket/poster/cover.jpg").read_bytes() == images[-1].data
    (note,) = result.notes
    assert "3 outputs" in note and "cover.jpg" in note and "as OSS does" in note
    assert all_files(tmp_path / "my-bucket") == ["poster/cover.jpg"]


def test_a_single_output_under_a_fixed_name_is_no_overwrite(clip, tmp_path) -> None:
    result = process(
        clip, saveas("my-bucket", "t.png", "video/snapshot,t_1500,f_png"), store=tmp_path
    )
    assert result.ok and result.keys == ["t.png"] and result.overwritten == 0
    assert result.notes == ()


# -- checks before anything runs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        "../escape/{index}.jpg",
        "a/../../escape.jpg",
        "/etc/cron.d/x",
        "..\\escape.jpg",
        "a//b.jpg",
        "a\x00b.jpg",
        "x" * 1024,
        "{nosuch}.jpg",
        "{index",
    ],
)
def test_bad_object_names_fail_before_decoding(tmp_path, no_decode, obj) -> None:
    root = tmp_path / "root"
    with pytest.raises(InvalidArgument) as info:
        process(str(tmp_path / "any.mp4"), saveas("my-bucket", obj), store=LocalStore(root))
    assert info.value.param == "o"
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("bucket", ["../etc", "Bad_Bucket", "ab", "a" * 64, "-lead"])
def test_bad_buckets_fail_before_decoding(tmp_path, no_decode, bucket) -> None:
    with pytest.raises(InvalidArgument) as info:
        process("any.mp4", saveas(bucket, "x/{index}.jpg"), store=tmp_path / "root")
    assert info.value.param == "b"
    assert all_files(tmp_path) == []


def test_saveas_without_store(no_decode) -> None:
    with pytest.raises(InvalidArgument) as info:
        process("any.mp4", saveas("my-bucket", "x"))
    assert info.value.param == "store"


def test_notify_without_saveas(no_decode) -> None:
    with pytest.raises(InvalidArgument) as info:
        process("any.mp4", f"video/snapshot,t_0,f_jpg|notify,topic_{b64('t')}")
    assert info.value.param == "notify"


def test_bad_topic_and_topics(tmp_path, no_decode) -> None:
    spec = saveas("my-bucket", "x") + f"/notify,topic_{b64('../../etc/x')}"
    with pytest.raises(InvalidArgument) as info:
        process("any.mp4", spec, store=tmp_path)
    assert info.value.param == "topic"
    spec = saveas("my-bucket", "x") + f"/notify,topic_{b64('t')}"
    with pytest.raises(InvalidArgument) as info:
        process("any.mp4", spec, store=tmp_path, topics={"t": "ftp://nope"})
    assert info.value.param == "topics"
    assert all_files(tmp_path) == []


def test_barename_without_a_file_name(tmp_path, no_decode) -> None:
    with pytest.raises(InvalidArgument, match="file name"):
        process(b"\x00" * 100, saveas("my-bucket", "{barename}_{index}.jpg"), store=tmp_path)
    assert all_files(tmp_path) == []


def test_bytes_source_without_barename(clip, tmp_path) -> None:
    data = Path(clip).read_bytes()
    result = process(data, saveas("my-bucket", "b/{index}.jpg"), store=tmp_path)
    assert result.ok and result.keys == ["b/1.jpg", "b/2.jpg", "b/3.jpg"]
    assert result.source == f"<bytes: {len(data)}>"
    assert not (tmp_path / ".tasks").exists()  # only path sources are recorded


# -- failures midway ------------------------------------------------------------------------------


def test_media_failure_midway_keeps_what_was_saved(clip, tmp_path, monkeypatch) -> None:
    real_capture = api.capture

    def failing(source, request, threads=None) -> Iterator:
        for n, image in enumerate(real_capture(source, request)):
            if n == 2:
                raise MediaError("corrupt packet at 2000 ms")
            yield image

    monkeypatch.setattr(api, "capture", failing)
    spec = saveas("my-bucket", "f/{index}.jpg") + f"/notify,topic_{b64('events')}"
    result = process(clip, spec, store=tmp_path)
    assert result.state == "Failed"
    assert (result.error_code, result.error_message) == ("MediaError", "corrupt packet at 2000 ms")
    assert result.keys == ["f/1.jpg", "f/2.jpg"] and result.outputs == 2
    assert all_files(tmp_path / "my-bucket") == ["f/1.jpg", "f/2.jpg"]
    (line,) = (tmp_path / ".notify" / "events.jsonl").read_text().splitlines()
    message = json.loads(line)
    assert message["state"] == "Failed" and message["error_code"] == "MediaError"
    assert [o["key"] for o in message["objects"]] == ["f/1.jpg", "f/2.jpg"]
    assert exit_status(result) == 3


def test_unreadable_source_is_a_failed_result(tmp_path) -> None:
    missing = tmp_path / "missing.mp4"
    result = process(str(missing), saveas("my-bucket", "x"), store=tmp_path / "root")
    assert result.state == "Failed" and result.error_code == "MediaError"
    assert result.objects == () and result.outputs == 0


def test_store_failure_midway(clip, tmp_path) -> None:
    class FlakyStore(LocalStore):
        def put(self, bucket: str, key: str, data: bytes) -> int:
            if key.endswith("2.jpg"):
                raise StoreError("disk full")
            return super().put(bucket, key, data)

    result = process(clip, saveas("my-bucket", "f/{index}.jpg"), store=FlakyStore(tmp_path))
    assert result.state == "Failed"
    assert (result.error_code, result.error_message) == ("StoreError", "disk full")
    assert result.keys == ["f/1.jpg"]
    assert all_files(tmp_path / "my-bucket") == ["f/1.jpg"]
    assert exit_status(result) == 1


# -- notify ----------------------------------------------------------------------------------------


def test_undeliverable_webhook_is_recorded_and_dead_lettered(clip, tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    spec = saveas("my-bucket", "x") + f"/notify,topic_{b64('hooked')}"
    result = process(
        clip, spec, store=tmp_path, topics={"hooked": Webhook(url, retries=1, backoff=0)}
    )
    assert result.ok  # the task itself succeeded
    assert result.notify["delivered"] is False and result.notify["attempts"] == 2
    (dead,) = (tmp_path / ".notify" / "hooked.dead.jsonl").read_text().splitlines()
    assert json.loads(dead)["message"]["task_id"] == result.task_id
    record = load_record(LocalStore(tmp_path), clip, spec)
    assert record["notify"]["delivered"] is False


# -- durable results -------------------------------------------------------------------------------


def test_result_is_recorded_for_resume(clip, tmp_path) -> None:
    store = LocalStore(tmp_path)
    spec = saveas("my-bucket", "x")
    result = process(clip, spec, store=store)
    record = load_record(store, clip, spec)
    assert record is not None and record["task_id"] == result.task_id
    assert record["source_stat"]["path"] == os.path.abspath(clip)
    assert is_complete(record, clip)
    assert (tmp_path / ".tasks" / f"{task_key(clip, spec)}.json").is_file()
    # the same file under another spelling of its path has the same key
    assert task_key(os.path.relpath(clip), spec) == task_key(clip, spec)
    assert task_key(clip, spec + "x") != task_key(clip, spec)
    assert load_record(store, clip, saveas("my-bucket", "y")) is None


def test_memory_store(clip) -> None:
    store = FsspecStore(f"memory://task-test-{os.getpid()}-{time.time_ns()}")
    result = process(clip, saveas("my-bucket", "m/{index}.{autoext}"), store=store)
    assert result.ok and store.list("my-bucket") == ["m/1.jpg", "m/2.jpg", "m/3.jpg"]
    assert decode_image(store.get("my-bucket", "m/1.jpg")).shape == (108, 192, 3)


# -- a crash in the middle of a task ---------------------------------------------------------------


def test_kill_mid_task_leaves_only_complete_images(tmp_path, child_env) -> None:
    """SIGKILL a task that is writing; every object under a final name is a whole image."""
    clip = tmp_path / "long.mp4"
    make_clip(clip, n_frames=150, size=(160, 96), gop=30)
    root = tmp_path / "root"
    spec = saveas("my-bucket", "frames/{index}.png", "video/snapshots,f_png")
    script = textwrap.dedent(
        f"""
        import time
        from ossframe_native.store import LocalStore
        from ossframe_native.task import process

        class SlowStore(LocalStore):  # stretch the task so the kill lands mid-way
            def put(self, bucket, key, data):
                time.sleep(0.02)
                return super().put(bucket, key, data)

        process({str(clip)!r}, {spec!r}, store=SlowStore({str(root)!r}))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=child_env)
    frames = root / "my-bucket" / "frames"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if frames.is_dir() and sum(not n.startswith(".") for n in os.listdir(frames)) >= 10:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the task ended before it could be killed"
    names = os.listdir(frames)
    finals = [n for n in names if not n.startswith(".")]
    assert 10 <= len(finals) < 150
    assert all(n.endswith(TEMP_SUFFIX) for n in names if n.startswith("."))
    for name in finals:
        image = cv2.imread(str(frames / name), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (96, 160, 3), name
    assert LocalStore(root).list("my-bucket") == sorted(f"frames/{n}" for n in finals)
    assert not (root / ".tasks").exists()  # never finished, so never recorded as done


# -- the command line ----------------------------------------------------------------------------


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("spec")
    parser.add_argument("-o", "--output")
    add_cli_arguments(parser)
    return cli_main(parser.parse_args(argv))


def test_cli_prints_the_result(clip, tmp_path, capsys) -> None:
    spec = saveas("my-bucket", "c/{index}.jpg") + f"/notify,topic_{b64('t')}"
    assert cli([clip, spec, "--root", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "Succeeded" and [o["key"] for o in out["objects"]] == [
        "c/1.jpg",
        "c/2.jpg",
        "c/3.jpg",
    ]
    assert out["notify"]["target"] == "file"


def test_cli_failure_and_usage(tmp_path, capsys) -> None:
    missing = str(tmp_path / "missing.mp4")
    assert cli([missing, saveas("my-bucket", "x"), "--root", str(tmp_path)]) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out)["state"] == "Failed"
    assert captured.err.startswith("ossframe: MediaError: ")
    with pytest.raises(InvalidArgument, match="--root"):
        cli([missing, saveas("my-bucket", "x")])
    with pytest.raises(InvalidArgument, match="-o"):
        cli([missing, saveas("my-bucket", "x"), "--root", str(tmp_path), "-o", "x.jpg"])
    with pytest.raises(InvalidArgument, match="NAME=URL"):
        cli([missing, saveas("my-bucket", "x"), "--root", str(tmp_path), "--topic", "t"])
