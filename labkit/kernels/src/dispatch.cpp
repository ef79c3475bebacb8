// CPU dispatch, weight packing and the threaded GEMM driver (no intrinsics in this file).
// Arithmetic: labkit/kernels/reference.py, module docstring.
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "driver.h"
#include "requant.h"

#ifdef LABKIT_X86
#include <cpuid.h>
#endif
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace labkit {

// ---- CPU dispatch ---------------------------------------------------------------------------
const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Ref: return "ref";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512vnni";
    case Isa::Amx: return "amx";
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

// LABKIT_HIDE_ISA=amx,avx512vnni,avx2 (for tests): treat the ISAs listed as missing from this CPU, so
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

// Why the AMX path cannot run, from what the CPU and the OS say ("" when it can): see amx_facts.
std::string amx_problem(const AmxFacts& f) {
  if (!f.built)
    return "this build of labkit has no AMX kernels (its compiler lacks the AMX intrinsics: GCC >= 11 or "
           "clang >= 12 needed)";
  if (!f.cpu_amx) return "this CPU lacks amx_int8 (AMX tile instructions: Intel Xeon Sapphire Rapids and later)";
  if (!f.cpu_vnni) return "this CPU lacks AVX-512 VNNI, which the AMX path uses to pack and requantize";
  if (!f.os_tile_state) return "the OS does not enable the AMX tile state (XSAVE with XCR0 bits XTILECFG, XTILEDATA)";
  if (f.permission_error != 0)
    return std::string("the OS refused the permission to use AMX tile data (arch_prctl(ARCH_REQ_XCOMP_PERM, "
                       "XFEATURE_XTILEDATA) failed: ") + std::strerror(f.permission_error) +
           "; Linux grants it from 5.16 on)";
  return "";
}

static bool cpu_supports(Isa isa);

// What the CPU and the OS say about AMX, asked once. The CPU must have AMX-TILE and AMX-INT8
// (CPUID leaf 7: EDX bits 24, 25) and AVX-512 VNNI (packing, epilogue); the OS must save the tile
// state (XCR0 bits 17, 18: XTILECFG, XTILEDATA) and, on Linux, grant this process the permission
// to use the 8 KiB of tile data: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), which is
// process-wide (every thread). Without it the first tile instruction would kill the process.
static AmxFacts amx_facts() {
  AmxFacts f;
#if defined(LABKIT_X86) && defined(LABKIT_HAVE_AMX)
  f.built = true;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  f.cpu_amx = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (edx & (1u << 24)) && (edx & (1u << 25));
  f.cpu_vnni = cpu_supports(Isa::Avx512Vnni);
  if (f.cpu_amx && __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 27))) {  // OSXSAVE
    uint32_t xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    f.os_tile_state = (xcr0_lo & (3u << 17)) == (3u << 17);
  }
  if (f.cpu_amx && f.cpu_vnni && f.os_tile_state) {
#ifdef __linux__
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) f.permission_error = errno;
#else
    f.os_tile_state = false;  // labkit asks for the permission on Linux only
#endif
  }
#endif
  return f;
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

// The CPU/OS verdict on AMX, decided once (the first call asks the OS for the permission).
static const std::string& amx_verdict() {
  static const std::string verdict = amx_problem(amx_facts());
  return verdict;
}

std::string isa_unavailable_reason(Isa isa) {
  if (isa_hidden(isa)) return "hidden by LABKIT_HIDE_ISA";
  if (isa == Isa::Amx) return amx_verdict();
  return cpu_supports(isa) ? "" : "this CPU lacks it";
}

// Hidden first: LABKIT_HIDE_ISA=amx never asks the OS for the AMX permission.
bool isa_available(Isa isa) { return isa_unavailable_reason(isa).empty(); }

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
  static Blocking table[kNumIsas] = {{1 << 30, 64, 64}, {512, 96, 128}, {1024, 144, 256}, {512, 32, 1024}};
  return table[static_cast<int>(isa)];
}

