"""How fast is ``ossframe serve`` through the official SDK, against the alternatives?

    python bench/bench_server.py --runs 15        # writes bench/RESULTS_SERVER.md

Four questions, each verified before it is timed (outputs compared byte for byte with the
in-process engine, whose frame choice bench/run.py checks against reference renderings):

1. Processed GET ``video/snapshot,t_37300,f_jpg,w_800,h_600`` on the 1080p clip through ``oss2``
   on a kept-alive connection, vs the FFmpeg CLI for the same frame and vs in-process
   ``ofn.snapshot``. Targets: >= 1.5x faster than FFmpeg, within 1.1x of in-process.
2. Goodput of processed GETs at 1, 8, 32 and 64 concurrent ``oss2`` clients (each on its own
   kept-alive connection; a ``503 SlowDown`` is counted, not retried): answered requests per
   second, refusals, p50 / p99 latency. Targets: 8 clients >= 1.6x one client on 2 cores, and
   under overload (32 and 64 clients) goodput >= 80 % of the peak.
3. A 1 GiB file moved each way, CRC-64 checks on, by every call a user would pick: oss2's
   ``put_object_from_file`` / ``get_object_to_file``, ``resumable_upload`` /
   ``resumable_download`` (what oss2 recommends for large files), and the V2 SDK's uploader /
   downloader: MB/s (targets: PUT >= 200, GET >= 400), the server's and the client's CPU per
   MiB (what bounds each side whatever else shares the machine) and the server's peak RSS
   (target < 300 MB), sampled every 50 ms.
4. ``POST ?x-oss-async-process`` of the interval task (``video/snapshots,f_jpg,inter_10000,
   w_800,h_600`` + saveas + notify) until its notify line appears, vs ``ofn.process`` of the same
   spec in-process. Target: within 1.1x.

The server is a real ``ossframe serve`` process on 127.0.0.1 (started here, stopped at the end);
the media comes from bench/make_media.py.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import oss2  # noqa: E402
from harness import Results, add_results_flags  # noqa: E402
from server_support import AK, SK, start_server  # noqa: E402

import ossframe_native as ofn  # noqa: E402

MAIN = BENCH / "media" / "main_1080p_h264.mp4"
OUT = BENCH / "out" / "server"
SPEC = "video/snapshot,t_37300,f_jpg,w_800,h_600"
INTERVAL = "video/snapshots,f_jpg,inter_10000,w_800,h_600"
BUCKET = "bench"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def wall(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Every case ``runs`` times, the order rotated each repetition."""
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(runs):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(wall(cases[name]))
    return times


def med(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Peak RSS of a process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ffmpeg_snapshot(out: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-ss", "37.3", "-i",
         str(MAIN), "-frames:v", "1", "-s", "800x600", "-q:v", "2", str(out)],
        check=True,
    )  # fmt: skip


def q_latency(bucket: oss2.Bucket, runs: int, lines: list[str]) -> None:
    expected = ofn.snapshot(str(MAIN), t=37300, f="jpg", w=800, h=600).data
    served = bucket.get_object(BUCKET_KEY, process=SPEC).read()
    assert served == expected, "the service's image differs from the in-process engine's"
    out = OUT / "ffmpeg.jpg"
    cases = {
        "service (oss2)": lambda: bucket.get_object(BUCKET_KEY, process=SPEC).read(),
        "in-process ofn.snapshot": lambda: ofn.snapshot(str(MAIN), t=37300, f="jpg", w=800, h=600),
        "ffmpeg CLI": lambda: ffmpeg_snapshot(out),
    }
    times = alternate(cases, runs)
    svc, inproc, ff = (med(times[n]) for n in cases)
    lines += [
        "### 1. Processed GET latency (`" + SPEC + "`, 1080p H.264)",
        "",
        "| side | median | min–max |",
        "|---|---|---|",
        *(f"| {n} | {ms(med(v))} | {ms(min(v))}–{ms(max(v))} |" for n, v in times.items()),
        "",
        f"* FFmpeg CLI / service = **{ff / svc:.2f}x** (target >= 1.5x): "
        f"{'met' if ff / svc >= 1.5 else 'not met'}",
        f"* service / in-process = **{svc / inproc:.2f}x** (target <= 1.1x): "
        f"{'met' if svc / inproc <= 1.1 else 'not met'}",
        "",
    ]


