// The int4 micro-kernels (int4.h): AVX-512 (the AMX and VNNI paths) and AVX2. For one output
// column n and up to 4 rows of x at once, 32 codes at a time from 16 bytes (zero-extend each byte
// to 32 bits: low nibble = even column, high nibble = odd column, which is why x comes in the order
// "16 even columns, then 16 odd"), multiplied and added with x in float32. AVX2: codes converted to
// float, the group's sum scaled once, the zero point entering as z * (group sum of x) at the end;
// AVX-512: a table lookup (below). Each weight byte is read once and used for every row of x.
#include "int4.h"

// GCC 12 warns "__Y may be used uninitialized" inside its own avx512fintrin.h for the intrinsics
// below (a known false positive of its headers): silenced for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if defined(LABKIT_X86)  // the whole file
#include <immintrin.h>

#define LK_AVX512F __attribute__((target("avx512f")))
#define LK_AVX2 __attribute__((target("avx2")))

namespace labkit {
namespace {

constexpr int kMaxRows = 4;       // rows of x per pass: each weight byte decoded once for all of them
constexpr int kMaxBlockRows = 8;  // the same for the prepared layout (lanes = outputs: fewer registers per row)

// The AVX2 path's zero-point terms: sum_g s z xsum for the rows m0 .. m0 + MB.
template <int MB>
inline void zero_point_terms(const Int4Problem& p, const Int4Work& w, int64_t m0, int64_t n, float* terms) {
  const int64_t groups = p.k / p.group_size;
  const float* s = p.scale + n * groups;
  const uint8_t* z = p.zero_point + n * groups;
  for (int r = 0; r < MB; ++r) terms[r] = 0.0f;
  for (int64_t g = 0; g < groups; ++g) {
    const float sz = s[g] * static_cast<float>(z[g]);
    for (int r = 0; r < MB; ++r) terms[r] += sz * w.xsum[(m0 + r) * groups + g];
  }
}

// AVX-512: the 16 dequantized values of a group, (q - z) * s for q = 0..15, sit in one register, and
// vpermps looks the codes up in it (it reads the low 4 bits of each 32-bit lane: after zero-extending
// 16 bytes, the low nibble directly, the high one after a shift by 4). So W = (q - z) * s is the very
// float32 the reference dequantizes, and a group costs 2 operations to build its table, no scale or
// zero-point arithmetic per weight.
template <int MB>
LK_AVX512F void columns_avx512(const Int4Problem& p, const Int4Work& w, int64_t m0, int64_t n0, int64_t n1) {
  const int64_t groups = p.k / p.group_size, chunks = p.group_size / kInt4Chunk;
  const __m512 codes16 = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* codes = p.packed + n * (p.k / 2);
    const float* s = p.scale + n * groups;
    const uint8_t* z = p.zero_point + n * groups;
    __m512 even_acc[MB], odd_acc[MB];  // two chains per row: half the latency of one
    for (int r = 0; r < MB; ++r) even_acc[r] = odd_acc[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const __m512 table = _mm512_mul_ps(_mm512_sub_ps(codes16, _mm512_set1_ps(static_cast<float>(z[g]))),
                                         _mm512_set1_ps(s[g]));
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t col = g * p.group_size + c * kInt4Chunk;
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + col / 2)));
        const __m512 even = _mm512_permutexvar_ps(v, table);
        const __m512 odd = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
        for (int r = 0; r < MB; ++r) {
          const float* x = w.xp + (m0 + r) * p.k + col;
          even_acc[r] = _mm512_fmadd_ps(even, _mm512_loadu_ps(x), even_acc[r]);
          odd_acc[r] = _mm512_fmadd_ps(odd, _mm512_loadu_ps(x + 16), odd_acc[r]);
        }
      }
    }
    const float b = p.bias ? p.bias[n] : 0.0f;
    for (int r = 0; r < MB; ++r)
      p.out[(m0 + r) * p.n + n] = _mm512_reduce_add_ps(_mm512_add_ps(even_acc[r], odd_acc[r])) + b;
  }
}

