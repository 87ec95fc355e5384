"""``video/sprite``: every tile is exactly the ``video/snapshots`` output of the same request,
the sheets are laid out as docs/BEHAVIOUR.md ("Sprites") says, every parameter is checked, and
the WebVTT storyboard is read by a real browser.

Expected frames and times come from the reference decode (``media.reference_frames``); tiles at
the source size are identified by the frame numbers the clips show; the layout is recomputed here
from the documented formula.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import re
import shutil
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import (
    ClipTruth,
    b64,
    ceil_ms,
    decode_image,
    read_frame_number,
    reference_frames,
    repeat_clip,
    saveas,
    shown_at,
)

import ossframe_native as ofn
from ossframe_native.cli import main as cli_main
from ossframe_native.pipeline import collect_stats
from ossframe_native.sprites import sheet_url, storyboard, storyboard_name

BUCKET = "sprite-bucket"


def region(sheet: np.ndarray, tile) -> np.ndarray:
    return sheet[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w]


def snapshots_of(path: Path, params: dict) -> list:
    """The ``video/snapshots`` outputs (PNG) of the sprite parameters ``params``."""
    names = {"sw": "w", "sh": "h", "psw": "pw", "psh": "ph"}
    mode = {"m": "default" if params.get("m", "inter") == "inter" else params["m"]}
    keep = {names.get(k, k): v for k, v in params.items() if k not in ("tw", "th", "pad", "margin")}
    return list(ofn.snapshots(str(path), **{**keep, **mode, "f": "png"}))


def all_tiles(sheets) -> list:
    return [tile for sheet in sheets for tile in sheet.tiles]


def stream_end_ms(path: Path) -> int:
    """The end of the video stream, measured from its first frame, in whole ms rounded up, read
    from the demuxer: the latest packet pts + duration, or (where the container stores no
    durations, MPEG-TS) the last pts + the median frame interval."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        packets = [(p.pts, p.duration or 0) for p in container.demux(stream) if p.size]
    pts = sorted(p for p, _ in packets)
    end = max(p + duration for p, duration in packets)
    if end <= pts[-1]:
        end = pts[-1] + int(np.median(np.diff(pts)))
    return ceil_ms((end - pts[0]) * time_base)


def vtt_cues(text: str) -> list[tuple[str, int, int, str]]:
    """(id, start ms, end ms, payload) of each cue of a storyboard."""
    assert text.startswith("WEBVTT\n\n"), text[:20]
    cues = []
    for block in text[len("WEBVTT\n\n") :].strip("\n").split("\n\n"):
        ident, timing, payload = block.split("\n")
        start, end = (_ms(t) for t in timing.split(" --> "))
        cues.append((ident, start, end, payload))
    return cues


def _ms(stamp: str) -> int:
    hours, minutes, seconds = stamp.split(":")
    whole, millis = seconds.split(".")
    return ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1000 + int(millis)


# -- parameters ------------------------------------------------------------------------------------


def test_defaults_and_the_official_example() -> None:
    a = ofn.parse_process("video/sprite,f_jpg").action
    assert (a.ss, a.m, a.thr, a.num, a.inter, a.scaletype) == (0, "inter", 0, 0, 0, "stretch")
    assert (a.sw, a.sh, a.psw, a.psh) == (None, None, None, None)
    assert (a.tw, a.th, a.pad, a.margin, a.vtt) == (6, 6, 2, 2, 0)
    spec = "video/sprite,f_jpg,sw_100,sh_100,inter_10000,tw_10,th_10,pad_0,margin_0"
    a = ofn.parse_process(spec).action
    assert (a.sw, a.sh, a.inter, a.tw, a.th, a.pad, a.margin) == (100, 100, 10000, 10, 10, 0, 0)
    assert a.sheet_size(100, 100) == (1000, 1000)


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ("ss_-1", "ss"),
        ("f_gif", "f"),
        ("m_default", "m"),  # video/snapshots' name; video/sprite calls it inter
        ("m_fast", "m"),
        ("thr_101", "thr"),
        ("num_x", "num"),
        ("inter_1.5", "inter"),
        ("sw_31", "sw"),
        ("sw_4097", "sw"),
        ("sh_31", "sh"),
        ("sh_4097", "sh"),
        ("psw_0", "psw"),
        ("psw_201", "psw"),
        ("psh_0", "psh"),
        ("psh_201", "psh"),
        ("scaletype_zoom", "scaletype"),
        ("tw_0", "tw"),
        ("tw_16385", "tw"),
        ("th_0", "th"),
        ("th_16385", "th"),
        ("pad_16385", "pad"),
        ("margin_16385", "margin"),
        ("vtt_2", "vtt"),
        ("w_100", "w"),  # video/snapshots' name for the width
        ("t_0", "t"),
    ],
)
def test_out_of_range_parameters_are_named(item: str, param: str) -> None:
    with pytest.raises(ofn.InvalidArgument) as info:
        ofn.parse_process(f"video/sprite,f_jpg,{item}")
    assert info.value.param == param, str(info.value)


