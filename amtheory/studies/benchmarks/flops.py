"""Training FLOPs of the DiT per token, for MFU, under the parameter counts the benchmarks report.

* ``performed``: the products a training step performs. A forward pass applies each weight matrix of the attention
  and MLP maps and of the output head to every token (2 FLOPs a weight and token), and those of the time
  embedding's MLP and the adaLN modulations once a sequence, to its conditioning vector (2 FLOPs a weight and
  sequence, so 2 / L a token); the backward pass takes twice the forward's. Biases, norms and the embedding lookup
  are elementwise work, not counted.
* ``non_embedding``, ``with_head``, ``all``: the usual 6 N, 6 FLOPs a parameter and token for N = every parameter
  but the token embedding and the output head's weight matrix, N with the head's weights, and every parameter.

Attention's products (QK^T and AV, 4 L D a token and block forward, x3 for training) are added to every count.

The 6 N counts treat the conditioning maps as applied to every token. Those are 16% of gpu-quick's parameters
without the embedding (23% of gpu-micro's, 21% of gpu-small's), so that ``with_head`` counts 1.19x the FLOPs
gpu-quick's step performs (1.25x gpu-small's, 1.31x gpu-micro's). MFU is reported under ``performed``, with
``with_head`` beside it.
"""

from __future__ import annotations

import functools

import torch

from amtheory.core._checks import check_choice
from amtheory.diffusion.model import DiT, DiTConfig

__all__ = ["FLOP_COUNTS", "flops_per_token", "step_flops"]

#: The parameter counts of :func:`flops_per_token`.
FLOP_COUNTS = ("performed", "non_embedding", "with_head", "all")


@functools.lru_cache(maxsize=64)
def _counts(cfg: DiTConfig) -> dict[str, int]:
    with torch.device("meta"):
        return DiT(cfg).count_parameters()


def flops_per_token(cfg: DiTConfig, count: str = "performed") -> float:
    """Training FLOPs per token of a DiT of ``cfg`` under parameter count ``count`` (one of :data:`FLOP_COUNTS`;
    see the module's text), attention included."""
    if not isinstance(cfg, DiTConfig):
        raise TypeError(f"cfg: expected a DiTConfig, got {type(cfg).__name__}")
    check_choice("count", count, FLOP_COUNTS)
    n = _counts(cfg)
    attention = 12.0 * cfg.n_blocks * cfg.length * cfg.d_model
    if count == "performed":
        return 6.0 * (n["token_products"] + n["sequence_products"] / cfg.length) + attention
    head = cfg.vocab_size * cfg.d_model
    params = {"non_embedding": n["non_embedding"], "with_head": n["non_embedding"] + head, "all": n["total"]}[count]
    return 6.0 * params + attention


def step_flops(cfg: DiTConfig, batch: int, *, count: str = "performed") -> float:
    """Training FLOPs of one step of ``batch`` sequences: :func:`flops_per_token` x ``batch`` x ``cfg.length``."""
    return flops_per_token(cfg, count) * batch * cfg.length
