"""Issue 9: post-training quantization names calibration data the model cannot take and NaN weights."""
import pytest
import torch

from labkit import models, train
from labkit.quant import ptq, qat


def lenet300():
    train.set_seed(0)
    return models.build("lenet300")


@pytest.mark.parametrize("calib, shape", [(torch.rand(5), r"\[5\]"), (torch.rand(4, 3, 28, 28), r"\[4, 3, 28, 28\]")])
def test_calibration_data_the_model_cannot_take_is_named(calib, shape):
    with pytest.raises(ValueError, match=rf"^calib_data gives inputs of shape {shape} that the model cannot take"):
        ptq.quantize_static(lenet300(), calib)  # before: IndexError / RuntimeError from inside the model
    with pytest.raises(ValueError, match="^data must be a batch of inputs"):
        ptq.quantize_static(lenet300(), torch.tensor(1.0))  # before: "split expects at least a 1-dimensional tensor"


def test_nan_weights_are_named_before_quantization():
    model = lenet300()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    for call in (lambda: ptq.quantize_static(model, torch.rand(8, 1, 28, 28)), lambda: qat.prepare_qat(model)):
        with pytest.raises(ValueError, match=r"^model holds NaN or Inf in fc2.weight"):
            call()  # before: "x must contain only finite values", about an x the caller never passed
