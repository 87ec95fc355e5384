"""Bad and unusual media (docs/BEHAVIOUR.md: audio files, "Errors and exit codes"): MediaError
with a clear message, no crash, no hang; a damaged file still gives the frames before the damage;
cover art.

Every call on a bad file runs through :func:`media.run_with_timeout`, so a hang fails the test
instead of stalling the suite (the CLI tests also run them in a subprocess with a timeout).
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from media import (
    ClipTruth,
    ceil_ms,
    decode_image,
    read_frame_number,
    reference_frames,
    run_with_timeout,
    shown_at,
)

BAD_FILES = ("empty_file", "random_file", "truncated_file", "audio_plain", "audio_plain_mp3")

CALLS = {
    "snapshot": lambda ofn, src: ofn.snapshot(src, t=0, f="jpg"),
    "snapshot_fast": lambda ofn, src: ofn.snapshot(src, t=500, m="fast", f="png"),
    "snapshots": lambda ofn, src: list(ofn.snapshots(src, f="jpg")),
    "snapshots_key": lambda ofn, src: list(ofn.snapshots(src, f="jpg", m="key")),
    "snapshots_dhash": lambda ofn, src: list(ofn.snapshots(src, f="jpg", m="dhash", thr=10)),
    "frames": lambda ofn, src: list(ofn.frames(src)),
    "probe": lambda ofn, src: ofn.probe(src),
    "process": lambda ofn, src: list(ofn.process(src, "video/snapshot,t_0,f_jpg").images),
}

# what the message must mention, per file
CLEAR = {
    "empty_file": ("empty", "0 bytes", "no data"),
    "random_file": ("invalid", "unrecognised", "unrecognized", "not a", "unsupported", "cannot"),
    "truncated_file": ("invalid", "truncated", "corrupt", "cannot", "moov", "incomplete"),
    "audio_plain": ("no video stream",),
    "audio_plain_mp3": ("no video stream",),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_media_is_media_error(ofn, name: str, call: str, request) -> None:
    path = request.getfixturevalue(name)
    with pytest.raises(ofn.MediaError) as exc:
        run_with_timeout(lambda: CALLS[call](ofn, path), timeout=60)
    assert isinstance(exc.value, ofn.FrameError)
    assert not isinstance(exc.value, ofn.InvalidArgument)
    message = str(exc.value).lower()
    assert any(word in message for word in CLEAR[name]), f"unclear message: {exc.value}"


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_media_as_bytes_and_file_object(ofn, name: str, request) -> None:
    data = request.getfixturevalue(name).read_bytes()
    for source in (data, io.BytesIO(data)):
        with pytest.raises(ofn.MediaError):
            run_with_timeout(lambda s=source: ofn.snapshot(s, t=0, f="jpg"), timeout=60)


def test_missing_file_is_media_error(ofn, tmp_path) -> None:
    with pytest.raises(ofn.MediaError) as exc:
        ofn.snapshot(tmp_path / "nope.mp4", t=0, f="jpg")
    assert "nope.mp4" in str(exc.value)


def test_empty_bytes(ofn) -> None:
    with pytest.raises(ofn.MediaError):
        run_with_timeout(lambda: ofn.snapshot(b"", t=0, f="jpg"), timeout=30)


# --------------------------------------------------------------------------------------------
# Corrupt middle: MPEG-TS with frames 45.. overwritten


def _collect(iterator, limit: int = 1000):
    """Items until the iterator ends or raises; returns (items, exception or None)."""
    items = []
    try:
        for item in iterator:
            items.append(item)
            if len(items) > limit:
                break
    except Exception as exc:
        return items, exc
    return items, None


def test_corrupt_middle_frames_before_damage_come_out(ofn, corrupt_middle) -> None:
    """Every frame: 0..44 come out first, exactly (PNG == reference). After the damage the
    engine either stops with MediaError or goes on; whatever comes out after is a frame
    FFmpeg's own decode of the damaged file shows (it resumes at keyframe 60), in order."""
    path, truth, first_bad = corrupt_middle
    refs = reference_frames(path, strict=False)
    by_number = {r.number: r for r in refs if r.number is not None}
    images, error = run_with_timeout(lambda: _collect(ofn.snapshots(path, f="png")), timeout=120)
    assert error is None or isinstance(error, ofn.MediaError), repr(error)
    assert len(images) >= first_bad, f"only {len(images)} frames before {error!r}"
    numbers = []
    for img in images:
        rgb = decode_image(img.data)
        number = read_frame_number(rgb)  # raises on a concealed / grey frame
        numbers.append(number)
        assert number in by_number, f"frame {number} is not in FFmpeg's decode"
        assert np.array_equal(rgb, by_number[number].rgb), f"frame {number} differs"
    assert numbers[:first_bad] == list(range(first_bad))
    assert [i.index for i in images[:first_bad]] == list(range(first_bad))
    assert [i.time_ms for i in images[:first_bad]] == [40 * i for i in range(first_bad)]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_corrupt_middle_snapshot_before_and_after(ofn, corrupt_middle) -> None:
    path, truth, first_bad = corrupt_middle
    refs = reference_frames(path, strict=False)
    for t in (0, 1000, 1760):  # frames 0, 25, 44: before the damage
        img = run_with_timeout(lambda t=t: ofn.snapshot(path, t=t, f="png"), timeout=60)
        k = shown_at(refs, t)
        assert np.array_equal(decode_image(img.data), refs[k].rgb), t
        assert img.index == refs[k].number == t // 40
    # frame 75 lies in the intact GOP after the damage (keyframe 60): exact
    img = run_with_timeout(lambda: ofn.snapshot(path, t=3000, f="png"), timeout=60)
    assert read_frame_number(decode_image(img.data)) == 75
    assert img.time_ms == 3000
    img = run_with_timeout(lambda: ofn.snapshot(path, t=2500, m="fast", f="jpg"), timeout=60)
    assert read_frame_number(decode_image(img.data)) == 60


