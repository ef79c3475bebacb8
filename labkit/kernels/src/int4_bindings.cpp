// pybind11 binding of kernels.Int4Weights (int4.h, "prepared weights"): the int4 weight-only layer
// checked and rearranged once, so that a call checks only x. Bad input raises TypeError
// (py::type_error) or ValueError (std::invalid_argument) naming the argument, never crashes.
// The one-call int4_linear is bound in int8.cpp; registered from its PYBIND11_MODULE (bind_int4).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "driver.h"
#include "int4.h"

namespace py = pybind11;
using namespace labkit;

namespace {

[[noreturn]] void refuse(const std::string& msg) { throw std::invalid_argument(msg); }

std::string shape_text(const py::array& a) {
  std::string out = "[";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) out += (d ? ", " : "") + std::to_string(a.shape(d));
  return out + "]";
}

// obj as a C-contiguous, aligned ndarray of T with one of the dimension counts [ndim_low, ndim_high],
// no zero-size dimension; else TypeError / ValueError naming `name`.
template <typename T>
py::array_t<T> array_arg(const py::handle& obj, const char* name, const char* dtype, int ndim_low, int ndim_high) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of dtype " + dtype +
                         " (torch tensors: pass t.numpy()), got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::type_error(std::string(name) + " must have dtype " + dtype + ", got " +
                         std::string(py::str(obj.attr("dtype"))));
  auto a = py::reinterpret_borrow<py::array_t<T>>(obj);
  if (a.ndim() < ndim_low || a.ndim() > ndim_high)
    refuse(std::string(name) + " must have " + std::to_string(ndim_low) +
           (ndim_high > ndim_low ? " or " + std::to_string(ndim_high) : std::string()) + " dimensions, got shape " +
           shape_text(a));
  if (!(a.flags() & py::array::c_style))
    refuse(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    refuse(std::string(name) + " must be aligned to its dtype (copy it: numpy.array(" + name + "))");
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    if (a.shape(d) < 1) refuse(std::string(name) + " must not have a zero-size dimension, got shape " + shape_text(a));
  return a;
}

class Int4WeightsModule {
 public:
  Int4WeightsModule(const py::handle& packed_obj, const py::handle& scale_obj, const py::handle& zero_point_obj,
                    int64_t group_size, const py::handle& bias_obj) {
    auto packed = array_arg<uint8_t>(packed_obj, "packed", "uint8", 2, 2);
    auto scale = array_arg<float>(scale_obj, "scale", "float32", 2, 2);
    auto zero_point = array_arg<uint8_t>(zero_point_obj, "zero_point", "uint8", 2, 2);
    const int64_t n = packed.shape(0), k = 2 * packed.shape(1);
    if (group_size < 1 || group_size > k || k % group_size)
      refuse("group_size must divide K = 2 * packed.shape[1] = " + std::to_string(k) + ", got " +
             std::to_string(group_size));
    const int64_t groups = k / group_size;
    for (const py::array* a : {static_cast<const py::array*>(&scale), static_cast<const py::array*>(&zero_point)})
      if (a->shape(0) != n || a->shape(1) != groups)
        refuse(std::string(a == &scale ? "scale" : "zero_point") + " must be [N, K/group_size] = [" +
               std::to_string(n) + ", " + std::to_string(groups) + "], got " + shape_text(*a));
    const uint8_t* z = zero_point.data();
    for (int64_t i = 0; i < n * groups; ++i)
      if (z[i] > 15)
        refuse("zero_point entries must be in [0, 15] (4-bit codes), got " + std::to_string(int(z[i])));
    Int4Problem src;
    if (!bias_obj.is_none()) {
      auto bias = array_arg<float>(bias_obj, "bias", "float32", 1, 1);
      if (bias.shape(0) != n)
        refuse("bias must have " + std::to_string(n) + " entries (one per output), got " +
               std::to_string(bias.shape(0)));
      src.bias = bias.data();  // bias_obj keeps it alive until the copy below
    }
    src.packed = packed.data();
    src.scale = scale.data();
    src.zero_point = z;
    src.n = n;
    src.k = k;
    src.group_size = group_size;
    layout_ = int4_layout(n, k, group_size);
    const int64_t per_group = layout_.blocks * layout_.groups * kInt4Lanes;
    codes_ = aligned_buffer(sizeof(uint32_t) * layout_.blocks * layout_.spans * kInt4Lanes);
    scale_ = aligned_buffer(sizeof(float) * per_group);
    scaled_zero_ = aligned_buffer(sizeof(float) * per_group);
    if (src.bias) bias_ = aligned_buffer(sizeof(float) * layout_.blocks * kInt4Lanes);
    int4_prepare(src, layout_, static_cast<uint32_t*>(codes_.get()), static_cast<float*>(scale_.get()),
                 static_cast<float*>(scaled_zero_.get()), static_cast<float*>(bias_.get()));
    layout_.codes = static_cast<const uint32_t*>(codes_.get());
    layout_.scale = static_cast<const float*>(scale_.get());
    layout_.scaled_zero = static_cast<const float*>(scaled_zero_.get());
    layout_.bias = static_cast<const float*>(bias_.get());
  }

  // x float32 [K] -> [N], or [M, K] -> [M, N].
  py::array_t<float> forward(const py::handle& x_obj) const {
    auto x = array_arg<float>(x_obj, "x", "float32", 1, 2);
    const bool vector = x.ndim() == 1;
    const int64_t m = vector ? 1 : x.shape(0), k = x.shape(x.ndim() - 1);
    if (k != layout_.k)
      refuse("x is " + shape_text(x) + " but the layer has K = " + std::to_string(layout_.k) + " inputs");
    py::array_t<float> out = vector ? py::array_t<float>(layout_.n) : py::array_t<float>({m, layout_.n});
    const float* px = x.data();
    float* po = out.mutable_data();
    if (static_cast<double>(m) * layout_.n * layout_.k < kMinParallelWork) {  // microseconds: keep the GIL
      int4_prepared_linear(layout_, px, m, po, current_isa(), 1);
    } else {
      py::gil_scoped_release release;
      int4_prepared_linear(layout_, px, m, po, current_isa(), num_threads());
    }
    return out;
  }

  int64_t in_features() const { return layout_.k; }
  int64_t out_features() const { return layout_.n; }
  int64_t group_size() const { return layout_.group_size; }
  // The path a call takes now: "ref" for group sizes that are not a multiple of 8.
  std::string path() const {
    const Isa isa = current_isa();
    return layout_.group_size % kInt4Span ? "ref" : isa_name(isa);
  }

 private:
  Int4Prepared layout_;
  AlignedBuffer codes_, scale_, scaled_zero_, bias_;
};

}  // namespace

namespace labkit {

void bind_int4(py::module_& m) {
  py::class_<Int4WeightsModule>(m, "Int4Weights")
      .def(py::init<const py::handle&, const py::handle&, const py::handle&, int64_t, const py::handle&>(),
           py::arg("packed"), py::arg("scale"), py::arg("zero_point"), py::arg("group_size"),
           py::arg("bias") = py::none())
      .def("forward", &Int4WeightsModule::forward, py::arg("x"))
      .def_property_readonly("in_features", &Int4WeightsModule::in_features)
      .def_property_readonly("out_features", &Int4WeightsModule::out_features)
      .def_property_readonly("group_size", &Int4WeightsModule::group_size)
      .def_property_readonly("path", &Int4WeightsModule::path);
}

}  // namespace labkit
