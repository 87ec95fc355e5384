"""Generated test media whose every frame shows its own number, and the reference decode.

Everything here uses PyAV only (no ffmpeg command line), so the tests run wherever the package
does. Three things live here:

* :func:`make_clip` writes a short clip in which frame ``i`` (presentation order, 0-based) shows
  the number ``i`` as a grid of large black/white blocks, plus moving texture and noise elsewhere
  so that the encoder really predicts (P/B frames carry residuals, not copies). It returns a
  :class:`ClipTruth` filled in from a decode of the written file, not from what was asked for.
* :func:`read_frame_number` reads the number back from an RGB frame at the source size and raises
  :class:`UnreadableFrame` when the pattern is damaged (guard rows disagree, a block is grey).
* :func:`reference_frames` is "what FFmpeg decodes": a plain sequential decode of the whole file,
  frames in presentation order with their exact times measured from the first frame.
  :func:`shown_at` picks "the frame shown at t" from it (docs/BEHAVIOUR.md, "Which frame").

Below those, small helpers the test modules share (checking outputs, writing process strings,
listing a store's files); fixtures live in ``conftest.py``.

The number pattern (block size ``BLOCK`` = 16 px, top-left corner of the frame)::

    row 0:  b0  b1  b2  b3  b4  b5        bit k = (number >> k) & 1, white = 1
    row 1:  b6  b7  b8  b9  b10 b11
    row 2: ~b0 ~b1 ~b2 ~b3 ~b4 ~b5        guard rows: the inverse of rows 0 and 1
    row 3: ~b6 ~b7 ~b8 ~b9 ~b10 ~b11

so a frame needs at least 96x64 pixels and numbers go up to 4095.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

BLOCK = 16
BITS = 12
COLS = 6
CODE_W = COLS * BLOCK  # 96
CODE_H = 4 * BLOCK  # 64
MAX_NUMBER = (1 << BITS) - 1

# A block reads as 0 below LOW and 1 above HIGH; anything in between is "unreadable".
_LOW = 80
_HIGH = 175

PICT_I, PICT_P, PICT_B = 1, 2, 3


class UnreadableFrame(ValueError):
    """The frame-number pattern is missing or damaged."""


# ---------------------------------------------------------------------------------------------
# Frame content


def _bits(number: int) -> list[int]:
    return [(number >> k) & 1 for k in range(BITS)]


def draw_number(rgb: np.ndarray, number: int) -> None:
    """Draws the block pattern for ``number`` into the top-left corner of ``rgb`` (in place)."""
    if not 0 <= number <= MAX_NUMBER:
        raise ValueError(f"frame number {number} does not fit in {BITS} bits")
    h, w = rgb.shape[:2]
    if w < CODE_W or h < CODE_H:
        raise ValueError(f"frame {w}x{h} is smaller than the {CODE_W}x{CODE_H} number pattern")
    for k, bit in enumerate(_bits(number)):
        row, col = divmod(k, COLS)
        for r, value in ((row, bit), (row + 2, 1 - bit)):
            y, x = r * BLOCK, col * BLOCK
            rgb[y : y + BLOCK, x : x + BLOCK] = 255 if value else 0


def read_frame_number(rgb: np.ndarray) -> int:
    """Reads the number drawn by :func:`draw_number` from an RGB ``HxWx3`` uint8 frame.

    The frame must be at the source size and orientation. Each block is judged by the mean of
    its central 8x8 pixels; a mean between the two thresholds, or a guard row that is not the
    inverse of its data row, raises :class:`UnreadableFrame`.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise UnreadableFrame(f"expected an HxWx3 uint8 array, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    if w < CODE_W or h < CODE_H:
        raise UnreadableFrame(f"frame {w}x{h} is smaller than the number pattern")
    cells = (
        rgb[:CODE_H, :CODE_W]
        .astype(np.float64)
        .mean(axis=2)
        .reshape(4, BLOCK, COLS, BLOCK)[:, 4:12, :, 4:12]
        .mean(axis=(1, 3))
    )
    if np.any((cells > _LOW) & (cells < _HIGH)):
        raise UnreadableFrame(f"grey blocks in the number pattern: {np.round(cells).tolist()}")
    bits = cells >= _HIGH
    if np.any(bits[:2] == bits[2:]):
        raise UnreadableFrame(f"guard rows do not invert the data rows: {bits.astype(int)}")
    flat = bits[:2].reshape(-1)
    return int(sum(int(b) << k for k, b in enumerate(flat)))


# Scene styles for clips with hard cuts: each has a very different luma layout, so the 9x8 dhash
# of the first frame of a scene differs in many bits from the last frame of the previous scene.
SCENE_STYLES = ("waves", "ramp_left", "ramp_right", "stripes", "checker", "ramp_down")


def render_frame(
    index: int,
    number: int,
    size: tuple[int, int],
    style: str = "waves",
    seed: int = 0,
    noise: float = 20.0,
    label: bool = False,
) -> np.ndarray:
    """Frame ``index`` of a clip: ``style`` background that moves with ``index``, a moving
    coloured square, +-``noise`` levels of uniform noise, and the number pattern for
    ``number``; with ``label``, also the number in digits for people (right of the blocks)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = float(index)
    if style == "waves":
        r = 128 + 90 * np.sin((xx + 3 * t) / 13.0)
        g = 128 + 90 * np.sin((yy - 2 * t) / 11.0)
        b = 128 + 90 * np.sin((xx + yy + 5 * t) / 17.0)
    elif style == "ramp_left":
        v = 235 - 200 * xx / max(w - 1, 1) + 5 * np.sin((yy + t) / 7.0)
        r, g, b = v, v * 0.8, v * 0.6
    elif style == "ramp_right":
        v = 35 + 200 * xx / max(w - 1, 1) + 5 * np.sin((yy - t) / 7.0)
        r, g, b = v * 0.6, v, v * 0.9
    elif style == "stripes":
        v = 128 + 110 * np.sign(np.sin((xx + 0.5 * t) * 2 * np.pi / (w / 4.5)))
        r, g, b = v, v * 0.5 + 60, 255 - v
    elif style == "checker":
        v = np.where(((xx + t) // (w / 6) + yy // (h / 4)) % 2 == 0, 230.0, 25.0)
        r, g, b = v * 0.9, v, v * 0.7
    elif style == "ramp_down":
        v = 30 + 200 * yy / max(h - 1, 1) + 5 * np.sin((xx + t) / 5.0)
        r, g, b = v, v, v
    else:
        raise ValueError(f"unknown style {style!r}")
    rgb = np.stack([r, g, b], axis=2)
    # A square that moves across the frame: real motion for the encoder to predict.
    side = max(8, min(w, h) // 5)
    x0 = int((CODE_W + 4 * index) % max(w - side, 1))
    y0 = int((h // 2 + 2 * index) % max(h - side, 1))
    rgb[y0 : y0 + side, x0 : x0 + side] = (250, 40, 40)
    if noise:
        rng = np.random.default_rng(seed * 100003 + index)
        rgb += rng.uniform(-noise, noise, size=rgb.shape).astype(np.float32)
    out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    draw_number(out, number)
    if label:
        import cv2

        scale = max(0.5, h / 240)
        org = (CODE_W + 8, int(CODE_H * 0.75))
        text = f"frame {number}"
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(out, text, org, font, scale, (0, 0, 0), 6, cv2.LINE_AA)
        cv2.putText(out, text, org, font, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


# ---------------------------------------------------------------------------------------------
# Clip generation


@dataclass(frozen=True)
class ClipTruth:
    """What is in a generated clip, read back from a sequential decode of the written file.

    ``pts``/``times``/``keyframes``/``pict_types`` are per frame in presentation order; frame
    ``i`` shows the number ``i``. ``times[i]`` is ``(pts[i] - pts[0]) * time_base`` in seconds.
    """

    path: Path
    codec: str
    container: str
    n_frames: int
    fps: Fraction
    gop: int | None
    bframes: int | None
    size: tuple[int, int]  # stored (coded) width, height
    pix_fmt: str
    time_base: Fraction
    pts: tuple[int, ...]
    times: tuple[Fraction, ...]
    keyframes: tuple[int, ...]  # indices of frames the decoder flags as key frames
    packet_keyframes: int  # number of demuxed packets flagged keyframe
    pict_types: tuple[int, ...]  # 1 = I, 2 = P, 3 = B
    rotation: int  # PyAV VideoFrame.rotation of the first frame (display matrix angle)
    start: Fraction  # first frame's pts in seconds (not 0 for the MPEG-TS fixture)
    duration_ms: Fraction  # time of the last frame + its nominal duration, in ms
    scene_cuts: tuple[int, ...] = field(default=())

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def b_frames(self) -> int:
        return sum(1 for p in self.pict_types if p == PICT_B)

    def times_ms(self) -> list[Fraction]:
        return [t * 1000 for t in self.times]


_CONTAINER_FOR = {
    "libx264": "mp4",
    "libx265": "mp4",
    "libvpx-vp9": "webm",
    "mpeg4": "mp4",
}


def _codec_options(
    codec: str, gop: int | None, bframes: int | None, quality: dict[str, str] | None
) -> tuple[dict[str, str], int | None]:
    """Encoder options for near-lossless, deterministic output; returns (options, bit_rate)."""
    opts: dict[str, str] = {}
    bit_rate = None
    if codec == "libx264":
        params = ["log-level=error", "scenecut=0", "b-adapt=0"]
        if gop is not None:
            params.append(f"keyint={gop}")
        if bframes is not None:
            params.append(f"bframes={bframes}")
        opts = {"crf": "16", "preset": "fast", "x264-params": ":".join(params)}
    elif codec == "libx265":
        params = ["log-level=error", "scenecut=0", "open-gop=0", "b-adapt=0"]
        if gop is not None:
            params += [f"keyint={gop}", f"min-keyint={gop}"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        opts = {"crf": "16", "preset": "ultrafast", "x265-params": ":".join(params)}
    elif codec == "libvpx-vp9":
        opts = {"crf": "15", "b": "0", "deadline": "good", "cpu-used": "8"}
    elif codec == "mpeg4":
        bit_rate = 4_000_000
        opts = {"qmax": "4"}
    if quality:
        opts.update(quality)
    return opts, bit_rate


def make_clip(
    path: str | os.PathLike[str],
    *,
    codec: str = "libx264",
    container: str | None = None,
    n_frames: int = 60,
    fps: int | Fraction = 30,
    gop: int | None = None,
    bframes: int | None = None,
    size: tuple[int, int] = (192, 108),
    pix_fmt: str = "yuv420p",
    vfr_pts: Sequence[int] | None = None,
    start_pts: int | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    time_base: Fraction | None = None,
    scene_cuts: Sequence[int] = (),
    seed: int = 0,
    noise: float = 20.0,
    container_options: dict[str, str] | None = None,
    label: bool = False,
    first_number: int = 0,
) -> ClipTruth:
    """Writes a clip whose frame ``i`` shows the number ``i`` and returns its truth.

    * ``fps``: nominal rate; frame ``i`` gets pts ``start_pts + i`` in a ``1/fps`` time base
      unless ``time_base`` is given (then pts ``start_pts + round(i / fps / time_base)``).
    * ``vfr_pts``: explicit pts per frame (in ``time_base``, default 1/1000) for variable rate.
    * ``gop``/``bframes``: keyframe interval / B-frames passed to the encoder (x264/x265 with
      scene-cut detection off, so keyframes come exactly every ``gop`` frames).
    * ``rotation``: ``VideoStream.set_display_rotation(rotation)``, i.e. a display matrix whose
      angle (``ffprobe``'s ``rotation``, counter-clockwise degrees) is ``rotation``.
    * ``scene_cuts``: frame indices where the background style changes (hard cuts).
    * ``options``: extra encoder options (override the defaults).
    * ``container_options``: muxer options (e.g. ``{"movflags": "faststart"}``).
    * ``noise``: amplitude of the per-pixel noise (0 for smooth content that resizes cleanly).
    * ``label``: also print "frame N" in digits on every frame (for people looking at it).
    * ``first_number``: frame ``i`` shows ``first_number + i`` (clips to be joined).
    """
    path = Path(path)
    fps = Fraction(fps)
    if container is None:
        container = _CONTAINER_FOR.get(codec, path.suffix.lstrip(".") or "mp4")
    if vfr_pts is not None:
        if len(vfr_pts) != n_frames:
            raise ValueError("vfr_pts needs one pts per frame")
        if list(vfr_pts) != sorted(set(vfr_pts)):
            raise ValueError("vfr_pts must be strictly increasing")
        tb = time_base or Fraction(1, 1000)
        pts_list = [int(p) + (start_pts or 0) for p in vfr_pts]
    else:
        tb = time_base or 1 / fps
        pts_list = [(start_pts or 0) + round(Fraction(i) / fps / tb) for i in range(n_frames)]
    opts, bit_rate = _codec_options(codec, gop, bframes, options)
    w, h = size
    cuts = sorted(scene_cuts)
    with av.open(str(path), "w", format=container, options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps, options=opts)
        stream.width = w
        stream.height = h
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = tb
        stream.time_base = tb
        if gop is not None:
            stream.codec_context.gop_size = gop
        if bframes is not None and codec not in ("libx264", "libx265"):
            stream.codec_context.max_b_frames = bframes
        if bit_rate:
            stream.codec_context.bit_rate = bit_rate
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(n_frames):
            scene = sum(1 for c in cuts if c <= i)
            style = SCENE_STYLES[scene % len(SCENE_STYLES)] if cuts else "waves"
            number = first_number + i
            rgb = render_frame(i, number, size, style=style, seed=seed, noise=noise, label=label)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = pts_list[i]
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return clip_truth(
        path,
        codec=codec,
        fps=fps,
        gop=gop,
        bframes=bframes,
        pix_fmt=pix_fmt,
        expect_frames=n_frames,
        scene_cuts=tuple(cuts),
        first_number=first_number,
    )


def make_two_video_streams(
    path: str | os.PathLike[str],
    sizes: Sequence[tuple[int, int]] = ((320, 180), (480, 270)),
    n_frames: int = 30,
    fps: int = 30,
    gop: int = 10,
    offset: int = 1000,
) -> None:
    """An MP4 with one H.264 video stream per entry of ``sizes``, in that order, all marked
    default; frame ``i`` of stream ``k`` shows the number ``i + k * offset`` (so a capture tells
    which stream it read)."""
    with av.open(str(path), "w", format="mp4") as out:
        streams = []
        for w, h in sizes:
            params = f"log-level=error:scenecut=0:keyint={gop}:bframes=0"
            stream = out.add_stream(
                "libx264", rate=fps, options={"crf": "16", "preset": "fast", "x264-params": params}
            )
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            # Every track enabled (default), as from a camera that records two resolutions;
            # otherwise the muxer marks only the first as default and both FFmpeg rules
            # (av_find_best_stream and the ffmpeg tool's) prefer that one.
            stream.disposition = av.stream.Disposition.default
            streams.append(stream)
        for i in range(n_frames):
            for k, stream in enumerate(streams):
                rgb = render_frame(i, i + k * offset, (stream.width, stream.height), noise=0)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    out.mux(packet)
        for stream in streams:
            for packet in stream.encode(None):
                out.mux(packet)


def make_video_with_cover(path: str | os.PathLike[str], n_frames: int = 30) -> None:
    """An MP4 holding a 192x108 H.264 video (frame ``i`` shows ``i``) and a larger 640x480
    JPEG cover picture (attached picture, showing 7): the cover must never be captured."""
    with av.open(str(path), "w", format="mp4") as out:
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 640, 480, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        params = "log-level=error:scenecut=0:keyint=10:bframes=0"
        video = out.add_stream(
            "libx264", rate=30, options={"crf": "16", "preset": "fast", "x264-params": params}
        )
        video.width, video.height, video.pix_fmt = 192, 108, "yuv420p"
        picture = av.VideoFrame.from_ndarray(render_frame(0, 7, (640, 480)), format="rgb24")
        picture = picture.reformat(format="yuvj420p")
        picture.pts, picture.time_base = 0, Fraction(1, 1)
        for packet in [*cover.encode(picture), *cover.encode(None)]:
            out.mux(packet)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(render_frame(i, i, (192, 108)), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)


def clip_truth(
    path: str | os.PathLike[str],
    *,
    codec: str,
    fps: Fraction,
    gop: int | None,
    bframes: int | None,
    pix_fmt: str,
    expect_frames: int | None = None,
    scene_cuts: tuple[int, ...] = (),
    first_number: int = 0,
) -> ClipTruth:
    """Decodes ``path`` sequentially and records what is really in it.

    Raises ``AssertionError`` when a frame does not show its own index, so a fixture that
    builds a broken clip fails at once instead of misleading the tests.
    """
    path = Path(path)
    refs = reference_frames(path)
    numbers = [r.number for r in refs]
    if numbers != list(range(first_number, first_number + len(refs))):
        raise AssertionError(f"{path.name}: frames do not show their own index: {numbers}")
    if expect_frames is not None and len(refs) != expect_frames:
        raise AssertionError(f"{path.name}: wrote {expect_frames} frames, decoded {len(refs)}")
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        tb = Fraction(stream.time_base)
        container = c.format.name
        packet_keys = sum(1 for p in c.demux(stream) if p.size and p.is_keyframe)
    nominal = 1 / fps
    duration_s = refs[-1].time + nominal
    return ClipTruth(
        path=path,
        codec=codec,
        container=container,
        n_frames=len(refs),
        fps=fps,
        gop=gop,
        bframes=bframes,
        size=(refs[0].rgb.shape[1], refs[0].rgb.shape[0]),
        pix_fmt=pix_fmt,
        time_base=tb,
        pts=tuple(r.pts for r in refs),
        times=tuple(r.time for r in refs),
        keyframes=tuple(i for i, r in enumerate(refs) if r.key),
        packet_keyframes=packet_keys,
        pict_types=tuple(r.pict_type for r in refs),
        rotation=refs[0].rotation,
        start=refs[0].pts * tb,
        duration_ms=duration_s * 1000,
        scene_cuts=scene_cuts,
    )


def repeat_clip(
    source: str | os.PathLike[str],
    path: str | os.PathLike[str],
    copies: int,
    container: str,
    preroll: int = 0,
) -> Path:
    """Writes ``copies`` stream copies of ``source``'s video one after the other (no re-encode)
    into ``path`` in ``container``: a long file from a short clip, each copy's timestamps
    shifted by the clip's span (last frame's end minus first pts; the end is the last pts plus
    the shortest frame step where packets carry no duration). Frame ``i`` of the result
    shows the number ``i % frames_per_copy``. ``preroll``: that many frame steps earlier, so
    that the first frames' timestamps fall before 0 (in MP4 an edit list then drops them: its
    sample table lists them as discarded, and frame ``i`` shows ``(i + preroll) % ...``)."""
    with av.open(str(source)) as inp:
        src = inp.streams.video[0]
        packets = [p for p in inp.demux(src) if p.size]
        pts = sorted(p.pts for p in packets)
        step = min(b - a for a, b in zip(pts, pts[1:], strict=False))  # where no duration is set
        span = max(max(p.pts + (p.duration or 0) for p in packets), pts[-1] + step) - pts[0]
        with av.open(str(path), "w", format=container) as out:
            dst = out.add_stream_from_template(src)
            for k in range(copies):
                for p in packets:
                    copy = av.Packet(bytes(p))
                    shift = k * span - preroll * step
                    copy.pts = p.pts + shift
                    copy.dts = None if p.dts is None else p.dts + shift
                    copy.duration = p.duration
                    copy.is_keyframe = p.is_keyframe
                    copy.time_base = src.time_base
                    copy.stream = dst
                    out.mux(copy)
    return Path(path)


def join_clips(
    sources: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    container: str,
    *,
    jumps: Sequence[Fraction] = (),
    start: Fraction = Fraction(0),
) -> Path:
    """Remuxes the clips' video one after another (no re-encode) into one stream in
    ``container``, as recordings are joined: clip k's timestamps start where clip k-1's last
    frame ends, plus ``jumps[k-1]`` seconds (a gap where positive; a backward timestamp jump,
    a discontinuity, where negative). The clips share a codec and its settings; each keeps
    its own frame grid, so the joined timestamps are continuous but not on one grid.
    ``start``: the first frame's time (seconds) in the output's timestamps."""
    with av.open(str(sources[0])) as first:
        template = first.streams.video[0]
        with av.open(str(path), "w", format=container) as out:
            dst = out.add_stream_from_template(template)
            at = start  # seconds: where the next clip starts
            for k, source in enumerate(sources):
                with av.open(str(source)) as inp:
                    src = inp.streams.video[0]
                    tb = Fraction(src.time_base)
                    packets = [p for p in inp.demux(src) if p.size]
                    pts = sorted(p.pts for p in packets)
                    step = min(b - a for a, b in zip(pts, pts[1:], strict=False))
                    end = max(max(p.pts + (p.duration or 0) for p in packets), pts[-1] + step)
                    # Decode times continue from the previous clip's (pictures reordered for
                    # B-frames are presented a little after their clip starts).
                    base = min(p.pts if p.dts is None else p.dts for p in packets)
                    shift = round(at / tb) - base
                    for p in packets:
                        copy = av.Packet(bytes(p))
                        copy.pts = p.pts + shift
                        copy.dts = None if p.dts is None else p.dts + shift
                        copy.duration = p.duration
                        copy.is_keyframe = p.is_keyframe
                        copy.time_base = src.time_base
                        copy.stream = dst
                        out.mux(copy)
                    at += (end - base) * tb + (jumps[k] if k < len(jumps) else 0)
    return Path(path)


class CountingReader(io.RawIOBase):
    """A seekable binary file that counts the bytes read through it."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True)
