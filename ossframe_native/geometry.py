"""Output geometry: ``w``/``h``/``pw``/``ph``/``scaletype``/``ar`` -> one crop/resize/pad plan.

Rules beyond the OSS interface (docs/BEHAVIOUR.md, "Sizes and geometry"):

* One side given (``w`` or ``pw`` without ``h``/``ph``, or the reverse): the other side keeps the
  source aspect ratio, rounded to the nearest pixel (at least 1), whatever the scaletype.
* ``ar=w`` (force landscape) and ``ar=h`` (force portrait) rotate a frame of the other
  orientation by its rotation metadata when that is a quarter turn, else 90° clockwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidArgument
from .params import SnapshotRequest, SnapshotsRequest


@dataclass(frozen=True)
class Geometry:
    """Rotate the frame, take ``crop`` (x, y, w, h) of it, scale it to ``size`` and place it at
    ``offset`` on a black ``canvas``. Sizes are (width, height)."""

    rotate: int  # counter-clockwise quarter turns in degrees: 0, 90, 180, 270
    crop: tuple[float, float, float, float]
    size: tuple[int, int]
    canvas: tuple[int, int]
    offset: tuple[int, int] = (0, 0)

    @property
    def is_identity(self) -> bool:
        """True when the output is the (rotated) frame itself."""
        x, y, w, h = self.crop
        return (x, y) == (0, 0) and (w, h) == self.size == self.canvas

    @property
    def padded(self) -> bool:
        return self.size != self.canvas


def oriented_size(width: int, height: int, rotate: int) -> tuple[int, int]:
    """The frame size after a rotation of ``rotate`` degrees."""
    return (height, width) if rotate in (90, 270) else (width, height)


def snapshot_rotation(ar: str | None, width: int, height: int, metadata_rotation: int) -> int:
    """Counter-clockwise degrees to rotate a stored frame for ``ar`` (docs/BEHAVIOUR.md,
    "Sizes and geometry")."""
    if ar is None:
        return 0
    if ar == "auto":
        return metadata_rotation
    wants_landscape = ar == "w"
    if (width >= height) == wants_landscape or width == height:
        return 0
    return metadata_rotation if metadata_rotation in (90, 270) else 270


def for_snapshot(request: SnapshotRequest, width: int, height: int, rotation: int) -> Geometry:
    """Geometry of ``video/snapshot``: both sides stretch, one keeps the aspect, 0 = source."""
    rotate = snapshot_rotation(request.ar, width, height, rotation)
    src_w, src_h = oriented_size(width, height, rotate)
    for param, value, limit in (("w", request.w, src_w), ("h", request.h, src_h)):
        if value > limit:
            raise InvalidArgument(
                param, f"must be an integer in 0..{limit} (the source size after ar), got {value}"
            )
    size = _complete(request.w or None, request.h or None, src_w, src_h)
    return Geometry(rotate, (0.0, 0.0, float(src_w), float(src_h)), size, size)


def for_snapshots(request: SnapshotsRequest, width: int, height: int) -> Geometry:
    """Geometry of ``video/snapshots``: w/h (else pw/ph) and the scaletype."""
    box_w = request.w if request.w is not None else _percent(width, request.pw)
    box_h = request.h if request.h is not None else _percent(height, request.ph)
    box = _complete(box_w, box_h, width, height)
    return scaled(width, height, box, request.scaletype)


def scaled(width: int, height: int, box: tuple[int, int], scaletype: str) -> Geometry:
    """Fits a ``width`` x ``height`` frame to ``box`` by ``scaletype`` (stretch/crop/fill/fit)."""
    full = (0.0, 0.0, float(width), float(height))
    box_w, box_h = box
    if scaletype == "stretch":
        return Geometry(0, full, box, box)
    if scaletype == "crop":
        scale = max(box_w / width, box_h / height)
        crop_w, crop_h = min(width, box_w / scale), min(height, box_h / scale)
        crop = ((width - crop_w) / 2, (height - crop_h) / 2, crop_w, crop_h)
        return Geometry(0, crop, box, box)
    scale = min(box_w / width, box_h / height)
    size = (max(1, min(box_w, round(width * scale))), max(1, min(box_h, round(height * scale))))
    if scaletype == "fit":
        return Geometry(0, full, size, size)
    offset = ((box_w - size[0]) // 2, (box_h - size[1]) // 2)
    return Geometry(0, full, size, box, offset)


def _percent(side: int, percent: int | None) -> int | None:
    return None if percent is None else max(1, round(side * percent / 100))


def _complete(w: int | None, h: int | None, src_w: int, src_h: int) -> tuple[int, int]:
    """Fills a missing side from the source aspect ratio; neither given = the source size."""
    if w is None and h is None:
        return src_w, src_h
    if h is None:
        assert w is not None
        return w, max(1, round(w * src_h / src_w))
    if w is None:
        return max(1, round(h * src_w / src_h)), h
    return w, h
