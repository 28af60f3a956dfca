"""The uniform-diffusion NELBO: one-hot-free form against the literal formula, the chunked loss against the
unchunked one (value, gradient, memory), and the training-batch noise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from amtheory.diffusion.loss import (
    T_MIN,
    antithetic_times,
    chunked_nelbo,
    forward_noise,
    nelbo_per_token,
    nelbo_per_token_reference,
    pad_vocab,
)
from amtheory.diffusion.schedule import alpha, alpha_prime
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import seeds, sizes

torch.set_num_threads(1)
SETTINGS = property_settings(max_examples=40)


def _case(seed: int, B: int, L: int, V: int, spread: float, dtype=torch.float64, same: float = 0.5):
    """Random logits, clean tokens, and noisy tokens that equal the clean ones with probability ``same``."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, L, V, generator=g, dtype=dtype) * spread
    x0 = torch.randint(0, V, (B, L), generator=g)
    other = (x0 + torch.randint(1, V, (B, L), generator=g)) % V
    xt = torch.where(torch.rand(B, L, generator=g) < same, x0, other)
    t = torch.rand(B, generator=g, dtype=torch.float64) * (1 - T_MIN) + T_MIN
    t[0] = T_MIN
    t[-1] = 1.0
    return logits, x0, xt, alpha(t), alpha_prime(t)


@SETTINGS
@given(
    seed=seeds(),
    B=sizes(2, 4),
    L=sizes(1, 6),
    V=sizes(2, 12),
    spread=st.sampled_from([0.1, 1.0, 5.0, 20.0]),
)
def test_fast_form_equals_literal_formula(seed, B, L, V, spread):
    logits, x0, xt, a, ap = _case(seed, B, L, V, spread)
    lp = logits.log_softmax(-1)
    fast = nelbo_per_token(lp, x0, xt, a, ap)
    ref = nelbo_per_token_reference(lp, x0, xt, a, ap)
    assert fast.shape == (B, L)
    assert torch.allclose(fast, ref, rtol=1e-8, atol=1e-10)
    assert (ref >= -1e-12).all(), "the NELBO is non-negative"


@pytest.mark.parametrize("same", [0.0, 1.0])
def test_both_cases_separately(same):
    """x_t = x_0 everywhere, then x_t != x_0 everywhere: each branch of the two-case form on its own."""
    logits, x0, xt, a, ap = _case(3, 3, 4, 9, 3.0, same=same)
    assert bool((xt == x0).all()) == (same == 1.0)
    lp = logits.log_softmax(-1)
    assert torch.allclose(nelbo_per_token(lp, x0, xt, a, ap), nelbo_per_token_reference(lp, x0, xt, a, ap))


def test_zero_only_at_the_clean_token():
    V = 7
    logits, x0, xt, a, ap = _case(1, 3, 5, V, 1.0)
    perfect = torch.full((3, 5, V), -60.0, dtype=torch.float64).scatter(-1, x0[..., None], 0.0).log_softmax(-1)
    assert nelbo_per_token(perfect, x0, xt, a, ap).abs().max() < 1e-12
    wrong = torch.full((3, 5, V), -60.0, dtype=torch.float64).scatter(-1, ((x0 + 1) % V)[..., None], 0.0)
    assert (nelbo_per_token(wrong.log_softmax(-1), x0, xt, a, ap) > 1e-3).all()


@pytest.mark.parametrize("t", [T_MIN, 0.5, 1.0])
def test_float32_is_accurate_at_the_extremes(t):
    """Float32 against the float64 literal formula, for a confident model (the memorization regime)."""
    V = 30522
    logits, x0, xt, _, _ = _case(5, 2, 8, V, 1.0, dtype=torch.float32)
    logits = logits.scatter(-1, x0[..., None], 25.0)  # p(x0) ~ 1 - 1e-6
    tt = torch.full((2,), t, dtype=torch.float64)
    lp = logits.log_softmax(-1)
    f32 = nelbo_per_token(lp, x0, xt, alpha(tt).float(), alpha_prime(tt).float()).double()
    ref = nelbo_per_token_reference(lp.double(), x0, xt, alpha(tt), alpha_prime(tt))
    assert torch.isfinite(f32).all()
    assert torch.allclose(f32, ref, rtol=1e-3, atol=1e-6)


def _inputs(seed, B=3, L=5, D=6, V=13, bias=True):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, L, D, generator=g, requires_grad=True)
    W = (torch.randn(V, D, generator=g) * 0.7).requires_grad_()
    b = (torch.randn(V, generator=g) * 0.3).requires_grad_() if bias else None
    x0 = torch.randint(0, V, (B, L), generator=g)
    t = antithetic_times(B, generator=g)
    xt, a, ap = forward_noise(x0, t, V, generator=g)
    return h, W, b, x0, xt, a, ap


@pytest.mark.parametrize("chunk_rows", [1, 4, 15, 64])
@pytest.mark.parametrize("bias", [True, False])
def test_chunked_equals_unchunked_value_and_gradient(chunk_rows, bias):
    h, W, b, x0, xt, a, ap = _inputs(11, bias=bias)
    logits = h @ W.t() + (b if b is not None else 0.0)
    ref = nelbo_per_token(logits.log_softmax(-1), x0, xt, a, ap).mean()
    params = [h, W] + ([b] if b is not None else [])
    ref_grads = torch.autograd.grad(3.0 * ref, params)
    got = chunked_nelbo(h, W, x0, xt, a, ap, head_bias=b, chunk_rows=chunk_rows)
    got_grads = torch.autograd.grad(3.0 * got, params)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-6)
    for r, g_ in zip(ref_grads, got_grads):
        assert torch.allclose(g_, r, rtol=1e-4, atol=1e-6)


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.largest = max(self.largest, o.numel())
        return out


