// The int4 weight-only driver (int4.h): x in the order of the codes, its group sums, the scalar
// path, and the split of the output columns over threads; the same for the prepared weights
// (their layout, filled from the file format once).
#include "int4.h"

#include <algorithm>
#include <vector>

#include "driver.h"

namespace labkit {

// The scalar path: the formula of int4.h term by term, x in its own order.
void int4_rows_ref(const Int4Problem& p, const Int4Work& work, int64_t n0, int64_t n1) {
  const int64_t groups = p.k / p.group_size;
  for (int64_t m = 0; m < p.m; ++m) {
    const float* x = p.x + m * p.k;
    const float* xsum = work.xsum + m * groups;
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* codes = p.packed + n * (p.k / 2);
      float y = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        float dot = 0.0f;
        for (int64_t k = g * p.group_size; k < (g + 1) * p.group_size; ++k) {
          const int q = k % 2 ? codes[k / 2] >> 4 : codes[k / 2] & 15;
          dot += x[k] * static_cast<float>(q);
        }
        const float s = p.scale[n * groups + g];
        y += s * dot - s * static_cast<float>(p.zero_point[n * groups + g]) * xsum[g];
      }
      p.out[m * p.n + n] = y + (p.bias ? p.bias[n] : 0.0f);
    }
  }
}

namespace {

Int4RowsFn int4_kernel(Isa isa) {
  switch (isa) {
#ifdef LABKIT_X86
    case Isa::Avx2: return &int4_rows_avx2;
    case Isa::Avx512Vnni: case Isa::Amx: return &int4_rows_avx512;
#endif
    default: return &int4_rows_ref;
  }
}

}  // namespace

Isa int4_linear(const Int4Problem& p, Isa isa, int threads) {
  if (p.group_size % kInt4Chunk != 0) isa = Isa::Ref;
  const int64_t groups = p.k / p.group_size;
  std::vector<float> xsum(static_cast<size_t>(p.m * groups)), xp;
  for (int64_t m = 0; m < p.m; ++m)
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = p.x + m * p.k + g * p.group_size;
      float s = 0.0f;
      for (int64_t i = 0; i < p.group_size; ++i) s += x[i];
      xsum[m * groups + g] = s;
    }
  Int4Work work;
  work.xsum = xsum.data();
  work.xp = p.x;
  if (isa != Isa::Ref) {  // x in the order of the codes: per chunk of 32, even columns, then odd
    xp.resize(static_cast<size_t>(p.m * p.k));
    for (int64_t i = 0; i < p.m * p.k; i += kInt4Chunk)
      for (int64_t j = 0; j < kInt4Chunk / 2; ++j) {
        xp[i + j] = p.x[i + 2 * j];
        xp[i + kInt4Chunk / 2 + j] = p.x[i + 2 * j + 1];
      }
    work.xp = xp.data();
  }
  const Int4RowsFn kernel = int4_kernel(isa);
  // Tasks of 64 output columns; one thread below kMinParallelWork multiply-adds (a fork/join
  // costs microseconds, as much as a whole matrix-vector product of the lab's transformer).
  const int64_t columns = 64, tasks = (p.n + columns - 1) / columns;
  if (static_cast<double>(p.m) * p.n * p.k < kMinParallelWork) threads = 1;
  parallel_tasks(tasks, threads, [&](int, int64_t t) {
    kernel(p, work, t * columns, std::min(p.n, (t + 1) * columns));
  });
  return isa;
}

// ---- prepared weights --------------------------------------------------------------------------
Int4Prepared int4_layout(int64_t n, int64_t k, int64_t group_size) {
  Int4Prepared w;
  w.n = n;
  w.k = k;
  w.group_size = group_size;
  w.blocks = (n + kInt4Lanes - 1) / kInt4Lanes;
  w.spans = (k + kInt4Span - 1) / kInt4Span;
  w.groups = k / group_size;
  return w;
}

