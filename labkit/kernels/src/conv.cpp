// Quantized convolution on the int8 micro-kernels, and max pooling on uint8 (reference.py, step 5).
// Layout: input NCHW uint8, weights OIHW int8 viewed as a matrix [O, K] with K = C*KH*KW rounded up
// to a multiple of 4 by zero weights, output NCHW uint8. Each image is first copied into a buffer
// padded with the input zero point (padded taps then contribute (x_zp - x_zp) * w = 0).
//
// SIMD paths (avx2, avx512vnni, and amx, which uses the VNNI kernel here): the output pixels sit in the vector lanes and the weights are
// broadcast, so each register holds 16 (or 8) pixels of one output channel and goes straight to
// the NCHW plane: pack_pixels interleaves 4 taps per pixel, conv_pixels_* does the multiply-adds
// and the fused requantization. Chunks of output rows (images x row blocks) run on the threads.
// Scalar path (ref) and the rare int64 case: im2col rows [P, K] (P = OH*OW), the fused GEMM gives
// [P, O], and a transpose writes [O, OH, OW].
#include <algorithm>
#include <cstring>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>  // baseline on x86-64: no run-time dispatch needed
#endif

#include "driver.h"

namespace labkit {
namespace {

// The image [C, H, W] surrounded by `pad` rows/columns of the zero point: [C, H + 2ph, W + 2pw].
void pad_image(const uint8_t* image, const ConvGeometry& geo, uint8_t pad_value, uint8_t* padded) {
  const int64_t hp = geo.height + 2 * geo.pad_h, wp = geo.width + 2 * geo.pad_w;
  std::memset(padded, pad_value, static_cast<size_t>(geo.channels * hp * wp));
  for (int64_t c = 0; c < geo.channels; ++c)
    for (int64_t h = 0; h < geo.height; ++h)
      std::memcpy(padded + (c * hp + h + geo.pad_h) * wp + geo.pad_w, image + (c * geo.height + h) * geo.width,
                  static_cast<size_t>(geo.width));
}

// cols[p, (c*KH + i)*KW + j] = padded[c, oh*sh + i, ow*sw + j] for output pixel p = oh*OW + ow; rows
// of ldk >= C*KH*KW bytes. Kernel rows of up to 8 taps are copied as one 8-byte word, in increasing
// address order, so the 8 - KW extra bytes land where the next copy (or the unused end of the
// row, whose weights are zero, or the 16 spare bytes after the buffer) is written anyway.
void im2col(const uint8_t* padded, const ConvGeometry& geo, int64_t ldk, uint8_t* cols) {
  const int64_t oh_size = geo.out_h(), ow_size = geo.out_w();
  const int64_t hp = geo.height + 2 * geo.pad_h, wp = geo.width + 2 * geo.pad_w;
  const int64_t kw = geo.kernel_w;
  for (int64_t oh = 0; oh < oh_size; ++oh) {
    for (int64_t ow = 0; ow < ow_size; ++ow) {
      uint8_t* dst = cols + (oh * ow_size + ow) * ldk;
      for (int64_t c = 0; c < geo.channels; ++c) {
        const uint8_t* src = padded + (c * hp + oh * geo.stride_h) * wp + ow * geo.stride_w;
        for (int64_t i = 0; i < geo.kernel_h; ++i, src += wp, dst += kw) {
          if (kw <= 8)
            std::memcpy(dst, src, 8);
          else
            std::memcpy(dst, src, static_cast<size_t>(kw));
        }
      }
    }
  }
}

// out_nchw[o, p] = pixels[p, o]
void transpose_to_planes(const uint8_t* pixels, int64_t p_size, int64_t o_size, uint8_t* out) {
  for (int64_t o = 0; o < o_size; ++o) {
    uint8_t* plane = out + o * p_size;
    for (int64_t p = 0; p < p_size; ++p) plane[p] = pixels[p * o_size + o];
  }
}

// ---- the SIMD paths: output pixels in the lanes (conv_pixels_vnni / conv_pixels_avx2) ----------
// xp[g][q][t] = padded[c, oh*sh + i, ow*sw + j] for the chunk's pixel q = (oh - oh0)*OW + ow and
// tap k = 4g + t = (c*KH + i)*KW + j; taps k >= C*KH*KW (zero weights) read tap 0. With stride 1,
// 16 pixels of a row are 4 loads, 8 byte shuffles and 64 contiguous bytes; the up to 15 pixels
// read past the end of a row land on the next row's slots, written afterwards, or on the spare
// 16 pixels after the chunk (group_stride >= 4 * (pixels + 16)).
void pack_pixels(const uint8_t* padded, const ConvGeometry& geo, int64_t groups, int64_t group_stride,
                 int64_t oh0, int64_t oh1, uint8_t* xp) {
  const int64_t hp = geo.height + 2 * geo.pad_h, wp = geo.width + 2 * geo.pad_w, ow_size = geo.out_w();
  const int64_t k_size = geo.channels * geo.kernel_h * geo.kernel_w;
  for (int64_t g = 0; g < groups; ++g) {
    int64_t offset[4];
    for (int t = 0; t < 4; ++t) {
      const int64_t k = 4 * g + t < k_size ? 4 * g + t : 0;
      const int64_t c = k / (geo.kernel_h * geo.kernel_w), i = k / geo.kernel_w % geo.kernel_h, j = k % geo.kernel_w;
      offset[t] = (c * hp + i) * wp + j;
    }
    uint8_t* group = xp + g * group_stride;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const uint8_t* row = padded + oh * geo.stride_h * wp;
      uint8_t* dst = group + (oh - oh0) * ow_size * 4;
#if defined(__SSE2__)
      if (geo.stride_w == 1) {
        for (int64_t ow = 0; ow < ow_size; ow += 16, dst += 64) {
          auto load = [&](int t) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + offset[t] + ow)); };
          const __m128i r0 = load(0), r1 = load(1), r2 = load(2), r3 = load(3);
          const __m128i a = _mm_unpacklo_epi8(r0, r1), b = _mm_unpackhi_epi8(r0, r1);
          const __m128i c = _mm_unpacklo_epi8(r2, r3), d = _mm_unpackhi_epi8(r2, r3);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(a, c));       // pixels 0-3
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), _mm_unpackhi_epi16(a, c));  // 4-7
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32), _mm_unpacklo_epi16(b, d));  // 8-11
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 48), _mm_unpackhi_epi16(b, d));  // 12-15
        }
        continue;
      }
