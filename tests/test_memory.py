"""Memory stays flat: capturing every frame of a long clip does not grow with its length.

RSS is read from ``/proc/self/statm`` after 20 % of the frames and at the end; the difference
must stay under ``MARGIN_MB`` (a leak of one 160x96 RGB frame per output would be ~66 MB over
the 1500 frames of ``clip_long``).
"""

from __future__ import annotations

import gc
import os

import pytest
from media import ClipTruth

MARGIN_MB = 20.0

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")


def rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _measure(iterator, n_frames: int) -> tuple[int, float, float]:
    count = 0
    early = None
    for item in iterator:
        count += 1
        del item
        if count == n_frames // 5:
            early = rss_mb()
    assert early is not None, f"only {count} outputs"
    return count, early, rss_mb()


@pytest.mark.parametrize(
    "call",
    ["frames", "snapshots_jpg", "frames_dhash_num", "snapshots_inter"],
)
def test_every_frame_memory_is_flat(ofn, clip_long: ClipTruth, call: str) -> None:
    path = clip_long.path
    n = clip_long.n_frames
    if call == "frames":
        iterator, expected = ofn.frames(path, output="numpy"), n
    elif call == "snapshots_jpg":
        iterator, expected = ofn.snapshots(path, f="jpg"), n
    elif call == "frames_dhash_num":  # keeps the 5 best candidates while hashing all 1500
        iterator, expected = ofn.frames(path, m="dhash", num=5), 5
    else:
        iterator, expected = ofn.snapshots(path, f="jpg", inter=40, w=320, h=192), None
    if expected == 5:
        # all candidates are hashed before the first output: measure around the whole call
        before = rss_mb()
        out = list(iterator)
        after = rss_mb()
        assert len(out) == 5
        del out
        # ~5 decoded frames may be held; everything else must be gone
        assert after - before < MARGIN_MB, f"RSS grew {after - before:.1f} MB"
        return
    count, early, late = _measure(iterator, expected or 1250)
    if expected is not None:
        assert count == expected
    growth = late - early
    assert growth < MARGIN_MB, f"RSS grew {growth:.1f} MB from 20 % to the end ({early:.0f} MB)"
