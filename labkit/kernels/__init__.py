"""labkit.kernels — int8 inference kernels on numpy arrays: GEMM, requantization, linear, conv, pool.

A compiled C++ module (``_int8``: pybind11, OpenMP threads, SIMD chosen at run time) computes
exactly the integers that ``labkit.kernels.reference`` computes in readable numpy; the arithmetic
(zero points, fixed-point multipliers, rounding) is written down once in that module's docstring.

- ``gemm_u8s8s32(a, b)``: uint8 [M, K] x int8 [N, K] -> int32 a @ b.T, exact for K <= 65536.
- ``quantize_multiplier(real)`` -> (multiplier, shift); ``requantize(acc, multiplier, shift, z_out, relu)``.
- ``qlinear(...)`` / ``PackedLinear(w, bias).forward(x, ...)``: the fused quantized linear layer.
- ``qconv2d(...)`` / ``PackedConv2d``: NCHW uint8 x OIHW int8 convolution; ``maxpool2d_u8``.
- The one-call ops (``gemm_u8s8s32``, ``qlinear``, ``qconv2d``) pack the weights on every call, at
  about memory speed, and remember nothing (the array may change between calls); the ``Packed*``
  classes pack once. Both give the same integers.
- ``int4_linear(x, packed, scale, zero_point, group_size, bias)``: float32 activations times int4
  weights in labkit.llm.int4's packed format (group scales and zero points), for batch-1 decoding
  (``reference.int4_linear`` in numpy); ``Int4Weights(packed, scale, zero_point, group_size, bias)``
  checks and rearranges the weights once, so that each call ``w(x)`` checks only x; chapter 16.
- ``isa()``, ``available_isas()``, ``set_isa(name)`` (or ``LABKIT_ISA=ref|avx2|avx512vnni|amx`` before
  import; a path this machine lacks raises ValueError saying why: ``unavailable_reason(name)``),
  ``set_num_threads(n)`` (1 <= n <= 256) / ``get_num_threads()``. The threads come from OpenMP; a
  build without OpenMP runs on one thread.
- ``amx``: Intel AMX tile instructions (Xeon Sapphire Rapids and later), available, and then the
  default, only where the CPU has amx_int8 and the OS grants the tile-data permission (Linux
  ``arch_prctl(ARCH_REQ_XCOMP_PERM)``, asked once); elsewhere (e.g. AMD EPYC) it is refused with the
  reason. Convolutions on the amx path use the AVX-512 VNNI pixel kernel.
- For tests only: ``LABKIT_HIDE_ISA=amx,avx512vnni,avx2`` (before import) makes the dispatcher treat the
  listed paths as missing from the CPU, so that refusing a forced path and falling back to a
  slower one can be tested on any machine (``LABKIT_HIDE_ISA=amx`` on an AMX machine behaves like the
  AMD CI machines).

Arrays are checked where they enter (dtype, shape, C-contiguous; an unaligned one is copied);
convolution stride and padding are bounded (``api.MAX_STRIDE``, ``api.MAX_PADDING``,
``api.MAX_IMAGE_BYTES``), so that no argument can make the kernels allocate absurd buffers.

Without the compiled module everything still works, slowly, on the reference (one warning;
``isa()`` returns ``"numpy-reference"``). Explained in notebooks/04_integer_inference.ipynb.
"""
from .api import (Int4Weights, PackedConv2d, PackedLinear, available_isas, gemm_u8s8s32, get_num_threads,
                  int4_linear, isa, maxpool2d_u8, qconv2d, qlinear, quantize_multiplier, requantize, set_isa,
                  set_num_threads, unavailable_reason)

__all__ = ["Int4Weights", "PackedConv2d", "PackedLinear", "available_isas", "gemm_u8s8s32", "get_num_threads",
           "int4_linear", "isa", "maxpool2d_u8", "qconv2d", "qlinear", "quantize_multiplier", "requantize", "set_isa",
           "set_num_threads", "unavailable_reason"]
