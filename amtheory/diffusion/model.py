"""The denoising network of the uniform discrete diffusion LM: a DiT with adaLN time conditioning.

A bidirectional transformer over ``[B, L]`` tokens that outputs the logits of ``x_theta(x_t, t)``, the model's
guess of the clean tokens (the "mean" parameterization: ``x_theta = softmax(logits)``). Time enters through
``sigma_t = -log alpha_t``: a sinusoidal embedding, an MLP to ``cond_dim``, then per block a zero-initialised
linear map to shift/scale/gate of both sub-layers (adaLN-Zero, Peebles and Xie 2023). Rotary positions (Su et al.
2021) on queries and keys, no bias in attention, GELU-tanh MLP, dropout on both residual branches, and a zero
output layer so that ``x_theta`` starts uniform. This is the DiT of the UDLM and Duo code bases (Schiff et al.
2024; Sahoo et al. 2025), written from their description (docs/theory.md, "The denoising network and its
training").

The final norm, the modulation after it and the logits are float32 whatever the autocast state (the loss is
computed from them; bf16 training on small sets has diverged to NaN: docs/theory.md, "Numerical pitfalls"). On
CUDA the attention (rotary positions included) runs as fused Triton kernels that read the packed projection and
write the heads side by side (:mod:`amtheory.diffusion.attention_kernels`), elsewhere through SDPA; and on CUDA
streams at least 512 wide take each residual update together with the next norm in fused kernels
(:mod:`amtheory.diffusion.norm_kernels`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from amtheory.core._checks import check_float, check_int, check_tokens, check_vocab_size
from amtheory.diffusion.attention_kernels import block_attention, rotary_tables
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.norm_kernels import add_norm, use_fused_norm

__all__ = ["DiT", "DiTConfig", "PRESETS", "fold_bias", "linear_f32_out", "mm_f32"]

#: width, blocks, heads (and for the CPU preset a smaller cond_dim). "tiny"/"small"/"medium" are the paper's sizes.
PRESETS: dict[str, dict[str, int]] = {
    "cpu-micro": {"d_model": 64, "n_blocks": 2, "n_heads": 2, "cond_dim": 32},
    "gpu-quick": {"d_model": 256, "n_blocks": 6, "n_heads": 8},
    "tiny": {"d_model": 256, "n_blocks": 8, "n_heads": 8},
    "small": {"d_model": 768, "n_blocks": 12, "n_heads": 12},
    "medium": {"d_model": 1024, "n_blocks": 24, "n_heads": 16},
}


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of a :class:`DiT`; the paper's sizes come from :meth:`preset`."""

    vocab_size: int
    length: int
    d_model: int
    n_blocks: int
    n_heads: int
    cond_dim: int = 128
    mlp_ratio: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_vocab_size("vocab_size", self.vocab_size)
        check_int("length", self.length, minimum=1)
        check_int("d_model", self.d_model, minimum=2)
        check_int("n_blocks", self.n_blocks, minimum=1)
        check_int("n_heads", self.n_heads, minimum=1)
        check_int("cond_dim", self.cond_dim, minimum=1)
        check_int("mlp_ratio", self.mlp_ratio, minimum=1)
        check_float("dropout", self.dropout, minimum=0.0, maximum=1.0, strict_max=True)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model: expected a multiple of n_heads = {self.n_heads}, got {self.d_model}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"d_model / n_heads: rotary positions need an even head width, got {self.d_model // self.n_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @staticmethod
    def preset(name: str, vocab_size: int, length: int, **overrides: Any) -> DiTConfig:
        """A named size: "tiny" (256 x 8 blocks x 8 heads; 23.7M parameters at V = 30522, L = 128), "small"
        (768 x 12 x 12), "medium" (1024 x 24 x 16), "gpu-quick" (256 x 6 x 8) or "cpu-micro" (64 x 2 x 2)."""
        if name not in PRESETS:
            raise ValueError(f"name: expected one of {tuple(PRESETS)}, got {name!r}")
        return DiTConfig(vocab_size=vocab_size, length=length, **{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DiTConfig:
        if not isinstance(d, dict):
            raise TypeError(f"d: expected a dict of DiTConfig fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(DiTConfig)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"d: unknown DiTConfig fields {sorted(unknown)}; expected a subset of {sorted(names)}")
        return DiTConfig(**d)


_MM_OUT_DTYPE = {"ok": True}  # set to False the first time the float32-output product kernel is missing


def mm_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` (2-D) with a float32 result; the product runs in the inputs' dtype (bf16 on the fast path).

    On CUDA a bf16 product writes float32 directly (``torch.mm(..., out_dtype=float32)``), so logits and
    gradient sums are not rounded to bf16; where that kernel is missing the bf16 result is cast up.
    """
    if a.dtype == torch.float32:
        return a @ b.float()
    if a.is_cuda and _MM_OUT_DTYPE["ok"]:
        try:
            return torch.mm(a, b, out_dtype=torch.float32)
        except (RuntimeError, TypeError):  # an older torch: remember, and stop trying
            _MM_OUT_DTYPE["ok"] = False
    return (a @ b).float()


def linear_f32_out(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight^T + bias`` as float32, the product in ``x.dtype`` (see :func:`mm_f32`); in a reduced dtype the
    bias rides in the product (:func:`fold_bias`), so that the float32 output is written once."""
    x2 = x.reshape(-1, x.shape[-1])
    if bias is not None and x.dtype != torch.float32:
        xb, Wb = fold_bias(x2[None], weight[None], bias[None])
        out = mm_f32(xb[0], Wb[0].t())
    else:
        out = mm_f32(x2, weight.to(x.dtype).t())
        if bias is not None:
            out += bias.float()
    return out.reshape(*x.shape[:-1], weight.shape[0])


def fold_bias(x_GND: torch.Tensor, weight_GVD: torch.Tensor, bias_GV: torch.Tensor):
    """``x`` and ``weight`` widened by eight columns so that ``x' @ weight'^T = x @ weight^T + bias`` in
    ``x.dtype``: ``x'`` gains two columns of ones, ``weight'`` the float32 bias split into its rounding to
    ``x.dtype`` and the remainder's (the two add up to the bias within ``2^-16`` of it in bf16, where the bias
    alone rounded would be off by up to ``2^-9``), the rest zeros, keeping the width aligned for the product."""
    dt, pad = x_GND.dtype, 8
    G, N, D = x_GND.shape
    b = bias_GV.float()
    hi = b.to(dt)
    lo = (b - hi.float()).to(dt)
    W = torch.zeros((G, weight_GVD.shape[1], D + pad), dtype=dt, device=x_GND.device)
    W[:, :, :D] = weight_GVD
    W[:, :, D] = hi
    W[:, :, D + 1] = lo
    ones = torch.zeros((1, 1, pad), dtype=dt, device=x_GND.device)
    ones[..., :2] = 1.0
    return torch.cat([x_GND, ones.expand(G, N, pad)], dim=2), W


class _LayerNorm(nn.Module):
    """LayerNorm without bias, always computed in float32 (the residual stream can grow large)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.layer_norm(x.float(), (self.dim,)) * self.weight.float()


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + scale[:, None]) + shift[:, None]


class _TimestepEmbedding(nn.Module):
    """sigma -> sinusoidal features (256) -> MLP -> ``cond_dim``."""

    def __init__(self, cond_dim: int, n_freq: int = 256):
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(nn.Linear(n_freq, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        half = n_freq // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, sigma_B: torch.Tensor) -> torch.Tensor:
        args = sigma_B.float()[:, None] * self.freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


#: A branch's output and its gate, whose residual update ``x + gate * dropout(o)`` the next norm applies.
Pending = tuple[torch.Tensor, torch.Tensor]


def residual_norm(
    x: torch.Tensor, pending: Pending | None, norm: _LayerNorm, shift: torch.Tensor, scale: torch.Tensor,
    dropout: nn.Dropout, fused: bool, seeds: torch.Tensor | None = None, which: int = 0,
    out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(x_new, modulate(norm(x_new)))`` with ``x_new = x + gate * dropout(o)`` for ``pending = (o, gate)`` (or
    ``x`` itself): by :func:`~amtheory.diffusion.norm_kernels.add_norm` when ``fused`` and there is an update,
    else torch operations (``out_dtype`` only sets the fused kernel's ``h``; torch's follows autocast)."""
    if pending is None:
        return x, _modulate(norm(x), shift, scale)
    o, gate = pending
    if fused:
        p = dropout.p if dropout.training else 0.0
        seed = seeds[which : which + 1] if seeds is not None and p > 0 else None
        return add_norm(x, o, gate, norm.weight, shift, scale, p=p, seed=seed, out_dtype=out_dtype)
    x = x + gate[:, None] * dropout(o)
    return x, _modulate(norm(x), shift, scale)


def _dropout_seeds(fused: bool, dropout: nn.Dropout, n: int, device: torch.device) -> torch.Tensor | None:
    """``n`` int64 seeds of the fused kernels' dropout masks, drawn from the device's default generator (so a
    step's masks follow its seed), or None when the fused kernels draw no mask."""
    if not (fused and dropout.training and dropout.p > 0):
        return None
    return torch.randint(0, 2**62, (n,), device=device)


class _Block(nn.Module):
    """Pre-norm attention + MLP, each branch modulated (shift, scale) and gated by the time conditioning."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.norm1 = _LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.norm2 = _LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(approximate="tanh"), nn.Linear(cfg.mlp_ratio * d, d)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.adaLN = nn.Linear(cfg.cond_dim, 6 * d)
        # adaLN-Zero: every block starts as the identity.
        nn.init.zeros_(self.adaLN.weight)
        nn.init.zeros_(self.adaLN.bias)

    def forward(
        self, x: torch.Tensor, pending: Pending | None, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
        fused: bool = False, attention: str = "auto",
    ) -> tuple[torch.Tensor, Pending | None]:  # fmt: skip
        """``(x, pending)``: the stream after the block, and with the fused kernels (``fused``, see
        :func:`use_fused_norm`) the mlp branch's update ``(o, gate)`` still to add; ``attention`` is the attention
        kernel choice (:func:`block_attention`).

        With the fused kernels a block hands its mlp branch to the next block's first norm, which adds it (the
        kernels read and write the stream once for both), the last block's to the final norm; without them a block
        adds its own update and ``pending`` is None throughout.
        """
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(c).chunk(6, dim=-1)
        seeds = _dropout_seeds(fused, self.dropout, 2, x.device)
        x, h = residual_norm(x, pending, self.norm1, shift1, scale1, self.dropout, fused, seeds, 0)
        a = block_attention(self.qkv(h), cos, sin, self.n_heads, attention)
        x, h = residual_norm(x, (self.attn_out(a), gate1), self.norm2, shift2, scale2, self.dropout, fused, seeds, 1)
        if fused:
            return x, (self.mlp(h), gate2)
        return x + gate2[:, None] * self.dropout(self.mlp(h)), None


class DiT(nn.Module):
    """Diffusion transformer ``(x_t [B, L], sigma_t [B]) -> logits [B, L, V]`` of ``x_theta``.

    ``x_theta(x_t, t) = softmax(forward(x_t, sigma_t))``; docs/theory.md, "The denoising network and its training"
    (the UDLM/Duo DiT). :attr:`kernels` (a :class:`~amtheory.diffusion.kernels.Kernels`, all "auto" by default)
    picks the blocks' attention and residual-norm kernels for every forward pass; its ``loss`` is not read here.
    """

    def __init__(self, config: DiTConfig, kernels: Kernels | None = None):
        super().__init__()
        if not isinstance(config, DiTConfig):
            raise TypeError(f"config: expected a DiTConfig, got {type(config).__name__}")
        self.config = config
        self.kernels = Kernels() if kernels is None else kernels
        d = config.d_model
        self.embed = nn.Embedding(config.vocab_size, d)
        # Same spread as a fan-in uniform init of a [V, d] matrix; the first norm makes the scale irrelevant.
        nn.init.uniform_(self.embed.weight, -1.0 / math.sqrt(d), 1.0 / math.sqrt(d))
        self.time = _TimestepEmbedding(config.cond_dim)
        self.blocks = nn.ModuleList([_Block(config) for _ in range(config.n_blocks)])
        self.norm_final = _LayerNorm(d)
        self.adaLN_final = nn.Linear(config.cond_dim, 2 * d)
        self.out = nn.Linear(d, config.vocab_size)
        for lin in (self.adaLN_final, self.out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        cos, sin = rotary_tables(config.length, config.head_dim)  # [L, hd / 2]
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    @property
    def kernels(self) -> Kernels:
        """The kernel choices the forward pass uses (``attention`` and ``norm``)."""
        return self._kernels

    @kernels.setter
    def kernels(self, kernels: Kernels) -> None:
        if not isinstance(kernels, Kernels):
            raise TypeError(f"kernels: expected a Kernels, got {type(kernels).__name__}")
        self._kernels = kernels

    # ------------------------------------------------------------------------------------------------ checks
    def _check_inputs(self, x_BL: object, sigma_B: object, check_values: bool) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        x = check_tokens("x_BL", x_BL, vocab_size=cfg.vocab_size if check_values else None, rank=2)
        if x.shape[1] > cfg.length:
            raise ValueError(f"x_BL: expected sequence length <= {cfg.length} (config.length), got {x.shape[1]}")
        if isinstance(sigma_B, (int, float)) and not isinstance(sigma_B, bool):
            sigma_B = torch.full((x.shape[0],), float(sigma_B), device=x.device)
        if not isinstance(sigma_B, torch.Tensor) or not sigma_B.is_floating_point():
            raise TypeError(f"sigma_B: expected a float tensor [B] (sigma_t = -log alpha_t), got {sigma_B!r:.80}")
        if sigma_B.dim() == 0:
            sigma_B = sigma_B.expand(x.shape[0])
        if sigma_B.shape != (x.shape[0],):
            raise ValueError(f"sigma_B: expected shape ({x.shape[0]},), got {tuple(sigma_B.shape)}")
        if check_values and sigma_B.numel() and not bool(torch.isfinite(sigma_B).all() and (sigma_B >= 0).all()):
            raise ValueError(
                f"sigma_B: expected finite values >= 0 (sigma_t = -log alpha_t), got range "
                f"[{float(sigma_B.min())}, {float(sigma_B.max())}]"
            )
        return x, sigma_B.to(x.device)

    # ------------------------------------------------------------------------------------------------ network
    def hidden(self, x_BL: torch.Tensor, sigma_B: torch.Tensor | float, *, check: bool = True) -> torch.Tensor:
        """Float32 features ``h [B, L, D]`` after the final norm and modulation; ``logits = head(h)``.

        ``check=False`` skips the value checks (each needs a device sync); the trainer validates its data once.
        """
        x, sigma = self._check_inputs(x_BL, sigma_B, check)
        L = x.shape[1]
        c = F.silu(self.time(sigma))
        cos, sin = self.rope_cos[:L], self.rope_sin[:L]
        h = self.embed(x)
        kernels = self.kernels
        fused = use_fused_norm(h, kernels.norm)
        pending = None
        for blk in self.blocks:
            h, pending = blk(h, pending, c, cos, sin, fused, kernels.attention)
        dropout = self.blocks[-1].dropout
        seeds = _dropout_seeds(fused, dropout, 1, h.device)
        with torch.autocast(device_type=h.device.type, enabled=False):
            shift, scale = self.adaLN_final(c.float()).chunk(2, dim=-1)
            return residual_norm(h, pending, self.norm_final, shift, scale, dropout, fused, seeds, 0, torch.float32)[1]

    def head(self, h_BLD: torch.Tensor) -> torch.Tensor:
        """Float32 logits ``[B, L, V]`` from :meth:`hidden`'s features (bf16 product under autocast)."""
        dt = torch.get_autocast_dtype(h_BLD.device.type) if torch.is_autocast_enabled(h_BLD.device.type) else None
        with torch.autocast(device_type=h_BLD.device.type, enabled=False):
            x = h_BLD.to(dt) if dt is not None else h_BLD.float()
            return linear_f32_out(x, self.out.weight, self.out.bias)

    def forward(self, x_BL: torch.Tensor, sigma_B: torch.Tensor | float, *, check: bool = True) -> torch.Tensor:
        """Unnormalised float32 logits ``[B, L, V]``; ``x_theta = softmax(logits, -1)``."""
        return self.head(self.hidden(x_BL, sigma_B, check=check))

    def count_parameters(self) -> dict[str, int]:
        """Parameter counts: total, token embedding + output head weight (2 V d, as the paper counts them), the
        rest (``non_embedding``; it includes the head's V biases), and the weight matrices of the products by how
        often a pass applies them: ``token_products`` to every token (attention and MLP maps, output head),
        ``sequence_products`` once a sequence (the time embedding's MLP and the adaLN modulations, which act on the
        conditioning vector)."""
        total = sum(p.numel() for p in self.parameters())
        emb = self.embed.weight.numel() + self.out.weight.numel()
        per_token = per_sequence = 0
        for name, p in self.named_parameters():
            if p.dim() != 2 or p is self.embed.weight:  # biases and norms are elementwise; the embedding a lookup
                continue
            if name.startswith("time.") or "adaLN" in name:
                per_sequence += p.numel()
            else:
                per_token += p.numel()
        return {
            "total": total, "embedding_and_head": emb, "non_embedding": total - emb,
            "token_products": per_token, "sequence_products": per_sequence,
        }  # fmt: skip
