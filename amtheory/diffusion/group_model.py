"""G diffusion transformers of one shape as one network: stacked weights, one forward pass, one chunked NELBO.

The members' parameters live side by side in one float32 matrix ``flat [G, P]`` (member ``g``'s DiT parameters,
in ``DiT.named_parameters()`` order, are row ``g``). :class:`GroupLayout` cuts that matrix into named views
``[G, *shape]`` (one ``torch.split``, so the gradient of every view lands in one ``[G, P]`` gradient), and
:func:`group_hidden` runs the DiT of :mod:`amtheory.diffusion.model` on ``x [G, B, L]`` with those views: every
linear map is a batched product over the members (``baddbmm``), attention and the norms fold the members into the
batch. The map of each member is that of its own :class:`~amtheory.diffusion.model.DiT` (torch residual norms, the
attention kernel chosen as the DiT would choose it), so a member trained in a group follows the same numbers as
one trained alone, up to float rounding. Dropout is not drawn here: the members' networks must have dropout 0.

:func:`group_nelbo` is :func:`amtheory.diffusion.loss.chunked_nelbo` over the members' heads: one mean NELBO per
member ``[G]``, the gradient computed in closed form in the forward pass, the rows of all members in each chunk
going through the same loss kernel ("eager", "compiled" or the Triton kernels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from amtheory.diffusion.attention_kernels import block_attention, rotary_tables
from amtheory.diffusion.loss import PAD_LOGIT, TRITON_ROWS, pad_vocab, rows_loss_and_grad, triton_chunk
from amtheory.diffusion.model import DiT, DiTConfig, fold_bias

__all__ = [
    "GroupLayout", "baddbmm_f32_", "bmm_f32", "compiled_block", "compiled_final", "compiled_once", "group_final",
    "group_head", "group_hidden", "group_nelbo",
]  # fmt: skip

_BMM_OUT_DTYPE = {"ok": True}  # set to False the first time the float32-output batched product is missing


def bmm_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` (3-D, batched) with a float32 result, the product in the inputs' dtype; the batched form of
    :func:`amtheory.diffusion.model.mm_f32`."""
    if a.dtype == torch.float32:
        return torch.bmm(a, b.float())
    if a.is_cuda and _BMM_OUT_DTYPE["ok"]:
        try:
            return torch.bmm(a, b, out_dtype=torch.float32)
        except (RuntimeError, TypeError):  # an older torch: remember, and stop trying
            _BMM_OUT_DTYPE["ok"] = False
    return torch.bmm(a, b).float()


def _accumulate_in_gemm_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``torch.baddbmm(acc, a, b, out_dtype=float32, out=acc)`` runs on ``device`` for inputs of ``dtype``
    and adds its product to ``acc`` (checked once per device and dtype, on a small problem against the product
    added by hand)."""
    key = (str(device), dtype)
    if key not in _ACCUMULATE_IN_GEMM:
        try:
            gen = torch.Generator(device=device).manual_seed(0)
            a, b = (torch.randn(s, generator=gen, device=device).to(dtype) for s in ((2, 24, 40), (2, 40, 16)))
            acc = torch.randn(2, 24, 16, generator=gen, device=device)
            want = acc + bmm_f32(a, b)
            torch.baddbmm(acc, a, b, out_dtype=torch.float32, out=acc)
            _ACCUMULATE_IN_GEMM[key] = bool(torch.allclose(acc, want, rtol=1e-4, atol=1e-4))
        except (RuntimeError, TypeError):  # no float32-output baddbmm here
            _ACCUMULATE_IN_GEMM[key] = False
    return _ACCUMULATE_IN_GEMM[key]


_ACCUMULATE_IN_GEMM: dict[tuple[str, torch.dtype], bool] = {}


def baddbmm_f32_(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``acc += a @ b`` in place (3-D, batched, ``acc`` float32), the product in the inputs' dtype: added in the
    product's epilogue where the GEMM can (float32 inputs; reduced ones on CUDA), so that ``acc`` is read once by
    the GEMM instead of written as a separate product and then read, read and written by an addition."""
    if a.dtype == torch.float32:
        return acc.baddbmm_(a, b.float())
    if a.is_cuda and _accumulate_in_gemm_ok(a.device, a.dtype):
        return torch.baddbmm(acc, a, b, out_dtype=torch.float32, out=acc)
    return acc.add_(bmm_f32(a, b))


