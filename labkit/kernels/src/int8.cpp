// pybind11 bindings of labkit.kernels._int8. Every entry point validates its arguments again (the
// Python wrapper in labkit/kernels/api.py checks first, with friendlier messages): bad input raises
// TypeError (py::type_error) or ValueError (std::invalid_argument), never crashes the process.
// Heavy loops run with the GIL released. Arithmetic: labkit/kernels/reference.py, docstring.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "driver.h"
#include "int4.h"

namespace py = pybind11;
using namespace labkit;

namespace labkit {
void bind_int4(py::module_& m);  // kernels.Int4Weights: int4_bindings.cpp
}  // namespace labkit

namespace {

constexpr int64_t kMaxK = 65536;  // 255 * 128 * 65536 < 2^31: int32 sums are exact

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

template <typename T>
const char* dtype_name() {
  if (std::is_same<T, uint8_t>::value) return "uint8";
  if (std::is_same<T, int8_t>::value) return "int8";
  if (std::is_same<T, float>::value) return "float32";
  return "int32";
}

// The array behind `obj` if it is a C-contiguous ndarray of dtype T with `ndim` non-zero dims.
template <typename T>
py::array_t<T> checked(const py::handle& obj, const std::string& name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(name + " must be a numpy.ndarray of dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::type_error(name + " must have dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(obj.attr("dtype"))));
  auto arr = py::reinterpret_borrow<py::array_t<T>>(obj);
  if (arr.ndim() != ndim)
    fail(name + " must have " + std::to_string(ndim) + " dimensions, got " + std::to_string(arr.ndim()));
  if (!(arr.flags() & py::array::c_style)) fail(name + " must be C-contiguous (use numpy.ascontiguousarray)");
  // e.g. numpy.frombuffer at an odd offset: reading its int32 through an int32* is undefined.
  if (!(arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    fail(name + " must be aligned to its dtype (copy it: numpy.array(" + name + "))");
  for (int d = 0; d < ndim; ++d)
    if (arr.shape(d) < 1) fail(name + " must not have a zero-size dimension");
  return arr;
}

// An integer argument in [low, high], or ValueError naming it and the range.
int64_t in_range(int64_t v, int64_t low, int64_t high, const std::string& name) {
  if (v < low || v > high)
    fail(name + " must be an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "], got " +
         std::to_string(v));
  return v;
}

// The product of positive sizes, or ValueError if it exceeds `limit` (checked at every step, so an
// absurd size cannot wrap around int64 and pass).
int64_t bounded_product(std::initializer_list<int64_t> factors, int64_t limit, const std::string& what) {
  int64_t product = 1;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(product, f, &product) || product > limit)
      fail(what + " would need more than " + std::to_string(limit) + " bytes (1 GiB): use less padding or a "
           "smaller image");
  return product;
}

int32_t zero_point(int64_t v, const std::string& name) {
  if (v < 0 || v > 255) fail(name + " must be an integer in [0, 255], got " + std::to_string(v));
  return static_cast<int32_t>(v);
}

// multiplier / shift: int32 arrays of length 1 (per tensor) or n (per output column).
RequantParams requant_params(const py::handle& multiplier, const py::handle& shift, int64_t n,
                             int64_t out_zero_point, bool relu) {
  auto m = checked<int32_t>(multiplier, "multiplier", 1);
  auto s = checked<int32_t>(shift, "shift", 1);
  for (auto* a : {&m, &s})
    if (a->shape(0) != 1 && a->shape(0) != n)
      fail(std::string(a == &m ? "multiplier" : "shift") + " must have 1 or " + std::to_string(n) +
           " entries (one per output channel), got " + std::to_string(a->shape(0)));
  RequantParams rq;
  rq.multiplier.resize(static_cast<size_t>(n));
  rq.shift.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t mi = m.data()[m.shape(0) == 1 ? 0 : i], si = s.data()[s.shape(0) == 1 ? 0 : i];
    if (mi <= 0) fail("multiplier must be in [1, 2**31 - 1], got " + std::to_string(mi));
    if (si < -31 || si > 30) fail("shift must be in [-31, 30], got " + std::to_string(si));
    rq.multiplier[i] = mi;
    rq.shift[i] = si;
  }
  rq.out_zero_point = zero_point(out_zero_point, "out_zero_point");
  rq.relu = relu;
  return rq;
}