def q_concurrency(endpoint: str, per_client: int, lines: list[str]) -> None:
    def client_run(latencies: list[float], refused: list[int], n: int) -> None:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), endpoint, BUCKET)
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                bucket.get_object(BUCKET_KEY, process=SPEC).read()
            except oss2.exceptions.ServerError as exc:
                if exc.status != 503:
                    raise
                refused.append(1)
                continue
            latencies.append(time.perf_counter() - t0)

    results = {}
    for clients in (1, 8, 32, 64):
        latencies: list[float] = []
        refused: list[int] = []
        threads = [
            threading.Thread(target=client_run, args=(latencies, refused, per_client))
            for _ in range(clients)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        assert latencies, f"{clients} clients: every request was refused"
        results[clients] = (len(latencies) / elapsed, len(refused), med(latencies), p99(latencies))
    ratio = results[8][0] / results[1][0]
    peak = max(r[0] for r in results.values())
    worst = min(results[c][0] for c in (32, 64)) / peak
    lines += [
        f"### 2. Goodput of processed GETs (each client {per_client} requests, own kept-alive "
        "connection; 503 counted, not retried)",
        "",
        "| clients | answered/s | refused (503) | p50 latency | p99 latency |",
        "|---|---|---|---|---|",
        *(f"| {c} | {r[0]:.2f} | {r[1]} | {ms(r[2])} | {ms(r[3])} |" for c, r in results.items()),
        "",
        f"* 8 clients / 1 client = **{ratio:.2f}x** (target >= 1.6x on 2 cores): "
        f"{'met' if ratio >= 1.6 else 'not met'}",
        f"* overload (32, 64 clients) / peak goodput = **{worst:.0%}** (target >= 80 %): "
        f"{'met' if worst >= 0.8 else 'not met'}",
        "",
    ]


def client_cpu_s() -> float:
    """User + system CPU seconds of this process (the client side of the transfers)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def crcmod_mbs() -> float:
    """MB/s of the CRC-64 both SDKs compute (crcmod's C extension), alone, on one core."""
    data = os.urandom(64 << 20)
    crc = oss2.utils.Crc64(0)
    t0 = time.process_time()
    crc.update(data)
    return len(data) / (time.process_time() - t0) / 1e6


def transfers(endpoint: str, src: Path, dst: Path, work: Path) -> list[tuple[str, str, Callable]]:
    """(direction, how, call) for the ways a user moves a 1 GiB file, CRC-64 checks on."""
    import alibabacloud_oss_v2 as oss
    from server_support import v2_client

    crc = oss2.Bucket(oss2.Auth(AK, SK), endpoint, BUCKET, enable_crc=True)
    v2 = v2_client(endpoint)
    up, down = oss2.ResumableStore(root=str(work)), oss2.ResumableDownloadStore(root=str(work))
    put_request, get_request = (
        oss.PutObjectRequest(bucket=BUCKET, key="big.bin"),
        oss.GetObjectRequest(bucket=BUCKET, key="big.bin"),
    )
    return [
        ("PUT", "oss2 `put_object_from_file`",
         lambda: crc.put_object_from_file("big.bin", str(src))),
        ("PUT", "oss2 `resumable_upload` (multipart, 10 MiB parts, 1 thread)",
         lambda: oss2.resumable_upload(crc, "big.bin", str(src), store=up)),
        ("PUT", "V2 SDK `uploader().upload_file` (multipart, 6 MiB parts, 3 threads)",
         lambda: v2.uploader().upload_file(put_request, str(src))),
        ("GET", "oss2 `get_object_to_file`",
         lambda: crc.get_object_to_file("big.bin", str(dst))),
        ("GET", "oss2 `resumable_download` (10 MiB ranges, 4 threads)",
         lambda: oss2.resumable_download(crc, "big.bin", str(dst), store=down)),
        ("GET", "V2 SDK `downloader().download_file` (6 MiB ranges, 3 threads)",
         lambda: v2.downloader().download_file(get_request, str(dst))),
    ]  # fmt: skip


def file_crc64(path: Path) -> str:
    from ossframe_native.server.objects import Crc64

    crc = Crc64()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            crc.update(chunk)
    return str(crc.value)


def q_bulk(bucket: oss2.Bucket, pid: int, size_mb: int, lines: list[str]) -> None:
    src, dst = OUT / "big.bin", OUT / "got.bin"
    if not src.exists() or src.stat().st_size != size_mb << 20:
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for i in range(size_mb):
                f.write(block[: (1 << 20) - 8] + i.to_bytes(8, "little"))
    size, expected = src.stat().st_size, file_crc64(src)
    mib = size / (1 << 20)
    rows, best = [], {"PUT": 0.0, "GET": 0.0}
    peak = 0.0
    with tempfile.TemporaryDirectory(dir=OUT) as work:
        for direction, how, call in transfers(bucket.endpoint, src, dst, Path(work)):
            server0, client0 = cpu_s(pid), client_cpu_s()
            with RssSampler(pid) as rss:
                seconds = wall(call)
            server, client = cpu_s(pid) - server0, client_cpu_s() - client0
            stored = bucket.head_object("big.bin").headers["x-oss-hash-crc64ecma"]
            assert stored == expected, f"{how}: the stored object differs from the file"
            if direction == "GET":
                assert file_crc64(dst) == expected, f"{how}: the downloaded file differs"
                dst.unlink()
            mbs = size / seconds / 1e6
            best[direction] = max(best[direction], mbs)
            peak = max(peak, rss.peak)
            rows.append(
                f"| {direction} | {how} | {seconds:.2f} s | **{mbs:.0f} MB/s** "
                f"| {server / mib * 1000:.2f} ms | {client / mib * 1000:.2f} ms "
                f"| {mib / client * 1.048576:.0f} MB/s | {rss.peak:.0f} MB |"
            )
    bucket.delete_object("big.bin")
    lines += [
        f"### 3. Moving a {size_mb} MiB file with the SDKs' CRC-64 checks on (loopback)",
        "",
        "Each call verified: the stored object's CRC-64 equals the file's, and a downloaded file's "
        "equals the object's (the SDKs check it too). CPU per MiB counts every thread: the "
        "server's (HTTP parsing, MD5 for the ETag, CRC-64, disk writes) and this process, the "
        "client's (its CRC-64, HTTP, file reads and writes). The client alone could go no faster "
        "than its ceiling, 1 / its CPU per MiB, on a core of its own.",
        "",
        "| direction | call | time | throughput | server CPU per MiB | client CPU per MiB "
        "| client ceiling | server peak RSS |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"* CRC-64 as both SDKs compute it (crcmod), alone on one core: {crcmod_mbs():.0f} MB/s; "
        "the SDKs hold Python's lock while they compute it, so their threads do not add up.",
        f"* targets, best call each way: PUT >= 200 MB/s: "
        f"{'met' if best['PUT'] >= 200 else 'not met'} ({best['PUT']:.0f}), GET >= 400 MB/s: "
        f"{'met' if best['GET'] >= 400 else 'not met'} ({best['GET']:.0f}); server RSS < 300 MB: "
        f"{'met' if peak < 300 else 'not met'} ({peak:.0f} MB)",
        "",
    ]


def q_async(bucket: oss2.Bucket, root: Path, runs: int, lines: list[str]) -> None:
    notify = root / ".notify" / "bench.jsonl"

    saveas = f"|sys/saveas,b_{b64(BUCKET)},o_{b64('iv/{index}.jpg')}"
    spec = f"{INTERVAL}{saveas}/notify,topic_{b64('bench')}"

    def via_service() -> None:
        result = bucket.async_process_object(BUCKET_KEY, spec)
        while True:
            if notify.exists() and result.event_id in notify.read_text():
                return
            time.sleep(0.005)

    store = tempfile.mkdtemp(prefix="bench-inproc-", dir=OUT)
    spec_local = f"{INTERVAL}{saveas}"

    def in_process() -> None:
        ofn.process(str(MAIN), spec_local, store=ofn.LocalStore(store))

    via_service()  # warm: the worker process imports the engine on its first task
    in_process()
    served = sorted(p.name for p in (root / BUCKET / "iv").iterdir())
    local = sorted(p.name for p in (Path(store) / BUCKET / "iv").iterdir())
    assert served == local
    for name in served:
        assert (root / BUCKET / "iv" / name).read_bytes() == (
            Path(store) / BUCKET / "iv" / name
        ).read_bytes()
    times = alternate(
        {"service submit→notify": via_service, "in-process ofn.process": in_process}, runs
    )
    svc, inproc = med(times["service submit→notify"]), med(times["in-process ofn.process"])
    lines += [
        "### 4. Asynchronous interval task (`" + INTERVAL + "` + saveas + notify)",
        "",
        "| side | median | min–max |",
        "|---|---|---|",
        *(f"| {n} | {ms(med(v))} | {ms(min(v))}–{ms(max(v))} |" for n, v in times.items()),
        "",
        f"* service / in-process = **{svc / inproc:.2f}x** (target <= 1.1x): "
        f"{'met' if svc / inproc <= 1.1 else 'not met'}",
        "",
    ]
    shutil.rmtree(store, ignore_errors=True)


BUCKET_KEY = "main_1080p_h264.mp4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--per-client", type=int, default=6)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--only", nargs="*", default=["latency", "concurrency", "bulk", "async"])
    parser.add_argument("--output", default=str(BENCH / "RESULTS_SERVER.md"))
    add_results_flags(parser)
    args = parser.parse_args()
    results = Results(
        Path(args.output),
        allow_dirty=args.allow_dirty,
        uses=("ffmpeg", "oss2", "starlette", "uvicorn"),
    )
    needs_media = set(args.only) != {"bulk"}
    if needs_media and not MAIN.exists():
        print("run python bench/make_media.py first", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="server-root-", dir=OUT))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = start_server(root, env, "--workers", "1", "--max-object-size", str(2 << 30))
    lines: list[str] = []
    try:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET, enable_crc=False)
        bucket.create_bucket()
        if needs_media:
            os.link(MAIN, root / BUCKET / BUCKET_KEY)  # the clip itself, no 60 MB upload
        if "latency" in args.only:
            q_latency(bucket, args.runs, lines)
        if "concurrency" in args.only:
            q_concurrency(server.endpoint, args.per_client, lines)
        if "bulk" in args.only:
            q_bulk(bucket, server.process.pid, args.size_mb, lines)
        if "async" in args.only:
            q_async(bucket, root, max(3, args.runs // 3), lines)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    print(f"wrote {results.write('The service (`ossframe serve`) through oss2', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