@dataclass(frozen=True)
class GroupLayout:
    """Where each DiT parameter of a member sits in its row of ``flat [G, P]``: ``names``, ``shapes`` and
    ``sizes`` in ``DiT.named_parameters()`` order; ``P = sum(sizes)``."""

    config: DiTConfig
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]

    @staticmethod
    def of(config: DiTConfig) -> GroupLayout:
        if not isinstance(config, DiTConfig):
            raise TypeError(f"config: expected a DiTConfig, got {type(config).__name__}")
        with torch.device("meta"):
            named = list(DiT(config).named_parameters())
        shapes = tuple(tuple(p.shape) for _, p in named)
        return GroupLayout(config, tuple(n for n, _ in named), shapes, tuple(math.prod(s) for s in shapes))

    @property
    def width(self) -> int:
        """``P``: parameters per member."""
        return sum(self.sizes)

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named views ``[G, *shape]`` of ``flat [G, P]`` (one split: their gradients form ``flat``'s)."""
        if not isinstance(flat, torch.Tensor) or flat.dim() != 2 or flat.shape[1] != self.width:
            raise ValueError(f"flat: expected a tensor [G, {self.width}], got {getattr(flat, 'shape', flat)!r}")
        parts = torch.split(flat, self.sizes, dim=1)
        G = flat.shape[0]
        return {n: p.view(G, *s) for n, p, s in zip(self.names, parts, self.shapes)}

    def pack(self, states: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """``flat [G, P]`` float32 from G DiT state dicts (parameters only; on the first state's device)."""
        if not states:
            raise ValueError("states: expected at least one member's state dict, got none")
        rows = []
        for g, sd in enumerate(states):
            missing = [n for n in self.names if n not in sd]
            if missing:
                raise ValueError(f"states[{g}]: missing parameters {missing[:5]}")
            for n, s in zip(self.names, self.shapes):
                if tuple(sd[n].shape) != s:
                    raise ValueError(f"states[{g}][{n!r}]: expected shape {s}, got {tuple(sd[n].shape)}")
            rows.append(torch.cat([sd[n].detach().float().reshape(-1) for n in self.names]))
        return torch.stack(rows)

    def unpack(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """One member's parameters ``{name: tensor}`` (copies) from its row ``[P]`` of a stacked matrix."""
        if not isinstance(row, torch.Tensor) or row.shape != (self.width,):
            raise ValueError(f"row: expected a tensor [{self.width}], got {getattr(row, 'shape', row)!r}")
        parts = torch.split(row.detach(), self.sizes)
        return {n: p.reshape(s).clone() for n, p, s in zip(self.names, parts, self.shapes)}


class _GroupLinear(torch.autograd.Function):
    """``x [G, N, in] @ w[g]^T (+ b[g])`` in the dtype ``dt``, the weight's gradient made as ``dy^T @ x``, laid out as
    the weight. Autograd's would be the transpose of ``w^T``'s, strided, and copied into the stacked gradient."""

    @staticmethod
    def forward(ctx, x, w, b, dt):
        xc, wc = x.to(dt), w.to(dt)
        y = torch.bmm(xc, wc.transpose(1, 2))
        if b is not None:
            y = y + b.to(dt)[:, None, :]
        ctx.save_for_backward(xc, wc)
        ctx.dtypes = (x.dtype, w.dtype, None if b is None else b.dtype)
        return y

    @staticmethod
    def backward(ctx, dy):
        xc, wc = ctx.saved_tensors
        x_dt, w_dt, b_dt = ctx.dtypes
        with torch.autocast(device_type=dy.device.type, enabled=False):  # compiled, backward is traced under it
            gx = torch.bmm(dy, wc).to(x_dt) if ctx.needs_input_grad[0] else None
            gw = torch.bmm(dy.transpose(1, 2), xc).to(w_dt) if ctx.needs_input_grad[1] else None
            gb = dy.sum(1).to(b_dt) if b_dt is not None and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``x [G, N, in] @ w[g]^T + b[g]`` per member (``w [G, out, in]``, ``b [G, out]``), in autocast's dtype like
    ``nn.Linear``. The bias is added after the product (rounded first in a reduced dtype), not in it: compiled, a
    ``baddbmm`` copies the broadcast bias into every output row, where an addition fuses into the work after it."""
    dev = x.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    with torch.autocast(device_type=dev, enabled=False):
        return _GroupLinear.apply(x, w, b, dt)


def _norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The DiT's bias-free LayerNorm in float32, per member weight ``[G, D]``; ``x [G, B, L, D]``."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return F.layer_norm(x.float(), (x.shape[-1],)) * weight.float()[:, None, None, :]


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + scale[:, :, None]) + shift[:, :, None]


def _linear4(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`_linear` over ``x [G, B, L, in]`` -> ``[G, B, L, out]``."""
    G, B, L, _ = x.shape
    return _linear(x.reshape(G, B * L, -1), w, b).reshape(G, B, L, -1)


def group_block(
    p: dict[str, torch.Tensor], x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
    n_heads: int, attention: str,
) -> torch.Tensor:  # fmt: skip
    """One DiT block for all members: ``x [G, B, L, D]`` (the float32 stream), ``c [G, B, C]`` (the conditioning),
    ``p`` the block's parameters by their names inside the block (``"qkv.weight"``, ...), each ``[G, ...]``."""
    G, B, L, D = x.shape
    shift1, scale1, gate1, shift2, scale2, gate2 = _linear(c, p["adaLN.weight"], p["adaLN.bias"]).chunk(6, dim=-1)
    h = _modulate(_norm(x, p["norm1.weight"]), shift1, scale1)
    qkv = _linear4(h, p["qkv.weight"])
    a = block_attention(qkv.reshape(G * B, L, 3 * D), cos, sin, n_heads, attention)
    x = x + gate1[:, :, None] * _linear4(a.reshape(G, B, L, D), p["attn_out.weight"])
    h = _modulate(_norm(x, p["norm2.weight"]), shift2, scale2)
    m = F.gelu(_linear4(h, p["mlp.0.weight"], p["mlp.0.bias"]), approximate="tanh")
    return x + gate2[:, :, None] * _linear4(m, p["mlp.2.weight"], p["mlp.2.bias"])


def group_final(h: torch.Tensor, c: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """The DiT's final norm and modulation of every member's features ``h [G, B, L, D]`` by its conditioning
    ``c [G, B, C]``, in float32 (``w``, ``b``: ``adaLN_final``'s; ``norm``: ``norm_final``'s)."""
    with torch.autocast(device_type=h.device.type, enabled=False):
        shift, scale = _linear(c.float(), w, b).chunk(2, dim=-1)
        return _modulate(_norm(h, norm), shift, scale)


_COMPILED: dict[str, Callable[..., torch.Tensor]] = {}


def compiled_once(name: str, fn: Callable[..., torch.Tensor], dynamic: bool) -> Callable[..., torch.Tensor]:
    """``torch.compile(fn, dynamic=dynamic)``, built once per process under ``name``."""
    if name not in _COMPILED:
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _COMPILED[name] = torch.compile(fn, dynamic=dynamic)
    return _COMPILED[name]


def compiled_block(dynamic: bool = False) -> Callable[..., torch.Tensor]:
    """:func:`group_block` under ``torch.compile``, with static shapes (one compiled graph a shape of its inputs) or
    ``dynamic`` ones (one graph for every number of members and sequences); built once per process and kind."""
    if not isinstance(dynamic, bool):
        raise TypeError(f"dynamic: expected a bool, got {type(dynamic).__name__}")
    return compiled_once(f"block, dynamic={dynamic}", group_block, dynamic)


def compiled_final() -> Callable[..., torch.Tensor]:
    """:func:`group_final` under ``torch.compile`` (static shapes): its norm and modulation as a few fused passes."""
    return compiled_once("final", group_final, False)


class GroupTables:
    """The constant tables of a group's forward pass on one device: the time embedding's frequencies and the
    rotary ``cos, sin``."""

    def __init__(self, config: DiTConfig, device: torch.device | str, n_freq: int = 256):
        half = n_freq // 2
        self.freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half).to(device)
        self.cos, self.sin = (t.to(device) for t in rotary_tables(config.length, config.head_dim))


def group_hidden(
    layout: GroupLayout,
    params: dict[str, torch.Tensor],
    tables: GroupTables,
    x_GBL: torch.Tensor,
    sigma_GB: torch.Tensor,
    *,
    attention: str = "auto",
    block_fn: Callable[..., torch.Tensor] | None = None,
    final_fn: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """Float32 features ``h [G, B, L, D]`` of every member (``DiT.hidden`` of member ``g`` on ``x_GBL[g]``,
    ``sigma_GB[g]``); ``params`` are :meth:`GroupLayout.views`, ``block_fn`` replaces :func:`group_block` and
    ``final_fn`` :func:`group_final` (e.g. their compiled versions). Unchecked: the trainer checks its data once."""
    cfg = layout.config
    if cfg.dropout != 0.0:
        raise ValueError(f"config.dropout: expected 0 for a group of models (masks are not drawn), got {cfg.dropout}")
    G, B, L = x_GBL.shape
    block = group_block if block_fn is None else block_fn
    args = sigma_GB.float()[..., None] * tables.freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # [G, B, 256]
    t = F.silu(_linear(emb, params["time.mlp.0.weight"], params["time.mlp.0.bias"]))
    c = F.silu(_linear(t, params["time.mlp.2.weight"], params["time.mlp.2.bias"]))
    members = torch.arange(G, device=x_GBL.device)[:, None, None]
    h = params["embed.weight"][members, x_GBL]  # [G, B, L, D]
    cos, sin = tables.cos[:L], tables.sin[:L]
    for i in range(cfg.n_blocks):
        prefix = f"blocks.{i}."
        p = {n[len(prefix) :]: v for n, v in params.items() if n.startswith(prefix)}
        h = block(p, h, c, cos, sin, cfg.n_heads, attention)
    final = group_final if final_fn is None else final_fn
    return final(h, c, params["adaLN_final.weight"], params["adaLN_final.bias"], params["norm_final.weight"])


def group_head(h_GBLD: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Float32 logits ``[G, B, L, V]`` of every member from :func:`group_hidden`'s features: ``DiT.head`` of each
    member (the product in the autocast dtype where autocast is on, float32 otherwise; the bias in float32).

    In a reduced dtype the bias rides in the product (:func:`~amtheory.diffusion.model.fold_bias`), so that the
    float32 logits are written once, not written, read and written again by a separate addition: the head's output
    is the largest tensor of a reverse chain's step (``[G, B, L, V]``), and the step is bound by passes over it."""
    dev = h_GBLD.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else torch.float32
    G, B, L, D = h_GBLD.shape
    with torch.autocast(device_type=dev, enabled=False):
        x = h_GBLD.reshape(G, B * L, D).to(dt)
        if dt == torch.float32:
            out = bmm_f32(x, weight.float().transpose(1, 2))
            out += bias.float()[:, None, :]
        else:
            xb, Wb = fold_bias(x, weight, bias)
            out = bmm_f32(xb, Wb.transpose(1, 2))
    return out.view(G, B, L, -1)


class _GroupChunkedNELBO(torch.autograd.Function):
    """Per-member mean NELBO ``[G]`` of ``head_g(h_g)``, ``rows`` rows of each member's logits at a time; the
    forward pass computes the gradient (as :class:`amtheory.diffusion.loss._ChunkedNELBO` does for one model) and
    backward scales it by each member's output gradient."""

    @staticmethod
    def forward(ctx, h_GND, W_GVD, b_GV, x0_GN, xt_GN, a_GN, ap_GN, rows, compute_dtype, kernel):
        G, N, D = h_GND.shape
        V = W_GVD.shape[1]
        VP = pad_vocab(V)
        dev = h_GND.device
        if kernel == TRITON_ROWS:
            from amtheory.diffusion import loss_kernels as lk
        pad = 8  # the bias rides in the product as a column of ones (padded for aligned GEMMs)
        with torch.autocast(device_type=dev.type, enabled=False):
            Wc = torch.zeros(G, VP, D + pad, dtype=compute_dtype, device=dev)
            Wc[:, :V, :D] = W_GVD.detach()
            Wc[:, :V, D] = b_GV.detach()
            Wc[:, V:, D] = PAD_LOGIT
            ones = torch.zeros(1, 1, pad, dtype=compute_dtype, device=dev)
            ones[..., 0] = 1.0
            total = torch.zeros(G, dtype=torch.float32, device=dev)
            g_h = torch.empty((G, N, D), dtype=torch.float32, device=dev)
            g_Wb = torch.zeros((G, VP, D + pad), dtype=torch.float32, device=dev)
            for s in range(0, N, rows):
                e = min(N, s + rows)
                n = e - s
                hc = torch.cat([h_GND[:, s:e].detach().to(compute_dtype), ones.expand(G, n, pad)], dim=2)
                x0c, xtc = x0_GN[:, s:e].reshape(-1), xt_GN[:, s:e].reshape(-1)
                ac, apc = a_GN[:, s:e].reshape(-1), ap_GN[:, s:e].reshape(-1)
                logits = bmm_f32(hc, Wc.transpose(1, 2)).view(G * n, VP)
                if kernel == TRITON_ROWS:
                    loss, gc = triton_chunk(
                        partial(lk.row_stats, logits, x0c, xtc),
                        partial(lk.row_logit_grad, logits, x0c, xtc, dtype=compute_dtype),
                        x0c, xtc, ac, apc, 1.0 / N, True, V,
                    )  # fmt: skip
                else:
                    loss, gc = kernel(logits, x0c, xtc, ac, apc, 1.0 / N, True, compute_dtype, V)
                del logits
                total = total + loss.view(G, n).sum(1)
                gc = gc.view(G, n, VP)
                g_h[:, s:e] = bmm_f32(gc, Wc[:, :, :D])
                baddbmm_f32_(g_Wb, gc.transpose(1, 2), hc)
        ctx.grads = (g_h, g_Wb[:, :V, :D], g_Wb[:, :V, D].contiguous())
        ctx.dtypes = (h_GND.dtype, W_GVD.dtype, b_GV.dtype)
        return total / N

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        grads, ctx.grads = ctx.grads, None
        outs = [(g * grad_out.view(-1, *([1] * (g.dim() - 1)))).to(dt) for g, dt in zip(grads, ctx.dtypes)]
        return (*outs, None, None, None, None, None, None, None)


def group_nelbo(
    h_GBLD: torch.Tensor,
    head_weight: torch.Tensor,
    head_bias: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    alpha_t: torch.Tensor,
    alpha_prime_t: torch.Tensor,
    *,
    chunk_rows: int,
    kernel: Callable | str = rows_loss_and_grad,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Each member's mean NELBO ``[G]`` over its ``B x L`` tokens of ``logits_g = h_g @ W_g^T + b_g``, never
    holding more than ``chunk_rows`` rows of logits (all members together); the same value and gradient as
    :func:`amtheory.diffusion.loss.chunked_nelbo` of each member alone, up to rounding. ``x0``, ``xt``
    ``[G, B, L]``; ``alpha_t``, ``alpha_prime_t`` ``[G, B]``; ``kernel`` as in ``chunked_nelbo``."""
    G, B, L, D = h_GBLD.shape
    if head_weight.dim() != 3 or head_weight.shape[0] != G or head_weight.shape[2] != D:
        raise ValueError(f"head_weight: expected a tensor [{G}, V, {D}], got {tuple(head_weight.shape)}")
    if head_bias.shape != head_weight.shape[:2]:
        raise ValueError(f"head_bias: expected shape {tuple(head_weight.shape[:2])}, got {tuple(head_bias.shape)}")
    for name, t in (("x0", x0), ("xt", xt)):
        if t.shape != (G, B, L):
            raise ValueError(f"{name}: expected shape {(G, B, L)}, got {tuple(t.shape)}")
    if compute_dtype is None:
        dev = h_GBLD.device.type
        compute_dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h_GBLD.dtype
    rows = max(1, chunk_rows // G)
    return _GroupChunkedNELBO.apply(
        h_GBLD.reshape(G, B * L, D),
        head_weight,
        head_bias,
        x0.reshape(G, -1),
        xt.reshape(G, -1),
        alpha_t.float().repeat_interleave(L, dim=1),
        alpha_prime_t.float().repeat_interleave(L, dim=1),
        rows,
        compute_dtype,
        kernel,
    )
