"""The memorization results page: number formatting, and the probe reference ranges from the data folder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from amtheory.studies.memorization.summary import MemorizationData, pool_means


def _finite(x: Any) -> bool:
    if x is None:
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: fixed digits, scientific below 1e-3 where the digits would show none of it (entropies of
    memorizing models), "–" for none."""
    if not _finite(x):
        return "–"
    x = float(x)
    if x != 0 and abs(x) < min(10 ** (-digits), 1e-3):
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def pm(mean: Any, se: Any, digits: int = 3) -> str:
    """``mean ± se`` (the standard error left out where there is none)."""
    return f"{fmt(mean, digits)} ± {fmt(se, digits)}" if _finite(se) else fmt(mean, digits)


def interval(low: Any, high: Any, digits: int = 3) -> str:
    """``[low, high]``, or "no interval" when either end is missing."""
    if not (_finite(low) and _finite(high)):
        return "no interval"
    return f"[{fmt(low, digits)}, {fmt(high, digits)}]"


def n_fmt(n: Any) -> str:
    return f"{int(n):,}" if _finite(n) else "–"


def size_text(size: Any, beyond: str = "beyond the sweep") -> str:
    """A training size (a meeting point), or ``beyond`` for None / NaN."""
    return n_fmt(size) if _finite(size) else beyond


def size_interval(low: Any, high: Any, seeds: int) -> str:
    """The bootstrap interval of a meeting size: "[a, b]", "[a, beyond the sweep]", or why there is none."""
    if seeds < 2:
        return "one seed: no interval"
    if not _finite(low):
        return "[beyond the sweep]"
    return f"[{n_fmt(low)}, {size_text(high)}]"


def log2_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if math.isinf(float(v)):
        return "+inf" if v > 0 else "-inf"
    return f"{float(v):+.2f}"


def model_label(model_size: str, steps: Any, budgets: Sequence[int]) -> str:
    """A model size with its step budget, e.g. "gpu-small, 4,800 steps (x4)"."""
    base = min(budgets) if budgets else steps
    ratio = int(steps) / base if base else 1
    mult = f" (x{ratio:g})" if len(budgets) > 1 else ""
    return f"{model_size}, {int(steps):,} steps{mult}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def section(heading: str, *blocks: str) -> str:
    """A page section: ``## heading`` and its blocks (paragraphs, tables), a blank line between each."""
    return "\n\n".join([f"## {heading}", *blocks])


def verdict_text(v: str) -> str:
    return f"**{v}**"


def probe_reference(data: MemorizationData, model_size: str, source: str) -> dict:
    """The reference rows of ``amtheory probe``: mean per-token entropy on generated, training and test blocks of
    ``model_size`` (at its largest step budget, every seed pooled) at its smallest ("memorizing") and largest
    ("generalizing") training sizes. The largest budget is the one under which the smallest sets are memorized; at
    a shorter one the smallest set's entropies are those of an undertrained model."""
    gen = data.measure("generation", "entropy")
    g = gen[gen["model_size"] == model_size]
    if g.empty:
        raise ValueError(f"model_size: expected one of {sorted(set(gen['model_size']))}, got {model_size!r}")
    g = g[g["steps"] == g["steps"].max()]
    pooled = pool_means(g, ["train_size", "split"]).set_index(["train_size", "split"])["mean"]
    rows = []
    for regime, n in (("memorizing", int(g["train_size"].min())), ("generalizing", int(g["train_size"].max()))):
        rows.append({"regime": regime, "model_size": model_size, "train_size": n,
                     **{s: float(pooled.get((n, s), math.nan)) for s in ("generated", "train", "test")}})  # fmt: skip
    out: dict[str, Any] = {"source": source, "unit": "nats per token, mean over blocks of the per-block mean",
                           "rows": rows}  # fmt: skip
    m = data.models[(data.models["model_size"] == model_size)]
    if len(m):
        r = m.sort_values("steps").iloc[-1]
        out.update({"vocab_size": int(r["vocab_size"]), "length": int(r["data.length"]),
                    "corpus": str(r["data.source"]), "d_model": int(r["arch.d_model"]),
                    "n_blocks": int(r["arch.n_blocks"]), "steps": int(r["steps"])})  # fmt: skip
    if "entropy_t" in data.settings:
        out["t"] = float(data.settings["entropy_t"])
    return out