class Layout:
    """What a file holds: its frames (sequential decode) and its GOPs' sizes in bytes."""

    refs: list
    gop_bytes: list[int]
    opening: int  # bytes FFmpeg reads to open the file (its probe)
    size: int

    def bound(self, ts: bool, searches: int = 2) -> int:
        """Bytes a snapshot may read beyond opening: the GOP it needs and the one before
        (a seek lands before t), one more for an open GOP's reach past t, and two 32 KiB
        blocks. MPEG-TS has no keyframe index: each seek is a timestamp search, a bisection of
        the file that reads a block per step (log2 of the file's blocks, and two more), and
        ``searches`` searches (two: a time in a gap or past the end steps back)."""
        block = 32 * 1024
        search = (math.ceil(math.log2(self.size / block)) + 2) * block if ts else 0
        return 3 * max(self.gop_bytes) + 2 * block + searches * search


def file_layout(path: Path) -> Layout:
    """A file's frames (sequential decode), GOP sizes, opening cost and size."""
    gops: list[int] = []
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            if packet.size:
                if packet.is_keyframe or not gops:
                    gops.append(0)
                gops[-1] += packet.size
    with CountingReader(path) as reader, av.open(reader):
        opening = reader.bytes_read
    return Layout(reference_frames(path), gops, opening, path.stat().st_size)


