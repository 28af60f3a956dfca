"""The continuous-time NELBO of uniform discrete diffusion, and the training-batch noise.

docs/theory.md, "The continuous-time NELBO" (UDLM, Schiff et al. 2024): with ``xbar = V alpha_t onehot(x_0) +
(1 - alpha_t)``, ``xbar_theta = V alpha_t x_theta + (1 - alpha_t)`` and ``i = x_t``,

    loss = alpha'_t / (V alpha_t) * ( V/xbar_i - V/xbar_theta_i
           - sum_j (xbar_j / xbar_i) log( xbar_theta_i xbar_j / (xbar_theta_j xbar_i) ) ).

Rewriting it (both ``xbar`` and ``xbar_theta`` sum to V) gives the form used here, which needs no one-hot:

    loss = (-alpha'_t) / (alpha_t xbar_i) * ( KL(q || q_theta) + r - 1 - log r ),
    q = xbar / V = alpha_t onehot(x_0) + (1 - alpha_t)/V,   q_theta = xbar_theta / V,   r = q_i / q_theta_i,

two non-negative terms, so ``loss >= 0``, with equality iff ``x_theta = onehot(x_0)``. With ``l = log x_theta``,
``c = (1 - alpha_t)/V``, ``lam = log(V alpha_t / (1 - alpha_t))``, ``sp = softplus`` and ``S = sum_j sp(l_j + lam)``:

    KL = (alpha_t + c) (sp(lam) - sp(l_{x0} + lam)) - c (S - sp(l_{x0} + lam))
    log r = sp(lam) - sp(l_{x0} + lam)   if x_t = x_0,      log r = -sp(l_{x_t} + lam)   if x_t != x_0
    xbar_i = V alpha_t + 1 - alpha_t     if x_t = x_0,      xbar_i = 1 - alpha_t         if x_t != x_0

Every term is a softplus of a log-probability, so there is no cancellation of large numbers in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from amtheory.core._checks import check_generator, check_int, check_tokens, check_vocab_size, draw_device
from amtheory.diffusion.model import mm_f32
from amtheory.diffusion.nelbo_terms import _check_alphas, _check_pair, _lam, row_coefficients, row_terms
from amtheory.diffusion.schedule import alpha, alpha_prime

__all__ = [
    "PAD_LOGIT",
    "T_MIN",
    "TRITON_ROWS",
    "antithetic_times",
    "chunked_nelbo",
    "forward_noise",
    "nelbo_per_token",
    "nelbo_per_token_reference",
    "pad_vocab",
    "rows_loss_and_grad",
    "stratified_times",
]

#: Lower end of the training times, t ~ U[T_MIN, 1] (docs/theory.md, "The continuous-time NELBO").
T_MIN = 1e-3


def _nelbo_rows(ell_NV: torch.Tensor, x0_N, xt_N, a_N, ap_N) -> torch.Tensor:
    """Per-row NELBO from log-probabilities [n, V]."""
    V = ell_NV.shape[-1]
    lam = _lam(a_N, V)
    S = F.softplus(ell_NV + lam[:, None]).sum(-1)
    l_k = ell_NV.gather(-1, x0_N[:, None])[:, 0]
    l_i = ell_NV.gather(-1, xt_N[:, None])[:, 0]
    return row_terms(l_k, l_i, S - F.softplus(l_k + lam), x0_N == xt_N, lam, a_N, ap_N, V)[0]


def nelbo_per_token(
    log_x_theta: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    alpha_t: torch.Tensor | float,
    alpha_prime_t: torch.Tensor | float,
) -> torch.Tensor:
    """Continuous-time NELBO per token ``[B, L]`` (>= 0) from log-probabilities ``log x_theta [B, L, V]``.

    Clean tokens ``x0``, noisy tokens ``xt`` (``[B, L]`` long), per-sequence ``alpha_t`` in (0, 1) and
    ``alpha'_t <= 0`` (``[B]``). The one-hot-free form of the module docstring; differentiable.
    docs/theory.md, "The continuous-time NELBO"; Schiff et al. 2024 (UDLM).
    """
    if not isinstance(log_x_theta, torch.Tensor) or not log_x_theta.is_floating_point() or log_x_theta.dim() != 3:
        raise TypeError(f"log_x_theta: expected a float tensor [B, L, V] of log-probabilities, got {log_x_theta!r:.80}")
    B, L, V = log_x_theta.shape
    x0, xt = _check_pair(x0, xt, V, True)
    if x0.shape != (B, L):
        raise ValueError(f"x0: expected shape {(B, L)} to match log_x_theta, got {tuple(x0.shape)}")
    a, ap = _check_alphas(alpha_t, alpha_prime_t, B, log_x_theta.device, True)
    dt = log_x_theta.dtype
    rows = _nelbo_rows(
        log_x_theta.reshape(B * L, V),
        x0.reshape(-1),
        xt.reshape(-1),
        a.to(dt).repeat_interleave(L),
        ap.to(dt).repeat_interleave(L),
    )
    return rows.reshape(B, L)


def nelbo_per_token_reference(
    log_x_theta: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    alpha_t: torch.Tensor | float,
    alpha_prime_t: torch.Tensor | float,
) -> torch.Tensor:
    """The NELBO per token by the full formula of docs/theory.md, in float64 (a slow, literal check).

    ``alpha'/(V alpha) (V/xbar_i - V/xbar_theta_i - sum_j xbar_j/xbar_i log(xbar_theta_i xbar_j /
    (xbar_theta_j xbar_i)))`` with ``xbar = V alpha onehot(x0) + 1 - alpha``, ``xbar_theta = V alpha x_theta +
    1 - alpha``, ``i = x_t``.
    """
    if not isinstance(log_x_theta, torch.Tensor) or not log_x_theta.is_floating_point() or log_x_theta.dim() != 3:
        raise TypeError(f"log_x_theta: expected a float tensor [B, L, V] of log-probabilities, got {log_x_theta!r:.80}")
    B, L, V = log_x_theta.shape
    x0, xt = _check_pair(x0, xt, V, True)
    a, ap = _check_alphas(alpha_t, alpha_prime_t, B, log_x_theta.device, True)
    a = a.double()[:, None, None]
    ap = ap.double()[:, None, None]
    xbar = V * a * F.one_hot(x0, V).double() + (1 - a)
    xbar_theta = V * a * log_x_theta.double().exp() + (1 - a)
    xb_i = xbar.gather(-1, xt[..., None])
    xbt_i = xbar_theta.gather(-1, xt[..., None])
    inner = (xbar / xb_i) * torch.log(xbt_i * xbar / (xbar_theta * xb_i))
    bracket = V / xb_i - V / xbt_i - inner.sum(-1, keepdim=True)
    return (ap / (V * a) * bracket)[..., 0]


def rows_loss_and_grad(
    logits_NV: torch.Tensor,
    x0_N: torch.Tensor,
    xt_N: torch.Tensor,
    a_N: torch.Tensor,
    ap_N: torch.Tensor,
    scale: float,
    with_grad: bool = True,
    grad_dtype: torch.dtype | None = None,
    V: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-row NELBO from float32 logits and, optionally, ``scale * d(sum of rows)/d logits`` in closed form
    (returned in ``grad_dtype``, default float32).

    ``V``: the vocabulary size when ``logits_NV`` has padding columns past it (logits of :data:`PAD_LOGIT`, whose
    probabilities, softplus and sigmoid terms and gradient are exactly zero); default ``logits_NV.shape[-1]``.
    With ``p = softmax(logits)``, ``e = exp(l + lam) = K p`` (``K = exp(lam)``), the softplus and sigmoid of
    ``l + lam`` are ``log1p(e)`` and ``e / (1 + e)``: one exponential per entry serves all three. The gradient is
    :func:`row_coefficients`. Unchecked inner kernel of :func:`chunked_nelbo` (pure tensor code, so
    ``torch.compile`` can fuse it into a few passes).
    """
    V = logits_NV.shape[-1] if V is None else V
    z = logits_NV.float()
    ell = z - torch.logsumexp(z, dim=-1, keepdim=True)
    lam = _lam(a_N, V)
    p = torch.exp(ell)
    e = p * torch.exp(lam)[:, None]
    S = torch.log1p(e).sum(-1)
    l_k = ell.gather(-1, x0_N[:, None])[:, 0]
    l_i = ell.gather(-1, xt_N[:, None])[:, 0]
    # The x0 term taken out of the sum it is in (the same float value): only the sum's rounding remains.
    S_rest = S - torch.log1p(e.gather(-1, x0_N[:, None])[:, 0])
    loss, c, u, w = row_terms(l_k, l_i, S_rest, x0_N == xt_N, lam, a_N, ap_N, V)
    if not with_grad:
        return loss, None
    sig = e / (1.0 + e)
    A, P, coef_k, coef_i = row_coefficients(l_k, l_i, sig.sum(-1), lam, c, u, w, a_N, scale)
    grad = A[:, None] * sig + P[:, None] * p
    if torch.compiler.is_compiling():
        # Masks keep the whole gradient one fused pointwise pass that writes grad_dtype directly; a scatter
        # would split it into three passes over [n, V].
        col = torch.arange(logits_NV.shape[-1], device=logits_NV.device)
        grad = grad + torch.where(col == x0_N[:, None], coef_k[:, None], 0.0)
        grad = grad + torch.where(col == xt_N[:, None], coef_i[:, None], 0.0)
    else:
        grad = grad.scatter_add(-1, x0_N[:, None], coef_k[:, None]).scatter_add(-1, xt_N[:, None], coef_i[:, None])
    return loss, grad.to(grad_dtype or torch.float32)


