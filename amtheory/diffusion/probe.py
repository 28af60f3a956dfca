"""A probe for deployed diffusion LMs: the conditional entropy of the model on its own samples.

Pham et al. (2026) observe that the per-token entropy of ``p_theta(x_0 | x_t)`` at ``t`` near 0 is near zero in the
memorization regime and finite in the generalization regime, so it separates the two without any training data:
generate sequences from noise, then measure the model's entropy on them.

    amtheory probe runs/my-model [--n 64] [--steps 1000] [--device auto]

The reference ranges printed beside the result come from the memorization sweep recorded with the package
(``amtheory/data/probe_reference.json``: per-token entropy on training data and on generated data, for models
at the memorizing and the generalizing ends of the sweep); read them as orders of magnitude, since entropy
depends on the vocabulary, the sequence length and the corpus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from amtheory.core._checks import check_finite, check_int

REFERENCE_FILE = "probe_reference.json"


@dataclass(frozen=True)
class ProbeReport:
    """Per-sequence mean entropies (nats per token) of generated sequences, their summary, and the text shown."""

    per_sequence: torch.Tensor
    mean: float
    median: float
    info: dict
    text: str


def reference_ranges() -> dict | None:
    """The ranges measured in the recorded sweep, or None where none were recorded."""
    try:
        data = resources.files("amtheory").joinpath("data", REFERENCE_FILE).read_text()
    except (FileNotFoundError, OSError):
        return None
    return json.loads(data)


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def probe_checkpoint(
    checkpoint: str | Path,
    *,
    n: int = 64,
    n_steps: int = 1000,
    t: float = 1e-5,
    device: str = "cpu",
    seed: int = 0,
    ema: bool = True,
) -> ProbeReport:
    """Generate ``n`` sequences from a checkpoint (``n_steps`` ancestral reverse steps, argmax last step) and
    measure the model's conditional entropy on them at time ``t``.

    A model whose outputs are not finite raises ``amtheory.core._checks.NonFiniteError`` (a ``ValueError``) instead of
    reporting NaN nats.
    """
    from amtheory.core.entropy import conditional_entropy
    from amtheory.diffusion.backend import UniformDiffusionLM
    from amtheory.diffusion.sampler import generate

    check_int("n", n, minimum=1)
    check_int("n_steps", n_steps, minimum=1)
    model = UniformDiffusionLM.from_checkpoint(checkpoint, ema=ema, device=device)
    g = torch.Generator().manual_seed(seed)
    config = getattr(model.model, "config", None)
    if config is None or not hasattr(config, "length"):
        raise ValueError(
            f"checkpoint: expected a DiT checkpoint whose config records the sequence length, got {checkpoint}"
        )
    # store() records the sequence length and vocabulary the sampler needs (nothing is trained): one placeholder row.
    model.store(torch.zeros(1, config.length, dtype=torch.long, device=_device_of(model.model)))
    samples = generate(model, n, n_steps=n_steps, generator=g)
    h = conditional_entropy(model, samples, beta=1.0, conditionals_kwargs={"t": t})
    per_seq = check_finite("per_sequence", h.double().mean(-1).cpu(), source="the model's conditional entropy")
    mean, median = float(per_seq.mean()), float(per_seq.median())
    info = {**model.describe(), "n": n, "n_steps": n_steps, "t": t, "seed": seed}
    lines = [
        f"checkpoint {checkpoint} ({info.get('weights', '?')} weights, step {info.get('step', '?')})",
        f"{n} generated sequences, {n_steps} reverse steps; conditional entropy at t = {t:g}:",
        f"  per-token mean {mean:.4f} nats, median of per-sequence means {median:.4f} nats",
    ]
    ref = reference_ranges()
    if ref:
        lines.append(
            f"reference ({ref.get('source', 'recorded sweep')}; V = {ref.get('vocab_size', '?')}, "
            f"L = {ref.get('length', '?')}):"
        )
        for row in ref.get("rows", []):
            lines.append(
                f"  {row['regime']:>14}: {row['model_size']} on {row['train_size']} blocks, entropy on generated "
                f"{row['generated']:.3f}, on training {row['train']:.3f} nats"
            )
    return ProbeReport(per_seq, mean, median, info, "\n".join(lines))