void int4_prepare(const Int4Problem& src, const Int4Prepared& w, uint32_t* codes, float* scale, float* scaled_zero,
                  float* bias) {
  std::fill(codes, codes + w.blocks * w.spans * kInt4Lanes, 0u);
  std::fill(scale, scale + w.blocks * w.groups * kInt4Lanes, 0.0f);
  std::fill(scaled_zero, scaled_zero + w.blocks * w.groups * kInt4Lanes, 0.0f);
  for (int64_t n = 0; n < w.n; ++n) {
    const int64_t b = n / kInt4Lanes, lane = n % kInt4Lanes;
    const uint8_t* row = src.packed + n * (w.k / 2);
    for (int64_t k = 0; k < w.k; ++k) {
      const uint32_t q = k % 2 ? row[k / 2] >> 4 : row[k / 2] & 15;
      codes[(b * w.spans + k / kInt4Span) * kInt4Lanes + lane] |= q << (4 * (k % kInt4Span));
    }
    for (int64_t g = 0; g < w.groups; ++g) {
      const float s = src.scale[n * w.groups + g];
      scale[(b * w.groups + g) * kInt4Lanes + lane] = s;
      scaled_zero[(b * w.groups + g) * kInt4Lanes + lane] = s * static_cast<float>(src.zero_point[n * w.groups + g]);
    }
  }
  if (bias) {
    std::fill(bias, bias + w.blocks * kInt4Lanes, 0.0f);
    std::copy(src.bias, src.bias + w.n, bias);
  }
}

// The scalar path on the prepared layout: the formula of int4.h term by term, any group size.
void int4_blocks_ref(const Int4Call& c, int64_t b0, int64_t b1) {
  const Int4Prepared& w = *c.w;
  for (int64_t m = 0; m < c.m; ++m)
    for (int64_t n = b0 * kInt4Lanes; n < std::min(w.n, b1 * kInt4Lanes); ++n) {
      const int64_t b = n / kInt4Lanes, lane = n % kInt4Lanes;
      const float* x = c.x + m * w.k;
      float y = 0.0f;
      for (int64_t g = 0; g < w.groups; ++g) {
        float dot = 0.0f;
        for (int64_t k = g * w.group_size; k < (g + 1) * w.group_size; ++k) {
          const uint32_t word = w.codes[(b * w.spans + k / kInt4Span) * kInt4Lanes + lane];
          dot += x[k] * static_cast<float>((word >> (4 * (k % kInt4Span))) & 15);
        }
        const int64_t at = (b * w.groups + g) * kInt4Lanes + lane;
        y += w.scale[at] * dot - w.scaled_zero[at] * c.xsum[m * w.groups + g];
      }
      c.out[m * w.n + n] = y + (w.bias ? w.bias[n] : 0.0f);
    }
}

Isa int4_prepared_linear(const Int4Prepared& w, const float* x, int64_t m, float* out, Isa isa, int threads) {
  Int4BlocksFn kernel = &int4_blocks_ref;
#ifdef LABKIT_X86
  if (w.group_size % kInt4Span == 0 && (isa == Isa::Avx512Vnni || isa == Isa::Amx)) kernel = &int4_blocks_avx512;
  if (w.group_size % kInt4Span == 0 && isa == Isa::Avx2) kernel = &int4_blocks_avx2;
#endif
  if (kernel == &int4_blocks_ref) isa = Isa::Ref;
  // Group sums of x: on the stack for the lab's layers (a heap allocation costs as much as their product).
  constexpr int64_t kStackSums = 512;
  float stack_sums[kStackSums];
  std::vector<float> heap_sums;
  float* xsum = stack_sums;
  if (m * w.groups > kStackSums) {
    heap_sums.resize(static_cast<size_t>(m * w.groups));
    xsum = heap_sums.data();
  }
  for (int64_t r = 0; r < m; ++r)
    for (int64_t g = 0; g < w.groups; ++g) {
      const float* xg = x + r * w.k + g * w.group_size;
      float s = 0.0f;
      for (int64_t i = 0; i < w.group_size; ++i) s += xg[i];
      xsum[r * w.groups + g] = s;
    }
  Int4Call call;
  call.w = &w;
  call.x = x;
  call.xsum = xsum;
  call.m = m;
  call.out = out;
  // Tasks of 4 blocks (64 output rows); one thread (no OpenMP region) below kMinParallelWork.
  const int64_t per_task = 4, tasks = (w.blocks + per_task - 1) / per_task;
  if (static_cast<double>(m) * w.n * w.k < kMinParallelWork) threads = 1;
  parallel_tasks(tasks, threads, [&](int, int64_t t) {
    kernel(call, t * per_task, std::min(w.blocks, (t + 1) * per_task));
  });
  return isa;
}

}  // namespace labkit
