"""Process strings and parameters: every rule of docs/BEHAVIOUR.md,
"Process strings" to "Sizes and geometry".

Each error case asserts that ``InvalidArgument`` names the parameter (``.param``) and that the
message states what is allowed (the range's bounds, or the allowed words).
"""

from __future__ import annotations

import base64
import re

import pytest
from media import ClipTruth, b64


def invalid(ofn, spec: str, param: str):
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.parse_process(spec)
    assert exc.value.param == param, f"{spec!r}: param {exc.value.param!r}, expected {param!r}"
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, ofn.FrameError)
    return str(exc.value)


def states(message: str, *words: str | int) -> None:
    for word in words:
        assert re.search(rf"(?<![0-9A-Za-z]){re.escape(str(word))}(?![0-9A-Za-z])", message), (
            f"message does not state {word!r}: {message!r}"
        )


SNAP = "video/snapshot,f_jpg"
SNAPS = "video/snapshots,f_jpg"


# --------------------------------------------------------------------------------------------
# Valid strings


def test_parse_snapshot_example(ofn) -> None:
    req = ofn.parse_process("video/snapshot,t_7000,f_jpg,w_800,h_600,m_fast")
    a = req.action
    assert (a.t, a.f, a.w, a.h, a.m, a.ar) == (7000, "jpg", 800, 600, "fast", None)
    assert req.saveas is None and req.notify is None


def test_parse_snapshot_defaults(ofn) -> None:
    a = ofn.parse_process("video/snapshot,f_png").action
    assert (a.t, a.w, a.h, a.m, a.f, a.ar) == (0, 0, 0, None, "png", None)
    assert ofn.parse_process("video/snapshot,f_jpg,ar_auto").action.ar == "auto"
    assert ofn.parse_process("video/snapshot,f_jpg,t_99999999999").action.t == 99999999999


def test_parse_snapshots_defaults(ofn) -> None:
    a = ofn.parse_process("video/snapshots,f_jpg").action
    assert (a.ss, a.f, a.m, a.thr, a.num, a.inter) == (0, "jpg", "default", 0, 0, 0)
    assert (a.w, a.h, a.pw, a.ph, a.scaletype) == (None, None, None, None, "stretch")


def test_parse_snapshots_example_with_saveas_and_notify(ofn) -> None:
    spec = (
        "video/snapshots,m_dhash,f_jpg,inter_1000,thr_15"
        f"|sys/saveas,b_{b64('bucket')},o_{b64('frames/{index}.{autoext}')}"
        f"/notify,topic_{b64('done')}"
    )
    req = ofn.parse_process(spec)
    a = req.action
    assert (a.m, a.f, a.inter, a.thr) == ("dhash", "jpg", 1000, 15)
    assert (req.saveas.bucket, req.saveas.object) == ("bucket", "frames/{index}.{autoext}")
    assert req.notify.topic == "done"


def test_parameter_order_is_free(ofn) -> None:
    a = ofn.parse_process("video/snapshots,scaletype_fit,w_100,f_png,ph_50,m_key,num_3").action
    assert (a.scaletype, a.w, a.f, a.ph, a.m, a.num) == ("fit", 100, "png", 50, "key", 3)


@pytest.mark.parametrize(
    ("param", "lo", "hi"),
    [("thr", 0, 100), ("w", 32, 4096), ("h", 32, 4096), ("pw", 1, 200), ("ph", 1, 200)],
)
def test_snapshots_bounds_accepted(ofn, param: str, lo: int, hi: int) -> None:
    for value in (lo, hi):
        assert getattr(ofn.parse_process(f"{SNAPS},{param}_{value}").action, param) == value


def test_zero_and_leading_zero(ofn) -> None:
    a = ofn.parse_process("video/snapshots,f_jpg,num_0,inter_0,ss_0,thr_007").action
    assert (a.num, a.inter, a.ss, a.thr) == (0, 0, 0, 7)


