"""H.264 with periodic intra refresh (x264 ``intra-refresh=1``): one IDR picture, then recovery
points that containers flag as keyframes although decoding from one gives exact pictures only
a refresh period later. Snapshots and every mode give exactly the frames a sequential decode
gives, on windowed and whole-index paths, without reading from the start of the file; only
IDR pictures are reported as keyframes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media import (
    CountingReader,
    ceil_ms,
    decode_image,
    file_layout,
    make_clip,
    read_frame_number,
    reference_frames,
    shown_at,
)

SIZE = (128, 72)


def _intra_refresh(path: Path, container: str, bframes: int, n_frames: int = 240):
    params = f"intra-refresh=1:keyint=30:scenecut=0:bframes={bframes}"
    return make_clip(
        path,
        container=container,
        n_frames=n_frames,
        fps=30,
        bframes=bframes,
        size=SIZE,
        options={"x264-params": params},
    )


@pytest.fixture(scope="module", params=[("mp4", 0), ("mkv", 2), ("ts", 2)], ids=str)
def refresh_clip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    ext, bframes = request.param
    container = {"mp4": "mp4", "mkv": "matroska", "ts": "mpegts"}[ext]
    folder = tmp_path_factory.mktemp("intra_refresh")
    return _intra_refresh(folder / f"refresh.{ext}", container, bframes)


def _recovery_points(path: Path) -> int:
    with av.open(str(path)) as c:
        flagged = sum(1 for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe)
    return flagged - 1  # all but the first IDR


def _check(images: list, refs: list, times: list[int]) -> None:
    for image, t in zip(images, times, strict=True):
        j = shown_at(refs, t)
        rgb = decode_image(image.data)
        assert read_frame_number(rgb) == refs[j].number, t
        assert np.array_equal(rgb, refs[j].rgb), t
        assert image.time_ms == ceil_ms(refs[j].time) and image.keyframe == (j == 0), t


def test_snapshots_are_exact_and_read_from_an_earlier_recovery_point(ofn, refresh_clip) -> None:
    path = refresh_clip.path
    assert _recovery_points(path) >= 6, "the encoder wrote no recovery points"
    refs = reference_frames(path)
    times = list(range(0, ceil_ms(refs[-1].time) + 400, 433))
    layout = file_layout(path)
    # The GOP before the one that shows t too: one more GOP and, in MPEG-TS, its own search
    # and step back.
    bound = layout.bound(path.suffix == ".ts", searches=4) + max(layout.gop_bytes)
    images = []
    for t in times:
        with CountingReader(path) as reader:
            images.append(ofn.snapshot(reader, t=t, f="png"))
            read = reader.bytes_read - layout.opening
        assert read <= bound, (t, read, bound)
    _check(images, refs, times)
    # m_fast: the last recovery point, exact (decoded from the one before), not a keyframe.
    fast = ofn.snapshot(path, t=times[-1], m="fast", f="png")
    with av.open(str(path)) as c:
        points = {p.pts for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe}
    last_point = max(
        i for i, r in enumerate(refs) if r.pts in points and r.time * 1000 <= times[-1]
    )
    assert read_frame_number(decode_image(fast.data)) == refs[last_point].number
    assert np.array_equal(decode_image(fast.data), refs[last_point].rgb) and not fast.keyframe


@pytest.mark.parametrize(
    "params",
    [{"inter": 0}, {"inter": 500, "ss": 100}, {"m": "avg", "num": 5}, {"m": "dhash", "inter": 300}],
    ids=str,
)
def test_snapshots_modes_are_exact_on_the_whole_index(ofn, refresh_clip, params: dict) -> None:
    refs = reference_frames(refresh_clip.path)
    images = list(ofn.snapshots(refresh_clip.path, f="png", **params))
    assert images
    _check(images, refs, [i.time_ms for i in images])
    keys = list(ofn.snapshots(refresh_clip.path, f="png", m="key"))
    assert [read_frame_number(decode_image(i.data)) for i in keys] == [0]  # IDR only
    assert ofn.probe(refresh_clip.path)["keyframes_ms"] == [0]


def test_far_apart_samples_are_exact(ofn, tmp_path: Path) -> None:
    """A 40-s intra-refresh file read GOP by GOP (a file object: planned by time)."""
    clip = _intra_refresh(tmp_path / "long.mkv", "matroska", 2, n_frames=1200)
    refs = reference_frames(clip.path)
    for params in ({"inter": 10000, "ss": 1234}, {"m": "avg", "num": 3}):
        with clip.path.open("rb") as file:
            images = list(ofn.snapshots(file, f="png", **params))
        assert len(images) >= 3, params
        _check(images, refs, [i.time_ms for i in images])


def test_a_stream_starting_at_a_recovery_point(ofn, tmp_path: Path) -> None:
    """An MPEG-TS cut after its IDR picture starts at a recovery point: FFmpeg's decoder shows
    nothing before the first refresh period completes, and neither do we; from there on each
    snapshot is exact, and a time before it is a MediaError saying why."""
    clip = _intra_refresh(tmp_path / "full.ts", "mpegts", 0)
    data = clip.path.read_bytes()
    with av.open(str(clip.path)) as c:
        keys = [p.pos for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe]
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[keys[1] - keys[1] % 188 :])  # from the first recovery point on
    refs = reference_frames(cut)  # what FFmpeg shows: from the first recovered picture on
    with av.open(str(cut)) as c:  # times count from the first packet's picture
        first = min(p.pts for p in c.demux(c.streams.video[0]) if p.pts is not None)
    t = -(-(refs[40].pts - first) // 90)  # ms (90 kHz timestamps), rounded up: frame 40
    img = ofn.snapshot(cut, t=t, f="png")
    assert read_frame_number(decode_image(img.data)) == refs[40].number
    assert np.array_equal(decode_image(img.data), refs[40].rgb)
    with pytest.raises(ofn.MediaError, match="could not be decoded"):
        ofn.snapshot(cut, t=10, f="png")  # a picture before the first refresh completes
