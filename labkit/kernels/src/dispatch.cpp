// CPU dispatch, weight packing and the threaded GEMM driver (no intrinsics in this file).
// Arithmetic: labkit/kernels/reference.py, module docstring.
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "driver.h"
#include "requant.h"

namespace labkit {

// ---- CPU dispatch ---------------------------------------------------------------------------
const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Ref: return "ref";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512vnni";
  }
  return "?";
}

bool parse_isa(const std::string& name, Isa* out) {
  for (int i = 0; i < kNumIsas; ++i) {
    if (name == isa_name(static_cast<Isa>(i))) {
      *out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

// LABKIT_HIDE_ISA=avx512vnni,avx2 (for tests): treat the ISAs listed as missing from this CPU, so
// that refusing a forced ISA and falling back to a slower one can be tested on any machine.
bool isa_hidden(Isa isa) {
  static const std::string hidden = [] {  // ",name,name," without spaces, read once
    const char* value = std::getenv("LABKIT_HIDE_ISA");
    std::string list = "," + std::string(value ? value : "") + ",";
    list.erase(std::remove_if(list.begin(), list.end(), [](unsigned char c) { return std::isspace(c); }),
               list.end());
    return list;
  }();
  if (isa == Isa::Ref) return false;  // the scalar path is the fallback: never hidden
  return hidden.find("," + std::string(isa_name(isa)) + ",") != std::string::npos;
}

static bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::Ref: return true;
#ifdef LABKIT_X86
    // __builtin_cpu_supports also checks that the OS saves the ymm/zmm registers (XCR0).
    case Isa::Avx2: return __builtin_cpu_supports("avx2");
    case Isa::Avx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
#endif
    default: return false;
  }
}

bool isa_available(Isa isa) { return cpu_supports(isa) && !isa_hidden(isa); }

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (int i = 0; i < kNumIsas; ++i)
    if (isa_available(static_cast<Isa>(i))) out.push_back(static_cast<Isa>(i));
  return out;
}

static std::atomic<int> g_isa{-1};
static std::atomic<int> g_threads{0};

Isa current_isa() {
  const int forced = g_isa.load();
  static const Isa fastest = available_isas().back();  // the CPU and LABKIT_HIDE_ISA never change
  return forced >= 0 ? static_cast<Isa>(forced) : fastest;
}
void set_isa(Isa isa) { g_isa.store(static_cast<int>(isa)); }

int num_threads() {
  const int n = g_threads.load();
  if (n > 0) return n;
#ifdef _OPENMP
  return std::min(omp_get_max_threads(), kMaxThreads);
#else
  return 1;
#endif
}
void set_num_threads(int n) { g_threads.store(n); }

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

Blocking& blocking(Isa isa) {
  // kc: bytes of K per block (partial sums in scratch beyond it); mc x nc: one task.
  static Blocking table[kNumIsas] = {{1 << 30, 64, 64}, {512, 96, 128}, {1024, 144, 256}};
  return table[static_cast<int>(isa)];
}

AlignedBuffer aligned_buffer(size_t bytes) {
  const size_t rounded = ((bytes + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, rounded > 0 ? rounded : 64);
  if (!p) throw std::bad_alloc();
  return AlignedBuffer(p);
}

// ---- packed weights -------------------------------------------------------------------------
PackedWeights::PackedWeights(const int8_t* w, int64_t n, int64_t k)
    : n_(n), k_(k), w_(w, w + n * k), row_sum_(n), abs_row_sum_(n) {
  for (int64_t i = 0; i < n; ++i) {
    int64_t sum = 0, abs_sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      sum += w[i * k + j];
      abs_sum += w[i * k + j] < 0 ? -w[i * k + j] : w[i * k + j];
    }
    row_sum_[i] = static_cast<int32_t>(sum);  // |sum| <= 128 * 65536
    abs_row_sum_[i] = abs_sum;
  }
}

