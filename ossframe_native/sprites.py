"""``video/sprite``: the frames of a ``video/snapshots`` capture tiled into sheets, and a WebVTT
storyboard that points at them (docs/BEHAVIOUR.md, "Sprites").

* **Tiles** are the outputs of :func:`pipeline.open_capture` with the equivalent
  ``video/snapshots`` request (:meth:`SpriteRequest.snapshots_request`): the same frames, the
  same planned reads, rendered by :meth:`Capture.render` at the same size. Nothing else decodes.
* **Layout**: tile k (from 0, in time order) lies on sheet ``k // (tw*th) + 1`` in the cell at
  row ``(k mod tw*th) // tw``, column ``k mod tw``; the cell's corner is at
  ``x = margin + column*(cell_w + pad)``, ``y = margin + row*(cell_h + pad)``. Every sheet is
  ``2*margin + tw*cell_w + (tw-1)*pad`` wide and likewise high; what no picture covers is black.
  A picture smaller than its cell (``scaletype_fit``) is centred in it.
* **Storyboard** (``vtt_1``): one cue per tile, from its frame's time to the next tile's (the
  last to the end of the stream), payload ``<sheet, relative to the VTT>#xywh=x,y,w,h``.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

import numpy as np

from . import encode, geometry, sources
from .decode import Source
from .names import NameTemplate, storyboard_key, storyboard_name
from .params import SpriteRequest
from .pipeline import Capture, Output, open_capture

__all__ = [
    "EncodedSheet",
    "Layout",
    "Sheet",
    "Sprite",
    "Tile",
    "open_sprite",
    "sprite",
    "storyboard",
    "storyboard_name",  # from names.py, with the storyboard's key
]

# Tiles rendered ahead of the one being placed (on the capture's worker thread).
_RENDER_AHEAD = 2


@dataclass(frozen=True)
class Tile:
    """One tile: the frame it shows and the rectangle its picture covers on its sheet."""

    number: int  # place in the sprite, from 1
    sheet: int  # the sheet it lies on, from 1
    x: int
    y: int
    w: int
    h: int
    time_ms: int  # the frame's time from the first frame, rounded up to whole ms
    frame: int | None  # the frame's number in the stream (as Image.index)
    keyframe: bool
    score: float | None = None  # dhash mode: percent of hash bits changed from the previous

    def to_dict(self) -> dict[str, Any]:
        """The tile as JSON-ready data."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Sheet:
    """One sheet: an (H, W, 3) uint8 picture (RGB, or BGR where asked) and its tiles."""

    number: int  # from 1: the {index} of its object name
    array: np.ndarray = field(repr=False)
    tiles: tuple[Tile, ...]

    @property
    def time_ms(self) -> int:
        """The time of its first tile (the {ms} of its object name)."""
        return self.tiles[0].time_ms


@dataclass(frozen=True)
class EncodedSheet:
    """A sheet encoded as jpg/png."""

    data: bytes = field(repr=False)
    format: str
    width: int
    height: int
    number: int
    tiles: tuple[Tile, ...]

    @property
    def time_ms(self) -> int:
        """The time of its first tile."""
        return self.tiles[0].time_ms


@dataclass(frozen=True)
class Layout:
    """Where the tiles of a sprite go: cells of ``cell_w`` x ``cell_h`` px, ``columns`` x
    ``rows`` per sheet, ``pad`` px apart, ``margin`` px from the edges of a ``width`` x
    ``height`` sheet."""

    cell_w: int
    cell_h: int
    columns: int
    rows: int
    pad: int
    margin: int
    width: int
    height: int

    @property
    def per_sheet(self) -> int:
        """Tiles on a full sheet."""
        return self.columns * self.rows

    def cell(self, k: int) -> tuple[int, int, int]:
        """(sheet from 1, x, y) of the cell of tile ``k`` (from 0)."""
        sheet, place = divmod(k, self.per_sheet)
        row, column = divmod(place, self.columns)
        x = self.margin + column * (self.cell_w + self.pad)
        y = self.margin + row * (self.cell_h + self.pad)
        return sheet + 1, x, y


def layout_for(request: SpriteRequest, width: int, height: int) -> Layout:
    """The layout of ``request`` on a ``width`` x ``height`` source: the cell is the size a
    ``video/snapshots`` output is fitted into (``sw``/``sh``, else ``psw``/``psh`` % of the
    source, a missing side keeping the aspect ratio). Raises ``InvalidArgument`` where a sheet
    would pass 16384 px."""
    box_request = dataclasses.replace(request.snapshots_request(), scaletype="stretch")
    cell_w, cell_h = geometry.for_snapshots(box_request, width, height).canvas
    sheet_w, sheet_h = request.sheet_size(cell_w, cell_h)
    return Layout(
        cell_w, cell_h, request.tw, request.th, request.pad, request.margin, sheet_w, sheet_h
    )


