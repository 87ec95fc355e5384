"""A short seeded media-fuzzing pass (see ``tests/fuzz_media.py`` for the longer one).

280 mutants of ten small clips (H.264/MP4, HEVC/MKV, VP9/WebM, H.264/TS, MPEG-2/PS,
MJPEG/AVI, MPEG-4/MOV, and H.264 whose keyframes are not IDR pictures: intra refresh in MKV
and TS, open GOPs in MP4; some mutants remuxed with keyframe flags moved) each go through
probe, snapshot, every snapshots mode and frames in a worker subprocess: only success,
InvalidArgument or MediaError may come out; no other exception, no signal, no timeout.
"""

from __future__ import annotations

import fuzz_media


def test_mutated_media_fail_cleanly() -> None:
    counts, failures = fuzz_media.run_cases(cases=280, seed=20261130, timeout=60.0, log=print)
    assert not failures, "\n".join(f"{f.case}: {f.what}" for f in failures)
    # The pass exercised both sides: mutants that still work and mutants that are refused.
    for op, outcomes in counts.items():
        assert outcomes.get("ok", 0) > 0 and outcomes.get("MediaError", 0) > 0, (op, outcomes)
