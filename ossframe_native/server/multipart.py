"""Multipart uploads on disk: ``<root>/.server/uploads/<upload id>/``.

Each upload is a folder holding ``upload.json`` (bucket, key, Content-Type, user metadata,
initiation time) and its parts, each named by the record ``<n>.json`` (ETag, size, CRC-64 and
where its bytes are), which is replaced atomically once its bytes are complete and fsynced. So
a retried part replaces the previous one whole, a crash leaves either record, and parts survive
a restart.

SDKs cut a file into parts of one size (the last one smaller). The first part with a declared
length sets that size, the *stride* (file ``stride``); a part of that length is written in place
into the upload's data file ``data`` at ``(n - 1) * stride``, unless part ``n`` is stored already
or being received (a retry must not overwrite stored bytes). Any other part goes to its own file
``<n>-<md5 hex>``. Completing parts ``1..k`` of the stride (the last at most that) copies only the
parts kept in their own files into their places, cuts ``data`` to the object's length and
renames it into the bucket: the bytes are written once. Other part lists are assembled into a
new temporary file (in the kernel where it can). Aborting removes the folder. An upload that is
never completed is never an object: nothing of it is under a bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ossframe_native.server.objects import (
    MULTIPART,
    ObjectInfo,
    ObjectStore,
    Upload,
    copy_bytes,
    crc64_combine,
    new_record,
)
from ossframe_native.server.xml import ListedPart, OssError
from ossframe_native.store import TEMP_SUFFIX, atomic_write

MAX_PARTS = 10_000
MIN_PART_SIZE = 100 * 1024  # every part but the last (OSS's minimum)
_UPLOAD_ID = re.compile(r"[0-9A-F]{32}")
_DATA = "data"  # the parts written in place


@dataclass(frozen=True)
class PartRecord:
    """A stored part."""

    number: int
    etag: str  # with quotes
    md5: str  # hex
    size: int
    crc64: int
    mtime: float
    data: str  # the file name of its bytes
    offset: int = 0  # where they start in it


@dataclass(frozen=True)
class UploadRecord:
    """An upload in progress."""

    upload_id: str
    bucket: str
    key: str
    content_type: str
    user_meta: Mapping[str, str]
    initiated: float


class Multipart:
    """The multipart uploads of one store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.dir = os.path.join(store.server_dir, "uploads")
        self._guard = threading.Lock()
        self._completing: set[str] = set()
        self._receiving: set[tuple[str, int]] = set()  # parts being written in place
        self._strides: dict[str, int] = {}

    def open(self) -> None:
        os.makedirs(self.dir, exist_ok=True)

    def _folder(self, upload_id: str) -> str:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise OssError(404, "NoSuchUpload", UploadId=upload_id[:64])
        return os.path.join(self.dir, upload_id)

    # -- uploads -------------------------------------------------------------------------------

    def initiate(
        self, bucket: str, key: str, content_type: str, user_meta: Mapping[str, str]
    ) -> str:
        """Starts an upload; returns its id (409 ``InvalidObjectName`` for a name the store
        cannot hold, before any part is sent)."""
        self.store.check_storable(bucket, key)
        upload_id = uuid.uuid4().hex.upper()
        folder = os.path.join(self.dir, upload_id)
        os.makedirs(folder)
        record = {
            "bucket": bucket,
            "key": key,
            "content_type": content_type,
            "user_meta": dict(user_meta),
            "initiated": time.time(),
        }
        try:
            atomic_write(folder, "upload.json", json.dumps(record).encode())
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return upload_id

    def get(self, upload_id: str, bucket: str, key: str) -> UploadRecord:
        """The upload, which must be of ``bucket``/``key``; 404 ``NoSuchUpload`` otherwise."""
        record = self._read_upload(upload_id)
        if record is None or (record.bucket, record.key) != (bucket, key):
            raise OssError(404, "NoSuchUpload", UploadId=upload_id)
        return record

    def _read_upload(self, upload_id: str) -> UploadRecord | None:
        try:
            with open(os.path.join(self._folder(upload_id), "upload.json"), "rb") as f:
                raw = json.load(f)
        except (OSError, ValueError):
            return None
        return UploadRecord(
            upload_id,
            raw["bucket"],
            raw["key"],
            raw["content_type"],
            raw["user_meta"],
            raw["initiated"],
        )

    def abort(self, upload_id: str, bucket: str, key: str) -> None:
        self.get(upload_id, bucket, key)
        shutil.rmtree(self._folder(upload_id), ignore_errors=True)
        self._strides.pop(upload_id, None)

    def uploads(self, bucket: str) -> list[UploadRecord]:
        """The bucket's uploads in progress, by key then initiation time."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                record = self._read_upload(entry.name) if _UPLOAD_ID.fullmatch(entry.name) else None
                if record is not None and record.bucket == bucket:
                    found.append(record)
        return sorted(found, key=lambda r: (r.key, r.initiated, r.upload_id))

    # -- parts ---------------------------------------------------------------------------------

    def open_part(self, upload_id: str, number: int, length: int | None) -> Upload:
        """Where part ``number`` of ``length`` bytes (``None``: not declared) is received: in
        place in the data file, or a temporary file (see the module docstring). Give it back
        with :meth:`close_part`."""
        folder = self._folder(upload_id)
        with self._guard:
            stride = self._stride(upload_id, folder, length)
            in_place = (
                stride is not None
                and length == stride
                and number * stride <= self.store.max_object_size
                and upload_id not in self._completing
                and (upload_id, number) not in self._receiving
                and not os.path.exists(os.path.join(folder, f"{number}.json"))
            )
            if not in_place:
                return self.store.begin_upload()
            assert stride is not None
            self._receiving.add((upload_id, number))
        try:
            return Upload(os.path.join(folder, _DATA), stride, offset=(number - 1) * stride)
        except BaseException:
            with self._guard:
                self._receiving.discard((upload_id, number))
            raise

    def close_part(self, upload_id: str, number: int, upload: Upload, stored: bool) -> None:
        """Closes (and for a temporary file, removes) what :meth:`open_part` gave; the bytes of
        a part not ``stored`` at the end of the data file are cut off (a full disk keeps no
        room for them)."""
        upload.abort()
        if upload.offset is None:
            return
        with self._guard:
            self._receiving.discard((upload_id, number))
            if not stored:
                with contextlib.suppress(OSError):
                    if os.path.getsize(upload.path) <= upload.offset + upload.limit:
                        os.truncate(upload.path, upload.offset)

    def _stride(self, upload_id: str, folder: str, length: int | None) -> int | None:
        """The upload's part size: recorded, or set now by a declared ``length``."""
        stride = self._strides.get(upload_id)
        if stride is None:
            recorded = os.path.join(folder, "stride")
            with contextlib.suppress(OSError, ValueError), open(recorded) as f:
                stride = int(f.read())
        if stride is None and length is not None and length >= MIN_PART_SIZE:
            atomic_write(folder, "stride", str(length).encode())
            stride = length
        if stride is not None:
            self._strides[upload_id] = stride
        return stride

    def put_part(self, upload_id: str, number: int, upload: Upload) -> PartRecord:
        """Stores received bytes as part ``number`` (replacing an earlier one)."""
        folder = self._folder(upload_id)
        upload.finish()
        md5 = upload.md5.hexdigest()
        data, offset = _DATA, upload.offset
        try:
            if offset is None:
                data, offset = f"{number}-{md5}", 0
                os.replace(upload.path, os.path.join(folder, data))
            part = PartRecord(
                number, f'"{md5.upper()}"', md5, upload.size, upload.crc.value, time.time(), data,
                offset,
            )  # fmt: skip
            self._write_part(folder, part)
        except FileNotFoundError:  # completed or aborted meanwhile
            raise OssError(404, "NoSuchUpload", UploadId=upload_id) from None
        return part

    def copy_part(
        self, upload_id: str, number: int, source: ObjectInfo, start: int, length: int
    ) -> PartRecord:
        """UploadPartCopy: bytes ``start .. start+length-1`` of ``source`` as part ``number``."""
        upload = self.store.begin_upload(limit=length)
        try:
            with open(source.path, "rb") as src:
                src.seek(start)
                copy_bytes(src, upload.file, length, upload.md5, upload.crc)
            upload.size = length
            return self.put_part(upload_id, number, upload)
        finally:
            upload.abort()

    def _write_part(self, folder: str, part: PartRecord) -> None:
        previous = self._read_part(folder, part.number)
        record = {k: getattr(part, k) for k in PartRecord.__dataclass_fields__}
        atomic_write(folder, f"{part.number}.json", json.dumps(record).encode())
        if previous is not None and previous.data not in (part.data, _DATA):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, previous.data))

    def _read_part(self, folder: str, number: int) -> PartRecord | None:
        try:
            with open(os.path.join(folder, f"{number}.json"), "rb") as f:
                return PartRecord(**json.load(f))
        except (OSError, ValueError, TypeError):
            return None

    def parts(self, upload_id: str) -> list[PartRecord]:
        """The stored parts, by number."""
        folder = self._folder(upload_id)
        numbers = sorted(
            int(name[:-5])
            for name in os.listdir(folder)
            if name.endswith(".json") and name[:-5].isdigit() and name[:-5].isascii()
        )
        found = (self._read_part(folder, n) for n in numbers)
        return [p for p in found if p is not None]

    # -- completion ----------------------------------------------------------------------------

    def complete(
        self, record: UploadRecord, listed: Sequence[tuple[int, str]] | None
    ) -> ObjectInfo:
        """Assembles the parts ``listed`` as (number, ETag) in ascending order (``None``: every
        stored part) into the object; the upload is gone afterwards."""
        with self._completing_once(record.upload_id):
            stored = {p.number: p for p in self.parts(record.upload_id)}
            chosen = _choose(stored, listed)
            self.store.check_writable(record.bucket, record.key)
            folder = self._folder(record.upload_id)
            crc, digests = 0, b""
            for part in chosen:
                crc = crc64_combine(crc, part.crc64, part.size)
                digests += bytes.fromhex(part.md5)
            etag = f'"{hashlib.md5(digests).hexdigest().upper()}-{len(chosen)}"'
            assembled = self._in_place(record.upload_id, folder, chosen)
            tmp = assembled or os.path.join(self.store.tmp_dir, f"{uuid.uuid4().hex}{TEMP_SUFFIX}")
            try:
                if assembled is None:
                    with open(tmp, "xb") as out:
                        for part in chosen:
                            _copy_part(folder, part, out)
                        out.flush()
                        os.fsync(out.fileno())
                object_record = new_record(
                    os.stat(tmp), etag, crc, record.content_type, record.user_meta, MULTIPART
                )
                self.store.place(tmp, record.bucket, record.key, object_record)
            finally:
                if assembled is None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            shutil.rmtree(folder, ignore_errors=True)
            self._strides.pop(record.upload_id, None)
        return self.store.stat(record.bucket, record.key)

    def _in_place(self, upload_id: str, folder: str, chosen: Sequence[PartRecord]) -> str | None:
        """The data file holding exactly the ``chosen`` parts in order, when they are parts
        ``1..k`` of the stride (the last at most that) and none is being received; else
        ``None``."""
        stride = self._strides.get(upload_id) or self._stride(upload_id, folder, None)
        with self._guard:
            receiving = any(u == upload_id for u, _n in self._receiving)
        if (
            stride is None
            or receiving
            or [p.number for p in chosen] != list(range(1, len(chosen) + 1))
            or any(p.size != stride for p in chosen[:-1])
            or chosen[-1].size > stride
        ):
            return None
        path = os.path.join(folder, _DATA)
        with open(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+b") as out:
            kept = os.fstat(out.fileno()).st_size
            for part in chosen:
                if part.data != _DATA:
                    out.seek((part.number - 1) * stride)
                    _copy_part(folder, part, out)
                elif part.offset + part.size > kept:  # cut by an earlier completion
                    raise OssError(400, "InvalidPart", PartNumber=str(part.number))
            out.truncate((len(chosen) - 1) * stride + chosen[-1].size)
            out.flush()
            os.fsync(out.fileno())
        return path

    @contextlib.contextmanager
    def _completing_once(self, upload_id: str) -> Iterator[None]:
        with self._guard:
            if upload_id in self._completing:
                raise OssError(409, "InvalidRequest", "this upload is being completed already")
            self._completing.add(upload_id)
        try:
            yield
        finally:
            with self._guard:
                self._completing.discard(upload_id)


def _choose(
    stored: Mapping[int, PartRecord], listed: Sequence[tuple[int, str]] | None
) -> list[PartRecord]:
    """The parts a CompleteMultipartUpload names, checked as OSS checks them."""
    if listed is None:
        chosen = [stored[n] for n in sorted(stored)]
    else:
        chosen = []
        previous = 0
        for number, etag in listed:
            if number <= previous:
                raise OssError(400, "InvalidPartOrder", PartNumber=str(number))
            previous = number
            part = stored.get(number)
            if part is None or etag.strip().strip('"').upper() != part.md5.upper():
                raise OssError(400, "InvalidPart", PartNumber=str(number), ETag=etag[:80])
            chosen.append(part)
    if not chosen:
        raise OssError(400, "InvalidPart", "an upload is completed with at least one part")
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise OssError(
                400,
                "EntityTooSmall",
                f"part {part.number} has {part.size} bytes; every part but the last needs at "
                f"least {MIN_PART_SIZE}",
                PartNumber=str(part.number),
            )
    return chosen


def _copy_part(folder: str, part: PartRecord, out: BinaryIO) -> None:
    """Copies a stored part's bytes to ``out`` at its position."""
    with open(os.path.join(folder, part.data), "rb") as src:
        src.seek(part.offset)
        copy_bytes(src, out, part.size)


def listed_part(part: PartRecord) -> ListedPart:
    return ListedPart(part.number, part.mtime, part.etag, part.size, str(part.crc64))
