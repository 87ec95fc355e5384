"""A capture mode is one object: a mode defined in this file alone (registered for the test's
duration) runs through every front end (snapshots, frames, process, the command line), on the
whole stream's index and planned by time, with exact frames."""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import ClipTruth, ceil_ms, decode_image, read_frame_number, reference_frames, shown_at

from ossframe_native import cli, modes, pipeline
from ossframe_native.index import FrameIndex
from ossframe_native.pipeline import open_capture
from ossframe_native.plan import Counted


class Ends(modes.SnapshotsMode):
    """``m_ends``: the frame shown at ss and the stream's last frame (once if they are one)."""

    name = "ends"

    def select(self, index: FrameIndex) -> Counted:
        return Counted(sorted({index.frame_at(self.ss), len(index) - 1}))

    @property
    def by_time(self) -> bool:
        return True

    def sample_times(self, last: FrameIndex, frames: int) -> tuple[Fraction, ...] | None:
        return (self.ss, last.time_exact(len(last) - 1))


@pytest.fixture
def ends_mode() -> Iterator[None]:
    modes.register(Ends)
    try:
        yield
    finally:
        modes.unregister(Ends.name)


def _expected(clip: ClipTruth, ss: int) -> list[int]:
    refs = reference_frames(clip.path)
    return sorted({shown_at(refs, ss), len(refs) - 1})


def test_a_mode_defined_in_a_test_runs_through_every_front_end(
    ofn, ends_mode, clip_h264_b: ClipTruth, tmp_path: Path
) -> None:
    refs = reference_frames(clip_h264_b.path)
    want = _expected(clip_h264_b, 1234)
    images = list(ofn.snapshots(clip_h264_b.path, m="ends", ss=1234, f="png"))
    assert [i.index for i in images] == want
    assert [i.time_ms for i in images] == [ceil_ms(refs[n].time) for n in want]
    for image, n in zip(images, want, strict=True):
        rgb = decode_image(image.data)
        assert read_frame_number(rgb) == n and np.array_equal(rgb, refs[n].rgb)

    arrays = list(ofn.frames(clip_h264_b.path, m="ends", ss=1234))
    assert [f.index for f in arrays] == want
    assert all(np.array_equal(f.array, refs[n].rgb) for f, n in zip(arrays, want, strict=True))

    result = ofn.process(
        clip_h264_b.path,
        "video/snapshots,m_ends,ss_1234,f_png|sys/saveas,b_b3V0,o_ZnJhbWU",
        store=ofn.LocalStore(tmp_path / "store"),
    )
    assert result.state == "Succeeded"
    saved = sorted((tmp_path / "store" / "out").iterdir())
    assert len(saved) == 2
    assert [read_frame_number(decode_image(p.read_bytes())) for p in saved] == want

    out = tmp_path / "cli.png"
    spec = "video/snapshots,m_ends,ss_1234,f_png"
    assert cli.main(["process", str(clip_h264_b.path), spec, "-o", str(out), "-q"]) == 0
    written = [tmp_path / "cli_1.png", tmp_path / "cli_2.png"]
    assert [read_frame_number(decode_image(p.read_bytes())) for p in written] == want


def test_a_test_mode_planned_by_time_gives_the_same_frames(
    ofn, ends_mode, clip_h264_b: ClipTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its two samples lie two GOPs apart in three, so they are read GOP by GOP (the plan
    holds sample times); planned on the whole stream's index instead: the same images."""
    data = clip_h264_b.path.read_bytes()
    request = ofn.parse_process("video/snapshots,m_ends,ss_500,f_png").action
    with open_capture(io.BytesIO(data), request) as capture:
        assert capture.plan.samples  # planned by time
        by_time = [(o.index, o.time_ms) for o in capture.outputs()]
    images = [i.data for i in ofn.snapshots(io.BytesIO(data), m="ends", ss=500, f="png")]
    monkeypatch.setattr(pipeline, "_windows_read_less", lambda src, windows: False)
    with open_capture(clip_h264_b.path, request) as capture:
        assert not capture.plan.samples
        whole = [(o.index, o.time_ms) for o in capture.outputs()]
    assert by_time == whole and [n for n, _ in whole] == _expected(clip_h264_b, 500)
    assert images == [i.data for i in ofn.snapshots(clip_h264_b.path, m="ends", ss=500, f="png")]


def test_an_unregistered_mode_is_an_invalid_argument(ofn, clip_h264_b: ClipTruth) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshots(clip_h264_b.path, m="ends")
    assert exc.value.param == "m" and "default, avg, dhash, key" in str(exc.value)
