"""ISA selection (set_isa, LABKIT_ISA), thread count, and the numpy fallback with one warning."""
import importlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import api, reference


def test_isa_names():
    available = kernels.available_isas()
    assert kernels.isa() in available
    assert set(available) <= {"ref", "avx2", "avx512vnni", "numpy-reference"}
    if api._ext is not None:
        assert available[0] == "ref" and kernels.isa() == available[-1] or os.environ.get("LABKIT_ISA")


def test_set_isa_round_trip(isa):
    assert kernels.isa() == isa


def test_unavailable_isas_are_refused():
    with pytest.raises(ValueError, match="amx"):
        kernels.set_isa("amx")
    with pytest.raises(ValueError, match="one of"):
        kernels.set_isa("avx1024")
    with pytest.raises(TypeError):
        kernels.set_isa(3)
    for name in ("ref", "avx2", "avx512vnni"):
        if name not in kernels.available_isas():
            with pytest.raises(ValueError, match="not available"):
                kernels.set_isa(name)


def run_python(code: str, **env):
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)


def test_environment_variable_forces_and_refuses():
    result = run_python("import labkit.kernels as k; print(k.isa())", LABKIT_ISA="amx")
    assert result.returncode != 0 and "ValueError" in result.stderr and "LABKIT_ISA='amx'" in result.stderr
    if api._ext is not None:
        result = run_python("import labkit.kernels as k; print(k.isa())", LABKIT_ISA="ref")
        assert result.returncode == 0 and result.stdout.strip() == "ref"


def test_set_num_threads():
    previous = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        assert kernels.get_num_threads() == 1
        with pytest.raises(TypeError):
            kernels.set_num_threads(1.5)
    finally:
        kernels.set_num_threads(previous)


def test_fallback_when_the_extension_is_hidden(monkeypatch):
    """Hide the compiled module: labkit.kernels still works, on the reference, with ONE warning."""
    monkeypatch.setitem(sys.modules, "labkit.kernels._int8", None)  # makes the import fail
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importlib.reload(api)
            assert api.isa() == "numpy-reference"
            assert api.available_isas() == ["numpy-reference"]
            rng = np.random.default_rng(1)
            a = rng.integers(0, 256, (5, 9), dtype=np.uint8)
            b = rng.integers(-128, 128, (4, 9), dtype=np.int8)
            np.testing.assert_array_equal(api.gemm_u8s8s32(a, b), reference.gemm_u8s8s32(a, b))
            layer = api.PackedLinear(b, np.arange(4, dtype=np.int32))
            np.testing.assert_array_equal(layer.forward(a, 3, 2**30, -3, 7),
                                          reference.qlinear(a, 3, b, np.arange(4, dtype=np.int32), 2**30, -3, 7))
            x = rng.integers(0, 256, (1, 1, 6, 6), dtype=np.uint8)
            assert api.qconv2d(x, 0, b[:, :9].reshape(4, 1, 3, 3).copy(), None, 2**30, -3, 0).shape == (1, 4, 4, 4)
            assert api.maxpool2d_u8(x).shape == (1, 1, 3, 3)
            assert api.quantize_multiplier(0.25) == (2**30, -1)
            with pytest.raises(ValueError, match="not built"):
                api.set_isa("ref")
        messages = [w for w in caught if issubclass(w.category, RuntimeWarning) and "numpy reference" in str(w.message)]
        assert len(messages) == 1
    finally:
        monkeypatch.undo()
        importlib.reload(api)
    assert api.isa() != "numpy-reference" or api._ext is None
