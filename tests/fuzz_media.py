"""Seeded media fuzzing: mutated small clips through every capture entry point.

Small clips of several codecs and containers are generated (among them H.264 whose keyframes
are not IDR pictures: periodic intra refresh, open GOPs), then mutated (byte flips,
truncations, zeroed ranges, inserted or prepended garbage, duplicated chunks, keyframe flags
moved by a remux: P-frames flagged as keyframes, keyframes unflagged), and each mutant
is run through ``probe``, ``snapshot`` (exact and ``m=fast``), every ``snapshots`` mode and
``frames``. The only outcomes allowed are success, ``InvalidArgument`` and ``MediaError``; any
other exception, a signal or a timeout is a failure.

Mutants run in a worker subprocess that handles many of them in turn and reports each outcome
on stdout; the parent restarts it after a crash or a timeout, so one bad case does not hide the
rest. The test suite runs a short pass (``tests/test_fuzz_media.py``); a longer one is::

    python tests/fuzz_media.py --cases 5000 --seed 7

It prints one line per failing case (and keeps the mutant under ``--keep DIR`` if given) and
exits 1 when any case failed. ``--replay CASE`` (with the same ``--seed``) writes that one mutant
again, into ``--keep DIR`` or the current directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue

HERE = Path(__file__).resolve().parent
ALLOWED = ("ok", "InvalidArgument", "MediaError")

# (file name, make_clip keyword arguments): one seed clip per codec / container.
SEEDS = (
    ("h264.mp4", {"codec": "libx264", "gop": 4, "bframes": 2}),
    ("hevc.mkv", {"codec": "libx265", "container": "matroska", "gop": 4}),
    ("vp9.webm", {"codec": "libvpx-vp9", "gop": 4}),
    ("h264.ts", {"codec": "libx264", "container": "mpegts", "gop": 4}),
    ("mpeg2.mpg", {"codec": "mpeg2video", "container": "mpeg", "gop": 4}),
    ("mjpeg.avi", {"codec": "mjpeg", "container": "avi", "pix_fmt": "yuvj420p"}),
    ("mpeg4.mov", {"codec": "mpeg4", "container": "mov", "gop": 4}),
    # Keyframes that are not IDR pictures: recovery points of periodic intra refresh (one IDR
    # at the start), and the I-frames of open GOPs.
    (
        "h264_refresh.mkv",
        {"container": "matroska", "options": {"x264-params": "intra-refresh=1:keyint=4"}},
    ),
    (
        "h264_refresh.ts",
        {
            "container": "mpegts",
            "bframes": 2,
            "options": {"x264-params": "intra-refresh=1:keyint=4:bframes=2"},
        },
    ),
    ("h264_opengop.mp4", {"options": {"x264-params": "open-gop=1:keyint=4:bframes=2"}}),
)

# Seed suffix -> FFmpeg format, for mutants remuxed with moved keyframe flags.
_FORMATS = {
    ".mp4": "mp4",
    ".mkv": "matroska",
    ".webm": "webm",
    ".ts": "mpegts",
    ".mpg": "mpeg",
    ".avi": "avi",
    ".mov": "mov",
}


def make_seeds(directory: Path) -> list[Path]:
    """Writes the seed clips (12 frames of 96x64 at 10 fps) and returns their paths."""
    sys.path.insert(0, str(HERE))
    from media import make_clip

    paths = []
    for name, options in SEEDS:
        path = directory / name
        if not path.exists():
            make_clip(path, n_frames=12, fps=10, size=(96, 64), **options)
        paths.append(path)
    return paths


def mutate(data: bytes, rng: random.Random, name: str = "") -> tuple[bytes, str]:
    """One mutant of ``data`` (the seed file ``name``) and a short description of what was
    done."""
    n = len(data)
    kinds = ("flip", "truncate", "zero", "insert", "prepend", "duplicate", "multi", "rekey")
    kind = rng.choice(kinds)
    out = bytearray(data)
    if kind == "rekey":
        fmt = _FORMATS.get(Path(name).suffix)
        rekeyed = _rekeyed(data, rng, fmt) if fmt else None
        if rekeyed is not None:
            return rekeyed, kind
        kind = "flip"
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            out[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        out = out[: rng.randrange(1, n)]
    elif kind == "zero":
        start = rng.randrange(n)
        out[start : start + rng.randint(1, 512)] = bytes(min(512, n - start))[: len(out[start:])]
    elif kind == "insert":
        at = rng.randrange(n)
        out[at:at] = rng.randbytes(rng.randint(1, 4096))
    elif kind == "prepend":
        out[:0] = rng.randbytes(rng.randint(1, 8192))
    elif kind == "duplicate":
        start = rng.randrange(n)
        chunk = out[start : start + rng.randint(1, 2048)]
        at = rng.randrange(n)
        out[at:at] = chunk
    else:  # several small flips and a random byte value here and there
        for _ in range(rng.randint(2, 64)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out), kind


def _rekeyed(data: bytes, rng: random.Random, fmt: str) -> bytes | None:
    """``data``'s video remuxed into ``fmt`` with about a third of its packets' keyframe flags
    flipped (None where PyAV cannot remux it)."""
    import io

    import av

    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(data)) as inp, av.open(out, "w", format=fmt) as dst:
            src = inp.streams.video[0]
            stream = dst.add_stream_from_template(src)
            for packet in inp.demux(src):
                if packet.size:
                    if rng.random() < 0.3:
                        packet.is_keyframe = not packet.is_keyframe
                    packet.stream = stream
                    dst.mux(packet)
    except (av.FFmpegError, IndexError, ValueError):
        return None
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# The worker: runs every entry point on each path it is given and prints one JSON line per path.

OPERATIONS = (
    "probe",
    "snapshot",
    "snapshot_fast",
    "snapshot_late",
    "snapshots_default",
    "snapshots_avg",
    "snapshots_dhash",
    "snapshots_key",
    "frames",
)


def _run_operation(ofn, op: str, path: str) -> None:
    if op == "probe":
        ofn.probe(path)
    elif op == "snapshot":
        ofn.snapshot(path, t=500, f="png")
    elif op == "snapshot_fast":
        ofn.snapshot(path, t=700, m="fast")
    elif op == "snapshot_late":
        ofn.snapshot(path, t=2**53 - 1, f="jpg")
    elif op == "frames":
        for _ in ofn.frames(path, inter=200, w=32, h=32):
            pass
    else:
        mode = op.split("_", 1)[1]
        extra = {"num": 5} if mode == "avg" else {"thr": 10} if mode == "dhash" else {}
        for _ in ofn.snapshots(path, m=mode, f="jpg", **extra):
            pass


def _outcome(ofn, op: str, path: str) -> tuple[str, str]:
    try:
        _run_operation(ofn, op, path)
    except (ofn.InvalidArgument, ofn.MediaError) as exc:
        return type(exc).__name__, str(exc)[:200]
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        tail = traceback.format_exc().strip().splitlines()[-4:]
        return "bug", f"{type(exc).__name__}: {exc}"[:300] + " | " + " / ".join(tail)[:600]
    return "ok", ""


def worker() -> int:
    """Reads paths from stdin; for each prints ``{"path", "results": {op: [outcome, msg]}}``."""
    import ossframe_native as ofn

    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        print(json.dumps({"start": path}), flush=True)
        results = {op: _outcome(ofn, op, path) for op in OPERATIONS}
        print(json.dumps({"path": path, "results": results}), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------
# The parent: feeds mutants to workers, restarting one after a crash or a timeout.


@dataclass
class Failure:
    case: str
    what: str


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ, OSSFRAME_DECODE_THREADS="1")
        if (HERE.parent / "ossframe_native").is_dir():  # a source checkout: import it from there
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(HERE.parent), env.get("PYTHONPATH")])
            )
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: Queue[str | None] = Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):  # the pipe closed by stop()
            for line in self.proc.stdout:
                self.lines.put(line)
        self.lines.put(None)

    def run(self, path: str, timeout: float) -> dict | str:
        """The worker's result for ``path``, or ``"crash: ..."`` / ``"timeout"``."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(path + "\n")
            self.proc.stdin.flush()
        except OSError:
            return self._crashed()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                self.stop()
                return "timeout"
            if line is None:
                return self._crashed()
            message = json.loads(line)
            if message.get("path") == path:
                return message

    def _crashed(self) -> str:
        code = self.proc.wait()
        self.stop()
        return f"crash: exit status {code}" + (f" (signal {-code})" if code < 0 else "")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def replay(seed: int, case: int, directory: Path) -> Path:
    """Writes mutant number ``case`` of the run with ``seed`` into ``directory`` (to debug it)."""
    rng = random.Random(seed)
    seeds = [(p.name, p.read_bytes()) for p in make_seeds(directory)]
    for number in range(case + 1):
        name, data = seeds[number % len(seeds)]
        mutant, kind = mutate(data, rng, name)
    path = directory / f"case{case}-{kind}{Path(name).suffix}"
    path.write_bytes(mutant)
    return path


