"""Builds the C++ kernels as ``ossframe_native._native`` (pybind11, C++17)."""

import sys
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

extra_compile_args = ["-O3", "-Wall", "-Wextra"] if sys.platform != "win32" else ["/O2", "/W4"]

ext_modules = [
    Pybind11Extension(
        "ossframe_native._native",
        sorted(glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        cxx_std=17,
        define_macros=[("OSSFRAME_VERSION_INFO", '"0.1.0"')],
        extra_compile_args=extra_compile_args,
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
