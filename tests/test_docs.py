"""The documentation stands on its own: its examples run as written on the shipped sample clip,
it names every exit status, and no shipped file points outside the repository."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SAMPLE = ROOT / "examples" / "sample.mp4"

# References a user of the repository or the package does not have. The patterns are written so
# that this file does not match them itself.
FOREIGN = re.compile(r"\.\./shared|SPEC ?§|SPEC\.md|[Ii]ssue [0-9]+|STYLE (habit|\.md)|/wor[k]/")
# Folders that are not shipped when the tree is walked (no git checkout, e.g. an unpacked sdist).
UNSHIPPED = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}
UNSHIPPED_PATHS = {"bench/media", "bench/out"}


def blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in a Markdown text, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def shipped_files() -> list[Path]:
    """Files of the repository (``git ls-files``), or of the unpacked tree without a checkout."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name]
    found = []
    for folder, dirs, files in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT)
        dirs[:] = [
            d
            for d in dirs
            if d not in UNSHIPPED
            and not d.endswith(".egg-info")
            and (rel / d).as_posix() not in UNSHIPPED_PATHS
        ]
        found += [Path(folder) / name for name in files]
    return found


def test_readme_python_runs_as_written_on_the_sample(tmp_path, monkeypatch, capsys) -> None:
    """Every python block of the README runs unchanged, from a folder holding the sample."""
    (tmp_path / "examples").mkdir()
    shutil.copy(SAMPLE, tmp_path / "examples" / "sample.mp4")
    monkeypatch.chdir(tmp_path)
    # The service example needs a running server: tests/test_server_sdk.py runs it against one.
    code = [b for b in blocks(README.read_text(encoding="utf-8"), "python") if "oss2" not in b]
    assert code, "the README has no python block"
    for block in code:
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.splitlines()
    # The first lines promise: 320x180 (640x360 halved), the frame shown at 3.5 s is at 3.48 s.
    assert printed[0] == "320 180 3480"
    assert printed[1] == "0 100.0"  # the first dhash candidate scores 100


def test_behaviour_python_runs_and_prints_what_its_comments_say(
    tmp_path, monkeypatch, capsys
) -> None:
    """Every python block of docs/BEHAVIOUR.md runs unchanged from a folder holding the sample,
    and each ``print(...)  # text`` line prints its comment's text."""
    (tmp_path / "examples").mkdir()
    shutil.copy(SAMPLE, tmp_path / "examples" / "sample.mp4")
    monkeypatch.chdir(tmp_path)
    code = blocks((ROOT / "docs" / "BEHAVIOUR.md").read_text(encoding="utf-8"), "python")
    assert code, "docs/BEHAVIOUR.md has no python block"
    promised = []
    for block in code:
        exec(compile(block, "docs/BEHAVIOUR.md", "exec"), {"__name__": "__behaviour__"})
        promised += re.findall(r"^\s*print\(.*\)\s+# (.+)$", block, flags=re.M)
    assert promised and capsys.readouterr().out.splitlines() == promised


def test_readme_first_command_writes_outside_the_repository() -> None:
    """The install-and-capture command leaves no untracked file in a checkout."""
    first = blocks(README.read_text(encoding="utf-8"), "bash")[0]
    words = shlex.split(first)
    assert words[:3] == ["pip", "install", "."], first
    output = Path(words[words.index("-o") + 1])
    assert output.is_absolute() and ROOT not in output.parents, output


def test_readme_test_command_is_what_ci_runs() -> None:
    """CI (.ci/run) takes the README's second bash block as its test command; it installs every
    extra whose packages the tests use, torch included, so a contributor runs what CI runs."""
    second = blocks(README.read_text(encoding="utf-8"), "bash")[1].strip()
    assert second.startswith("pip install -e '.[test") and second.endswith("&& pytest"), second
    extras = set(re.search(r"\.\[([\w,-]+)\]", second).group(1).split(","))
    assert {"test", "server", "ray", "torch"} <= extras, second
    ci = ROOT / ".ci" / "run"
    if ci.exists():  # not shipped in the sdist
        assert "README's test command" in ci.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("doc", "start", "end"),
    [
        ("README.md", "Exit status:", "\n\n"),
        ("docs/BEHAVIOUR.md", "## Errors and exit codes", "\n## "),
    ],
)
def test_exit_status_list_names_every_status(doc, start, end) -> None:
    """The docs name each status the command line can return."""
    from ossframe_native.errors import EXIT_STATUS

    text = (ROOT / doc).read_text(encoding="utf-8")
    section = text[text.index(start) :]
    section = section[: section.index(end, len(start))]
    named = {int(n) for n in re.findall(r"(?<![\w.])(\d{1,3})(?![\w.])", section)}
    must = {0, 1, 130} | set(EXIT_STATUS.values())  # success, anything else, Ctrl-C, by error
    assert must <= named, f"{doc} does not name exit status {sorted(must - named)}"


def test_behaviour_reference_has_the_linked_sections() -> None:
    """Code and docs link to these headings of docs/BEHAVIOUR.md by name."""
    text = (ROOT / "docs" / "BEHAVIOUR.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (.+)$", text, flags=re.M))
    wanted = {
        "Which frame",
        "Intervals and modes",
        "Sizes and geometry",
        "Formats",
        "Saving and naming",
        "Notify",
        "Errors and exit codes",
        "Command line",
        "Limits",
    }
    assert wanted <= headings, sorted(wanted - headings)


def test_markdown_links_stay_inside_the_repository() -> None:
    """Every relative link of a shipped Markdown file names a shipped file."""
    files = set(shipped_files())
    for doc in (f for f in files if f.suffix == ".md"):
        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path = (doc.parent / target).resolve()
            assert ROOT in path.parents and (path in files or path.is_dir()), f"{doc}: {target}"


def test_no_shipped_file_cites_what_users_do_not_have() -> None:
    """No shipped file points at paths outside the repository or at internal guides."""
    offenders = []
    for path in shipped_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(".ci/") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary: the sample clip
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if FOREIGN.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


def test_version_is_written_once() -> None:
    """The installed distribution's version is ``ossframe_native.__version__``."""
    import ossframe_native

    try:
        installed = importlib.metadata.version("ossframe_native")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("ossframe_native is not installed (run from a checkout on PYTHONPATH)")
    assert installed == ossframe_native.__version__