def run_cases(
    cases: int, seed: int, timeout: float = 60.0, keep: Path | None = None, log=print
) -> tuple[dict[str, dict[str, int]], list[Failure]]:
    """Runs ``cases`` mutants; returns outcome counts per operation and the failures."""
    rng = random.Random(seed)
    counts: dict[str, dict[str, int]] = {op: {} for op in OPERATIONS}
    failures: list[Failure] = []
    with tempfile.TemporaryDirectory(prefix="ossframe-fuzz-") as tmp:
        work = Path(tmp)
        seeds = [(p.name, p.read_bytes()) for p in make_seeds(work)]
        proc: _Worker | None = None
        try:
            for case in range(cases):
                name, data = seeds[case % len(seeds)]
                mutant, kind = mutate(data, rng, name)
                path = work / f"case{case}-{kind}{Path(name).suffix}"
                path.write_bytes(mutant)
                proc = proc or _Worker()
                result = proc.run(str(path), timeout)
                label = f"case {case} ({name}, {kind}, seed {seed})"
                if isinstance(result, str):
                    failures.append(Failure(label, result))
                    proc = None
                else:
                    for op, (outcome, message) in result["results"].items():
                        counts[op][outcome] = counts[op].get(outcome, 0) + 1
                        if outcome not in ALLOWED:
                            failures.append(Failure(label, f"{op}: {message}"))
                if failures and failures[-1].case == label:
                    log(f"FAIL {label}: {failures[-1].what}")
                    if keep is not None:
                        keep.mkdir(parents=True, exist_ok=True)
                        (keep / path.name).write_bytes(mutant)
                path.unlink()
        finally:
            if proc is not None:
                proc.stop()
    return counts, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200, help="mutants to run (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant")
    parser.add_argument("--keep", type=Path, help="copy failing mutants into this directory")
    parser.add_argument("--replay", type=int, metavar="CASE", help="only write that mutant")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker()
    if args.replay is not None:
        directory = args.keep or Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        print(replay(args.seed, args.replay, directory))
        return 0
    start = time.monotonic()
    counts, failures = run_cases(args.cases, args.seed, args.timeout, args.keep)
    print(json.dumps({"cases": args.cases, "seed": args.seed, "outcomes": counts}, indent=1))
    print(f"{len(failures)} failure(s) in {time.monotonic() - start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
