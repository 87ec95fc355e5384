"""Object-name templates: variables, braces, the _{streamindex}_{index}.{autoext} rule."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ossframe_native.errors import InvalidArgument
from ossframe_native.names import compile_template
from ossframe_native.sources import barename_of


def names(template: str, count: int = 2, fmt: str = "jpg", barename: str | None = "clip"):
    t = compile_template(template)
    return [
        t.render(index=i, ms=1000 * (i - 1) + 40, autoext=fmt, barename=barename)
        for i in range(1, count + 1)
    ]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{index}.jpg", ["1.jpg", "2.jpg"]),
        ("frames/{barename}_{index}.{autoext}", ["frames/clip_1.jpg", "frames/clip_2.jpg"]),
        ("{barename}/{ms}.{autoext}", ["clip/40.jpg", "clip/1040.jpg"]),
        ("s{streamindex}-{index}.png", ["s0-1.png", "s0-2.png"]),
        ("doc_images/{index}.png", ["doc_images/1.png", "doc_images/2.png"]),
        # literal braces
        ("{{{index}}}.jpg", ["{1}.jpg", "{2}.jpg"]),
        ("a{{b}}/{index}.jpg", ["a{b}/1.jpg", "a{b}/2.jpg"]),
        # no variable, no extension: the OSS suffix
        ("frames", ["frames_0_1.jpg", "frames_0_2.jpg"]),
        ("out/frames", ["out/frames_0_1.jpg", "out/frames_0_2.jpg"]),
        ("out.v2/frames", ["out.v2/frames_0_1.jpg", "out.v2/frames_0_2.jpg"]),
        ("frames/", ["frames/_0_1.jpg", "frames/_0_2.jpg"]),
        (".hidden", [".hidden_0_1.jpg", ".hidden_0_2.jpg"]),
        ("frames.", ["frames._0_1.jpg", "frames._0_2.jpg"]),
        ("a{{b}}", ["a{b}_0_1.jpg", "a{b}_0_2.jpg"]),
        # a fixed name with an extension: every output gets it (each overwrites the last)
        ("cover.jpg", ["cover.jpg", "cover.jpg"]),
        ("dir/cover.png", ["dir/cover.png", "dir/cover.png"]),
        # a variable but no extension: no suffix (the rule needs "no variable")
        ("{barename}", ["clip", "clip"]),
        ("frame_{index}", ["frame_1", "frame_2"]),
    ],
)
def test_render(template: str, expected: list[str]) -> None:
    assert names(template) == expected


def test_autoext_follows_format() -> None:
    assert names("x", 1, fmt="png") == ["x_0_1.png"]
    assert names("{index}.{autoext}", 1, fmt="png") == ["1.png"]


def test_fixed_and_suffixed_flags() -> None:
    assert compile_template("cover.jpg").fixed
    assert compile_template("{barename}.{autoext}").fixed
    assert not compile_template("{index}.jpg").fixed
    assert not compile_template("{ms}.jpg").fixed
    assert not compile_template("frames").fixed  # the suffix adds {index}
    assert compile_template("frames").suffixed
    assert not compile_template("frames.jpg").suffixed
    assert compile_template("a_{index}").variables == {"index"}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{name}.jpg", "unknown variable {name}"),
        ("{INDEX}.jpg", "unknown variable {INDEX}"),
        ("{index:03d}.jpg", "unknown variable {index:03d}"),
        ("{}.jpg", "unknown variable {}"),
        ("{index.jpg", "unclosed '{'"),
        ("index}.jpg", "stray '}'"),
        ("{{index}.jpg", "stray '}'"),
    ],
)
def test_template_errors(template: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_template(template)
    assert info.value.param == "o"
    assert message in str(info.value)
    if "unknown" in message:
        assert "{index}" in str(info.value) and "{ms}" in str(info.value)


@pytest.mark.parametrize(
    "template",
    ["../{index}.jpg", "/abs/{index}.jpg", "a\\{index}.jpg", "a//{index}.jpg", "{index}/../x.jpg"],
)
def test_rendered_names_may_not_escape(template: str) -> None:
    t = compile_template(template)
    with pytest.raises(InvalidArgument):
        t.render(index=1, ms=0, autoext="jpg", barename="clip")


def test_barename_that_escapes_is_refused() -> None:
    t = compile_template("{barename}/{index}.jpg")
    with pytest.raises(InvalidArgument):
        t.render(index=1, ms=0, autoext="jpg", barename="..")
    with pytest.raises(InvalidArgument):
        t.render(index=1, ms=0, autoext="jpg", barename="a\\b")


def test_barename_needed_but_missing() -> None:
    t = compile_template("{barename}_{index}.jpg")
    with pytest.raises(InvalidArgument, match="file name"):
        t.render(index=1, ms=0, autoext="jpg", barename=None)
    # not needed: fine without one
    assert compile_template("{index}.jpg").render(index=3, ms=0, autoext="jpg", barename=None)


def test_long_names() -> None:
    t = compile_template(("x" * 250 + "/") * 4 + "{index}.jpg")
    assert len(t.render(index=1, ms=0, autoext="jpg", barename=None)) == 1009
    with pytest.raises(InvalidArgument, match="1023"):
        t.render(index=10**30, ms=0, autoext="jpg", barename=None)


def test_barename_of(tmp_path: Path) -> None:
    assert barename_of("/videos/clip.mp4") == "clip"
    assert barename_of(Path("/videos/clip.final.mp4")) == "clip.final"
    assert barename_of("relative/noext") == "noext"
    assert barename_of(".hidden") == ".hidden"
    assert barename_of("名前.mov") == "名前"
    assert barename_of(b"\x00\x00") is None
    assert barename_of(io.BytesIO(b"")) is None
    path = tmp_path / "movie.mkv"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        assert barename_of(f) == "movie"
