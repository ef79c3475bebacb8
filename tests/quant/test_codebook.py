"""k-means weight sharing, codebook fine-tuning, product quantization, storage sizes."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from labkit import measure
from labkit.quant import codebook as C




def four_clusters():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([-1.0, 0.0, 0.5, 2.0])
    w = centers.repeat_interleave(200) + 0.01 * torch.randn(800, generator=g)
    return w[torch.randperm(800, generator=g)].reshape(40, 20), centers


@pytest.mark.parametrize("init", C.INITS)
def test_kmeans_finds_four_clear_clusters(init):
    w, centers = four_clusters()
    codebook, idx = C.kmeans_quantize(w, 2, init=init)
    assert codebook.shape == (4,) and idx.shape == w.shape and idx.dtype == torch.int64
    assert torch.allclose(codebook, centers, atol=0.01)
    assert torch.equal(torch.bincount(idx.reshape(-1)), torch.full((4,), 200))
    assert (codebook[idx] - w).abs().max() < 0.06


def test_linear_init_spreads_over_min_max():
    w = torch.tensor([-3.0, 0.0, 0.1, 0.2, 5.0])
    codebook, _ = C.kmeans_quantize(w, 3, init="linear", iters=0)
    assert torch.allclose(codebook, torch.linspace(-3, 5, 8))
    density, _ = C.kmeans_quantize(torch.randn(1001), 2, init="density", iters=0)
    assert density[0] == density.min() and (density[1:3].abs() < 1).all()   # crowded near the mode


def test_kmeans_matches_brute_force_assignment_and_lloyd_step():
    w = torch.randn(300, generator=torch.Generator().manual_seed(1))
    codebook, idx = C.kmeans_quantize(w, 3, iters=50)
    nearest = (w[:, None] - codebook[None, :]).abs().argmin(1)
    assert torch.equal(idx, nearest)
    for k in range(8):                          # converged: each centroid is the mean of its members
        if (idx == k).any():
            assert codebook[k].item() == pytest.approx(w[idx == k].mean().item(), abs=1e-5)


def test_keep_zeros_pins_entry_zero():
    w = torch.randn(20, 10)
    w[w.abs() < 0.5] = 0.0
    codebook, idx = C.kmeans_quantize(w, 2, keep_zeros=True)
    assert codebook[0] == 0 and torch.equal(idx == 0, w == 0)


def test_cluster_gradients_equal_autograd_of_gather():
    codebook = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
    idx = torch.tensor([[0, 2, 2], [1, 0, 2]])
    upstream = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (codebook[idx] * upstream).sum().backward()
    assert codebook.grad.tolist() == [6.0, 4.0, 11.0]
    assert C.cluster_gradients(upstream, idx, 3).tolist() == [6.0, 4.0, 11.0]


def test_codebook_finetuning_reduces_loss_indices_fixed():
    g = torch.Generator().manual_seed(0)
    levels = torch.tensor([-1.0, -0.3, 0.4, 1.2])
    teacher = levels[torch.randint(0, 4, (6, 8), generator=g)]           # a target with 4 shared values
    x = torch.randn(256, 8, generator=g)
    y = x @ teacher.T
    layer = nn.Linear(8, 6, bias=False)
    with torch.no_grad():
        layer.weight.copy_(teacher + 0.15 * torch.randn(6, 8, generator=g))   # a "trained", noisy layer
    model = C.apply_weight_sharing(nn.Sequential(layer), bits=2)
    shared = model[0]
    assert isinstance(shared, C.WeightSharing)
    indices_before = shared.indices.clone()
    losses = C.finetune_codebooks(model, (x, y), epochs=40, lr=0.02, loss_fn=F.mse_loss)
    assert losses[-1] < 0.1 * losses[0]
    assert torch.equal(shared.indices, indices_before)
    assert shared.weight.unique().numel() <= 4
    assert torch.allclose(shared.codebook.detach().sort().values, levels, atol=0.02)
    assert shared.codebook.requires_grad                                   # restored


def test_apply_weight_sharing_on_cnn_and_storage():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 9, 5))
    shared = C.apply_weight_sharing(model, bits={"0": 3, "3": 2})
    assert isinstance(shared[0], C.WeightSharing) and isinstance(shared[3], C.WeightSharing)
    assert shared[0].weight.unique().numel() <= 8 and shared[3].weight.unique().numel() <= 4
    x = torch.rand(2, 1, 6, 6)
    assert shared(x).shape == (2, 5)
    ref = F.conv2d(x, shared[0].weight, shared[0].bias, stride=2, padding=1)
    assert torch.allclose(shared[0](x), ref)
    report = C.storage_report(shared)
    assert report["3"]["fp32_bytes"] == 4 * 180
    assert report["3"]["shared_bytes"] == 4 * 4 + 45      # 4 centroids + ⌈180·2/8⌉
    only_fc = C.apply_weight_sharing(model, bits={"3": 4})
    assert isinstance(only_fc[0], nn.Conv2d)


def test_pack_unpack_round_trip_and_sizes():
    idx = torch.randint(0, 32, (1001,), generator=torch.Generator().manual_seed(0))
    data = C.pack_indices(idx, 5)
    assert len(data) == C.packed_index_bytes(1001, 5) == 626
    assert torch.equal(C.unpack_indices(data, 5, 1001), idx)
    # one bit order for every labkit file: measure.pack_bits's LSB-first (index 0 in the low bits)
    assert C.pack_indices(torch.tensor([1, 0, 3, 2]), 2) == bytes([0b10_11_00_01])
    assert C.pack_indices(idx, 5) == measure.pack_bits(idx.numpy(), 5)
    assert torch.equal(C.unpack_indices(measure.pack_bits(idx.numpy(), 5), 5, 1001), idx)
    assert C.weight_sharing_bytes(1000, 4) == 16 * 4 + 500
    assert C.weight_sharing_compression_ratio(1000, 4) == pytest.approx(4000 / 564)


def test_product_quantization_error_decreases_with_codewords():
    w = torch.randn(128, 16, generator=torch.Generator().manual_seed(0))
    errors = []
    for bits in (1, 3, 5, 7):
        pq = C.product_quantize(w, sub_dim=4, bits=bits)
        assert pq.codebooks.shape == (4, 2 ** bits, 4) and pq.codes.shape == (128, 4)
        errors.append(((pq.reconstruct() - w) ** 2).mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:]))
    exact = C.product_quantize(w[:4], sub_dim=2, bits=2)               # 4 rows, 4 codewords: lossless
    assert torch.allclose(exact.reconstruct(), w[:4])
    conv = torch.randn(16, 2, 3, 3)
    assert C.product_quantize(conv, sub_dim=3, bits=2).reconstruct().shape == conv.shape


def test_pq_compression_ratio_formula():
    # 256×512, d=8, 8 bits: m = 64; bits = 32·64·256·8 + 256·64·8
    expected = 32 * 256 * 512 / (32 * 64 * 256 * 8 + 256 * 64 * 8)
    assert C.pq_compression_ratio(256, 512, 8, 8) == pytest.approx(expected)
    pq = C.product_quantize(torch.randn(64, 32), sub_dim=8, bits=4)
    assert pq.storage_bytes() == 4 * 4 * 16 * 8 + (64 * 4 * 4) // 8


def test_bad_inputs():
    w = torch.randn(8, 6)
    for bits in (0, 9):
        with pytest.raises(ValueError, match="bits"):
            C.kmeans_quantize(w, bits)
    with pytest.raises(ValueError, match="init"):
        C.kmeans_quantize(w, 2, init="kmeans++")
    with pytest.raises(ValueError, match="w must contain only finite"):
        C.kmeans_quantize(torch.tensor([0.0, float("nan")]), 1)
    with pytest.raises(ValueError, match="w must not be empty"):
        C.kmeans_quantize(torch.empty(0), 2)
    with pytest.raises(ValueError, match="sub_dim must divide"):
        C.product_quantize(w, sub_dim=4, bits=2)
    with pytest.raises(ValueError, match="bits must satisfy"):
        C.product_quantize(w, sub_dim=3, bits=4)
    with pytest.raises(ValueError, match="w must have at least 2"):
        C.product_quantize(torch.randn(8), sub_dim=2, bits=1)
    with pytest.raises(TypeError, match="module must be an nn.Linear or nn.Conv2d"):
        C.WeightSharing(nn.BatchNorm2d(3), 2)
    with pytest.raises(ValueError, match="bits names layers"):
        C.apply_weight_sharing(nn.Sequential(nn.Linear(2, 2)), bits={"fc": 2})
    with pytest.raises(ValueError, match="indices must lie"):
        C.pack_indices(torch.tensor([0, 4]), 2)
    with pytest.raises(ValueError, match="no WeightSharing"):
        C.finetune_codebooks(nn.Linear(2, 2), (torch.randn(2, 2), torch.tensor([0, 1])))


_W = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
BIT_TAKERS = {  # every public codebook function with a bit width, called with bits=b
    "kmeans_quantize": lambda b: C.kmeans_quantize(_W, b),
    "WeightSharing": lambda b: C.WeightSharing(nn.Linear(8, 16), b),
    "apply_weight_sharing": lambda b: C.apply_weight_sharing(nn.Sequential(nn.Linear(8, 16)), b),
    "product_quantize": lambda b: C.product_quantize(torch.randn(256, 4), sub_dim=2, bits=b, iters=1),
    "pq_compression_ratio": lambda b: C.pq_compression_ratio(256, 4, 2, b),
    "packed_index_bytes": lambda b: C.packed_index_bytes(10, b),
    "pack_indices": lambda b: C.pack_indices(torch.zeros(3, dtype=torch.int64), b),
    "unpack_indices": lambda b: C.unpack_indices(bytes(3), b, 3),
    "weight_sharing_bytes": lambda b: C.weight_sharing_bytes(10, b),
    "weight_sharing_compression_ratio": lambda b: C.weight_sharing_compression_ratio(10, b),
}


@pytest.mark.parametrize("name", sorted(BIT_TAKERS))
def test_bit_width_range_1_to_8_is_documented_and_named_in_the_error(name):
    call = BIT_TAKERS[name]
    assert "[1, 8]" in getattr(C, name).__doc__
    call(1)  # both ends of the range are accepted
    call(8)
    for bits in (0, 9):
        with pytest.raises(ValueError, match=r"bits must be an integer in \[1, 8\]"):
            call(bits)