LK_AVX2 inline float sum_avx2(__m256 v) {
  const __m128 four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 two = _mm_add_ps(four, _mm_movehl_ps(four, four));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)));
}

// As columns_avx512 with 8 lanes: the 16 bytes of a chunk as two halves of 8 (columns 0..15 and
// 16..31 of the chunk). Multiply, then add (no FMA: some AVX2 CPUs lack it).
template <int MB>
LK_AVX2 void columns_avx2(const Int4Problem& p, const Int4Work& w, int64_t m0, int64_t n0, int64_t n1) {
  const int64_t groups = p.k / p.group_size, chunks = p.group_size / kInt4Chunk;
  const __m256i nibble = _mm256_set1_epi32(15);
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* codes = p.packed + n * (p.k / 2);
    const float* s = p.scale + n * groups;
    __m256 acc[MB];
    for (int r = 0; r < MB; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      __m256 part[MB];
      for (int r = 0; r < MB; ++r) part[r] = _mm256_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t col = g * p.group_size + c * kInt4Chunk;
        for (int half = 0; half < 2; ++half) {  // bytes 8*half .. 8*half + 7
          const __m256i v = _mm256_cvtepu8_epi32(
              _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + col / 2 + 8 * half)));
          const __m256 even = _mm256_cvtepi32_ps(_mm256_and_si256(v, nibble));
          const __m256 odd = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
          for (int r = 0; r < MB; ++r) {
            const float* x = w.xp + (m0 + r) * p.k + col + 8 * half;
            part[r] = _mm256_add_ps(part[r], _mm256_mul_ps(even, _mm256_loadu_ps(x)));
            part[r] = _mm256_add_ps(part[r], _mm256_mul_ps(odd, _mm256_loadu_ps(x + 16)));
          }
        }
      }
      const __m256 scale = _mm256_set1_ps(s[g]);
      for (int r = 0; r < MB; ++r) acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(part[r], scale));
    }
    float terms[MB];
    zero_point_terms<MB>(p, w, m0, n, terms);
    const float b = p.bias ? p.bias[n] : 0.0f;
    for (int r = 0; r < MB; ++r) p.out[(m0 + r) * p.n + n] = sum_avx2(acc[r]) - terms[r] + b;
  }
}

// ---- the prepared layout (int4.h): 16 output rows in the lanes ----------------------------------
// Per span of 8 columns: one 64-byte load v of 16 words; column i's codes are the low 4 bits of
// v >> 4i, made float by a lookup in the table 0..15 (vpermps reads only the low 4 bits of each
// index) and multiplied into each row's partial sum with x[k] broadcast. At the end of a group the
// partial sums are scaled and the zero point's term subtracted, 16 outputs at once: no horizontal
// sums, no per-weight scale or zero point. Up to kMaxBlockRows rows of x share each decoded code;
// several independent partial sums per row (kChains) keep the FMA units busy when the rows are few
// (an FMA waits 4 cycles for its predecessor in a chain).
template <int MB>
LK_AVX512F void blocks_avx512(const Int4Call& c, int64_t m0, int64_t b0, int64_t b1) {
  constexpr int kChains = MB == 1 ? 4 : MB <= 4 ? 2 : 1;
  const Int4Prepared& w = *c.w;
  const int64_t spans_per_group = w.group_size / kInt4Span;
  const __m512 codes16 = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t b = b0; b < b1; ++b) {
    const uint32_t* codes = w.codes + b * w.spans * kInt4Lanes;
    __m512 acc[MB];
    for (int r = 0; r < MB; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < w.groups; ++g) {
      __m512 part[MB][kChains];
      for (int r = 0; r < MB; ++r)
        for (int ch = 0; ch < kChains; ++ch) part[r][ch] = _mm512_setzero_ps();
      for (int64_t span = g * spans_per_group; span < (g + 1) * spans_per_group; ++span) {
        const __m512i v = _mm512_loadu_si512(codes + span * kInt4Lanes);
        const float* x = c.x + m0 * w.k + span * kInt4Span;
#pragma GCC unroll 8
        for (int i = 0; i < kInt4Span; ++i) {
          const __m512 q = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * i), codes16);
          for (int r = 0; r < MB; ++r)
            part[r][i % kChains] = _mm512_fmadd_ps(q, _mm512_set1_ps(x[r * w.k + i]), part[r][i % kChains]);
        }
      }
      const __m512 s = _mm512_loadu_ps(w.scale + (b * w.groups + g) * kInt4Lanes);
      const __m512 sz = _mm512_loadu_ps(w.scaled_zero + (b * w.groups + g) * kInt4Lanes);
      for (int r = 0; r < MB; ++r) {
        __m512 dot = part[r][0];
        for (int ch = 1; ch < kChains; ++ch) dot = _mm512_add_ps(dot, part[r][ch]);
        acc[r] = _mm512_fmadd_ps(dot, s, acc[r]);
        acc[r] = _mm512_fnmadd_ps(sz, _mm512_set1_ps(c.xsum[(m0 + r) * w.groups + g]), acc[r]);
      }
    }
    const int64_t n0 = b * kInt4Lanes, valid = w.n - n0 < kInt4Lanes ? w.n - n0 : kInt4Lanes;
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
    const __m512 bias = w.bias ? _mm512_loadu_ps(w.bias + n0) : _mm512_setzero_ps();
    for (int r = 0; r < MB; ++r)
      _mm512_mask_storeu_ps(c.out + (m0 + r) * w.n + n0, mask, _mm512_add_ps(acc[r], bias));
  }
}