def test_corrupt_middle_inside_the_damage(ofn, corrupt_middle) -> None:
    """t inside the damaged span (frame 50's time): FFmpeg shows frame 44 there (nothing
    decodes between 44 and 60). The engine may say so with MediaError, or return exactly what
    FFmpeg shows; never another frame, another error, or a hang."""
    path, truth, first_bad = corrupt_middle
    refs = reference_frames(path, strict=False)
    expected = refs[shown_at(refs, 2000)]
    assert expected.number == first_bad - 1
    try:
        img = run_with_timeout(lambda: ofn.snapshot(path, t=2000, f="png"), timeout=60)
    except ofn.MediaError:
        return
    assert np.array_equal(decode_image(img.data), expected.rgb)


def test_corrupt_middle_key_mode(ofn, corrupt_middle) -> None:
    path, truth, first_bad = corrupt_middle
    images = run_with_timeout(lambda: list(ofn.snapshots(path, f="jpg", m="key")), timeout=60)
    assert [read_frame_number(decode_image(i.data)) for i in images] == [0, 30, 60]
    assert [i.time_ms for i in images] == [0, 1200, 2400]


# --------------------------------------------------------------------------------------------
# Truncated MP4 with the index first (a partial download)


def test_truncated_faststart(ofn, truncated_faststart) -> None:
    path, truth = truncated_faststart
    refs = reference_frames(path, strict=False)
    img = run_with_timeout(lambda: ofn.snapshot(path, t=0, f="png"), timeout=60)
    assert np.array_equal(decode_image(img.data), refs[0].rgb)
    images, error = run_with_timeout(lambda: _collect(ofn.snapshots(path, f="png")), timeout=120)
    assert error is None or isinstance(error, ofn.MediaError), repr(error)
    assert len(images) >= 5
    by_number = {r.number: r for r in refs if r.number is not None}
    for img in images:
        rgb = decode_image(img.data)
        number = read_frame_number(rgb)
        assert np.array_equal(rgb, by_number[number].rgb), number
        assert img.time_ms == ceil_ms(truth.times[number])
    # a time whose data is missing: MediaError or the last frame FFmpeg could decode
    try:
        late = run_with_timeout(lambda: ofn.snapshot(path, t=1900, f="png"), timeout=60)
    except ofn.MediaError:
        return
    number = read_frame_number(decode_image(late.data))
    assert number == refs[shown_at(refs, 1900)].number


# --------------------------------------------------------------------------------------------
# Cover art


def _decoded_cover(path) -> np.ndarray:
    with av.open(str(path)) as c:
        (frame,) = list(c.decode(c.streams.video[0]))
        return frame.to_ndarray(format="rgb24")