#endif
      for (int64_t ow = 0; ow < ow_size; ++ow)
        for (int t = 0; t < 4; ++t) dst[ow * 4 + t] = row[offset[t] + ow * geo.stride_w];
    }
  }
}

#ifdef LABKIT_X86
void conv2d_pixels(const uint8_t* x, const ConvGeometry& geo, const PackedWeights& w, const LinearPlan& plan,
                   uint8_t pad, uint8_t* out, Isa isa, int threads) {
  const int64_t ow_size = geo.out_w(), oh_size = geo.out_h(), p_size = oh_size * ow_size;
  const int64_t groups = w.k() / 4;
  const int64_t in_image = geo.channels * geo.height * geo.width;
  const int64_t padded_bytes = geo.channels * (geo.height + 2 * geo.pad_h) * (geo.width + 2 * geo.pad_w);
  // Chunks of whole output rows whose packed activations stay within ~256 KB (L2).
  const int64_t chunk_rows = std::max<int64_t>(1, std::min<int64_t>(oh_size, (262144 / w.k()) / ow_size));
  const int64_t chunks = (oh_size + chunk_rows - 1) / chunk_rows;
  const int64_t tasks = geo.batch * chunks;
  const int64_t group_stride = ((chunk_rows * ow_size + 15) / 16 + 1) * 64;  // one spare panel
  const int64_t xp_bytes = groups * group_stride;
  const Epilogue ep = plan.channel_epilogue();
  threads = threads_for(tasks, threads);
  // Each thread's padded image (and which image it holds) and packed activations, allocated here,
  // outside the parallel region.
  struct Buffers {
    std::vector<uint8_t> padded, xp;
    int64_t image = -1;
  };
  std::vector<Buffers> buffers(static_cast<size_t>(threads));
  for (Buffers& buf : buffers) {
    buf.padded.resize(static_cast<size_t>(padded_bytes + 64));
    buf.xp.resize(static_cast<size_t>(xp_bytes));
  }
  parallel_tasks(tasks, threads, [&](int thread, int64_t t) {
    Buffers& buf = buffers[thread];
    const int64_t b = t / chunks, oh0 = (t % chunks) * chunk_rows;
    const int64_t oh1 = std::min(oh0 + chunk_rows, oh_size);
    if (b != buf.image) {
      pad_image(x + b * in_image, geo, pad, buf.padded.data());
      buf.image = b;
    }
    pack_pixels(buf.padded.data(), geo, groups, group_stride, oh0, oh1, buf.xp.data());
    PixelConvArgs args;
    args.xp = buf.xp.data();
    args.groups = groups;
    args.group_stride = group_stride;
    args.pixels = (oh1 - oh0) * ow_size;
    args.w = w.rows();
    args.out_channels = geo.out_channels;
    args.ep = &ep;
    args.out = out + b * geo.out_channels * p_size + oh0 * ow_size;
    args.out_stride = p_size;
    if (isa == Isa::Avx2)
      conv_pixels_avx2(args);
    else
      conv_pixels_vnni(args);
  });
}
#endif  // LABKIT_X86