// As blocks_avx512 with 8 lanes: a block as two halves of 8 rows. AVX2's vpermps indexes 8 entries,
// so each code is masked to 4 bits and converted to float instead; multiply, then add (no FMA: some
// AVX2 CPUs lack it).
template <int MB>
LK_AVX2 void blocks_avx2(const Int4Call& c, int64_t m0, int64_t b0, int64_t b1) {
  const Int4Prepared& w = *c.w;
  const int64_t spans_per_group = w.group_size / kInt4Span;
  const __m256i nibble = _mm256_set1_epi32(15);
  for (int64_t b = b0; b < b1; ++b)
    for (int half = 0; half < 2; ++half) {
      const int64_t n0 = b * kInt4Lanes + 8 * half;
      if (n0 >= w.n) break;
      const uint32_t* codes = w.codes + b * w.spans * kInt4Lanes + 8 * half;
      __m256 acc[MB];
      for (int r = 0; r < MB; ++r) acc[r] = _mm256_setzero_ps();
      for (int64_t g = 0; g < w.groups; ++g) {
        __m256 part[MB][2];
        for (int r = 0; r < MB; ++r) part[r][0] = part[r][1] = _mm256_setzero_ps();
        for (int64_t span = g * spans_per_group; span < (g + 1) * spans_per_group; ++span) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + span * kInt4Lanes));
          const float* x = c.x + m0 * w.k + span * kInt4Span;
#pragma GCC unroll 8
          for (int i = 0; i < kInt4Span; ++i) {
            const __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 4 * i), nibble));
            for (int r = 0; r < MB; ++r)
              part[r][i % 2] = _mm256_add_ps(part[r][i % 2], _mm256_mul_ps(q, _mm256_set1_ps(x[r * w.k + i])));
          }
        }
        const int64_t at = (b * w.groups + g) * kInt4Lanes + 8 * half;
        const __m256 s = _mm256_loadu_ps(w.scale + at), sz = _mm256_loadu_ps(w.scaled_zero + at);
        for (int r = 0; r < MB; ++r) {
          const __m256 zero_term = _mm256_mul_ps(sz, _mm256_set1_ps(c.xsum[(m0 + r) * w.groups + g]));
          const __m256 dot = _mm256_add_ps(part[r][0], part[r][1]);
          acc[r] = _mm256_add_ps(acc[r], _mm256_sub_ps(_mm256_mul_ps(dot, s), zero_term));
        }
      }
      const int64_t valid = w.n - n0 < 8 ? w.n - n0 : 8;
      for (int r = 0; r < MB; ++r) {
        float lanes[8];
        _mm256_storeu_ps(lanes, w.bias ? _mm256_add_ps(acc[r], _mm256_loadu_ps(w.bias + n0)) : acc[r]);
        for (int64_t j = 0; j < valid; ++j) c.out[(m0 + r) * w.n + n0 + j] = lanes[j];
      }
    }
}

