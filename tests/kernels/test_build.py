"""The build: the C++ sources compile without OpenMP, and setup.py retries without -fopenmp before
falling back to the numpy reference (never failing the install, never using -march=native)."""
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "labkit" / "kernels" / "src"


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("nm") is None, reason="needs g++ and nm")
@pytest.mark.parametrize("name", ["dispatch.cpp", "conv.cpp"])  # the files that start threads
def test_sources_compile_without_openmp(tmp_path, name):
    """Without -fopenmp the `#pragma omp` lines are ignored; no OpenMP function may be called."""
    obj = tmp_path / "out.o"
    subprocess.run(["g++", "-std=c++17", "-O0", "-c", str(SOURCES / name), "-o", str(obj)], check=True,
                   capture_output=True, timeout=120)
    undefined = subprocess.run(["nm", "-u", str(obj)], check=True, capture_output=True, text=True).stdout
    assert not re.findall(r"\bomp_\w+|\bGOMP_\w+", undefined)


def load_setup():
    """setup.py as a module (its setup() call only runs as __main__, as pip runs it)."""
    spec = importlib.util.spec_from_file_location("labkit_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.ext_modules:
        pytest.skip("pybind11 is not installed: setup.py builds no extension")
    return module


def build_with(monkeypatch, fails_when):
    """Run OptionalBuildExt.build_extension with the real build replaced by one that raises while
    fails_when(flags) is true; return the flags of every attempt."""
    from setuptools import Distribution
    from setuptools.command.build_ext import build_ext
    from setuptools.errors import CompileError

    setup = load_setup()
    attempts = []

    def fake_build(self, ext):
        attempts.append(list(ext.extra_compile_args) + list(ext.extra_link_args))
        if fails_when(attempts[-1]):
            raise CompileError("simulated compiler failure")

    monkeypatch.setattr(build_ext, "build_extension", fake_build)
    setup.OptionalBuildExt(Distribution()).build_extension(setup.ext_modules[0])
    return attempts


def test_setup_retries_once_without_openmp(monkeypatch, capsys):
    attempts = build_with(monkeypatch, lambda flags: "-fopenmp" in flags)
    assert len(attempts) == 2
    assert "-fopenmp" in attempts[0] and "-fopenmp" not in attempts[1]
    assert not any("-march=native" in flag for flags in attempts for flag in flags)
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and "retrying without OpenMP" in err


def test_setup_falls_back_to_the_reference_when_nothing_builds(monkeypatch, capsys):
    attempts = build_with(monkeypatch, lambda flags: True)  # e.g. no compiler at all
    assert len(attempts) == 2
    err = capsys.readouterr().err
    assert "retrying without OpenMP" in err and "the numpy reference will be used" in err


def test_setup_builds_once_when_openmp_works(monkeypatch, capsys):
    assert len(build_with(monkeypatch, lambda flags: False)) == 1
    assert "WARNING" not in capsys.readouterr().err
