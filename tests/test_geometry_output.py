"""Output geometry: w/h/pw/ph and the four scaletypes (docs/BEHAVIOUR.md, "Sizes and geometry")
give the specified sizes and content, compared with an OpenCV resize of the exact reference frame
(PNG, PSNR >= 35 dB).

Rules of ours where the OSS documentation is silent (also in docs/BEHAVIOUR.md):

* one side given (``w`` or ``pw`` without ``h``/``ph``, or the reverse): the other side keeps
  the source aspect ratio, rounded to the nearest pixel (at least 1), for every scaletype;
* ``pw``/``ph`` sizes are ``round(source side * percent / 100)``, at least 1;
* ``fill`` centres the picture on the black canvas (offset ``(canvas - size) // 2``, +-1 px).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from media import ClipTruth, decode_image, psnr, reference_frames, shown_at

T_MS = 400  # clip_smooth is 25 fps: frame 10


def reference_resize(src: np.ndarray, w: int, h: int) -> np.ndarray:
    """OpenCV reference: INTER_AREA for downscales of 2x or more, else INTER_LINEAR."""
    sh, sw = src.shape[:2]
    area = sw >= w and sh >= h and max(sw / w, sh / h) >= 2
    return cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)


def reference_crop(src: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale to cover w x h, centre crop: the centred source rectangle of aspect w:h, resized."""
    sh, sw = src.shape[:2]
    if sw * h > sh * w:  # source wider than the box: crop columns
        cw = round(sh * w / h)
        x = (sw - cw) // 2
        part = src[:, x : x + cw]
    else:
        ch = round(sw * h / w)
        y = (sh - ch) // 2
        part = src[y : y + ch]
    return reference_resize(np.ascontiguousarray(part), w, h)


def fitted(sw: int, sh: int, w: int, h: int) -> tuple[int, int]:
    s = min(w / sw, h / sh)
    return max(1, round(sw * s)), max(1, round(sh * s))


@pytest.fixture(scope="module")
def frame10(clip_smooth: ClipTruth) -> np.ndarray:
    refs = reference_frames(clip_smooth.path)
    k = shown_at(refs, T_MS)
    assert k == 10
    return refs[k].rgb


def one(ofn, clip: ClipTruth, **kwargs):
    images = list(ofn.snapshots(clip.path, f="png", ss=T_MS, num=1, **kwargs))
    assert len(images) == 1
    assert images[0].index == 10
    rgb = decode_image(images[0].data)
    assert (images[0].width, images[0].height) == (rgb.shape[1], rgb.shape[0])
    return rgb


# --------------------------------------------------------------------------------------------
# snapshots: sizes


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [
        ({}, (320, 180)),
        ({"w": 160, "h": 90}, (160, 90)),
        ({"w": 100, "h": 100}, (100, 100)),
        ({"w": 32, "h": 32}, (32, 32)),
        ({"w": 4096, "h": 32}, (4096, 32)),
        ({"w": 32, "h": 4096}, (32, 4096)),
        ({"w": 160}, (160, 90)),  # one side: aspect kept
        ({"w": 100}, (100, 56)),  # 56.25 -> 56
        ({"h": 90}, (160, 90)),
        ({"h": 100}, (178, 100)),  # 177.8 -> 178
        ({"pw": 50}, (160, 90)),
        ({"ph": 50}, (160, 90)),
        ({"pw": 50, "ph": 100}, (160, 180)),
        ({"pw": 200, "ph": 200}, (640, 360)),
        ({"pw": 1, "ph": 1}, (3, 2)),  # 3.2 x 1.8
        ({"pw": 33}, (106, 60)),  # 105.6 -> 106, 59.6 -> 60 (aspect from the width: 59.6)
        ({"w": 100, "pw": 50}, (100, 56)),  # pw ignored where w is given
        ({"h": 90, "pw": 25}, (80, 90)),  # pw applies to the width
        ({"w": 100, "h": 100, "scaletype": "crop"}, (100, 100)),
        ({"w": 100, "h": 100, "scaletype": "fill"}, (100, 100)),
        ({"w": 100, "h": 100, "scaletype": "fit"}, (100, 56)),
        ({"w": 64, "h": 200, "scaletype": "fit"}, (64, 36)),
        ({"w": 400, "h": 100, "scaletype": "fit"}, (178, 100)),
        ({"w": 160, "scaletype": "fit"}, (160, 90)),
        ({"w": 160, "scaletype": "crop"}, (160, 90)),
        ({"pw": 50, "ph": 100, "scaletype": "fit"}, (160, 90)),
        ({"pw": 50, "ph": 100, "scaletype": "fill"}, (160, 180)),
    ],
)
def test_snapshots_sizes(ofn, clip_smooth: ClipTruth, kwargs: dict, size: tuple[int, int]):
    rgb = one(ofn, clip_smooth, **kwargs)
    assert (rgb.shape[1], rgb.shape[0]) == size


