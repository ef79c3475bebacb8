"""ISA selection (set_isa, LABKIT_ISA), thread count, and the numpy fallback with one warning."""
import importlib
import os
import sys
import warnings

import numpy as np
import pytest

from labkit import kernels
from labkit.kernels import api, reference


def test_isa_names():
    available = kernels.available_isas()
    assert kernels.isa() in available
    assert set(available) <= {"ref", "avx2", "avx512vnni", "amx", "numpy-reference"}
    if api._ext is not None:
        assert available[0] == "ref" and kernels.isa() == available[-1] or os.environ.get("LABKIT_ISA")
        assert available == [name for name in api.KNOWN_ISAS if name in available]  # slowest first


def test_set_isa_round_trip(isa):
    assert kernels.isa() == isa


def test_unavailable_isas_are_refused():
    with pytest.raises(ValueError, match="one of"):
        kernels.set_isa("avx1024")
    with pytest.raises(TypeError):
        kernels.set_isa(3)
    for name in api.KNOWN_ISAS:
        if name not in kernels.available_isas():
            reason = api.unavailable_reason(name)
            assert reason
            with pytest.raises(ValueError, match="not available") as error:
                kernels.set_isa(name)
            assert reason in str(error.value) and name in str(error.value)
        else:
            assert api.unavailable_reason(name) == ""


def test_environment_variable_forces_and_refuses(run_python):
    result = run_python("import labkit.kernels as k; print(k.isa())", LABKIT_ISA="amx", LABKIT_HIDE_ISA="amx")
    assert result.returncode != 0 and "ValueError" in result.stderr and "LABKIT_ISA='amx'" in result.stderr
    if api._ext is not None:
        assert "hidden by LABKIT_HIDE_ISA" in result.stderr
        result = run_python("import labkit.kernels as k; print(k.isa())", LABKIT_ISA="ref")
        assert result.returncode == 0 and result.stdout.strip() == "ref"


needs_ext = pytest.mark.skipif(api._ext is None, reason="compiled module not built")
SHOW_ISAS = "import labkit.kernels as k; print(k.isa(), ','.join(k.available_isas()))"


@needs_ext
def test_hidden_isas_fall_back_and_are_refused(run_python):
    """LABKIT_HIDE_ISA (tests only) makes any CPU look like one without AVX2 / AVX-512 VNNI."""
    hidden = run_python(SHOW_ISAS, LABKIT_HIDE_ISA="avx512vnni, avx2, amx", LABKIT_ISA=None)
    assert hidden.returncode == 0, hidden.stderr
    assert hidden.stdout.split() == ["ref", "ref"]
    forced = run_python(SHOW_ISAS, LABKIT_HIDE_ISA="avx512vnni,avx2", LABKIT_ISA="avx512vnni")
    assert forced.returncode != 0
    assert "ValueError: LABKIT_ISA='avx512vnni'" in forced.stderr and "hidden by LABKIT_HIDE_ISA" in forced.stderr
    at_run_time = run_python("import labkit.kernels as k\n"
                             "for call in (lambda: k.set_isa('avx2'), lambda: k.api._ext.set_isa('avx2')):\n"
                             "    try:\n        call()\n    except ValueError as e:\n        print(e)\n",
                             LABKIT_HIDE_ISA="avx2,avx512vnni", LABKIT_ISA=None)
    assert at_run_time.returncode == 0 and at_run_time.stdout.count("hidden by LABKIT_HIDE_ISA") == 2


@needs_ext
def test_hidden_amx_is_refused_with_the_reason(run_python):
    """LABKIT_HIDE_ISA=amx makes an AMX machine look like the AMD CI machines (AVX-512 VNNI, no AMX):
    amx is not listed, not chosen, and refused by name with the reason, in Python and in C++."""
    code = ("import labkit.kernels as k\n"
            "print(k.isa(), ','.join(k.available_isas()))\n"
            "print(k.api.unavailable_reason('amx'))\n"
            "for call in (lambda: k.set_isa('amx'), lambda: k.api._ext.set_isa('amx')):\n"
            "    try:\n        call()\n    except ValueError as e:\n        print(e)\n")
    result = run_python(code, LABKIT_HIDE_ISA="amx", LABKIT_ISA=None)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "amx" not in lines[0].split()[1].split(",") and lines[0].split()[0] != "amx"
    assert lines[1] == "hidden by LABKIT_HIDE_ISA"
    assert len(lines) == 4 and all("'amx' is not available (hidden by LABKIT_HIDE_ISA)" in line for line in lines[2:])


@needs_ext
@pytest.mark.parametrize("facts, words", [
    ((False, True, True, True, 0), "no AMX kernels"),
    ((True, False, True, True, 0), "this CPU lacks amx_int8"),
    ((True, True, False, True, 0), "lacks AVX-512 VNNI"),
    ((True, True, True, False, 0), "the OS does not enable the AMX tile state"),
    ((True, True, True, True, 1), "the OS refused the permission to use AMX tile data"),
])
def test_amx_refusal_says_why(facts, words):
    """The reason AMX is refused names the culprit: the build, the CPU, or the OS (whose permission,
    arch_prctl(ARCH_REQ_XCOMP_PERM), labkit asks once); all is well only when everything says yes."""
    assert words in api._ext._amx_problem(*facts)
    assert api._ext._amx_problem(True, True, True, True, 0) == ""
    if "amx" not in kernels.available_isas() and "amx" not in api.HIDDEN_ISAS:  # e.g. an AMD EPYC
        assert any(w in api.unavailable_reason("amx") for w in ("CPU lacks", "OS", "no AMX kernels"))


@needs_ext
def test_hiding_the_fastest_isa_falls_back_to_the_next(run_python):
    cpu = run_python(SHOW_ISAS, LABKIT_HIDE_ISA=None, LABKIT_ISA=None).stdout.split()[1].split(",")
    if len(cpu) < 2:
        pytest.skip("this CPU has only the scalar path")
    result = run_python(SHOW_ISAS, LABKIT_HIDE_ISA=cpu[-1], LABKIT_ISA=None)
    assert result.stdout.split() == [cpu[-2], ",".join(cpu[:-1])]


def test_hiding_an_unknown_isa_is_refused(run_python):
    for value in ("sse9", "ref"):
        result = run_python(SHOW_ISAS, LABKIT_HIDE_ISA=value)
        assert result.returncode != 0 and "LABKIT_HIDE_ISA must list names" in result.stderr


def test_set_num_threads():
    previous = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        assert kernels.get_num_threads() == 1
        kernels.set_num_threads(api.MAX_THREADS)
        assert kernels.get_num_threads() in (api.MAX_THREADS, 1)  # 1: numpy reference
        with pytest.raises(TypeError):
            kernels.set_num_threads(1.5)
        with pytest.raises(ValueError, match=r"n must be an integer in \[1, 256\], got 257"):
            kernels.set_num_threads(api.MAX_THREADS + 1)
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
