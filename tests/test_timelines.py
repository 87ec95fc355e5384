"""Snapshots and far-apart samples on awkward timelines read only the GOPs they need, and give
exactly the frames a sequential decode gives.

The files are built here from short clips whose frames draw their own numbers
(:func:`media.join_clips`): recordings joined with continuous timestamps, each clip on its own
frame grid (30, 25 and 24 fps); 1-s gaps; variable frame rate; an MPEG-TS with a forward
timestamp jump, one that crosses the 33-bit timestamp wrap, one whose timestamps jump back.
Each snapshot is compared with the sequential decode (the number drawn in the picture and every
pixel) and its bytes read (through a counting file object) with a bound taken from the file's
own GOP sizes.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import (
    CountingReader,
    ceil_ms,
    decode_image,
    file_layout,
    join_clips,
    make_clip,
    read_frame_number,
    reference_frames,
    shown_at,
)

SIZE = (128, 72)
# Three clips on different frame grids, joined in turn; each frame shows 100 * clip + i.
CLIPS = [
    {"fps": 30, "n_frames": 45, "gop": 15},
    {"fps": 25, "n_frames": 40, "gop": 20},
    {"fps": 24, "n_frames": 36, "gop": 12},
]
ROUNDS = 10  # the three clips ten times over: about 48 s
WRAP = Fraction(2**33, 90000)  # MPEG-TS timestamps wrap after this many seconds


def _clips(folder: Path, ext: str, codec: str = "libx264") -> list[Path]:
    options = {"bframes": 2} if codec == "libx264" else {}
    return [
        make_clip(
            folder / f"clip{k}.{ext}",
            codec=codec,
            size=SIZE,
            first_number=100 * k,
            time_base=Fraction(1, 90000),
            **spec,
            **options,
        ).path
        for k, spec in enumerate(CLIPS)
    ]


def _vfr_clip(folder: Path) -> Path:
    steps = [33, 17, 50, 33, 100, 20, 40, 33]
    pts = [0]
    for i in range(59):
        pts.append(pts[-1] + steps[i % len(steps)])
    return make_clip(
        folder / "vfr.mp4", n_frames=60, vfr_pts=pts, gop=20, bframes=2, size=SIZE
    ).path


@pytest.fixture(scope="module")
def timelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("timelines")
    mp4, ts = _clips(folder, "mp4"), _clips(folder, "ts")
    vp9 = _clips(folder, "webm", codec="libvpx-vp9")
    joins = len(CLIPS) * ROUNDS - 1
    return {
        "joined.mkv": join_clips(mp4 * ROUNDS, folder / "joined.mkv", "matroska"),
        "joined.webm": join_clips(vp9 * 2, folder / "joined.webm", "webm"),
        "joined.ts": join_clips(ts * ROUNDS, folder / "joined.ts", "mpegts", start=Fraction(7, 5)),
        "gaps.mkv": join_clips(
            mp4 * ROUNDS, folder / "gaps.mkv", "matroska", jumps=[Fraction(1)] * joins
        ),
        "vfr.mkv": join_clips([_vfr_clip(folder)] * 14, folder / "vfr.mkv", "matroska"),
        "forward.ts": join_clips(
            ts * ROUNDS, folder / "forward.ts", "mpegts", jumps=[Fraction(0)] * 6 + [Fraction(20)]
        ),
        "wrap.ts": join_clips(ts * ROUNDS, folder / "wrap.ts", "mpegts", start=WRAP - 10),
    }


def _targets(refs: list) -> list[int]:
    """t (ms): the start, both sides of every join and gap among the first frames, inside a
    gap, the middle, the end and past it."""
    last = refs[-1].time
    times = {0, 700, int(last * 500), int(last * 500) + 17, ceil_ms(last), ceil_ms(last) + 3000}
    for i in range(1, len(refs)):
        if refs[i].number // 100 != refs[i - 1].number // 100 and i < 400:  # a join
            start = ceil_ms(refs[i].time)
            times.update({start - 1, start, int((refs[i - 1].time + refs[i].time) * 500)})
    return sorted(times)


@pytest.mark.parametrize(
    "name",
    ["joined.mkv", "joined.webm", "joined.ts", "gaps.mkv", "vfr.mkv", "forward.ts", "wrap.ts"],
)
def test_snapshots_are_exact_and_read_only_their_gops(ofn, timelines, name: str) -> None:
    path = timelines[name]
    layout = file_layout(path)
    ts = path.suffix == ".ts"
    bound = layout.bound(ts)
    assert bound < layout.size / 2, "the bound would not tell a read of the whole file"
    mismatches = []
    for t in _targets(layout.refs):
        with CountingReader(path) as reader:
            img = ofn.snapshot(reader, t=t, f="png")
            read = reader.bytes_read - layout.opening
        j = shown_at(layout.refs, t)
        ref = layout.refs[j]
        rgb = decode_image(img.data)
        exact = np.array_equal(rgb, ref.rgb) and read_frame_number(rgb) == ref.number
        told = (img.time_ms, img.keyframe, img.index in (None, j))
        if not exact or told != (ceil_ms(ref.time), ref.key, True) or read > bound:
            mismatches.append(f"t={t}: frame {j} {ref.number}, got {told} exact={exact} {read=}")
    assert not mismatches, f"{name} (bound {bound} bytes):\n" + "\n".join(mismatches)


SAMPLED = [
    {"inter": 10000},
    {"inter": 10000, "ss": 2345, "num": 2},
    {"m": "avg", "num": 2, "ss": 500},
    {"m": "key", "num": 3, "ss": 3000},
    {"m": "dhash", "inter": 10000},
]


@pytest.mark.parametrize("name", ["joined.mkv", "joined.ts", "vfr.mkv", "gaps.mkv", "wrap.ts"])
def test_far_apart_samples_read_only_their_gops(
    ofn, timelines, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a file object (whose size the planner cannot tell) the samples are found GOP by
    GOP: the same frames (time, keyframe flag, pixels) as planned on the whole stream's
    index, each GOP read within the snapshot bound, plus the last GOP."""
    from ossframe_native import pipeline

    path = timelines[name]
    layout = file_layout(path)
    bound = layout.bound(path.suffix == ".ts")
    for params in SAMPLED:
        request = ofn.parse_process("video/snapshots,f_png").action.__class__(f="png", **params)
        with CountingReader(path) as reader:
            with pipeline.open_capture(reader, request) as capture:
                assert capture.plan.samples, params  # planned by time, GOP by GOP
                list(capture.outputs())
                windows = capture.stats.seeks  # one per GOP read by a seek
            read = reader.bytes_read - layout.opening
        assert read <= (windows + 1) * bound, (params, read, windows)
        with path.open("rb") as file:  # a file object: planned by time, as above
            images = list(ofn.snapshots(file, f="png", **params))
        with monkeypatch.context() as patch:
            patch.setattr(pipeline, "_windows_read_less", lambda src, windows: False)
            whole = list(ofn.snapshots(path, f="png", **params))
        assert [(i.time_ms, i.keyframe) for i in images] == [
            (i.time_ms, i.keyframe) for i in whole
        ], params
        for mine, theirs in zip(images, whole, strict=True):
            assert mine.index in (None, theirs.index)
            assert mine.data == theirs.data, (params, theirs.index)
            number = read_frame_number(decode_image(mine.data))
            assert number == layout.refs[theirs.index].number, params


