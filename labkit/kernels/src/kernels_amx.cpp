// The AMX path (LABKIT_ISA=amx): Intel's Advanced Matrix Extensions, Sapphire Rapids and later.
// Eight tile registers tmm0..tmm7 of up to 16 rows x 64 bytes; one instruction,
//   tdpbusd C, A, B:   C[i][j] += sum_{t<64} A[i][t] * B[t/4][4j + t%4]   (i, j < 16),
// multiplies a 16 x 64 tile of unsigned bytes (activations: 16 rows, 64 consecutive k) by a tile of
// signed bytes holding 64 k x 16 columns in the VNNI order (row t/4 = a group of 4 k, 16 columns x
// 4 k per row) and adds into 16 x 16 int32: 16 384 multiply-adds, exact (reference.py, step 1).
//
// Operands. B is the VNNI packed layout (kernels_avx512.cpp) with the groups padded to a multiple of
// 16, so 16 consecutive groups of a panel (1 KiB) are one B tile, loaded with a 64-byte stride. A
// is read in place: 16 rows of 64 bytes at stride lda. Where that would read past the end of the
// activations (the last rows when K is not a multiple of 64, or a partial block of fewer than 16
// rows), the rows are first copied into a per-thread edge buffer; bytes past K are never used,
// because the packed weights there are zero.
//
// Micro-kernel: 2 x 2 tiles of C (32 rows x 32 columns) in tmm0..3, two A tiles (tmm4, 5) and two
// B tiles (tmm6, 7): per step of 64 k, 4 tile loads feed 4 tdpbusd. Cache blocking: K in blocks of
// kc bytes (512: the packed A block of 32 rows x kc stays in L1 while the column panels stream by
// from L2; the C tiles go to the per-thread scratch between K blocks), a tile of mc x nc per task.
// The finished C tiles are stored to memory and go through the VNNI epilogue (store_block_vnni).
//
// The tile configuration is per thread and not preserved across calls into other code (torch's
// oneDNN configures its own): every tile_amx call loads ours first and releases the tiles at the
// end. The OS permission to use the tile data is requested once, in dispatch.cpp.
#include "int8.h"

#if defined(LABKIT_X86) && defined(LABKIT_HAVE_AMX)  // the whole file
#include <immintrin.h>

#include <cstring>

#define LK_AMX __attribute__((target("amx-tile,amx-int8")))
#define LK_AVX512 __attribute__((target("avx512f,avx512bw")))