# ---------------------------------------------------------------------------------------------
# The reference decode


class RefFrame(NamedTuple):
    """One frame of the reference decode (presentation order)."""

    time: Fraction  # seconds from the first frame
    number: int | None  # the number the frame shows (None if unreadable and not strict)
    rgb: np.ndarray  # frame.to_ndarray(format="rgb24"), stored orientation
    key: bool  # decoder's key_frame flag
    luma: np.ndarray  # the Y plane as decoded (HxW uint8, no line padding)
    pts: int
    pict_type: int
    rotation: int


def _luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    if frame.format.name not in {"yuv420p", "yuvj420p", "yuv444p", "yuv422p", "yuvj444p"}:
        return frame.to_ndarray(format="gray")
    raw = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return raw[:, : plane.width].copy()


def _decode_all(c: av.container.InputContainer, stream: av.VideoStream, strict: bool):
    """Every frame the decoder returns; without ``strict``, a packet the decoder rejects is
    skipped as the ffmpeg command line does (it logs the error and goes on)."""
    for packet in c.demux(stream):
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            if strict:
                raise


@functools.lru_cache(maxsize=48)
def _reference_cached(key: tuple[str, int, int], strict: bool) -> tuple[RefFrame, ...]:
    path = key[0]
    frames = []
    with av.open(path) as c:
        stream = c.streams.video[0]
        tb = Fraction(stream.time_base)
        for frame in _decode_all(c, stream, strict):
            rgb = frame.to_ndarray(format="rgb24")
            try:
                number: int | None = read_frame_number(rgb)
            except UnreadableFrame:
                if strict:
                    raise
                number = None
            frames.append(
                (frame.pts, number, rgb, bool(frame.key_frame), _luma(frame), frame.pict_type)
            )
            rotation = int(frame.rotation)
    if not frames:
        raise AssertionError(f"{path}: no frames decoded")
    frames.sort(key=lambda f: f[0])
    first = frames[0][0]
    out = []
    for pts, number, rgb, key_, luma, pict in frames:
        rgb.setflags(write=False)
        luma.setflags(write=False)
        out.append(RefFrame((pts - first) * tb, number, rgb, key_, luma, pts, pict, rotation))
    return tuple(out)


