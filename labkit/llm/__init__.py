"""labkit.llm — compressing a small transformer language model (chapter 16, beyond the seeds).

One concept per module:

- ``corpus``       Python's documentation text (shipped, PSF licence), characters ↔ ids, batches
- ``model``        ``TinyGPT``: a decoder-only transformer from scratch, ``GPTConfig``, ``generate``, ``KVCache``
- ``training``     AdamW training on the corpus; ``checkpoint``: the shipped model, verified, rebuildable
- ``evaluate``     perplexity over held-out windows with a 95 % interval; paired PPL ratios
- ``rtn``          group-wise weight quantization (``QuantizedWeight``) and round-to-nearest
- ``gptq``         GPTQ: inverse-Hessian error compensation, Cholesky, lazy batches, act-order (Frantar et al. 2023)
- ``awq``          AWQ: activation-aware per-channel scale search, then the clip search (Lin et al. 2024)
- ``weight_only``  RTN / GPTQ (± act-order) / AWQ (± clip) applied to every block linear of a model, sequentially
- ``activations``  calibration inputs, per-channel maxima, outlier channels (and a controlled injection)
- ``smoothquant``  SmoothQuant's migration (α) and simulated W8A8 layers (Xiao et al. 2023)
- ``llm_int8``     LLM.int8()'s mixed-precision decomposition, outliers found per forward pass (Dettmers et al. 2022)
- ``int4``         packed int4 weights (two per byte) with group scales; a torch reference product; ``Int4Linear``
                   on the compiled kernel (``kernels.Int4Weights``, prepared once)
- ``int8_kernel``  W8A8 linears on the compiled int8 kernels (activations quantized per token at run time)
- ``decoding``     tokens/s of greedy decoding with the KV cache (``model.KVCache``), models timed together
- ``storage``      bytes on disk of a compressed model, and reading every kind of compressed file back

Explained in notebooks/16_transformer_compression.ipynb
"""
