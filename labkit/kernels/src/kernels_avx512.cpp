// The AVX-512 VNNI path (LABKIT_ISA=avx512vnni): vpdpbusd multiplies 4 unsigned bytes of the
// activations by 4 signed bytes of the weights and adds the 4 products to an int32 lane, without
// saturation. The sums are exact (reference.py, step 1), so no "+128" trick and no correction term.
//
// Packed weights: int8 data[panel][k/4][16 columns][4 consecutive k] (64 bytes per group of 4 k).
// Micro-kernel: MR rows x NV panels of 16 columns held in MR*NV zmm accumulators. For each group
// of 4 k it loads NV weight vectors, broadcasts 4 activation bytes per row and issues MR*NV
// vpdpbusd. Activations are read in place (row-major), the last partial group without reading
// past the row. Cache blocking: K in blocks of kc bytes (partial sums kept in a per-thread
// scratch), a tile of mc rows x nc columns per task.
// Epilogue: int32 stores, or requantization (reference.py, steps 2-4) and u8 stores; narrow outputs
// (N < 16) are requantized 16 values at a time across rows. At the end: the convolution kernel with
// output pixels in the lanes (conv.cpp).
#include "int8.h"

#ifdef LABKIT_X86  // the whole file: x86-64 only
#include <immintrin.h>

#include <cstring>

// GCC 12 reports false "(may be) used uninitialized" warnings inside its own avx512fintrin.h.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define LK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace labkit {
namespace {

constexpr int kPanel = 16;       // int32 output columns per zmm
constexpr int kGroupBytes = 64;  // 16 columns x 4 k

LK_VNNI inline __m512i broadcast_quad(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

LK_VNNI inline __m512i broadcast_partial_quad(const uint8_t* p, int bytes) {
  uint32_t v = 0;  // the missing k are zero (and so are the packed weights there)
  for (int i = 0; i < bytes; ++i) v |= uint32_t{p[i]} << (8 * i);
  return _mm512_set1_epi32(static_cast<int32_t>(v));
}

// Steps 2-4 of reference.py for 16 columns n..n+15 (see requant.h for the scalar version). The
// per-column constants are loaded once per column panel, then applied to every row.
struct Columns {
  __m512i offset, multiplier, multiplier_odd, left_shift, left_hi, left_lo, right_shift, mask, half_mask;
};

LK_VNNI inline Columns load_columns(const int32_t* offset, const int32_t* multiplier,
                                   const int32_t* left_shift, const int32_t* right_shift) {
  Columns c;
  c.offset = offset ? _mm512_loadu_si512(offset) : _mm512_setzero_si512();
  c.multiplier = _mm512_loadu_si512(multiplier);
  c.multiplier_odd = _mm512_srli_epi64(c.multiplier, 32);
  c.left_shift = _mm512_loadu_si512(left_shift);
  // x * 2^left_shift saturates: clamp x to [INT32_MIN >> ls, INT32_MAX >> ls] before shifting.
  c.left_hi = _mm512_srav_epi32(_mm512_set1_epi32(0x7fffffff), c.left_shift);
  c.left_lo = _mm512_srav_epi32(_mm512_set1_epi32(INT32_MIN), c.left_shift);
  c.right_shift = _mm512_loadu_si512(right_shift);
  const __m512i one = _mm512_set1_epi32(1);
  c.mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, c.right_shift), one);  // 2^right - 1
  c.half_mask = _mm512_srai_epi32(c.mask, 1);
  return c;
}

// The constants of columns n..n+15.
LK_VNNI inline Columns load_columns(const Epilogue& ep, int64_t n) {
  return load_columns(ep.col_offset ? ep.col_offset + n : nullptr, ep.multiplier + n, ep.left_shift + n,
                      ep.right_shift + n);
}