def reference_frames(path: str | os.PathLike[str], *, strict: bool = True) -> list[RefFrame]:
    """Sequential PyAV decode of the whole first video stream, in presentation order.

    ``time`` is measured from the first frame (smallest pts). With ``strict`` (default) a frame
    whose number cannot be read raises :class:`UnreadableFrame` and a packet the decoder
    rejects raises ``av.InvalidDataError``; otherwise the number is None / the packet skipped.
    Results are cached per (path, mtime, size); the arrays are read-only.
    """
    st = os.stat(path)
    return list(_reference_cached((str(path), st.st_mtime_ns, st.st_size), strict))


def shown_at(refs: Sequence[RefFrame], t_ms: int | Fraction) -> int:
    """Index of "the frame shown at t": greatest time <= t; past the end, the last frame."""
    t = Fraction(t_ms) / 1000
    best = 0
    for i, r in enumerate(refs):
        if r.time <= t:
            best = i
        else:
            break
    return best


def keyframe_at_or_before(refs: Sequence[RefFrame], t_ms: int | Fraction) -> int:
    """Index of the last keyframe whose time is <= t (the ``m=fast`` rule)."""
    i = shown_at(refs, t_ms)
    while i > 0 and not refs[i].key:
        i -= 1
    return i


def counted_index(image: Any, path: str | os.PathLike[str]) -> int:
    """An output's frame number (``Image`` or ``Frame``) as a test compares it: its ``index``
    where told, else the number drawn in its picture (test clips draw their frame numbers).
    ``index`` may be None only where it is not known without reading from the start of the
    stream: never in MP4/MOV, whose sample table numbers every frame."""
    if image.index is not None:
        return int(image.index)
    assert Path(path).suffix.lower() not in (".mp4", ".mov", ".m4a"), f"{path}: index None"
    rgb = decode_image(image.data) if hasattr(image, "data") else np.asarray(image.array)
    return read_frame_number(rgb)


