"""Process strings and keyword arguments -> validated, frozen requests.

Every parameter range of docs/BEHAVIOUR.md lives in this module. Ranges that depend on the media
(``w``/``h`` of ``video/snapshot`` against the source size, ``ss`` against the duration) are
checked by
:func:`ossframe_native.pipeline.resolve` once the source is opened, before any output.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InvalidArgument
from .names import (
    NameTemplate,
    compile_template,
    storyboard_key,
    validate_bucket,
    validate_topic,
)

MAX_INT = 2**53 - 1  # the largest integer a JSON consumer can hold exactly
FORMATS = ("jpg", "png")
# The video/snapshots modes (m): modes.register adds each mode's name.
SNAPSHOTS_MODES: list[str] = ["default", "avg", "dhash", "key"]
SPRITE_MODES = ("inter", "avg", "dhash", "key")  # video/sprite names the default mode "inter"
MAX_SHEET = 16384  # px: the longest side of a video/sprite sheet
SCALETYPES = ("stretch", "crop", "fill", "fit")
ROTATIONS = ("auto", "w", "h")

_DECIMAL = re.compile(r"[0-9]+\Z")


@dataclass(frozen=True)
class IntRange:
    """An integer parameter: ``lo..hi`` inclusive."""

    lo: int
    hi: int
    unit: str = ""  # "ms" for times: messages then say the value is in milliseconds

    def describe(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"an integer in {self.lo}..{self.hi}{unit}"

    def check(self, param: str, value: Any) -> int:
        if isinstance(value, str):
            if not _DECIMAL.match(value):
                raise InvalidArgument(
                    param,
                    f"must be {self.describe()} written as plain decimal digits, got {value!r}",
                )
            digits = value.lstrip("0") or "0"  # leading zeros: int() refuses > 4300 digits
            if len(digits) > len(str(self.hi)):  # out of range; spare int() the work
                raise InvalidArgument(param, f"must be {self.describe()}, got {value[:20]}...")
            value = int(digits)
        elif not isinstance(value, bool):
            with contextlib.suppress(TypeError):
                value = operator.index(value)  # NumPy and other integer types
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(param, f"must be {self.describe()}, got {value!r}")
        if not self.lo <= value <= self.hi:
            raise InvalidArgument(param, f"must be {self.describe()}, got {value}")
        return value


@dataclass(frozen=True)
class Choice:
    """A parameter taking one of a few words (a list may grow: registered modes)."""

    values: Sequence[str]

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)

    def check(self, param: str, value: Any) -> str:
        if value not in self.values:
            raise InvalidArgument(param, f"must be {self.describe()}, got {value!r}")
        return str(value)


def _param(rule: IntRange | Choice, default: Any = None) -> Any:
    return field(default=default, metadata={"rule": rule})


class _Validated:
    """Checks every field against its rule; ``None`` means "not given" and keeps the default."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, f.metadata["rule"].check(f.name, value))

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Any:
        """Builds the request from keyword arguments, rejecting unknown names."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        for name in kwargs:
            if name not in known:
                raise InvalidArgument(
                    name, f"unknown parameter; allowed: {', '.join(sorted(known))}"
                )
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


@dataclass(frozen=True)
class SnapshotRequest(_Validated):
    """``video/snapshot``: one frame."""

    t: int = _param(IntRange(0, MAX_INT, "ms"), 0)
    w: int = _param(IntRange(0, MAX_INT), 0)
    h: int = _param(IntRange(0, MAX_INT), 0)
    m: str | None = _param(Choice(("fast",)))
    f: str = _param(Choice(FORMATS), "jpg")
    ar: str | None = _param(Choice(ROTATIONS))

    action = "video/snapshot"


@dataclass(frozen=True)
class SnapshotsRequest(_Validated):
    """``video/snapshots``: many frames."""

    ss: int = _param(IntRange(0, MAX_INT, "ms"), 0)
    f: str = _param(Choice(FORMATS), "jpg")
    m: str = _param(Choice(SNAPSHOTS_MODES), "default")
    thr: int = _param(IntRange(0, 100), 0)
    num: int = _param(IntRange(0, MAX_INT), 0)
    inter: int = _param(IntRange(0, MAX_INT, "ms"), 0)
    w: int | None = _param(IntRange(32, 4096))
    h: int | None = _param(IntRange(32, 4096))
    pw: int | None = _param(IntRange(1, 200))
    ph: int | None = _param(IntRange(1, 200))
    scaletype: str = _param(Choice(SCALETYPES), "stretch")

    action = "video/snapshots"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.m == "avg" and self.num == 0:
            raise InvalidArgument("num", f"must be an integer in 1..{MAX_INT} in avg mode")


CaptureRequest = SnapshotRequest | SnapshotsRequest


@dataclass(frozen=True)
class SpriteRequest(_Validated):
    """``video/sprite``: the frames ``video/snapshots`` would output, tiled into sheets.

    Tiles are ``sw`` x ``sh`` px (else ``psw``/``psh`` % of the source; the source size by
    default), ``tw`` per row and ``th`` per column, ``pad`` px apart and ``margin`` px from the
    sheet's edge. ``vtt=1`` (beyond OSS) also writes a WebVTT storyboard of the tiles.
    """

    ss: int = _param(IntRange(0, MAX_INT, "ms"), 0)
    f: str = _param(Choice(FORMATS), "jpg")
    m: str = _param(Choice(SPRITE_MODES), "inter")
    thr: int = _param(IntRange(0, 100), 0)
    num: int = _param(IntRange(0, MAX_INT), 0)
    inter: int = _param(IntRange(0, MAX_INT, "ms"), 0)
    sw: int | None = _param(IntRange(32, 4096))
    sh: int | None = _param(IntRange(32, 4096))
    psw: int | None = _param(IntRange(1, 200))
    psh: int | None = _param(IntRange(1, 200))
    scaletype: str = _param(Choice(SCALETYPES), "stretch")
    tw: int = _param(IntRange(1, MAX_SHEET), 6)
    th: int = _param(IntRange(1, MAX_SHEET), 6)
    pad: int = _param(IntRange(0, MAX_SHEET), 2)
    margin: int = _param(IntRange(0, MAX_SHEET), 2)
    vtt: int = _param(IntRange(0, 1), 0)

    action = "video/sprite"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.snapshots_request()  # the sampling rules of video/snapshots (avg needs num)
        if self.sw is not None and self.sh is not None:  # the tile size is known: so is a sheet's
            self.sheet_size(self.sw, self.sh)

    def snapshots_request(self) -> SnapshotsRequest:
        """The ``video/snapshots`` request whose outputs are this sprite's tiles."""
        return SnapshotsRequest(
            ss=self.ss,
            f=self.f,
            m="default" if self.m == "inter" else self.m,
            thr=self.thr,
            num=self.num,
            inter=self.inter,
            w=self.sw,
            h=self.sh,
            pw=self.psw,
            ph=self.psh,
            scaletype=self.scaletype,
        )

    def sheet_size(self, tile_w: int, tile_h: int) -> tuple[int, int]:
        """(width, height) of a sheet of ``tile_w`` x ``tile_h`` tiles; ``InvalidArgument``
        (``tw`` or ``th``) where a side would pass :data:`MAX_SHEET`."""
        size = []
        for param, count, tile, side in (
            ("tw", self.tw, tile_w, "wide"),
            ("th", self.th, tile_h, "high"),
        ):
            extent = 2 * self.margin + count * tile + (count - 1) * self.pad
            if extent > MAX_SHEET:
                across = "sw" if param == "tw" else "sh"
                raise InvalidArgument(
                    param,
                    f"a sheet would be {extent} px {side} (2*margin + {param}*{across} + "
                    f"({param}-1)*pad = 2*{self.margin} + {count}*{tile} + "
                    f"{count - 1}*{self.pad}); at most {MAX_SHEET} px: lower {param}, the tile "
                    "size, pad or margin",
                )
            size.append(extent)
        return size[0], size[1]


