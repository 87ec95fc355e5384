"""Request signatures as the official OSS SDKs compute them: V1, V4, and presigned URLs.

The canonical forms are written once here and checked against the SDKs' own test vectors
(tests/test_server_auth.py). A request reaches the routes only when :meth:`Verifier.verify`
accepts it.

* V1: ``Authorization: OSS <AK>:<base64 HMAC-SHA1>`` over
  ``VERB\\nContent-MD5\\nContent-Type\\nDate\\n<x-oss-* headers><resource>``; presigned with the
  query ``OSSAccessKeyId``, ``Expires`` (epoch seconds, in the Date line) and ``Signature``.
* V4: ``Authorization: OSS4-HMAC-SHA256 Credential=AK/yyyymmdd/region/oss/aliyun_v4_request,
  [AdditionalHeaders=..,] Signature=<hex>`` over the canonical request; presigned with the
  ``x-oss-signature-version``, ``x-oss-date``, ``x-oss-expires`` (seconds after the date),
  ``x-oss-credential`` and ``x-oss-signature`` query parameters.
"""

from __future__ import annotations

import base64
import calendar
import email.utils
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ossframe_native.server.fields import ascii_int
from ossframe_native.server.xml import OssError

MAX_SKEW_S = 15 * 60
MAX_PRESIGN_S = 7 * 24 * 3600
V4_ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# The query parameters that V1 signs (the sub-resources), as oss2 2.19 lists them.
V1_SUBRESOURCES = frozenset(
    """response-content-type response-content-language response-cache-control logging
    response-content-encoding acl uploadId uploads partNumber group link delete website location
    objectInfo objectMeta response-expires response-content-disposition cors lifecycle restore
    qos referer stat bucketInfo append position security-token live comp status vod startTime
    endTime x-oss-process symlink callback callback-var tagging encryption versions versioning
    versionId policy requestPayment x-oss-traffic-limit qosInfo asyncFetch x-oss-request-payer
    sequential inventory inventoryId continuation-token worm wormId wormExtend replication
    replicationLocation replicationProgress transferAcceleration cname metaQuery
    x-oss-ac-source-ip x-oss-ac-subnet-mask x-oss-ac-vpc-id x-oss-ac-forward-allow resourceGroup
    style styleName x-oss-async-process regionList x-oss-write-get-object-response
    bucketArchiveDirectRead httpsConfig redundancyTransition x-oss-target-redundancy-type
    x-oss-redundancy-transition-taskid accessPoint accessPointPolicy publicAccessBlock
    x-oss-access-point-name requesterQosInfo qosRequester resourcePoolInfo resourcePool
    resourcePoolBuckets cloudboxes""".split()  # noqa: SIM905 - the list as oss2 prints it
)
# The V1 signer of alibabacloud-oss-v2 leaves these two out of the resource.
_V1_SHORT = V1_SUBRESOURCES - {"x-oss-process", "x-oss-async-process"}


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers, as the server received it.

    ``query`` holds the decoded query pairs in order (blank values kept); ``raw_query`` is the
    query string as sent; ``headers`` has lower-case names and values as received.
    """

    method: str
    bucket: str | None
    key: str | None
    query: Sequence[tuple[str, str]]
    raw_query: str
    headers: Mapping[str, str]


# -- V1 --------------------------------------------------------------------------------------


def v1_resource(bucket: str | None, key: str | None) -> str:
    if not bucket:
        return "/"
    return f"/{bucket}/{key or ''}"


def v1_string_to_sign(
    req: SignedRequest, subresources: frozenset[str] = V1_SUBRESOURCES, date: str | None = None
) -> str:
    """The V1 StringToSign; ``date`` replaces the Date line (a presigned URL's ``Expires``)."""
    h = req.headers
    params = sorted((k, v) for k, v in req.query if k in subresources)
    resource = v1_resource(req.bucket, req.key)
    if params:
        resource += "?" + "&".join(k + (f"={v}" if v else "") for k, v in params)
    oss_headers = "".join(f"{k}:{v}\n" for k, v in sorted(h.items()) if k.startswith("x-oss-"))
    if date is None:
        date = h.get("x-oss-date") or h.get("date", "")
    return (
        "\n".join(
            [req.method, h.get("content-md5", ""), h.get("content-type", ""), date, oss_headers]
        )
        + resource
    )


def v1_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# -- V4 --------------------------------------------------------------------------------------


def _v4_quote(text: str, keep_slash: bool) -> str:
    return urllib.parse.quote(text, safe="/~" if keep_slash else "~")


def v4_canonical_query(req: SignedRequest, as_sent: bool = False) -> str:
    """Every query parameter but the signature, RFC 3986 encoded and sorted.

    oss2 sends form encoding but signs RFC 3986, so the pairs are decoded and encoded again;
    ``as_sent`` instead sorts the pairs as they came (the V2 SDK signs what it sends).
    """
    if as_sent:
        pairs = [p.partition("=")[::2] for p in req.raw_query.split("&") if p]
    else:
        pairs = [(_v4_quote(k, False), _v4_quote(v, False)) for k, v in req.query]
    pairs = [(k, v) for k, v in pairs if k != "x-oss-signature"]
    return "&".join(k + (f"={v}" if v else "") for k, v in sorted(pairs))


def v4_canonical_request(
    req: SignedRequest, additional: Sequence[str] = (), as_sent: bool = False
) -> str:
    """The V4 CanonicalRequest (VERB, URI, query, headers, additional headers, payload hash)."""
    uri = "/" if not req.bucket else f"/{req.bucket}/{req.key or ''}"
    signed = {"content-type", "content-md5", *additional}
    headers = "".join(
        f"{k}:{v}\n"
        for k, v in sorted(req.headers.items())
        if k.startswith("x-oss-") or k in signed
    )
    payload = req.headers.get("x-oss-content-sha256", UNSIGNED_PAYLOAD)
    return "\n".join(
        [
            req.method,
            _v4_quote(uri, True),
            v4_canonical_query(req, as_sent),
            headers,
            ";".join(sorted(additional)),
            payload,
        ]
    )


def v4_string_to_sign(date_time: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{V4_ALGORITHM}\n{date_time}\n{scope}\n{digest}"


def v4_signature(secret: str, date: str, region: str, product: str, string_to_sign: str) -> str:
    key = f"aliyun_v4{secret}".encode()
    for part in (date, region, product, "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_v4_header(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in value[len(V4_ALGORITHM) :].split(","):
        name, sep, text = part.strip().partition("=")
        if sep:
            fields[name.strip()] = text.strip()
    return fields


# -- verification ------------------------------------------------------------------------------


def _denied(message: str) -> OssError:
    return OssError(403, "AccessDenied", message)


def _mismatch(string_to_sign: str) -> OssError:
    return OssError(403, "SignatureDoesNotMatch", StringToSign=string_to_sign)


def _parse_http_date(text: str) -> float | None:
    try:
        parsed = email.utils.parsedate_tz(text)
        return None if parsed is None else float(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, OverflowError):  # e.g. the year 99999
        return None


def _parse_iso(text: str) -> float | None:
    if not text.isascii():
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ")))
    except (TypeError, ValueError, OverflowError):
        return None


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison of two signatures; any text (non-ASCII too) is just unequal."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


class Verifier:
    """Checks the signature of requests against a set of ``access key id → secret`` pairs."""

    def __init__(
        self,
        credentials: Mapping[str, str],
        region: str,
        clock: Callable[[], float] = time.time,
        max_skew_s: int = MAX_SKEW_S,
    ) -> None:
        self.credentials = dict(credentials)
        self.region = region
        self.clock = clock
        self.max_skew_s = max_skew_s

    def verify(self, req: SignedRequest) -> str:
        """Returns the access key id of a correctly signed request; raises :class:`OssError`."""
        auth = req.headers.get("authorization", "")
        params = dict(req.query)
        if auth.startswith(V4_ALGORITHM):
            return self._v4_header(req, auth)
        if auth.startswith("OSS "):
            return self._v1_header(req, auth)
        if params.get("x-oss-signature-version") == V4_ALGORITHM:
            return self._v4_query(req, params)
        if "OSSAccessKeyId" in params or "Signature" in params:
            return self._v1_query(req, params)
        if auth:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        raise _denied("You have no right to access this object because of bucket acl.")

    def _secret(self, access_key_id: str) -> str:
        secret = self.credentials.get(access_key_id)
        if secret is None:
            raise OssError(403, "InvalidAccessKeyId", OSSAccessKeyId=access_key_id)
        return secret

    def _check_skew(self, when: float | None) -> None:
        if when is None:
            raise _denied("The request has no valid Date or x-oss-date header.")
        if abs(self.clock() - when) > self.max_skew_s:
            raise OssError(403, "RequestTimeTooSkewed")

    def _v1_header(self, req: SignedRequest, auth: str) -> str:
        access_key_id, sep, signature = auth[4:].strip().rpartition(":")
        if not sep or not access_key_id:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        secret = self._secret(access_key_id)
        date = req.headers.get("x-oss-date") or req.headers.get("date", "")
        self._check_skew(_parse_http_date(date))
        self._v1_match(req, secret, signature, None, (V1_SUBRESOURCES, _V1_SHORT))
        return access_key_id

    def _v1_query(self, req: SignedRequest, params: Mapping[str, str]) -> str:
        access_key_id = params.get("OSSAccessKeyId", "")
        signature = params.get("Signature", "")
        expires = params.get("Expires", "")
        expires_at = ascii_int(expires)
        if not (access_key_id and signature and expires_at is not None):
            raise _denied("A presigned URL needs OSSAccessKeyId, Expires (epoch seconds, ASCII "
                          "digits) and Signature.")  # fmt: skip
        secret = self._secret(access_key_id)
        if self.clock() > expires_at:
            raise _denied("Request has expired.")
        # A presigned URL must sign every sub-resource it carries, x-oss-process included:
        # processing cannot be appended to a URL signed for the plain object.
        self._v1_match(req, secret, signature, expires, (V1_SUBRESOURCES,))
        return access_key_id

    def _v1_match(
        self,
        req: SignedRequest,
        secret: str,
        signature: str,
        date: str | None,
        lists: Sequence[frozenset[str]],
    ) -> None:
        first = ""
        for subresources in lists:
            string_to_sign = v1_string_to_sign(req, subresources, date)
            first = first or string_to_sign
            if _same(v1_signature(secret, string_to_sign), signature):
                return
        raise _mismatch(first)

    def _v4_header(self, req: SignedRequest, auth: str) -> str:
        fields = _parse_v4_header(auth)
        credential = fields.get("Credential", "")
        signature = fields.get("Signature", "")
        additional = [h.lower() for h in fields.get("AdditionalHeaders", "").split(";") if h]
        date_time = req.headers.get("x-oss-date", "")
        self._check_skew(_parse_iso(date_time))
        return self._v4_match(req, credential, signature, additional, date_time)

    def _v4_query(self, req: SignedRequest, params: Mapping[str, str]) -> str:
        date_time = params.get("x-oss-date", "")
        expires = ascii_int(params.get("x-oss-expires", ""))
        signed_at = _parse_iso(date_time)
        if signed_at is None or expires is None:
            raise _denied("A presigned URL needs x-oss-date and x-oss-expires (seconds).")
        if expires > MAX_PRESIGN_S:
            raise _denied(f"x-oss-expires may be at most {MAX_PRESIGN_S} seconds.")
        now = self.clock()
        if now > signed_at + expires:
            raise _denied("Request has expired.")
        if signed_at > now + self.max_skew_s:
            raise OssError(403, "RequestTimeTooSkewed")
        additional = [h.lower() for h in params.get("x-oss-additional-headers", "").split(";") if h]
        return self._v4_match(
            req,
            params.get("x-oss-credential", ""),
            params.get("x-oss-signature", ""),
            additional,
            date_time,
        )

    def _v4_match(
        self,
        req: SignedRequest,
        credential: str,
        signature: str,
        additional: Sequence[str],
        date_time: str,
    ) -> str:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aliyun_v4_request" or not signature:
            raise OssError(400, "InvalidArgument", "Authorization credential is invalid.")
        access_key_id, date, region, product, _ = parts
        secret = self._secret(access_key_id)
        if region != self.region:
            raise OssError(
                400,
                "InvalidArgument",
                f"Invalid signing region in Authorization header: {region!r}; this service "
                f"signs with region {self.region!r}",
            )
        if date != date_time[:8]:
            raise _mismatch("the credential date differs from x-oss-date")
        scope = "/".join(parts[1:])
        first = ""
        for as_sent in (False, True):
            canonical = v4_canonical_request(req, additional, as_sent)
            string_to_sign = v4_string_to_sign(date_time, scope, canonical)
            first = first or string_to_sign
            expected = v4_signature(secret, date, region, product, string_to_sign)
            if _same(expected, signature):
                return access_key_id
        raise _mismatch(first)
