// The generic (ISA-independent) half of the kernels: CPU dispatch, packed weights, the threaded
// GEMM driver and the ops built on it. Arguments are trusted here: int8.cpp validates them.
// Arithmetic: labkit/kernels/reference.py, module docstring.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "int8.h"

namespace labkit {

// ---- CPU dispatch ---------------------------------------------------------------------------
bool isa_available(Isa isa);         // the CPU (and for AMX the OS) has it, LABKIT_HIDE_ISA does not hide it
bool isa_hidden(Isa isa);            // named in LABKIT_HIDE_ISA (a test-only switch, read once)
std::string isa_unavailable_reason(Isa isa);  // why not ("" when available), for error messages
std::vector<Isa> available_isas();   // in increasing order of speed
Isa current_isa();                   // forced by set_isa, else the fastest available
void set_isa(Isa isa);               // the caller checks isa_available first
bool parse_isa(const std::string& name, Isa* out);
Blocking& blocking(Isa isa);         // cache blocking, tunable for benchmarks

// What the CPU and the OS say about AMX (dispatch.cpp asks them once), and the reason refused.
struct AmxFacts {
  bool built = false;          // compiled with the AMX kernels
  bool cpu_amx = false;        // CPUID: AMX-TILE and AMX-INT8
  bool cpu_vnni = false;       // AVX-512 VNNI (the AMX path packs and requantizes with it)
  bool os_tile_state = false;  // XCR0 has XTILECFG and XTILEDATA
  int permission_error = 0;    // errno of arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), 0: granted
};
std::string amx_problem(const AmxFacts& facts);  // "" when AMX can run

// ---- threads (OpenMP, optional) -------------------------------------------------------------
// The module also builds without OpenMP (setup.py retries without -fopenmp): the `#pragma omp`
// lines are then ignored and everything runs on the calling thread.
constexpr int kMaxThreads = 256;     // set_num_threads accepts 1 .. kMaxThreads
int num_threads();                   // set_num_threads, else omp_get_max_threads() (at most kMaxThreads)
void set_num_threads(int n);         // the caller checks 1 <= n <= kMaxThreads
int thread_index();                  // omp_get_thread_num(): 0 .. threads - 1 inside parallel_tasks
// Multiply-adds below which an op runs on one thread (a fork/join costs microseconds).
constexpr double kMinParallelWork = 1 << 20;

// `threads`, but no more than there are work items: a thread with nothing to do only costs.
inline int threads_for(int64_t items, int threads) {
  return items < threads ? static_cast<int>(items < 1 ? 1 : items) : threads;
}

// The first exception thrown by any task of an OpenMP region, rethrown after it: an exception must
// never leave an OpenMP region (the runtime would call std::terminate and abort Python), so it is
// caught, the remaining tasks are skipped, and the caller rethrows it.
class TaskErrors {
 public:
  template <typename Body>
  void run(Body& body, int thread, int64_t t) {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      body(thread, t);
    } catch (...) {
#pragma omp critical(labkit_parallel_error)
      {
        if (!error_) error_ = std::current_exception();
      }
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  void rethrow() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
};

// body(thread, t) for every task t in [0, tasks), on at most `threads` OpenMP threads (dynamic
// schedule), `thread` in [0, threads) indexing per-thread buffers the caller allocated beforehand.
template <typename Body>
void parallel_tasks(int64_t tasks, int threads, Body&& body) {
  threads = threads_for(tasks, threads);
  if (threads == 1) {  // no OpenMP region at all: exceptions propagate as usual
    for (int64_t t = 0; t < tasks; ++t) body(0, t);
    return;
  }
  TaskErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < tasks; ++t) errors.run(body, thread_index(), t);
  errors.rethrow();
}

// first(thread, t) for t in [0, first_tasks), then, once all of them are done, body(thread, t) for
// t in [0, tasks): two parallel_tasks in one OpenMP region (one fork/join, a barrier between).
template <typename First, typename Body>
void parallel_tasks_after(int64_t first_tasks, First&& first, int64_t tasks, int threads, Body&& body) {
  threads = threads_for(tasks, threads);
  if (threads == 1) {
    for (int64_t t = 0; t < first_tasks; ++t) first(0, t);
    for (int64_t t = 0; t < tasks; ++t) body(0, t);
    return;
  }
  TaskErrors errors;
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < first_tasks; ++t) errors.run(first, thread_index(), t);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) errors.run(body, thread_index(), t);
  }
  errors.rethrow();
}

