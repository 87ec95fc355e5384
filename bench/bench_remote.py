"""What does one snapshot cost from a long recording, locally and over S3, against FFmpeg?

    python bench/bench_remote.py --runs 5      # writes bench/RESULTS_REMOTE.md
    python bench/bench_remote.py --quick   # 1 run, small media: bench/out/RESULTS_REMOTE-quick.md

Media (``bench/make_media.py``, made once into ``bench/media/remote/``): a 1-minute 1080p H.264
clip stream-copied 1 and 10 times (concat demuxer, ``-c copy``: a joined recording) into MKV
and MPEG-TS, and a variable-frame-rate clip (frames dropped irregularly) joined 10 times in
MKV. ``--quick`` uses a 6-s 640x360 clip instead (for checking the script, not for figures).

For each file, ``video/snapshot`` at T = 60 * (L // 2) + 37.3 s in an L-minute file (the same
picture of the clip in every length) beside ``ffmpeg -ss T -i SRC -frames:v 1``:

* **local**: ours in-process (``ofn.snapshot``, warm) and as a whole process (``ossframe
  process``), FFmpeg on the path. Bytes: ours from ``DecodeStats.bytes_read``, FFmpeg's from its
  own ``Statistics: N bytes read`` line (``-v debug``).
* **S3**: moto's S3 in server mode on 127.0.0.1 (``tests/remote_support.py``, which counts
  every request and every body byte it sends); ours on ``s3://bucket/key`` (AWS variables) and
  on a presigned URL, FFmpeg on the same presigned URL. Bytes and requests are the server's
  counts. moto reads the whole object for every ranged GET, so each request costs time in
  proportion to the object's size: fewer requests pay off more here than against a real store.

Every snapshot is verified before it is timed: ours over S3 must be byte-identical to ours on
the path, and the 10-minute file's to the 1-minute file's (the same picture). Times are medians
of ``--runs`` alternated runs. Targets (printed beside each figure): bytes read by a snapshot
<= 2x FFmpeg's + 8 MiB; over S3 <= 1.5x the local bytes + one read-ahead block, in <= FFmpeg's
requests on the presigned URL + 4, in <= 1.2x FFmpeg's time on it; the 10-minute joined file
<= 1.15x the 1-minute one (time and bytes).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(BENCH)]

import harness  # noqa: E402
import make_media  # noqa: E402
from remote_support import MotoServer  # noqa: E402

import ossframe_native as ofn  # noqa: E402
from ossframe_native import sources  # noqa: E402
from ossframe_native.pipeline import collect_stats  # noqa: E402

BUCKET = "bench-remote"
MIB = 1 << 20


@dataclass
class Case:
    """One file and the snapshot time in it."""

    name: str
    path: Path
    minutes: int
    t_ms: int
    rows: dict[str, dict[str, float]] = field(default_factory=dict)  # side -> figures
    notes: list[str] = field(default_factory=list)


def media(quick: bool) -> list[Case]:
    seconds, size = (6, "640x360") if quick else (60, "1920x1080")
    base = make_media.remote_base(seconds, size)
    vfr = make_media.remote_vfr_base(seconds, size)
    cases = []
    for label, clip, copies, ext in [
        ("joined MKV", base, 1, "mkv"),
        ("joined MKV", base, 10, "mkv"),
        ("joined TS", base, 1, "ts"),
        ("joined TS", base, 10, "ts"),
        ("VFR MKV", vfr, 10, "mkv"),
    ]:
        path = make_media.joined(clip, copies, ext)
        t_ms = seconds * 1000 * (copies // 2) + round(seconds * 1000 * 0.6217)  # 37.3 s of 60
        cases.append(Case(f"{label}, {copies} x {seconds} s", path, copies, t_ms))
    return cases


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ffmpeg_snapshot(src: str, t_ms: int, out: Path, debug: bool = False) -> str:
    """``ffmpeg -ss T -i SRC -frames:v 1 OUT``; returns its log (``debug``: with the I/O
    statistics)."""
    level = "debug" if debug else "error"
    argv = ["ffmpeg", "-nostdin", "-y", "-v", level, "-ss", f"{t_ms / 1000:.3f}", "-i", src]
    done = subprocess.run(
        [*argv, "-frames:v", "1", str(out)], capture_output=True, text=True, check=True
    )
    return done.stderr


def ffmpeg_bytes_read(log: str) -> int:
    """The input's ``Statistics: N bytes read`` line of an ``ffmpeg -v debug`` log."""
    found = re.findall(r"Statistics: (\d+) bytes read", log)
    return int(found[0]) if found else -1