LK_VNNI inline __m512i requantize_vec(__m512i acc, const Columns& c, const Epilogue& ep) {
  __m512i x = _mm512_add_epi32(acc, c.offset);  // step 2 (exact: see linear_u8 in dispatch.cpp)
  if (ep.any_left_shift)                        // step 4b
    x = _mm512_sllv_epi32(_mm512_min_epi32(_mm512_max_epi32(x, c.left_lo), c.left_hi), c.left_shift);
  // 4c: SaturatingRoundingDoublingHighMul = floor((x*m + 2^30) / 2^31) (m > 0: never saturates).
  // 32x32->64 products on even lanes, then on odd lanes moved down; bits 31..62 are the result.
  const __m512i round = _mm512_set1_epi64(int64_t{1} << 30);
  const __m512i even = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, c.multiplier), round), 31);
  __m512i odd = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), c.multiplier_odd);
  odd = _mm512_slli_epi64(_mm512_srli_epi64(_mm512_add_epi64(odd, round), 31), 32);
  const __m512i h = _mm512_mask_blend_epi32(0xAAAA, even, odd);
  // 4d: RoundingDivideByPOT = (h >> r) + (remainder > threshold), threshold = mask/2 + (h < 0).
  const __m512i remainder = _mm512_and_si512(h, c.mask);
  const __m512i threshold = _mm512_sub_epi32(c.half_mask, _mm512_srai_epi32(h, 31));
  __m512i q = _mm512_srav_epi32(h, c.right_shift);
  q = _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(remainder, threshold), q, _mm512_set1_epi32(1));
  // 4e: + zero point, clamp to [out_min, 255] (pre-clamp so that the addition cannot overflow).
  q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-256)), _mm512_set1_epi32(256));
  q = _mm512_add_epi32(q, _mm512_set1_epi32(ep.out_zero_point));
  q = _mm512_max_epi32(q, _mm512_set1_epi32(ep.out_min));
  return _mm512_min_epi32(q, _mm512_set1_epi32(255));
}

LK_VNNI inline __mmask16 column_mask(int64_t valid) {
  return valid >= kPanel ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << valid) - 1);
}

// The epilogue of a block of finished int32 sums (rows <= 32, row stride ld, columns n .. n +
// n_valid, at most MAX_PANELS panels of 16): int32 stores, or requantization and uint8 stores.
template <int MAX_PANELS>
LK_VNNI __attribute__((always_inline)) inline void store_block(const int32_t* sums, int64_t ld, int rows, int64_t m,
                                                              int64_t n, int64_t n_valid, const Epilogue& params) {
  // A local copy: the uint8 stores below may alias anything in memory, but not a local whose address
  // never escapes, so its fields (zero point, clamps, pointers) stay in registers across the loop.
  const Epilogue ep = params;
  if (ep.flat_period > 0 && n == 0 && n_valid < kPanel) {
    // Narrow output, rows stored densely (ldc == N): compact the rows of N values, then
    // requantize and store them 16 at a time instead of one partly used vector per row.
    const int64_t total = rows * n_valid, base = m * n_valid;
    alignas(64) int32_t dense[32 * kPanel];
    for (int r = 0; r < rows; ++r)
      _mm512_mask_storeu_epi32(dense + r * n_valid, column_mask(n_valid), _mm512_loadu_si512(sums + r * ld));
    int64_t phase = ep.requantize ? base % ep.flat_period : 0;  // of value base + f, kept up to date
    for (int64_t f = 0; f < total; f += kPanel) {
      const __mmask16 mask = column_mask(total - f);
      const __m512i x = _mm512_maskz_loadu_epi32(mask, dense + f);
      if (ep.requantize) {
        const Columns columns = load_columns(ep.flat_offset + phase, ep.flat_multiplier + phase,
                                             ep.flat_left_shift + phase, ep.flat_right_shift + phase);
        _mm512_mask_cvtepi32_storeu_epi8(ep.out8 + base + f, mask, requantize_vec(x, columns, ep));
        phase += kPanel;  // no division per vector: the period is a multiple of 16
        if (phase >= ep.flat_period) phase -= ep.flat_period;
      } else {
        _mm512_mask_storeu_epi32(ep.out32 + base + f, mask, x);
      }
    }
    return;
  }
  for (int v = 0; v < MAX_PANELS && v * kPanel < n_valid; ++v) {
    const __mmask16 mask = column_mask(n_valid - v * kPanel);
    const int64_t col = n + v * kPanel;
    if (ep.requantize) {
      const Columns columns = load_columns(ep, col);
      for (int r = 0; r < rows; ++r)
        _mm512_mask_cvtepi32_storeu_epi8(ep.out8 + (m + r) * ep.ldc + col, mask,
                                         requantize_vec(_mm512_loadu_si512(sums + r * ld + v * kPanel), columns, ep));
    } else {
      for (int r = 0; r < rows; ++r)
        _mm512_mask_storeu_epi32(ep.out32 + (m + r) * ep.ldc + col, mask,
                                 _mm512_loadu_si512(sums + r * ld + v * kPanel));
    }
  }
}