const PackedLayout& PackedWeights::layout(Isa isa) {
  std::lock_guard<std::mutex> lock(mutex_);
  PackedLayout& L = layouts_[static_cast<int>(isa)];
  if (L.data) return L;
  L.isa = isa;
  L.n = n_;
  L.k = k_;
  int64_t elem = 1;
  switch (isa) {
    case Isa::Ref: L.panel_width = 1; L.k_per_group = 1; break;
    case Isa::Avx2: L.panel_width = 8; L.k_per_group = 2; elem = 2; break;
    case Isa::Avx512Vnni: L.panel_width = 16; L.k_per_group = 4; break;
  }
  L.groups = (k_ + L.k_per_group - 1) / L.k_per_group;
  L.panels = (n_ + L.panel_width - 1) / L.panel_width;
  L.panel_bytes = L.groups * L.panel_width * L.k_per_group * elem;
  AlignedBuffer& buf = storage_[static_cast<int>(isa)];
  buf = aligned_buffer(static_cast<size_t>(L.panels * L.panel_bytes));
  const int64_t pw = L.panel_width, kg = L.k_per_group, groups = L.groups, nn = n_, kk = k_;
  const int8_t* w = w_.data();
  char* base = static_cast<char*>(buf.get());
  // data[panel][group][column in panel][k in group]; zero outside [0, N) x [0, K).
  const int threads = nn * kk > (1 << 20) ? num_threads() : 1;
  parallel_tasks(L.panels, threads, [&](int, int64_t p) {
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t c = 0; c < pw; ++c) {
        for (int64_t j = 0; j < kg; ++j) {
          const int64_t row = p * pw + c, col = g * kg + j;
          const int8_t v = (row < nn && col < kk) ? w[row * kk + col] : 0;
          const int64_t idx = ((p * groups + g) * pw + c) * kg + j;
          if (elem == 2)
            reinterpret_cast<int16_t*>(base)[idx] = v;
          else
            reinterpret_cast<int8_t*>(base)[idx] = v;
        }
      }
    }
  });
  L.data = buf.get();
  return L;
}