def ceil_ms(t: Fraction) -> int:
    """A time in seconds rounded up to a whole ms (how outputs report ``time_ms``)."""
    ms = t * 1000
    return -((-ms.numerator) // ms.denominator)


# ---------------------------------------------------------------------------------------------
# Audio files (with and without cover art)


def make_cover(size: tuple[int, int] = (120, 90), number: int = 7) -> np.ndarray:
    """The RGB cover picture used by the audio fixtures (shows ``number`` like a frame)."""
    return render_frame(3, number, size, style="checker", seed=99)


def _png_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return buf.tobytes()


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [1, 95])
    assert ok
    return buf.tobytes()


AUDIO_RATE = 44100


def _mux_tone(
    out: av.container.OutputContainer, stream: av.AudioStream, chunk: int, seconds: float = 1.0
) -> None:
    """Encodes ``seconds`` of a mono 440 Hz tone in frames of ``chunk`` samples into the audio
    ``stream`` (rate ``AUDIO_RATE``, mono) of ``out`` and muxes it."""
    n = int(AUDIO_RATE * seconds)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / AUDIO_RATE)).astype(np.float32)
    fmt = stream.codec_context.codec.audio_formats[0].name
    for start in range(0, n, chunk):
        part = tone[start : start + chunk]
        if fmt.startswith("s16"):
            data = (part * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            data = (part * 2147483647).astype(np.int32)
        else:
            data = part
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format=fmt, layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def _write_audio(path: Path, codec: str, container: str, seconds: float = 1.0) -> None:
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=AUDIO_RATE, layout="mono")
        _mux_tone(out, stream, 1152 if codec in ("mp3", "libmp3lame") else 1024, seconds)


