"""Long files in every container: a snapshot is exact near the start, middle and end, and reads
only around its GOP, not the whole file.

Each long file is a short generated clip stream-copied many times (:func:`media.repeat_clip`),
so nothing large is stored. The reference is a sequential PyAV decode of the whole long file:
the snapshot must be that frame, pixel for pixel (PNG at source size), with its time, number
and keyframe flag.
"""

from __future__ import annotations

import bisect
import io
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import VFR_STEPS_MS
from media import CountingReader, ceil_ms, decode_image, make_clip, read_frame_number, repeat_clip

COPIES = 30
SIZE = (128, 72)


@dataclass(frozen=True)
class LongFile:
    path: Path
    per_copy: int  # frames in one copy; frame i shows the number i % per_copy
    times: tuple[Fraction, ...]  # per frame (presentation order), from the first frame
    keyframes: tuple[int, ...]


def _vfr_pts(n: int) -> list[int]:
    pts = [0]
    for i in range(n - 1):
        pts.append(pts[-1] + VFR_STEPS_MS[i % len(VFR_STEPS_MS)])
    return pts


# name -> (make_clip arguments for the short clip, container of the long file)
LONG_FILES = {
    "mkv_h264": ({"n_frames": 60, "fps": 30, "gop": 30, "bframes": 2}, "matroska"),
    "mp4_h264": ({"n_frames": 60, "fps": 30, "gop": 30, "bframes": 2}, "mp4"),
    "ts_h264_offset": (
        {
            "container": "mpegts",
            "n_frames": 50,
            "fps": 25,
            "gop": 25,
            "bframes": 2,
            "time_base": Fraction(1, 90000),
            "start_pts": 126000,
        },
        "mpegts",
    ),
    "webm_vp9": ({"codec": "libvpx-vp9", "n_frames": 60, "fps": 30, "gop": 30}, "webm"),
    "mkv_hevc_open_gop": (
        {
            "codec": "libx265",
            "n_frames": 48,
            "fps": 24,
            "gop": 24,
            "bframes": 3,
            "options": {
                "x265-params": "log-level=error:scenecut=0:open-gop=1:keyint=24:"
                "min-keyint=24:bframes=3:b-adapt=0"
            },
        },
        "matroska",
    ),
    "mkv_vfr": (
        {
            "n_frames": 40,
            "fps": 30,
            "gop": 20,
            "bframes": 2,
            "vfr_pts": _vfr_pts(40),
            "time_base": Fraction(1, 1000),
        },
        "matroska",
    ),
    "avi_mpeg4": (
        {"codec": "mpeg4", "container": "avi", "n_frames": 50, "fps": 25, "gop": 10, "bframes": 0},
        "avi",
    ),
}

_EXT = {"matroska": "mkv", "mp4": "mp4", "mpegts": "ts", "webm": "webm", "avi": "avi"}


@pytest.fixture(scope="module", params=sorted(LONG_FILES))
def long_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    clip_args, container = LONG_FILES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    short_ext = _EXT.get(
        clip_args.get("container", ""), "webm" if "vp9" in request.param else "mp4"
    )
    short = make_clip(folder / f"short.{short_ext}", size=SIZE, **clip_args)
    path = repeat_clip(short.path, folder / f"long.{_EXT[container]}", COPIES, container)
    pts, keys = _frame_list(path)
    times = tuple((p - pts[0]) * _time_base(path) for p in pts)
    assert len(times) == COPIES * short.n_frames, "the long file lost frames"
    return LongFile(path, short.n_frames, times, keys)


def _time_base(path: Path) -> Fraction:
    with av.open(str(path)) as c:
        return Fraction(c.streams.video[0].time_base)


def _frame_list(path: Path) -> tuple[list[int], tuple[int, ...]]:
    """Decoded frames' pts in presentation order and the keyframes' numbers."""
    frames = []
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            frames.append((frame.pts, bool(frame.key_frame)))
    frames.sort()
    return [p for p, _ in frames], tuple(i for i, (_, key) in enumerate(frames) if key)


def _reference_rgb(path: Path, numbers: set[int], pts_order: list[int]) -> dict[int, np.ndarray]:
    """The RGB of the wanted frames from a sequential decode of the whole file."""
    wanted = {pts_order[n]: n for n in numbers}
    out = {}
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            if frame.pts in wanted:
                out[wanted[frame.pts]] = frame.to_ndarray(format="rgb24")
    return out


