"""labkit.pipeline — compression techniques composed, measured, stored, swept and exported (chapter 14).

- ``relative_index``  Deep Compression's sparse positions: gaps in a few bits, filler zeros
- ``streams``         integer symbol streams: fixed-width packing or canonical Huffman
- ``fileformat``      the compressed-model file (header, checksum, exact per-tensor encodings)

Import direction: ``pipeline`` uses ``quant``, ``prune``, ``distill``, ``lowrank`` and below; only
``widgets`` and ``exercises`` import it. Explained in notebooks/14_pipeline_tradeoffs_export.ipynb
"""
