"""The group's layers: the members' linear maps have the gradients of the plain product, each weight's gradient
laid out as the weight is (so that it lands in the members' stacked gradient ``[G, P]`` without a copy); the
compiled final norm and modulation compute what the eager ones do."""

from __future__ import annotations

import pytest
import torch

from amtheory.diffusion.group_model import (
    GroupLayout,
    GroupTables,
    _linear,
    compiled_block,
    compiled_final,
    group_block,
    group_final,
)
from amtheory.diffusion.model import DiTConfig

G, N, IN, OUT = 3, 7, 5, 4


def _reference(x, w, b):
    """The product as autograd differentiates it: ``x @ w^T`` in the autocast dtype, then the bias."""
    y = torch.bmm(x, w.transpose(1, 2))
    return y if b is None else y + b.to(y.dtype)[:, None, :]


@pytest.mark.parametrize("bias", [True, False])
def test_the_linear_map_has_the_gradient_of_the_product(bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(G, N, IN, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(G, OUT, IN, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(G, OUT, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = (x, w, b) if bias else (x, w)
    assert torch.autograd.gradcheck(lambda *t: _linear(*t), inputs)


def test_under_autocast_the_linear_map_is_the_reduced_dtype_product_and_its_gradients():
    g = torch.Generator().manual_seed(1)
    leaves = [torch.randn(s, generator=g) for s in ((G, N, IN), (G, OUT, IN), (G, OUT))]
    ours = [t.clone().requires_grad_(True) for t in leaves]
    ref = [t.clone().requires_grad_(True) for t in leaves]
    dy = torch.randn(G, N, OUT, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = _linear(*ours)
        y_ref = _reference(*ref)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    y.backward(dy.to(y.dtype))
    y_ref.backward(dy.to(y_ref.dtype))
    for name, a, r in zip(("x", "w", "b"), ours, ref):
        assert a.grad.dtype == torch.float32, name
        torch.testing.assert_close(a.grad, r.grad, rtol=2e-2, atol=2e-2, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_the_weight_gradients_reach_the_stacked_parameters_laid_out_as_the_weights(compiled):
    cfg = DiTConfig(vocab_size=64, length=16, d_model=32, n_blocks=1, n_heads=2, cond_dim=32, dropout=0.0)
    layout = GroupLayout.of(cfg)
    flat = (torch.randn(G, layout.width, generator=torch.Generator().manual_seed(2)) * 0.05).requires_grad_(True)
    p = {n.removeprefix("blocks.0."): v for n, v in layout.views(flat).items() if n.startswith("blocks.0.")}
    strides = {}
    for n, v in p.items():
        v.register_hook(lambda grad, n=n: strides.__setitem__(n, (tuple(grad.shape), grad.is_contiguous())))
    tables = GroupTables(cfg, "cpu")
    x, c = torch.randn(G, 2, 16, 32), torch.randn(G, 2, 32)
    block = compiled_block(dynamic=False) if compiled else group_block
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(p, x, c, tables.cos[:16], tables.sin[:16], 2, "sdpa")
    y.float().square().sum().backward()
    weights = [n for n in p if n.endswith(".weight") and p[n].dim() == 3]
    assert set(weights) == {"adaLN.weight", "qkv.weight", "attn_out.weight", "mlp.0.weight", "mlp.2.weight"}
    assert {n: strides[n] for n in weights} == {n: (tuple(p[n].shape), True) for n in weights}


def test_the_compiled_final_norm_and_modulation_give_the_eager_values_and_gradients():
    g = torch.Generator().manual_seed(3)
    D, C = 16, 8
    shapes = ((G, 2, 5, D), (G, 2, C), (G, 2 * D, C), (G, 2 * D), (G, D))
    leaves = [torch.randn(s, generator=g) for s in shapes]
    dy = torch.randn(G, 2, 5, D, generator=g)
    results = []
    for final in (group_final, compiled_final()):
        inputs = [t.clone().requires_grad_(True) for t in leaves]
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the final runs in float32 all the same
            y = final(*inputs)
        y.backward(dy)
        results.append([y.detach(), *(t.grad for t in inputs)])
    assert results[0][0].dtype == torch.float32
    for name, a, b in zip(("y", "h", "c", "w", "b", "norm"), *results):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
