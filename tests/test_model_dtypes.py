"""Issue 9: a model in float64 / float16 or on the meta device, given to every entry point that takes
a model (fit, evaluate, PTQ, QAT, dynamic quantization, pruning, low-rank, measure), either works
correctly or raises a ValueError/TypeError that names ``model`` — never torch's "Input type (float)
and bias type (double) should be the same" or "Tensor.item() cannot be called on meta tensors"."""
import pytest
import torch

from labkit import measure, models, prune, train
from labkit.lowrank import decompose_model
from labkit.quant import ptq, qat

X, Y = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 10

ENTRY_POINTS = {
    "fit": lambda m: train.fit(m, (X, Y), epochs=1, batch_size=8, progress=False),
    "evaluate": lambda m: train.evaluate(m, (X, Y)),
    "quantize_static": lambda m: ptq.quantize_static(m, X, num_batches=1),
    "quantize_dynamic": lambda m: ptq.quantize_dynamic(m),
    "prepare_qat": lambda m: qat.prepare_qat(m),
    "global_prune": lambda m: prune.global_prune(m, 0.5),
    "decompose_model": lambda m: decompose_model(m, energy=0.9),
    "size_on_disk": lambda m: measure.size_on_disk(m, "fp32"),
    "total_macs": lambda m: measure.total_macs(m, (1, 28, 28)),
    "count_nonzeros": lambda m: measure.count_nonzeros(m),
}
# What each one does with a float64 / float16 model: work (None) or refuse with this error type.
REFUSED = {
    torch.float64: {"quantize_static": TypeError, "quantize_dynamic": TypeError, "prepare_qat": TypeError},
    torch.float16: {"fit": TypeError, "quantize_static": TypeError, "quantize_dynamic": TypeError,
                    "prepare_qat": TypeError},
}


def lenet5():
    train.set_seed(0)
    return models.build("lenet5")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_float64_and_float16_models_work_or_are_named(entry, dtype):
    model = lenet5().to(dtype)
    error = REFUSED[dtype].get(entry)
    if error is None:
        ENTRY_POINTS[entry](model)
        assert {p.dtype for p in model.parameters()} == {dtype}  # nothing silently turned float32
    else:
        with pytest.raises(error, match=rf"^model must hold torch.float32.*got {dtype}; convert it"):
            ENTRY_POINTS[entry](model)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_meta_models_are_named(entry):
    with pytest.raises(ValueError, match="^model(_or_state_dict)? is on the meta device"):
        ENTRY_POINTS[entry](lenet5().to("meta"))