namespace labkit {
namespace {

constexpr int kTileRows = 16;    // rows of A and C per tile
constexpr int kTileK = 64;       // bytes of k per A tile row (16 groups of 4 k)
constexpr int kPanel = 16;       // output columns per B / C tile
constexpr int kBTileBytes = 1024;
constexpr int kAStepBytes = 2 * kTileRows * kTileK;  // packed A: 32 rows x 64 k per step

// The 64-byte operand of ldtilecfg (palette 1): bytes per row and rows of each tile register.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

LK_AMX inline void configure_tiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {  // every tile 16 rows x 64 bytes (C: 16 x 16 int32)
    config.colsb[t] = 64;
    config.rows[t] = kTileRows;
  }
  // GCC 12 does not treat ldtilecfg as reading its operand and may drop the stores above (seen in
  // tile_amx_unpacked: an invalid configuration, and the process dies): make the address escape.
  __asm__ volatile("" : : "r"(&config) : "memory");
  _tile_loadconfig(&config);
}

struct PackedArgs {
  const uint8_t* a;      // packed activations of the block: [step][32 rows][64 bytes]
  const int8_t* b;       // panel p at the first group of the block
  int64_t panel_bytes;
  int64_t steps;         // steps of 64 k in this block
  int32_t* partial;      // scratch origin for this block of 32 rows x 32 columns
  int64_t ld_partial;    // in int32
  bool load_partial, store_partial;
  const Epilogue* ep;
  int rows;              // valid rows (<= 32) from output row m
  int64_t m, n, n_valid;
};

// MT row halves (1 or 2) x NT panels (1 or 2) of C. Tile numbers are immediates, hence the
// `if constexpr` ladders instead of loops.
template <int MT, int NT>
LK_AMX void block_amx(const PackedArgs& s) {
  const int64_t ld_bytes = s.ld_partial * 4;
  int32_t* c = s.partial;
  if (s.load_partial) {
    _tile_loadd(0, c, ld_bytes);
    if constexpr (NT == 2) _tile_loadd(1, c + kPanel, ld_bytes);
    if constexpr (MT == 2) _tile_loadd(2, c + kTileRows * s.ld_partial, ld_bytes);
    if constexpr (MT == 2 && NT == 2) _tile_loadd(3, c + kTileRows * s.ld_partial + kPanel, ld_bytes);
  } else {
    _tile_zero(0);
    if constexpr (NT == 2) _tile_zero(1);
    if constexpr (MT == 2) _tile_zero(2);
    if constexpr (MT == 2 && NT == 2) _tile_zero(3);
  }
  // Tile registers are not renamed: a load into tmm6 waits for the last tdpbusd that reads tmm6.
  // So each load comes right before its first use, and the next step's loads can start while
  // this step's last products are still running (measured here: ~12 % faster than 4 loads first).
  for (int64_t step = 0; step < s.steps; ++step) {
    const uint8_t* a = s.a + step * kAStepBytes;
    const int8_t* b = s.b + step * kBTileBytes;
    _tile_loadd(4, a, kTileK);
    _tile_loadd(6, b, 64);
    _tile_dpbusd(0, 4, 6);
    if constexpr (NT == 2) {
      _tile_loadd(7, b + s.panel_bytes, 64);
      _tile_dpbusd(1, 4, 7);
    }
    if constexpr (MT == 2) {
      _tile_loadd(5, a + kTileRows * kTileK, kTileK);
      _tile_dpbusd(2, 5, 6);
    }
    if constexpr (MT == 2 && NT == 2) _tile_dpbusd(3, 5, 7);
  }
  // Partial sums go back to the scratch; finished ones to a local block for the epilogue.
  alignas(64) int32_t sums[2 * kTileRows][2 * kPanel];
  int32_t* out = s.store_partial ? c : &sums[0][0];
  const int64_t ld = s.store_partial ? s.ld_partial : 2 * kPanel;
  _tile_stored(0, out, ld * 4);
  if constexpr (NT == 2) _tile_stored(1, out + kPanel, ld * 4);
  if constexpr (MT == 2) _tile_stored(2, out + kTileRows * ld, ld * 4);
  if constexpr (MT == 2 && NT == 2) _tile_stored(3, out + kTileRows * ld + kPanel, ld * 4);
  if (!s.store_partial) store_block_vnni(&sums[0][0], 2 * kPanel, s.rows, s.m, s.n, s.n_valid, *s.ep);
}

// Packs rows [0, rows) of a (row stride lda), bytes [0, bytes) of each, as 16-row A tiles:
// dst[step][row][64]. Masked loads read no byte past `bytes`; the bytes past it in dst are left
// as they are (the packed weights there are zero), and so are the rows past `rows` (their sums
// are never stored).
LK_AVX512 void pack_a(const uint8_t* a, int64_t lda, int rows, int64_t bytes, uint8_t* dst) {
  for (int r = 0; r < rows; ++r) {
    const uint8_t* row = a + r * lda;
    uint8_t* out = dst + r * kTileK;
    for (int64_t k0 = 0; k0 < bytes; k0 += kTileK, out += kAStepBytes) {
      const int64_t left = bytes - k0;
      const __mmask64 mask = left >= kTileK ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
      _mm512_storeu_si512(out, _mm512_maskz_loadu_epi8(mask, row + k0));
    }
  }
}

using BlockFn = void (*)(const PackedArgs&);
const BlockFn kBlocks[3][3] = {{nullptr, nullptr, nullptr},
                               {nullptr, &block_amx<1, 1>, &block_amx<1, 2>},
                               {nullptr, &block_amx<2, 1>, &block_amx<2, 2>}};

int64_t block_bytes(const Blocking& blk) {  // kc rounded up to whole steps of 64 k
  return blk.kc < kTileK ? kTileK : (blk.kc + kTileK - 1) / kTileK * kTileK;
}

}  // namespace

int64_t pack_buffer_bytes_amx(const Blocking& blk) { return 2 * kTileRows * block_bytes(blk); }

LK_AMX void tile_amx(const GemmArgs& g, const Blocking& blk, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                     int32_t* scratch, void* pack_buffer) {
  const PackedLayout& layout = *g.b;
  const int64_t k_size = layout.k, kc = block_bytes(blk);
  const int64_t p0 = n0 / kPanel, p1 = (n1 + kPanel - 1) / kPanel;
  const int64_t ld_partial = (p1 - p0) * kPanel;
  const int8_t* packed = static_cast<const int8_t*>(layout.data);
  uint8_t* a_tiles = static_cast<uint8_t*>(pack_buffer);  // [kc / 64 steps][32 rows][64 bytes]

  configure_tiles();
  for (int64_t k0 = 0; k0 < k_size; k0 += kc) {
    const int64_t k1 = k0 + kc < k_size ? k0 + kc : k_size;
    const int64_t steps = (k1 - k0 + kTileK - 1) / kTileK;
    const bool first = k0 == 0, last = k1 == k_size;
    for (int64_t m = m0; m < m1; m += 2 * kTileRows) {
      const int rows = static_cast<int>(m1 - m < 2 * kTileRows ? m1 - m : 2 * kTileRows);
      // The block's 32 rows x kc bytes, packed once, stay in L1 while the column panels go by.
      pack_a(g.a + m * g.lda + k0, g.lda, rows, k1 - k0, a_tiles);
      const int mt = rows > kTileRows ? 2 : 1;
      for (int64_t p = p0; p < p1; p += 2) {
        const int nt = p + 1 < p1 ? 2 : 1;
        PackedArgs s;
        s.a = a_tiles;
        s.b = packed + p * layout.panel_bytes + k0 * kPanel;  // group k0/4, 64 bytes per group
        s.panel_bytes = layout.panel_bytes;
        s.steps = steps;
        s.partial = scratch + (m - m0) * ld_partial + (p - p0) * kPanel;
        s.ld_partial = ld_partial;
        s.load_partial = !first;
        s.store_partial = !last;
        s.ep = &g.ep;
        s.rows = rows;
        s.m = m;
        s.n = p * kPanel;
        s.n_valid = n1 - s.n < nt * kPanel ? n1 - s.n : nt * kPanel;
        kBlocks[mt][nt](s);
      }
    }
  }
  _tile_release();
}

