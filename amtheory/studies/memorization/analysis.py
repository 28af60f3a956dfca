"""Analysis of the memorization experiment's tables: extraction (the longest span a generated block shares with any
training block), where training and test recovery meet, and the numbers behind the results page.

Separate from ``amtheory.studies.memorization`` (which defines and runs the experiment) so that reading results needs no
model, trainer or corpus code; the names are re-exported there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

# ---------------------------------------------------------------------------------------------------------------
# Extraction: the longest span a generated block shares with any training block
# ---------------------------------------------------------------------------------------------------------------
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)


def _window_hashes(x: np.ndarray, k: int) -> np.ndarray:
    """Polynomial hashes mod 2^64 of every length-``k`` window of each row of ``x`` ``[N, L]``: ``[N, L - k + 1]``.

    ``h(i, k) = P[i + k] - P[i] B^k`` with prefix hashes ``P[j + 1] = P[j] B + x_j + 1`` (unsigned wrap-around).
    """
    N, L = x.shape
    vals = x.astype(np.uint64) + np.uint64(1)
    prefix = np.zeros((N, L + 1), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(L):
            prefix[:, j + 1] = prefix[:, j] * _HASH_BASE + vals[:, j]
        power = np.uint64(1)
        for _ in range(k):
            power = power * _HASH_BASE
        return prefix[:, k:] - prefix[:, : L - k + 1] * power


def _sorted_member(values: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_ref)`` for a sorted, non-empty 1-d ``sorted_ref`` by binary search (``np.isin``
    and ``np.unique`` take seconds on the millions of window hashes of a large training set; a sort takes tens of
    milliseconds)."""
    idx = np.minimum(np.searchsorted(sorted_ref, values), sorted_ref.size - 1)
    return sorted_ref[idx] == values


def longest_shared_span(generated: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray) -> np.ndarray:
    """For each row of ``generated`` ``[G, L]``, the length of the longest contiguous token span that also occurs
    (anywhere, at any offset) in a row of ``reference`` ``[N, L']``: ``[G]`` int64, ``L`` for a verbatim copy of a
    reference row of the same length.

    Spans of length ``k`` are compared through 64-bit polynomial hashes of all length-``k`` windows (a sorted
    array of the reference windows and binary search); the length is found by binary search per row, because a
    shared span of length ``k`` contains one of every shorter length. Hash collisions (probability about
    ``N L / 2^64`` per query window) are ignored.
    """
    g = np.asarray(generated.cpu() if isinstance(generated, torch.Tensor) else generated, dtype=np.int64)
    r = np.asarray(reference.cpu() if isinstance(reference, torch.Tensor) else reference, dtype=np.int64)
    if g.ndim != 2 or r.ndim != 2:
        raise ValueError(f"generated, reference: expected 2-D token arrays, got shapes {g.shape} and {r.shape}")
    if g.size and g.min() < 0 or r.size and r.min() < 0:
        raise ValueError("generated, reference: expected non-negative token ids")
    G, L = g.shape
    max_k = min(L, r.shape[1])
    lo = np.zeros(G, dtype=np.int64)  # a shared span of length lo is known to exist
    hi = np.full(G, max_k + 1, dtype=np.int64)  # no shared span of length hi exists
    if r.shape[0] == 0 or max_k == 0:
        return lo
    cache: dict[int, np.ndarray] = {}
    while True:
        active = np.nonzero(hi - lo > 1)[0]
        if active.size == 0:
            return lo
        mid = (lo + hi) // 2
        for k in np.unique(mid[active]):
            rows = active[mid[active] == k]
            if k not in cache:
                cache[k] = np.sort(_window_hashes(r, int(k)), axis=None)
            found = _sorted_member(_window_hashes(g[rows], int(k)), cache[k]).any(axis=1)
            lo[rows[found]] = k
            hi[rows[~found]] = k


#: The settings that the memorization tables are drawn and summarized over: the UDDM's architecture, training size,
#: training seed and step budget (``train.*`` in evaluation tables, bare in the training table, whose own ``seed``
#: column is the runner's), the Hopfield-family memory and its number of stored blocks. Every other setting must be
#: single in a folder that is summarized. Seeds are pooled; budgets are told apart by ``_budget_labels``.
SETTING_AXES = ("train.arch.*", "arch.*", "train.n_train", "n_train", "memory", "n_stored", "train.seed",
                "train.steps", "steps")  # fmt: skip


def _read(folder: Path) -> pd.DataFrame:
    """Every table in ``folder``, each checked against its checksum (empty when there is none)."""
    from amtheory.core.sweep import load_results

    return load_results(folder)