def make_audio(path: str | os.PathLike[str], kind: str) -> None:
    """An audio-only file without any picture: ``kind`` is ``flac``, ``mp3`` or ``m4a``."""
    codec, container = {"flac": ("flac", "flac"), "mp3": ("mp3", "mp3"), "m4a": ("aac", "ipod")}[
        kind
    ]
    _write_audio(Path(path), codec, container)


def _flac_with_picture(audio: bytes, picture: bytes, mime: str, size: tuple[int, int]) -> bytes:
    """Inserts a METADATA_BLOCK_PICTURE (type 3, front cover) after STREAMINFO."""
    if audio[:4] != b"fLaC":
        raise ValueError("not a FLAC stream")
    pos = 4
    blocks = []
    while True:
        header = audio[pos]
        length = int.from_bytes(audio[pos + 1 : pos + 4], "big")
        blocks.append((header & 0x7F, audio[pos + 4 : pos + 4 + length]))
        pos += 4 + length
        if header & 0x80:
            break
    frames = audio[pos:]
    desc = b"cover"
    body = (
        struct.pack(">I", 3)
        + struct.pack(">I", len(mime))
        + mime.encode()
        + struct.pack(">I", len(desc))
        + desc
        + struct.pack(">IIII", size[0], size[1], 24, 0)
        + struct.pack(">I", len(picture))
        + picture
    )
    blocks.insert(1, (6, body))
    out = io.BytesIO()
    out.write(b"fLaC")
    for n, (kind, data) in enumerate(blocks):
        last = 0x80 if n == len(blocks) - 1 else 0
        out.write(bytes([kind | last]) + len(data).to_bytes(3, "big") + data)
    out.write(frames)
    return out.getvalue()


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def _id3_with_picture(picture: bytes, mime: str) -> bytes:
    """An ID3v2.3 tag holding one APIC frame (front cover)."""
    body = b"\x00" + mime.encode() + b"\x00" + b"\x03" + b"cover\x00" + picture
    frame = b"APIC" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    return b"ID3\x03\x00\x00" + _syncsafe(len(frame)) + frame


