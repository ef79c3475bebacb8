// The AVX2 path (LABKIT_ISA=avx2). vpmaddubsw (u8 x s8 -> s16 pairs) would saturate: two products
// 255*127 + 255*127 = 64770 > 32767. So both operands are widened to int16 and multiplied with
// vpmaddwd, whose pairs a0*b0 + a1*b1 (|.| <= 2*255*128) are exact in int32 lanes: the sums are
// exact as in reference.py, step 1, at half the multiply-adds per instruction of vpmaddubsw.
//
// Packed weights: int16 data[panel][k/2][8 columns][2 consecutive k] (32 bytes per pair of k).
// Activations: each K block of a tile's rows is widened to int16 pairs in a per-thread buffer
// (row-major, [row][k/2] as uint32), so one vpbroadcastd feeds a row. Micro-kernel: MR <= 6 rows
// x NV <= 2 panels of 8 columns = 12 ymm accumulators. Epilogue as in kernels_avx512.cpp.
#include "int8.h"

#ifdef LABKIT_X86  // the whole file: x86-64 only
#include <immintrin.h>

#include <cstring>

#define LK_AVX2 __attribute__((target("avx2")))

namespace labkit {
namespace {

constexpr int kPanel = 8;        // int32 output columns per ymm
constexpr int kGroupBytes = 32;  // 8 columns x 2 k x int16
constexpr int kMaxRows = 6;

LK_AVX2 inline __m256i load(const int32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Steps 2-4 of reference.py for 8 columns n..n+7 (same integers as requant.h; the comments of
// kernels_avx512.cpp explain each line). Column constants are loaded once per column panel.
struct Columns {
  __m256i offset, multiplier, multiplier_odd, left_shift, left_hi, left_lo, right_shift, mask, half_mask;
};

LK_AVX2 inline Columns load_columns(const Epilogue& ep, int64_t n) {
  Columns c;
  c.offset = ep.col_offset ? load(ep.col_offset + n) : _mm256_setzero_si256();
  c.multiplier = load(ep.multiplier + n);
  c.multiplier_odd = _mm256_srli_epi64(c.multiplier, 32);
  c.left_shift = load(ep.left_shift + n);
  c.left_hi = _mm256_srav_epi32(_mm256_set1_epi32(0x7fffffff), c.left_shift);
  c.left_lo = _mm256_srav_epi32(_mm256_set1_epi32(INT32_MIN), c.left_shift);
  c.right_shift = load(ep.right_shift + n);
  const __m256i one = _mm256_set1_epi32(1);
  c.mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, c.right_shift), one);
  c.half_mask = _mm256_srai_epi32(c.mask, 1);
  return c;
}

LK_AVX2 inline __m256i requantize_vec(__m256i acc, const Columns& c, const Epilogue& ep) {
  __m256i x = _mm256_add_epi32(acc, c.offset);
  if (ep.any_left_shift)
    x = _mm256_sllv_epi32(_mm256_min_epi32(_mm256_max_epi32(x, c.left_lo), c.left_hi), c.left_shift);
  // floor((x*m + 2^30) / 2^31): only bits 31..62 are kept, so a logical 64-bit shift suffices.
  const __m256i round = _mm256_set1_epi64x(int64_t{1} << 30);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, c.multiplier), round), 31);
  __m256i odd = _mm256_mul_epi32(_mm256_srli_epi64(x, 32), c.multiplier_odd);
  odd = _mm256_slli_epi64(_mm256_srli_epi64(_mm256_add_epi64(odd, round), 31), 32);
  const __m256i h = _mm256_blend_epi32(even, odd, 0xAA);
  const __m256i remainder = _mm256_and_si256(h, c.mask);
  const __m256i threshold = _mm256_sub_epi32(c.half_mask, _mm256_srai_epi32(h, 31));
  __m256i q = _mm256_srav_epi32(h, c.right_shift);
  q = _mm256_sub_epi32(q, _mm256_cmpgt_epi32(remainder, threshold));  // true lanes are -1
  q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(-256)), _mm256_set1_epi32(256));
  q = _mm256_add_epi32(q, _mm256_set1_epi32(ep.out_zero_point));
  q = _mm256_max_epi32(q, _mm256_set1_epi32(ep.out_min));
  return _mm256_min_epi32(q, _mm256_set1_epi32(255));
}

