// Placeholder until the int8 kernels land (issue 4); see labkit/kernels/reference.py.
#include <pybind11/pybind11.h>
PYBIND11_MODULE(_int8, m) { m.doc() = "labkit int8 kernels (placeholder)"; }
