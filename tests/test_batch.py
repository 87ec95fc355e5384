"""process_many(): sources, a process pool, failures, the report, resume, the CLI part."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from media import b64, make_clip, saveas

from ossframe_native import batch
from ossframe_native.batch import BatchSummary, expand_sources, process_many
from ossframe_native.errors import InvalidArgument
from ossframe_native.store import FsspecStore, LocalStore
from ossframe_native.task import prepare

SPEC = saveas("my-bucket", "{barename}/{index}.{autoext}")  # m_key: 2 outputs per clip below


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 128x72 H.264 clips of 20 frames at 30 fps, GOP 10 (keyframes 0 and 10), and one
    file of garbage bytes, ``broken.mp4``."""
    folder = tmp_path_factory.mktemp("videos")
    for name in ("a", "b", "c"):
        make_clip(folder / f"{name}.mp4", n_frames=20, size=(128, 72), gop=10, seed=ord(name))
    (folder / "broken.mp4").write_bytes(b"\x00not a video" * 100)
    return folder


def read_report(path: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    by_source = {os.path.basename(line["source"]): line for line in lines}
    assert len(by_source) == len(lines)
    return by_source


# -- sources -------------------------------------------------------------------------------------


def test_expand_sources(tmp_path: Path) -> None:
    for rel in ("v/1.mp4", "v/2.mp4", "v/sub/3.mp4", "v/notes.md", "w/4.mov"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    v = tmp_path / "v"
    assert expand_sources([str(v / "*.mp4")]) == [str(v / "1.mp4"), str(v / "2.mp4")]
    assert expand_sources([f"{v}/**/*.mp4"]) == [
        str(v / "1.mp4"),
        str(v / "2.mp4"),
        str(v / "sub/3.mp4"),
    ]
    manifest = tmp_path / "list.txt"
    manifest.write_text("# my videos\nv/2.mp4\n\n  w/4.mov  \n/abs/else.mp4\nv/2.mp4\n")
    expected = [str(tmp_path / "v/2.mp4"), str(tmp_path / "w/4.mov"), "/abs/else.mp4"]
    assert expand_sources([str(manifest)]) == expected
    listing = tmp_path / "listing"
    listing.write_text(manifest.read_text())
    assert expand_sources([f"@{listing}"]) == expected
    # mixed, duplicates (same file, other spelling) dropped, order kept
    assert expand_sources([str(v / "2.mp4"), f"@{listing}", str(v / "1.mp4")]) == [
        str(v / "2.mp4"),
        str(tmp_path / "w/4.mov"),
        "/abs/else.mp4",
        str(v / "1.mp4"),
    ]
    # a plain path is passed on even if missing (it fails as that source's MediaError)
    assert expand_sources(["missing.mp4"]) == ["missing.mp4"]
    assert expand_sources(str(v / "1.mp4")) == [str(v / "1.mp4")]
    with pytest.raises(InvalidArgument, match="matches no file"):
        expand_sources([str(v / "*.mkv")])
    with pytest.raises(InvalidArgument, match="manifest"):
        expand_sources([f"@{tmp_path / 'nope.txt'}"])


# -- running --------------------------------------------------------------------------------------


def test_batch_pool_report_and_resume(videos: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    sources = [str(videos / "*.mp4")]  # a, b, broken, c
    report = tmp_path / "report.jsonl"
    spec = SPEC + f"/notify,topic_{b64('batch-events')}"
    summary = process_many(sources, spec, store=root, workers=2, report=report, progress=False)
    assert isinstance(summary, BatchSummary)
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (4, 3, 1, 0)
    assert summary.frames == 6 and summary.workers == 2 and summary.threads >= 1
    assert summary.failures[0]["error_code"] == "MediaError"
    lines = read_report(report)
    assert set(lines) == {"a.mp4", "b.mp4", "c.mp4", "broken.mp4"}
    assert lines["broken.mp4"]["state"] == "Failed" and not lines["broken.mp4"]["skipped"]
    for name in "abc":
        line = lines[f"{name}.mp4"]
        assert line["state"] == "Succeeded" and line["skipped"] is False
        assert [o["key"] for o in line["objects"]] == [f"{name}/1.jpg", f"{name}/2.jpg"]
    store = LocalStore(root)
    assert store.list("my-bucket") == [f"{n}/{i}.jpg" for n in "abc" for i in (1, 2)]
    assert len(os.listdir(root / ".tasks")) == 4
    events = (root / ".notify" / "batch-events.jsonl").read_text().splitlines()
    assert sorted(os.path.basename(json.loads(x)["source"]) for x in events) == [
        "a.mp4",
        "b.mp4",
        "broken.mp4",
        "c.mp4",
    ]

    # Re-run: the three done sources are skipped, the broken one is tried again.
    mtimes = {k: (root / "my-bucket" / k).stat().st_mtime_ns for k in store.list("my-bucket")}
    again = process_many(sources, spec, store=root, workers=2, report=report, progress=False)
    assert (again.succeeded, again.failed, again.skipped, again.frames) == (0, 1, 3, 0)
    lines2 = read_report(report)
    for name in "abc":
        assert lines2[f"{name}.mp4"]["skipped"] is True
        assert lines2[f"{name}.mp4"]["task_id"] == lines[f"{name}.mp4"]["task_id"]
    assert lines2["broken.mp4"]["skipped"] is False
    assert mtimes == {k: (root / "my-bucket" / k).stat().st_mtime_ns for k in mtimes}

    # A source that changed since is done again; resume=False redoes everything.
    os.utime(videos / "b.mp4", ns=(time.time_ns(), time.time_ns()))
    third = process_many(sources, spec, store=root, workers=1, report=report, progress=False)
    assert (third.succeeded, third.skipped) == (1, 2)
    assert read_report(report)["b.mp4"]["skipped"] is False
    fourth = process_many(sources, spec, store=root, workers=1, progress=False, resume=False)
    assert (fourth.succeeded, fourth.failed, fourth.skipped) == (3, 1, 0)


def test_batch_inline_with_memory_store_and_progress(videos: Path, capsys) -> None:
    store = FsspecStore(f"memory://batch-{os.getpid()}-{time.time_ns()}")
    out = io.StringIO()
    srcs = [str(videos / "a.mp4"), str(videos / "c.mp4")]
    summary = process_many(srcs, SPEC, store=store, report=out, progress=True)
    assert summary.workers == 1 and summary.succeeded == 2
    assert store.list("my-bucket") == ["a/1.jpg", "a/2.jpg", "c/1.jpg", "c/2.jpg"]
    assert len(out.getvalue().splitlines()) == 2
    err = capsys.readouterr().err
    assert "2/2" in err and "frames=4" in err and "fps=" in err
    with pytest.raises(InvalidArgument) as info:
        process_many(srcs, SPEC, store=store, workers=2)
    assert info.value.param == "workers"


def test_batch_checks_before_running(tmp_path: Path, videos: Path) -> None:
    src = [str(videos / "a.mp4")]
    with pytest.raises(InvalidArgument) as info:
        process_many(src, "video/snapshots,f_jpg,m_key", store=tmp_path)
    assert info.value.param == "spec"
    with pytest.raises(InvalidArgument) as info:
        process_many(src, saveas("my-bucket", "../x"), store=tmp_path)
    assert info.value.param == "o"
    with pytest.raises(InvalidArgument) as info:
        process_many(src, SPEC)
    assert info.value.param == "store"
    with pytest.raises(InvalidArgument):
        process_many(src, "video/snapshots,f_gif|sys/saveas,b_x,o_y", store=tmp_path)
    for bad in (0, -1, 1.5):
        with pytest.raises(InvalidArgument):
            process_many(src, SPEC, store=tmp_path, workers=bad)
    assert list(tmp_path.iterdir()) == []


def test_barename_problem_fails_only_that_source(tmp_path: Path, videos: Path) -> None:
    odd = tmp_path / "back\\slash.mp4"  # a backslash may not be in an object name
    odd.write_bytes((videos / "a.mp4").read_bytes())
    spec = saveas("my-bucket", "{barename}/{index}.jpg")
    out = io.StringIO()
    summary = process_many(
        [str(odd), str(videos / "b.mp4")],
        spec,
        store=tmp_path / "r",
        report=out,
        progress=False,
        workers=1,
    )
    assert (summary.succeeded, summary.failed) == (1, 1)
    assert summary.failures[0]["error_code"] == "InvalidArgument"


# -- the pool itself -----------------------------------------------------------------------------


def env_runner(job: batch.Job) -> dict:
    """A stand-in task for pool tests: reports the decode threads its job carries."""
    if job.source == "crash":
        os._exit(3)  # a worker that dies, as a crash in native code would
    return {"source": job.source, "state": "Succeeded", "threads": job.threads}


def test_pool_passes_decode_threads_and_survives_a_dying_worker(tmp_path: Path) -> None:
    plan = prepare(SPEC, LocalStore(tmp_path))
    jobs = [batch.Job(s, plan, 3) for s in ("one", "crash", "two", "three", "four")]
    results = [line for _job, line in batch._run_pool(jobs, env_runner, 2)]
    by_source = {r["source"]: r for r in results}
    assert sorted(by_source) == ["crash", "four", "one", "three", "two"]
    assert len(results) == 5
    crash = by_source.pop("crash")
    assert crash["state"] == "Failed" and crash["error_code"] == "WorkerCrashed"
    assert all(r["state"] == "Succeeded" and r["threads"] == 3 for r in by_source.values())


def test_default_threads_split_the_cores(monkeypatch, videos: Path, tmp_path: Path) -> None:
    monkeypatch.setattr(batch, "cpu_count", lambda: 8)
    seen = {}

    def fake_pool(jobs, runner, workers, stop=None):
        seen.update(workers=workers, threads={job.threads for job in jobs})
        return iter(())

    monkeypatch.setattr(batch, "_run_pool", fake_pool)
    srcs = [str(videos / f"{n}.mp4") for n in "abc"]
    summary = process_many(srcs, SPEC, store=tmp_path, progress=False)
    assert seen == {"workers": 3, "threads": {2}}  # no more workers than sources; 8 // 3 = 2
    assert (summary.workers, summary.threads) == (3, 2)
    process_many(srcs, SPEC, store=tmp_path, progress=False, workers=2, threads=1)
    assert seen == {"workers": 2, "threads": {1}}


class RecordlessStore(LocalStore):
    """A store whose records cannot be written, with an error outside the engine's own."""

    def __reduce__(self):
        return (RecordlessStore, (self.root,))

    def put_record(self, name: str, data: bytes) -> None:
        raise RuntimeError("the record disk is gone")


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unexpected_error_fails_one_line_not_the_batch(
    videos: Path, tmp_path: Path, workers: int
) -> None:
    """A store raising a non-engine error while the task records its result: each source is
    a Failed line (InternalError, with the error's type and text), the batch finishes."""
    out = io.StringIO()
    srcs = [str(videos / f"{n}.mp4") for n in "ab"]
    summary = process_many(
        srcs, SPEC, store=RecordlessStore(tmp_path), report=out, progress=False, workers=workers
    )
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert (summary.total, summary.failed, len(lines)) == (2, 2, 2)
    assert sorted(x["source"] for x in lines) == srcs
    for line in lines:
        assert line["state"] == "Failed" and line["error_code"] == "InternalError"
        assert line["error_message"] == "RuntimeError: the record disk is gone"


# -- the command line ------------------------------------------------------------------------------


def cli(argv: list[str]) -> int:
    """``ossframe batch ARGV``; InvalidArgument raised (not printed) so tests can match it."""
    from ossframe_native.cli import _batch, build_parser

    return _batch(build_parser().parse_args(["batch", *argv]))


def test_cli(videos: Path, tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"{videos / 'a.mp4'}\n{videos / 'broken.mp4'}\n")
    root = str(tmp_path / "root")
    args = [str(manifest), str(videos / "b.mp4"), SPEC, "--root", root, "--no-progress"]
    assert cli([*args, "--workers", "1"]) == 1  # broken.mp4 failed
    captured = capsys.readouterr()
    lines = [json.loads(x) for x in captured.out.splitlines()]
    assert [os.path.basename(x["source"]) for x in lines] == ["a.mp4", "broken.mp4", "b.mp4"]
    assert "3 sources, 2 succeeded, 1 failed" in captured.err
    report = tmp_path / "r.jsonl"
    assert cli([str(videos / "a.mp4"), SPEC, "--root", root, "--report", str(report)]) == 0
    assert json.loads(report.read_text())["skipped"] is True
    assert capsys.readouterr().out == ""
    with pytest.raises(InvalidArgument, match="--root"):
        cli([str(videos / "a.mp4"), SPEC])
    with pytest.raises(InvalidArgument, match="required: SPEC"):
        cli([SPEC, "--root", root])


def test_ray_is_imported_only_for_the_ray_executor(child_env: dict) -> None:
    """The package, the batch module and the command line never import Ray by themselves."""
    import subprocess
    import sys

    code = (
        "import sys, ossframe_native as ofn\n"
        "from ossframe_native import batch, cli\n"
        "ofn.process_many; cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