// ---- 64-byte aligned storage ----------------------------------------------------------------
struct FreeDeleter { void operator()(void* p) const { std::free(p); } };
using AlignedBuffer = std::unique_ptr<void, FreeDeleter>;
AlignedBuffer aligned_buffer(size_t bytes);

// ---- weights w int8 [N, K], packed for each ISA that is asked for ------------------------------
class PackedWeights {
 public:
  // Owns `rows` (w row-major, n * k bytes): layers that outlive the caller's array (PackedLinear,
  // PackedConv2d). The packed layouts get their own memory.
  PackedWeights(std::vector<int8_t> rows, int64_t n, int64_t k);
  // Borrows w, which must outlive this object: the one-call ops (gemm_u8s8s32, qlinear). Their
  // packed layout lives in a work buffer that the calling thread keeps from call to call (no
  // allocation or page faults per call; nothing about w is remembered). One at a time per thread.
  // (On AMX they mostly do not pack w as a whole: dispatch.cpp, amx_unpacked.)
  PackedWeights(const int8_t* w, int64_t n, int64_t k);
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;

  // What prepare() should make ready: the layout of an ISA, the row sums, or both.
  static constexpr int kLayout = 1, kSums = 2;
  // Packs w for `isa` and/or computes its row sums (with the ISA's SIMD code), whichever `what`
  // asks for and is not done yet: one pass over w by panels (the SIMD packers add up the row sums
  // from the registers they transpose anyway), split over `threads` threads when w is large.
  // Thread-safe.
  void prepare(Isa isa, int what, int threads);
  const PackedLayout& layout(Isa isa) const { return layouts_[slot(isa)]; }  // after prepare(isa, kLayout)
  const int32_t* row_sums() const { return row_sum_.data(); }          // sum_k w[n,k]   (after kSums)
  const int32_t* abs_row_sums() const { return abs_row_sum_.data(); }  // sum_k |w[n,k]| (after kSums)
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  bool borrowed() const { return borrowed_; }
  const int8_t* rows() const { return rows_; }                          // w, row-major

 private:
  // AMX tiles read the VNNI layout: both ISAs share one.
  static int slot(Isa isa) { return static_cast<int>(isa == Isa::Amx ? Isa::Avx512Vnni : isa); }
  int64_t n_, k_;
  std::vector<int8_t> own_rows_;
  const int8_t* rows_;
  bool borrowed_;
  std::vector<int32_t> row_sum_, abs_row_sum_;  // empty until computed
  std::mutex mutex_;
  PackedLayout layouts_[kNumIsas];
  AlignedBuffer storage_[kNumIsas];
};

// Requantization parameters, one entry per output column (per-tensor values repeated).
struct RequantParams {
  std::vector<int32_t> multiplier, shift;  // length N
  int32_t out_zero_point = 0;
  bool relu = false;
};

// Per-column epilogue arrays, padded to a multiple of 64 columns (the SIMD code loads 16 at a
// time), plus the same repeated for dense narrow outputs (see Epilogue::flat_period).
struct ColumnArrays {
  ColumnArrays(int64_t n, const RequantParams& rq);
  void build_flat();  // after `offset` is final
  Epilogue epilogue(uint8_t* out, int64_t ldc, bool with_offset) const;
  int64_t n;
  std::vector<int32_t> offset, multiplier, left_shift, right_shift;
  std::vector<int32_t> flat_offset, flat_multiplier, flat_left_shift, flat_right_shift;
  int64_t flat_period = 0;
  int32_t out_zero_point = 0, out_min = 0;
  bool any_left_shift = false;
};

