"""Builds the C++ kernels as ``ossframe_native._native`` (pybind11, C++17)."""

import ast
import sys
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup


def package_version() -> str:
    """``__version__`` of ossframe_native/__init__.py, the one place the version is written."""
    init = Path(__file__).parent / "ossframe_native" / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise RuntimeError("ossframe_native/__init__.py defines no __version__")


extra_compile_args = ["-O3", "-Wall", "-Wextra"] if sys.platform != "win32" else ["/O2", "/W4"]

ext_modules = [
    Pybind11Extension(
        "ossframe_native._native",
        sorted(glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        cxx_std=17,
        define_macros=[("OSSFRAME_VERSION_INFO", f'"{package_version()}"')],
        extra_compile_args=extra_compile_args,
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
