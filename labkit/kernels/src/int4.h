// labkit int4 weight-only kernels: y = x Wᵀ + b with float32 activations and 4-bit weights.
//
// Format (labkit/llm/int4.py, the same files): codes q[n, k] in 0..15 packed two per byte,
// packed[n, j] = q[n, 2j] | q[n, 2j+1] << 4 (uint8 [N, K/2]); per group of `group_size` consecutive
// k of a row one float32 scale s[n, g] and one uint8 zero point z[n, g] (0..15), so that
// W[n, k] = (q[n, k] - z[n, g]) * s[n, g] with g = k / group_size. The weights are decoded in
// registers, never stored as floats, and y = x Wᵀ + b is accumulated in float32. AVX-512 looks each
// code up in a 16-entry table of its group's (q - z) * s (vpermps); AVX2 and the scalar path compute
//   y[m, n] = sum_g s[n,g] * (sum_{k in g} x[m,k] q[n,k]  -  z[n,g] * sum_{k in g} x[m,k])  + b[n]
// with the group sums of x taken once per call. At batch 1 every weight is read once per call:
// 4-bit codes move 8x fewer bytes than float32 weights (plus 5 bytes per group).
//
// Files: int4.h (this), int4.cpp (argument-free driver: x's layout, group sums, threads, the
// scalar path), kernels_int4.cpp (AVX2 and AVX-512 micro-kernels; no standard-library
// containers, see int8.h). Bindings and argument checks: int8.cpp; Python: labkit/kernels/api.py.
#pragma once

#include <cstdint>

#include "int8.h"

namespace labkit {

struct Int4Problem {
  const float* x = nullptr;            // activations [m, k], row-major
  int64_t m = 0, k = 0, n = 0;
  const uint8_t* packed = nullptr;     // [n, k / 2]
  const float* scale = nullptr;        // [n, k / group_size]
  const uint8_t* zero_point = nullptr; // [n, k / group_size], each in 0..15
  int64_t group_size = 0;              // divides k
  const float* bias = nullptr;         // [n] or null
  float* out = nullptr;                // [m, n], row-major
};

// The SIMD paths read 32 columns (16 bytes of codes) at a time: group_size must be a multiple of
// kInt4Chunk; other group sizes run on the scalar path. They read x in the order of the codes:
// xp[m][chunk c][i] = x[m][32c + 2i] (i < 16, the low nibbles), xp[m][c][16 + i] = x[m][32c + 2i + 1]
// (the high nibbles). xsum[m][g]: the sum of group g of row m of x.
constexpr int64_t kInt4Chunk = 32;
struct Int4Work {
  const float* xp = nullptr;    // [m, k] in the order above (SIMD paths) or x itself (scalar path)
  const float* xsum = nullptr;  // [m, k / group_size]
};

// Output columns [n0, n1), every row m.
using Int4RowsFn = void (*)(const Int4Problem&, const Int4Work&, int64_t n0, int64_t n1);
void int4_rows_ref(const Int4Problem&, const Int4Work&, int64_t, int64_t);
#ifdef LABKIT_X86
void int4_rows_avx2(const Int4Problem&, const Int4Work&, int64_t, int64_t);
void int4_rows_avx512(const Int4Problem&, const Int4Work&, int64_t, int64_t);
#endif

// y = x Wᵀ + b on `isa`'s kernel (AMX and AVX-512 VNNI: the AVX-512 one; arguments trusted:
// int8.cpp checks them). Returns the path that ran ("ref" for group sizes the SIMD paths skip).
Isa int4_linear(const Int4Problem& p, Isa isa, int threads);

}  // namespace labkit