// Store the low byte of the first `valid` (1..8) int32 lanes.
LK_AVX2 inline void store_u8(uint8_t* dst, __m256i q, int64_t valid) {
  const __m256i bytes = _mm256_shuffle_epi8(
      q, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
  const __m256i packed = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
  const uint64_t eight = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm256_castsi256_si128(packed)));
  std::memcpy(dst, &eight, static_cast<size_t>(valid < kPanel ? valid : kPanel));
}

LK_AVX2 inline void store_i32(int32_t* dst, __m256i v, int64_t valid) {
  if (valid >= kPanel) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
  } else {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(valid)), lanes);
    _mm256_maskstore_epi32(dst, mask, v);
  }
}

struct BlockArgs {
  const uint32_t* a;      // widened rows: pairs (a[k], a[k+1]) as two int16, row stride lda
  int64_t lda;
  const int16_t* b;       // panel p, first pair of this K block
  int64_t panel_bytes;
  int64_t pairs;          // pairs of k in this block
  int32_t* partial;
  int64_t ld_partial;
  bool load_partial, store_partial;
  const Epilogue* ep;
  int64_t m, n, n_valid;
};

template <int MR, int NV>
LK_AVX2 void block_avx2(const BlockArgs& s) {
  __m256i acc[MR][NV];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      acc[r][v] = s.load_partial ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                       s.partial + r * s.ld_partial + v * kPanel))
                                 : _mm256_setzero_si256();
  const char* b = reinterpret_cast<const char*>(s.b);
  for (int64_t kp = 0; kp < s.pairs; ++kp, b += kGroupBytes) {
    __m256i w[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      w[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + v * s.panel_bytes));
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256i x = _mm256_set1_epi32(static_cast<int32_t>(s.a[r * s.lda + kp]));
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(x, w[v]));
    }
  }
  // Leave the registers through fully unrolled stores only (see kernels_avx512.cpp).
  const bool to_scratch = s.store_partial;
  alignas(32) int32_t sums[MR][NV * kPanel];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(to_scratch ? s.partial + r * s.ld_partial + v * kPanel
                                                                : &sums[r][v * kPanel]),
                          acc[r][v]);
  if (to_scratch) return;
  const Epilogue& ep = *s.ep;
  for (int v = 0; v < NV && v * kPanel < s.n_valid; ++v) {
    const int64_t valid = s.n_valid - v * kPanel;
    const int64_t n = s.n + v * kPanel;
    Columns columns;
    if (ep.requantize) columns = load_columns(ep, n);
    for (int r = 0; r < MR; ++r) {
      const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(&sums[r][v * kPanel]));
      if (ep.requantize)
        store_u8(ep.out8 + (s.m + r) * ep.ldc + n, requantize_vec(x, columns, ep), valid);
      else
        store_i32(ep.out32 + (s.m + r) * ep.ldc + n, x, valid);
    }
  }
}

using BlockFn = void (*)(const BlockArgs&);
#define LK_ROW(MR) {nullptr, &block_avx2<MR, 1>, &block_avx2<MR, 2>}
const BlockFn kBlocks[kMaxRows + 1][3] = {
    {nullptr, nullptr, nullptr}, LK_ROW(1), LK_ROW(2), LK_ROW(3), LK_ROW(4), LK_ROW(5), LK_ROW(6)};
#undef LK_ROW

// Widen a[row, 2*p0 : 2*p1] (zeros past k_size) to int16 pairs: dst[p - p0] = a[2p] | a[2p+1] << 16.
LK_AVX2 void widen_row(const uint8_t* row, int64_t k_size, int64_t p0, int64_t p1, uint32_t* dst) {
  int64_t k = 2 * p0;
  const int64_t k_end = 2 * p1 < k_size ? 2 * p1 : k_size;
  uint32_t* out = dst;
  for (; k + 16 <= k_end; k += 16, out += 8) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_cvtepu8_epi16(bytes));
  }
  for (; out < dst + (p1 - p0); ++out, k += 2) {
    const uint32_t lo = k < k_size ? row[k] : 0;
    const uint32_t hi = k + 1 < k_size ? row[k + 1] : 0;
    *out = lo | (hi << 16);
  }
}

}  // namespace

