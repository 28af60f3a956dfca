"""Probes of a UDDM training step that went non-finite: per-block activations and attention logits (forward hooks),
the logits and the rows whose closed-form loss or gradient is not finite, the parameters with non-finite gradients
and where the non-finite value first appears, and the same step recomputed in float32 or with each attention
backend."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from amtheory.diffusion.attention_kernels import apply_rotary
from amtheory.diffusion.loss import rows_loss_and_grad
from amtheory.diffusion.model import DiT, mm_f32
from amtheory.diffusion.train import _seed_for, forward_backward


class Probes:
    """Forward hooks on every block: max |output stream| and the inputs (for the attention logits on demand).

    With the fused norms a block returns its mlp branch's update for the next norm to add; the probes add it here
    (without dropout) to see the stream the next block normalises."""

    def __init__(self, model: DiT):
        self.model = model
        self.act_max: list[torch.Tensor | None] = [None] * len(model.blocks)
        self.inputs: list[tuple | None] = [None] * len(model.blocks)
        self.handles = []
        for i, blk in enumerate(model.blocks):
            self.handles.append(blk.register_forward_pre_hook(self._pre(i)))
            self.handles.append(blk.register_forward_hook(self._post(i)))

    def _pre(self, i: int):
        def hook(module: nn.Module, args: tuple) -> None:
            x, pending, c, cos, sin = args[:5]
            self.inputs[i] = tuple(a.detach() for a in (_add_pending(x, pending), c, cos, sin))

        return hook

    def _post(self, i: int):
        def hook(module: nn.Module, args: tuple, out: tuple) -> None:
            self.act_max[i] = _add_pending(*out).detach().float().abs().amax()

        return hook

    @torch.no_grad()
    def attention_stats(self) -> dict[str, list[float]]:
        """Per block, recomputed in float32 from the inputs the hooks saw: max |q . k| / sqrt(d_head) and the
        smallest logsumexp of a query row (the row's softmax normaliser; below ln(FLT_MAX) ~ -88.7 some bf16
        attention backward kernels overflow)."""
        out: dict[str, list[float]] = {"attn_logit_max": [], "attn_lse_min": []}
        for blk, inp in zip(self.model.blocks, self.inputs):
            if inp is None:
                out["attn_logit_max"].append(float("nan"))
                out["attn_lse_min"].append(float("nan"))
                continue
            x, c, cos, sin = (a.float() for a in inp)
            B, L, D = x.shape
            shift1, scale1, *_ = _f32(blk.adaLN, c).chunk(6, dim=-1)
            h = blk.norm1(x) * (1.0 + scale1[:, None]) + shift1[:, None]
            qkv = _f32(blk.qkv, h).view(B, L, 3, blk.n_heads, D // blk.n_heads).permute(2, 0, 3, 1, 4)
            q, k = qkv[0], qkv[1]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(D // blk.n_heads)
            out["attn_logit_max"].append(float(s.abs().amax()))
            out["attn_lse_min"].append(float(torch.logsumexp(s, -1).amin()))
        return out

    def activation_max(self) -> list[float]:
        return [float(a) if a is not None else float("nan") for a in self.act_max]


def _add_pending(x: torch.Tensor, pending: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """The stream with a block's pending branch update ``gate * o`` added (no dropout)."""
    if pending is None:
        return x
    o, gate = pending
    return x + gate[:, None] * o


