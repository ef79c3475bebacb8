"""TinyGPT, the corpus and the perplexity interval: shapes, causality, refusals, exact values."""
import math

import pytest
import torch

from labkit.llm import corpus
from labkit.llm.evaluate import eval_windows, perplexity, perplexity_ratio, window_nll
from labkit.llm.model import GPTConfig, TinyGPT, generate, linear_layers

SMALL = GPTConfig(vocab_size=11, context=16, d_model=32, n_head=2, n_layer=2)


def small_model(seed=0):
    torch.manual_seed(seed)
    return TinyGPT(SMALL).eval()


def test_corpus_is_the_shipped_documentation_text():
    text = corpus.load_text()
    assert len(text) == 465_126 and "lambda" in text
    voc = corpus.vocab()
    assert voc.size == 103
    sample = text[1000:1200]
    assert voc.decode(voc.encode(sample)) == sample
    train, held = corpus.split_ids()
    assert len(train) + len(held) == len(text) and len(held) == len(text) - int(len(text) * 0.9)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        voc.encode("日本")


def test_forward_shape_and_causality():
    model = small_model()
    ids = torch.randint(0, 11, (3, 16), generator=torch.Generator().manual_seed(1))
    logits = model(ids)
    assert logits.shape == (3, 16, 11)
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 11                  # change the future only
    torch.testing.assert_close(model(changed)[:, :10], logits[:, :10], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(model(changed)[:, 10:], logits[:, 10:])


def test_bad_input_is_refused_with_the_limit():
    model = small_model()
    with pytest.raises(ValueError, match="longer than the model's context=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        model(torch.full((1, 4), 11))
    with pytest.raises(TypeError, match="int64"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="n_head must divide"):
        GPTConfig(d_model=30, n_head=4)


def test_linear_layers_and_generate():
    model = small_model()
    layers = linear_layers(model)
    assert list(layers)[:4] == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]
    assert len(layers) == 8
    prompt = torch.tensor([1, 2, 3])
    a = generate(model, prompt, 20, temperature=0.8, seed=3)
    assert a.shape == (23,) and torch.equal(a, generate(model, prompt, 20, temperature=0.8, seed=3))
    assert torch.equal(a[:3], prompt)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    model = small_model()
    with torch.no_grad():
        model.head.weight.zero_()                     # every logit 0: p = 1/11 for every id
    ids = torch.randint(0, 11, (200,), generator=torch.Generator().manual_seed(0))
    windows = eval_windows(ids, 16)
    assert windows.shape == (12, 17)
    nll = window_nll(model, windows)
    ppl = perplexity(nll)
    assert ppl.value == pytest.approx(11.0, rel=1e-5) and ppl.low == pytest.approx(11.0, rel=1e-4)
    same = perplexity_ratio(nll, nll)
    assert same.value == 1.0 and not same.resolved


def test_paired_ratio_is_resolved_for_a_clearly_worse_model():
    model, noisy = small_model(0), small_model(0)
    with torch.no_grad():
        noisy.head.weight.mul_(0.0)
        model.head.weight.copy_(torch.eye(11, 32) * 8)   # some structure: not uniform
    ids = torch.randint(0, 11, (400,), generator=torch.Generator().manual_seed(0))
    w = eval_windows(ids, 16)
    r = perplexity_ratio(window_nll(model, w), window_nll(noisy, w))
    assert math.isfinite(r.value) and r.low <= r.value <= r.high


def test_eval_windows_refuses_too_little_text():
    with pytest.raises(ValueError, match="at least 2 windows"):
        eval_windows(torch.arange(20), 16)


def test_generate_refuses_a_negative_temperature():
    with pytest.raises(ValueError, match="temperature"):
        generate(small_model(), torch.tensor([1, 2]), 2, temperature=-1.0)


def test_a_few_training_steps_lower_the_held_out_loss():
    from labkit.llm.training import train_lm
    config = GPTConfig(context=16, d_model=32, n_head=2, n_layer=1)
    windows = eval_windows(corpus.split_ids()[1], 16, max_windows=32)
    torch.manual_seed(0)
    before = float(window_nll(TinyGPT(config), windows).mean())
    after = float(window_nll(train_lm(config, steps=60, batch_size=16, warmup=10), windows).mean())
    assert before > 4.4 and after < before - 1.0          # ln(103) = 4.63 at start; 60 steps learn frequencies
