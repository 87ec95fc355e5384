"""The command line (docs/BEHAVIOUR.md, "Command line"): ``ossframe process`` /
``ossframe probe``, exit codes, one-line errors. Runs ``python -m ossframe_native.cli`` in a
subprocess with a timeout (a hang fails)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from media import ClipTruth, ceil_ms, decode_image, read_frame_number, reference_frames

TIMEOUT = 120


def ossframe(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ossframe_native.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, name: str) -> str:
    err = proc.stderr
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"stderr is not one line: {err!r}"
    assert lines[0].startswith(f"ossframe: {name}: "), lines[0]
    assert len(lines[0]) > len(f"ossframe: {name}: ") + 5
    return lines[0]


def test_process_one_output(clip_h264_b: ClipTruth, tmp_path: Path) -> None:
    out = tmp_path / "frame.png"
    proc = ossframe("process", clip_h264_b.path, "video/snapshot,t_1000,f_png", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png"]
    refs = reference_frames(clip_h264_b.path)
    assert np.array_equal(decode_image(out.read_bytes()), refs[30].rgb)


def test_process_several_outputs(clip_h264_b: ClipTruth, tmp_path: Path) -> None:
    out = tmp_path / "key.jpg"
    proc = ossframe("process", clip_h264_b.path, "video/snapshots,f_jpg,m_key", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key_1.jpg", "key_2.jpg", "key_3.jpg"]
    numbers = [
        read_frame_number(decode_image((tmp_path / f"key_{i}.jpg").read_bytes())) for i in (1, 2, 3)
    ]
    assert numbers == [0, 30, 60]


def test_process_dhash_with_every_option(clip_cuts: ClipTruth, tmp_path: Path) -> None:
    spec = "video/snapshots,f_png,m_dhash,thr_30,w_96,h_54,scaletype_crop"
    proc = ossframe("process", clip_cuts.path, spec, "-o", tmp_path / "cut.png")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"cut_{i}.png" for i in range(1, 7)]
    assert decode_image((tmp_path / "cut_1.png").read_bytes()).shape == (54, 96, 3)


def test_probe_json(clip_ts_offset: ClipTruth) -> None:
    proc = ossframe("probe", clip_ts_offset.path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in (
        "duration_ms",
        "fps",
        "width",
        "height",
        "rotation",
        "codec",
        "frames",
        "keyframes_ms",
        "cover_art",
        "start_ms",
    ):
        assert key in info, key
    assert (info["width"], info["height"]) == (192, 108)
    assert info["frames"] == 60
    assert info["codec"] == "h264"
    assert info["fps"] == pytest.approx(25)
    assert info["start_ms"] == pytest.approx(1400, abs=1)
    assert info["duration_ms"] == pytest.approx(2400, abs=41)
    assert info["keyframes_ms"] == [ceil_ms(clip_ts_offset.times[k]) for k in (0, 25, 50)]
    assert info["rotation"] == 0 and info["cover_art"] is False


def test_probe_rotation(clip_rot270: ClipTruth) -> None:
    proc = ossframe("probe", clip_rot270.path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["rotation"] == 270  # display matrix angle -90, counter-clockwise in 0..359
    assert (info["width"], info["height"]) == (192, 108)  # stored size


def test_probe_and_process_cover(audio_m4a_cover: Path, tmp_path: Path) -> None:
    proc = ossframe("probe", audio_m4a_cover)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["cover_art"] is True
    assert (info["width"], info["height"]) == (120, 90)
    out = tmp_path / "cover.png"
    proc = ossframe("process", audio_m4a_cover, "video/snapshots,f_png,m_avg,num_4", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cover.png"]
    assert read_frame_number(decode_image(out.read_bytes())) == 7


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ("video/snapshot,t_1.5,f_jpg", "t"),
        ("video/snapshot,t_0", "f"),
        ("video/snapshots,f_jpg,thr_101", "thr"),
        ("video/snapshots,f_jpg,m_avg", "num"),
        ("video/snapshot,f_jpg,bogus_1", "bogus"),
        ("video/snapshots,f_jpg,ss_3000", "ss"),  # clip_h264_b lasts 3000 ms
    ],
)
def test_invalid_argument_exit_2(clip_h264_b: ClipTruth, tmp_path: Path, spec, param) -> None:
    out = tmp_path / "x.jpg"
    proc = ossframe("process", clip_h264_b.path, spec, "-o", out)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = assert_one_line_error(proc, "InvalidArgument")
    assert param in line
    assert list(tmp_path.iterdir()) == [], "nothing may be written on error"


def test_invalid_argument_on_bad_media_is_still_2(random_file: Path, tmp_path: Path) -> None:
    """The process string is checked before the source is opened."""
    proc = ossframe("process", random_file, "video/snapshot,t_x,f_jpg", "-o", tmp_path / "a.jpg")
    assert proc.returncode == 2
    assert_one_line_error(proc, "InvalidArgument")


BAD = ("empty_file", "random_file", "truncated_file", "audio_plain", "audio_plain_mp3")


@pytest.mark.parametrize("name", BAD)
def test_media_error_exit_3(name: str, request, tmp_path: Path) -> None:
    path = request.getfixturevalue(name)
    out = tmp_path / "x.jpg"
    proc = ossframe("process", path, "video/snapshot,t_0,f_jpg", "-o", out)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert_one_line_error(proc, "MediaError")
    assert list(tmp_path.iterdir()) == []
    proc = ossframe("probe", path)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert_one_line_error(proc, "MediaError")
    assert proc.stdout == ""


def test_missing_source_exit_3(tmp_path: Path) -> None:
    proc = ossframe(
        "process", tmp_path / "nope.mp4", "video/snapshot,t_0,f_jpg", "-o", tmp_path / "x.jpg"
    )
    assert proc.returncode == 3
    assert "nope.mp4" in assert_one_line_error(proc, "MediaError")


def test_corrupt_middle_does_not_hang(corrupt_middle, tmp_path: Path) -> None:
    path, _, first_bad = corrupt_middle
    proc = ossframe("process", path, "video/snapshots,f_jpg", "-o", tmp_path / "f.jpg")
    assert proc.returncode in (0, 3), proc.stderr
    if proc.returncode == 3:
        assert_one_line_error(proc, "MediaError")
    else:
        assert len(list(tmp_path.iterdir())) >= first_bad


def test_other_error_exit_1(clip_h264_b: ClipTruth, tmp_path: Path) -> None:
    """An output path that cannot be written (a file stands where a directory should be)."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    proc = ossframe("process", clip_h264_b.path, "video/snapshot,f_jpg", "-o", blocker / "a.jpg")
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    line = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(line.splitlines()) == 1
    assert line.startswith("ossframe: ")