def make_audio_with_cover(
    path: str | os.PathLike[str], kind: str, cover: np.ndarray, image_format: str = "png"
) -> None:
    """An audio file with an embedded cover picture (``kind``: ``flac``, ``mp3``, ``m4a``).

    FLAC gets a METADATA_BLOCK_PICTURE and MP3 an ID3v2 APIC frame, written by hand around
    PyAV's audio; M4A is muxed by PyAV with an ``attached_pic`` stream (a ``covr`` atom).
    """
    path = Path(path)
    picture = _png_bytes(cover) if image_format == "png" else _jpeg_bytes(cover)
    mime = "image/png" if image_format == "png" else "image/jpeg"
    h, w = cover.shape[:2]
    if kind in ("flac", "mp3"):
        tmp = path.with_name(path.stem + ".plain." + kind)
        make_audio(tmp, kind)
        audio = tmp.read_bytes()
        tmp.unlink()
        if kind == "flac":
            data = _flac_with_picture(audio, picture, mime, (w, h))
        else:
            if audio[:3] == b"ID3":  # drop PyAV's own (empty) tag, keep the frames
                size = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(audio[6:10]))
                audio = audio[size:]
            data = _id3_with_picture(picture, mime) + audio
        path.write_bytes(data)
        return
    if kind != "m4a":
        raise ValueError(f"unknown audio kind {kind!r}")
    _write_m4a_with_cover(path, picture, image_format, (w, h))