void pack_activations_amx(const uint8_t* a, int64_t lda, int64_t m, int64_t k, int64_t r0, int64_t r1, uint8_t* dst) {
  const int64_t block_bytes_all = (k + kTileK - 1) / kTileK * kAStepBytes;  // 32 rows x K rounded up to 64
  for (int64_t r = r0; r < r1; r += 2 * kTileRows) {
    const int rows = static_cast<int>(m - r < 2 * kTileRows ? m - r : 2 * kTileRows);
    pack_a(a + r * lda, lda, rows, k, dst + r / (2 * kTileRows) * block_bytes_all);
  }
}

// The one-call path (int8.h). Per 32 columns of the tile: K in blocks of kc; each block of those
// 32 rows of w is packed into the per-thread buffer (16 KiB: it stays in L1) right before use, and
// multiplied by the activations of all the tile's rows, which the driver copied into A tiles once
// per call (they stream by from L2). So w is read once, from wherever it is, and no packed copy of
// it is written to memory and read back (that pass took 0.2-0.5 of the GEMM's time at 256 x 1024 x
// 1024). For a linear layer the row sums come from the packing's registers, and the 32 columns'
// offsets are filled in before their first epilogue (the same task computes both).
LK_AMX void tile_amx_unpacked(const GemmArgs& g, const Blocking& blk, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                              int32_t* scratch, void* pack_buffer) {
  const int64_t k_size = g.b->k, n_size = g.b->n, kc = block_bytes(blk);
  const int64_t panel_bytes = kc / kTileK * kBTileBytes;  // the buffer: 2 panels of kc / 64 B tiles
  int8_t* b_tiles = static_cast<int8_t*>(pack_buffer);
  configure_tiles();
  for (int64_t n = n0; n < n1; n += 2 * kPanel) {
    const int64_t n_valid = n1 - n < 2 * kPanel ? n1 - n : 2 * kPanel;
    const int nt = n_valid > kPanel ? 2 : 1;
    const int w_rows = static_cast<int>(n_size - n < 2 * kPanel ? n_size - n : 2 * kPanel);
    alignas(64) int32_t sums[2 * kPanel] = {}, abs_sums[2 * kPanel] = {};
    for (int64_t k0 = 0; k0 < k_size; k0 += kc) {
      const int64_t k1 = k0 + kc < k_size ? k0 + kc : k_size;
      const int64_t steps = (k1 - k0 + kTileK - 1) / kTileK;
      const bool first = k0 == 0, last = k1 == k_size;
      pack_vnni_rows(g.w_rows + n * k_size + k0, k_size, w_rows, k1 - k0, b_tiles, panel_bytes,
                     g.fill_offsets ? sums : nullptr, abs_sums);
      if (last && g.fill_offsets)  // LinearPlan's offsets; exact: see fused_linear_fits (dispatch.cpp)
        for (int c = 0; c < n_valid; ++c)
          g.fill_offsets[n + c] = static_cast<int32_t>(static_cast<uint32_t>(
              (g.bias ? int64_t{g.bias[n + c]} : 0) - int64_t{g.x_zero_point} * sums[c]));
      for (int64_t m = m0; m < m1; m += 2 * kTileRows) {
        const int rows = static_cast<int>(m1 - m < 2 * kTileRows ? m1 - m : 2 * kTileRows);
        PackedArgs s;
        s.a = g.a_tiles + m / (2 * kTileRows) * g.a_block_bytes + k0 / kTileK * kAStepBytes;
        s.b = b_tiles;
        s.panel_bytes = panel_bytes;
        s.steps = steps;
        s.partial = scratch + (m - m0) * 2 * kPanel;
        s.ld_partial = 2 * kPanel;
        s.load_partial = !first;
        s.store_partial = !last;
        s.ep = &g.ep;
        s.rows = rows;
        s.m = m;
        s.n = n;
        s.n_valid = n_valid;
        kBlocks[rows > kTileRows ? 2 : 1][nt](s);
      }
    }
  }
  _tile_release();
}

LK_AMX int32_t probe_peak_amx(int64_t iterations) {
  alignas(64) static const uint8_t ones[kTileRows * kTileK] = {1};  // contents do not matter
  alignas(64) int32_t out[kTileRows * kPanel];
  configure_tiles();
  _tile_loadd(4, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t it = 0; it < iterations; ++it) {  // 4 independent accumulators
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 6);
    _tile_dpbusd(2, 4, 6);
    _tile_dpbusd(3, 4, 6);
  }
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}

}  // namespace labkit

#endif  // LABKIT_X86 && LABKIT_HAVE_AMX