def test_avg_needs_num_and_f_is_required() -> None:
    with pytest.raises(ofn.InvalidArgument) as info:
        ofn.parse_process("video/sprite,f_jpg,m_avg")
    assert info.value.param == "num"
    with pytest.raises(ofn.InvalidArgument) as info:
        ofn.parse_process("video/sprite,sw_100")
    assert info.value.param == "f"


@pytest.mark.parametrize(
    ("items", "param", "pixels"),
    [
        ("sw_4096,sh_32,tw_4,pad_0,margin_0", "tw", 16384),  # exactly the limit: valid
        ("sw_4096,sh_32,tw_4,pad_0,margin_1", "tw", 16386),
        ("sw_4096,sh_32,tw_4,pad_1,margin_0", "tw", 16387),
        ("sw_32,sh_4000,th_4,pad_2,margin_100", "th", 16206),  # valid
        ("sw_32,sh_4000,th_5,pad_0,margin_0", "th", 20000),
        ("sw_100,sh_100,tw_200", "tw", 2 * 2 + 200 * 100 + 199 * 2),
    ],
)
def test_sheets_over_16384_px_are_refused_by_the_parser(items, param, pixels) -> None:
    spec = f"video/sprite,f_jpg,{items}"
    if pixels <= 16384:
        ofn.parse_process(spec)
        return
    with pytest.raises(ofn.InvalidArgument) as info:
        ofn.parse_process(spec)
    assert info.value.param == param and f"{pixels} px" in str(info.value)
    assert "16384" in str(info.value)


def test_a_sheet_sized_by_the_source_is_refused_before_decoding(clip_h264_b: ClipTruth) -> None:
    """psw (a percent of the 192x108 source) makes tiles 384 px wide: 43 of them pass 16384 px;
    the source is opened, nothing decoded."""
    path = str(clip_h264_b.path)
    with collect_stats() as stats, pytest.raises(ofn.InvalidArgument) as info:
        ofn.sprite(path, psw=200, tw=43, pad=0, margin=0)
    assert info.value.param == "tw" and "16512 px" in str(info.value)
    assert sum(s.frames_decoded for s in stats) == 0
    with pytest.raises(ofn.InvalidArgument) as info:
        ofn.process(path, "video/sprite,f_jpg,sh_100,th_200")  # width from the aspect ratio
    assert info.value.param == "th"
    ofn.sprite(path, psw=200, tw=42, pad=0, margin=0).close()  # 16128 px: valid
    with pytest.raises(ofn.InvalidArgument) as info:
        ofn.sprite(path, m="default")
    assert info.value.param == "m"


# -- tiles -----------------------------------------------------------------------------------------

TILE_CASES = [
    # (clip fixture, sprite parameters); the tiles must be the snapshots outputs of the same
    ("clip_h264_b", {"inter": 250, "ss": 500}),  # source size: numbers readable
    ("clip_h264_b", {"m": "key", "sw": 64, "sh": 48, "tw": 2, "th": 1}),
    ("clip_h264_b", {"m": "avg", "num": 5, "psw": 50, "sh": 40, "scaletype": "crop"}),
    ("clip_h264_b", {"m": "avg", "num": 4, "ss": 2900}),  # frame 87 twice: a repeated tile
    ("clip_h264_b", {"inter": 700, "sw": 100, "sh": 100, "scaletype": "fit"}),
    ("clip_h264_b", {"inter": 600, "sw": 120, "sh": 40, "scaletype": "fill", "tw": 3}),
    ("clip_cuts", {"m": "dhash", "thr": 30, "sw": 96, "sh": 64, "tw": 3, "th": 2}),
    ("clip_vfr", {"num": 12, "tw": 5, "th": 2}),  # every frame, variable rate
    ("clip_ts_offset", {"inter": 400, "psw": 50, "psh": 50}),  # first frame at 1.4 s
]


