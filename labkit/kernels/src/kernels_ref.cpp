// The scalar path (LABKIT_ISA=ref): the integer GEMM and requantization written as plain loops.
// Arithmetic: labkit/kernels/reference.py, module docstring. Weights are w itself, row-major.
#include "int8.h"
#include "requant.h"

namespace labkit {

// Steps 2-4 of reference.py for one finished sum of column n.
static inline uint8_t requantize_sum(int32_t sum, int64_t n, const Epilogue& ep) {
  const int32_t acc = ep.col_offset ? wrapping_add(sum, ep.col_offset[n]) : sum;
  const int32_t scaled = multiply_by_quantized_multiplier(acc, ep.multiplier[n], ep.left_shift[n],
                                                          ep.right_shift[n]);
  return clamp_to_u8(scaled, ep.out_zero_point, ep.out_min);
}

void tile_ref(const GemmArgs& g, const Blocking&, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
              int32_t*, void*) {
  const int8_t* w = static_cast<const int8_t*>(g.b->data);
  const int64_t k_size = g.b->k;
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* a_row = g.a + m * g.lda;
    for (int64_t n = n0; n < n1; ++n) {
      const int8_t* w_row = w + n * k_size;
      int32_t sum = 0;  // exact: |sum| <= 255 * 128 * 65536 < 2^31 (reference.py, step 1)
      for (int64_t k = 0; k < k_size; ++k) sum += int32_t{a_row[k]} * int32_t{w_row[k]};
      if (g.ep.requantize)
        g.ep.out8[m * g.ep.ldc + n] = requantize_sum(sum, n, g.ep);
      else
        g.ep.out32[m * g.ep.ldc + n] = sum;
    }
  }
}

void requantize_rows_ref(const int32_t* acc, int64_t rows, int64_t cols, const Epilogue& ep) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) ep.out8[r * ep.ldc + c] = requantize_sum(acc[r * cols + c], c, ep);
}

void row_sums_ref(const int8_t* w, int64_t k, int64_t r0, int64_t r1, int32_t* sums, int32_t* abs_sums) {
  for (int64_t r = r0; r < r1; ++r) {
    int32_t sum = 0, abs_sum = 0;  // |sum| <= 128 * 65536 < 2^31
    for (int64_t j = 0; j < k; ++j) {
      sum += w[r * k + j];
      abs_sum += w[r * k + j] < 0 ? -w[r * k + j] : w[r * k + j];
    }
    sums[r] = sum;
    abs_sums[r] = abs_sum;
  }
}

}  // namespace labkit