int64_t pack_buffer_bytes_avx2(const Blocking& blk) {
  const int64_t block_pairs = blk.kc / 2 > 0 ? blk.kc / 2 : 1;
  return (blk.mc + kMaxRows) * block_pairs * 4;
}

void tile_avx2(const GemmArgs& g, const Blocking& blk, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
               int32_t* scratch, void* pack_buffer) {
  const PackedLayout& layout = *g.b;
  const int64_t pairs_total = layout.groups;
  const int64_t block_pairs = blk.kc / 2 > 0 ? blk.kc / 2 : 1;
  const int nv_max = layout.n <= kPanel ? 1 : 2;
  const int64_t p0 = n0 / kPanel, p1 = (n1 + kPanel - 1) / kPanel;
  const int64_t ld_partial = (p1 - p0) * kPanel;
  const char* packed = static_cast<const char*>(layout.data);
  uint32_t* widened = static_cast<uint32_t*>(pack_buffer);

  for (int64_t q0 = 0; q0 < pairs_total; q0 += block_pairs) {
    const int64_t q1 = q0 + block_pairs < pairs_total ? q0 + block_pairs : pairs_total;
    const bool first = q0 == 0, last = q1 == pairs_total;
    for (int64_t m = m0; m < m1; ++m) widen_row(g.a + m * g.lda, layout.k, q0, q1, widened + (m - m0) * (q1 - q0));
    for (int64_t p = p0; p < p1; p += nv_max) {
      const int nv = static_cast<int>(p1 - p < nv_max ? p1 - p : nv_max);
      for (int64_t m = m0; m < m1; m += kMaxRows) {
        const int mr = static_cast<int>(m1 - m < kMaxRows ? m1 - m : kMaxRows);
        BlockArgs s;
        s.a = widened + (m - m0) * (q1 - q0);
        s.lda = q1 - q0;
        s.b = reinterpret_cast<const int16_t*>(packed + p * layout.panel_bytes + q0 * kGroupBytes);
        s.panel_bytes = layout.panel_bytes;
        s.pairs = q1 - q0;
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

LK_AVX2 void requantize_rows_avx2(const int32_t* acc, int64_t rows, int64_t cols, const Epilogue& ep) {
  for (int64_t c = 0; c < cols; c += kPanel) {
    const Columns columns = load_columns(ep, c);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t valid = cols - c;
      __m256i x;
      if (valid >= kPanel) {
        x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + r * cols + c));
      } else {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(valid)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        x = _mm256_maskload_epi32(acc + r * cols + c, mask);
      }
      store_u8(ep.out8 + r * ep.ldc + c, requantize_vec(x, columns, ep), valid);
    }
  }
}

// ---- packing the weights ----------------------------------------------------------------------
// A panel is 8 rows of w. 16 consecutive k of those rows, widened to int16, are an 8 x 8 matrix of
// 32-bit pairs (row = output column, pair = 2 consecutive k); the layout wants it transposed (one
// 32-byte group per pair index), so 8 loads, 8 widenings, an 8 x 8 transpose of 32-bit elements
// (3 rounds of 8 shuffles) and 8 stores pack 128 bytes of w. Edges go through a zeroed copy.

namespace {

// rows[j] := the j-th column of the 8 x 8 matrix of int32 held in rows[0..7].
LK_AVX2 inline void transpose_8x8_epi32(__m256i rows[8]) {
  __m256i t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(rows[i], rows[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(rows[i], rows[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    rows[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    rows[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    rows[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    rows[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_permute2x128_si256(rows[i], rows[i + 4], 0x20);
    t[i + 4] = _mm256_permute2x128_si256(rows[i], rows[i + 4], 0x31);
  }
  for (int i = 0; i < 8; ++i) rows[i] = t[i];
}

}  // namespace

LK_AVX2 void pack_avx2(const int8_t* w, const PackedLayout& layout, int64_t p0, int64_t p1, void* dst,
                       int32_t* sums, int32_t* abs_sums) {
  const int64_t n = layout.n, k = layout.k, groups = layout.groups;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t p = p0; p < p1; ++p) {
    char* panel = static_cast<char*>(dst) + p * layout.panel_bytes;
    const int64_t rows = n - p * kPanel < kPanel ? n - p * kPanel : kPanel;
    const int8_t* src = w + p * kPanel * k;
    __m256i sum = _mm256_setzero_si256(), abs_sum = _mm256_setzero_si256();  // lane c: row c of the panel
    for (int64_t k0 = 0; k0 < k; k0 += 16) {
      alignas(16) int8_t edge[kPanel][16];
      const bool inside = rows == kPanel && k0 + 16 <= k;
      if (!inside) {  // the last rows or k: a zero-padded copy
        std::memset(edge, 0, sizeof edge);
        const size_t bytes = static_cast<size_t>(k - k0 < 16 ? k - k0 : 16);
        for (int64_t r = 0; r < rows; ++r) std::memcpy(edge[r], src + r * k + k0, bytes);
      }
      __m256i pairs[kPanel];
#pragma GCC unroll 8
      for (int r = 0; r < kPanel; ++r)
        pairs[r] = _mm256_cvtepi8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(inside ? src + r * k + k0 : edge[r])));
      transpose_8x8_epi32(pairs);
      const int64_t stored = groups - k0 / 2 < kPanel ? groups - k0 / 2 : kPanel;  // pairs of k in this chunk
      for (int64_t g = 0; g < stored; ++g)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + (k0 / 2 + g) * kGroupBytes), pairs[g]);
      if (sums) {
#pragma GCC unroll 8
        for (int g = 0; g < kPanel; ++g) {  // the pairs past K are zero
          sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pairs[g], ones));
          abs_sum = _mm256_add_epi32(abs_sum, _mm256_madd_epi16(_mm256_abs_epi16(pairs[g]), ones));
        }
      }
    }
    if (sums) {
      alignas(32) int32_t lanes[kPanel], abs_lanes[kPanel];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
      _mm256_store_si256(reinterpret_cast<__m256i*>(abs_lanes), abs_sum);
      for (int64_t r = 0; r < rows; ++r) {
        sums[p * kPanel + r] = lanes[r];
        abs_sums[p * kPanel + r] = abs_lanes[r];
      }
    }
  }
}

// sums[r] = sum_k w[r,k], abs_sums[r] = sum_k |w[r,k]|: 16 k widened to int16, then vpmaddwd by ones.
LK_AVX2 void row_sums_avx2(const int8_t* w, int64_t k, int64_t r0, int64_t r1, int32_t* sums, int32_t* abs_sums) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* row = w + r * k;
    __m256i sum = _mm256_setzero_si256(), abs_sum = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 16 <= k; j += 16) {
      const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j)));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(v, ones));
      abs_sum = _mm256_add_epi32(abs_sum, _mm256_madd_epi16(_mm256_abs_epi16(v), ones));
    }
    alignas(32) int32_t lanes[8], abs_lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
    _mm256_store_si256(reinterpret_cast<__m256i*>(abs_lanes), abs_sum);
    int32_t s = 0, a = 0;
    for (int i = 0; i < 8; ++i) {
      s += lanes[i];
      a += abs_lanes[i];
    }
    for (; j < k; ++j) {
      s += row[j];
      a += row[j] < 0 ? -row[j] : row[j];
    }
    sums[r] = s;
    abs_sums[r] = a;
  }
}