struct BlockArgs {
  const uint8_t* a;       // row m, first k of this K block
  int64_t lda;
  const int8_t* b;        // panel p, first group of this K block
  int64_t panel_bytes;
  int64_t full_groups;    // groups of 4 k in this block
  int tail_bytes;         // then one partial group of 1..3 k (0: none)
  int32_t* partial;       // scratch origin for this block of rows/columns
  int64_t ld_partial;
  bool load_partial, store_partial;
  const Epilogue* ep;
  int64_t m, n, n_valid;  // output origin and number of valid columns from n
};

template <int MR, int NV>
LK_VNNI void block_vnni(const BlockArgs& s) {
  __m512i acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[r][v] = s.load_partial ? _mm512_loadu_si512(s.partial + r * s.ld_partial + v * kPanel)
                                 : _mm512_setzero_si512();

  const uint8_t* a = s.a;
  const int8_t* b = s.b;
  for (int64_t g = 0; g < s.full_groups; ++g, a += 4, b += kGroupBytes) {
    __m512i w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512(b + v * s.panel_bytes);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i x = broadcast_quad(a + r * s.lda);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], x, w[v]);
    }
  }
  if (s.tail_bytes) {
    __m512i w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512(b + v * s.panel_bytes);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i x = broadcast_partial_quad(a + r * s.lda, s.tail_bytes);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], x, w[v]);
    }
  }

  // Leave the registers through fully unrolled stores only (an indexed access would make the
  // compiler keep acc in memory inside the loop above); the epilogue then reads them back.
  const bool to_scratch = s.store_partial;
  int32_t* out = to_scratch ? s.partial : nullptr;
  alignas(64) int32_t sums[MR][NV * kPanel];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      _mm512_storeu_si512(to_scratch ? out + r * s.ld_partial + v * kPanel : &sums[r][v * kPanel], acc[r][v]);
  if (to_scratch) return;

  // MR and NV are constants here, so the epilogue's loops unroll (the AMX path calls it with variables).
  store_block<NV>(&sums[0][0], NV * kPanel, MR, s.m, s.n, s.n_valid, *s.ep);
}

using BlockFn = void (*)(const BlockArgs&);

// Register blockings: 8 rows x 1 panel (N <= 16), 8 x 2 (N <= 32), 6 x 4 (24 accumulators).
// The table holds every smaller block needed for the edges of the matrix.
#define LK_ROW(MR) {nullptr, &block_vnni<MR, 1>, &block_vnni<MR, 2>, &block_vnni<MR, 3>, &block_vnni<MR, 4>}
#define LK_ROW2(MR) {nullptr, &block_vnni<MR, 1>, &block_vnni<MR, 2>, nullptr, nullptr}
const BlockFn kBlocks[9][5] = {
    {nullptr, nullptr, nullptr, nullptr, nullptr},
    LK_ROW(1), LK_ROW(2), LK_ROW(3), LK_ROW(4), LK_ROW(5), LK_ROW(6), LK_ROW2(7), LK_ROW2(8)};
