"""Measuring a model honestly: parameters, non-zeros, MACs, latency and real bytes on disk.

``sys.getsizeof(model)`` answers "how big is the Python object that *points* at the weights?" —
a few dozen bytes, the same for a 10-parameter and a 10-million-parameter network. The size of a
model is the size of the file you would ship, so this package writes that file, in one of
``STORAGE_FORMATS``, and asks the file system how long it is.

One concept per module, every public name re-exported here (``measure.size_on_disk``):

* ``counting``: ``count_parameters``, ``count_nonzeros``, ``sparsity``, ``effective_state_dict``.
* ``compute``: ``macs``, ``total_macs``, ``nonzero_macs`` (``LayerMACs``), traced with forward hooks.
* ``timing``: ``latency``, ``compare_latency`` (benchmarks and notebooks, never timed asserts in tests).
* ``bitpack``: ``pack_bits``, ``unpack_bits``.
* ``encodings``: the payload of one tensor per storage format (``STORAGE_FORMATS``, ``VALUES_FORMATS``).
* ``storage``: the file — ``serialize``, ``load_serialized``, ``size_on_disk``, ``size_report``,
  ``torch_save_bytes``, ``tensor_header_bytes``, ``shared_tensors``; its byte layout is in its docstring.
* ``layer_report``: ``report(model)`` → ``Report``, one table per model.
* ``weights``: ``weight_tensors`` (a model's weights by name), ``weight_statistics`` (one tensor's summary).

Explained in notebooks/00_why_compress.ipynb.
"""

from labkit.measure.bitpack import pack_bits, unpack_bits
from labkit.measure.compute import LayerMACs, macs, nonzero_macs, total_macs
from labkit.measure.counting import count_nonzeros, count_parameters, effective_state_dict, sparsity
from labkit.measure.encodings import STORAGE_FORMATS, VALUES_FORMATS
from labkit.measure.layer_report import Report, report
from labkit.measure.storage import (FILE_HEADER_BYTES, FILE_MAGIC, FILE_VERSION, MAX_TENSOR_ELEMENTS, load_serialized,
                                    serialize, shared_tensors, size_on_disk, size_report, tensor_header_bytes,
                                    torch_save_bytes)
from labkit.measure.timing import compare_latency, latency
from labkit.measure.weights import weight_statistics, weight_tensors

__all__ = ["FILE_HEADER_BYTES", "FILE_MAGIC", "FILE_VERSION", "LayerMACs", "MAX_TENSOR_ELEMENTS", "Report",
           "STORAGE_FORMATS", "VALUES_FORMATS", "compare_latency", "count_nonzeros", "count_parameters",
           "effective_state_dict", "latency", "load_serialized", "macs", "nonzero_macs", "pack_bits", "report",
           "serialize", "shared_tensors", "size_on_disk", "size_report", "sparsity", "tensor_header_bytes",
           "torch_save_bytes", "total_macs", "unpack_bits", "weight_statistics", "weight_tensors"]
