// The int4 weight-only driver (int4.h): x in the order of the codes, its group sums, the scalar
// path, and the split of the output columns over threads.
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

}  // namespace labkit