def test_usage_error_is_one_line(tmp_path: Path) -> None:
    proc = ossframe("frobnicate", "x")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("target", ["missing-dir/out.jpg", "."])
def test_unwritable_output_is_one_line_exit_1(child_env, sample_mp4, tmp_path, target) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ossframe_native.cli",
            "process",
            str(sample_mp4),
            "video/snapshot,t_0,f_jpg",
            "-o",
            str(tmp_path / target),
        ],
        capture_output=True,
        text=True,
        env=child_env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("ossframe: FrameError: cannot write")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# What process prints, --version, batch --help


def test_process_lists_what_it_wrote(clip_h264_b: ClipTruth, tmp_path: Path) -> None:
    out = tmp_path / "key.jpg"
    proc = ossframe("process", clip_h264_b.path, "video/snapshots,f_jpg,m_key", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(tmp_path / f"key_{i}.jpg") for i in (1, 2, 3)]
    proc = ossframe("process", clip_h264_b.path, "video/snapshots,f_jpg,m_key", "-o", out, "-q")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    proc = ossframe("process", clip_h264_b.path, "video/snapshots,f_jpg,m_key", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [(e["path"], e["index"], e["time_ms"]) for e in listed] == [
        (str(tmp_path / f"key_{i + 1}.jpg"), 30 * i, 1000 * i) for i in range(3)
    ]
    assert [e["bytes"] for e in listed] == [
        (tmp_path / f"key_{i}.jpg").stat().st_size for i in (1, 2, 3)
    ]


def test_version() -> None:
    import ossframe_native

    proc = ossframe("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ossframe {ossframe_native.__version__}"


def test_batch_help_shows_one_spec() -> None:
    proc = ossframe("batch", "--help")
    assert proc.returncode == 0, proc.stderr
    usage = " ".join(proc.stdout.split("\n\n")[0].split())
    assert "SOURCE [SOURCE ...] SPEC" in usage
    assert usage.count("SPEC") == 1


# --------------------------------------------------------------------------------------------
# -o: regular files, symlinks, devices, FIFOs, standard output

SNAP_1000 = "video/snapshot,t_1000,f_png"


def _is_frame_30(data: bytes) -> bool:
    return read_frame_number(decode_image(data)) == 30


def test_output_symlink_replaces_its_target(clip_h264_b: ClipTruth, tmp_path: Path) -> None:
    target = tmp_path / "real" / "frame.png"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(Path("real") / "frame.png")  # relative, as ln -s makes them
    proc = ossframe("process", clip_h264_b.path, SNAP_1000, "-o", link)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert _is_frame_30(target.read_bytes())
    assert sorted(p.name for p in target.parent.iterdir()) == ["frame.png"]  # no temp left


def test_output_fifo_is_written_into(clip_h264_b: ClipTruth, tmp_path: Path) -> None:
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    proc = ossframe("process", clip_h264_b.path, SNAP_1000, "-o", fifo)
    reader.join(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced"
    assert received and _is_frame_30(received[0])


def test_output_dev_full_is_a_write_error(clip_h264_b: ClipTruth) -> None:
    import errno
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    proc = ossframe("process", clip_h264_b.path, SNAP_1000, "-o", "/dev/full")
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    line = assert_one_line_error(proc, "FrameError")
    assert "/dev/full" in line and os.strerror(errno.ENOSPC) in line


def test_output_dev_null_stays_a_device(clip_h264_b: ClipTruth) -> None:
    import os
    import stat

    proc = ossframe("process", clip_h264_b.path, SNAP_1000, "-o", os.devnull)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_output_dash_is_stdout(clip_h264_b: ClipTruth, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ossframe_native.cli", "process", str(clip_h264_b.path)]
        + [SNAP_1000, "-o", "-"],
        capture_output=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert _is_frame_30(proc.stdout)
    assert list(tmp_path.iterdir()) == []
    proc = ossframe("process", clip_h264_b.path, "video/snapshots,f_png,m_key", "-o", "-")
    assert proc.returncode == 2
    assert "-o" in assert_one_line_error(proc, "InvalidArgument")