// ---- convolution with output pixels in the lanes (see kernels_avx512.cpp) ----------------------
// 4 pixels x 4 taps of u8 widen to 16 int16 (vpmovzxbw); vpmaddwd with the channel's 4 weights
// repeated gives, per pixel, two partial sums (taps 0+1, taps 2+3) in adjacent int32 lanes; they
// are added pairwise (vphaddd) once, after the K loop. 6 channels x 8 pixels = 12 accumulators.
namespace {

LK_AVX2 inline Columns channel_columns(const Epilogue& ep, int64_t o) {
  Columns c;
  c.offset = _mm256_set1_epi32(ep.col_offset[o]);
  c.multiplier = _mm256_set1_epi32(ep.multiplier[o]);
  c.multiplier_odd = c.multiplier;
  c.left_shift = _mm256_set1_epi32(ep.left_shift[o]);
  c.left_hi = _mm256_srav_epi32(_mm256_set1_epi32(0x7fffffff), c.left_shift);
  c.left_lo = _mm256_srav_epi32(_mm256_set1_epi32(INT32_MIN), c.left_shift);
  c.right_shift = _mm256_set1_epi32(ep.right_shift[o]);
  const __m256i one = _mm256_set1_epi32(1);
  c.mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, c.right_shift), one);
  c.half_mask = _mm256_srai_epi32(c.mask, 1);
  return c;
}