#undef LK_ROW
#undef LK_ROW2

}  // namespace

void tile_vnni(const GemmArgs& g, const Blocking& blk, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
               int32_t* scratch, void*) {
  const PackedLayout& layout = *g.b;
  const int64_t k_size = layout.k;
  const int64_t full_groups_total = k_size / 4;
  const int tail = static_cast<int>(k_size % 4);
  const int64_t groups = layout.groups;
  const int64_t block_groups = blk.kc / 4 > 0 ? blk.kc / 4 : 1;
  const int nv_max = layout.n <= 16 ? 1 : (layout.n <= 32 ? 2 : 4);
  const int mr_max = nv_max == 4 ? 6 : 8;
  const int64_t p0 = n0 / kPanel, p1 = (n1 + kPanel - 1) / kPanel;
  const int64_t ld_partial = (p1 - p0) * kPanel;
  const int8_t* packed = static_cast<const int8_t*>(layout.data);

  for (int64_t g0 = 0; g0 < groups; g0 += block_groups) {
    const int64_t g1 = g0 + block_groups < groups ? g0 + block_groups : groups;
    const bool first = g0 == 0, last = g1 == groups;
    const int64_t full = (g1 < full_groups_total ? g1 : full_groups_total) - g0;
    for (int64_t p = p0; p < p1; p += nv_max) {
      const int nv = static_cast<int>(p1 - p < nv_max ? p1 - p : nv_max);
      for (int64_t m = m0; m < m1; m += mr_max) {
        const int mr = static_cast<int>(m1 - m < mr_max ? m1 - m : mr_max);
        BlockArgs s;
        s.a = g.a + m * g.lda + 4 * g0;
        s.lda = g.lda;
        s.b = packed + p * layout.panel_bytes + g0 * kGroupBytes;
        s.panel_bytes = layout.panel_bytes;
        s.full_groups = full;
        s.tail_bytes = (last && tail) ? tail : 0;
        s.partial = scratch + (m - m0) * ld_partial + (p - p0) * kPanel;
        s.ld_partial = ld_partial;
        s.load_partial = !first;
        s.store_partial = !last;
        s.ep = &g.ep;
        s.m = m;
        s.n = p * kPanel;
        s.n_valid = n1 - s.n;
        kBlocks[mr][nv](s);
      }
    }
  }
}

LK_VNNI void requantize_rows_vnni(const int32_t* acc, int64_t rows, int64_t cols, const Epilogue& params) {
  const Epilogue ep = params;  // kept in registers across the uint8 stores (see store_block)
  for (int64_t c = 0; c < cols; c += kPanel) {
    const __mmask16 mask = column_mask(cols - c);
    const Columns columns = load_columns(ep, c);
    for (int64_t r = 0; r < rows; ++r) {
      const __m512i x = _mm512_maskz_loadu_epi32(mask, acc + r * cols + c);
      _mm512_mask_cvtepi32_storeu_epi8(ep.out8 + r * ep.ldc + c, mask, requantize_vec(x, columns, ep));
    }
  }
}

LK_VNNI void store_block_vnni(const int32_t* sums, int64_t ld, int rows, int64_t m, int64_t n, int64_t n_valid,
                      const Epilogue& ep) {
  store_block<2>(sums, ld, rows, m, n, n_valid, ep);
}

// ---- packing the weights ----------------------------------------------------------------------
// A panel is 16 rows of w; 64 consecutive k of those rows are a 16 x 16 matrix of 4-byte quads
// (row = output column, quad = group of 4 k). The packed layout wants it transposed (one 64-byte
// group per quad index, the 16 columns side by side), so 16 loads, a 16 x 16 transpose of 32-bit
// elements in registers (4 rounds of 16 shuffles) and 16 stores pack 1 KiB: no per-byte work.