// Rows of x in passes of kMaxRows (the last pass: what is left), columns [n0, n1).
template <template <int> class Kernel>
void all_rows(const Int4Problem& p, const Int4Work& w, int64_t n0, int64_t n1) {
  for (int64_t m0 = 0; m0 < p.m; m0 += kMaxRows) {
    switch (p.m - m0 < kMaxRows ? p.m - m0 : kMaxRows) {
      case 1: Kernel<1>::run(p, w, m0, n0, n1); break;
      case 2: Kernel<2>::run(p, w, m0, n0, n1); break;
      case 3: Kernel<3>::run(p, w, m0, n0, n1); break;
      default: Kernel<4>::run(p, w, m0, n0, n1); break;
    }
  }
}

template <int MB>
struct Avx512 {
  static void run(const Int4Problem& p, const Int4Work& w, int64_t m0, int64_t n0, int64_t n1) {
    columns_avx512<MB>(p, w, m0, n0, n1);
  }
};
template <int MB>
struct Avx2 {
  static void run(const Int4Problem& p, const Int4Work& w, int64_t m0, int64_t n0, int64_t n1) {
    columns_avx2<MB>(p, w, m0, n0, n1);
  }
};

template <int MB>
struct BlocksAvx512 {
  static void run(const Int4Call& c, int64_t m0, int64_t b0, int64_t b1) { blocks_avx512<MB>(c, m0, b0, b1); }
};
template <int MB>
struct BlocksAvx2 {
  static void run(const Int4Call& c, int64_t m0, int64_t b0, int64_t b1) { blocks_avx2<MB>(c, m0, b0, b1); }
};

// Rows of x in passes of kMaxBlockRows, output blocks [b0, b1).
template <template <int> class Kernel>
void all_rows_blocks(const Int4Call& c, int64_t b0, int64_t b1) {
  for (int64_t m0 = 0; m0 < c.m; m0 += kMaxBlockRows) {
    switch (c.m - m0 < kMaxBlockRows ? c.m - m0 : kMaxBlockRows) {
      case 1: Kernel<1>::run(c, m0, b0, b1); break;
      case 2: Kernel<2>::run(c, m0, b0, b1); break;
      case 3: Kernel<3>::run(c, m0, b0, b1); break;
      case 4: Kernel<4>::run(c, m0, b0, b1); break;
      case 5: Kernel<5>::run(c, m0, b0, b1); break;
      case 6: Kernel<6>::run(c, m0, b0, b1); break;
      case 7: Kernel<7>::run(c, m0, b0, b1); break;
      default: Kernel<8>::run(c, m0, b0, b1); break;
    }
  }
}

}  // namespace

void int4_blocks_avx512(const Int4Call& c, int64_t b0, int64_t b1) { all_rows_blocks<BlocksAvx512>(c, b0, b1); }
void int4_blocks_avx2(const Int4Call& c, int64_t b0, int64_t b1) { all_rows_blocks<BlocksAvx2>(c, b0, b1); }

void int4_rows_avx512(const Int4Problem& p, const Int4Work& w, int64_t n0, int64_t n1) {
  all_rows<Avx512>(p, w, n0, n1);
}
void int4_rows_avx2(const Int4Problem& p, const Int4Work& w, int64_t n0, int64_t n1) {
  all_rows<Avx2>(p, w, n0, n1);
}

}  // namespace labkit

#endif  // LABKIT_X86