def ours_cli(src: str, t_ms: int, out: Path, env: dict[str, str]) -> None:
    argv = [sys.executable, "-m", "ossframe_native.cli", "process", src]
    subprocess.run(
        [*argv, f"video/snapshot,t_{t_ms},f_jpg", "-o", str(out), "-q"], check=True, env=env
    )


def ours(src: object, t_ms: int) -> tuple[bytes, int, int]:
    """Our snapshot in-process: (jpg, bytes_read, requests)."""
    with collect_stats() as stats:
        image = ofn.snapshot(src, t=t_ms)
    return image.data, stats[0].bytes_read, stats[0].requests


def measure(case: Case, server: MotoServer, client, runs: int, work: Path) -> bytes:
    """Fills ``case.rows``; returns our local JPEG (for the length comparison)."""
    key = f"videos/{case.path.name}"
    client.upload_file(str(case.path), BUCKET, key)
    url = f"s3://{BUCKET}/{key}"
    signed = client.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = work / "out.jpg"

    local, local_bytes, _ = ours(case.path, case.t_ms)
    case.rows["ours, path"] = {"bytes": local_bytes, "requests": 0}
    case.rows["FFmpeg, path"] = {
        "bytes": ffmpeg_bytes_read(ffmpeg_snapshot(str(case.path), case.t_ms, out, debug=True)),
        "requests": 0,
    }
    for side, src in (("ours, s3://", url), ("ours, presigned URL", signed)):
        server.counts.reset()
        data, _, _ = ours(src, case.t_ms)
        if data != local:
            case.notes.append(f"{side}: NOT the same JPEG as on the path")
        requests, sent = server.counts.settled()
        case.rows[side] = {"bytes": sent, "requests": requests}
    server.counts.reset()
    ffmpeg_snapshot(signed, case.t_ms, out)
    requests, sent = server.counts.settled()
    case.rows["FFmpeg, presigned URL"] = {"bytes": sent, "requests": requests}

    timed: dict[str, Callable[[], object]] = {
        "ours, path": lambda: ours(case.path, case.t_ms),
        "FFmpeg, path": lambda: ffmpeg_snapshot(str(case.path), case.t_ms, out),
        "ours, s3://": lambda: ours(url, case.t_ms),
        "ours, presigned URL": lambda: ours(signed, case.t_ms),
        "FFmpeg, presigned URL": lambda: ffmpeg_snapshot(signed, case.t_ms, out),
    }
    for side, fn in timed.items():
        case.rows[side]["time"] = median_time(fn, runs)
    case.rows["ours, path"]["process"] = median_time(
        lambda: ours_cli(str(case.path), case.t_ms, out, env), runs
    )
    aws_env = {**env, **{k: v for k, v in os.environ.items() if k.startswith("AWS_")}}
    case.rows["ours, s3://"]["process"] = median_time(
        lambda: ours_cli(url, case.t_ms, out, aws_env), runs
    )
    client.delete_object(Bucket=BUCKET, Key=key)
    return local