def read_table(folder: str | Path) -> pd.DataFrame:
    """The tables of one measurement folder, checked against their checksums and refused with a ``ValueError``
    naming the differing setting columns when they hold more than one setting beyond ``SETTING_AXES``; empty when
    the folder holds no table."""
    from amtheory.core.sweep import check_single_setting

    df = _read(Path(folder))
    return check_single_setting(df, vary=SETTING_AXES, what=f"results {folder}") if len(df.columns) else df


def _budget_labels(df: pd.DataFrame, steps_column: str) -> pd.DataFrame:
    """``df`` with each UDDM's ``model_size`` naming its step budget ("gpu-small (4,800 steps)") where the table
    holds several budgets, so that no summary pools models trained for different step counts."""
    if df.empty or steps_column not in df or "model_size" not in df:
        return df
    uddm = df[steps_column].notna() & (df["backend"] == "uddm" if "backend" in df else True)
    if df.loc[uddm, steps_column].nunique() < 2:
        return df
    df = df.copy()
    steps = df.loc[uddm, steps_column].astype(int).map(lambda v: f" ({v:,} steps)")
    df.loc[uddm, "model_size"] = df.loc[uddm, "model_size"].astype(str) + steps
    return df


def recovery_summary(recovery: pd.DataFrame) -> pd.DataFrame:
    """Mean recovery, broken share and exact match per (backend, model size, training size, split, t)."""
    df = recovery[recovery["applicable"]] if "applicable" in recovery else recovery
    keys = ["backend", "model_size", "train_size", "split", "t"]
    return df.groupby(keys, as_index=False)[["recovered", "broken", "exact"]].mean()


def _recovery_numbers(rec: pd.DataFrame, out: dict[str, Any]) -> None:
    """Fill ``out["recovery"]``, ``out["meeting"]`` and ``out["meeting_interval"]`` from a recovery table."""
    from amtheory.studies.memorization.rates import meeting_interval, meeting_size, rate_table, verdict

    rates = rate_table(rec)
    uddm = rates[rates["backend"] == "uddm"]
    raw = rec[rec["backend"] == "uddm"]
    seed_col = next((c for c in ("train.seed", "seed") if c in raw), None)
    if "entropy_recovered" in raw:
        for (ms, n), g in raw.groupby(["model_size", "train_size"]):
            out["token_entropy"].setdefault(ms, {})[int(n)] = {
                k: dict(zip(("mean", "se"), _mean_se(g[f"entropy_{k}"]))) for k in ("recovered", "unrecovered")
            }
    for ms, g in uddm.groupby("model_size"):
        out["meeting"][ms], out["recovery"][ms] = {}, {}
        for t, gt in g.groupby("t"):
            cells: dict[int, dict[str, Any]] = {}
            for n, gn in gt.groupby("train_size"):
                c: dict[str, Any] = {}
                for _, r in gn.iterrows():
                    sp = r["split"]
                    c[sp], c[f"{sp}_se"], c[f"{sp}_low"], c[f"{sp}_high"] = r["rate"], r["se"], r["low"], r["high"]
                    c[f"{sp}_blocks"], c[f"{sp}_tokens"] = int(r["evaluated"]), int(r["tokens"])
                if "train" in c and "test" in c:
                    c["diff"] = c["train"] - c["test"]
                    c["diff_se"] = math.hypot(c["train_se"], c["test_se"])
                    c["verdict"] = verdict(c["diff"], c["diff_se"])
                cells[int(n)] = c
            both = [n for n, c in cells.items() if "diff" in c]
            if not both:
                continue
            out["recovery"][ms][float(t)] = cells
            out["meeting"][ms][float(t)] = meeting_size(
                both, [cells[n]["diff"] for n in both], [cells[n]["diff_se"] for n in both]
            )
            if seed_col is not None and raw.loc[raw["model_size"] == ms, seed_col].nunique() > 1:
                sub = raw[(raw["model_size"] == ms) & (raw["t"] == t)]
                out["meeting_interval"].setdefault(ms, {})[float(t)] = meeting_interval(sub, seed_col)


def _meeting_trends(rec: pd.DataFrame, train: pd.DataFrame) -> dict[float, dict[str, Any]]:
    """Per t, whether the UDDM's meeting size grows from the smallest to the largest model (``rates.meeting_trend``,
    parameter counts from the training table) at the smallest step budget; empty with fewer than two model sizes or
    no seed column."""
    from amtheory.studies.memorization.rates import meeting_trend

    raw = rec[rec["backend"] == "uddm"]
    if "train.steps" in raw and raw["train.steps"].nunique() > 1:
        raw = raw[raw["train.steps"] == raw["train.steps"].min()]
    seed_col = next((c for c in ("train.seed", "seed") if c in raw), None)
    if seed_col is None or raw["model_size"].nunique() < 2 or train.empty or "n_params" not in train:
        return {}
    params = train.groupby("model_size")["n_params"].first().astype(float).to_dict()
    raw = raw[raw["model_size"].isin(params)]
    if raw["model_size"].nunique() < 2:
        return {}
    return {float(t): meeting_trend(g, seed_col, params) for t, g in raw.groupby("t")}