std::vector<int32_t> bias_vector(const py::handle& bias, int64_t n) {
  if (bias.is_none()) return {};
  auto b = checked<int32_t>(bias, "bias", 1);
  if (b.shape(0) != n)
    fail("bias must have " + std::to_string(n) + " entries (one per output channel), got " + std::to_string(b.shape(0)));
  return std::vector<int32_t>(b.data(), b.data() + n);
}

Isa isa_from_name(const std::string& name) {
  Isa isa;
  if (!parse_isa(name, &isa)) fail("unknown ISA '" + name + "'; known: ref, avx2, avx512vnni, amx");
  const std::string reason = isa_unavailable_reason(isa);
  if (!reason.empty()) fail("ISA '" + name + "' is not available (" + reason + ")");
  return isa;
}

// A copy of w's n * k bytes (taken with the GIL held).
std::vector<int8_t> copy_rows(const py::array_t<int8_t>& w) {
  return std::vector<int8_t>(w.data(), w.data() + w.size());
}

// A linear layer's weights: w int8 [N, K] packed once, int32 bias [N] (zeros if None).
class PackedLinear {
 public:
  PackedLinear(const py::handle& w_obj, const py::handle& bias_obj) {
    auto w = checked<int8_t>(w_obj, "w", 2);
    if (w.shape(1) > kMaxK) fail("w must have K <= 65536 columns, got " + std::to_string(w.shape(1)));
    weights_ = std::make_unique<PackedWeights>(copy_rows(w), w.shape(0), w.shape(1));
    bias_ = bias_vector(bias_obj, w.shape(0));
    py::gil_scoped_release release;
    weights_->prepare(current_isa(), PackedWeights::kLayout | PackedWeights::kSums, num_threads());
  }
  int64_t in_features() const { return weights_->k(); }
  int64_t out_features() const { return weights_->n(); }
  py::array_t<int32_t> weight_sums() const {
    weights_->prepare(current_isa(), PackedWeights::kSums, num_threads());
    return py::array_t<int32_t>(static_cast<py::ssize_t>(weights_->n()), weights_->row_sums());
  }
  const uint8_t* rows(const py::array_t<uint8_t>& x) const {
    if (x.shape(1) != weights_->k())
      fail("x has K = " + std::to_string(x.shape(1)) + " columns but the weights have K = " + std::to_string(weights_->k()));
    return x.data();
  }
  py::array_t<int32_t> gemm(const py::handle& x_obj) {
    auto x = checked<uint8_t>(x_obj, "x", 2);
    const uint8_t* a = rows(x);
    const int64_t m = x.shape(0);
    py::array_t<int32_t> out({m, weights_->n()});
    int32_t* dst = out.mutable_data();
    {
      py::gil_scoped_release release;
      gemm_s32(a, m, *weights_, dst, current_isa(), num_threads());
    }
    return out;
  }
  py::array_t<uint8_t> forward(const py::handle& x_obj, int64_t x_zero_point, const py::handle& multiplier,
                               const py::handle& shift, int64_t out_zero_point, bool relu) {
    auto x = checked<uint8_t>(x_obj, "x", 2);
    const uint8_t* a = rows(x);
    const int32_t zp = zero_point(x_zero_point, "x_zero_point");
    const RequantParams rq = requant_params(multiplier, shift, weights_->n(), out_zero_point, relu);
    const int64_t m = x.shape(0);
    py::array_t<uint8_t> out({m, weights_->n()});
    uint8_t* dst = out.mutable_data();
    {
      py::gil_scoped_release release;
      linear_u8(a, m, *weights_, bias_.empty() ? nullptr : bias_.data(), zp, rq, dst, weights_->n(),
                current_isa(), num_threads());
    }
    return out;
  }

 protected:
  std::unique_ptr<PackedWeights> weights_;
  std::vector<int32_t> bias_;
};