struct ImageBuffers {
  std::vector<uint8_t> padded, cols, pixels;
  ImageBuffers(const ConvGeometry& geo, int64_t ldk)
      : padded(static_cast<size_t>(geo.channels * (geo.height + 2 * geo.pad_h) * (geo.width + 2 * geo.pad_w) + 64)),
        cols(static_cast<size_t>(geo.out_h() * geo.out_w() * ldk + 16)),
        pixels(static_cast<size_t>(geo.out_h() * geo.out_w() * geo.out_channels)) {}
};

}  // namespace

void conv2d_u8(const uint8_t* x, const ConvGeometry& geo, PackedWeights& w, const int32_t* bias,
               int32_t x_zero_point, const RequantParams& rq, uint8_t* out, Isa isa, int threads) {
  const int64_t p_size = geo.out_h() * geo.out_w();
  const int64_t ldk = w.k();  // C*KH*KW rounded up to a multiple of 4 (zero weights past it)
  const int64_t o_size = geo.out_channels;
  const int64_t in_image = geo.channels * geo.height * geo.width;
  const int64_t out_image = o_size * p_size;
  const uint8_t pad = static_cast<uint8_t>(x_zero_point);
  const LinearPlan plan(w, bias, x_zero_point, rq, isa, threads);
  if (static_cast<double>(geo.batch) * p_size * ldk * o_size < kMinParallelWork) threads = 1;
#ifdef LABKIT_X86
  // The AMX path convolves on the VNNI pixel kernel: with pixels in the lanes and K = C*KH*KW
  // (25 and 150 in LeNet-5) far below one 64-byte tile row, tiles would mostly multiply padding.
  if ((isa == Isa::Avx512Vnni || isa == Isa::Amx || isa == Isa::Avx2) && plan.fits()) {
    conv2d_pixels(x, geo, w, plan, pad, out, isa, threads);
    return;
  }
#endif
  w.prepare(isa, PackedWeights::kLayout, threads);  // pack once, before the threads start
  auto one_image = [&](int64_t b, int gemm_threads, ImageBuffers& buf) {
    pad_image(x + b * in_image, geo, pad, buf.padded.data());
    im2col(buf.padded.data(), geo, ldk, buf.cols.data());
    plan.run(buf.cols.data(), p_size, ldk, buf.pixels.data(), o_size, isa, gemm_threads);
    transpose_to_planes(buf.pixels.data(), p_size, o_size, out + b * out_image);
  };
  // Enough images: one image per task, each GEMM single-threaded with its data in L2. Otherwise
  // one image after the other, each GEMM on all the threads.
  const bool per_image = threads > 1 && geo.batch >= threads;
  const int image_threads = per_image ? threads : 1, gemm_threads = per_image ? 1 : threads;
  std::vector<ImageBuffers> buffers;  // one per thread, allocated outside the parallel region
  for (int i = 0; i < image_threads; ++i) buffers.emplace_back(geo, ldk);
  parallel_tasks(geo.batch, image_threads,
                 [&](int thread, int64_t b) { one_image(b, gemm_threads, buffers[thread]); });
}

void maxpool2d_u8(const uint8_t* x, int64_t planes, int64_t height, int64_t width, int64_t kernel_h,
                  int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                  uint8_t* out, int threads) {
  const int64_t oh_size = (height + 2 * pad_h - kernel_h) / stride_h + 1;
  const int64_t ow_size = (width + 2 * pad_w - kernel_w) / stride_w + 1;
  if (static_cast<double>(planes) * oh_size * ow_size * kernel_h * kernel_w < (1 << 16)) threads = 1;
  parallel_tasks(planes, threads, [&](int, int64_t plane) {
    const uint8_t* src = x + plane * height * width;
    uint8_t* dst = out + plane * oh_size * ow_size;
    for (int64_t oh = 0; oh < oh_size; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * stride_h - pad_h, 0);
      const int64_t h1 = std::min<int64_t>(oh * stride_h - pad_h + kernel_h, height);
      for (int64_t ow = 0; ow < ow_size; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * stride_w - pad_w, 0);
        const int64_t w1 = std::min<int64_t>(ow * stride_w - pad_w + kernel_w, width);
        uint8_t best = 0;  // padding never wins: it is ignored, as in torch (pad <= kernel / 2)
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) best = std::max(best, src[h * width + w]);
        dst[oh * ow_size + ow] = best;
      }
    }
  });
}

}  // namespace labkit
