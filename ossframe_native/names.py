"""Every name a process string gives, checked in one place: buckets, object keys, object-name
templates (``sys/saveas,o_...``) and topics (docs/TASKS.md; docs/BEHAVIOUR.md, "Saving and
naming").

A leaf module (it imports only :mod:`ossframe_native.errors`): the parser (``params.py``) checks
a process string's names with these functions, and the store, ``notify`` and the task runner
use the same ones, so a name that parses is a name that can be written.

Template variables: ``{index}`` (output number from 1), ``{streamindex}`` (0: the video
stream), ``{autoext}`` (``jpg`` / ``png``), ``{barename}`` (the source's file name without its
extension: ``sources.barename_of``), ``{ms}`` (the output frame's time in ms). ``{{`` and
``}}`` are literal braces. A name with no variable and no extension gets
``_{streamindex}_{index}.{autoext}`` appended.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ossframe_native.errors import InvalidArgument

__all__ = [
    "VARIABLES",
    "NameTemplate",
    "compile_template",
    "storyboard_key",
    "storyboard_name",
    "validate_bucket",
    "validate_key",
    "validate_topic",
]

MAX_KEY_BYTES = 1023
# Bytes of one '/'-separated segment of a key: the file-name limit (NAME_MAX) of ext4, XFS,
# Btrfs, APFS and NTFS, so a key that validates can be written to any local store.
MAX_SEGMENT_BYTES = 255
# The suffix of a store's temporary files (writes in progress): no object name segment ends so.
TEMP_SUFFIX = ".ossframe-tmp"

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_TOPIC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,255}")

VARIABLES = ("index", "streamindex", "autoext", "barename", "ms")
#: Variables whose value changes from one output of a task to the next.
PER_OUTPUT = frozenset({"index", "ms"})
DEFAULT_SUFFIX = "_{streamindex}_{index}.{autoext}"


def validate_bucket(bucket: str, param: str = "b") -> str:
    """Return ``bucket`` if it is a valid OSS bucket name, else raise ``InvalidArgument``.

    OSS rules: 3 to 63 characters, lower-case letters, digits and hyphens, starting and ending
    with a letter or digit.
    """
    if not isinstance(bucket, str) or not _BUCKET_RE.fullmatch(bucket):
        raise InvalidArgument(
            param,
            f"invalid bucket name {bucket!r}; a bucket name has 3 to 63 characters, only "
            "lower-case letters, digits and hyphens, and starts and ends with a letter or digit",
        )
    return bucket


def validate_key(key: str, param: str = "o") -> str:
    """Return ``key`` if it is an object key that stays inside its bucket, else raise.

    Refused: empty keys, keys over 1023 bytes of UTF-8, absolute keys (leading ``/``),
    backslashes, NUL and other control characters, empty, ``.`` or ``..`` segments, segments
    over 255 bytes (the file-name limit of local file systems) and segments ending in
    ``.ossframe-tmp`` (the store's temporary files: never listed, read or deleted).
    """
    if not isinstance(key, str) or not key:
        raise InvalidArgument(param, "the object name is empty; give a name of 1 to 1023 bytes")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(param, f"object name {key!r} is not valid UTF-8 text") from None
    if size > MAX_KEY_BYTES:
        raise InvalidArgument(
            param, f"object name is {size} bytes of UTF-8; at most {MAX_KEY_BYTES} are allowed"
        )
    if "\\" in key:
        raise InvalidArgument(
            param, f"object name {key!r} contains a backslash; separate folders with '/'"
        )
    if _CONTROL_RE.search(key):
        raise InvalidArgument(
            param, f"object name {key!r} contains NUL or a control character; these are refused"
        )
    if key.startswith("/"):
        raise InvalidArgument(
            param, f"object name {key!r} is absolute; names are relative to their bucket"
        )
    for segment in key.split("/"):
        if segment.endswith(TEMP_SUFFIX):
            raise InvalidArgument(
                param,
                f"object name {key!r} ends a segment with {TEMP_SUFFIX!r}, which the store "
                "reserves for its writes in progress",
            )
        if segment in ("", ".", ".."):
            raise InvalidArgument(
                param,
                f"object name {key!r} has an empty, '.' or '..' path segment; a name may not "
                "leave its bucket or contain '//'",
            )
        segment_size = len(segment.encode("utf-8"))
        if segment_size > MAX_SEGMENT_BYTES:
            raise InvalidArgument(
                param,
                f"object name has a segment (between '/') of {segment_size} bytes of UTF-8; file "
                f"systems allow at most {MAX_SEGMENT_BYTES} bytes per name, so each segment may "
                f"have at most {MAX_SEGMENT_BYTES} (split the name with '/')",
            )
    return key


def validate_topic(topic: str, param: str = "topic") -> str:
    """Return ``topic`` if it is a valid topic name, else raise ``InvalidArgument``.

    1 to 256 characters: letters, digits, hyphens and underscores, starting with a letter or
    a digit (the topic names of Alibaba Cloud MNS, plus ``_``).
    """
    if not isinstance(topic, str) or not _TOPIC_RE.fullmatch(topic):
        raise InvalidArgument(
            param,
            f"invalid topic name {topic!r}; a topic has 1 to 256 letters, digits, hyphens or "
            "underscores and starts with a letter or digit",
        )
    return topic


@dataclass(frozen=True)
class NameTemplate:
    """A parsed object name: literal text and variable names, in order."""

    source: str
    parts: tuple[tuple[bool, str], ...]  # (is_variable, text or variable name)
    suffixed: bool  # the _{streamindex}_{index}.{autoext} rule was applied

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(text for is_var, text in self.parts if is_var)

    @property
    def fixed(self) -> bool:
        """True when every output of a task gets the same name (each overwrites the last)."""
        return not (self.variables & PER_OUTPUT)

    def render(
        self,
        *,
        index: int,
        ms: int,
        autoext: str,
        barename: str | None,
        streamindex: int = 0,
        param: str = "o",
    ) -> str:
        """The object key for one output; raises ``InvalidArgument`` if it is not a valid key."""
        values = {
            "index": str(index),
            "streamindex": str(streamindex),
            "autoext": autoext,
            "ms": str(ms),
            "barename": barename,
        }
        out = []
        for is_var, text in self.parts:
            if not is_var:
                out.append(text)
                continue
            value = values[text]
            if value is None:
                raise InvalidArgument(
                    param,
                    "{barename} needs a source with a file name (a path, or a file object with "
                    "a .name); this source has none",
                )
            out.append(value)
        return validate_key("".join(out), param)


def compile_template(template: str, param: str = "o") -> NameTemplate:
    """Parse an object-name template; unknown variables and stray braces are ``InvalidArgument``."""
    if not isinstance(template, str):
        raise InvalidArgument(param, f"object name must be text, not {type(template).__name__}")
    parts = _parse(template, param)
    suffixed = False
    literal = "".join(text for _, text in parts)
    if not any(is_var for is_var, _ in parts) and not _has_extension(literal):
        parts = parts + _parse(DEFAULT_SUFFIX, param)
        suffixed = True
    return NameTemplate(template, _merge(parts), suffixed)


def _has_extension(literal: str) -> bool:
    stem, ext = posixpath.splitext(literal.rsplit("/", 1)[-1])
    return bool(stem) and len(ext) > 1


def _parse(template: str, param: str) -> tuple[tuple[bool, str], ...]:
    parts: list[tuple[bool, str]] = []
    literal: list[str] = []
    i, n = 0, len(template)
    allowed = ", ".join("{" + v + "}" for v in VARIABLES)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = template.find("}", i + 1)
            if end < 0:
                raise InvalidArgument(
                    param,
                    f"unclosed '{{' at position {i} of object name {template!r}; "
                    "write '{{' for a literal brace",
                )
            name = template[i + 1 : end]
            if name not in VARIABLES:
                raise InvalidArgument(
                    param,
                    f"unknown variable {{{name}}} in object name {template!r}; allowed: "
                    f"{allowed} ('{{{{' and '}}}}' for literal braces)",
                )
            if literal:
                parts.append((False, "".join(literal)))
                literal = []
            parts.append((True, name))
            i = end + 1
        elif ch == "}":
            if template.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise InvalidArgument(
                param,
                f"stray '}}' at position {i} of object name {template!r}; "
                "write '}}}}' for a literal brace",
            )
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append((False, "".join(literal)))
    return tuple(parts)


def _merge(parts: tuple[tuple[bool, str], ...]) -> tuple[tuple[bool, str], ...]:
    merged: list[tuple[bool, str]] = []
    for is_var, text in parts:
        if merged and not is_var and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + text)
        else:
            merged.append((is_var, text))
    return tuple(merged)


def storyboard_key(template: NameTemplate, *, ms: int, autoext: str, barename: str | None) -> str:
    """The key of a ``video/sprite`` storyboard (``vtt_1``): the name as written (without the
    default suffix) rendered as for the first sheet (``{index}`` 1, ``{ms}`` its time), with
    ``.vtt`` in place of its extension. ``InvalidArgument("o")`` where that is not a valid key
    or is the first sheet's own name."""
    written = template
    if template.suffixed:
        written = NameTemplate(template.source, _merge(_parse(template.source, "o")), False)
    key = storyboard_name(written.render(index=1, ms=ms, autoext=autoext, barename=barename))
    if key == template.render(index=1, ms=ms, autoext=autoext, barename=barename):
        raise InvalidArgument(
            "o",
            f"with vtt_1 the storyboard would be stored as the sheet {key!r}: give the sheets "
            "an image extension ({autoext}) or none",
        )
    return validate_key(key, "o")


def storyboard_name(name: str) -> str:
    """``name`` with ``.vtt`` in place of its extension, or appended where it has none
    (``thumbs/clip_1.jpg`` -> ``thumbs/clip_1.vtt``, ``thumbs/clip`` -> ``thumbs/clip.vtt``)."""
    head, sep, last = name.rpartition("/")
    stem, ext = posixpath.splitext(last)
    return f"{head}{sep}{stem if stem and len(ext) > 1 else last}.vtt"
