"""Build the compiled int8 module `labkit.kernels._int8` (C++17, pybind11, OpenMP).

The kernels pick their SIMD path at run time (see labkit/kernels/src), so nothing here uses
`-march=native`. If the build with OpenMP fails, it is retried once without (one warning: the
kernels then run on one thread); if that fails too (no compiler), labkit still installs and falls
back to the numpy reference in `labkit.kernels.reference` with one clear warning.
"""
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

try:
    from pybind11.setup_helpers import Pybind11Extension
except ImportError:  # pybind11 missing: install the pure-Python package only
    Pybind11Extension = None


OPENMP_FLAG = "-fopenmp"


class OptionalBuildExt(build_ext):
    """Build the extension, with OpenMP if possible, but never fail the install because of it."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "use the reference"
            print(f"WARNING: labkit int8 kernels not built ({exc}); the numpy reference will be used.",
                  file=sys.stderr)

    def build_extension(self, ext):
        while True:  # at most twice: with OpenMP, then without
            try:
                return super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001
                if OPENMP_FLAG not in ext.extra_compile_args + ext.extra_link_args:
                    print(f"WARNING: could not build {ext.name} ({exc}); the numpy reference will be used.",
                          file=sys.stderr)
                    return None
                # The sources guard every OpenMP call with #ifdef _OPENMP: they build without it.
                print(f"WARNING: could not build {ext.name} with OpenMP ({exc}); retrying without "
                      "OpenMP (the kernels will run on one thread).", file=sys.stderr)
                ext.extra_compile_args = [a for a in ext.extra_compile_args if a != OPENMP_FLAG]
                ext.extra_link_args = [a for a in ext.extra_link_args if a != OPENMP_FLAG]


ext_modules = []
if Pybind11Extension is not None:
    ext_modules.append(
        Pybind11Extension(
            "labkit.kernels._int8",
            # One file per ISA; the SIMD ones mark each function __attribute__((target(...))), so
            # no file needs -mavx2 / -mavx512* / -mamx-* and the module still imports on any x86-64 CPU.
            sources=[f"labkit/kernels/src/{name}.cpp" for name in
                     ("int8", "dispatch", "conv", "kernels_ref", "kernels_avx2", "kernels_avx512", "kernels_amx",
                      "int4", "kernels_int4", "int4_bindings")],
            depends=[f"labkit/kernels/src/{name}.h" for name in ("int8", "driver", "requant", "int4")],
            cxx_std=17,
            extra_compile_args=["-O3", OPENMP_FLAG],
            extra_link_args=[OPENMP_FLAG],
        )
    )

if __name__ == "__main__":  # pip and setuptools run this file as __main__; tests import it
    setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