#: ``kernel`` value of :func:`chunked_nelbo` for the Triton kernels of :mod:`amtheory.diffusion.loss_kernels`
#: over each chunk's float32 logits (the trainer's choice on CUDA).
TRITON_ROWS = "triton-rows"

#: The head's vocabulary is padded to a multiple of this many rows, so rows of the logits and of their bf16
#: gradient stay 256-byte aligned, the layout cuBLAS's fast Hopper kernels need: V = 30,522 is not even a multiple
#: of 8, and unpadded the head's three GEMMs fall back to slower kernels (see benchmarks/README.md).
VOCAB_ALIGN = 128
#: Logit of a padding row (its bias; its weights are zero): exp, softplus and sigmoid of it are exactly zero.
PAD_LOGIT = -30000.0


def pad_vocab(V: int) -> int:
    """``V`` rounded up to a multiple of :data:`VOCAB_ALIGN`."""
    return -(-V // VOCAB_ALIGN) * VOCAB_ALIGN


def triton_chunk(stats_fn, grad_fn, x0, xt, a, ap, scale: float, with_grad: bool, V: int):
    """Loss ``[n]`` and ``scale * dloss/dlogits`` of a chunk from Triton kernels: ``stats_fn(K)`` gives each row's
    ``[lse, logit at x0, logit at xt, S_rest, G]`` (``K = exp(lam)``; ``S_rest`` leaves out the x0 term) and
    ``grad_fn(coef)`` the gradient from each row's ``[lse, K, A, P, ck, ci]``; between the two, the per-row
    arithmetic of :func:`row_terms` and :func:`row_coefficients`."""
    lam = _lam(a, V)
    K = torch.exp(lam)
    lse, zk, zi, S_rest, G = stats_fn(K).unbind(1)
    l_k, l_i = zk - lse, zi - lse
    loss, c, u, w = row_terms(l_k, l_i, S_rest, x0 == xt, lam, a, ap, V)
    if not with_grad:
        return loss, None
    A, P, ck, ci = row_coefficients(l_k, l_i, G, lam, c, u, w, a, scale)
    return loss, grad_fn(torch.stack([lse, K, A, P, ck, ci], dim=1))


class _ChunkedNELBO(torch.autograd.Function):
    """Mean NELBO of ``head(h)`` over rows, one row chunk of logits at a time.

    The gradient is computed in the forward pass (the loss is the end of the graph, so its gradient with
    respect to each chunk's logits is known there) and applied to ``h``, ``W`` and ``b`` at once; backward only
    scales it. No [N, V] tensor is ever kept: peak extra memory is a few [chunk_rows, V] buffers. With
    ``kernel = TRITON_ROWS`` the loss and gradient come from two Triton kernels over the chunk's logits.
    The vocabulary is padded to :func:`pad_vocab` rows (zero weights, bias :data:`PAD_LOGIT`) so every product
    over it is an aligned GEMM.
    """

    @staticmethod
    def forward(ctx, h_ND, W_VD, b_V, x0_N, xt_N, a_N, ap_N, chunk_rows, compute_dtype, kernel):
        need_h, need_W, need_b = ctx.needs_input_grad[:3]
        with_grad = need_h or need_W or need_b
        N, D = h_ND.shape
        V = W_VD.shape[0]
        VP = pad_vocab(V)
        dev = h_ND.device
        if kernel == TRITON_ROWS:
            from amtheory.diffusion import loss_kernels as lk
        # The bias rides in the product as an extra input column of ones (padded to 8 for aligned GEMMs), so
        # neither adding it to the logits nor summing its gradient costs a pass over [n, V].
        pad = 8
        with torch.autocast(device_type=dev.type, enabled=False):
            Wc = torch.zeros(VP, D + pad, dtype=compute_dtype, device=dev)
            Wc[:V, :D] = W_VD.detach()
            if b_V is not None:
                Wc[:V, D] = b_V.detach()
            Wc[V:, D] = PAD_LOGIT
            ones = torch.zeros(1, pad, dtype=compute_dtype, device=dev)
            ones[:, :1] = 1.0
            total = torch.zeros((), dtype=torch.float32, device=dev)
            g_h = torch.empty((N, D), dtype=torch.float32, device=dev) if need_h else None
            g_Wb = torch.zeros((VP, D + pad), dtype=torch.float32, device=dev) if (need_W or need_b) else None
            for s in range(0, N, chunk_rows):
                e = min(N, s + chunk_rows)
                hc = torch.cat([h_ND[s:e].detach().to(compute_dtype), ones.expand(e - s, pad)], dim=1)
                x0c, xtc = x0_N[s:e], xt_N[s:e]
                logits = mm_f32(hc, Wc.t())
                if kernel == TRITON_ROWS:
                    loss, gc = triton_chunk(
                        partial(lk.row_stats, logits, x0c, xtc),
                        partial(lk.row_logit_grad, logits, x0c, xtc, dtype=compute_dtype),
                        x0c, xtc, a_N[s:e], ap_N[s:e], 1.0 / N, with_grad, V,
                    )  # fmt: skip
                else:
                    # The kernel writes the logits' gradient directly in the product dtype (one pass fewer).
                    loss, gc = kernel(logits, x0c, xtc, a_N[s:e], ap_N[s:e], 1.0 / N, with_grad, compute_dtype, V)
                del logits
                total = total + loss.sum()
                if not with_grad:
                    continue
                if need_h:
                    g_h[s:e] = mm_f32(gc, Wc[:, :D])
                if g_Wb is not None:
                    g_Wb += mm_f32(gc.t(), hc)
        g_W = g_Wb[:V, :D] if need_W else None
        g_b = g_Wb[:V, D].contiguous() if need_b else None
        ctx.grads = (g_h, g_W, g_b)
        ctx.dtypes = (h_ND.dtype, W_VD.dtype, b_V.dtype if b_V is not None else None)
        return total / N

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        g_h, g_W, g_b = ctx.grads
        ctx.grads = None
        dts = ctx.dtypes
        outs = [None if g is None else (g * grad_out).to(dt) for g, dt in zip((g_h, g_W, g_b), dts)]
        return (*outs, None, None, None, None, None, None, None)


def chunked_nelbo(
    hidden_BLD: torch.Tensor,
    head_weight: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    alpha_t: torch.Tensor | float,
    alpha_prime_t: torch.Tensor | float,
    *,
    head_bias: torch.Tensor | None = None,
    chunk_rows: int = 2048,
    compute_dtype: torch.dtype | None = None,
    kernel: Callable | None = None,
    check: bool = True,
) -> torch.Tensor:
    """Mean NELBO over all tokens of ``logits = hidden @ head_weight^T + head_bias``, without a [B, L, V] tensor.

    Equals ``nelbo_per_token(log_softmax(logits), ...).mean()`` in value and gradient (with respect to
    ``hidden``, ``head_weight`` and ``head_bias``), holding only ``chunk_rows`` rows of logits at a time.
    ``compute_dtype`` is the dtype of the head product (default: bf16 under CUDA/CPU autocast, else that of
    ``hidden``); logits and the loss are always float32. ``kernel`` replaces :func:`rows_loss_and_grad` (e.g. its
    ``torch.compile``-d version); ``kernel = TRITON_ROWS`` uses the Triton kernels of
    :mod:`amtheory.diffusion.loss_kernels` (CUDA, or a CPU under ``TRITON_INTERPRET=1``).
    ``check=False`` skips the value checks that need a device sync.
    """
    if not isinstance(hidden_BLD, torch.Tensor) or not hidden_BLD.is_floating_point() or hidden_BLD.dim() != 3:
        raise TypeError(f"hidden_BLD: expected a float tensor [B, L, D], got {hidden_BLD!r:.80}")
    B, L, D = hidden_BLD.shape
    if not isinstance(head_weight, torch.Tensor) or head_weight.dim() != 2 or head_weight.shape[1] != D:
        raise ValueError(f"head_weight: expected a tensor [V, {D}], got {getattr(head_weight, 'shape', head_weight)}")
    V = check_vocab_size("head_weight.shape[0]", head_weight.shape[0])
    if head_bias is not None and (not isinstance(head_bias, torch.Tensor) or head_bias.shape != (V,)):
        raise ValueError(f"head_bias: expected a tensor [{V}] or None, got {getattr(head_bias, 'shape', head_bias)}")
    check_int("chunk_rows", chunk_rows, minimum=1)
    if isinstance(kernel, str) and kernel != TRITON_ROWS:
        raise ValueError(f"kernel: expected a callable, None or {TRITON_ROWS!r}, got {kernel!r}")
    x0, xt = _check_pair(x0, xt, V, check)
    if x0.shape != (B, L):
        raise ValueError(f"x0: expected shape {(B, L)} to match hidden_BLD, got {tuple(x0.shape)}")
    a, ap = _check_alphas(alpha_t, alpha_prime_t, B, hidden_BLD.device, check)
    if compute_dtype is None:
        dev = hidden_BLD.device.type
        compute_dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else hidden_BLD.dtype
    return _ChunkedNELBO.apply(
        hidden_BLD.reshape(B * L, D),
        head_weight,
        head_bias,
        x0.reshape(-1),
        xt.reshape(-1),
        a.float().repeat_interleave(L),
        ap.float().repeat_interleave(L),
        chunk_rows,
        compute_dtype,
        kernel if kernel is not None else rows_loss_and_grad,
    )


# --------------------------------------------------------------------------------------------------- noise
def antithetic_times(
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    t_min: float = T_MIN,
) -> torch.Tensor:
    """Stratified training times ``t_i = t_min + (1 - t_min) ((u + i/B) mod 1)``, one uniform ``u`` per batch.

    Each t_i is marginally U[t_min, 1) and the batch covers the interval evenly (lower-variance NELBO estimate;
    Kingma et al. 2021, as in UDLM/Duo).
    """
    check_int("batch_size", batch_size, minimum=1)
    check_generator("generator", generator)
    u = torch.rand((), generator=generator, device=draw_device(generator, device), dtype=torch.float64)
    return stratified_times(u.to(device), batch_size, t_min=t_min)


def stratified_times(u: torch.Tensor, batch_size: int, *, t_min: float = T_MIN) -> torch.Tensor:
    """:func:`antithetic_times` from its uniforms ``u`` (float64, any shape ``[...]``, one per batch): float32
    ``[..., batch_size]``, the times of each batch. A group of models forms every member's times at once."""
    t = (u.unsqueeze(-1) + torch.arange(batch_size, device=u.device, dtype=torch.float64) / batch_size) % 1.0
    return (t_min + (1.0 - t_min) * t).float()


def forward_noise(
    x0: torch.Tensor,
    t: torch.Tensor | float,
    vocab_size: int,
    *,
    generator: torch.Generator | None = None,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample ``x_t ~ q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t)/V`` per position.

    With probability ``1 - alpha_t`` a token is replaced by a uniform draw over all V (it may redraw itself).
    ``t`` is one time per sequence (``[B]`` or a float) in (0, 1]. Returns ``(x_t, alpha_t, alpha'_t)``.
    docs/theory.md, "Forward kernel and schedule".
    """
    check_vocab_size("vocab_size", vocab_size)
    x0 = check_tokens("x0", x0, vocab_size=vocab_size if check else None, rank=2)
    check_generator("generator", generator)
    B, L = x0.shape
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        t = torch.full((B,), float(t), device=x0.device)
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.shape not in ((B,), ()):
        raise TypeError(f"t: expected a float or a float tensor of shape ({B},), got {t!r:.80}")
    t = t.expand(B).to(x0.device)
    if check and B and not bool(((t > 0) & (t <= 1)).all()):
        raise ValueError(f"t: expected times in (0, 1], got range [{float(t.min())}, {float(t.max())}]")
    a = alpha(t)
    dev = draw_device(generator, x0.device)
    keep = torch.rand((B, L), generator=generator, device=dev).to(x0.device) < a[:, None]
    noise = torch.randint(0, vocab_size, (B, L), generator=generator, device=dev).to(x0.device)
    return torch.where(keep, x0, noise), a, alpha_prime(t)
