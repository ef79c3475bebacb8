"""Shared fixtures of the kernel tests: every test that takes ``isa`` runs once per code path
this CPU has (ref, avx2, avx512vnni, or numpy-reference without the compiled module);
``run_python`` runs code in a fresh interpreter (environment variables read at import, or a call
that must not be able to take the test run down with it if it crashed)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from labkit import kernels


@pytest.fixture(params=kernels.available_isas())
def isa(request):
    """Force one code path for the test, then restore the one that was in use."""
    previous = kernels.isa()
    kernels.set_isa(request.param)
    yield request.param
    kernels.set_isa(previous)


@pytest.fixture(autouse=True)
def single_thread():
    """Run the kernels on one thread unless a test asks for more (test_threads.py): on a busy
    machine every OpenMP fork/join can wait milliseconds for a core, which would dominate here."""
    previous = kernels.get_num_threads()
    kernels.set_num_threads(1)
    yield
    kernels.set_num_threads(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(20240607)


@pytest.fixture
def run_python():
    """run(code, **env) -> CompletedProcess of ``python -c code``; env values override the
    environment, None removes a variable (e.g. LABKIT_ISA=None)."""
    def run(code: str, **env):
        environment = {**os.environ, **env}
        environment = {key: value for key, value in environment.items() if value is not None}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                              timeout=120)
    return run
