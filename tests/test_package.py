"""The package's public face: ``__all__`` names what users call and nothing of the engine's
inside, every name there resolves and is documented, and the names the docs use are public."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

import ossframe_native as ofn

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NEEDS_TORCH = {"FrameDataset"}  # subclasses a torch class: defined on first use


def public(name: str):
    return pytest.param(name, marks=pytest.mark.needs("torch")) if name in NEEDS_TORCH else name


@pytest.mark.parametrize("name", [public(name) for name in ofn.__all__])
def test_each_public_name_resolves_and_is_documented(name: str) -> None:
    value = getattr(ofn, name)
    assert value.__module__.startswith("ossframe_native."), (name, value.__module__)
    assert inspect.getdoc(value), f"ossframe_native.{name} has no docstring"


def test_all_is_every_name_the_package_offers_and_no_engine_internal() -> None:
    """The names imported on first use and the errors are ``__all__``, no more and no fewer;
    the engine's interfaces stay in their modules."""
    assert ofn.__all__ == sorted(ofn.__all__)
    assert set(ofn._LAZY) | {"FrameError", "InvalidArgument", "MediaError"} == set(ofn.__all__)
    for internal in ("Capture", "open_capture", "VideoSource"):
        with pytest.raises(AttributeError):
            getattr(ofn, internal)


def test_names_the_docs_use_are_public() -> None:
    """``ofn.X`` / ``ossframe_native.X`` in the README and docs/ is a public name or a module."""
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for name in set(re.findall(r"\b(?:ofn|ossframe_native)\.([A-Za-z_]\w*)", text)):
            module = importlib.util.find_spec(f"ossframe_native.{name}") is not None
            assert name in ofn.__all__ or name == "__version__" or module, f"{doc.name}: {name}"