// A convolution's weights: w int8 [O, C, KH, KW] packed as [O, C*KH*KW], stride and zero padding.
class PackedConv2d {
 public:
  PackedConv2d(const py::handle& w_obj, const py::handle& bias_obj, int64_t stride_h, int64_t stride_w,
               int64_t pad_h, int64_t pad_w) {
    auto w = checked<int8_t>(w_obj, "w", 4);
    geo_.out_channels = w.shape(0);
    geo_.channels = w.shape(1);
    geo_.kernel_h = w.shape(2);
    geo_.kernel_w = w.shape(3);
    geo_.stride_h = in_range(stride_h, 1, kMaxStride, "stride");
    geo_.stride_w = in_range(stride_w, 1, kMaxStride, "stride");
    geo_.pad_h = in_range(pad_h, 0, kMaxPadding, "padding");
    geo_.pad_w = in_range(pad_w, 0, kMaxPadding, "padding");
    const int64_t k = geo_.channels * geo_.kernel_h * geo_.kernel_w;
    if (k > kMaxK) fail("w must have C*KH*KW <= 65536, got " + std::to_string(k));
    // [O, C*KH*KW] with K rounded up to a multiple of 4 by zero weights: im2col rows then hold
    // whole groups of 4 k (conv.cpp), and the zeros change no sum.
    const int64_t k_padded = (k + 3) / 4 * 4;
    std::vector<int8_t> rows(static_cast<size_t>(geo_.out_channels * k_padded), 0);
    for (int64_t o = 0; o < geo_.out_channels; ++o)
      std::copy(w.data() + o * k, w.data() + (o + 1) * k, rows.begin() + o * k_padded);
    weights_ = std::make_unique<PackedWeights>(std::move(rows), geo_.out_channels, k_padded);
    bias_ = bias_vector(bias_obj, geo_.out_channels);
    // The row sums now; the SIMD paths convolve from the rows, the others pack on first use.
    weights_->prepare(current_isa(), PackedWeights::kSums, 1);
  }
  py::array_t<uint8_t> forward(const py::handle& x_obj, int64_t x_zero_point, const py::handle& multiplier,
                               const py::handle& shift, int64_t out_zero_point, bool relu) {
    auto x = checked<uint8_t>(x_obj, "x", 4);
    ConvGeometry geo = geo_;
    geo.batch = x.shape(0);
    geo.height = x.shape(2);
    geo.width = x.shape(3);
    if (x.shape(1) != geo.channels)
      fail("x has " + std::to_string(x.shape(1)) + " channels but w expects " + std::to_string(geo.channels));
    if (geo.height + 2 * geo.pad_h < geo.kernel_h || geo.width + 2 * geo.pad_w < geo.kernel_w)
      fail("the kernel is larger than the padded input");
    // The work buffers of one image (conv.cpp), each at most kMaxImageBytes.
    bounded_product({geo.channels, geo.height + 2 * geo.pad_h, geo.width + 2 * geo.pad_w}, kMaxImageBytes,
                    "the padded image (C*(H+2*padding)*(W+2*padding) bytes)");
    bounded_product({geo.out_h(), geo.out_w(), geo.channels * geo.kernel_h * geo.kernel_w}, kMaxImageBytes,
                    "one image's im2col patches (OH*OW*C*KH*KW bytes)");
    const int32_t zp = zero_point(x_zero_point, "x_zero_point");
    const RequantParams rq = requant_params(multiplier, shift, geo.out_channels, out_zero_point, relu);
    py::array_t<uint8_t> out({geo.batch, geo.out_channels, geo.out_h(), geo.out_w()});
    uint8_t* dst = out.mutable_data();
    const uint8_t* src = x.data();
    {
      py::gil_scoped_release release;
      conv2d_u8(src, geo, *weights_, bias_.empty() ? nullptr : bias_.data(), zp, rq, dst, current_isa(),
                num_threads());
    }
    return out;
  }

 private:
  ConvGeometry geo_{};
  std::unique_ptr<PackedWeights> weights_;
  std::vector<int32_t> bias_;
};

py::array_t<int32_t> gemm_u8s8s32(const py::handle& a_obj, const py::handle& b_obj) {
  auto a = checked<uint8_t>(a_obj, "a", 2);
  auto b = checked<int8_t>(b_obj, "b", 2);
  if (a.shape(1) != b.shape(1))
    fail("a is [M, K] = [" + std::to_string(a.shape(0)) + ", " + std::to_string(a.shape(1)) + "] and b is [N, K] = [" +
         std::to_string(b.shape(0)) + ", " + std::to_string(b.shape(1)) + "]: K differs");
  if (a.shape(1) > kMaxK) fail("K must be <= 65536 so that int32 sums are exact, got " + std::to_string(a.shape(1)));
  const int64_t m = a.shape(0), n = b.shape(0), k = a.shape(1);
  py::array_t<int32_t> out({m, n});
  int32_t* dst = out.mutable_data();
  const uint8_t* pa = a.data();
  const int8_t* pb = b.data();
  {
    py::gil_scoped_release release;
    PackedWeights w(pb, n, k);  // borrowed: packed into this thread's work buffer
    gemm_s32(pa, m, w, dst, current_isa(), num_threads());
  }
  return out;
}