ActionRequest = CaptureRequest | SpriteRequest


@dataclass(frozen=True)
class SaveAs:
    """``sys/saveas``: store each output as ``object`` in ``bucket`` (both base64-decoded).

    Made only with a valid bucket name and object-name template; ``template`` is the compiled
    template, which every later step uses (nothing parses the name again).
    """

    bucket: str
    object: str
    template: NameTemplate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_bucket(self.bucket)
        object.__setattr__(self, "template", compile_template(self.object))


@dataclass(frozen=True)
class Notify:
    """``notify``: deliver the task result to ``topic`` (base64-decoded; a valid topic name)."""

    topic: str

    def __post_init__(self) -> None:
        validate_topic(self.topic)


@dataclass(frozen=True)
class ProcessRequest:
    """A whole process string: the capture action and what to do with its outputs."""

    action: ActionRequest
    saveas: SaveAs | None = None
    notify: Notify | None = None


_ACTIONS: dict[str, type[_Validated]] = {
    SnapshotRequest.action: SnapshotRequest,
    SnapshotsRequest.action: SnapshotsRequest,
    SpriteRequest.action: SpriteRequest,
}


def parse_process(spec: str) -> ProcessRequest:
    """Parses and validates a process string; raises :class:`InvalidArgument` before anything runs.

    >>> parse_process("video/snapshot,t_7000,f_jpg").action.t
    7000
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgument("spec", "must be a process string such as 'video/snapshot,t_0,f_jpg'")
    segments = spec.split("|")
    action = _parse_action(segments[0])
    saveas: SaveAs | None = None
    notify: Notify | None = None
    # After the action: "sys/saveas,..." then "notify,..." joined by "/" or "|". Base64url has
    # neither "/" nor "|", so both split cleanly.
    for step in _follow_on_steps(segments[1:]):
        name, params = _split_step(step)
        if name == "sys/saveas" and saveas is None and notify is None:
            values = _key_values(name, params, allowed=("b", "o"), required=("b", "o"))
            saveas = _saveas(_b64("b", values["b"]), _b64("o", values["o"]), action)
        elif name == "notify" and notify is None:
            values = _key_values(name, params, allowed=("topic",), required=("topic",))
            notify = _notify(_b64("topic", values["topic"]), saveas)
        else:
            raise InvalidArgument(
                "spec",
                f"unexpected step {name!r}; after the action only 'sys/saveas,b_..,o_..' and then "
                "'notify,topic_..' may follow, each once",
            )
    return ProcessRequest(action=action, saveas=saveas, notify=notify)


def _saveas(bucket: str, template: str, action: ActionRequest) -> SaveAs:
    """The saveas step: the bucket, the template's variables and braces, and the name it gives
    (a neutral ``{barename}``; a task checks the source's own only where the name uses it)
    must stay inside the bucket; so must a ``video/sprite`` storyboard's name (``vtt_1``)."""
    saveas = SaveAs(bucket=bucket, object=template)
    saveas.template.render(index=1, ms=0, autoext=action.f, barename="x")
    if getattr(action, "vtt", 0):
        storyboard_key(saveas.template, ms=0, autoext=action.f, barename="x")
    return saveas


def _notify(topic: str, saveas: SaveAs | None) -> Notify:
    if saveas is None:
        raise InvalidArgument(
            "notify",
            "notify needs sys/saveas: the message reports the saved objects; add "
            "'|sys/saveas,b_..,o_..' before notify",
        )
    return Notify(topic=topic)


def _parse_action(segment: str) -> ActionRequest:
    name, params = _split_step(segment)
    cls = _ACTIONS.get(name)
    if cls is None:
        raise InvalidArgument("spec", f"unknown action {name!r}; allowed: {', '.join(_ACTIONS)}")
    rules = {f.name: f.metadata["rule"] for f in fields(cls)}  # type: ignore[arg-type]
    values = _key_values(
        name, params, allowed=tuple(rules), required=("f",), check=lambda k, v: rules[k].check(k, v)
    )
    return cls(**values)  # type: ignore[return-value]


def _follow_on_steps(segments: list[str]) -> list[str]:
    steps: list[str] = []
    for segment in segments:
        if segment.startswith("sys/"):
            head, _, rest = segment[4:].partition("/")
            steps.append("sys/" + head)
            steps.extend(rest.split("/") if rest else [])
        else:
            steps.extend(segment.split("/"))
    return steps


def _split_step(step: str) -> tuple[str, list[str]]:
    name, *params = step.split(",")
    return name.strip(), params


def _key_values(
    step: str,
    params: list[str],
    *,
    allowed: tuple[str, ...],
    required: tuple[str, ...],
    check: Callable[[str, str], object] | None = None,
) -> dict[str, str]:
    """The ``key_value`` items of a step. Each item is checked as it is read (its key, then its
    value with ``check``), so the first invalid parameter in the order written is reported."""
    values: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("_")
        if not sep or not key:
            raise InvalidArgument(
                key or "spec", f"parameters of {step} are written key_value, got {item!r}"
            )
        if key not in allowed:
            raise InvalidArgument(
                key, f"unknown parameter of {step}; allowed: {', '.join(sorted(allowed))}"
            )
        if key in values:
            raise InvalidArgument(key, f"given more than once in {step}")
        if check is not None:
            check(key, value)
        values[key] = value
    for key in required:
        if key not in values:
            raise InvalidArgument(key, f"is required by {step}")
    return values


def _b64(param: str, text: str) -> str:
    """Decodes URL-safe base64 with or without padding; drops one trailing newline."""
    stripped = text.rstrip("=")
    padding = len(text) - len(stripped)
    if (
        not stripped
        or len(stripped) % 4 == 1
        or not re.fullmatch(r"[A-Za-z0-9_-]*", stripped)
        or (padding and (padding > 2 or len(text) % 4))  # padding, if any, exactly as needed
    ):
        raise InvalidArgument(param, f"must be non-empty URL-safe base64, got {text!r}")
    try:
        raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=b"-_", validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            param, f"must be URL-safe base64 of UTF-8 text, got {text!r}"
        ) from exc
    if decoded.endswith("\n"):
        decoded = decoded[:-1]
    if not decoded:
        raise InvalidArgument(param, "decodes to an empty name")
    return decoded