def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def targets(case: Case) -> list[str]:
    """The per-file targets, each with its figures."""
    rows = case.rows
    ours_local, ff_local = rows["ours, path"], rows["FFmpeg, path"]
    s3, ff_url = rows["ours, s3://"], rows["FFmpeg, presigned URL"]
    bound = 2 * ff_local["bytes"] + 8 * MIB
    s3_bound = 1.5 * ours_local["bytes"] + sources.MAX_BLOCK
    return [
        f"bytes (path) {ours_local['bytes'] / MIB:.2f} MiB <= 2x FFmpeg's "
        f"{ff_local['bytes'] / MIB:.2f} + 8 = {bound / MIB:.2f} MiB: "
        + verdict(ours_local["bytes"] <= bound),
        f"bytes (S3) {s3['bytes'] / MIB:.2f} MiB <= 1.5x local + one block = "
        f"{s3_bound / MIB:.2f} MiB: " + verdict(s3["bytes"] <= s3_bound),
        f"requests (S3) {s3['requests']} <= FFmpeg's {ff_url['requests']} + 4: "
        + verdict(s3["requests"] <= ff_url["requests"] + 4),
        f"time (S3, in-process) {s3['time']:.3f} s <= 1.2x FFmpeg's {ff_url['time']:.3f} s: "
        + verdict(s3["time"] <= 1.2 * ff_url["time"]),
    ]


def length_targets(cases: list[Case]) -> list[str]:
    """10 copies against 1 copy of the same clip and container (time and bytes)."""
    lines = []
    for short in cases:
        long = next(
            (
                c
                for c in cases
                if c.minutes == 10 and c.name.split(",")[0] == short.name.split(",")[0]
            ),
            None,
        )
        if short.minutes != 1 or long is None:
            continue
        for what in ("time", "bytes"):
            a, b = short.rows["ours, path"][what], long.rows["ours, path"][what]
            lines.append(
                f"* {long.name} vs {short.name}, {what}: {b:.4g} vs {a:.4g} "
                f"({b / a:.2f}x) <= 1.15x: " + verdict(b <= 1.15 * a)
            )
    return lines


def report(cases: list[Case]) -> str:
    lines = [
        f"* read-ahead: first block {sources.FIRST_BLOCK // 1024} KiB, doubling to "
        f"{sources.MAX_BLOCK // MIB} MiB",
        "",
        "Times are medians of alternated runs (in-process for `time`; `process`: a whole "
        "`ossframe process` run, imports included). Bytes: ours on a path = what the demuxer "
        "read; FFmpeg on a path = its own I/O statistics; over S3 = body bytes the S3 server "
        "sent, requests = requests it received.",
        "",
    ]
    for case in cases:
        size = case.path.stat().st_size / MIB
        lines += [
            f"## {case.name}: {case.path.name} ({size:.0f} MiB), t = {case.t_ms} ms",
            "",
            "| side | time (s) | process (s) | bytes (MiB) | requests |",
            "|---|---|---|---|---|",
        ]
        for side, row in case.rows.items():
            process = f"{row['process']:.3f}" if "process" in row else "—"
            lines.append(
                f"| {side} | {row['time']:.3f} | {process} | {row['bytes'] / MIB:.2f} | "
                f"{row['requests']} |"
            )
        lines += ["", *[f"* {t}" for t in targets(case)], *[f"* {n}" for n in case.notes], ""]
    lines += ["## Length", "", *length_targets(cases), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small media, one run")
    harness.add_results_flags(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    out = BENCH / "out" / "RESULTS_REMOTE-quick.md" if args.quick else BENCH / "RESULTS_REMOTE.md"
    results = harness.Results(
        out, allow_dirty=args.allow_dirty, uses=("ffmpeg", "boto3", "moto", "s3fs", "urllib3")
    )
    cases = media(args.quick)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    os.environ.pop("AWS_PROFILE", None)
    import boto3

    with MotoServer() as server, tempfile.TemporaryDirectory() as work:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        jpgs = {}
        for case in cases:
            print(f"bench_remote: {case.name} ...", file=sys.stderr)
            jpgs[case.name] = measure(case, server, client, args.runs, Path(work))
    for case in cases:  # the same picture in every length
        first = next(c for c in cases if c.name.split(",")[0] == case.name.split(",")[0])
        if jpgs[case.name] != jpgs[first.name]:
            case.notes.append(f"NOT the same JPEG as in {first.name}")
    title = "Remote sources: one snapshot from a long recording, local and over S3"
    results.write(title, report(cases))
    print(f"bench_remote: wrote {out.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
