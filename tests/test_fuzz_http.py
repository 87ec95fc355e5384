"""A short seeded HTTP fuzzing pass against a live server (see ``tests/fuzz_http.py`` for the
longer one): 600 requests of hostile shapes, half of them correctly signed. Every answer is an
OSS error or success below 500, no answer shows the server's path, the server stays up, and no
temporary file is left."""

from __future__ import annotations

import fuzz_http
import pytest
from server_support import start_server

from ossframe_native.store import TEMP_SUFFIX

pytestmark = pytest.mark.needs("server")


def test_hostile_requests_get_oss_answers(tmp_path, child_env, clip_h264_b) -> None:
    srv = start_server(tmp_path, child_env, "--idle-timeout", "1", "--header-timeout", "2")
    try:
        fuzz_http.prepare(srv.endpoint, clip_h264_b.path)
        answered, failures = fuzz_http.run_cases(srv.port, str(tmp_path), cases=600, seed=20261204)
        assert not failures, "\n".join(f"{f.case}: {f.what}" for f in failures)
        assert answered >= 550  # only cut-off bodies may go unanswered
        assert srv.process.poll() is None
    finally:
        assert srv.stop() == 0
    assert not list(tmp_path.rglob(f"*{TEMP_SUFFIX}"))
    assert "Traceback" not in srv.stderr, srv.stderr[-3000:]