@pytest.mark.parametrize(
    ("param", "bad", "good"),
    [
        ("w", (31, 4097, 0, -1), (32, 4096)),
        ("h", (31, 4097, 0, -1), (32, 4096)),
        ("pw", (0, 201, -5), (1, 200)),
        ("ph", (0, 201, -5), (1, 200)),
    ],
)
def test_snapshots_size_bounds(ofn, clip_smooth: ClipTruth, param, bad, good) -> None:
    for value in bad:
        with pytest.raises(ofn.InvalidArgument) as exc:
            list(ofn.snapshots(clip_smooth.path, f="jpg", num=1, **{param: value}))
        assert exc.value.param == param
        lo, hi = (32, 4096) if param in ("w", "h") else (1, 200)
        assert f"{lo}" in str(exc.value) and f"{hi}" in str(exc.value)
    other = {"w": "h", "h": "w", "pw": "ph", "ph": "pw"}[param]
    for value in good:
        fixed = 32 if other in ("w", "h") else 10
        images = list(
            ofn.snapshots(clip_smooth.path, f="jpg", num=1, **{param: value, other: fixed})
        )
        assert len(images) == 1


# --------------------------------------------------------------------------------------------
# snapshots: content


@pytest.mark.parametrize(
    ("w", "h"),
    [(160, 90), (100, 100), (64, 36), (32, 32), (500, 300), (640, 360), (250, 200), (80, 170)],
)
def test_stretch_content(ofn, clip_smooth: ClipTruth, frame10, w: int, h: int) -> None:
    got = one(ofn, clip_smooth, w=w, h=h, scaletype="stretch")
    value = psnr(got, reference_resize(frame10, w, h))
    assert value >= 35, f"stretch {w}x{h}: PSNR {value:.1f} dB"


def test_source_size_is_exact(ofn, clip_smooth: ClipTruth, frame10) -> None:
    """w/h equal to the source (or pw=ph=100): no resampling, bit-exact."""
    for kwargs in ({"w": 320, "h": 180}, {"pw": 100, "ph": 100}, {}):
        assert np.array_equal(one(ofn, clip_smooth, **kwargs), frame10), kwargs


@pytest.mark.parametrize(("w", "h"), [(100, 100), (400, 100), (64, 200), (160, 160), (300, 120)])
def test_crop_content(ofn, clip_smooth: ClipTruth, frame10, w: int, h: int) -> None:
    got = one(ofn, clip_smooth, w=w, h=h, scaletype="crop")
    assert got.shape == (h, w, 3)
    value = psnr(got, reference_crop(frame10, w, h))
    assert value >= 35, f"crop {w}x{h}: PSNR {value:.1f} dB"


def _best_placement(got: np.ndarray, content: np.ndarray, x0: int, y0: int):
    """The +-1 px offset at which ``content`` best matches ``got`` (PSNR, x, y)."""
    ch, cw = content.shape[:2]
    best = (-1.0, x0, y0)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            x, y = x0 + dx, y0 + dy
            if x < 0 or y < 0 or x + cw > got.shape[1] or y + ch > got.shape[0]:
                continue
            best = max(best, (psnr(got[y : y + ch, x : x + cw], content), x, y))
    return best