# --------------------------------------------------------------------------------------------
# Structure errors


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (f"{SNAP},foo_1", "foo"),
        (f"{SNAP},inter_10", "inter"),  # a snapshots key on snapshot
        (f"{SNAPS},t_10", "t"),  # a snapshot key on snapshots
        (f"{SNAPS},ar_auto", "ar"),
        (f"{SNAP},quality_90", "quality"),
    ],
)
def test_unknown_key(ofn, spec: str, param: str) -> None:
    message = invalid(ofn, spec, param)
    assert "unknown" in message.lower()


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (f"{SNAP},t_0,t_5", "t"),
        ("video/snapshot,f_jpg,f_png", "f"),
        (f"{SNAPS},m_key,m_avg,num_2", "m"),
        (f"{SNAPS},w_100,w_100", "w"),
    ],
)
def test_repeated_key(ofn, spec: str, param: str) -> None:
    message = invalid(ofn, spec, param)
    assert "once" in message.lower() or "repeat" in message.lower() or "twice" in message.lower()


@pytest.mark.parametrize(
    ("spec", "param"),
    [("video/snapshot,t_0", "f"), ("video/snapshots,m_key", "f"), ("video/snapshots", "f")],
)
def test_missing_f(ofn, spec: str, param: str) -> None:
    message = invalid(ofn, spec, param)
    assert "required" in message.lower()


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "video/info,f_jpg",
        "image/resize,w_100",
        "video/snapshot",  # no f
        "VIDEO/SNAPSHOT,f_jpg",
        "video/snapshot,T_0,f_jpg",  # keys are lower case
        "video/snapshot,t0,f_jpg",  # not key_value
        "video/snapshot,f_jpg|sys/saveas",
        "video/snapshot,f_jpg|bogus,x_1",
    ],
)
def test_malformed_strings(ofn, spec: str) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.parse_process(spec)
    assert exc.value.param  # names something
    assert str(exc.value)


# --------------------------------------------------------------------------------------------
# Integer values


NOT_INTEGERS = ["1.5", "+3", " 3", "3 ", "0x10", "", "-1", "1e3", "\uff11", "３", "1_000", "abc"]

INT_PARAMS = [
    (SNAP, "t"),
    (SNAP, "w"),
    (SNAP, "h"),
    (SNAPS, "ss"),
    (SNAPS, "thr"),
    (SNAPS, "num"),
    (SNAPS, "inter"),
    (SNAPS, "w"),
    (SNAPS, "h"),
    (SNAPS, "pw"),
    (SNAPS, "ph"),
]


@pytest.mark.parametrize(("base", "param"), INT_PARAMS)
@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_non_integer_values(ofn, base: str, param: str, value: str) -> None:
    message = invalid(ofn, f"{base},{param}_{value}", param)
    assert "integer" in message.lower()


@pytest.mark.parametrize(
    ("base", "param", "lo", "hi", "bad"),
    [
        (SNAPS, "thr", 0, 100, [101, 1000]),
        (SNAPS, "w", 32, 4096, [31, 0, 4097]),
        (SNAPS, "h", 32, 4096, [31, 1, 4097]),
        (SNAPS, "pw", 1, 200, [0, 201]),
        (SNAPS, "ph", 1, 200, [0, 201]),
    ],
)
def test_out_of_range(ofn, base: str, param: str, lo: int, hi: int, bad: list[int]) -> None:
    for value in bad:
        message = invalid(ofn, f"{base},{param}_{value}", param)
        states(message, lo, hi)


@pytest.mark.parametrize(("base", "param"), INT_PARAMS)
def test_negative_is_out_of_range(ofn, base: str, param: str) -> None:
    """-1 is both not plain decimal and below every lower bound; the message gives the range."""
    message = invalid(ofn, f"{base},{param}_-1", param)
    lo = {"w": 32, "h": 32, "pw": 1, "ph": 1}.get(param, 0) if base == SNAPS else 0
    states(message, lo)


def test_avg_needs_num(ofn) -> None:
    message = invalid(ofn, f"{SNAPS},m_avg", "num")
    states(message, 1)
    message = invalid(ofn, f"{SNAPS},m_avg,num_0", "num")
    states(message, 1)
    assert ofn.parse_process(f"{SNAPS},m_avg,num_1").action.num == 1


# --------------------------------------------------------------------------------------------
# Word values


@pytest.mark.parametrize(
    ("base", "param", "bad", "allowed"),
    [
        (SNAP, "m", ["default", "exact", "FAST", "", "key"], ["fast"]),
        (
            SNAPS,
            "m",
            ["fast", "Default", "", "scene", "keyframe"],
            ["default", "avg", "dhash", "key"],
        ),
        (SNAP, "ar", ["none", "AUTO", "", "portrait", "0"], ["auto", "w", "h"]),
        (SNAPS, "scaletype", ["lfit", "pad", "", "STRETCH"], ["stretch", "crop", "fill", "fit"]),
        ("video/snapshot", "f", ["jpeg", "gif", "webp", "", "PNG"], ["jpg", "png"]),
        ("video/snapshots", "f", ["bmp", "jpeg"], ["jpg", "png"]),
    ],
)
def test_bad_words(ofn, base: str, param: str, bad: list[str], allowed: list[str]) -> None:
    for value in bad:
        message = invalid(ofn, f"{base},{param}_{value}", param)
        states(message, *allowed)