namespace {

// rows[j] := the j-th column of the 16 x 16 matrix of int32 held in rows[0..15].
LK_VNNI inline void transpose_16x16_epi32(__m512i rows[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {  // quads 2i, 2i+1 interleaved: pairs of rows
    t[i] = _mm512_unpacklo_epi32(rows[i], rows[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(rows[i], rows[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // then pairs of pairs: 4 rows per 128-bit lane
    rows[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    rows[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    rows[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    rows[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {      // 128-bit lanes: 8 rows ...
    t[i] = _mm512_shuffle_i32x4(rows[i], rows[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(rows[i], rows[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(rows[i + 8], rows[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(rows[i + 8], rows[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {      // ... then all 16
    rows[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    rows[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
  }
}

LK_VNNI inline __mmask64 byte_mask(int64_t valid) {
  return valid >= 64 ? ~__mmask64{0} : valid <= 0 ? __mmask64{0} : (__mmask64{1} << valid) - 1;
}

// quads[g] = quad g (bytes 4g .. 4g+3) of each of 16 rows of 64 bytes at src (row stride `stride`),
// lane r from row r: the VNNI order. Rows from `rows` on and bytes outside `mask` read as zero
// (masked loads never fault).
LK_VNNI inline void load_transposed(const int8_t* src, int64_t stride, int64_t rows, __mmask64 mask,
                                    __m512i quads[16]) {
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r)
    quads[r] = r < rows ? _mm512_maskz_loadu_epi8(mask, src + r * stride) : _mm512_setzero_si512();
  transpose_16x16_epi32(quads);
}

// Stores the 16 groups of a transposed block at dst (64 bytes apart), adding each row's sum and |w|
// sum to the lanes of sum / abs_sum where `sums` (ones (u8) x w (s8); |w| as u8 x ones (s8)).
LK_VNNI inline void store_groups(const __m512i quads[16], int8_t* dst, bool sums, __m512i& sum, __m512i& abs_sum) {
  const __m512i ones = _mm512_set1_epi8(1);
#pragma GCC unroll 16
  for (int g = 0; g < 16; ++g) {
    _mm512_storeu_si512(dst + g * kGroupBytes, quads[g]);
    if (sums) {
      sum = _mm512_dpbusd_epi32(sum, ones, quads[g]);
      abs_sum = _mm512_dpbusd_epi32(abs_sum, _mm512_abs_epi8(quads[g]), ones);
    }
  }
}

}  // namespace

LK_VNNI void pack_vnni(const int8_t* w, const PackedLayout& layout, int64_t p0, int64_t p1, void* dst,
                       int32_t* sums, int32_t* abs_sums) {
  const int64_t n = layout.n, k = layout.k;
  const int64_t stored_k = layout.panel_bytes / kPanel;  // groups (a multiple of 16) x 4 k
  for (int64_t p = p0; p < p1; ++p) {
    int8_t* panel = static_cast<int8_t*>(dst) + p * layout.panel_bytes;
    const int64_t rows = n - p * kPanel < kPanel ? n - p * kPanel : kPanel;
    const int8_t* src = w + p * kPanel * k;
    // After the transpose lane c of every group is column (row of w) c: the row sums accumulate
    // lane-wise, 4 k per vpdpbusd.
    __m512i sum = _mm512_setzero_si512(), abs_sum = _mm512_setzero_si512();
    for (int64_t k0 = 0; k0 < stored_k; k0 += 64) {
      __m512i quads[16];
      load_transposed(src + k0, k, rows, byte_mask(k - k0), quads);  // zeros past K
      store_groups(quads, panel + k0 / 4 * kGroupBytes, sums != nullptr, sum, abs_sum);
    }
    if (sums) {
      _mm512_mask_storeu_epi32(sums + p * kPanel, column_mask(rows), sum);
      _mm512_mask_storeu_epi32(abs_sums + p * kPanel, column_mask(rows), abs_sum);
    }
  }
}

LK_VNNI void pack_vnni_rows(const int8_t* w, int64_t stride, int rows, int64_t bytes, int8_t* dst, int64_t panel_bytes,
                            int32_t* sums, int32_t* abs_sums) {
  for (int half = 0; half < 2 && half * kPanel < rows; ++half) {
    const int8_t* src = w + half * kPanel * stride;
    const int valid = rows - half * kPanel < kPanel ? rows - half * kPanel : kPanel;
    __m512i sum = _mm512_setzero_si512(), abs_sum = _mm512_setzero_si512();
    for (int64_t k0 = 0; k0 < bytes; k0 += 64) {
      __m512i quads[16];
      load_transposed(src + k0, stride, valid, byte_mask(bytes - k0), quads);
      store_groups(quads, dst + half * panel_bytes + k0 / 4 * kGroupBytes, sums != nullptr, sum, abs_sum);
    }
    if (sums) {
      const __mmask16 mask = column_mask(valid);
      int32_t* s = sums + half * kPanel;
      int32_t* a = abs_sums + half * kPanel;
      _mm512_mask_storeu_epi32(s, mask, _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, s), sum));
      _mm512_mask_storeu_epi32(a, mask, _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, a), abs_sum));
    }
  }
}

// sums[r] = sum_k w[r,k] and abs_sums[r] = sum_k |w[r,k]|, 64 k per vpdpbusd: ones (u8) x w (s8),
// and |w| (read as u8: |-128| = 128 fits) x ones (s8).
LK_VNNI void row_sums_vnni(const int8_t* w, int64_t k, int64_t r0, int64_t r1, int32_t* sums, int32_t* abs_sums) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* row = w + r * k;
    __m512i sum = _mm512_setzero_si512(), abs_sum = _mm512_setzero_si512();
    for (int64_t k0 = 0; k0 < k; k0 += 64) {
      const __m512i v = _mm512_maskz_loadu_epi8(byte_mask(k - k0), row + k0);
      sum = _mm512_dpbusd_epi32(sum, ones, v);
      abs_sum = _mm512_dpbusd_epi32(abs_sum, _mm512_abs_epi8(v), ones);
    }
    sums[r] = _mm512_reduce_add_epi32(sum);
    abs_sums[r] = _mm512_reduce_add_epi32(abs_sum);
  }
}

// ---- convolution with output pixels in the lanes ----------------------------------------------
// The roles of the operands swap: vpdpbusd multiplies 16 pixels x 4 k of activations (u8, a packed
// vector) by 4 k of one output channel's weights (s8, broadcast). acc[o][v] holds channel o of
// pixels 16v..16v+15, so results go straight to the NCHW output plane of channel o.

namespace {

// Per-channel constants of channel o in every lane.
LK_VNNI inline Columns channel_columns(const Epilogue& ep, int64_t o) {
  Columns c;
  c.offset = _mm512_set1_epi32(ep.col_offset[o]);
  c.multiplier = _mm512_set1_epi32(ep.multiplier[o]);
  c.multiplier_odd = c.multiplier;  // the same value in the odd lanes
  c.left_shift = _mm512_set1_epi32(ep.left_shift[o]);
  c.left_hi = _mm512_srav_epi32(_mm512_set1_epi32(0x7fffffff), c.left_shift);
  c.left_lo = _mm512_srav_epi32(_mm512_set1_epi32(INT32_MIN), c.left_shift);
  c.right_shift = _mm512_set1_epi32(ep.right_shift[o]);
  const __m512i one = _mm512_set1_epi32(1);
  c.mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, c.right_shift), one);
  c.half_mask = _mm512_srai_epi32(c.mask, 1);
  return c;
}

template <int MO, int NP>
LK_VNNI void pixel_block(const PixelConvArgs& s, int64_t o0, int64_t panel0) {
  __m512i acc[MO][NP];
#pragma GCC unroll 8
  for (int o = 0; o < MO; ++o)
#pragma GCC unroll 4
    for (int v = 0; v < NP; ++v) acc[o][v] = _mm512_setzero_si512();
  const uint8_t* x = s.xp + panel0 * kGroupBytes;
  const int8_t* w = s.w + o0 * s.groups * 4;
  const int64_t w_stride = s.groups * 4;
  for (int64_t g = 0; g < s.groups; ++g, x += s.group_stride) {
    __m512i xv[NP];
#pragma GCC unroll 4
    for (int v = 0; v < NP; ++v) xv[v] = _mm512_loadu_si512(x + v * kGroupBytes);
#pragma GCC unroll 8
    for (int o = 0; o < MO; ++o) {
      int32_t quad;
      std::memcpy(&quad, w + o * w_stride + 4 * g, 4);
      const __m512i wv = _mm512_set1_epi32(quad);
#pragma GCC unroll 4
      for (int v = 0; v < NP; ++v) acc[o][v] = _mm512_dpbusd_epi32(acc[o][v], xv[v], wv);
    }
  }
  alignas(64) int32_t sums[MO][NP * kPanel];
#pragma GCC unroll 8
  for (int o = 0; o < MO; ++o)
#pragma GCC unroll 4
    for (int v = 0; v < NP; ++v) _mm512_store_si512(&sums[o][v * kPanel], acc[o][v]);
  const Epilogue& ep = *s.ep;
  for (int o = 0; o < MO; ++o) {
    const Columns columns = channel_columns(ep, o0 + o);
    uint8_t* out = s.out + (o0 + o) * s.out_stride;
    for (int v = 0; v < NP; ++v) {
      const int64_t p = (panel0 + v) * kPanel;
      if (p >= s.pixels) break;
      const __m512i q = requantize_vec(_mm512_load_si512(&sums[o][v * kPanel]), columns, ep);
      _mm512_mask_cvtepi32_storeu_epi8(out + p, column_mask(s.pixels - p), q);
    }
  }
}

using PixelFn = void (*)(const PixelConvArgs&, int64_t, int64_t);
#define LK_PROW(MO) {nullptr, &pixel_block<MO, 1>, &pixel_block<MO, 2>, &pixel_block<MO, 3>, &pixel_block<MO, 4>}
const PixelFn kPixelBlocks[9][5] = {
    {nullptr, nullptr, nullptr, nullptr, nullptr},
    LK_PROW(1), LK_PROW(2), LK_PROW(3), LK_PROW(4), LK_PROW(5), LK_PROW(6), LK_PROW(7), LK_PROW(8)};
#undef LK_PROW

}  // namespace

void conv_pixels_vnni(const PixelConvArgs& s) {
  // Register blocks: up to 6 channels x 4 panels (64 pixels), or 8 channels x 3 panels.
  const int mo_max = s.out_channels <= 6 ? static_cast<int>(s.out_channels) : 8;
  const int np_max = mo_max <= 6 ? 4 : 3;
  const int64_t panels = (s.pixels + kPanel - 1) / kPanel;
  for (int64_t p = 0; p < panels; p += np_max) {
    const int np = static_cast<int>(panels - p < np_max ? panels - p : np_max);
    for (int64_t o = 0; o < s.out_channels; o += mo_max) {
      const int mo = static_cast<int>(s.out_channels - o < mo_max ? s.out_channels - o : mo_max);
      kPixelBlocks[mo][np](s, o, p);
    }
  }
}

LK_VNNI int32_t probe_peak_vnni(int64_t iterations) {
  __m512i acc[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  __m512i x = _mm512_set1_epi32(0x01010101), w = _mm512_set1_epi32(0x02020202);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], x, w);
  }
  int32_t sum = 0;
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) sum += _mm512_reduce_add_epi32(acc[i]);
  return sum;
}

}  // namespace labkit

#endif  // LABKIT_X86