AlignedBuffer aligned_buffer(size_t bytes) {
  const size_t rounded = ((bytes + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, rounded > 0 ? rounded : 64);
  if (!p) throw std::bad_alloc();
  return AlignedBuffer(p);
}

// ---- packed weights -------------------------------------------------------------------------
PackedWeights::PackedWeights(std::vector<int8_t> rows, int64_t n, int64_t k)
    : n_(n), k_(k), own_rows_(std::move(rows)), rows_(own_rows_.data()), borrowed_(false) {}

PackedWeights::PackedWeights(const int8_t* w, int64_t n, int64_t k) : n_(n), k_(k), rows_(w), borrowed_(true) {}

namespace {

// Bytes of w from which packing is split over threads (a fork/join costs microseconds), and the
// bytes of w per task (whole panels).
constexpr int64_t kMinParallelPackBytes = 1 << 18, kPackTaskBytes = 1 << 16;
// A borrowed layout up to this size stays in the calling thread's work buffer after the call.
constexpr size_t kMaxKeptWorkBytes = size_t{64} << 20;

// The calling thread's work buffer for one-call packing, at least `bytes` (64-byte aligned).
void* thread_work_buffer(size_t bytes, AlignedBuffer& fallback) {
  thread_local AlignedBuffer buffer;
  thread_local size_t size = 0;
  if (bytes > kMaxKeptWorkBytes) {  // too large to keep around: this call's own memory
    fallback = aligned_buffer(bytes);
    return fallback.get();
  }
  if (size < bytes) {
    buffer.reset();
    size = 0;
    buffer = aligned_buffer(bytes);
    size = bytes;
  }
  return buffer.get();
}

PackFn pack_function(Isa isa) {
  switch (isa) {
#ifdef LABKIT_X86
    case Isa::Avx2: return &pack_avx2;
    case Isa::Avx512Vnni: case Isa::Amx: return &pack_vnni;
#endif
    default: return nullptr;  // ref reads w itself
  }
}

RowSumsFn row_sums_function(Isa isa) {
  switch (isa) {
#ifdef LABKIT_X86
    case Isa::Avx2: return &row_sums_avx2;
    case Isa::Avx512Vnni: case Isa::Amx: return &row_sums_vnni;
#endif
    default: return &row_sums_ref;
  }
}

// The shape of isa's packed layout of w [n, k] (data not yet set).
PackedLayout describe_layout(Isa isa, int64_t n, int64_t k) {
  PackedLayout L;
  L.n = n;
  L.k = k;
  int64_t elem = 1, stored_groups = 0;
  switch (isa) {
    case Isa::Ref: L.panel_width = 1; L.k_per_group = 1; break;
    case Isa::Avx2: L.panel_width = 8; L.k_per_group = 2; elem = 2; break;
    case Isa::Avx512Vnni: case Isa::Amx: L.panel_width = 16; L.k_per_group = 4; break;
  }
  L.groups = (k + L.k_per_group - 1) / L.k_per_group;
  stored_groups = L.panel_width == 16 ? (L.groups + 15) / 16 * 16 : L.groups;  // whole AMX B tiles
  L.panels = (n + L.panel_width - 1) / L.panel_width;
  L.panel_bytes = stored_groups * L.panel_width * L.k_per_group * elem;
  return L;
}

}  // namespace

void PackedWeights::prepare(Isa isa, int what, int threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  PackedLayout& L = layouts_[slot(isa)];
  const bool pack = (what & kLayout) && L.data == nullptr;
  const bool sums = (what & kSums) && row_sum_.empty();
  if (!pack && !sums) return;
  const PackFn pack_fn = pack ? pack_function(isa) : nullptr;
  const RowSumsFn sums_fn = sums && !pack_fn ? row_sums_function(isa) : nullptr;
  PackedLayout layout = describe_layout(isa, n_, k_);
  void* dst = nullptr;
  if (pack_fn) {
    const size_t bytes = static_cast<size_t>(layout.panels * layout.panel_bytes);
    AlignedBuffer& own = storage_[slot(isa)];
    dst = borrowed_ ? thread_work_buffer(bytes, own) : (own = aligned_buffer(bytes)).get();
  }
  std::vector<int32_t> sum(sums ? static_cast<size_t>(n_) : 0), abs_sum(sum.size());
  // Tasks of whole panels of 16 rows (the row sums go by the same rows), about kPackTaskBytes each.
  const int64_t rows_per_panel = pack_fn ? layout.panel_width : 16;
  const int64_t panels = (n_ + rows_per_panel - 1) / rows_per_panel;
  const int64_t panel_bytes_in = rows_per_panel * k_;
  const int64_t per_task = std::max<int64_t>(1, kPackTaskBytes / panel_bytes_in);
  const int64_t tasks = (panels + per_task - 1) / per_task;
  if (n_ * k_ < kMinParallelPackBytes) threads = 1;
  // (Ref's layout is w itself: without row sums to take there is nothing to do, and no fork/join.)
  if (pack_fn || sums_fn) parallel_tasks(tasks, threads, [&](int, int64_t t) {
    const int64_t p0 = t * per_task, p1 = std::min(panels, p0 + per_task);
    if (pack_fn)  // the row sums from the packing's own registers
      pack_fn(rows_, layout, p0, p1, dst, sums ? sum.data() : nullptr, sums ? abs_sum.data() : nullptr);
    else if (sums_fn)
      sums_fn(rows_, k_, p0 * rows_per_panel, std::min(n_, p1 * rows_per_panel), sum.data(), abs_sum.data());
  });
  if (sums) {
    row_sum_ = std::move(sum);
    abs_row_sum_ = std::move(abs_sum);
  }
  if (pack) {
    layout.data = pack_fn ? dst : rows_;
    L = layout;
  }
}

// ---- the threaded driver --------------------------------------------------------------------
namespace {

struct IsaOps {
  TileFn tile;
  RequantFn requant;
  int64_t tile_unit;  // columns per register block (a tile width is a multiple of it)
  int64_t row_unit;   // rows per register block (a tile height is a multiple of it, but at the edge)
  double min_tile_macs = 0;  // AMX: each tile call loads and releases the tile configuration (~50 ns)
};

IsaOps ops_for(Isa isa) {
  switch (isa) {
#ifdef LABKIT_X86
    case Isa::Avx2: return {&tile_avx2, &requantize_rows_avx2, 16, 8};
    case Isa::Avx512Vnni: return {&tile_vnni, &requantize_rows_vnni, 64, 8};
#ifdef LABKIT_HAVE_AMX
    case Isa::Amx: return {&tile_amx, &requantize_rows_vnni, 32, 32, double(1 << 22)};
#endif
#endif
    default: return {&tile_ref, &requantize_rows_ref, 1, 8};
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Bytes of the per-thread work space of isa's tile function.
size_t pack_buffer_bytes(Isa isa, const Blocking& blk) {
  switch (isa) {
#ifdef LABKIT_X86
    case Isa::Avx2: return static_cast<size_t>(pack_buffer_bytes_avx2(blk));
#ifdef LABKIT_HAVE_AMX
    case Isa::Amx: return static_cast<size_t>(pack_buffer_bytes_amx(blk));
#endif
#endif
    default: return 0;
  }
}

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
  while (threads > 1 && ceil_div(m, mc) * ceil_div(n, nc) < 2 * threads && mc > ops.row_unit)
    mc = round_up(mc / 2, ops.row_unit);
  // Where a tile has a fixed cost, taller tiles for small K and N (the multiply-adds counted with
  // the padding the tile instructions do), as long as each thread keeps two tiles.
  const double macs_per_row = static_cast<double>(std::min(nc, round_up(n, 16))) * round_up(k, 64);
  if (mc < m && mc * macs_per_row < ops.min_tile_macs) {
    const int64_t wanted = round_up(static_cast<int64_t>(ops.min_tile_macs / macs_per_row) + 1, ops.row_unit);
    const int64_t balanced = round_up(ceil_div(m, ceil_div(2 * threads, ceil_div(n, nc))), ops.row_unit);
    mc = std::min(m, std::max(mc, std::min(wanted, balanced)));
  }
  blk.mc = mc;
  blk.nc = nc;
  const int64_t tiles_m = ceil_div(m, mc), tiles_n = ceil_div(n, nc);
  const int64_t tiles = tiles_m * tiles_n;
  const bool needs_scratch = k > blk.kc;
  const size_t scratch_bytes = needs_scratch ? static_cast<size_t>(round_up(mc, 32) * round_up(nc, 64)) * 4 : 0;
  const size_t pack_bytes = pack_buffer_bytes(isa, blk);
  threads = threads_for(tiles, threads);

  // Work space for each thread, allocated here, outside the parallel region (not initialised:
  // the tile functions write before they read).
  std::vector<AlignedBuffer> scratch(static_cast<size_t>(threads)), pack(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    if (scratch_bytes) scratch[t] = aligned_buffer(scratch_bytes);
    if (pack_bytes) pack[t] = aligned_buffer(pack_bytes);
  }
  parallel_tasks(tiles, threads, [&](int thread, int64_t t) {
    const int64_t m0 = t / tiles_n * mc, n0 = t % tiles_n * nc;
    ops.tile(g, blk, m0, std::min(m0 + mc, m), n0, std::min(n0 + nc, n),
             static_cast<int32_t*>(scratch[thread].get()), pack[thread].get());
  });
}

// ---- the AMX one-call path: w multiplied unpacked (tile_amx_unpacked) ----------------------------
// A one-call op that packs w first writes a packed copy and reads it back (on AMX at 256 x 1024 x
// 1024: 1.3-1.6x the time of the packed layer's call). On AMX it packs 32 columns' block at a
// time instead, inside the task that multiplies it: tasks own columns and take all M rows, whose
// A tiles are copied once per call first (in the same OpenMP region). Up to kMaxUnpackedRows rows
// (their partial sums, M x 32 int32, stay in L2; beyond, packing is a small share of the work
// anyway), and from kMinUnpackedBytes of w: smaller weights stay in L2 with their packed copy, and
// packing first was faster there (measured one-call / packed, 2 threads: 256 x 784 x 300 1.10
// against 1.28, 256 x 512 x 512 1.22 against 1.26; from 1 MiB on the block-wise packing wins:
// 256 x 1024 x 1024 1.08-1.21 against 1.27-1.34, 64 x 1024 x 1024 1.61 against 1.93, 1 x 4096 x
// 4096 1.64 against 2.98).
constexpr int64_t kMaxUnpackedRows = 1024, kMinUnpackedBytes = 1 << 19;

bool amx_unpacked(PackedWeights& w, int64_t m, Isa isa) {
#if defined(LABKIT_X86) && defined(LABKIT_HAVE_AMX)
  return isa == Isa::Amx && w.borrowed() && m <= kMaxUnpackedRows && w.n() * w.k() >= kMinUnpackedBytes &&
         w.layout(isa).data == nullptr;
#else
  (void)w, (void)m, (void)isa;
  return false;
#endif
}

// The int32 column offsets and sums of a linear layer are exact whatever w holds: |bias| +
// max(x_zp, 255 - x_zp) * 128 * K <= 2^31 - 1 (LinearPlan checks the same with the true |w| sums).
bool fused_linear_fits(const int32_t* bias, int64_t n, int64_t k, int32_t x_zero_point) {
  int64_t largest = 0;
  for (int64_t i = 0; bias && i < n; ++i) largest = std::max<int64_t>(largest, std::abs(int64_t{bias[i]}));
  const int64_t x_span = std::max(x_zero_point, 255 - x_zero_point);
  return largest + x_span * 128 * k <= std::numeric_limits<int32_t>::max();
}

// g: a, lda, m, b (the shape of w: n, k), ep, w_rows and, for a linear layer, fill_offsets, bias,
// x_zero_point.
void run_unpacked(GemmArgs g, int threads) {
#if defined(LABKIT_X86) && defined(LABKIT_HAVE_AMX)
  const int64_t m = g.m, n = g.b->n, k = g.b->k;
  const Blocking blk = blocking(Isa::Amx);
  if (static_cast<double>(m) * n * k < kMinParallelWork) threads = 1;
  // Four tasks per thread, of whole 32 columns (tasks of single blocks share a cache line of the
  // output with their neighbours in every row, written from the other core).
  const int64_t nc = std::max<int64_t>(32, round_up(ceil_div(n, 4 * threads), 32)), tiles = ceil_div(n, nc);
  threads = threads_for(tiles, threads);
  g.a_block_bytes = round_up(k, 64) * 32;
  const int64_t blocks = ceil_div(m, 32), blocks_per_task = std::max<int64_t>(1, kPackTaskBytes / g.a_block_bytes);
  AlignedBuffer own;
  uint8_t* a_tiles = static_cast<uint8_t*>(thread_work_buffer(static_cast<size_t>(blocks * g.a_block_bytes), own));
  g.a_tiles = a_tiles;
  const size_t scratch_bytes = k > blk.kc ? static_cast<size_t>(round_up(m, 32) * 32 * 4) : 0;
  const size_t pack_bytes = static_cast<size_t>(pack_buffer_bytes_amx(blk));
  std::vector<AlignedBuffer> scratch(static_cast<size_t>(threads)), pack(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    if (scratch_bytes) scratch[t] = aligned_buffer(scratch_bytes);
    pack[t] = aligned_buffer(pack_bytes);
  }
  parallel_tasks_after(
      ceil_div(blocks, blocks_per_task),
      [&](int, int64_t t) {
        const int64_t r0 = t * blocks_per_task * 32;
        pack_activations_amx(g.a, g.lda, m, k, r0, std::min(m, r0 + blocks_per_task * 32), a_tiles);
      },
      tiles, threads, [&](int thread, int64_t t) {
        tile_amx_unpacked(g, blk, 0, m, t * nc, std::min(n, (t + 1) * nc), static_cast<int32_t*>(scratch[thread].get()),
                          pack[thread].get());
      });
#else
  (void)g, (void)threads;
#endif
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

LinearPlan::LinearPlan(PackedWeights& w, const int32_t* bias, int32_t x_zero_point, const RequantParams& rq,
                       Isa isa, int threads)
    : w_(&w), bias_(bias), x_zero_point_(x_zero_point), columns_(w.n(), rq) {
  // Step 2: acc = sum_k a*w - x_zp * sum_k w + bias. The int32 column offset is exact when the
  // true accumulator cannot leave int32 (always, unless |bias| is near 2^31); otherwise run()
  // takes the int64 path, which saturates like reference.py.
  w.prepare(isa, PackedWeights::kSums, threads);
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
  w.prepare(isa, PackedWeights::kLayout, threads);
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
  const bool unpacked = amx_unpacked(w, m, isa);
  if (!unpacked) w.prepare(isa, PackedWeights::kLayout, threads);
  const PackedLayout shape = describe_layout(isa, w.n(), w.k());
  GemmArgs g;
  g.a = a;
  g.lda = w.k();
  g.m = m;
  g.b = unpacked ? &shape : &w.layout(isa);
  g.ep.out32 = out;
  g.ep.ldc = w.n();
  if (w.n() < 16) g.ep.flat_period = 16;  // dense rows: the int32 stores need no parameters
  if (unpacked) {
    g.w_rows = w.rows();
    run_unpacked(g, threads);
  } else {
    run_tiles(g, isa, threads);
  }
}

void linear_u8(const uint8_t* a, int64_t m, PackedWeights& w, const int32_t* bias,
               int32_t x_zero_point, const RequantParams& rq, uint8_t* out, int64_t ldc, Isa isa,
               int threads) {
  if (amx_unpacked(w, m, isa) && w.n() >= 16 && fused_linear_fits(bias, w.n(), w.k(), x_zero_point)) {
    const PackedLayout shape = describe_layout(isa, w.n(), w.k());
    ColumnArrays columns(w.n(), rq);  // the offsets: filled in by the tasks (N >= 16: no flat arrays)
    GemmArgs g;
    g.a = a;
    g.lda = w.k();
    g.m = m;
    g.b = &shape;
    g.ep = columns.epilogue(out, ldc, true);
    g.w_rows = w.rows();
    g.fill_offsets = columns.offset.data();
    g.bias = bias;
    g.x_zero_point = x_zero_point;
    run_unpacked(g, threads);
    return;
  }
  w.prepare(isa, PackedWeights::kLayout | PackedWeights::kSums, threads);  // one pass for both
  LinearPlan(w, bias, x_zero_point, rq, isa, threads).run(a, m, w.k(), out, ldc, isa, threads);
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
#ifdef LABKIT_HAVE_AMX
  } else if (isa == Isa::Amx) {
    sink = probe_peak_amx(iterations);
    *ops = 4.0 * 16 * 16 * 64 * 2 * static_cast<double>(iterations);
#endif
  }
#endif
  (void)sink;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double measure_clock_hz() {
#ifdef LABKIT_X86
  // 100 dependent 64-bit multiplications per round, 3 cycles each on every x86-64 core of the last
  // 15 years (Intel and AMD). Not additions: Golden Cove and later cores (Sapphire Rapids) fold
  // chains of `add $1` at register renaming and would report a 20 GHz clock. The best of many
  // short runs (a busy machine interrupts some of them).
  double best = 0;
  for (int run = 0; run < 30; ++run) {
    const int64_t rounds = 30000;
    int64_t x = 1;
    const int64_t one = 1;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < rounds; ++i) {
#define LK_MUL10 "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t" \
                 "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t"
      __asm__ volatile(LK_MUL10 LK_MUL10 LK_MUL10 LK_MUL10 LK_MUL10 LK_MUL10 LK_MUL10 LK_MUL10
                           LK_MUL10 LK_MUL10
                       : "+r"(x)
                       : "r"(one));
#undef LK_MUL10
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double hz = 3.0 * 100.0 * static_cast<double>(rounds) / s;
    if (hz > best) best = hz;
  }
  return best;
#else
  return 0.0;
#endif
}

}  // namespace labkit