def _write_m4a_with_cover(
    path: Path, picture: bytes, image_format: str, size: tuple[int, int]
) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        pic = out.add_stream("png" if image_format == "png" else "mjpeg")
        pic.width, pic.height = size
        pic.pix_fmt = "rgb24" if image_format == "png" else "yuvj420p"
        pic.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(picture)
        packet.stream = pic
        packet.pts = packet.dts = 0
        packet.time_base = Fraction(1, 90000)
        packet.is_keyframe = True
        out.mux(packet)
        _mux_tone(out, audio, 1024)


# ---------------------------------------------------------------------------------------------
# Checking outputs


def decode_image(data: bytes) -> np.ndarray:
    """Decodes jpg/png bytes to an RGB ``HxWx3`` uint8 array (OpenCV, as the engine encodes)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise AssertionError(f"not a decodable image ({len(data)} bytes: {data[:16]!r})")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped uint8 arrays (inf when equal)."""
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} != {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def dhash_bits(luma: np.ndarray) -> np.ndarray:
    """The documented difference hash of a luma plane: a 9x8 grid of integer blocks (cell i covers
    columns [floor(i*W/9), floor((i+1)*W/9)), rows [floor(j*H/8), floor((j+1)*H/8))), each
    averaged; bit = left cell average > right cell average. Returns 8x8 bools."""
    h, w = luma.shape
    xs = [i * w // 9 for i in range(10)]
    ys = [j * h // 8 for j in range(9)]
    y64 = luma.astype(np.int64)
    sums = np.array(
        [[y64[ys[j] : ys[j + 1], xs[i] : xs[i + 1]].sum() for i in range(9)] for j in range(8)]
    )
    counts = np.array(
        [[(ys[j + 1] - ys[j]) * (xs[i + 1] - xs[i]) for i in range(9)] for j in range(8)]
    )
    # left avg > right avg, compared exactly in integers: sl/cl > sr/cr <=> sl*cr > sr*cl
    return sums[:, :-1] * counts[:, 1:] > sums[:, 1:] * counts[:, :-1]


def dhash_score(a: np.ndarray, b: np.ndarray) -> float:
    """Percent of the 64 bits that differ between two :func:`dhash_bits` results."""
    return 100.0 * int(np.count_nonzero(a != b)) / 64.0


def run_with_timeout(fn, timeout: float = 60.0):
    """Runs ``fn()`` in a daemon thread; raises ``AssertionError`` if it has not returned
    after ``timeout`` seconds (a hang), else returns its result or re-raises its exception."""
    import threading

    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"call did not return within {timeout} s (hang)")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# ---------------------------------------------------------------------------------------------
# Process strings and stores


def b64(text: str, *, pad: bool = False, newline: bool = False) -> str:
    """URL-safe base64 of ``text`` as OSS users write it: by default without ``=`` padding;
    ``newline=True`` appends the trailing newline that ``echo | base64`` encodes."""
    encoded = base64.urlsafe_b64encode((text + ("\n" if newline else "")).encode()).decode()
    return encoded if pad else encoded.rstrip("=")


def saveas(bucket: str, obj: str, action: str = "video/snapshots,f_jpg,m_key") -> str:
    """``action|sys/saveas,b_<bucket>,o_<obj>`` with both names base64-encoded."""
    return f"{action}|sys/saveas,b_{b64(bucket)},o_{b64(obj)}"


def all_files(root: Path) -> list[str]:
    """Every file below ``root`` (hidden temp files included), relative and sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