// ---- the threaded driver --------------------------------------------------------------------
namespace {

struct IsaOps {
  TileFn tile;
  RequantFn requant;
  int64_t tile_unit;  // columns per register block (a tile width is a multiple of it)
};

IsaOps ops_for(Isa isa) {
  switch (isa) {
#ifdef LABKIT_X86
    case Isa::Avx2: return {&tile_avx2, &requantize_rows_avx2, 16};
    case Isa::Avx512Vnni: return {&tile_vnni, &requantize_rows_vnni, 64};
#endif
    default: return {&tile_ref, &requantize_rows_ref, 1};
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Split C[M, N] into tiles of at most mc x nc and run them on `threads` OpenMP threads.
void run_tiles(const GemmArgs& g, Isa isa, int threads) {
  const IsaOps ops = ops_for(isa);
  Blocking blk = blocking(isa);
  const int64_t m = g.m, n = g.b->n, k = g.b->k;
  const int64_t unit = ops.tile_unit;
  int64_t mc = m < blk.mc ? m : blk.mc;
  int64_t nc = round_up(n < blk.nc ? n : blk.nc, unit);
  if (static_cast<double>(m) * n * k < kMinParallelWork) threads = 1;  // too small to share
  // At least two tasks per thread where the matrix allows it: narrow the tiles, then shorten.
  while (threads > 1 && ceil_div(m, mc) * ceil_div(n, nc) < 2 * threads && nc > unit)
    nc = round_up(nc / 2, unit);
  while (threads > 1 && ceil_div(m, mc) * ceil_div(n, nc) < 2 * threads && mc > 8)
    mc = round_up(mc / 2, 8);
  blk.mc = mc;
  blk.nc = nc;
  const int64_t tiles_m = ceil_div(m, mc), tiles_n = ceil_div(n, nc);
  const int64_t tiles = tiles_m * tiles_n;
  const bool needs_scratch = k > blk.kc;
  const size_t scratch_ints = needs_scratch ? static_cast<size_t>(mc * round_up(nc, 64)) : 0;
#ifdef LABKIT_X86
  const size_t pack_bytes = isa == Isa::Avx2 ? static_cast<size_t>(pack_buffer_bytes_avx2(blk)) : 0;
#else
  const size_t pack_bytes = 0;
#endif
  threads = threads_for(tiles, threads);

  // Work space for each thread, allocated here, outside the parallel region.
  std::vector<std::vector<int32_t>> scratch(static_cast<size_t>(threads), std::vector<int32_t>(scratch_ints));
  std::vector<AlignedBuffer> pack(static_cast<size_t>(threads));
  for (AlignedBuffer& buffer : pack)
    if (pack_bytes) buffer = aligned_buffer(pack_bytes);
  parallel_tasks(tiles, threads, [&](int thread, int64_t t) {
    const int64_t m0 = t / tiles_n * mc, n0 = t % tiles_n * nc;
    ops.tile(g, blk, m0, std::min(m0 + mc, m), n0, std::min(n0 + nc, n), scratch[thread].data(),
             pack[thread].get());
  });
}

}  // namespace

// ---- per-column epilogue arrays, fused linear layers ------------------------------------------
ColumnArrays::ColumnArrays(int64_t n, const RequantParams& rq) : n(n) {
  const size_t padded = static_cast<size_t>(round_up(n, 64));
  offset.assign(padded, 0);
  multiplier.assign(padded, 1 << 30);
  left_shift.assign(padded, 0);
  right_shift.assign(padded, 0);
  for (int64_t i = 0; i < n; ++i) {
    multiplier[i] = rq.multiplier[i];
    left_shift[i] = rq.shift[i] > 0 ? rq.shift[i] : 0;
    right_shift[i] = rq.shift[i] > 0 ? 0 : -rq.shift[i];
    any_left_shift = any_left_shift || rq.shift[i] > 0;
  }
  out_zero_point = rq.out_zero_point;
  out_min = rq.relu ? rq.out_zero_point : 0;
}

void ColumnArrays::build_flat() {
  // Narrow outputs (n < 16) stored densely: element f of a run of rows belongs to column f % n, so
  // the parameters repeat with period lcm(n, 16); 16 extra entries let SIMD loads start anywhere.
  if (n >= 16) return;
  int64_t g = 16;
  for (int64_t a = n, b = 16; b != 0;) { const int64_t t = a % b; a = b; b = t; g = a; }
  flat_period = n * 16 / g;
  const size_t len = static_cast<size_t>(flat_period + 16);
  flat_offset.resize(len);
  flat_multiplier.resize(len);
  flat_left_shift.resize(len);
  flat_right_shift.resize(len);
  for (size_t i = 0; i < len; ++i) {
    const size_t c = i % static_cast<size_t>(n);
    flat_offset[i] = offset[c];
    flat_multiplier[i] = multiplier[c];
    flat_left_shift[i] = left_shift[c];
    flat_right_shift[i] = right_shift[c];
  }
}

Epilogue ColumnArrays::epilogue(uint8_t* out, int64_t ldc, bool with_offset) const {
  Epilogue ep;
  ep.requantize = true;
  ep.out8 = out;
  ep.ldc = ldc;
  ep.col_offset = with_offset ? offset.data() : nullptr;
  ep.multiplier = multiplier.data();
  ep.left_shift = left_shift.data();
  ep.right_shift = right_shift.data();
  ep.out_zero_point = out_zero_point;
  ep.out_min = out_min;
  ep.any_left_shift = any_left_shift;
  if (flat_period > 0 && ldc == n && with_offset) {
    ep.flat_period = flat_period;
    ep.flat_offset = flat_offset.data();
    ep.flat_multiplier = flat_multiplier.data();
    ep.flat_left_shift = flat_left_shift.data();
    ep.flat_right_shift = flat_right_shift.data();
  }
  return ep;
}

LinearPlan::LinearPlan(PackedWeights& w, const int32_t* bias, int32_t x_zero_point, const RequantParams& rq)
    : w_(&w), bias_(bias), x_zero_point_(x_zero_point), columns_(w.n(), rq) {
  // Step 2: acc = sum_k a*w - x_zp * sum_k w + bias. The int32 column offset is exact when the
  // true accumulator cannot leave int32 (always, unless |bias| is near 2^31); otherwise run()
  // takes the int64 path, which saturates like reference.py.
  const int64_t x_span = x_zero_point > 255 - x_zero_point ? x_zero_point : 255 - x_zero_point;
  for (int64_t i = 0; i < w.n(); ++i) {
    const int64_t b = bias ? bias[i] : 0;
    const int64_t offset = b - int64_t{x_zero_point} * w.row_sums()[i];
    columns_.offset[i] = static_cast<int32_t>(static_cast<uint32_t>(offset));  // wraps: see requant.h
    if ((b < 0 ? -b : b) + x_span * w.abs_row_sums()[i] > std::numeric_limits<int32_t>::max()) fits_ = false;
  }
  columns_.build_flat();
}

void LinearPlan::run(const uint8_t* a, int64_t m, int64_t lda, uint8_t* out, int64_t ldc, Isa isa,
                     int threads) const {
  PackedWeights& w = *w_;
  const int64_t n = w.n();
  if (fits_) {
    GemmArgs g;
    g.a = a;
    g.lda = lda;
    g.m = m;
    g.b = &w.layout(isa);
    g.ep = columns_.epilogue(out, ldc, true);
    run_tiles(g, isa, threads);
    return;
  }
  std::vector<int32_t> sums(static_cast<size_t>(m * n));
  GemmArgs g;
  g.a = a;
  g.lda = lda;
  g.m = m;
  g.b = &w.layout(isa);
  g.ep.out32 = sums.data();
  g.ep.ldc = n;
  run_tiles(g, isa, threads);
  const Epilogue ep = columns_.epilogue(out, ldc, false);
  parallel_tasks(m, threads, [&](int, int64_t r) {
    for (int64_t c = 0; c < n; ++c) {
      const int64_t exact = int64_t{sums[r * n + c]} - int64_t{x_zero_point_} * w.row_sums()[c] +
                            (bias_ ? bias_[c] : 0);
      const int32_t scaled = multiply_by_quantized_multiplier(
          saturate_int32(exact), ep.multiplier[c], ep.left_shift[c], ep.right_shift[c]);
      out[r * ldc + c] = clamp_to_u8(scaled, ep.out_zero_point, ep.out_min);
    }
  });
}

void gemm_s32(const uint8_t* a, int64_t m, PackedWeights& w, int32_t* out, Isa isa, int threads) {
  GemmArgs g;
  g.a = a;
  g.lda = w.k();
  g.m = m;
  g.b = &w.layout(isa);
  g.ep.out32 = out;
  g.ep.ldc = w.n();
  if (w.n() < 16) g.ep.flat_period = 16;  // dense rows: the int32 stores need no parameters
  run_tiles(g, isa, threads);
}

void linear_u8(const uint8_t* a, int64_t m, PackedWeights& w, const int32_t* bias,
               int32_t x_zero_point, const RequantParams& rq, uint8_t* out, int64_t ldc, Isa isa,
               int threads) {
  LinearPlan(w, bias, x_zero_point, rq).run(a, m, w.k(), out, ldc, isa, threads);
}

void requantize_s32(const int32_t* acc, int64_t rows, int64_t cols, const RequantParams& rq,
                    uint8_t* out, Isa isa, int threads) {
  const ColumnArrays columns(cols, rq);
  const Epilogue ep = columns.epilogue(out, cols, false);
  const RequantFn fn = ops_for(isa).requant;
  const int64_t chunk = 64;  // rows per task
  if (static_cast<double>(rows) * cols < (1 << 16)) threads = 1;
  parallel_tasks((rows + chunk - 1) / chunk, threads, [&](int, int64_t t) {
    const int64_t r0 = t * chunk;
    Epilogue mine = ep;
    mine.out8 = out + r0 * cols;
    fn(acc + r0 * cols, std::min(chunk, rows - r0), cols, mine);
  });
}

std::pair<int32_t, int> quantize_multiplier(double real) {
  if (!std::isfinite(real) || real <= 0.0)
    throw std::invalid_argument("real_multiplier must be a finite number > 0");
  int shift = 0;
  const double q = std::frexp(real, &shift);  // real = q * 2^shift, q in [0.5, 1)
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(int64_t{1} << 31)));
  if (q_fixed == (int64_t{1} << 31)) {  // q rounded up to 1.0
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31 || shift > 30) {
    char text[32];  // %.17g: every double in full (std::to_string prints 1e-40 as 0.000000)
    std::snprintf(text, sizeof text, "%.17g", real);
    throw std::invalid_argument(
        "real_multiplier must lie in [2**-32, 2**30) so that the shift fits in [-31, 30], got " +
        std::string(text));
  }
  return {static_cast<int32_t>(q_fixed), shift};
}

