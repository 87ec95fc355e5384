"""Signature canonicalization against the SDKs' own test vectors, and the verifier's rules.

Vectors: alibabacloud-oss-v2's tests/unit/signer/test_v1.py and test_v4.py (AK ``ak``, SK
``sk``), and requests produced by oss2 2.19 with the clock fixed (AK ``AKID``/``SECRET``).
"""

from __future__ import annotations

import calendar
import time
from urllib.parse import parse_qsl

import pytest

from ossframe_native.server.auth import (
    SignedRequest,
    Verifier,
    v1_signature,
    v1_string_to_sign,
    v4_canonical_request,
    v4_signature,
    v4_string_to_sign,
)
from ossframe_native.server.xml import OssError


def request(method, bucket, key, query="", **headers) -> SignedRequest:
    lower = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return SignedRequest(
        method, bucket, key, parse_qsl(query, keep_blank_values=True), query, lower
    )


def epoch(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ")))


def test_v1_vendor_vector() -> None:
    date = "Wed, 28 Dec 2022 10:27:41 GMT"
    req = request(
        "PUT",
        "examplebucket",
        "nelson",
        content_md5="eB5eJF1ptWaXm4bijSPyxw==",
        content_type="text/html",
        x_oss_date=date,
        x_oss_meta_author="alice",
        x_oss_meta_magic="abracadabra",
    )
    sts = v1_string_to_sign(req)
    assert sts == (
        f"PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\n{date}\nx-oss-date:{date}\n"
        "x-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n/examplebucket/nelson"
    )
    assert v1_signature("sk", sts) == "kSHKmLxlyEAKtZPkJhG9bZb5k7M="


def test_v4_vendor_vector() -> None:
    query = "param1=value1&%2Bparam1=value3&%7Cparam1=value4&%2Bparam2&%7Cparam2&param2"
    req = request(
        "PUT",
        "bucket",
        "1234+-/123/1.txt",
        query,
        content_type="text/plain",
        x_oss_content_sha256="UNSIGNED-PAYLOAD",
        x_oss_head1="value",
        x_oss_date="20231216T162057Z",
    )
    canonical = v4_canonical_request(req)
    uri, canonical_query = canonical.split("\n")[1:3]
    assert uri == "/bucket/1234%2B-/123/1.txt"
    assert canonical_query == (
        "%2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2"
    )
    sts = v4_string_to_sign(
        "20231216T162057Z", "20231216/cn-hangzhou/oss/aliyun_v4_request", canonical
    )
    assert v4_signature("sk", "20231216", "cn-hangzhou", "oss", sts) == (
        "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
    )


DATE = "Sat, 21 Nov 2026 12:00:00 GMT"


def test_oss2_v1_async_post_and_process_get() -> None:
    post = request("POST", "mybucket", "videos/a.mp4", "x-oss-async-process=", date=DATE)
    sts = v1_string_to_sign(post)
    assert sts == f"POST\n\n\n{DATE}\n/mybucket/videos/a.mp4?x-oss-async-process"
    assert v1_signature("SECRET", sts) == "g4ZdkYHRnkA6c2XJbP66BaoyGdM="
    get = request(
        "GET",
        "mybucket",
        "videos/a.mp4",
        "x-oss-process=video%2Fsnapshot%2Ct_1000%2Cf_jpg%2Cw_800",
        date=DATE,
    )
    assert v1_signature("SECRET", v1_string_to_sign(get)) == "Qm2IcOPtpd0+kTDa4lVvNKW8iYc="


def test_oss2_v4_process_get() -> None:
    req = request(
        "GET",
        "mybucket",
        "videos/a.mp4",
        "x-oss-process=video%2Fsnapshot%2Ct_1000%2Cf_jpg%2Cw_800",
        x_oss_date="20261121T120000Z",
        x_oss_content_sha256="UNSIGNED-PAYLOAD",
    )
    canonical = v4_canonical_request(req)
    assert canonical == (
        "GET\n/mybucket/videos/a.mp4\nx-oss-process=video%2Fsnapshot%2Ct_1000%2Cf_jpg%2Cw_800\n"
        "x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20261121T120000Z\n\n\nUNSIGNED-PAYLOAD"
    )
    sts = v4_string_to_sign(
        "20261121T120000Z", "20261121/cn-hangzhou/oss/aliyun_v4_request", canonical
    )
    assert v4_signature("SECRET", "20261121", "cn-hangzhou", "oss", sts) == (
        "32ea488dc311b917eb6c4f31e8cea07edb5a9f1a534dc3ce5959354a3df6e612"
    )


def test_oss2_v1_presigned_get() -> None:
    req = request("GET", "mybucket", "videos/a.mp4")
    sts = v1_string_to_sign(req, date="1795262400")
    assert sts == "GET\n\n\n1795262400\n/mybucket/videos/a.mp4"
    assert v1_signature("SECRET", sts) == "BnOglJcSFp0rVFXot/Fgusg37rE="


# -- the verifier's rules, with a fixed clock -----------------------------------------------------

NOW = epoch("20261121T120000Z")


def verifier(now: float = NOW) -> Verifier:
    return Verifier({"AKID": "SECRET"}, "cn-hangzhou", clock=lambda: now)


def signed_v1(date: str = DATE, secret: str = "SECRET") -> SignedRequest:
    req = request("GET", "mybucket", "videos/a.mp4", date=date)
    sig = v1_signature(secret, v1_string_to_sign(req))
    return request("GET", "mybucket", "videos/a.mp4", date=date, authorization=f"OSS AKID:{sig}")


def code_of(req: SignedRequest, now: float = NOW) -> str:
    with pytest.raises(OssError) as info:
        verifier(now).verify(req)
    return info.value.code


def test_v1_accepts_and_rejects() -> None:
    assert verifier().verify(signed_v1()) == "AKID"
    assert code_of(signed_v1(secret="wrong")) == "SignatureDoesNotMatch"
    assert code_of(request("GET", "mybucket", "videos/a.mp4", date=DATE)) == "AccessDenied"
    bad_key = request("GET", "b", "k", date=DATE, authorization="OSS nobody:abc")
    assert code_of(bad_key) == "InvalidAccessKeyId"


def test_clock_skew_limit_is_15_minutes() -> None:
    assert verifier(NOW + 14 * 60).verify(signed_v1()) == "AKID"
    assert code_of(signed_v1(), NOW + 16 * 60) == "RequestTimeTooSkewed"
    assert code_of(signed_v1(), NOW - 16 * 60) == "RequestTimeTooSkewed"


def test_v1_presigned_expiry() -> None:
    sig = v1_signature(
        "SECRET", v1_string_to_sign(request("GET", "mybucket", "k"), date=str(int(NOW) + 60))
    )
    from urllib.parse import urlencode

    query = urlencode({"OSSAccessKeyId": "AKID", "Expires": str(int(NOW) + 60), "Signature": sig})
    assert verifier().verify(request("GET", "mybucket", "k", query)) == "AKID"
    assert code_of(request("GET", "mybucket", "k", query), NOW + 61) == "AccessDenied"
    assert code_of(request("GET", "mybucket", "other", query)) == "SignatureDoesNotMatch"


def test_the_package_and_its_cli_never_import_the_server_extra(child_env) -> None:
    import subprocess
    import sys

    code = (
        "import sys, ossframe_native, ossframe_native.cli as c; c.build_parser(); "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'anyio') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env
    )
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr


def test_crc64_matches_oss2() -> None:
    pytest.importorskip("anycrc")
    oss2 = pytest.importorskip("oss2")
    from ossframe_native.server.objects import Crc64

    for text in (b"123456789", b"abc", b"", bytes(range(256)) * 1000):
        crc = Crc64()
        for part in (text[:7], text[7:]):
            crc.update(part)
        reference = oss2.utils.Crc64(0)
        reference.update(text)
        assert crc.value == reference.crc
    check = Crc64()
    check.update(b"123456789")
    assert check.value == 0x995DC9BBDF1939FA