def test_chunked_never_builds_a_full_logit_tensor():
    B, L, D, V, chunk = 4, 8, 6, 300, 5
    VP = pad_vocab(V)  # the head is padded to aligned rows
    h, W, b, x0, xt, a, ap = _inputs(2, B, L, D, V)
    with _LargestTensor() as chunked:
        chunked_nelbo(h, W, x0, xt, a, ap, head_bias=b, chunk_rows=chunk).backward()
    with _LargestTensor() as plain:
        nelbo_per_token((h @ W.t() + b).log_softmax(-1), x0, xt, a, ap).mean().backward()
    assert plain.largest >= B * L * V  # the probe sees the full tensor when there is one
    assert chunked.largest <= max(chunk * VP, VP * (D + 8)) < B * L * V  # a chunk of logits, or the head gradient


def test_antithetic_times_are_stratified():
    g = torch.Generator().manual_seed(4)
    B = 16
    t = antithetic_times(B, generator=g).double()
    assert ((t >= T_MIN) & (t < 1)).all()
    gaps = torch.diff(torch.sort((t - T_MIN) / (1 - T_MIN)).values)
    assert torch.allclose(gaps, torch.full_like(gaps, 1 / B), atol=1e-6)


def test_forward_noise_keeps_tokens_at_tiny_t_and_is_seeded():
    x0 = torch.randint(0, 20, (4, 25), generator=torch.Generator().manual_seed(0))
    xt, a, ap = forward_noise(x0, 1e-12, 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(xt, x0)
    assert torch.allclose(ap, torch.full((4,), -(1 - 1e-3)))
    y1, _, _ = forward_noise(x0, 1.0, 20, generator=torch.Generator().manual_seed(7))
    y2, _, _ = forward_noise(x0, 1.0, 20, generator=torch.Generator().manual_seed(7))
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, x0)


def test_bad_input():
    V = 5
    lp = torch.zeros(2, 3, V).log_softmax(-1)
    x0 = torch.zeros(2, 3, dtype=torch.long)
    a = torch.full((2,), 0.5)
    ap = torch.full((2,), -0.999)
    with pytest.raises(ValueError, match="x0"):
        nelbo_per_token(lp, x0 + V, x0, a, ap)
    with pytest.raises(ValueError, match="xt"):
        nelbo_per_token(lp, x0, x0 - 1, a, ap)
    with pytest.raises(TypeError, match="x0"):
        nelbo_per_token(lp, x0.float(), x0, a, ap)
    with pytest.raises(ValueError, match="alpha_t"):
        nelbo_per_token(lp, x0, x0, torch.ones(2), ap)
    with pytest.raises(ValueError, match="alpha_prime_t"):
        nelbo_per_token(lp, x0, x0, a, -ap)
    with pytest.raises(ValueError, match="alpha_t"):
        nelbo_per_token(lp, x0, x0, torch.full((3,), 0.5), ap)
    with pytest.raises(ValueError, match="t: expected times in"):
        forward_noise(x0, 0.0, V)
    with pytest.raises(ValueError, match="t: expected times in"):
        forward_noise(x0, torch.tensor([0.5, 1.5]), V)
    with pytest.raises(ValueError, match="x0"):
        chunked_nelbo(torch.zeros(2, 3, 4), torch.zeros(V, 4), x0 + V, x0, a, ap)
    with pytest.raises(ValueError, match="head_weight"):
        chunked_nelbo(torch.zeros(2, 3, 4), torch.zeros(V, 3), x0, x0, a, ap)
    with pytest.raises(ValueError, match="t:"):
        forward_noise(x0, -F.relu(torch.ones(2)), V)


@pytest.mark.parametrize("t", [T_MIN, 0.5, 1.0])
def test_closed_form_gradient_stays_finite_for_extreme_logits(t):
    """A memorizing model's logits grow without bound; the float32 loss and its closed-form logit gradient must
    stay finite (no expm1/softplus/1/(1 - alpha) overflow) for margins up to 5e7, right or wrong, x_t = x_0 or not,
    at V = 8192 (lam = log(V alpha/(1 - alpha)) ~ 15.9 at t = T_MIN)."""
    from amtheory.diffusion.loss import rows_loss_and_grad

    V, N = 8192, 16
    g = torch.Generator().manual_seed(0)
    for spread in (1.0, 1e2, 1e4, 1e6):
        z = torch.randn(N, V, generator=g) * spread
        x0 = torch.randint(0, V, (N,), generator=g)
        xt = x0.clone()
        xt[N // 2 :] = (x0[N // 2 :] + 1) % V
        z[: N // 4].scatter_(1, x0[: N // 4, None], spread * 50)  # confident and right
        z[N // 2 : 3 * N // 4].scatter_(1, xt[N // 2 : 3 * N // 4, None], spread * 50)  # confident in the noise token
        tt = torch.full((N,), t)
        loss, grad = rows_loss_and_grad(z, x0, xt, alpha(tt), alpha_prime(tt), 1.0 / N)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), spread
        assert (loss >= -1e-3).all()
        # w = -alpha'/(alpha xbar_i) <= 1/(alpha (1 - alpha)) and |expm1(u)| <= V alpha/(1 - alpha), so
        # |d loss / d logit| <= 2 w (1 + V alpha/(1 - alpha)) / N: bounded at every t in [T_MIN, 1].
        a = float(alpha(torch.tensor(t)))
        assert grad.abs().max() <= 2 * (1 + V * a / (1 - a)) / (a * (1 - a)) / N