@pytest.mark.parametrize(("clip_name", "params"), TILE_CASES)
def test_tiles_are_the_snapshots_outputs(request, clip_name: str, params: dict) -> None:
    clip: ClipTruth = request.getfixturevalue(clip_name)
    with collect_stats() as sprite_stats:
        sheets = list(ofn.sprite(str(clip.path), **params))
    tiles = all_tiles(sheets)
    with collect_stats() as snapshots_stats:
        snaps = snapshots_of(clip.path, params)
    assert len(tiles) == len(snaps) > 0
    # One capture each, planned and read alike: a sprite costs what its tiles cost.
    assert [(s.frames_decoded, s.packets_fed, s.seeks) for s in sprite_stats] == [
        (s.frames_decoded, s.packets_fed, s.seeks) for s in snapshots_stats
    ]
    refs = reference_frames(clip.path)
    source_size = "sw" not in params and "psw" not in params and "sh" not in params
    for tile, snap in zip(tiles, snaps, strict=True):
        picture = region(sheets[tile.sheet - 1].array, tile)
        assert np.array_equal(picture, decode_image(snap.data)), f"tile {tile.number}"
        assert (tile.frame, tile.time_ms, tile.keyframe, tile.score) == (
            snap.index,
            snap.time_ms,
            snap.keyframe,
            snap.score,
        )
        assert tile.time_ms == ceil_ms(refs[tile.frame].time)
        if source_size:
            assert read_frame_number(picture) == refs[tile.frame].number


