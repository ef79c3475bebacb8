// labkit int8 kernels: declarations shared by the dispatcher and the per-ISA translation units.
//
// The integer arithmetic (zero points, exact int32 accumulation, the fixed-point multiplier and its
// two roundings) is written down once, in the docstring of labkit/kernels/reference.py; every
// function here computes exactly those integers. Read that first.
//
// Files:  int8.h        these declarations            requant.h      the scalar TFLite arithmetic
//         dispatch.cpp  CPU detection (and the AMX permission), packing, tiling, OpenMP threads,
//                       the wide (int64) epilogue
//         kernels_ref.cpp / kernels_avx2.cpp / kernels_avx512.cpp / kernels_amx.cpp
//                       one micro-kernel per ISA, and the SIMD packing of the weights
//         conv.cpp      im2col convolution and max pooling       int8.cpp   pybind11 bindings
//
// Only the ISA files use intrinsics, each function marked __attribute__((target(...))), so the
// module runs on any x86-64 (and builds elsewhere with the scalar path only); nothing is compiled
// with -march=native. The ISA files include no standard-library containers, so no inline STL
// function is ever compiled with AVX-512 enabled and then shared with the other files.
#pragma once

#include <cstddef>
#include <cstdint>

namespace labkit {

enum class Isa : int { Ref = 0, Avx2 = 1, Avx512Vnni = 2, Amx = 3 };
constexpr int kNumIsas = 4;
const char* isa_name(Isa isa);

// Weights w int8 [N, K] rearranged once for one ISA's micro-kernel ("packed B").
//   Ref:        w itself, row-major (no copy), panel_width = 1, group = 1 (k per group).
//   Avx2:       int16 data[panel][k/2][8 columns][2 consecutive k]: vpmaddwd operands.
//   Avx512Vnni: int8  data[panel][k/4][16 columns][4 consecutive k]: vpdpbusd operands, with the
//   and Amx     groups of 4 k padded to a multiple of 16, so that 16 consecutive groups (64 k x 16
//               columns, 1 KiB) are one AMX B tile of 16 rows x 64 bytes: the two paths share it.
// Columns n >= N and k >= K are zero, so they add nothing to any sum.
struct PackedLayout {
  int64_t n = 0, k = 0;
  int64_t panel_width = 1;   // output columns per panel (one SIMD register of int32)
  int64_t k_per_group = 1;   // consecutive k interleaved per column
  int64_t groups = 0;        // ceil(k / k_per_group): the groups that hold weights
  int64_t panels = 0;        // ceil(n / panel_width)
  int64_t panel_bytes = 0;   // bytes of one panel: stored groups * panel_width * k_per_group * elem
  const void* data = nullptr;
};

// What happens to each finished int32 sum s = sum_k a[m,k] * w[n,k].
struct Epilogue {
  bool requantize = false;   // false: out32[m*ldc + n] = s
  int32_t* out32 = nullptr;
  uint8_t* out8 = nullptr;   // true: out8[m*ldc + n] = requantized u8 (reference.py, steps 2-4)
  int64_t ldc = 0;
  // Per-column arrays, padded with zeros/ones to a multiple of 16 columns:
  const int32_t* col_offset = nullptr;   // bias[n] - x_zero_point * sum_k w[n,k]   (int32)
  const int32_t* multiplier = nullptr;   // in [1, 2^31 - 1]
  const int32_t* left_shift = nullptr;   // max(shift, 0)  in [0, 30]
  const int32_t* right_shift = nullptr;  // max(-shift, 0) in [0, 31]
  int32_t out_zero_point = 0;
  int32_t out_min = 0;                   // 0, or the zero point when ReLU is fused
  bool any_left_shift = false;           // some column has shift > 0 (multiplier >= 1)
  // Dense narrow output (N < 16 and ldc == N): an MR x N block is MR*N consecutive values, handled
  // 16 at a time; value f of the output belongs to column f % N, so the parameters repeat with
  // period lcm(N, 16); flat_* hold them for f = 0 .. period + 15. 0: not used.
  int64_t flat_period = 0;
  const int32_t* flat_offset = nullptr;
  const int32_t* flat_multiplier = nullptr;
  const int32_t* flat_left_shift = nullptr;
  const int32_t* flat_right_shift = nullptr;
};

struct GemmArgs {
  const uint8_t* a = nullptr;  // uint8 [m, k] rows, row stride lda
  int64_t lda = 0, m = 0;
  const PackedLayout* b = nullptr;
  Epilogue ep;
  // The AMX one-call path (tile_amx_unpacked): w row-major [b->n, b->k], never packed as a whole;
  // the activations already copied into A tiles (pack_activations_amx, a_block_bytes per 32 rows);
  // for a linear layer, the column offsets bias - x_zero_point * sum_k w to fill in (ep.col_offset).
  const int8_t* w_rows = nullptr;
  const uint8_t* a_tiles = nullptr;
  int64_t a_block_bytes = 0;
  int32_t* fill_offsets = nullptr;
  const int32_t* bias = nullptr;  // or null
  int32_t x_zero_point = 0;
};

// Convolution with output pixels in the SIMD lanes (the AVX2 and VNNI paths of conv.cpp): activations packed
// as xp[k/4][pixel][4 consecutive k] (u8; group g starts at xp + g * group_stride), weights
// row-major w[o][k_groups*4] (s8, zero past C*KH*KW), out[o * out_stride + pixel] (u8, requantized).
struct PixelConvArgs {
  const uint8_t* xp = nullptr;
  int64_t groups = 0;          // k / 4
  int64_t group_stride = 0;    // bytes, a multiple of 64 covering every panel of 16 pixels
  int64_t pixels = 0;          // valid pixels in xp (the last panel may be partly used)
  const int8_t* w = nullptr;
  int64_t out_channels = 0;
  const Epilogue* ep = nullptr;  // per-channel arrays indexed by output channel
  uint8_t* out = nullptr;
  int64_t out_stride = 0;
};

// Cache blocking of the tile functions (bytes of K per block, rows per tile, columns per tile).
struct Blocking { int64_t kc = 1024, mc = 144, nc = 256; };

// One tile C[m0:m1, n0:n1] (n0 a multiple of the panel width), all of K, single-threaded.
// scratch: int32 partial sums, at least (mc rounded up to 32) * (nc rounded up to 64) entries;
// pack_buffer: the ISA's per-thread work space (pack_buffer_bytes_*), or null.
using TileFn = void (*)(const GemmArgs&, const Blocking&, int64_t m0, int64_t m1, int64_t n0,
                        int64_t n1, int32_t* scratch, void* pack_buffer);
// requantize rows of int32 (row stride ld) with per-column epilogue parameters into out8.
using RequantFn = void (*)(const int32_t* acc, int64_t rows, int64_t cols, const Epilogue& ep);

// Packing: panels [p0, p1) of w int8 [n, k] (row-major) into `layout` (data written through `dst`),
// and, where `sums` is not null, the row sums sum_k w[r,k] and sum_k |w[r,k]| of those panels' rows
// (reference.py, step 2) from the same registers; RowSumsFn: the row sums of rows [r0, r1) alone.
using PackFn = void (*)(const int8_t* w, const PackedLayout& layout, int64_t p0, int64_t p1, void* dst,
                        int32_t* sums, int32_t* abs_sums);
using RowSumsFn = void (*)(const int8_t* w, int64_t k, int64_t r0, int64_t r1, int32_t* sums, int32_t* abs_sums);

void tile_ref(const GemmArgs&, const Blocking&, int64_t, int64_t, int64_t, int64_t, int32_t*, void*);
void requantize_rows_ref(const int32_t*, int64_t, int64_t, const Epilogue&);
void row_sums_ref(const int8_t*, int64_t, int64_t, int64_t, int32_t*, int32_t*);
#if defined(__x86_64__) || defined(__i386__)
#define LABKIT_X86 1
void tile_avx2(const GemmArgs&, const Blocking&, int64_t, int64_t, int64_t, int64_t, int32_t*, void*);
void requantize_rows_avx2(const int32_t*, int64_t, int64_t, const Epilogue&);
void conv_pixels_avx2(const PixelConvArgs&);
int64_t pack_buffer_bytes_avx2(const Blocking&);
void pack_avx2(const int8_t*, const PackedLayout&, int64_t, int64_t, void*, int32_t*, int32_t*);
void row_sums_avx2(const int8_t*, int64_t, int64_t, int64_t, int32_t*, int32_t*);
void tile_vnni(const GemmArgs&, const Blocking&, int64_t, int64_t, int64_t, int64_t, int32_t*, void*);
void conv_pixels_vnni(const PixelConvArgs&);
void requantize_rows_vnni(const int32_t*, int64_t, int64_t, const Epilogue&);
void pack_vnni(const int8_t*, const PackedLayout&, int64_t, int64_t, void*, int32_t*, int32_t*);
// Up to 32 rows of w (row stride `stride`), bytes [0, bytes) of each, packed as pack_vnni does into
// two panels (dst, dst + panel_bytes), zero past `bytes` and `rows`, whole blocks of 64 k; adds the
// rows' sums and |w| sums to sums[0..rows), abs_sums[0..rows) where `sums` is not null.
void pack_vnni_rows(const int8_t* w, int64_t stride, int rows, int64_t bytes, int8_t* dst, int64_t panel_bytes,
                    int32_t* sums, int32_t* abs_sums);
void row_sums_vnni(const int8_t*, int64_t, int64_t, int64_t, int32_t*, int32_t*);
// The VNNI epilogue of a block of finished sums (rows <= 32, row stride ld) for C[m.., n..n+n_valid),
// n_valid <= 32 (kernels_avx512.cpp); the AMX path stores its tiles to memory and hands them over.
void store_block_vnni(const int32_t* sums, int64_t ld, int rows, int64_t m, int64_t n, int64_t n_valid,
                      const Epilogue& ep);
// Register-only loops for the benchmark's peak (independent multiply-adds); each returns a checksum so that the loop is not optimised away.
int32_t probe_peak_vnni(int64_t iterations);  // 12 zmm vpdpbusd = 12 * 128 int8 ops
int32_t probe_peak_avx2(int64_t iterations);  // 6 ymm vpmaddwd + vpaddd = 6 * 32 ops

// AMX (kernels_amx.cpp): compiled where the compiler knows the tile instructions (GCC >= 11,
// clang >= 12); usable where the CPU has AMX-INT8 and the OS grants the tile data permission.
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
#define LABKIT_HAVE_AMX 1
void tile_amx(const GemmArgs&, const Blocking&, int64_t, int64_t, int64_t, int64_t, int32_t*, void*);
int64_t pack_buffer_bytes_amx(const Blocking&);
// The one-call path: columns [n0, n1) for all rows [m0, m1) (scratch: (m1 - m0) x 32 int32 when K >
// kc), each 32 columns of w packed block by block into the per-thread buffer right before use.
void tile_amx_unpacked(const GemmArgs&, const Blocking&, int64_t, int64_t, int64_t, int64_t, int32_t*, void*);
// Activation rows [r0, r1) (r0 a multiple of 32) as the A tiles of the one-call path: block b of 32
// rows at dst + b * a_block_bytes, [step of 64 k][32 rows][64 bytes] (a_block_bytes = 32 * K
// rounded up to 64).
void pack_activations_amx(const uint8_t* a, int64_t lda, int64_t m, int64_t k, int64_t r0, int64_t r1, uint8_t* dst);
int32_t probe_peak_amx(int64_t iterations);  // 4 tdpbusd on resident tiles = 4 * 16*16*64*2 ops
#endif
#endif

}  // namespace labkit
