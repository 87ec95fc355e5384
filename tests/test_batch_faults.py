"""Batches under faults, as users meet them: odd files where resume records live, a batch killed
with SIGKILL, a batch interrupted with Ctrl-C. Real processes and signals, each bounded in time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from media import make_clip, saveas

from ossframe_native.task import task_key

SPEC = saveas("bkt", "{barename}/{index}.jpg", "video/snapshots,f_jpg,m_key")  # 2 outputs each
# Workers of a killed batch are gone within this (the documented bound is about a second; this
# leaves room for a loaded machine).
WORKERS_GONE_S = 10

# A batch whose every object write takes a quarter of a second, so that sources are in flight
# when a signal arrives. The store is a module of its own so that pool workers can import it.
SLOW_BATCH = """
import sys
import time

from ossframe_native.batch import process_many
from ossframe_native.store import LocalStore


class SlowStore(LocalStore):
    def __reduce__(self):
        return (SlowStore, (self.root,))

    def put(self, bucket, key, data):
        time.sleep(0.25)
        return super().put(bucket, key, data)


def main():
    sources, spec, root, report = sys.argv[1:5]
    try:
        process_many([sources], spec, store=SlowStore(root), workers=2, report=report,
                     progress=False)
    except KeyboardInterrupt:
        sys.exit(130)  # as ossframe batch does
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """128x72 H.264, 20 frames at 30 fps, GOP 10: m_key gives frames 0 and 10."""
    return make_clip(tmp_path_factory.mktemp("faults") / "clip.mp4", n_frames=20, gop=10).path


def copies(clip: Path, folder: Path, count: int) -> list[str]:
    folder.mkdir()
    paths = [folder / f"s{i:02d}.mp4" for i in range(count)]
    for path in paths:
        shutil.copyfile(clip, path)
    return [str(p) for p in paths]


def record_path(root: Path, source: str) -> Path:
    return root / ".tasks" / f"{task_key(source, SPEC)}.json"


def report_lines(path: Path) -> dict[str, dict]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    by_source = {x["source"]: x for x in lines}
    assert len(by_source) == len(lines)  # one line per source
    return by_source


def recorded_sources(root: Path) -> set[str]:
    folder = root / ".tasks"
    return (
        {json.loads(p.read_text())["source"] for p in folder.iterdir()}
        if folder.exists()
        else set()
    )


def live_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies waiting for a parent to
    reap them do not)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            pids.append(int(entry))
    return pids


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_slow_batch(tmp_path: Path, sources: str, child_env: dict) -> subprocess.Popen:
    """The slow batch in a new session (its own process group, as a shell job has)."""
    (tmp_path / "slowbatch.py").write_text(textwrap.dedent(SLOW_BATCH))
    env = dict(child_env, PYTHONPATH=os.pathsep.join((str(tmp_path), child_env["PYTHONPATH"])))
    argv = [sys.executable, "-c", "import slowbatch; slowbatch.main()"]
    root, report = tmp_path / "root", tmp_path / "report.jsonl"
    return subprocess.Popen(
        [*argv, sources, SPEC, str(root), str(report)],
        env=env,
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )


def objects_written(root: Path) -> int:
    bucket = root / "bkt"
    return sum(len(files) for _, _, files in os.walk(bucket)) if bucket.exists() else 0


# -- resume records that are not files -----------------------------------------------------------