// The fused linear layer in one call: w packed (borrowed, with its row sums) for this call only.
py::array_t<uint8_t> qlinear(const py::handle& x_obj, int64_t x_zero_point, const py::handle& w_obj,
                             const py::handle& bias_obj, const py::handle& multiplier, const py::handle& shift,
                             int64_t out_zero_point, bool relu) {
  auto x = checked<uint8_t>(x_obj, "x", 2);
  auto w = checked<int8_t>(w_obj, "w", 2);
  const int64_t m = x.shape(0), n = w.shape(0), k = w.shape(1);
  if (x.shape(1) != k)
    fail("x has K = " + std::to_string(x.shape(1)) + " columns but w has K = " + std::to_string(k));
  if (k > kMaxK) fail("w must have K <= 65536 columns, got " + std::to_string(k));
  const int32_t zp = zero_point(x_zero_point, "x_zero_point");
  const std::vector<int32_t> bias = bias_vector(bias_obj, n);
  const RequantParams rq = requant_params(multiplier, shift, n, out_zero_point, relu);
  py::array_t<uint8_t> out({m, n});
  uint8_t* dst = out.mutable_data();
  const uint8_t* pa = x.data();
  const int8_t* pw = w.data();
  {
    py::gil_scoped_release release;
    PackedWeights packed(pw, n, k);
    linear_u8(pa, m, packed, bias.empty() ? nullptr : bias.data(), zp, rq, dst, n, current_isa(), num_threads());
  }
  return out;
}

// The int4 weight-only linear layer (int4.h; labkit/llm/int4.py's format): x float32 [M, K], packed
// uint8 [N, K/2], scale float32 and zero_point uint8 [N, K/group_size], bias float32 [N] or None.
py::array_t<float> int4_linear_op(const py::handle& x_obj, const py::handle& packed_obj, const py::handle& scale_obj,
                                  const py::handle& zero_point_obj, int64_t group_size, const py::handle& bias_obj) {
  auto x = checked<float>(x_obj, "x", 2);
  auto packed = checked<uint8_t>(packed_obj, "packed", 2);
  auto scale = checked<float>(scale_obj, "scale", 2);
  auto zero_point = checked<uint8_t>(zero_point_obj, "zero_point", 2);
  const int64_t m = x.shape(0), k = x.shape(1), n = packed.shape(0);
  if (k % 2) fail("x's width K must be even (two 4-bit codes per byte), got " + std::to_string(k));
  if (packed.shape(1) != k / 2)
    fail("packed must be [N, K/2] = [N, " + std::to_string(k / 2) + "] for x of width K = " + std::to_string(k) +
         ", got [" + std::to_string(n) + ", " + std::to_string(packed.shape(1)) + "]");
  in_range(group_size, 1, k, "group_size");
  if (k % group_size) fail("group_size must divide K = " + std::to_string(k) + ", got " + std::to_string(group_size));
  const int64_t groups = k / group_size;
  for (const auto& [name, rows, cols] : {std::make_tuple("scale", scale.shape(0), scale.shape(1)),
                                         std::make_tuple("zero_point", zero_point.shape(0), zero_point.shape(1))})
    if (rows != n || cols != groups)
      fail(std::string(name) + " must be [N, K/group_size] = [" + std::to_string(n) + ", " + std::to_string(groups) +
           "], got [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  const uint8_t* z = zero_point.data();
  for (int64_t i = 0; i < n * groups; ++i)
    if (z[i] > 15) fail("zero_point entries must be in [0, 15] (4-bit codes), got " + std::to_string(int(z[i])));
  Int4Problem p;
  if (!bias_obj.is_none()) {
    auto bias = checked<float>(bias_obj, "bias", 1);
    if (bias.shape(0) != n)
      fail("bias must have " + std::to_string(n) + " entries (one per output), got " + std::to_string(bias.shape(0)));
    p.bias = bias.data();  // bias_obj keeps the array alive
  }
  py::array_t<float> out({m, n});
  p.x = x.data();
  p.m = m;
  p.k = k;
  p.n = n;
  p.packed = packed.data();
  p.scale = scale.data();
  p.zero_point = z;
  p.group_size = group_size;
  p.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    int4_linear(p, current_isa(), num_threads());
  }
  return out;
}