def _mean_se(v: pd.Series) -> tuple[float | None, float | None]:
    v = v.dropna().astype(float)
    if not len(v):
        return None, None
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan"))


def summarize(results_dir: str | Path) -> dict[str, Any]:
    """The numbers behind the results page, from the tables in ``results_dir``.

    ``recovery``: per UDDM model size, t and training size, the pooled recovery of changed ordinary tokens on each
    split (``train``, ``test``, ``random``) with ``<split>_se``, ``<split>_low``, ``<split>_high`` (95% Wilson),
    ``<split>_blocks`` and ``<split>_tokens`` (blocks measured, changed tokens pooled;
    ``amtheory.studies.memorization.rates``), and ``diff`` (train minus test), ``diff_se`` and
    ``verdict`` ("train > test", "test > train" or "undecided" within two standard errors); ``meeting``: per model
    size and t the first training size from which training recovery exceeds test recovery by at most two standard
    errors (``rates.meeting_size``; None where they do not in the sweep); ``meeting_interval``: with several seeds, a
    bootstrap interval over seeds of it; ``meeting_trend``: per t, whether the meeting size grows from the smallest to
    the largest model (at the smallest step budget), with a bootstrap interval over seeds (``rates.meeting_trend``);
    with several step budgets every model size is named with its budget, "gpu-small (4,800 steps)";
    ``token_entropy``: per model size and training size, the mean entropy of the denoiser's prediction at the
    recovery queries over the restored and the unrestored changed tokens (``mean``, ``se`` over blocks of every split
    and t); ``entropy``: mean per-token conditional entropy (nats) of
    training, test and generated blocks, each with ``<split>_se`` over blocks, at the smallest and largest sizes;
    ``perplexity_peak``: the training size with the largest test perplexity bound ``exp(NELBO per token)`` and its
    value; ``extraction``: verbatim share and mean longest span per size.
    """
    root = Path(results_dir)
    rec = _budget_labels(read_table(root / "recovery"), "train.steps")
    if rec.empty:
        raise FileNotFoundError(f"results_dir: expected recovery tables in {root / 'recovery'}, found none")
    out: dict[str, Any] = {
        "meeting": {}, "meeting_interval": {}, "recovery": {}, "token_entropy": {}, "entropy": {},
        "perplexity_peak": {}, "extraction": {},
    }  # fmt: skip
    _recovery_numbers(rec, out)
    out["meeting_trend"] = _meeting_trends(rec, _budget_labels(read_table(root / "train"), "steps"))
    gen = _budget_labels(read_table(root / "generation"), "train.steps")
    if not gen.empty:
        for ms, g in gen.groupby("model_size"):
            lo, hi = int(g["train_size"].min()), int(g["train_size"].max())
            ent = {}
            for name, n in (("smallest", lo), ("largest", hi)):
                gn = g[g["train_size"] == n]
                ent[name] = {"train_size": n}
                for split in ("train", "test", "generated"):
                    ent[name][split], ent[name][f"{split}_se"] = _mean_se(gn.loc[gn["split"] == split, "entropy"])
                if ent[name]["train"] is not None and ent[name]["generated"] is not None:
                    ent[name]["gap"] = ent[name]["generated"] - ent[name]["train"]
            out["entropy"][ms] = ent
            gg = g[g["split"] == "generated"]
            out["extraction"][ms] = {
                int(n): {"verbatim": float(x["verbatim"].mean()), "longest_span": float(x["longest_span"].mean())}
                for n, x in gg.groupby("train_size")
            }
    nel = _budget_labels(read_table(root / "nelbo"), "train.steps")
    if not nel.empty:
        test = nel[nel["split"] == "test"]
        for ms, g in test.groupby("model_size"):
            per = g.groupby("train_size")["nelbo"].mean()
            se = g.groupby("train_size")["nelbo"].agg(lambda v: _mean_se(v)[1])
            n = int(per.idxmax())
            out["perplexity_peak"][ms] = {
                "train_size": n,
                "nelbo": float(per.max()),
                "nelbo_se": float(se[n]),
                "perplexity_bound": float(math.exp(per.max())),
                "by_size": {int(k): float(math.exp(v)) for k, v in per.items()},
            }
    return out