// A fused quantized linear layer ready to run on any number of activation matrices (the
// convolution runs one per image): weights, bias, zero-point correction and requantization.
class LinearPlan {
 public:
  // Computes w's row sums first if needed (w.prepare(isa, kSums, threads)).
  LinearPlan(PackedWeights& w, const int32_t* bias, int32_t x_zero_point, const RequantParams& rq, Isa isa,
             int threads);
  // out[m, n] (row stride ldc) = requantize(sum_k (a[m,k] - x_zp) w[n,k] + bias[n]), a row stride lda.
  // Packs w for isa first if needed (call w.prepare(isa, kLayout, ...) before running from threads).
  void run(const uint8_t* a, int64_t m, int64_t lda, uint8_t* out, int64_t ldc, Isa isa, int threads) const;
  bool fits() const { return fits_; }
  // Per-channel parameters indexed by output channel (for conv_pixels_vnni).
  Epilogue channel_epilogue() const { return columns_.epilogue(nullptr, 0, true); }

 private:
  PackedWeights* w_;
  const int32_t* bias_;
  int32_t x_zero_point_;
  ColumnArrays columns_;
  bool fits_ = true;  // the int32 column offsets are exact (else: int64 accumulators, saturated)
};

// ---- ops (outputs are preallocated, C-contiguous) -------------------------------------------
// out[m, n] = sum_k a[m, k] * w[n, k]
void gemm_s32(const uint8_t* a, int64_t m, PackedWeights& w, int32_t* out, Isa isa, int threads);
// out[m, n] = requantize(sum_k (a[m,k] - x_zero_point) * w[n,k] + bias[n])   (bias may be null)
void linear_u8(const uint8_t* a, int64_t m, PackedWeights& w, const int32_t* bias,
               int32_t x_zero_point, const RequantParams& rq, uint8_t* out, int64_t ldc, Isa isa,
               int threads);
// out[r, c] = requantize(acc[r, c]) with the parameters of column c
void requantize_s32(const int32_t* acc, int64_t rows, int64_t cols, const RequantParams& rq,
                    uint8_t* out, Isa isa, int threads);
std::pair<int32_t, int> quantize_multiplier(double real);  // throws std::invalid_argument

// Bounds on the convolution and pooling arguments (api.py checks the same first). They keep every
// size computed from them far inside int64, and refuse work buffers no lab machine could hold.
constexpr int64_t kMaxStride = 1 << 16, kMaxPadding = 1 << 16, kMaxPoolKernel = 1 << 16;
constexpr int64_t kMaxImageBytes = int64_t{1} << 30;  // one padded image; one image's im2col rows

struct ConvGeometry {
  int64_t batch, channels, height, width;     // input  [batch, channels, height, width]
  int64_t out_channels, kernel_h, kernel_w;   // weights [out_channels, channels, kernel_h, kernel_w]
  int64_t stride_h, stride_w, pad_h, pad_w;
  int64_t out_h() const { return (height + 2 * pad_h - kernel_h) / stride_h + 1; }
  int64_t out_w() const { return (width + 2 * pad_w - kernel_w) / stride_w + 1; }
};
// NCHW uint8 input, OIHW int8 weights (packed as [O, C*KH*KW]), NCHW uint8 output.
void conv2d_u8(const uint8_t* x, const ConvGeometry& geo, PackedWeights& w, const int32_t* bias,
               int32_t x_zero_point, const RequantParams& rq, uint8_t* out, Isa isa, int threads);
void maxpool2d_u8(const uint8_t* x, int64_t planes, int64_t height, int64_t width, int64_t kernel_h,
                  int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                  uint8_t* out, int threads);

// Benchmark helpers: seconds for `iterations` rounds of register-only multiply-adds of an ISA (12
// vpdpbusd, 6 vpmaddwd, or 4 tdpbusd on resident tiles; *ops = the int8 operations done), and the
// core clock measured with a chain of dependent integer multiplications.
double probe_peak_seconds(Isa isa, int64_t iterations, double* ops);
double measure_clock_hz();

}  // namespace labkit
