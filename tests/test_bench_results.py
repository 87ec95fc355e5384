"""The results writer of the benchmarks (``bench/harness.py``'s ``Results``): it refuses a checkout
with uncommitted changes unless allowed, stamps what it says (commit, dates, machine, load,
versions), and ``bench/SUMMARY.md`` cites each results file by the stamp it really has. No
benchmark runs here: the writer works on a small git checkout made in a temporary folder."""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


@pytest.fixture(scope="module")
def harness():
    """bench/harness.py, with bench/ on sys.path only while it loads (bench/profile.py would
    shadow the standard library's profile module for the rest of the session)."""
    saved = list(sys.path)
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("harness")
    finally:
        sys.path[:] = saved


def git(root: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=root, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A committed checkout: engine code, a results file and its summary."""
    (tmp_path / "ossframe_native").mkdir()
    (tmp_path / "ossframe_native" / "engine.py").write_text("SPEED = 1\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "RESULTS_X.md").write_text("old figures\n")
    (tmp_path / "bench" / "SUMMARY.md").write_text("what they mean\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "engine")
    return tmp_path


def results_file(harness, root: Path, **options):
    return harness.Results(
        root / "bench" / "RESULTS_X.md", command="python bench/bench_x.py", root=root, **options
    )


def test_a_dirty_checkout_is_refused_before_the_run(harness, checkout: Path) -> None:
    (checkout / "ossframe_native" / "engine.py").write_text("SPEED = 2\n")
    with pytest.raises(
        harness.DirtyTree, match=r"(?s)uncommitted changes.*engine\.py.*--allow-dirty"
    ):
        results_file(harness, checkout)
    assert (checkout / "bench" / "RESULTS_X.md").read_text() == "old figures\n"


def test_an_untracked_file_makes_the_checkout_dirty(harness, checkout: Path) -> None:
    (checkout / "ossframe_native" / "new_module.py").write_text("")
    assert harness.tree_state(checkout).commit.endswith("-dirty")
    with pytest.raises(harness.DirtyTree, match=r"new_module\.py"):
        results_file(harness, checkout)


def test_a_change_during_the_run_is_refused_at_the_write(harness, checkout: Path) -> None:
    results = results_file(harness, checkout)
    (checkout / "ossframe_native" / "engine.py").write_text("SPEED = 3\n")
    with pytest.raises(harness.DirtyTree, match="at the end"):
        results.write("X", "new figures")
    assert (checkout / "bench" / "RESULTS_X.md").read_text() == "old figures\n"


def test_results_and_their_summary_do_not_make_the_checkout_dirty(harness, checkout) -> None:
    (checkout / "bench" / "RESULTS_X.md").write_text("figures of another run\n")
    (checkout / "bench" / "RESULTS_Y.md").write_text("a new question\n")
    (checkout / "bench" / "SUMMARY.md").write_text("new commentary\n")
    (checkout / "bench" / "plot.png").write_bytes(b"\x89PNG")
    state = harness.tree_state(checkout)
    assert state.clean and state.changes == []
    assert state.commit == git(checkout, "describe", "--always")


def test_allowed_dirty_results_say_dirty(harness, checkout: Path) -> None:
    (checkout / "ossframe_native" / "engine.py").write_text("SPEED = 2\n")
    path = results_file(harness, checkout, allow_dirty=True).write("X", "figures")
    stamp = harness.read_stamp(path)
    assert stamp["commit"] == f"`{git(checkout, 'describe', '--always', '--dirty')}`"
    assert stamp["commit"].endswith("-dirty`")


def test_the_stamp_says_what_was_measured_and_where(harness, checkout: Path) -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    results = results_file(harness, checkout, uses=("ffmpeg", "pytest", "no-such-dist"))
    path = results.write("Question X", "| figure |\n|---|\n| 1.0 s |\n")
    after = datetime.datetime.now(datetime.timezone.utc)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Question X\n\nWritten by `python bench/bench_x.py`")
    assert text.endswith("\n\n| figure |\n|---|\n| 1.0 s |\n")

    stamp = harness.read_stamp(path)
    assert stamp["command"] == "python bench/bench_x.py"
    assert stamp["commit"] == f"`{git(checkout, 'rev-parse', '--short', 'HEAD')}`"
    start, end = re.fullmatch(r"(\S+) to (\S+) \(\d+\.\d min\)", stamp["date"]).groups()
    for moment in (start, end):
        assert before <= datetime.datetime.fromisoformat(moment.replace("Z", "+00:00")) <= after
    machine = stamp["machine"]
    assert f"{os.cpu_count()} logical CPUs ({len(os.sched_getaffinity(0))} usable here)" in machine
    assert platform.platform() in machine and "GPU: " in machine
    load = r"\d+\.\d\d, \d+\.\d\d, \d+\.\d\d"
    assert re.fullmatch(
        f"{load} at the start; {load} at the end", stamp["load average (1, 5, 15 min)"]
    )
    versions = stamp["versions"]
    for expected in (
        f"Python {platform.python_version()}",
        f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})",
        f"NumPy {np.__version__}",
        f"OpenCV {cv2.__version__}",
        f"pytest {pytest.__version__}",
        "no-such-dist not installed",
    ):
        assert expected in versions, versions
    if "torch" in sys.modules:
        torch = f"torch {sys.modules['torch'].__version__}"
    else:
        try:
            torch = f"torch {importlib.metadata.version('torch')}"
        except importlib.metadata.PackageNotFoundError:
            torch = "torch not installed"
    assert torch in versions, versions
    cli = harness.ffmpeg_cli_version()
    assert f"ffmpeg CLI {cli}" in versions
    if shutil.which("ffmpeg"):
        assert cli in subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout


def test_a_copy_without_git_is_described_by_the_commit_given(harness, tmp_path, monkeypatch):
    monkeypatch.delenv("OSSFRAME_COMMIT", raising=False)
    assert harness.tree_state(tmp_path).commit == "unknown"
    with pytest.raises(harness.DirtyTree, match="no git checkout and no OSSFRAME_COMMIT"):
        results_file(harness, tmp_path)
    monkeypatch.setenv("OSSFRAME_COMMIT", "46a7092")
    path = results_file(harness, tmp_path).write("X", "figures")
    assert harness.read_stamp(path)["commit"] == "`46a7092`"
    monkeypatch.setenv("OSSFRAME_COMMIT", "46a7092-dirty")
    with pytest.raises(harness.DirtyTree):
        results_file(harness, tmp_path)


def test_the_summary_cites_each_results_file_by_its_stamp(harness) -> None:
    """Each bench/RESULTS*.md has a row in bench/SUMMARY.md's table; a stamped file is cited by
    its commit and start date, an unstamped one is called "not stamped"."""
    summary = (BENCH / "SUMMARY.md").read_text(encoding="utf-8")
    rows = {}
    for line in summary.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.search(r"RESULTS[\w-]*\.md", cells[0]) if line.startswith("|") else None
        if name:
            rows[name.group()] = cells[-1]
    files = sorted(path.name for path in BENCH.glob("RESULTS*.md"))
    assert sorted(set(files) - set(rows)) == [], "results files the summary does not cite"
    for name, cited in rows.items():
        path = BENCH / name
        stamp = harness.read_stamp(path) if path.exists() else None
        if not path.exists():
            assert cited.startswith("no file"), (name, cited)
        elif stamp is None:
            assert cited.startswith("not stamped"), (name, cited)
        else:
            commit = re.match(r"`[^`]+`", stamp["commit"]).group()
            assert cited == f"{commit}, {stamp['date'][:10]}", (name, cited)
