"""Property tests of process strings (hypothesis, derandomized so CI runs are repeatable).

* ``parse_process`` on arbitrary text, and on mutations of valid strings, either returns a
  request or raises ``InvalidArgument``: nothing else escapes.
* Whatever ``parse_process`` accepts, ``process`` does not reject before decoding (on a tiny
  clip and a ``LocalStore`` in a temporary directory), except for the ranges that depend on the
  media (``w``/``h`` of a snapshot against the source size, ``ss`` against the duration).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media import b64, make_clip, saveas

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID = [
    "video/snapshot,t_7000,f_jpg,w_800,h_600,m_fast",
    "video/snapshot,f_png,ar_auto",
    "video/snapshots,m_dhash,f_jpg,inter_1000,thr_15",
    "video/snapshots,f_jpg,m_avg,num_3,w_64,scaletype_crop",
    f"video/snapshots,f_jpg,m_key|sys/saveas,b_{b64('bkt')},o_{b64('f/{index}.{autoext}')}"
    f"/notify,topic_{b64('t1')}",
    f"video/snapshot,f_jpg|sys/saveas,b_{b64('my-bucket')},o_{b64('x.jpg')}|notify,topic_"
    + b64("topic_2"),
    "video/sprite,f_jpg,sw_100,sh_100,inter_10000,tw_10,th_10,pad_0,margin_0",
    f"video/sprite,f_png,m_avg,num_4,psw_50,vtt_1|sys/saveas,b_{b64('bkt')},o_{b64('s/{index}')}",
]


def _only_invalid_argument(ofn, spec: str) -> None:
    with contextlib.suppress(ofn.InvalidArgument):
        ofn.parse_process(spec)


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text(ofn, spec: str) -> None:
    _only_invalid_argument(ofn, spec)


@SETTINGS
@given(
    st.text(alphabet="video/snapshots,_|tfmwhnumssinterthrpwphscaletypeabjpgo{}=-0123456789 \x00é")
)
def test_text_from_the_alphabet_of_specs(ofn, spec: str) -> None:
    _only_invalid_argument(ofn, spec)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    spec = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(spec)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        piece = draw(st.sampled_from([",", "_", "|", "/", "{", "}", "=", "0" * 5000, "9" * 30]))
        piece = draw(st.one_of(st.just(piece), st.text(max_size=8)))
        end = min(len(spec), at + draw(st.integers(0, 12)))
        if kind == "insert":
            spec = spec[:at] + piece + spec[at:]
        elif kind == "delete":
            spec = spec[:at] + spec[end:]
        elif kind == "replace":
            spec = spec[:at] + piece + spec[end:]
        else:
            spec = spec[:at] + spec[at:end] * 2 + spec[end:]
    return spec


@SETTINGS
@given(mutated())
def test_mutations_of_valid_specs(ofn, spec: str) -> None:
    _only_invalid_argument(ofn, spec)


# --------------------------------------------------------------------------------------------
# What parse_process accepts, process accepts (before decoding)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 frames of 96x64 at 10 fps, GOP 3."""
    return make_clip(tmp_path_factory.mktemp("fuzz") / "clip.mp4", n_frames=6, fps=10, gop=3).path


NAMES = st.sampled_from(
    ["o.jpg", "f/{index}.{autoext}", "{barename}_{ms}", "a{{b}}c", "x", "d/e/{index}", "../x"]
    + ["{what}", "{index", "/abs", "é" * 130, "s" * 256]
)
BUCKETS = st.sampled_from(["bkt", "my-bucket", "Bucket", "b", "a" * 64, "bk_t"])
TOPICS = st.sampled_from(["t1", "topic_2", "../../x", "", "a" * 257])