def plant(kind: str, path: Path, outside: Path) -> None:
    """A directory, a symbolic link to a record saying "done", or a FIFO at ``path``."""
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        outside.write_text(json.dumps({"state": "Succeeded", "source_stat": None}))
        path.symlink_to(outside)
    else:
        os.mkfifo(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo"])
def test_an_odd_record_never_stops_the_batch(clip, tmp_path, child_env, kind, workers) -> None:
    """A directory, a symbolic link or a FIFO where the first source's resume record lives:
    the batch neither aborts nor hangs; that source runs again with a note saying why, and the
    next one runs as usual. Records are never followed: the link's target is not read and
    stays as it was."""
    sources = copies(clip, tmp_path / "videos", 2)
    root, outside = tmp_path / "root", tmp_path / "outside.json"
    (root / ".tasks").mkdir(parents=True)
    odd = record_path(root, sources[0])
    plant(kind, odd, outside)
    before = outside.read_bytes() if kind == "symlink" else None
    report = tmp_path / "report.jsonl"
    argv = [*sources, SPEC, "--root", str(root), "--workers", workers, "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "ossframe_native.cli", "batch", *argv, "--report", str(report)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,  # reading a FIFO would block forever
    )
    assert done.returncode == 0, done.stderr
    assert "2 sources, 2 succeeded, 0 failed" in done.stderr
    lines = report_lines(report)
    assert sorted(lines) == sources
    for source, line in lines.items():
        name = Path(source).stem
        assert line["state"] == "Succeeded" and line["skipped"] is False
        assert [o["key"] for o in line["objects"]] == [f"{name}/1.jpg", f"{name}/2.jpg"]
    notes = lines[sources[0]]["notes"]
    assert notes[0].startswith("the recorded result could not be read, so the source ran again")
    assert lines[sources[1]]["notes"] == []
    # This run recorded its result: a link or a FIFO is replaced by the record file (never
    # written through); a directory cannot be, and the line says so.
    if kind == "directory":
        assert odd.is_dir() and "the result was not recorded" in notes[-1]
    else:
        assert odd.is_file() and not odd.is_symlink() and len(notes) == 1
        assert json.loads(odd.read_text())["state"] == "Succeeded"
    if before is not None:
        assert outside.read_bytes() == before


# -- a killed batch ------------------------------------------------------------------------------


def test_sigkill_of_the_batch_ends_its_workers(clip, tmp_path, child_env) -> None:
    """SIGKILL of the batch process (its workers get no signal): every process it started
    (pool workers, forkserver) is gone within the bound, instead of running the sources
    queued for the workers and then waiting for more forever."""
    sources = copies(clip, tmp_path / "videos", 12)
    batch = start_slow_batch(tmp_path, str(tmp_path / "videos" / "*.mp4"), child_env)
    root = tmp_path / "root"
    try:
        wait_until(lambda: objects_written(root) >= 1, 120, "the workers to write")
        assert len(live_group(batch.pid)) >= 3  # the batch, its forkserver, its workers
        batch.kill()
        assert batch.wait(timeout=30) == -signal.SIGKILL
        wait_until(lambda: not live_group(batch.pid), WORKERS_GONE_S, "the workers to end")
    finally:
        for pid in live_group(batch.pid):  # only if the test failed
            os.kill(pid, signal.SIGKILL)
    assert len(recorded_sources(root)) < len(sources)  # queued sources never ran


# -- an interrupted batch ------------------------------------------------------------------------


def test_ctrl_c_reports_every_source_recorded(clip, tmp_path, child_env) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while sources are in
    flight: the batch stops handing out sources, those being run finish, and the report lists
    exactly the sources this run recorded, each with all its objects."""
    sources = copies(clip, tmp_path / "videos", 12)
    batch = start_slow_batch(tmp_path, str(tmp_path / "videos" / "*.mp4"), child_env)
    root = tmp_path / "root"
    try:
        wait_until(lambda: objects_written(root) >= 3, 120, "the workers to write")
        os.killpg(batch.pid, signal.SIGINT)
        assert batch.wait(timeout=60) == 130
    finally:
        if batch.poll() is None:  # only if the test failed
            os.killpg(batch.pid, signal.SIGKILL)
    recorded = recorded_sources(root)
    lines = report_lines(tmp_path / "report.jsonl")
    assert set(lines) == recorded
    assert 2 <= len(recorded) < len(sources)  # in-flight sources finished; the rest never ran
    for source, line in lines.items():
        assert line["state"] == "Succeeded" and line["skipped"] is False
        assert [o["key"] for o in line["objects"]] == [
            f"{Path(source).stem}/{i}.jpg" for i in (1, 2)
        ]
    wait_until(lambda: not live_group(batch.pid), WORKERS_GONE_S, "the workers to end")