py::array_t<uint8_t> requantize(const py::handle& acc_obj, const py::handle& multiplier, const py::handle& shift,
                                int64_t out_zero_point, bool relu) {
  auto acc = checked<int32_t>(acc_obj, "acc", 2);
  const int64_t rows = acc.shape(0), cols = acc.shape(1);
  const RequantParams rq = requant_params(multiplier, shift, cols, out_zero_point, relu);
  py::array_t<uint8_t> out({rows, cols});
  uint8_t* dst = out.mutable_data();
  const int32_t* src = acc.data();
  {
    py::gil_scoped_release release;
    requantize_s32(src, rows, cols, rq, dst, current_isa(), num_threads());
  }
  return out;
}

py::array_t<uint8_t> maxpool(const py::handle& x_obj, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                             int64_t stride_w, int64_t pad_h, int64_t pad_w) {
  auto x = checked<uint8_t>(x_obj, "x", 4);
  in_range(kernel_h, 1, kMaxPoolKernel, "kernel_size");
  in_range(kernel_w, 1, kMaxPoolKernel, "kernel_size");
  in_range(stride_h, 1, kMaxStride, "stride");
  in_range(stride_w, 1, kMaxStride, "stride");
  in_range(pad_h, 0, kernel_h / 2, "padding (at most kernel_size / 2)");
  in_range(pad_w, 0, kernel_w / 2, "padding (at most kernel_size / 2)");
  const int64_t h = x.shape(2), w = x.shape(3);
  if (h + 2 * pad_h < kernel_h || w + 2 * pad_w < kernel_w) fail("the kernel is larger than the padded input");
  const int64_t oh = (h + 2 * pad_h - kernel_h) / stride_h + 1, ow = (w + 2 * pad_w - kernel_w) / stride_w + 1;
  py::array_t<uint8_t> out({x.shape(0), x.shape(1), oh, ow});
  uint8_t* dst = out.mutable_data();
  const uint8_t* src = x.data();
  const int64_t planes = x.shape(0) * x.shape(1);
  {
    py::gil_scoped_release release;
    maxpool2d_u8(src, planes, h, w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dst, num_threads());
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_int8, m) {
  m.doc() = "labkit int8 kernels (C++17, OpenMP, runtime SIMD dispatch). Use labkit.kernels, which "
            "validates arguments and documents every function; the arithmetic is written down in "
            "labkit.kernels.reference.";
  m.def("isa", [] { return std::string(isa_name(current_isa())); });
  m.def("available_isas", [] {
    std::vector<std::string> names;
    for (Isa isa : available_isas()) names.emplace_back(isa_name(isa));
    return names;
  });
  m.def("set_isa", [](const std::string& name) { set_isa(isa_from_name(name)); }, py::arg("name"));
  m.def("get_num_threads", [] { return num_threads(); });
  m.def("set_num_threads", [](int64_t n) { set_num_threads(static_cast<int>(in_range(n, 1, kMaxThreads, "n"))); },
        py::arg("n"));
  m.def("gemm_u8s8s32", &gemm_u8s8s32, py::arg("a"), py::arg("b"));
  m.def("qlinear", &qlinear, py::arg("x"), py::arg("x_zero_point"), py::arg("w"), py::arg("bias"),
        py::arg("multiplier"), py::arg("shift"), py::arg("out_zero_point"), py::arg("relu") = false);
  m.def("int4_linear", &int4_linear_op, py::arg("x"), py::arg("packed"), py::arg("scale"), py::arg("zero_point"),
        py::arg("group_size"), py::arg("bias") = py::none());
  bind_int4(m);
  m.def("quantize_multiplier", &quantize_multiplier, py::arg("real_multiplier"));
  m.def("requantize", &requantize, py::arg("acc"), py::arg("multiplier"), py::arg("shift"),
        py::arg("out_zero_point"), py::arg("relu") = false);
  m.def("maxpool2d_u8", &maxpool, py::arg("x"), py::arg("kernel_h"), py::arg("kernel_w"), py::arg("stride_h"),
        py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"));
  py::class_<PackedLinear>(m, "PackedLinear")
      .def(py::init<const py::handle&, const py::handle&>(), py::arg("w"), py::arg("bias") = py::none())
      .def_property_readonly("in_features", &PackedLinear::in_features)
      .def_property_readonly("out_features", &PackedLinear::out_features)
      .def_property_readonly("weight_sums", &PackedLinear::weight_sums)
      .def("gemm", &PackedLinear::gemm, py::arg("x"))
      .def("forward", &PackedLinear::forward, py::arg("x"), py::arg("x_zero_point"), py::arg("multiplier"),
           py::arg("shift"), py::arg("out_zero_point"), py::arg("relu") = false);
  py::class_<PackedConv2d>(m, "PackedConv2d")
      .def(py::init<const py::handle&, const py::handle&, int64_t, int64_t, int64_t, int64_t>(), py::arg("w"),
           py::arg("bias"), py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"))
      .def("forward", &PackedConv2d::forward, py::arg("x"), py::arg("x_zero_point"), py::arg("multiplier"),
           py::arg("shift"), py::arg("out_zero_point"), py::arg("relu") = false);
  // Benchmark and tuning helpers (not part of the public API).
  m.def("_set_blocking", [](const std::string& name, int64_t kc, int64_t mc, int64_t nc) {
    if (kc < 4 || mc < 1 || nc < 1) fail("blocking sizes must be positive (kc >= 4)");
    Isa isa;
    if (!parse_isa(name, &isa)) fail("unknown ISA '" + name + "'");
    blocking(isa) = Blocking{kc, mc, nc};
  });
  m.def("_get_blocking", [](const std::string& name) {
    Isa isa;
    if (!parse_isa(name, &isa)) fail("unknown ISA '" + name + "'");
    const Blocking b = blocking(isa);
    return py::make_tuple(b.kc, b.mc, b.nc);
  });
  m.def("_isa_unavailable_reason", [](const std::string& name) {
    Isa isa;
    if (!parse_isa(name, &isa)) fail("unknown ISA '" + name + "'");
    return isa_unavailable_reason(isa);
  });
  // Test helper: the refusal message for given CPU/OS facts (the real ones are asked once).
  m.def("_amx_problem", [](bool built, bool cpu_amx, bool cpu_vnni, bool os_tile_state, int permission_error) {
    AmxFacts facts;
    facts.built = built;
    facts.cpu_amx = cpu_amx;
    facts.cpu_vnni = cpu_vnni;
    facts.os_tile_state = os_tile_state;
    facts.permission_error = permission_error;
    return amx_problem(facts);
  });
  // What the one-call ops do before multiplying: pack w [N, K] for the ISA (borrowed, into the
  // thread's work buffer), with the row sums if `sums`; for the benchmark's packing throughput.
  m.def("_pack", [](const py::handle& w_obj, const std::string& name, bool sums) {
    auto w = checked<int8_t>(w_obj, "w", 2);
    const Isa isa = isa_from_name(name);
    const int8_t* pw = w.data();
    const int64_t n = w.shape(0), k = w.shape(1);
    py::gil_scoped_release release;
    PackedWeights packed(pw, n, k);
    packed.prepare(isa, PackedWeights::kLayout | (sums ? PackedWeights::kSums : 0), num_threads());
  }, py::arg("w"), py::arg("isa"), py::arg("sums") = true);
  m.def("_probe_peak", [](const std::string& name, int64_t iterations) {
    const Isa isa = isa_from_name(name);
    double ops = 0, seconds = 0;
    {
      py::gil_scoped_release release;
      seconds = probe_peak_seconds(isa, iterations, &ops);
    }
    return py::make_tuple(seconds, ops);
  });
  // Test helper: `tasks` tasks on `threads` threads, the last one throwing std::bad_alloc, which
  // must come back as MemoryError instead of aborting the process from inside the OpenMP region.
  m.def("_throw_in_parallel_region", [](int64_t tasks, int64_t threads) {
    in_range(tasks, 1, 1 << 20, "tasks");
    in_range(threads, 1, kMaxThreads, "threads");
    py::gil_scoped_release release;
    parallel_tasks(tasks, static_cast<int>(threads), [tasks](int, int64_t t) {
      if (t == tasks - 1) throw std::bad_alloc();
    });
  });
  m.def("_measure_clock_hz", [] {
    py::gil_scoped_release release;
    return measure_clock_hz();
  });
}