@pytest.mark.parametrize(("w", "h"), [(100, 100), (64, 200), (400, 100), (320, 320), (600, 200)])
def test_fill_content_and_padding(ofn, clip_smooth: ClipTruth, frame10, w: int, h: int) -> None:
    got = one(ofn, clip_smooth, w=w, h=h, scaletype="fill")
    assert got.shape == (h, w, 3)
    cw, ch = fitted(320, 180, w, h)
    content = reference_resize(frame10, cw, ch)
    value, x, y = _best_placement(got, content, (w - cw) // 2, (h - ch) // 2)
    assert value >= 35, f"fill {w}x{h}: picture PSNR {value:.1f} dB"
    mask = np.ones((h, w), bool)  # padding = everything but the picture (and a 1 px seam)
    mask[max(y - 1, 0) : y + ch + 1, max(x - 1, 0) : x + cw + 1] = False
    assert mask.any(), "fill should pad this box"
    assert got[mask].max() <= 2, f"padding is not black: max {got[mask].max()}"


@pytest.mark.parametrize(("w", "h"), [(100, 100), (64, 200), (400, 100), (320, 320)])
def test_fit_content(ofn, clip_smooth: ClipTruth, frame10, w: int, h: int) -> None:
    got = one(ofn, clip_smooth, w=w, h=h, scaletype="fit")
    cw, ch = fitted(320, 180, w, h)
    assert got.shape == (ch, cw, 3)
    assert cw == w or ch == h
    value = psnr(got, reference_resize(frame10, cw, ch))
    assert value >= 35, f"fit {w}x{h}: PSNR {value:.1f} dB"


def test_percent_content(ofn, clip_smooth: ClipTruth, frame10) -> None:
    for pw, ph in ((50, 50), (25, 100), (150, 150), (200, 60)):
        got = one(ofn, clip_smooth, pw=pw, ph=ph)
        w, h = round(320 * pw / 100), round(180 * ph / 100)
        value = psnr(got, reference_resize(frame10, w, h))
        assert value >= 35, f"pw {pw} ph {ph}: PSNR {value:.1f} dB"


def test_jpg_has_the_same_size(ofn, clip_smooth: ClipTruth) -> None:
    for kwargs, size in (
        ({"w": 100, "h": 100, "scaletype": "fill"}, (100, 100)),
        ({"pw": 50}, (160, 90)),
    ):
        (img,) = ofn.snapshots(clip_smooth.path, f="jpg", ss=T_MS, num=1, **kwargs)
        assert img.format == "jpg"
        assert (img.width, img.height) == size
        assert decode_image(img.data).shape == (size[1], size[0], 3)


def test_geometry_on_odd_444_source(ofn, clip_odd444: ClipTruth) -> None:
    refs = reference_frames(clip_odd444.path)
    (img,) = ofn.snapshots(clip_odd444.path, f="png", num=1, w=160, h=120)
    got = decode_image(img.data)
    assert got.shape == (120, 160, 3)
    # noisy content: a looser bound, still far above a wrong frame or a wrong crop (~12 dB)
    assert psnr(got, reference_resize(refs[0].rgb, 160, 120)) >= 28


# --------------------------------------------------------------------------------------------
# snapshot (single frame): the w/h rules of video/snapshot


@pytest.mark.parametrize(
    ("w", "h", "size"),
    [
        (0, 0, (320, 180)),
        (160, 90, (160, 90)),
        (100, 100, (100, 100)),  # both set: stretched
        (320, 1, (320, 1)),
        (1, 180, (1, 180)),
        (160, 0, (160, 90)),  # one side: aspect kept
        (100, 0, (100, 56)),
        (0, 100, (178, 100)),
        (0, 180, (320, 180)),
        (320, 180, (320, 180)),
    ],
)
def test_snapshot_sizes(ofn, clip_smooth: ClipTruth, frame10, w: int, h: int, size) -> None:
    img = ofn.snapshot(clip_smooth.path, t=T_MS, w=w, h=h, f="png")
    got = decode_image(img.data)
    assert (img.width, img.height) == size == (got.shape[1], got.shape[0])
    if size == (320, 180):
        assert np.array_equal(got, frame10)
    elif min(size) >= 8:
        value = psnr(got, reference_resize(frame10, *size))
        assert value >= 35, f"snapshot {w}x{h}: PSNR {value:.1f} dB"


@pytest.mark.parametrize(("w", "h", "param"), [(321, 0, "w"), (0, 181, "h"), (400, 100, "w")])
def test_snapshot_larger_than_source(ofn, clip_smooth: ClipTruth, w, h, param) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(clip_smooth.path, t=0, w=w, h=h, f="jpg")
    assert exc.value.param == param
    assert ("320" if param == "w" else "180") in str(exc.value)


@pytest.mark.parametrize(("w", "h", "param"), [(-1, 0, "w"), (0, -1, "h")])
def test_snapshot_negative_size(ofn, clip_smooth: ClipTruth, w, h, param) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(clip_smooth.path, t=0, w=w, h=h, f="jpg")
    assert exc.value.param == param