def test_a_backward_timestamp_jump_is_a_media_error_where_it_is_read(ofn, tmp_path: Path) -> None:
    """A TS whose timestamps jump 1 s back at the join: captures that read across the jump
    (the whole index, a probe) say so; a snapshot before the jump, whose time the stream
    holds once, is exact."""
    clips = _clips(tmp_path, "ts")
    first = join_clips(clips[:1], tmp_path / "first.ts", "mpegts")
    end = reference_frames(first)[-1].time + Fraction(1, 30)
    second = join_clips(clips[1:2], tmp_path / "second.ts", "mpegts", start=end - 1)
    path = tmp_path / "back.ts"  # MPEG-TS files joined byte for byte, timestamps not retimed
    path.write_bytes(first.read_bytes() + second.read_bytes())
    for capture in (
        lambda: list(ofn.snapshots(path, f="png")),
        lambda: ofn.probe(path),
        lambda: list(ofn.frames(path, m="key")),
    ):
        with pytest.raises(
            ofn.MediaError, match=r"timestamps jump backwards \d+ ms at \d+ ms into"
        ):
            capture()
    refs = reference_frames(path)  # file order; the first clip's frames come first
    img = ofn.snapshot(path, t=200, f="png")
    assert read_frame_number(decode_image(img.data)) == 6
    assert np.array_equal(decode_image(img.data), refs[6].rgb)


def test_probe_reads_the_sample_table_where_the_container_counts_frames(
    ofn, timelines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MP4: frames from the sample table, keyframe times from each keyframe's packet, the
    duration from the last GOP: the same as from every packet, reading a part of the file."""
    from ossframe_native import timeline

    clip = make_clip(tmp_path / "long.mp4", n_frames=900, fps=30, gop=90, bframes=2, size=SIZE)
    with CountingReader(clip.path) as reader:
        told = ofn.probe(reader)
        read = reader.bytes_read
    # Opened twice (the probe, a trial snapshot), the last GOP and the trial's, a block and
    # the packet of each keyframe.
    layout = file_layout(clip.path)
    bound = 2 * layout.opening + 2 * max(layout.gop_bytes) + len(layout.gop_bytes) * 64 * 1024
    assert read <= bound < layout.size, (read, bound, layout.size)
    monkeypatch.setattr(timeline.Timeline, "keyframe_times_ms", lambda self: None)
    counted = ofn.probe(clip.path)
    costs = ("bytes_read", "requests")  # what each probe read: not the same, by design
    assert {k: v for k, v in told.items() if k not in costs} == {
        k: v for k, v in counted.items() if k not in costs
    }
    assert told["bytes_read"] < counted["bytes_read"]
    assert told["frames"] == 900 and told["keyframes_ms"] == [ceil_ms(t) for t in clip.times[::90]]
    joined = ofn.probe(timelines["joined.mkv"])  # Matroska counts no frames: every packet
    assert joined["frames"] == len(reference_frames(timelines["joined.mkv"]))
    assert joined["snapshot_reads"] == "seek"
