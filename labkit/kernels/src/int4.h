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

// ---- prepared weights (kernels.Int4Weights): checked and rearranged once, then only x per call ----
// The one-call int4_linear reads the file format, with the 32 codes of a SIMD register along k, so each
// output ends in a horizontal sum. The prepared copy puts 16 output rows in the lanes instead:
// block b holds rows 16b .. 16b + 15; per span c of 8 columns, 16 uint32 words, word r holding the codes
// of row 16b + r at columns 8c .. 8c + 7 (column 8c + i in bits 4i .. 4i + 3). A span is one 64-byte
// load; each of its 8 columns is a shift, a table lookup to float q and one FMA with x[k] broadcast:
//   y[m, n] = sum_g ( s[n,g] * sum_{k in g} q[n,k] x[m,k]  -  s[n,g] z[n,g] * sum_{k in g} x[m,k] ) + b[n]
// (the zero point folded into one term per group, with s*z stored). Rows past N and columns past K
// hold code 0, scale 0. The SIMD paths need group_size % 8 == 0 (a span never straddles two groups);
// the scalar path takes any group size. The same bytes as the file format (N*K/2, rounded up to 16
// rows and 8 columns), plus 8 bytes per group (s and s*z) instead of 5.
constexpr int64_t kInt4Lanes = 16, kInt4Span = 8;
struct Int4Prepared {
  int64_t n = 0, k = 0, group_size = 0;
  int64_t blocks = 0, spans = 0, groups = 0;  // ceil(n / 16), ceil(k / 8), k / group_size
  const uint32_t* codes = nullptr;            // [blocks][spans][16]
  const float* scale = nullptr;               // [blocks][groups][16]
  const float* scaled_zero = nullptr;         // [blocks][groups][16]: s * z
  const float* bias = nullptr;                // [blocks * 16] or null
};
// One call: x float32 [m, k] (row-major), xsum[m][g] its group sums, out float32 [m, n].
struct Int4Call {
  const Int4Prepared* w = nullptr;
  const float* x = nullptr;
  const float* xsum = nullptr;
  int64_t m = 0;
  float* out = nullptr;
};
// Blocks [b0, b1) of the output, every row m.
using Int4BlocksFn = void (*)(const Int4Call&, int64_t b0, int64_t b1);
void int4_blocks_ref(const Int4Call&, int64_t, int64_t);
#ifdef LABKIT_X86
void int4_blocks_avx2(const Int4Call&, int64_t, int64_t);
void int4_blocks_avx512(const Int4Call&, int64_t, int64_t);
#endif

// The sizes of the prepared arrays for weights [n, k] in groups of group_size (pointers null).
Int4Prepared int4_layout(int64_t n, int64_t k, int64_t group_size);
// Fills the buffers (sizes from int4_layout: codes blocks*spans*16, scale and scaled_zero
// blocks*groups*16, bias blocks*16 when src.bias) from the file format in src (packed, scale,
// zero_point, bias, n, k, group_size; arguments trusted: int4_bindings.cpp checks them).
void int4_prepare(const Int4Problem& src, const Int4Prepared& layout, uint32_t* codes, float* scale,
                  float* scaled_zero, float* bias);
// out float32 [m, n] = x Wᵀ + b for x float32 [m, k] on `isa`'s kernel; the path that ran ("ref" when
// group_size % 8 != 0). One thread below kMinParallelWork multiply-adds (no OpenMP region at all).
Isa int4_prepared_linear(const Int4Prepared& w, const float* x, int64_t m, float* out, Isa isa, int threads);

}  // namespace labkit