@st.composite
def specs(draw: st.DrawFn) -> str:
    snapshot = draw(st.booleans())
    if snapshot:
        params = {
            "t": draw(st.integers(0, 2**53 + 1)),
            "w": draw(st.integers(0, 120)),
            "h": draw(st.integers(0, 80)),
            "m": draw(st.sampled_from(["fast", "slow"])),
            "ar": draw(st.sampled_from(["auto", "w", "h", "x"])),
        }
    else:
        params = {
            "ss": draw(st.integers(0, 700)),
            "m": draw(st.sampled_from(["default", "avg", "dhash", "key", "all"])),
            "num": draw(st.integers(0, 4)),
            "inter": draw(st.integers(0, 2**53 + 1)),
            "thr": draw(st.integers(0, 101)),
            "w": draw(st.integers(30, 70)),
            "pw": draw(st.integers(0, 201)),
            "scaletype": draw(st.sampled_from(["stretch", "crop", "fill", "fit", "zoom"])),
        }
    chosen = draw(st.lists(st.sampled_from(sorted(params)), unique=True, max_size=4))
    fmt = draw(st.sampled_from(["jpg", "png", "gif"]))
    items = [f"{key}_{params[key]}" for key in chosen] + [f"f_{fmt}"]
    spec = ("video/snapshot," if snapshot else "video/snapshots,") + ",".join(items)
    if draw(st.booleans()):
        spec += f"|sys/saveas,b_{b64(draw(BUCKETS))},o_{b64(draw(NAMES))}"
    if draw(st.integers(0, 3)) == 0:
        spec += f"/notify,topic_{b64(draw(TOPICS)) if draw(st.booleans()) else ''}"
    return spec


# Ranges checked against the probed source (not knowable from the string alone).
MEDIA_PARAMS = {"video/snapshot": {"w", "h"}, "video/snapshots": {"ss"}}


@settings(SETTINGS, max_examples=40)
@given(specs())
def test_process_accepts_what_parse_process_accepts(
    ofn, tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory, spec: str
) -> None:
    try:
        request = ofn.parse_process(spec)
    except ofn.InvalidArgument:
        return
    store = ofn.LocalStore(tmp_path_factory.mktemp("store"))
    try:
        result = ofn.process(tiny_clip, spec, store=store)
    except ofn.InvalidArgument as exc:
        assert exc.param in MEDIA_PARAMS[request.action.action], (spec, str(exc))
        return
    if request.saveas is not None:
        assert result.state == "Succeeded", (spec, result.error_message)


SPRITE_BUCKET = "sprite-bucket"


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_sprite_process_accepts_what_parse_process_accepts(
    ofn, tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory, data
) -> None:
    """Whatever sprite string parse_process accepts runs, except for the ranges that depend on
    the media (ss against the duration, a sheet sized by the source) and vtt_1 without saveas."""
    values = {
        "ss": st.integers(0, 700),
        "m": st.sampled_from(["inter", "avg", "dhash", "key"]),
        "num": st.integers(0, 3),
        "inter": st.integers(0, 20000),
        "thr": st.integers(0, 100),
        "sw": st.integers(32, 300),
        "psh": st.integers(1, 200),
        "scaletype": st.sampled_from(["stretch", "crop", "fill", "fit"]),
        "tw": st.integers(1, 120),
        "th": st.integers(1, 3),
        "pad": st.integers(0, 9000),
        "margin": st.integers(0, 9000),
        "vtt": st.integers(0, 1),
    }
    chosen = data.draw(st.lists(st.sampled_from(sorted(values)), unique=True, max_size=6))
    items = [f"{key}_{data.draw(values[key])}" for key in chosen]
    spec = ",".join(["video/sprite", "f_png", *items])
    if data.draw(st.booleans()):
        name = data.draw(st.sampled_from(["s/{index}.{autoext}", "plain", "x.vtt", "{ms}.png"]))
        spec = saveas(SPRITE_BUCKET, name, spec)
    try:
        request = ofn.parse_process(spec)
    except ofn.InvalidArgument:
        return
    try:
        result = ofn.process(tiny_clip, spec, store=tmp_path_factory.mktemp("store"))
    except ofn.InvalidArgument as exc:
        no_names = exc.param == "vtt" and request.saveas is None and request.action.vtt
        assert exc.param in ("ss", "tw", "th") or no_names, (spec, str(exc))
        return
    assert result.state == "Succeeded", (spec, result.error_message)
