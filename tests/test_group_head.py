"""The group's output head in a reduced dtype: the bias folded into the product gives the logits of the product
plus the float32 bias, to within the bias's own float32 rounding, and the head under autocast is that product."""

from __future__ import annotations

import pytest
import torch

from amtheory.diffusion.group_model import group_head
from amtheory.diffusion.model import fold_bias, linear_f32_out

G, N, D, V = 3, 40, 24, 50


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(G, N, D, generator=g).to(torch.bfloat16)
    W = torch.randn(G, V, D, generator=g) * 0.3
    b = torch.randn(G, V, generator=g) * 6.0  # biases of a few units, as a trained head's are
    return x, W, b


def _exact(x, W, b):
    """float64 ``x @ W^T + b`` with the product's inputs in ``x.dtype`` (what a float32-output product computes)."""
    return torch.bmm(x.double(), W.to(x.dtype).double().transpose(1, 2)) + b.double()[:, None, :]


def test_the_folded_product_adds_the_float32_bias_within_its_rounding():
    x, W, b = _inputs()
    xb, Wb = fold_bias(x, W, b)
    assert xb.dtype == Wb.dtype == torch.bfloat16
    assert xb.shape == (G, N, D + 8) and Wb.shape == (G, V, D + 8)
    got = torch.bmm(xb.double(), Wb.double().transpose(1, 2))
    # Split in two bf16 parts the bias is kept to about 2^-17 of itself; rounded once to bf16 it is off by up to
    # 2^-9 of itself (about 0.01 here), which this bound rules out.
    bound = b.abs().max().item() * 2.0**-16
    assert (got - _exact(x, W, b)).abs().max().item() <= bound
    one_part = b.to(torch.bfloat16).double()[:, None, :] + torch.bmm(x.double(), W.to(x.dtype).double().transpose(1, 2))
    assert (one_part - _exact(x, W, b)).abs().max().item() > 4 * bound


def test_the_head_under_autocast_is_the_folded_product():
    x, W, b = _inputs(1)
    h = x.float().view(G, 4, N // 4, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = group_head(h, W, b)
    assert out.shape == (G, 4, N // 4, V) and out.dtype == torch.float32
    want = _exact(x, W, b).view(G, 4, N // 4, V)
    # Off the float32-output product (a CPU) the bf16 result is cast up: off by its rounding, 2^-8 of the logit.
    torch.testing.assert_close(out.double(), want, rtol=2.0**-8, atol=1e-3)


def test_the_head_in_float32_adds_the_bias_to_the_float32_product():
    x, W, b = _inputs(2)
    h = x.float().view(G, 2, N // 2, D)
    out = group_head(h, W, b)
    want = torch.bmm(x.double(), W.double().transpose(1, 2)) + b.double()[:, None, :]
    torch.testing.assert_close(out.double(), want.view(G, 2, N // 2, V), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the float32-output product of bf16 runs on CUDA")
def test_the_head_on_cuda_keeps_the_float32_bias():
    x, W, b = _inputs(3)
    h = x.float().view(G, 4, N // 4, D).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = group_head(h, W.cuda(), b.cuda())
    want = _exact(x, W, b).view(G, 4, N // 4, V)
    # The product accumulates in float32 (about 1e-6 of these logits); the bias is kept to 2^-16 of itself.
    assert (out.double().cpu() - want).abs().max().item() <= b.abs().max().item() * 2.0**-16 + 1e-4


def test_one_models_linear_in_bf16_folds_the_bias_and_passes_its_gradient():
    x, W, b = _inputs(4)
    W0, b0 = W[0].clone().requires_grad_(True), b[0].clone().requires_grad_(True)
    out = linear_f32_out(x[0].view(4, N // 4, D), W0, b0)
    assert out.shape == (4, N // 4, V) and out.dtype == torch.float32
    want = _exact(x[:1], W[:1], b[:1])[0].view(4, N // 4, V)
    torch.testing.assert_close(out.double(), want, rtol=2.0**-8, atol=1e-3)
    out.sum().backward()
    # d/db of the summed logits is the row count: the two bias parts pass the gradient once between them.
    torch.testing.assert_close(b0.grad, torch.full((V,), float(N)))
    assert W0.grad is not None and W0.grad.shape == W0.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_in_place_accumulation_adds_the_float32_product(dtype):
    # The loss adds each chunk's head gradient to a float32 accumulator in place: the accumulator plus the product
    # that bmm_f32 gives (its float32 result, or on a CPU its reduced-dtype result), whichever way the device adds.
    from amtheory.diffusion.group_model import baddbmm_f32_, bmm_f32

    g = torch.Generator().manual_seed(3)
    a = torch.randn(G, V, N, generator=g).to(dtype)
    b = torch.randn(G, N, D, generator=g).to(dtype)
    acc = torch.randn(G, V, D, generator=g)
    want = acc + bmm_f32(a, b)
    out = baddbmm_f32_(acc, a, b)
    assert out.data_ptr() == acc.data_ptr() and acc.dtype == torch.float32
    torch.testing.assert_close(acc, want, rtol=1e-5, atol=1e-5)