def test_far_apart_tiles_read_gop_by_gop(clip_h264_b: ClipTruth, tmp_path) -> None:
    """Tiles 10 s apart in a 90 s file are read GOP by GOP, as video/snapshots reads them (a
    file object without a size: the stretch of stream a GOP's read holds is weighed against
    the duration); the tiles are the frames shown at 0, 10, ... s and the last cue ends at the
    stream's end."""
    path = repeat_clip(clip_h264_b.path, tmp_path / "long.mp4", 30, "mp4")  # 2700 frames
    with collect_stats() as stats:
        run = ofn.sprite(io.BytesIO(path.read_bytes()), inter=10000, sw=32, sh=32, tw=5, th=2)
        assert run.capture.plan.samples, "not planned by time"
        tiles = all_tiles(run)
    times = [Fraction(n, 30) for n in range(2700)]  # 30 fps, copies back to back
    assert [t.frame for t in tiles] == [int(t * 30 // 1000) for t in range(0, 90000, 10000)]
    assert [t.time_ms for t in tiles] == [ceil_ms(times[t.frame]) for t in tiles]
    assert 0 < stats[0].frames_decoded < 2700 // 10
    assert run.end_ms == stream_end_ms(path) == 90000
    cues = vtt_cues(run.storyboard(["s_1.jpg"]))
    assert [c[1:3] for c in cues][-2:] == [(70000, 80000), (80000, 90000)]


def test_tiles_at_source_size_show_the_sampled_frames(clip_h264_b: ClipTruth) -> None:
    refs = reference_frames(clip_h264_b.path)
    tiles = all_tiles(ofn.sprite(str(clip_h264_b.path), inter=400, ss=100, tw=4, th=2))
    expected = [shown_at(refs, t) for t in range(100, 3000, 400)]
    assert [t.frame for t in tiles] == expected
    assert len({t.sheet for t in tiles}) == 1 and len(tiles) == 8


def test_fit_centres_a_smaller_picture_in_its_cell(clip_h264_b: ClipTruth) -> None:
    """192x108 fitted into 100x100 is 100x56, centred: 22 px of black above and below."""
    sheet = next(iter(ofn.sprite(str(clip_h264_b.path), sw=100, sh=100, scaletype="fit", num=1)))
    (tile,) = sheet.tiles
    assert (tile.x, tile.y, tile.w, tile.h) == (2, 2 + 22, 100, 56)
    assert sheet.array.shape == (614, 614, 3)  # 2 * 2 + 6 * 100 + 5 * 2, both ways
    assert not sheet.array[2:24, 2:102].any() and not sheet.array[80:102, 2:102].any()
    assert sheet.array[24:80, 2:102].any()


def test_a_picture_of_another_size_is_centred_or_cut_to_its_cell() -> None:
    """A frame whose size changed mid-stream renders larger or smaller than the cell: it is
    centred in the cell, cut to the cell's centre where larger, and the tile map says where."""
    from ossframe_native.sprites import Layout, _place

    layout = Layout(10, 8, 2, 1, 0, 1, 22, 10)
    sheet = np.zeros((10, 22, 3), np.uint8)
    big = np.arange(12 * 14 * 3, dtype=np.uint8).reshape(12, 14, 3)
    assert _place(sheet, big, 1, 1, layout) == (1, 1, 10, 8)
    assert np.array_equal(sheet[1:9, 1:11], big[2:10, 2:12])
    small = np.full((4, 6, 3), 7, np.uint8)
    assert _place(sheet, small, 11, 1, layout) == (13, 3, 6, 4)
    assert (sheet[3:7, 13:19] == 7).all() and not sheet[1:9, 11:21][sheet[1:9, 11:21] != 7].any()


# -- layout ----------------------------------------------------------------------------------------

LAYOUTS = [
    # (tw, th, pad, margin, tiles)
    (3, 2, 0, 0, 5),  # one partial sheet
    (2, 2, 3, 5, 9),  # two full sheets and one with one tile
    (4, 1, 1, 0, 8),  # exactly two full sheets
    (1, 1, 7, 4, 2),  # one tile a sheet
    (6, 6, 2, 2, 3),  # the defaults
]


@pytest.mark.parametrize(("tw", "th", "pad", "margin", "count"), LAYOUTS)
def test_layout_by_coordinates(clip_h264_b: ClipTruth, tw, th, pad, margin, count) -> None:
    cell_w, cell_h = 40, 32
    sheets = list(
        ofn.sprite(
            str(clip_h264_b.path), sw=cell_w, sh=cell_h, num=count, tw=tw, th=th, pad=pad,
            margin=margin,
        )
    )  # fmt: skip
    width = 2 * margin + tw * cell_w + (tw - 1) * pad
    height = 2 * margin + th * cell_h + (th - 1) * pad
    assert len(sheets) == -(-count // (tw * th))
    assert [s.number for s in sheets] == list(range(1, len(sheets) + 1))
    tiles = all_tiles(sheets)
    assert [t.number for t in tiles] == list(range(1, count + 1))
    for k, tile in enumerate(tiles):
        place = k % (tw * th)
        row, column = divmod(place, tw)
        assert (tile.sheet, tile.x, tile.y, tile.w, tile.h) == (
            k // (tw * th) + 1,
            margin + column * (cell_w + pad),
            margin + row * (cell_h + pad),
            cell_w,
            cell_h,
        )
    for sheet in sheets:
        assert sheet.array.shape == (height, width, 3) and sheet.array.dtype == np.uint8
        covered = np.zeros((height, width), bool)
        for tile in sheet.tiles:
            covered[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w] = True
            assert region(sheet.array, tile).any()
        assert not sheet.array[~covered].any(), "padding, margins and empty cells are black"
    assert len(sheets[-1].tiles) == count - (len(sheets) - 1) * tw * th


# -- the storyboard -------------------------------------------------------------------------------


def test_storyboard_text() -> None:
    from ossframe_native.sprites import Tile

    tiles = [
        Tile(1, 1, 0, 0, 10, 8, 0, 0, True),
        Tile(2, 1, 12, 0, 10, 8, 61_001, 5, False),
        Tile(3, 2, 0, 0, 10, 8, 360_000_000 + 3_723_004, 9, False),
    ]
    text = storyboard(tiles, ["a b/s 1.jpg", "s2.jpg"], 360_000_000 + 3_800_000)
    assert text == (
        "WEBVTT\n\n"
        "1\n00:00:00.000 --> 00:01:01.001\na b/s 1.jpg#xywh=0,0,10,8\n\n"
        "2\n00:01:01.001 --> 101:02:03.004\na b/s 1.jpg#xywh=12,0,10,8\n\n"
        "3\n101:02:03.004 --> 101:03:20.000\ns2.jpg#xywh=0,0,10,8\n"
    )


@pytest.mark.parametrize(
    ("sheet", "vtt", "url"),
    [
        ("thumbs/clip_1.jpg", "thumbs/clip_1.vtt", "clip_1.jpg"),
        ("s_1.jpg", "s.vtt", "s_1.jpg"),
        ("a/2/x y.png", "a/1/x y.vtt", "../2/x%20y.png"),
        ("a/#1?ü.jpg", "a/s.vtt", "%231%3F%C3%BC.jpg"),
        ("/tmp/out/sheet_2.jpg", "/tmp/out/sheet.vtt", "sheet_2.jpg"),
    ],
)
def test_sheet_urls_are_relative_to_the_storyboard(sheet, vtt, url) -> None:
    assert sheet_url(sheet, vtt) == url


@pytest.mark.parametrize(
    ("name", "vtt"),
    [
        ("thumbs/clip_1.jpg", "thumbs/clip_1.vtt"),
        ("thumbs/clip", "thumbs/clip.vtt"),
        ("a.b/clip", "a.b/clip.vtt"),
        ("sheet.", "sheet..vtt"),
        (".hidden", ".hidden.vtt"),
        ("x.tar.png", "x.tar.vtt"),
    ],
)
def test_storyboard_names(name, vtt) -> None:
    assert storyboard_name(name) == vtt


def saved(root: Path, key: str) -> bytes:
    return (root / BUCKET / key).read_bytes()


@pytest.mark.parametrize("clip_name", ["clip_vfr", "clip_ts_offset", "clip_h264_b"])
def test_cue_times_are_the_frames_times(request, tmp_path, clip_name: str) -> None:
    """Each cue runs from its tile's frame time to the next tile's, the last to the end of the
    stream, rounded up to whole ms like time_ms; avg's repeated frame gives a zero-length cue."""
    clip: ClipTruth = request.getfixturevalue(clip_name)
    action = "video/sprite,f_png,inter_90,tw_4,th_3,vtt_1"
    if clip_name == "clip_h264_b":
        action = "video/sprite,f_png,m_avg,num_4,ss_2900,vtt_1"  # frames 87, 87, 88, 89
    spec = saveas(BUCKET, "s/{index}.{autoext}", action)
    result = ofn.process(str(clip.path), spec, store=tmp_path)
    assert result.ok, result.error_message
    sheets = [k for k in result.keys if k.endswith(".png")]
    assert result.keys == [*sheets, "s/1.vtt"]
    cues = vtt_cues(saved(tmp_path, "s/1.vtt").decode())
    refs = reference_frames(clip.path)
    tiles = all_tiles(ofn.sprite(str(clip.path), **_params(action)))
    starts = [ceil_ms(refs[t.frame].time) for t in tiles]
    ends = [*starts[1:], stream_end_ms(clip.path)]
    assert [c[1] for c in cues] == starts and [c[2] for c in cues] == ends
    assert [c[0] for c in cues] == [str(t.number) for t in tiles]
    per_sheet = 12 if "tw_4" in action else 36
    for cue, tile in zip(cues, tiles, strict=True):
        sheet = f"{(tile.number - 1) // per_sheet + 1}.png"
        assert cue[3] == f"{sheet}#xywh={tile.x},{tile.y},{tile.w},{tile.h}"
    if clip_name == "clip_h264_b":
        assert [t.frame for t in tiles] == [87, 87, 88, 89] and cues[0][1] == cues[0][2]


def _params(action: str) -> dict:
    items = action.split(",")[1:]
    values = dict(item.split("_", 1) for item in items)
    values.pop("vtt", None)
    return {k: (v if k in ("f", "m", "scaletype") else int(v)) for k, v in values.items()}


# -- tasks, the command line and batches --------------------------------------------------------


def test_task_saves_sheets_and_storyboard(clip_h264_b: ClipTruth, tmp_path) -> None:
    action = "video/sprite,f_png,sw_48,sh_32,inter_200,tw_3,th_2,pad_1,margin_3,vtt_1"
    spec = saveas(BUCKET, "thumbs/{barename} {index}.{autoext}", action)
    spec += f"/notify,topic_{b64('sprites')}"
    result = ofn.process(str(clip_h264_b.path), spec, store=tmp_path)
    assert result.ok and result.outputs == 4 and result.overwritten == 0
    sheets = [f"thumbs/h264_b {n}.png" for n in (1, 2, 3)]
    assert result.keys == [*sheets, "thumbs/h264_b 1.vtt"]
    api_sheets = list(ofn.sprite(str(clip_h264_b.path), **_params(action)))
    for key, sheet, listed in zip(sheets, api_sheets, result.objects, strict=False):
        assert np.array_equal(decode_image(saved(tmp_path, key)), sheet.array)
        assert (listed.width, listed.height) == (3 * 48 + 2 + 6, 2 * 32 + 1 + 6)
        assert (listed.index, listed.time_ms) == (sheet.number, sheet.time_ms)
    vtt = result.objects[-1]
    assert (vtt.index, vtt.width, vtt.height) == (4, 0, 0)
    cues = vtt_cues(saved(tmp_path, vtt.key).decode())
    assert len(cues) == 15 and cues[6][3] == "h264_b%202.png#xywh=3,3,48,32"
    message = json.loads((tmp_path / ".notify" / "sprites.jsonl").read_text().splitlines()[-1])
    assert [o["key"] for o in message["objects"]] == result.keys


def test_sheet_names(clip_h264_b: ClipTruth, tmp_path) -> None:
    """{index} is the sheet number and {ms} its first tile's time; a name without variables
    and extension gets the default suffix while the storyboard keeps the name as written; a
    fixed name is overwritten by each sheet, as OSS does with snapshots."""
    path = str(clip_h264_b.path)
    action = "video/sprite,f_jpg,sw_32,sh_32,inter_500,tw_2,th_2,vtt_1"  # 6 tiles, 2 sheets
    result = ofn.process(path, saveas(BUCKET, "plain", action), store=tmp_path)
    assert result.keys == ["plain_0_1.jpg", "plain_0_2.jpg", "plain.vtt"]
    result = ofn.process(path, saveas(BUCKET, "by-ms/{ms}.{autoext}", action), store=tmp_path)
    assert result.keys == ["by-ms/0.jpg", "by-ms/2000.jpg", "by-ms/0.vtt"]
    result = ofn.process(path, saveas(BUCKET, "fixed.jpg", action), store=tmp_path)
    assert result.keys == ["fixed.jpg", "fixed.vtt"] and result.overwritten == 1
    assert result.notes and "fixed.jpg" in result.notes[0]


def test_storyboard_requests_checked_before_decoding(clip_h264_b: ClipTruth, tmp_path) -> None:
    path = str(clip_h264_b.path)
    with collect_stats() as stats:
        for obj in ("x.vtt", "{index}.vtt", "a/{ms}.vtt"):
            with pytest.raises(ofn.InvalidArgument) as info:
                ofn.process(path, saveas(BUCKET, obj, "video/sprite,f_jpg,vtt_1"), store=tmp_path)
            assert info.value.param == "o"
        with pytest.raises(ofn.InvalidArgument) as info:
            ofn.process(path, "video/sprite,f_jpg,vtt_1")  # no names to point at
        assert info.value.param == "vtt"
    assert sum(s.frames_decoded for s in stats) == 0 and not (tmp_path / BUCKET).exists()
    sheets = ofn.process(path, "video/sprite,f_png,sw_32,sh_32,inter_1000").images
    assert [(s.number, s.width, len(s.tiles)) for s in sheets] == [(1, 6 * 32 + 14, 3)]


def test_command_line(clip_h264_b: ClipTruth, tmp_path, capsys) -> None:
    out = tmp_path / "sheet.png"
    action = "video/sprite,f_png,sw_32,sh_32,inter_500,tw_2,th_2,vtt_1"
    assert cli_main(["process", str(clip_h264_b.path), action, "-o", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    names = ["sheet_1.png", "sheet_2.png", "sheet.vtt"]
    assert [Path(e["path"]).name for e in listed] == names
    assert [e.get("tiles") for e in listed] == [4, 2, None] and listed[2]["cues"] == 6
    sheets = list(ofn.sprite(str(clip_h264_b.path), **_params(action)))
    for name, sheet in zip(names, sheets, strict=False):
        assert np.array_equal(decode_image((tmp_path / name).read_bytes()), sheet.array)
    cues = vtt_cues((tmp_path / "sheet.vtt").read_text())
    assert [c[3].split("#")[0] for c in cues] == ["sheet_1.png"] * 4 + ["sheet_2.png"] * 2
    for bad in ("-", str(tmp_path / "x.vtt")):
        assert cli_main(["process", str(clip_h264_b.path), action, "-o", bad]) == 2
        assert capsys.readouterr().err.startswith("ossframe: InvalidArgument: -o: ")
    one = "video/sprite,f_png,sw_32,sh_32,num_1"
    assert cli_main(["process", str(clip_h264_b.path), one, "-o", str(tmp_path / "1.png")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "1.png")]


@pytest.mark.needs("urllib3")
def test_a_url_source_gives_the_same_sheets(clip_h264_b: ClipTruth, tmp_path) -> None:
    """A sprite of an http:// URL (ranged requests) is the sprite of the local file, in the
    keyword API and in a saveas task."""
    from remote_support import RangeServer

    params = {"sw": 48, "sh": 32, "inter": 500, "tw": 2, "th": 2}  # 6 tiles, 2 sheets
    local = list(ofn.sprite(str(clip_h264_b.path), **params))
    spec = saveas(
        BUCKET, "u/{index}.{autoext}", "video/sprite,f_png,sw_48,sh_32,inter_500,tw_2,th_2"
    )
    with RangeServer({"clip.mp4": clip_h264_b.path}) as server:
        url = server.url("clip.mp4")
        remote = list(ofn.sprite(url, storage_options={"timeout": 30}, **params))
        result = ofn.process(url, spec, store=tmp_path)
        assert server.counts.total()[0] > 0
    assert [s.tiles for s in remote] == [s.tiles for s in local]
    assert all(np.array_equal(a.array, b.array) for a, b in zip(remote, local, strict=True))
    assert result.ok and result.keys == ["u/1.png", "u/2.png"]
    assert np.array_equal(decode_image(saved(tmp_path, "u/1.png")), local[0].array)


def test_batch(clip_h264_b: ClipTruth, clip_cuts: ClipTruth, tmp_path) -> None:
    spec = saveas(BUCKET, "{barename}/{index}.{autoext}", "video/sprite,f_jpg,sw_32,sh_32,vtt_1")
    summary = ofn.process_many(
        [str(clip_h264_b.path), str(clip_cuts.path)], spec, store=tmp_path, workers=1,
        progress=False,
    )  # fmt: skip
    assert summary.ok and summary.succeeded == 2
    for clip, sheets in ((clip_h264_b, 3), (clip_cuts, 2)):  # 90 and 72 frames, 36 a sheet
        folder = tmp_path / BUCKET / clip.path.stem
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"{n}.jpg" for n in range(1, sheets + 1)] + ["1.vtt"]
        )
        assert len(vtt_cues((folder / "1.vtt").read_text())) == clip.n_frames


# -- a real browser reads the storyboard ---------------------------------------------------------

PAGE = """<!doctype html><html><body>
<video preload="none"><track id="story" kind="metadata" src="{vtt}"></video>
<pre id="out">pending</pre>
<script>
const out = document.getElementById("out");
const story = document.getElementById("story");
async function crop(cue) {
  const [path, box] = cue.text.split("#xywh=");
  const [x, y, w, h] = box.split(",").map(Number);
  const image = new Image();
  image.src = new URL(path, story.src).href;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const g = canvas.getContext("2d", {willReadFrequently: true});
  g.imageSmoothingEnabled = false;
  g.drawImage(image, x, y, w, h, 0, 0, w, h);
  const rgba = g.getImageData(0, 0, w, h).data;
  let bytes = "";
  for (let i = 0; i < rgba.length; i++) bytes += String.fromCharCode(rgba[i]);
  return {id: cue.id, start: cue.startTime, end: cue.endTime, text: cue.text,
          sheet: image.src, w: w, h: h, rgba: btoa(bytes)};
}
story.addEventListener("error", () => { out.textContent = "track error"; });
story.addEventListener("load", async () => {
  try {
    const cues = Array.from(story.track.cues).sort((a, b) => Number(a.id) - Number(b.id));
    out.textContent = JSON.stringify(await Promise.all(cues.map(crop)));
  } catch (e) { out.textContent = "error: " + e; }
});
story.track.mode = "hidden";
</script></body></html>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium here (Debian: apt-get install chromium; .ci/run installs it)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def browser_cues(root: Path, vtt_key: str, tmp_path: Path) -> list[dict]:
    """Serves ``root`` on 127.0.0.1, opens a page whose ``<track>`` is the storyboard in
    headless Chromium and returns what the page read through the TextTrack API."""
    page = root / "storyboard.html"
    page.write_text(PAGE.replace("{vtt}", "/".join(p for p in vtt_key.split("/"))))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/storyboard.html"
        run = subprocess.run(
            [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
                "--virtual-time-budget=20000", "--dump-dom", url,
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="out">(.*?)</pre>', run.stdout, re.S)
    assert found, f"no result in the page (exit {run.returncode}): {run.stderr[-2000:]}"
    text = found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    assert text.startswith("["), text
    return json.loads(text)


def test_chromium_reads_the_storyboard(clip_vfr: ClipTruth, tmp_path) -> None:
    """The sheets lie in one folder per sheet ({index} in the folder), with a space in their
    names: the browser resolves each cue's sheet against the VTT's URL, and the region it crops
    in a canvas is the tile, pixel for pixel; cue times are the frames' times."""
    root = tmp_path / "store"
    action = "video/sprite,f_png,inter_60,tw_3,th_2,pad_2,margin_1,vtt_1"
    spec = saveas(BUCKET, "sprites/{index}/{barename} sheet.{autoext}", action)
    result = ofn.process(str(clip_vfr.path), spec, store=root)
    assert result.ok, result.error_message
    vtt_key = "sprites/1/vfr sheet.vtt"
    assert result.keys[-1] == vtt_key and len(result.keys) > 3  # several sheets
    cues = browser_cues(root / BUCKET, vtt_key.replace(" ", "%20"), tmp_path)
    sheets = list(ofn.sprite(str(clip_vfr.path), **_params(action)))
    tiles = all_tiles(sheets)
    refs = reference_frames(clip_vfr.path)
    assert len(cues) == len(tiles)
    end_ms = stream_end_ms(clip_vfr.path)
    for i, (cue, tile) in enumerate(zip(cues, tiles, strict=True)):
        start = ceil_ms(refs[tile.frame].time)
        end = ceil_ms(refs[tiles[i + 1].frame].time) if i + 1 < len(tiles) else end_ms
        assert (round(cue["start"] * 1000), round(cue["end"] * 1000)) == (start, end)
        assert cue["sheet"].endswith(f"/sprites/{tile.sheet}/vfr%20sheet.png"), cue["sheet"]
        rgba = np.frombuffer(base64.b64decode(cue["rgba"]), np.uint8)
        cropped = rgba.reshape(cue["h"], cue["w"], 4)
        assert (cropped[:, :, 3] == 255).all()
        expected = region(sheets[tile.sheet - 1].array, tile)
        assert np.array_equal(cropped[:, :, :3], expected), f"cue {cue['id']}"
        assert read_frame_number(cropped[:, :, :3].copy()) == refs[tile.frame].number


# -- the service --------------------------------------------------------------------------------


@pytest.mark.needs("server", "oss2", "alibabacloud_oss_v2")
def test_service_async_sprite_with_both_sdks(tmp_path, child_env, clip_h264_b: ClipTruth) -> None:
    import alibabacloud_oss_v2 as oss
    import oss2
    from server_support import AK, REGION, SK, start_server, wait_for

    (tmp_path / "root").mkdir()
    server = start_server(tmp_path / "root", child_env, "--workers", "1")
    try:
        bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, "media-bucket")
        bucket.create_bucket()
        oss2.Bucket(bucket.auth, server.endpoint, BUCKET).create_bucket()
        bucket.put_object_from_file("in/clip.mp4", str(clip_h264_b.path))
        action = "video/sprite,f_jpg,sw_64,sh_36,inter_250,tw_4,th_2,vtt_1"
        local = tmp_path / "local"
        expected: dict[str, dict[str, bytes]] = {}
        submitted = {}
        for sdk in ("oss2", "v2"):
            spec = saveas(BUCKET, f"{sdk}/{{index}}.{{autoext}}", action)
            spec += f"/notify,topic_{b64('sprite-done')}"
            done = ofn.process(str(clip_h264_b.path), spec.split("/notify")[0], store=local)
            expected[sdk] = {key: saved(local, key) for key in done.keys}
            if sdk == "oss2":
                submitted[sdk] = bucket.async_process_object("in/clip.mp4", spec).event_id
            else:
                cfg = oss.config.load_default()
                cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(AK, SK)
                cfg.region, cfg.endpoint = REGION, server.endpoint
                reply = oss.Client(cfg).async_process_object(
                    oss.AsyncProcessObjectRequest(
                        bucket="media-bucket", key="in/clip.mp4", process=spec
                    )
                )
                submitted[sdk] = reply.event_id
        notify = server.root / ".notify" / "sprite-done.jsonl"

        def messages() -> dict | None:
            lines = notify.read_text().splitlines() if notify.exists() else []
            found = {json.loads(line)["id"]: json.loads(line) for line in lines}
            return found if all(e in found for e in submitted.values()) else None

        found = wait_for(messages, what="both notify messages")
        out = oss2.Bucket(bucket.auth, server.endpoint, BUCKET)
        for sdk, event in submitted.items():
            content = json.loads(found[event]["content"])
            assert content["Status"] == "Succeeded", content
            keys = list(expected[sdk])
            assert keys == [f"{sdk}/{n}.jpg" for n in (1, 2)] + [f"{sdk}/1.vtt"]
            assert content["Targets"] == [
                {
                    "URI": f"oss://{BUCKET}/{k}",
                    "Image": {"Sprites": [{"URI": f"oss://{BUCKET}/{k}"}]},
                }
                for k in keys[:-1]
            ] + [{"URI": f"oss://{BUCKET}/{keys[-1]}"}]
            for key, data in expected[sdk].items():
                assert out.get_object(key).read() == data, key
        with pytest.raises(oss2.exceptions.InvalidArgument):  # asynchronous only
            bucket.get_object("in/clip.mp4", process="video/sprite,f_jpg")
    finally:
        assert server.stop() == 0