COVER_CALLS = {
    "snapshot": lambda ofn, p: [ofn.snapshot(p, t=0, f="png")],
    "snapshot_late": lambda ofn, p: [ofn.snapshot(p, t=5000, f="png")],
    "snapshot_fast": lambda ofn, p: [ofn.snapshot(p, t=0, m="fast", f="png")],
    "default": lambda ofn, p: list(ofn.snapshots(p, f="png")),
    "default_inter": lambda ofn, p: list(ofn.snapshots(p, f="png", inter=10)),
    "avg": lambda ofn, p: list(ofn.snapshots(p, f="png", m="avg", num=5)),
    "key": lambda ofn, p: list(ofn.snapshots(p, f="png", m="key")),
    "dhash": lambda ofn, p: list(ofn.snapshots(p, f="png", m="dhash", thr=50)),
    "dhash_num": lambda ofn, p: list(ofn.snapshots(p, f="png", m="dhash", num=4)),
    "process": lambda ofn, p: list(ofn.process(p, "video/snapshots,f_png,m_key").images),
}


@pytest.mark.parametrize("call", sorted(COVER_CALLS))
def test_cover_art_once_at_its_size(ofn, cover_file, cover_rgb, call: str) -> None:
    images = run_with_timeout(lambda: COVER_CALLS[call](ofn, cover_file), timeout=60)
    assert len(images) == 1, f"{len(images)} images"
    (img,) = images
    rgb = decode_image(img.data)
    assert (img.width, img.height) == (120, 90) == (rgb.shape[1], rgb.shape[0])
    assert np.array_equal(rgb, _decoded_cover(cover_file))
    assert read_frame_number(rgb) == 7


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [
        ({"w": 60, "h": 45}, (60, 45)),
        ({"w": 240}, (240, 180)),
        ({"pw": 50}, (60, 45)),
        ({"pw": 200, "ph": 100}, (240, 90)),
        ({"w": 90, "h": 90, "scaletype": "fill"}, (90, 90)),
        ({"w": 90, "h": 90, "scaletype": "fit"}, (90, 68)),
    ],
)
def test_cover_art_resized(ofn, cover_file, kwargs: dict, size) -> None:
    (img,) = run_with_timeout(lambda: list(ofn.snapshots(cover_file, f="png", **kwargs)), 60)
    assert (img.width, img.height) == size
    assert decode_image(img.data).shape == (size[1], size[0], 3)


def test_cover_art_snapshot_w_h(ofn, cover_file) -> None:
    img = ofn.snapshot(cover_file, t=0, w=60, f="jpg")
    assert (img.width, img.height) == (60, 45)
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(cover_file, t=0, w=121, f="jpg")
    assert exc.value.param == "w"


def test_cover_art_frames_and_probe(ofn, cover_file) -> None:
    frames = list(ofn.frames(cover_file))
    assert len(frames) == 1
    assert np.array_equal(frames[0].array, _decoded_cover(cover_file))
    info = ofn.probe(cover_file)
    assert info["cover_art"] is True
    assert (info["width"], info["height"]) == (120, 90)


def test_cover_art_from_bytes(ofn, audio_flac_cover, cover_rgb) -> None:
    img = ofn.snapshot(audio_flac_cover.read_bytes(), t=0, f="png")
    assert np.array_equal(decode_image(img.data), cover_rgb)


def test_ordinary_clip_is_not_cover_art(ofn, clip_h264_b: ClipTruth) -> None:
    assert ofn.probe(clip_h264_b.path)["cover_art"] is False


class _Unseekable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def _closed_file(path):
    handle = open(path, "rb")  # noqa: SIM115 - closed on purpose
    handle.close()
    return handle


@pytest.mark.parametrize(
    "make_source",
    [
        pytest.param(lambda path: io.StringIO("not binary"), id="text-stream"),
        pytest.param(lambda path: _Unseekable(), id="unseekable"),
        pytest.param(_closed_file, id="closed-file"),
        pytest.param(lambda path: 12345, id="int"),
    ],
)
def test_unusable_source_objects_are_invalid_argument(ofn, clip_h264_b, make_source) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(make_source(clip_h264_b.path))
    assert exc.value.param == "source"
    assert "seekable binary file object" in str(exc.value)


@pytest.mark.parametrize(
    ("path", "words"),
    [("/", "directory"), ("/dev/null", "not a regular file"), ("/no/such/file.mp4", "no such")],
)
def test_paths_that_are_not_media_files(ofn, path, words) -> None:
    with pytest.raises(ofn.MediaError, match=words):
        ofn.snapshot(path)