class Sprite:
    """An opened ``video/sprite``: iterate it for its :class:`Sheet` objects, in time order.

    Every parameter was checked against the source when it was opened; frames are decoded as
    the sheets are consumed. ``tiles`` holds the tiles of the sheets handed out so far (all of
    them once the iteration ends); ``end_ms`` is the end of the stream (the last frame's end,
    rounded up to whole ms). Use as a context manager, or consume it to the end.
    """

    def __init__(
        self, capture: Capture, request: SpriteRequest, layout: Layout, bgr: bool = False
    ) -> None:
        self.capture = capture
        self.request = request
        self.layout = layout
        self.bgr = bgr
        self.tiles: list[Tile] = []
        duration_ms = capture.index.duration * 1000
        self.end_ms = -(-duration_ms.numerator // duration_ms.denominator)

    def __enter__(self) -> Sprite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the source."""
        self.capture.close()

    def __iter__(self) -> Iterator[Sheet]:
        return self.sheets()

    def sheets(self) -> Iterator[Sheet]:
        """The sheets, each handed out once full (the last one when the capture ends)."""
        layout = self.layout
        rendered = self.capture.mapped(self._render, ahead=_RENDER_AHEAD)
        placed: list[Tile] = []
        array: np.ndarray | None = None
        try:
            for k, (output, picture) in enumerate(rendered):
                sheet, x, y = layout.cell(k)
                if array is None:
                    array = np.zeros((layout.height, layout.width, 3), np.uint8)
                x, y, w, h = _place(array, picture, x, y, layout)
                tile = Tile(
                    k + 1, sheet, x, y, w, h, output.time_ms, output.index, output.keyframe,
                    output.score,
                )  # fmt: skip
                placed.append(tile)
                self.tiles.append(tile)
                if len(placed) == layout.per_sheet:
                    yield Sheet(sheet, array, tuple(placed))
                    placed, array = [], None
            if placed and array is not None:
                yield Sheet(placed[0].sheet, array, tuple(placed))
        finally:
            rendered.close()  # type: ignore[attr-defined]
            self.close()

    def encoded(self) -> Iterator[EncodedSheet]:
        """The sheets encoded in the request's format (render them in BGR: ``bgr=True``)."""
        fmt = self.request.f
        for sheet in self.sheets():
            rgb_order = sheet.array if self.bgr else sheet.array[:, :, ::-1]
            data = encode.encode(np.ascontiguousarray(rgb_order), fmt)
            height, width = sheet.array.shape[:2]
            yield EncodedSheet(data, fmt, width, height, sheet.number, sheet.tiles)

    def storyboard(self, sheet_urls: Sequence[str]) -> str:
        """The WebVTT storyboard of the tiles handed out so far (see :func:`storyboard`)."""
        return storyboard(self.tiles, sheet_urls, self.end_ms)

    def _render(self, output: Output) -> tuple[Output, np.ndarray]:
        return output, self.capture.render(output, bgr=self.bgr)


def _place(
    sheet: np.ndarray, picture: np.ndarray, x: int, y: int, layout: Layout
) -> tuple[int, int, int, int]:
    """Copies ``picture`` into the cell at (x, y), centred (a picture larger than the cell,
    from a frame whose size changed mid-stream, is cut to the cell's centre); returns the
    rectangle it covers."""
    placed = []
    for size, cell in ((picture.shape[1], layout.cell_w), (picture.shape[0], layout.cell_h)):
        if size <= cell:
            placed.append(((cell - size) // 2, 0, size))  # offset in the cell, in the picture
        else:
            placed.append((0, (size - cell) // 2, cell))
    (dx, px, w), (dy, py, h) = placed
    sheet[y + dy : y + dy + h, x + dx : x + dx + w] = picture[py : py + h, px : px + w]
    return x + dx, y + dy, w, h


def open_sprite(
    source: Source,
    request: SpriteRequest,
    *,
    threads: int | None = None,
    bgr: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Sprite:
    """Opens ``source`` for ``request``: the capture of its ``video/snapshots`` equivalent
    (every parameter checked against the media here, a sheet over 16384 px included), nothing
    decoded yet. ``bgr``: sheets in BGR order (what the encoder takes). Sources and
    ``storage_options`` as for ``snapshot``."""
    source = sources.bind(source, storage_options)
    capture = open_capture(source, request.snapshots_request(), threads=threads)
    try:
        layout = layout_for(request, capture.info.width, capture.info.height)
    except BaseException:
        capture.close()
        raise
    return Sprite(capture, request, layout, bgr)


def sprite(
    source: Source,
    f: str = "jpg",
    m: str = "inter",
    thr: int = 0,
    inter: int = 0,
    num: int = 0,
    ss: int = 0,
    sw: int | None = None,
    sh: int | None = None,
    psw: int | None = None,
    psh: int | None = None,
    scaletype: str = "stretch",
    tw: int = 6,
    th: int = 6,
    pad: int = 2,
    margin: int = 2,
    threads: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Sprite:
    """Tiles the frames ``video/snapshots`` would capture into sheets, without encoding them.

    Iterate the result for :class:`Sheet` objects ((H, W, 3) uint8 RGB arrays and their
    :class:`Tile` map); ``Sprite.storyboard(urls)`` writes the WebVTT storyboard. Parameters as
    in ``video/sprite`` (docs/BEHAVIOUR.md, "Sprites"); every one is checked against the source
    before this returns. Sources and ``storage_options`` as for ``snapshot``.
    """
    params = {name: value for name, value in locals().items() if name not in _NOT_PARAMS}
    request = SpriteRequest.from_kwargs(params)
    return open_sprite(source, request, threads=threads, storage_options=storage_options)


_NOT_PARAMS = ("source", "threads", "storage_options")  # sprite() arguments, not parameters


# -- the storyboard ----------------------------------------------------------------------------


def storyboard(tiles: Sequence[Tile], sheet_urls: Sequence[str], end_ms: int) -> str:
    """WebVTT text with one cue per tile, in order: from the tile's ``time_ms`` to the next
    tile's (the last one to ``end_ms``), payload ``<sheet_urls[sheet - 1]>#xywh=x,y,w,h``.

    Cue times are the frames' times rounded up to whole ms, as ``time_ms`` is, so at every
    whole millisecond the active cue is the tile whose frame is shown then (among the tiles).
    """
    lines = ["WEBVTT", ""]
    for i, tile in enumerate(tiles):
        end = tiles[i + 1].time_ms if i + 1 < len(tiles) else max(end_ms, tile.time_ms)
        lines += [
            str(tile.number),
            f"{_timestamp(tile.time_ms)} --> {_timestamp(end)}",
            f"{sheet_urls[tile.sheet - 1]}#xywh={tile.x},{tile.y},{tile.w},{tile.h}",
            "",
        ]
    return "\n".join(lines)


def _timestamp(ms: int) -> str:
    """``HH:MM:SS.mmm`` (hours take more digits where needed)."""
    seconds, millis = divmod(ms, 1000)
    minutes, secs = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    return f"{hours:02d}:{mins:02d}:{secs:02d}.{millis:03d}"


def sheet_url(sheet: str, vtt: str) -> str:
    """How the storyboard ``vtt`` refers to ``sheet`` (both object names or paths): the
    sheet's path relative to the storyboard's folder, percent-encoded as a URL path."""
    return quote(posixpath.relpath(sheet, posixpath.dirname(vtt) or "."))


# -- sprite tasks (sys/saveas) ------------------------------------------------------------------


class StoredObject(NamedTuple):
    """One object a sprite task stores under ``key``: a sheet, or the storyboard (``vtt``)."""

    key: str
    data: bytes
    format: str
    width: int
    height: int
    time_ms: int


def task_outputs(
    source: Source,
    request: SpriteRequest,
    template: NameTemplate,
    barename: str | None,
    threads: int | None = None,
) -> Iterator[StoredObject]:
    """The objects of a sprite task: each sheet, named by ``template`` with ``{index}`` = its
    number and ``{ms}`` = its first tile's time, then (``vtt_1``) the storyboard, named by the
    template as written for the first sheet with ``.vtt`` as its extension.

    Opens the source now (errors about the request or the media raise here, before decoding).
    """

    def sheet_key(number: int, ms: int) -> str:
        return template.render(index=number, ms=ms, autoext=request.f, barename=barename)

    def vtt_key(ms: int) -> str:
        return storyboard_key(template, ms=ms, autoext=request.f, barename=barename)

    if request.vtt:
        vtt_key(0)  # a name that cannot be written fails before decoding
    run = open_sprite(source, request, threads=threads, bgr=True)
    return _stored(run, sheet_key, vtt_key if request.vtt else None)


def _stored(
    run: Sprite,
    sheet_key: Callable[[int, int], str],
    vtt_key: Callable[[int], str] | None,
) -> Iterator[StoredObject]:
    keys: list[str] = []
    with run:
        for sheet in run.encoded():
            key = sheet_key(sheet.number, sheet.time_ms)
            keys.append(key)
            yield StoredObject(key, sheet.data, sheet.format, sheet.width, sheet.height,
                               sheet.time_ms)  # fmt: skip
    if vtt_key is not None and run.tiles:
        key = vtt_key(run.tiles[0].time_ms)
        text = run.storyboard([sheet_url(sheet, key) for sheet in keys])
        yield StoredObject(key, text.encode(), "vtt", 0, 0, run.tiles[0].time_ms)
