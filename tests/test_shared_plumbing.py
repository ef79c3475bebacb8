"""Issue 10: the helpers several modules share are public in the lowest layer that owns them, and no
labkit module reaches into another module's private (``_x``) names."""
import ast
import math
import pathlib

import pytest
import torch
from torch import nn

import labkit
from labkit import train
from labkit.kernels import api
from labkit.quant import affine
from labkit.validate import require_bool, require_module, require_pair

PACKAGE = pathlib.Path(labkit.__file__).parent

def cross_module_private_names(path: pathlib.Path) -> set[str]:
    """``from labkit.x import _y`` and ``labkit_module._y`` in one file, as dotted names."""
    tree, modules, found = ast.parse(path.read_text()), {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labkit"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add(f"{node.module}.{alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("labkit"):
                    modules[(alias.asname or alias.name).split(".")[0]] = alias.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.add(".".join([modules[base.id], *reversed(chain)]))
    return found


def test_no_new_private_name_is_imported_across_modules():
    found = {(str(p.relative_to(PACKAGE.parent)), name) for p in PACKAGE.rglob("*.py")
             for name in cross_module_private_names(p)}
    assert found == set()


def test_the_scan_sees_both_forms(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from labkit.quant.affine import _grouped\nfrom labkit import train\ntrain._wrap(1, 'x')\n")
    assert cross_module_private_names(probe) == {"labkit.quant.affine._grouped", "labkit.train._wrap"}


def test_require_module_and_bool():
    assert require_bool("flag", False) is False
    for bad in (0, 1, "True", None):
        with pytest.raises(TypeError, match="flag must be True or False"):
            require_bool("flag", bad)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got list"):
        require_module("model", [])
    with pytest.raises(ValueError, match="model is on the meta device"):
        require_module("model", nn.Linear(2, 2, device="meta"))
    meta = nn.Linear(2, 3, device="meta")                 # shapes are enough to count parameters
    assert require_module("model", meta, allow_meta=True) is meta
    from labkit import measure
    assert measure.count_parameters(meta) == 9
    with pytest.raises(ValueError, match="model is on the meta device"):
        measure.count_nonzeros(meta)


def test_require_pair_is_the_kernels_check():
    assert require_pair("stride", 2, 1) == (2, 2) and require_pair("stride", [1, 3], 1, 4) == (1, 3)
    with pytest.raises(ValueError, match=r"stride must be an integer in \[1, 4\], got 5"):
        require_pair("stride", (1, 5), 1, 4)
    with pytest.raises(ValueError, match="padding must be an int or a pair of ints"):
        require_pair("padding", (1, 2, 3), 0)
    x = torch.zeros(1, 1, 4, 4, dtype=torch.uint8).numpy()
    with pytest.raises(ValueError, match=r"kernel_size must be an integer in \[1, "):
        api.maxpool2d_u8(x, kernel_size=0)


def test_train_helpers_are_public_and_the_old_names_alias_them():
    x, y = torch.rand(10, 1, 2, 2), torch.arange(10) % 2
    dataset = train.as_dataset((x, y), "data", labelled=True)
    batches = list(train.batch_loader(dataset, 4, None))
    assert [len(b[1]) for b in batches] == [4, 4, 2] and torch.equal(batches[0][0], x[:4])
    model = nn.Linear(4, 2)
    assert train.model_device(model) == torch.device("cpu")
    assert isinstance(train.make_optimizer(model, "sgd", 0.1, 0.0), torch.optim.SGD)
    opt = train.make_optimizer(model, "adam", 0.1, 0.0)
    sched = train.cosine_schedule(opt, 4)
    factors = [sched.lr_lambdas[0](t) for t in range(5)]
    assert factors == pytest.approx([0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(5)]) and factors[-1] == 0
    with pytest.raises(ValueError, match="epochs must be an integer"):
        train.check_fit_args(0, 1e-3, 8, "adam", 0.0, 0, "constant")
    assert not hasattr(train, "_as_dataset") and not hasattr(train, "_loader")          # the old aliases are gone


def test_affine_checks_are_public_and_shared_by_the_quantizers():
    assert affine.check_bits(8) == 8 and affine.check_axis(-1, 4) == 3
    with pytest.raises(ValueError, match=r"bits must be an integer in \[1, 16\], got 17"):
        affine.check_bits(17)
    from labkit.quant import codebook, nonuniform
    with pytest.raises(ValueError, match=r"bits must be an integer in \[1, 8\], got 9"):
        codebook.packed_index_bytes(10, 9)
    with pytest.raises(ValueError, match=r"bits must be an integer in \[2, 8\], got 1"):
        nonuniform.pow2_levels(1, 0)
    with pytest.raises(TypeError, match="qp must be a QParams"):
        affine.check_qparams((1.0, 0))
    qp = affine.qparams_from_range(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0]), symmetric=True, signed=True,
                                   axis=0)
    x = torch.tensor([[0.3, -0.7], [1.9, -2.5]])
    torch.testing.assert_close(affine.fake_quantize(x, qp, check=False), affine.fake_quantize(x, qp))
    assert torch.equal(affine.apply_qparams(x, qp, lambda v, s, z: s.expand_as(v)), qp.scale[:, None].expand(2, 2))


def test_run_epoch_is_the_one_loop_fit_and_codebook_finetuning_use():
    torch.manual_seed(0)
    model, x, y = nn.Linear(3, 2), torch.randn(8, 3), torch.tensor([0, 1] * 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = []
    loss, acc = train.run_epoch([(x[:4], y[:4]), (x[4:], y[4:])],
                                lambda b: (nn.functional.cross_entropy(model(b[0]), b[1]), None, b[1]), opt,
                                after_step=lambda: steps.append(1))
    assert acc is None and steps == [1, 1] and loss > 0
    calls = []

    def second_batch_nan(batch):
        calls.append(1)
        logits = model(batch[0])
        return logits.sum() * (float("nan") if len(calls) == 2 else 1.0), logits, batch[1]
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match="training diverged: the loss is nan after 4 samples.*lower lr"):
        train.run_epoch([(x[:4], y[:4]), (x[4:], y[4:])], second_batch_nan, opt)
    after_first = model.weight.detach().clone()
    assert not torch.equal(after_first, before)           # the first (finite) step ran...
    torch.testing.assert_close(after_first, before - 0.1 * torch.autograd.functional.jacobian(
        lambda w: (x[:4] @ w.T + model.bias.detach()).sum(), before))   # ...exactly one SGD step, the NaN one did not
    from labkit.quant import codebook
    shared = codebook.apply_weight_sharing(nn.Sequential(nn.Linear(3, 2)), 2)
    with pytest.raises(ValueError, match="training diverged"):   # was: NaN centroids, silently
        codebook.finetune_codebooks(shared, (x, y), loss_fn=lambda out, t: out.sum() * float("nan"))


def test_fit_distill_and_feature_distill_all_train_through_run_epochs(monkeypatch):
    from labkit.distill import MLPStudent, distill, feature_distill
    calls, inner = [], train.run_epochs

    def spy(model, loader, step, opt, **kw):
        calls.append(kw.get("desc", "training"))
        return inner(model, loader, step, opt, **kw)
    monkeypatch.setattr(train, "run_epochs", spy)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    teacher = MLPStudent(hidden=4)
    train.fit(MLPStudent(hidden=4), (x, y), epochs=1, progress=False)
    distill(MLPStudent(hidden=4), teacher, (x, y), epochs=1, progress=False)
    feature_distill(MLPStudent(hidden=4), teacher, (x, y), epochs=1, progress=False)
    assert calls == ["training", "distilling (T=4, α=0.9)", "distilling features"]