// ---- benchmark helpers ----------------------------------------------------------------------
double probe_peak_seconds(Isa isa, int64_t iterations, double* ops) {
  const auto t0 = std::chrono::steady_clock::now();
  volatile int32_t sink = 0;
  *ops = 0;
#ifdef LABKIT_X86
  if (isa == Isa::Avx512Vnni) {
    sink = probe_peak_vnni(iterations);
    *ops = 12.0 * 128.0 * static_cast<double>(iterations);
  } else if (isa == Isa::Avx2) {
    sink = probe_peak_avx2(iterations);
    *ops = 6.0 * 32.0 * static_cast<double>(iterations);
  }
#endif
  (void)sink;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double measure_clock_hz() {
#ifdef LABKIT_X86
  // 100 dependent additions per round, one cycle each; the best of many short runs (a busy
  // machine interrupts some of them).
  double best = 0;
  for (int run = 0; run < 30; ++run) {
    const int64_t rounds = 100000;
    int64_t x = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < rounds; ++i) {
#define LK_ADD10 "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t" \
                 "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
      __asm__ volatile(LK_ADD10 LK_ADD10 LK_ADD10 LK_ADD10 LK_ADD10 LK_ADD10 LK_ADD10 LK_ADD10
                           LK_ADD10 LK_ADD10
                       : "+r"(x));
#undef LK_ADD10
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double hz = 100.0 * static_cast<double>(rounds) / s;
    if (hz > best) best = hz;
  }
  return best;
#else
  return 0.0;
#endif
}

}  // namespace labkit