# --------------------------------------------------------------------------------------------
# saveas / notify and base64


@pytest.mark.parametrize("pad", [True, False])
@pytest.mark.parametrize("newline", [False, True])
@pytest.mark.parametrize(
    "text", ["b", "bk", "bkt", "my-bucket", "frames/{index}_{ms}.{autoext}", "a?b>c~d.jpg", "名前"]
)
def test_base64_forms(ofn, text: str, pad: bool, newline: bool) -> None:
    """URL-safe base64, with or without padding; one trailing newline in the text is dropped."""
    enc = b64(text, pad=pad, newline=newline)
    bucket = "b" * (len(text) % 3 + 1) + "kt"  # 2..4 characters: every padding length
    benc = b64(bucket, pad=pad, newline=newline)
    topic = "t" * (len(text) % 3 + 1) + "opic"  # a valid topic name, every padding length
    tenc = b64(topic, pad=pad, newline=newline)
    req = ofn.parse_process(f"{SNAP}|sys/saveas,b_{benc},o_{enc}|notify,topic_{tenc}")
    assert req.saveas.bucket == bucket
    assert req.saveas.object == text
    assert req.notify.topic == topic


def test_url_safe_alphabet(ofn) -> None:
    text = "a?b>c~d.jpg"  # encodes to '-' and '_' in the URL-safe alphabet
    enc = b64(text)
    assert "-" in enc or "_" in enc
    assert ofn.parse_process(f"{SNAP}|sys/saveas,b_{b64('bkt')},o_{enc}").saveas.object == text


@pytest.mark.parametrize("sep", ["/", "|"])
def test_notify_after_saveas(ofn, sep: str) -> None:
    spec = f"{SNAPS}|sys/saveas,b_{b64('bkt')},o_{b64('out')}{sep}notify,topic_{b64('t1')}"
    req = ofn.parse_process(spec)
    assert (req.saveas.bucket, req.saveas.object, req.notify.topic) == ("bkt", "out", "t1")


def test_saveas_alone_and_notify_alone(ofn) -> None:
    req = ofn.parse_process(f"{SNAP}|sys/saveas,b_{b64('bkt')},o_{b64('o.jpg')}")
    assert req.saveas.object == "o.jpg" and req.notify is None
    message = invalid(ofn, f"{SNAP}|notify,topic_{b64('t')}", "notify")
    assert "needs sys/saveas" in message


NOT_UTF8 = base64.urlsafe_b64encode(bytes([0xFF, 0xFE, 0x80])).decode()


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (f"{SNAP}|sys/saveas,b_@@@,o_{b64('o')}", "b"),
        (f"{SNAP}|sys/saveas,b_{b64('b')},o_a", "o"),  # 1 char: not a base64 length
        (f"{SNAP}|sys/saveas,b_{b64('b')},o_ab!d", "o"),
        (f"{SNAP}|sys/saveas,b_{b64('b')},o_a+b/", "o"),  # standard alphabet, not URL-safe
        (f"{SNAP}|sys/saveas,b_{b64('bkt')},o_{b64('o')}/notify,topic_%%%", "topic"),
        (f"{SNAP}|sys/saveas,b_{b64('bkt')},o_{b64('o')}|notify,topic_", "topic"),
        (f"{SNAP}|sys/saveas,b_{b64('b')},o_", "o"),
        (f"{SNAP}|sys/saveas,b_{b64('b')}", "o"),  # o missing
        (f"{SNAP}|sys/saveas,o_{b64('o')}", "b"),  # b missing
        (f"{SNAP}|sys/saveas,b_{b64('b')},o_{b64('o')},x_1", "x"),
        (f"{SNAP}|sys/saveas,b_{NOT_UTF8},o_{b64('o')}", "b"),  # base64 of bytes, not text
    ],
)
def test_bad_saveas_notify(ofn, spec: str, param: str) -> None:
    invalid(ofn, spec, param)


