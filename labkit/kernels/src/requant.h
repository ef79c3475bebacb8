// The scalar fixed-point arithmetic of TFLite / gemmlowp, exactly as documented in the docstring of
// labkit/kernels/reference.py (steps 3 and 4). The SIMD epilogues compute the same integers.
#pragma once

#include <cstdint>
#include <limits>

namespace labkit {

// round(a * b / 2^31), ties toward +infinity; saturates the single overflowing case a = b = -2^31.
// (gemmlowp: nudge = 2^30 or 1 - 2^30 by sign, then C division truncating toward zero; both
//  branches equal floor((a*b + 2^30) / 2^31), which is what the SIMD code uses.)
inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::max();
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : (int64_t{1} - (int64_t{1} << 30));
  return static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
}

// x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31].
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// x * 2^left_shift, saturated to int32 (TFLite multiplies in int32 here: undefined on overflow).
inline int32_t saturating_left_shift(int32_t x, int left_shift) {
  const int64_t wide = static_cast<int64_t>(x) * (int64_t{1} << left_shift);
  if (wide > std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  if (wide < std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(wide);
}

// TFLite's MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), two roundings.
inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int left_shift,
                                                int right_shift) {
  return rounding_divide_by_pot(
      saturating_rounding_doubling_high_mul(saturating_left_shift(x, left_shift), multiplier),
      right_shift);
}

// Step 4e: add the output zero point and clamp to [out_min, 255].
inline uint8_t clamp_to_u8(int32_t scaled, int32_t out_zero_point, int32_t out_min) {
  int64_t q = static_cast<int64_t>(scaled) + out_zero_point;
  if (q < out_min) q = out_min;
  if (q > 255) q = 255;
  return static_cast<uint8_t>(q);
}

// Saturate an exact int64 accumulator to int32 (step 2).
inline int32_t saturate_int32(int64_t v) {
  if (v > std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  if (v < std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(v);
}

}  // namespace labkit

namespace labkit {

// a + b modulo 2^32. Used to add the column offset: the dispatcher only takes this path when the
// exact sum fits in int32, and then the wrapped result is the exact one.
inline int32_t wrapping_add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

}  // namespace labkit
