"""Object-name templates for ``sys/saveas,o_...`` (docs/TASKS.md; docs/BEHAVIOUR.md, "Saving
and naming").

Variables: ``{index}`` (output number from 1), ``{streamindex}`` (0: the video stream),
``{autoext}`` (``jpg`` / ``png``), ``{barename}`` (source file name without its extension),
``{ms}`` (the output frame's time in ms). ``{{`` and ``}}`` are literal braces. A name with no
variable and no extension gets ``_{streamindex}_{index}.{autoext}`` appended.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from ossframe_native.errors import InvalidArgument
from ossframe_native.store import validate_key

__all__ = ["VARIABLES", "NameTemplate", "barename_of", "compile_template"]

VARIABLES = ("index", "streamindex", "autoext", "barename", "ms")
#: Variables whose value changes from one output of a task to the next.
PER_OUTPUT = frozenset({"index", "ms"})
DEFAULT_SUFFIX = "_{streamindex}_{index}.{autoext}"


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


def barename_of(source: object) -> str | None:
    """The source's file name without its last extension, or ``None`` when it has no name.

    Paths (``str`` / ``os.PathLike``) and file objects with a text ``.name`` have one; ``bytes``
    sources do not.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return None
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
    else:
        name = getattr(source, "name", None)
    if not isinstance(name, str) or not name:
        return None
    base = os.path.basename(name.rstrip("/" + os.sep))
    stem, _ext = os.path.splitext(base)
    return stem or None