template <int MO>
LK_AVX2 void pixel_block_avx2(const PixelConvArgs& s, int64_t o0, int64_t p0) {
  __m256i acc[MO][2];
#pragma GCC unroll 6
  for (int o = 0; o < MO; ++o) acc[o][0] = acc[o][1] = _mm256_setzero_si256();
  const uint8_t* x = s.xp + p0 * 4;
  const int8_t* w = s.w + o0 * s.groups * 4;
  const int64_t w_stride = s.groups * 4;
  for (int64_t g = 0; g < s.groups; ++g, x += s.group_stride) {
    const __m256i lo = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
    const __m256i hi = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 16)));
#pragma GCC unroll 6
    for (int o = 0; o < MO; ++o) {
      int32_t quad;
      std::memcpy(&quad, w + o * w_stride + 4 * g, 4);
      const __m256i wv = _mm256_cvtepi8_epi16(_mm_set1_epi32(quad));  // w0 w1 w2 w3, 4 times
      acc[o][0] = _mm256_add_epi32(acc[o][0], _mm256_madd_epi16(lo, wv));
      acc[o][1] = _mm256_add_epi32(acc[o][1], _mm256_madd_epi16(hi, wv));
    }
  }
  alignas(32) int32_t sums[MO][8];
#pragma GCC unroll 6
  for (int o = 0; o < MO; ++o) {
    // hadd gives pixels [0 1 4 5 | 2 3 6 7]; the 64-bit permute puts them in order.
    const __m256i pairs = _mm256_hadd_epi32(acc[o][0], acc[o][1]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums[o]), _mm256_permute4x64_epi64(pairs, 0xD8));
  }
  const Epilogue& ep = *s.ep;
  const int64_t valid = s.pixels - p0 < 8 ? s.pixels - p0 : 8;
  for (int o = 0; o < MO; ++o) {
    const __m256i q = requantize_vec(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums[o])),
                                     channel_columns(ep, o0 + o), ep);
    store_u8(s.out + (o0 + o) * s.out_stride + p0, q, valid);
  }
}

using PixelFn = void (*)(const PixelConvArgs&, int64_t, int64_t);
const PixelFn kPixelBlocks[7] = {nullptr,
                                 &pixel_block_avx2<1>,
                                 &pixel_block_avx2<2>,
                                 &pixel_block_avx2<3>,
                                 &pixel_block_avx2<4>,
                                 &pixel_block_avx2<5>,
                                 &pixel_block_avx2<6>};

}  // namespace

void conv_pixels_avx2(const PixelConvArgs& s) {
  for (int64_t p = 0; p < s.pixels; p += 8)
    for (int64_t o = 0; o < s.out_channels; o += 6)
      kPixelBlocks[s.out_channels - o < 6 ? s.out_channels - o : 6](s, o, p);
}

LK_AVX2 int32_t probe_peak_avx2(int64_t iterations) {
  // 6 accumulators and 6 weight vectors: with x, 13 of the 16 ymm registers.
  __m256i acc[6], w[6];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    acc[i] = _mm256_set1_epi32(i);
    w[i] = _mm256_set1_epi32(0x00030004 + i);
  }
  __m256i x = _mm256_set1_epi32(0x00020001);
  for (int64_t it = 0; it < iterations; ++it) {
    __asm__ volatile("" : "+x"(x));  // x is "new" each iteration: the products are recomputed
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(x, w[i]));
  }
  __m256i sum = acc[0];
#pragma GCC unroll 6
  for (int i = 1; i < 6; ++i) sum = _mm256_add_epi32(sum, acc[i]);
  return _mm256_extract_epi32(sum, 0) + _mm256_extract_epi32(sum, 7);
}

}  // namespace labkit

#endif  // LABKIT_X86