def test_repeated_saveas_key(ofn) -> None:
    invalid(ofn, f"{SNAP}|sys/saveas,b_{b64('b')},b_{b64('c')},o_{b64('o')}", "b")


# --------------------------------------------------------------------------------------------
# Validation happens before anything runs


def test_nothing_runs_on_a_bad_string(ofn, empty_file, random_file) -> None:
    """A bad process string is InvalidArgument even on a file that cannot be decoded: the
    string is checked before the source is opened."""
    for source in (empty_file, random_file, b"not a video"):
        with pytest.raises(ofn.InvalidArgument) as exc:
            ofn.process(source, "video/snapshot,t_1.5,f_jpg")
        assert exc.value.param == "t"
        with pytest.raises(ofn.InvalidArgument):
            ofn.process(source, "video/snapshots,f_jpg,m_avg")


def test_keyword_api_validates_first(ofn, empty_file, random_file) -> None:
    for source in (empty_file, random_file):
        with pytest.raises(ofn.InvalidArgument) as exc:
            ofn.snapshot(source, t=0, f="gif")
        assert exc.value.param == "f"
        with pytest.raises(ofn.InvalidArgument) as exc:
            ofn.snapshots(source, f="jpg", thr=101)
        assert exc.value.param == "thr"
        with pytest.raises(ofn.InvalidArgument) as exc:
            ofn.snapshots(source, f="jpg", m="avg")
        assert exc.value.param == "num"
        with pytest.raises(ofn.InvalidArgument) as exc:
            ofn.frames(source, scaletype="zoom")
        assert exc.value.param == "scaletype"


def test_keyword_api_unknown_and_wrong_types(ofn, clip_h264_b: ClipTruth) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(clip_h264_b.path, t=1.5, f="jpg")
    assert exc.value.param == "t"
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(clip_h264_b.path, t=-5, f="jpg")
    assert exc.value.param == "t"
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshots(clip_h264_b.path, f="jpg", num=True)
    assert exc.value.param == "num"


# --------------------------------------------------------------------------------------------
# Ranges that need the media


def test_ss_at_or_after_duration(ofn, clip_h264_b: ClipTruth) -> None:
    """clip_h264_b lasts 3000 ms: ss 3000 or more is InvalidArgument, 2999 is the last frame."""
    for ss in (3000, 3001, 10**7):
        with pytest.raises(ofn.InvalidArgument) as exc:
            list(ofn.snapshots(clip_h264_b.path, f="jpg", ss=ss))
        assert exc.value.param == "ss"
        states(str(exc.value), 3000)
        with pytest.raises(ofn.InvalidArgument) as exc:
            ofn.process(clip_h264_b.path, f"video/snapshots,f_jpg,m_key,ss_{ss}")
        assert exc.value.param == "ss"
    assert [i.index for i in ofn.snapshots(clip_h264_b.path, f="jpg", ss=2999)] == [89]
    for mode in ("avg", "dhash", "key"):
        with pytest.raises(ofn.InvalidArgument) as exc:
            list(ofn.snapshots(clip_h264_b.path, f="jpg", m=mode, num=2, ss=3000))
        assert exc.value.param == "ss"


def test_t_past_the_end_is_not_an_error(ofn, clip_h264_b: ClipTruth) -> None:
    assert ofn.snapshot(clip_h264_b.path, t=3000, f="jpg").index == 89
    assert ofn.snapshot(clip_h264_b.path, t=99999999999, f="jpg").index == 89


def test_huge_integer_is_rejected_before_conversion(ofn) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.parse_process("video/snapshot,f_jpg,t_" + "9" * 5000)
    assert exc.value.param == "t"
    assert "0..9007199254740991" in str(exc.value)


def test_keyword_api_takes_numpy_integers(ofn) -> None:
    np = pytest.importorskip("numpy")
    request = ofn.params.SnapshotsRequest.from_kwargs({"inter": np.int64(1000), "num": np.uint8(3)})
    assert (request.inter, request.num) == (1000, 3)
    assert type(request.inter) is int


@pytest.mark.parametrize("value", ["YQ=", "YQ===", "YWJj=", "YWJjZA="])
def test_base64_padding_must_be_complete_or_absent(ofn, value) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.parse_process(f"video/snapshot,f_jpg|sys/saveas,b_{b64('bucket')},o_{value}")
    assert exc.value.param == "o"