def _f32(lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(x.float(), lin.weight.float(), None if lin.bias is None else lin.bias.float())


@torch.no_grad()
def logit_stats(model: DiT, batch: dict[str, torch.Tensor], chunk_rows: int) -> dict[str, Any]:
    """max |h| and max |logit| of the batch, and the rows whose float32 loss or closed-form gradient is not
    finite (with their t and whether x_t = x_0), recomputed in float32 in eval-free train mode without dropout
    effects on the statistics' meaning (same model state, no autocast)."""
    h = model.hidden(batch["xt"], batch["sigma"], check=False).float()
    B, L, D = h.shape
    hN = h.reshape(B * L, D)
    W, b = model.out.weight.float(), model.out.bias.float()
    a = batch["alpha"].float().repeat_interleave(L)
    ap = batch["alpha_prime"].float().repeat_interleave(L)
    x0, xt = batch["x0"].reshape(-1), batch["xt"].reshape(-1)
    lmax = torch.zeros((), device=h.device)
    bad_rows = []
    for s in range(0, B * L, chunk_rows):
        e = min(B * L, s + chunk_rows)
        logits = mm_f32(hN[s:e], W.t()) + b
        lmax = torch.maximum(lmax, logits.abs().amax())
        loss, g = rows_loss_and_grad(logits, x0[s:e], xt[s:e], a[s:e], ap[s:e], 1.0 / (B * L))
        bad = ~(torch.isfinite(loss) & torch.isfinite(g).all(-1))
        bad_rows.append(torch.nonzero(bad).flatten() + s)
    rows = torch.cat(bad_rows)
    t = (1.0 - batch["alpha"].double()) / (1.0 - 1e-3)
    seq = rows // L
    return {
        "max_abs_h": float(hN.abs().amax()),
        "max_abs_logit": float(lmax),
        "n_nonfinite_rows": int(rows.numel()),
        "t_of_nonfinite_rows": sorted({round(float(t[i]), 5) for i in seq[:200].tolist()}),
        "x_t_equals_x0_of_nonfinite_rows": [bool(x0[r] == xt[r]) for r in rows[:20].tolist()],
        "t_range_of_batch": [float(t.min()), float(t.max())],
    }


def grad_report(model: nn.Module) -> tuple[list[dict[str, Any]], float]:
    """Parameters with non-finite gradients (name, count, max finite |g|) and the total gradient norm."""
    bad, sq = [], 0.0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().float()
        fin = torch.isfinite(g)
        if not bool(fin.all()):
            finite_max = float(g[fin].abs().max()) if bool(fin.any()) else float("nan")
            bad.append({"param": name, "nonfinite": int((~fin).sum()), "numel": g.numel(), "max_finite": finite_max})
        else:
            sq += float((g * g).sum())
    return bad, math.sqrt(sq) if not bad else float("inf")


def recompute(objective, model, opt, batch, step, tc, dtype) -> dict[str, Any]:
    """The same step (same batch, same dropout seed, same weights) under ``dtype`` autocast (None: float32)."""
    opt.zero_grad(set_to_none=True)
    loss = forward_backward(objective, batch, grad_accum=1, autocast_dtype=dtype,
                            dropout_seed=_seed_for(tc.seed, 0, step, "dropout"))  # fmt: skip
    bad, norm = grad_report(model)
    opt.zero_grad(set_to_none=True)
    return {"loss": float(loss), "grad_norm": norm, "finite": bool(math.isfinite(float(loss))) and not bad,
            "nonfinite_params": [b["param"] for b in bad]}  # fmt: skip


def diagnose_step(step, loss, batch, probes, objective, model, opt, tc, amp) -> dict[str, Any]:
    bad, _ = grad_report(model)
    rep: dict[str, Any] = {
        "step": step,
        "lr": tc.lr_at(step),
        "loss": float(loss),
        "nonfinite_grads": bad,
        "origin": origin(bad, model),
        "block_act_max": probes.activation_max(),
        **probes.attention_stats(),
    }
    rep.update(logit_stats(model, batch, 1 << 30 if batch["x0"].numel() < 4096 else 2048))
    rep["recomputed_float32"] = recompute(objective, model, opt, batch, step, tc, None)
    if amp is not None:
        rep["recomputed_same_dtype"] = recompute(objective, model, opt, batch, step, tc, amp)
        if batch["x0"].device.type == "cuda":
            rep["recomputed_per_sdpa_backend"] = per_backend(objective, model, opt, batch, step, tc, amp)
    return rep


def origin(bad: list[dict[str, Any]], model: DiT) -> str | None:
    """The last module, in forward order, with a non-finite parameter gradient: back-propagation carries a NaN
    born in block k to every parameter before it, but not to those after it (nor to the head, whose gradient
    comes straight from the loss), so this is where the non-finite value appears first."""
    names = {b["param"] for b in bad}
    if not names:
        return None
    order = [n for n, _ in model.named_parameters()]
    last = max(order.index(n) for n in names)
    return order[last]


def per_backend(objective, model, opt, batch, step, tc, amp) -> dict[str, Any]:
    """The bad step recomputed with each scaled-dot-product-attention backend alone (CUDA)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = {}
    for name in ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            continue
        try:
            with sdpa_kernel([backend]):
                r = recompute(objective, model, opt, batch, step, tc, amp)
            out[name] = {"finite": r["finite"], "grad_norm": r["grad_norm"], "loss": r["loss"]}
        except RuntimeError as e:  # a backend that does not take these inputs
            out[name] = {"error": str(e).splitlines()[0][:160]}
    return out