def _targets(lf: LongFile) -> list[int]:
    """t (ms): the start, the first GOP, around the keyframes nearest the middle (just before,
    at, just after), the last frames and past the end."""
    n = len(lf.times)
    frames = {1, 3, n // 3, n - 2, n - 1}
    middle = bisect.bisect(lf.keyframes, n // 2)
    for k in lf.keyframes[max(middle - 1, 1) : middle + 2] + lf.keyframes[-1:]:
        frames.update({k - 1, k, k + 1})
    times = {0, ceil_ms(lf.times[-1]) + 5000}
    for j in frames:
        times.add(ceil_ms(lf.times[j]))
        if j + 1 < n:  # between frame j and the next
            times.add(int((lf.times[j] + lf.times[j + 1]) * 500))
    return sorted(times)


def _shown_at(lf: LongFile, t_ms: int) -> int:
    return max(bisect.bisect_right(lf.times, Fraction(t_ms, 1000)) - 1, 0)


def _index(img, lf: LongFile, want: int) -> int | None:
    """``img.index``, or ``want`` where it is None: a number not known without reading from
    the start (never in MP4, whose sample table numbers frames). The frame itself is proven
    by its time, keyframe flag, drawn number and pixels."""
    if img.index is None and lf.path.suffix != ".mp4":
        return want
    return img.index


def test_snapshot_exact_at_start_middle_and_end(ofn, long_file: LongFile) -> None:
    with av.open(str(long_file.path)) as c:
        stream = c.streams.video[0]
        pts_order = sorted(p.pts for p in c.demux(stream) if p.size and not p.is_discard)
    targets = _targets(long_file)
    expected = {t: _shown_at(long_file, t) for t in targets}
    refs = _reference_rgb(long_file.path, set(expected.values()), pts_order)
    mismatches = []
    for t, j in expected.items():
        img = ofn.snapshot(long_file.path, t=t, f="png")
        rgb = decode_image(img.data)
        want = (j, ceil_ms(long_file.times[j]), j in long_file.keyframes, j % long_file.per_copy)
        got = (_index(img, long_file, j), img.time_ms, img.keyframe, read_frame_number(rgb))
        if want != got or not np.array_equal(rgb, refs[j]):
            diff = (
                int(np.abs(rgb.astype(int) - refs[j]).max()) if rgb.shape == refs[j].shape else -1
            )
            mismatches.append(f"t={t}: want {want}, got {got}, max pixel diff {diff}")
    assert not mismatches, f"{long_file.path}:\n" + "\n".join(mismatches)


def test_snapshot_reads_only_around_its_gop(ofn, long_file: LongFile) -> None:
    """Beyond what opening the file reads (the demuxer probes its start), a snapshot in the
    middle or at the end reads a small part of the file, on a constant or variable rate."""
    with CountingReader(long_file.path) as reader, av.open(reader):
        opening = reader.bytes_read
    size = long_file.path.stat().st_size
    duration_ms = int(long_file.times[-1] * 1000)
    # MPEG-TS has no keyframe index: each seek is a timestamp search, which reads 100-300 KB
    # (a quarter of this 2 MB file in two or three seeks).
    part = 3 if long_file.path.suffix == ".ts" else 4
    for t in [duration_ms // 20, duration_ms // 2, duration_ms - 100]:
        with CountingReader(long_file.path) as reader:
            img = ofn.snapshot(reader, t=t, f="png")
            read = reader.bytes_read
        assert img.time_ms == ceil_ms(long_file.times[_shown_at(long_file, t)])
        assert read - opening < size / part, f"t={t}: read {read} of {size} ({opening} to open)"


@pytest.mark.parametrize("gops_apart", [7.0, 0.7])
def test_interval_exact_and_reads_the_file_once(ofn, long_file: LongFile, gops_apart) -> None:
    """Interval capture over a long file: each frame exact, and no run read again from the
    start. Samples several GOPs apart are read GOP by GOP (numbers where told; where each
    window's timestamp search costs more, as in this small MPEG-TS, the whole index); samples
    closer than a GOP on the whole stream's index, whose runs are each reached by a seek,
    every number told."""
    last_ms = long_file.times[-1] * 1000
    gop_ms = last_ms / len(long_file.keyframes)
    inter = int(gops_apart * gop_ms)
    with av.open(str(long_file.path)) as c:
        stream = c.streams.video[0]
        pts_order = sorted(p.pts for p in c.demux(stream) if p.size and not p.is_discard)
    expected = [_shown_at(long_file, k * inter) for k in range(int(last_ms // inter) + 1)]
    refs = _reference_rgb(long_file.path, set(expected), pts_order)
    with CountingReader(long_file.path) as reader:
        images = list(ofn.snapshots(reader, inter=inter, f="png"))
        read = reader.bytes_read
    if gops_apart < 1:
        assert [img.index for img in images] == expected
    numbers = [_index(img, long_file, want) for img, want in zip(images, expected, strict=True)]
    assert numbers == expected
    for img, number in zip(images, expected, strict=True):
        assert img.time_ms == ceil_ms(long_file.times[number])
        rgb = decode_image(img.data)
        assert np.array_equal(rgb, refs[number]), number
        assert read_frame_number(rgb) == number % long_file.per_copy
    size = long_file.path.stat().st_size
    # Dense: the last GOP (read first, to weigh the samples' spacing), then the index pass and
    # the decoding pass; in this small file MPEG-TS's timestamp search adds a quarter.
    bound = 2 * size if gops_apart > 1 else 3 * size
    assert read < bound, f"read {read} bytes of a {size}-byte file"


def test_probe_says_how_a_snapshot_reads(ofn, long_file: LongFile) -> None:
    """Every long file is seekable, on a constant or variable rate."""
    info = ofn.probe(long_file.path)
    assert info["snapshot_reads"] == "seek"
    assert info["frames"] == len(long_file.times)


# Far-apart samples (10 s: GOPs of 1-2 s) and key with num are found GOP by GOP; each request also
# runs with the whole stream's index and must give the same frames.
SAMPLED = [
    {"inter": 10000},
    {"inter": 10000, "ss": 1234, "num": 3},
    {"m": "avg", "num": 4, "ss": 500},
    {"m": "dhash", "inter": 10000, "thr": 0},
    {"m": "dhash", "inter": 10000, "num": 2},
    {"m": "key", "num": 3, "ss": 20000},
    {"m": "key", "num": 5, "ss": -1500},  # ss: 1.5 s before the last frame (more than remain)
]


def _whole_index_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ossframe_native import pipeline

    monkeypatch.setattr(pipeline, "_windows_read_less", lambda src, windows: False)


def test_sampled_modes_read_only_the_gops_they_need(
    ofn, long_file: LongFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """default/dhash with inter 10 s, avg, key with num: the same frames (time, keyframe,
    pixels, the frame number drawn in the picture; the number where told) as planned on the
    whole stream's index, reading a fraction of the file, on a constant or variable rate.

    The sources here are file objects, whose size the planner cannot tell: it weighs the
    stretch of stream one window's read holds against the duration. In MPEG-TS (no keyframe
    index: each window is a timestamp search and a step back) six windows read more than
    this small file; by path it is indexed whole instead."""
    with CountingReader(long_file.path) as reader, av.open(reader):
        opening = reader.bytes_read
    size = long_file.path.stat().st_size
    last_ms = long_file.times[-1] * 1000
    requests = [{**p, "ss": int(last_ms) + p["ss"]} if p.get("ss", 0) < 0 else p for p in SAMPLED]
    sampled = {}
    for params in requests:
        with CountingReader(long_file.path) as reader:
            images = list(ofn.snapshots(reader, f="png", **params))
            read = reader.bytes_read
        sampled[str(params)] = images
        if "ts_" not in long_file.path.parent.name:
            assert read - opening < size / 2, f"{params}: read {read} of {size} bytes"
    _whole_index_only(monkeypatch)
    whole_numbers = {}
    for params in requests:
        whole = list(ofn.snapshots(long_file.path, f="png", **params))
        whole_numbers[str(params)] = [i.index for i in whole]
        got = sampled[str(params)]
        assert [(i.time_ms, i.keyframe) for i in got] == [(i.time_ms, i.keyframe) for i in whole]
        for mine, theirs in zip(got, whole, strict=True):
            assert _index(mine, long_file, theirs.index) == theirs.index, params
            rgb = decode_image(mine.data)
            assert np.array_equal(rgb, decode_image(theirs.data)), (params, theirs.index)
            assert read_frame_number(rgb) == theirs.index % long_file.per_copy, params
    expected = [_shown_at(long_file, t) for t in range(0, int(last_ms) + 1, 10000)]
    assert whole_numbers[str(requests[0])] == expected
    assert len(sampled[str(requests[2])]) == 4
    for params in requests[5:]:
        ss = Fraction(params["ss"], 1000)
        keys = [k for k in long_file.keyframes if long_file.times[k] >= ss][: params["num"]]
        assert whole_numbers[str(params)] == keys, params


def test_sampled_modes_check_ss_against_the_duration_from_the_end(ofn, long_file) -> None:
    """ss is checked against the duration told by the last GOP, as against the whole index."""
    duration_ms = ofn.probe(long_file.path)["duration_ms"]
    with pytest.raises(ofn.InvalidArgument, match="duration"):
        ofn.snapshots(long_file.path, inter=10000, ss=int(duration_ms) + 1)
    last = list(ofn.snapshots(long_file.path, inter=10000, ss=int(duration_ms) - 1, f="png"))
    n = len(long_file.times)
    assert [(_index(i, long_file, n - 1), i.time_ms) for i in last] == [
        (n - 1, ceil_ms(long_file.times[-1]))
    ]


def test_sampled_by_time_only_where_windows_read_less(ofn, long_file: LongFile) -> None:
    """By path the planner knows the file's size: six windows of this small MPEG-TS would read
    more than the whole file, so its whole stream is indexed; MP4 and Matroska use windows."""
    from ossframe_native.pipeline import open_capture

    request = ofn.parse_process("video/snapshots,inter_10000,f_png").action
    with open_capture(long_file.path, request) as capture:
        by_time = bool(capture.plan.samples)
    if long_file.path.parent.name.startswith("ts_"):
        assert not by_time
    request = ofn.parse_process("video/snapshots,m_avg,num_1,f_png").action
    with open_capture(long_file.path, request) as capture:
        assert capture.plan.samples  # one window, on a constant or variable rate


def test_random_sampled_requests_equal_the_whole_index_plan(
    ofn, long_file: LongFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeded random far-apart requests (every mode that reads GOP by GOP, any ss): the same
    images, byte for byte, as with the whole stream's index."""
    rng = random.Random(len(long_file.times))
    last_ms = int(long_file.times[-1] * 1000)
    requests = []
    for _ in range(12):
        mode = rng.choice(["default", "avg", "dhash", "key"])
        params: dict = {"m": mode, "ss": rng.randrange(0, last_ms), "f": "png"}
        if mode in ("default", "dhash"):
            params.update(inter=rng.randrange(10000, 40000), num=rng.randrange(0, 5))
        else:
            params["num"] = rng.randrange(1, 6)
        requests.append(params)
    with CountingReader(long_file.path) as reader:  # a file object: windows whatever the size
        sampled = [[(i.time_ms, i.data) for i in ofn.snapshots(reader, **p)] for p in requests]
    _whole_index_only(monkeypatch)
    for params, got in zip(requests, sampled, strict=True):
        whole = [(i.time_ms, i.data) for i in ofn.snapshots(long_file.path, **params)]
        assert [n for n, _ in got] == [n for n, _ in whole], params
        assert got == whole, params


def test_a_window_too_large_to_hold_falls_back_to_the_whole_index(
    ofn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream with one keyframe (the whole file is one GOP) would make every window hold all
    packets up to its time; past the byte limit no window is made and the whole stream's index
    is used (packets read as decoding goes), with the same frames."""
    from ossframe_native import decode, pipeline, timeline, windows

    clip = make_clip(tmp_path / "one_gop.mp4", n_frames=400, fps=10, gop=1000, size=SIZE)
    requests = [{"m": "avg", "num": 3}, {"inter": 10000, "ss": 5000}, {"m": "key", "num": 2}]

    def captured() -> list:
        snapshot = ofn.snapshot(clip.path, t=35050, f="png")
        images = [snapshot] + [i for p in requests for i in ofn.snapshots(clip.path, f="png", **p)]
        return [(i.index, i.time_ms, i.keyframe, i.data) for i in images]

    monkeypatch.setattr(pipeline, "_windows_read_less", lambda src, windows: True)
    held = captured()
    monkeypatch.setattr(windows, "_WINDOW_MAX_BYTES", 20_000)
    with decode.VideoSource(clip.path, around=Fraction(35)) as src:
        assert src.reach == timeline.WHOLE_STREAM
    assert captured() == held
    assert [n for n, *_ in held] == [350, 0, 133, 266, 50, 150, 250, 350, 0]
    assert all(read_frame_number(decode_image(data)) == n for n, *_, data in held)


def _sampled_and_whole(ofn, monkeypatch, source_bytes: bytes, **params) -> tuple[list, list]:
    """The images of a request planned by time where it can be (a file object's size is not
    told) and with the whole stream's index: (index, time_ms, keyframe, data) each. Where
    a sampled frame's number is not told (None: not known without reading from the start),
    the whole index's number at the same place stands in; time, flag and pixels still prove
    the frame."""
    from ossframe_native import pipeline

    def images() -> list:
        found = ofn.snapshots(io.BytesIO(source_bytes), f="png", **params)
        return [(i.index, i.time_ms, i.keyframe, i.data) for i in found]

    sampled = images()
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "_windows_read_less", lambda src, windows: False)
        whole = images()
    if len(sampled) == len(whole):
        pairs = zip(sampled, whole, strict=True)
        sampled = [(w[0] if s[0] is None else s[0], *s[1:]) for s, w in pairs]
    return sampled, whole


def test_sampling_rules_that_need_the_whole_stream(
    ofn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the last GOP cannot stand for the whole stream, the whole index decides:
    * frames 60 s apart (mean interval >= inter): every frame, as the whole index gives;
    * VFR MPEG-TS whose packets carry no duration (its end is the last pts plus the whole
      stream's median step): ss just before that end is accepted and avg samples match;
    * a timestamp jump to 10^10 ms over six frames: planned at once, not 10^9 samples."""
    from ossframe_native.pipeline import open_capture

    sparse = make_clip(
        tmp_path / "sparse.mp4",
        n_frames=6,
        vfr_pts=[0, 100, 200, 300, 60000, 120000],
        time_base=Fraction(1, 1000),
        gop=1,
        bframes=0,
        size=SIZE,
    )
    got, whole = _sampled_and_whole(ofn, monkeypatch, sparse.path.read_bytes(), inter=10000)
    assert got == whole and [n for n, *_ in got] == [0, 1, 2, 3, 4, 5]

    steps = [40 * i for i in range(750)] + [30000 + 20 * i for i in range(500)]
    vfr = make_clip(
        tmp_path / "vfr.ts",
        container="mpegts",
        n_frames=len(steps),
        vfr_pts=steps,
        time_base=Fraction(1, 1000),
        fps=25,
        gop=25,
        bframes=0,
        size=SIZE,
    )
    data = vfr.path.read_bytes()
    end_ms = int(ofn.probe(vfr.path)["duration_ms"])
    got, whole = _sampled_and_whole(ofn, monkeypatch, data, inter=10000, ss=end_ms - 10)
    assert got == whole and [n for n, *_ in got] == [len(steps) - 1]
    for num in (2, 3):
        got, whole = _sampled_and_whole(ofn, monkeypatch, data, m="avg", num=num)
        assert got == whole and len(got) == num

    jump = make_clip(
        tmp_path / "jump.mkv",
        container="matroska",
        n_frames=6,
        vfr_pts=[0, 33, 67, 100, 133, 10**10],
        time_base=Fraction(1, 1000),
        gop=3,
        bframes=0,
        size=SIZE,
    )
    request = ofn.parse_process("video/snapshots,inter_10000,f_png").action
    with open_capture(jump.path, request) as capture:
        assert not capture.plan.samples
        assert capture.plan.frames == (0, 1, 2, 3, 4, 5)


def test_num_bounds_the_gops_read(ofn, long_file: LongFile) -> None:
    """With num 1 one GOP is read (besides the last one), however many decoders could take
    GOPs ahead (the last GOP, read when the source opens, is not counted as a seek)."""
    from ossframe_native.pipeline import collect_stats, open_capture

    for spec in ("m_key,num_1,ss_20000", "inter_10000,num_1,ss_20000", "m_avg,num_1,ss_20000"):
        request = ofn.parse_process(f"video/snapshots,{spec},f_png").action
        with (
            CountingReader(long_file.path) as reader,
            collect_stats() as stats,
            open_capture(reader, request, threads=16) as capture,
        ):
            assert capture.plan.samples, spec
            outputs = list(capture.outputs())
        assert len(outputs) == 1, spec
        assert stats[0].seeks == 1, (spec, stats[0])


def _interval_reads(ofn, path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, list]:
    """inter_6000 over ``path`` (by path: its size is weighed) and a sprite of the same tiles:
    the bytes each read, the images (planned by time, checked against the whole index's)."""
    from ossframe_native import pipeline

    spec = ofn.parse_process("video/snapshots,inter_6000,f_png").action
    with ofn.collect_stats() as stats:
        with pipeline.open_capture(path, spec) as capture:
            assert capture.plan.samples, f"{path.name}: not read GOP by GOP"
        images = list(ofn.snapshots(path, inter=6000, f="png"))
        tiles = [
            tile for sheet in ofn.sprite(path, inter=6000, sw=32, sh=32) for tile in sheet.tiles
        ]
    snapshots_read, sprite_read = stats[1].bytes_read, stats[2].bytes_read
    assert [t.time_ms for t in tiles] == [i.time_ms for i in images]
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "_windows_read_less", lambda src, windows: False)
        whole = list(ofn.snapshots(path, inter=6000, f="png"))
    assert [(i.time_ms, i.keyframe, i.data) for i in images] == [
        (i.time_ms, i.keyframe, i.data) for i in whole
    ]
    return snapshots_read, sprite_read, images


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_interval_reads_grow_with_the_samples_not_the_file(
    ofn, tmp_path: Path, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame every 6 s of a 1-min and a 10-min file (1-s GOPs): samples six GOPs apart are
    read GOP by GOP, by video/snapshots and a sprite alike, so ten times the samples read about
    ten times the bytes (a fraction of the file), each frame the one shown at its time (its
    drawn number, its pixels as planned on the whole stream's index)."""
    short = make_clip(tmp_path / "short.mp4", n_frames=60, fps=30, gop=30, bframes=2, noise=2)
    reads = {}
    for minutes in (1, 10):
        path = repeat_clip(
            short.path, tmp_path / f"long{minutes}.{container[:3]}", 30 * minutes, container
        )
        snapshots_read, sprite_read, images = _interval_reads(ofn, path, monkeypatch)
        expected = list(range(0, 1800 * minutes, 180))  # 30 fps: frame 180 k at 6 k s
        assert [
            _index(img, LongFile(path, 60, (), ()), n)
            for img, n in zip(images, expected, strict=True)
        ] == expected
        assert [read_frame_number(decode_image(i.data)) for i in images] == [
            n % 60 for n in expected
        ]
        assert [i.time_ms for i in images] == [6000 * k for k in range(len(expected))]
        size = path.stat().st_size
        assert snapshots_read < size / 2 and sprite_read < size / 2, (
            snapshots_read,
            sprite_read,
            size,
        )
        reads[minutes] = (snapshots_read, sprite_read)
    for one, ten in zip(reads[1], reads[10], strict=True):
        assert ten < 12 * one, f"1 min: {one} bytes, 10 min: {ten} bytes for ten times the samples"


def test_windows_number_frames_after_an_edit_lists_dropped_samples(
    ofn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MP4 whose edit list drops its first 15 samples (timestamps before 0): frames read
    GOP by GOP, window after window, are numbered from the sample table without the dropped
    samples, as on the whole stream's index (and show the number drawn 15 frames later)."""
    from ossframe_native import pipeline

    short = make_clip(tmp_path / "short.mp4", n_frames=60, fps=30, gop=30, bframes=2, size=SIZE)
    path = repeat_clip(short.path, tmp_path / "preroll.mp4", 20, "mp4", preroll=15)
    with av.open(str(path)) as c:
        entries = c.streams.video[0].index_entries
        assert sum(entries[j].is_discard for j in range(len(entries))) >= 15

    def images(by_time: bool) -> list:
        with monkeypatch.context() as patch:
            patch.setattr(pipeline, "_windows_read_less", lambda src, windows: by_time)
            found = ofn.snapshots(path, inter=1500, ss=700, f="png")
            return [(i.index, i.time_ms, i.keyframe, i.data) for i in found]

    sampled, whole = images(True), images(False)
    assert sampled == whole
    numbers = [n for n, *_ in sampled]
    assert numbers == [int((700 + 1500 * k) * 30 // 1000) for k in range(len(numbers))]
    drawn = [read_frame_number(decode_image(data)) for *_, data in sampled]
    assert drawn == [(n + 15) % 60 for n in numbers]
