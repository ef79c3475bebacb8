"""labkit.train: determinism, history, hooks (loss_fn, regularizer, after_step), evaluate, errors."""
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from labkit import data, models, train


def toy_data(n=96, seed=0):
    """Two separable blobs of 1×28×28 images (class = whether the left half is brighter)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.5
    y = torch.arange(n) % 2
    x[y == 1, :, :, :14] += 0.5
    return TensorDataset(x, y)


def tiny_model(seed=0):
    train.set_seed(seed)
    return models.build("lenet300")


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_is_deterministic_given_the_seed():
    runs = []
    for _ in range(2):
        model = tiny_model()
        history = train.fit(model, toy_data(), epochs=2, batch_size=16, seed=3, progress=False)
        runs.append((weights(model), [h["loss"] for h in history]))
    assert same_weights(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    other = tiny_model()
    train.fit(other, toy_data(), epochs=2, batch_size=16, seed=4, progress=False)
    assert not same_weights(runs[0][0], weights(other))  # the seed fixes the shuffle order


def test_lenet5_on_digits_one_epoch_twice_gives_identical_weights():
    train_set = data.load("digits", "train")
    runs = []
    for _ in range(2):
        train.set_seed(0)
        model = models.build("lenet5")
        train.fit(model, train_set, epochs=1, seed=0, progress=False)
        runs.append(weights(model))
    assert same_weights(*runs)


def test_fit_learns_and_reports_history():
    model = tiny_model()
    history = train.fit(model, toy_data(), epochs=3, batch_size=16, val_data=toy_data(seed=1),
                        progress=False, lr_schedule="cosine")
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "loss", "train_acc", "val_acc"}
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_acc"] >= 0.9
    assert train.fit(tiny_model(), toy_data(), epochs=1, progress=False)[0]["val_acc"] is None


def test_constant_regularizer_adds_to_the_loss_but_not_the_gradient():
    plain, regular = tiny_model(), tiny_model()
    h0 = train.fit(plain, toy_data(), epochs=1, batch_size=32, progress=False)
    h1 = train.fit(regular, toy_data(), epochs=1, batch_size=32, progress=False,
                   regularizer=lambda m: torch.tensor(5.0))
    assert h1[0]["loss"] == pytest.approx(h0[0]["loss"] + 5.0)
    assert same_weights(weights(plain), weights(regular))


def test_l2_regularizer_shrinks_weights():
    plain, regular = tiny_model(), tiny_model()
    train.fit(plain, toy_data(), epochs=1, batch_size=32, progress=False)
    train.fit(regular, toy_data(), epochs=1, batch_size=32, progress=False,
              regularizer=lambda m: 1.0 * sum(p.pow(2).sum() for p in m.parameters()))
    assert regular.fc1.weight.norm() < plain.fc1.weight.norm()


def test_after_step_runs_after_every_step_and_can_keep_a_mask():
    model, calls = tiny_model(), []
    mask = torch.rand_like(model.fc1.weight) > 0.5

    def reapply(m):
        calls.append(1)
        with torch.no_grad():
            m.fc1.weight.mul_(mask)

    train.fit(model, toy_data(n=96), epochs=2, batch_size=32, progress=False, after_step=reapply)
    assert len(calls) == 2 * 3
    assert (model.fc1.weight[~mask] == 0).all()


def test_custom_loss_fn_is_used():
    seen = []

    def loss_fn(logits, y):
        seen.append(logits.shape)
        return nn.functional.cross_entropy(logits, y)

    train.fit(tiny_model(), toy_data(n=40), epochs=1, batch_size=16, loss_fn=loss_fn, progress=False)
    assert seen == [(16, 10), (16, 10), (8, 10)]


def test_sgd_optimizer_trains():
    model = tiny_model()
    history = train.fit(model, toy_data(), epochs=3, optimizer="sgd", lr=0.05, batch_size=16, progress=False)
    assert history[-1]["train_acc"] > 0.8


def test_fit_restores_the_mode():
    model = tiny_model().eval()
    train.fit(model, toy_data(n=32), epochs=1, progress=False)
    assert not model.training


def test_evaluate_matches_manual_accuracy_and_restores_train_mode():
    torch.manual_seed(0)
    model = models.build("vgg").train()
    ds = toy_data(n=50)
    acc = train.evaluate(model, ds, batch_size=7)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        manual = (model(ds.tensors[0]).argmax(1) == ds.tensors[1]).float().mean().item()
    assert acc == pytest.approx(manual) and 0.0 <= acc <= 1.0


def test_evaluate_uses_eval_mode_so_batchnorm_stats_do_not_move():
    model = models.build("resnet").train()
    before = model.stem.bn.running_mean.clone()
    train.evaluate(model, toy_data(n=20))
    assert torch.equal(model.stem.bn.running_mean, before)


def test_predict_returns_logits_for_datasets_pairs_and_tensors():
    model = tiny_model()
    ds = toy_data(n=30)
    a = train.predict(model, ds, batch_size=8)
    b = train.predict(model, ds.tensors)
    c = train.predict(model, ds.tensors[0])
    assert a.shape == (30, 10)
    # Batches of 8 and of 30 go through differently blocked float32 GEMMs (oneDNN picks the blocking
    # per shape and per CPU: AMX machines differ from AVX-512 ones in the last bits), so compare with
    # float32's tolerances (rtol 1.3e-6, atol 1e-5), not allclose's atol of 1e-8.
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


@pytest.mark.parametrize("kwargs, error, word", [
    ({"batch_size": -1}, ValueError, "batch_size"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"epochs": 0}, ValueError, "epochs"),
    ({"epochs": 1.5}, TypeError, "epochs"),
    ({"lr": 0.0}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay"),
    ({"lr_schedule": "linear"}, ValueError, "lr_schedule"),
])
def test_fit_rejects_bad_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        train.fit(tiny_model(), toy_data(n=8), progress=False, **kwargs)


def test_evaluate_rejects_bad_data_and_batch_size():
    model = tiny_model()
    with pytest.raises(ValueError, match="batch_size"):
        train.evaluate(model, toy_data(n=8), batch_size=-5)
    with pytest.raises(TypeError, match="data"):
        train.evaluate(model, [1, 2, 3])
    with pytest.raises(ValueError, match="data"):
        train.evaluate(model, TensorDataset(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)))


def test_fit_and_evaluate_need_labels_and_samples():
    model, ds = tiny_model(), toy_data(n=8)
    for call, word in ((lambda d: train.fit(model, d, progress=False), "train_data"),
                       (lambda d: train.fit(model, ds, val_data=d, progress=False), "val_data"),
                       (lambda d: train.evaluate(model, d), "data")):
        with pytest.raises(TypeError, match=rf"^{word} must yield \(x, y\) pairs"):
            call(ds.tensors[0])  # a bare x tensor: fine for predict, but there are no labels
        with pytest.raises(ValueError, match=rf"^{word} must hold at least one sample"):
            call(TensorDataset(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)))
        with pytest.raises(TypeError, match=rf"^{word} must be a torch Dataset"):
            call("digits")
    with pytest.raises(ValueError, match="^data must hold at least one sample"):
        train.predict(model, torch.zeros(0, 1, 28, 28))


def test_fit_shows_a_progress_bar_only_when_asked(capsys):
    train.fit(tiny_model(), toy_data(n=32), epochs=2, batch_size=16, progress=True)
    bar = capsys.readouterr().err
    # tqdm redraws at most every 0.1 s, so only the descriptions and the step total are certain
    assert "epoch 1/2" in bar and "epoch 2/2" in bar and "/4 [" in bar  # 2 epochs × 2 batches
    train.fit(tiny_model(), toy_data(n=32), epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_evaluate_and_predict_show_a_progress_bar_when_asked(capsys):
    model, ds = tiny_model(), toy_data(n=40)
    quiet = train.evaluate(model, ds, batch_size=10)
    assert capsys.readouterr().err == ""
    assert train.evaluate(model, ds, batch_size=10, progress=True) == quiet
    bar = capsys.readouterr().err
    assert "predicting" in bar and "/4 [" in bar  # 40 samples in batches of 10
    train.predict(model, ds.tensors[0], batch_size=20, progress=True)
    assert "/2 [" in capsys.readouterr().err


def test_set_seed_repeats_initialisation():
    train.set_seed(7)
    a = models.build("lenet5").conv1.weight.clone()
    train.set_seed(7)
    assert torch.equal(a, models.build("lenet5").conv1.weight)
    with pytest.raises(ValueError, match="seed"):
        train.set_seed(-1)


# --------------------------------------------------------------------------- issue 9: bad input is named
def test_labels_that_are_not_class_indices_are_named():
    model, ds = tiny_model(), toy_data(n=16)
    x, y = ds.tensors
    with pytest.raises(ValueError, match=r"train_data labels \(y\) must lie in \[0, 9\].*\[10, 11\]"):
        train.fit(model, (x, y + 10), progress=False)  # before: IndexError "Target 11 is out of bounds"
    with pytest.raises(TypeError, match=r"train_data labels \(y\) must be integer class indices.*float32"):
        train.fit(model, (x, y.float()), progress=False)  # before: RuntimeError about "target dtype"
    with pytest.raises(ValueError, match=r"^data labels \(y\) must lie in \[0, 9\]"):
        train.evaluate(model, (x, y + 10))  # before: accuracy 0.0, silently


def test_images_the_model_cannot_take_name_the_data_and_the_expected_shape():
    model, y = models.build("lenet5"), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^train_data gives images of shape \[4, 3, 28, 28\].*\[N, 1, 28, 28\]"):
        train.fit(model, (torch.rand(4, 3, 28, 28), y), progress=False)
    with pytest.raises(ValueError, match=r"^data gives images of shape \[4, 1, 20, 20\]"):
        train.evaluate(model, (torch.rand(4, 1, 20, 20), y))


def test_x_and_y_of_different_lengths_are_named():
    x = torch.rand(8, 1, 28, 28)
    with pytest.raises(ValueError, match=r"^train_data must be an \(x, y\) pair of equal length.*\[8, 1, 28, 28\].*\[5\]"):
        train.fit(tiny_model(), (x, torch.zeros(5, dtype=torch.long)), progress=False)
    with pytest.raises(ValueError, match=r"^data must be an \(x, y\) pair of equal length"):
        train.evaluate(tiny_model(), (x, torch.zeros(9, dtype=torch.long)))


def test_nan_images_are_refused_instead_of_training_every_weight_into_nan():
    model, ds = tiny_model(), toy_data(n=16)
    x, y = ds.tensors[0].clone(), ds.tensors[1]
    x[3, 0, 5, 5] = float("nan")
    before = weights(model)
    with pytest.raises(ValueError, match="^train_data holds NaN or Inf"):
        train.fit(model, (x, y), progress=False)
    assert same_weights(before, weights(model))
    with pytest.raises(ValueError, match="^data holds NaN or Inf"):
        train.evaluate(model, (x, y))
    with pytest.raises(TypeError, match=r"^train_data images \(x\) must be floating point.*torch.uint8"):
        train.fit(model, ((ds.tensors[0] * 255).to(torch.uint8), y), progress=False)  # before: trained on 0…255


def test_a_model_whose_logits_are_nan_or_inf_is_refused_instead_of_scored():
    # Found by the fuzz test: a NaN weight gave NaN logits, and evaluate turned them into an accuracy
    # (argmax of NaN) without a word. Now predict/correct/evaluate refuse, and say why.
    model, ds = tiny_model(), toy_data(n=16)
    assert torch.isfinite(train.predict(model, ds)).all()              # the healthy model is scored
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    for score in (train.predict, train.correct, train.evaluate):
        with pytest.raises(ValueError, match=r"^model gives NaN or Inf logits for 16 of 16 samples: 1 of its "):
            score(model, ds)
    huge = tiny_model().half()                                         # finite weights, float16 overflow
    with torch.no_grad():
        for p in huge.parameters():
            p.mul_(1000)
    with pytest.raises(ValueError, match=r"parameters are finite: an overflow, e\.g\. in float16"):
        train.evaluate(huge, (ds.tensors[0] * 1000, ds.tensors[1]))


def test_a_loss_that_turns_nan_stops_training_before_the_weights_do():
    model = tiny_model()
    before = weights(model)
    with pytest.raises(ValueError, match=r"training diverged: the loss is nan.*lr \(got 0.001\)"):
        train.fit(model, toy_data(n=16), loss_fn=lambda logits, y: logits.sum() * float("nan"), progress=False)
    assert same_weights(before, weights(model))


def test_float64_and_float16_models_are_supported_or_named():
    ds = toy_data(n=32)
    double = tiny_model().double()
    train.fit(double, ds, epochs=1, batch_size=16, progress=False)  # before: "Input type (float) and bias type (double)"
    assert double.fc1.weight.dtype == torch.float64
    single = tiny_model()
    single.load_state_dict({k: v.float() for k, v in double.state_dict().items()})
    half = tiny_model().half()
    for model in (double, half):
        assert 0.0 <= train.evaluate(model, ds) <= 1.0
    assert train.evaluate(double, ds) == train.evaluate(single, ds)
    with pytest.raises(TypeError, match=r"^model must hold torch.float32, torch.float64 .*got torch.float16"):
        train.fit(half, ds, progress=False)


def test_a_model_on_the_meta_device_is_named():
    meta = tiny_model().to("meta")
    for call in (lambda: train.fit(meta, toy_data(n=8), progress=False), lambda: train.evaluate(meta, toy_data(n=8)),
                 lambda: train.predict(meta, torch.rand(2, 1, 28, 28))):
        with pytest.raises(ValueError, match="^model is on the meta device"):
            call()  # before: NotImplementedError "Cannot copy out of meta tensor"


def test_models_fit_and_evaluate_cannot_use_are_named():
    with pytest.raises(ValueError, match="^model has no trainable parameters"):
        train.fit(nn.ReLU(), toy_data(n=8), progress=False)  # before: "optimizer got an empty parameter list"
    with pytest.raises(ValueError, match=r"^model must output logits \[N, classes\].*\[8, 1, 28, 28\]"):
        train.evaluate(nn.ReLU(), toy_data(n=8))  # before: a RuntimeError comparing sizes
    for junk in ("lenet5", None, 3):
        with pytest.raises(TypeError, match="^model must be a torch.nn.Module"):
            train.evaluate(junk, toy_data(n=8))  # before: AttributeError "'str' object has no attribute 'training'"
