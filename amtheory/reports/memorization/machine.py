"""The memorization results page: the sections on the machine, the set-up, and how this run differs from the paper's."""

from __future__ import annotations

import json
import re
from pathlib import Path

from amtheory.reports.memorization.numbers import fmt, n_fmt, table
from amtheory.studies.memorization.presets import preset


# ----------------------------------------------------------------------------------------------------------------------
# The page
def section_setup(tabs, cov, times, data_info) -> str:
    p = preset("gpu")
    s = p.settings
    tr = tabs["train"]
    lines = ["## Setup", ""]
    vocab = int(tr["vocab_size"].iloc[0]) if not tr.empty else p.data.vocab
    length = int(tr["data.length"].iloc[0]) if not tr.empty else p.data.length
    corpus_line = (
        f"- Corpus: the Brown corpus and the State of the Union addresses (`data/brown-sotu`, sentences tokenized "
        f"with the bert-base-uncased WordPiece vocabulary, a held-out test set of whole sentences). Sentences are "
        f"packed into blocks of {length} tokens (`[CLS]` + {length - 2} stream tokens + `[SEP]`)"
    )
    if data_info:
        corpus_line += (
            f"; {n_fmt(data_info['train_blocks'])} training and {n_fmt(data_info['test_blocks'])} test blocks are "
            f"available at this length"
        )
    lines.append(corpus_line + ".")
    vline = (
        f"- Vocabulary: compacted to {n_fmt(vocab)} ids (the {n_fmt(vocab - 5)} most frequent ordinary WordPiece ids "
        f"plus the 5 special tokens; every other id becomes `[UNK]`)"
    )
    if data_info:
        vline += f"; after compaction {100 * data_info['unk_share']:.1f}% of the corpus tokens are `[UNK]`"
    lines.append(vline + ".")
    arch_rows = []
    for ms in sorted(cov):
        r = tr[tr["model_size"] == ms].iloc[0]
        arch_rows.append(
            [ms, int(r["arch.d_model"]), int(r["arch.n_blocks"]), int(r["arch.n_heads"]), int(r["arch.cond_dim"]),
             r["arch.dropout"], f"{int(r['n_params']) / 1e6:.2f}M"]
        )  # fmt: skip
    r0 = tr.iloc[0]
    lines += [
        "- Models: the DiT of the package (adaLN time conditioning, rotary positions, GELU-tanh MLP 4x, zero-"
        "initialized output), conditioned on sigma_t = -log alpha_t:",
        "",
        table(["model", "width", "blocks", "heads", "cond dim", "dropout", "parameters"], arch_rows),
        "",
        f"- Training (identical for every size): {n_fmt(r0['steps'])} AdamW steps of {int(r0['batch_size'])} blocks "
        f"drawn with replacement from the first n training blocks (nested subsets of one seeded shuffle), lr "
        f"{r0['lr']:g}, {int(r0['warmup'])} warm-up steps, EMA {r0['ema']:g} (the EMA weights are evaluated), "
        f"continuous-time uniform-diffusion NELBO with alpha_t = 1 - (1 - 1e-3) t, t antithetic over the batch; "
        f"float32 with TF32 matmuls (bf16: {bool(r0['bf16'])}), `torch.compile`: {bool(r0['compile'])}. "
        f"Training sizes n: {', '.join(n_fmt(n) for n in p.sizes)} blocks.",
        f"- Evaluation (the model in bf16 autocast): n_eval = {s.n_eval} blocks per split — the first "
        f"min({s.n_eval}, n) training blocks, the first {s.n_eval} test blocks, and {s.n_eval} random blocks "
        f"(`[CLS]`, uniform ordinary ids, `[SEP]`); the same corrupted queries for every model and memory.",
        f"  - Recovery: forward-kernel corruption at t in {{{', '.join(f'{t:g}' for t in s.ts)}}}, ancestral reverse "
        f"sampling on the global {s.n_steps}-step grid from t to 0 with the posterior final step "
        f"`argmax_v x_theta(v) (V alpha_t 1(v = x_t) + 1 - alpha_t)`; a token counts as corrupted only if its id "
        f"changed. Recovered = share of corrupted tokens restored, broken = share of clean tokens that end wrong, "
        f"exact = whole block restored.",
        f"  - Basin radius (`amtheory.core.basins.basin_radius`): {s.n_basin} training and {s.n_basin} test blocks, "
        f"exact-count corruption, {s.basin_trials} trials per level, success = the same block back with "
        f"probability >= 1 - {s.basin_delta:g} (95% Wilson), radii searched up to L/2 = {length // 2} tokens (a "
        f"radius there is censored). Dynamics: the UDDM and the empirical denoiser run the argmax reverse chain "
        f"from t = {s.basin_t_start:g} on a local {s.basin_steps}-step grid with the posterior final step; dense "
        f"and modern memories their synchronous deterministic update (at most {s.hopfield_max_iter} steps). "
        f"Radius -1: the block is not even retrieved from itself.",
        f"  - Fixed points: argmax reverse dynamics from t = 1 on the {s.n_steps}-step grid started at the clean "
        f"block; share returned unchanged.",
        f"  - Conditional entropy at t = {s.entropy_t:g}: per-token entropy of p_theta(x_0 | x_t = x), averaged over "
        f"the block, on training, test and {s.n_generate} generated blocks (uniform noise, {s.n_steps} ancestral "
        f"steps, argmax last step). Extraction: for each generated block the longest token span it shares with any "
        f"training block (at any offset); verbatim = the whole block.",
        f"  - Test NELBO per token from {s.nelbo_ts} stratified times per block; exp(NELBO) bounds the perplexity "
        f"in the {n_fmt(vocab)}-id vocabulary.",
        f"  - KL(p_empirical || p_theta) per token against the EmpiricalDenoiser storing the same training blocks, "
        f"on shared corrupted inputs at t in {{{', '.join(f'{t:g}' for t in s.kl_ts)}}}.",
        f"  - Hopfield family storing the same first n training blocks: EmpiricalDenoiser (exact posterior of a "
        f"memorizing denoiser, the same reverse chain on a {s.empirical_steps}-step grid), DenseAM exp "
        f"(beta = {s.dense_beta:g}), ModernHopfield on one-hot tokens (beta = {s.modern_beta:g}, run where its "
        f"pattern matrix fits in {s.modern_max_bytes / 2**30:.0f} GiB), ClassicalHopfield (Hebbian, Potts coding; "
        f"where L V <= {s.classical_max_features}).",
    ]
    return "\n".join(lines)


def _log_total(log: str | Path | None) -> float | None:
    """The end-to-end seconds of the run (``[memorization] total <s> s``), if the log has them."""
    if log is None or not Path(log).is_file():
        return None
    m = re.findall(r"\[memorization\] total ([\d.]+) s", Path(log).read_text())
    return float(m[-1]) if m else None


def _diag_phases(path: str = "benchmarks/h100_diagnose_training.txt") -> str:
    """The per-phase step times of the diagnosis run, as text ("?" where the file is missing)."""
    f = Path(path)
    m = re.search(r"phases \(ms/step\): (\{.*\})", f.read_text()) if f.is_file() else None
    if not m:
        return "per-phase times not recorded"
    ph = json.loads(m.group(1))
    return (
        f"{ph['total']:.1f} ms per bf16 step of the 128-wide model on 256 blocks of 64 tokens, with dropout 0.1 and "
        f"2,048-row loss chunks: forward and loss "
        f"{ph['forward+loss']:.1f} ms, backward {ph['backward']:.1f} ms, optimizer {ph['optimizer']:.1f} ms"
    )


def section_machine(tabs, cov, times, machine: str, log: str | None) -> str:
    tr = tabs["train"]
    lines = ["## Command, machine, what was measured, time", ""]
    lines += [
        "```",
        "python experiments/memorization.py --preset gpu --out results/memorization_gpu --data data/brown-sotu "
        "--device cuda",
        "python experiments/summarize_memorization.py --results results/memorization_gpu "
        "--out docs/results_memorization.md --probe amtheory/data/probe_reference.json",
        "python -m paper_figures.memorization --results results/memorization_gpu --out <folder>",
        "```",
        "",
        f"Machine: {machine} (per-stage timings in `{log}`). The results folder is not in the repository; every "
        "number below is on this page.",
        "",
    ]
    p = preset("gpu")
    missing = {ms: sorted(set(p.sizes) - set(c["measured"])) for ms, c in cov.items()}
    if any(missing.values()):
        rows = []
        for ms, c in cov.items():
            unmeasured = sorted(set(c["trained"]) - set(c["measured"]))
            rows.append(
                [ms, ", ".join(n_fmt(n) for n in c["trained"]) or "–",
                 ", ".join(n_fmt(n) for n in c["measured"]) or "–", ", ".join(n_fmt(n) for n in unmeasured) or "–"]
            )  # fmt: skip
        lines += [
            "**The sweep is incomplete**; these models were trained and measured:",
            "",
            table(["model", "trained (blocks)", "measured (blocks)", "trained, not measured"], rows),
            "",
        ]
        for ms, m in missing.items():
            if m:
                lines.append(
                    f"- {ms}: no measurements at {', '.join(n_fmt(n) for n in m)} blocks, so its transition on this "
                    f"page is bounded by the sizes measured."
                )
        lines.append("")
    if not tr.empty:
        trows = []
        for _, r in tr.sort_values(["model_size", "train_size"]).iterrows():
            ev = times[(times["model_size"] == r["model_size"]) & (times["train_size"] == r["train_size"])
                       & (times["stage"] != "train")]  # fmt: skip
            trows.append(
                [r["model_size"], n_fmt(r["train_size"]), fmt(r["final_loss"]), int(r["skipped_steps"]),
                 f"{r['wall_s']:.1f}", f"{r['ms_per_step']:.1f}", f"{ev['seconds'].sum():.1f}" if len(ev) else "–"]
            )  # fmt: skip
        lines += [
            "Training and evaluation time per model (the train table; evaluation = sum of the measurement stages in "
            "the log, including the Hopfield family at that size, which runs with the first model size):",
            "",
            table(["model", "blocks", "final loss", "skipped steps", "train s", "ms / step", "evaluation s"], trows),
            "",
        ]
        total = _log_total(log)
        steps = sorted({int(v) for v in tr["steps"]})
        ev_all = times.loc[times["stage"] != "train", "seconds"].sum() if len(times) else float("nan")
        sentence = (
            f"Training took {tr['wall_s'].sum():.0f} s in all ({tr['wall_s'].min():.0f}-{tr['wall_s'].max():.0f} s "
            f"per model, {', '.join(f'{s:,}' for s in steps)} steps, {tr['ms_per_step'].min():.1f}-"
            f"{tr['ms_per_step'].max():.1f} ms per step including compilation), the measurements {ev_all:.0f} s."
        )
        if total is not None:
            sentence += (
                f" The whole preset — every training, every measurement and the figures, from an empty results "
                f"folder — took {total:.0f} s ({total / 60:.1f} min)."
            )
        lines.append(sentence)
    lines += [
        "",
        "Why float32: with bf16 autocast the 32-block run had non-finite gradients from step 278 on (H200, "
        "`benchmarks/h200_diagnose_training.txt`: 485 of 800 traced steps skipped). Recomputing the failing "
        "step with each scaled-dot-product backend gave a non-finite gradient only with cuDNN's attention "
        "(backward); the flash, memory-efficient and math kernels gave finite gradients (norm about 7.2) on the "
        "same batch. While the model memorizes, its attention logits reach about 1,000 and a row log-sum-exp "
        "about -110. The trainer now leaves cuDNN attention out, and the same bf16 run then skipped none of its 800 "
        "steps (H100, `benchmarks/h100_diagnose_training.txt`, attention logits up to 8,540); the preset still "
        "trains in float32 with TF32 matmuls, because at these widths bf16 was not faster (the same file: "
        f"{_diag_phases()}; the float32 steps of the gpu-small runs below took 13-15 ms once compiled), which "
        "points at per-step overhead rather than arithmetic."
        + (f" Skipped steps in the runs above: {int(tr['skipped_steps'].sum())}." if not tr.empty else ""),
    ]
    return "\n".join(lines)


def section_differences(tabs, data_info) -> str:
    p = preset("gpu")
    return "\n".join(
        [
            "## How this differs from the paper, and why",
            "",
            table(
                ["", "Pham et al. 2026", "here (gpu preset)", "why"],
                [
                    [
                        "corpus",
                        "LM1B",
                        "Brown + State of the Union (about 118k sentences)",
                        "installable offline; the GPU machine has no network",
                    ],
                    [
                        "vocabulary",
                        "bert-base-uncased, 30,522",
                        f"the same ids compacted to {n_fmt(p.data.vocab)}",
                        "shrinks the output head 3.7x and makes the one-hot ModernHopfield fit in memory",
                    ],
                    ["block", "128 tokens", f"{p.data.length} tokens", "cost; 64 tokens still hold 2-3 sentences"],
                    [
                        "models",
                        "DiT 256x8 (23.7M) to 1024x24 (384M)",
                        "128x4 and 256x6 (3.4M, 10.2M)",
                        "a whole sweep within minutes on one GPU",
                    ],
                    [
                        "steps",
                        "1,000,000 x 512 blocks",
                        f"{n_fmt(p.steps)} x {p.batch_size} blocks",
                        "same reason; the same steps at every size, as in the paper",
                    ],
                    [
                        "training sizes",
                        "54 fractions of LM1B, 1e-4 to 1",
                        f"{n_fmt(min(p.sizes))} ... {n_fmt(max(p.sizes))} blocks ({len(p.sizes)} sizes)",
                        "log-spaced, from a few dozen blocks"
                        + (
                            f" to {100 * max(p.sizes) / data_info['train_blocks']:.0f}% of the corpus"
                            if data_info
                            else ""
                        ),
                    ],
                    [
                        "evaluation",
                        "5,000 train / 5,000 test sequences, t up to 1.0",
                        f"{p.settings.n_eval} blocks per split, t up to 0.5",
                        "cost; t = 1.0 is pure noise and says nothing about a basin",
                    ],
                    [
                        "precision",
                        "bf16 mixed",
                        "float32 + TF32",
                        "at these widths bf16 was not faster (above)",
                    ],
                ],
            ),  # fmt: skip
            "",
            "The sizes are measured in blocks, not in a fraction of a corpus; with "
            f"{n_fmt(p.steps)} steps of {p.batch_size} blocks a model sees each of {n_fmt(min(p.sizes))} blocks "
            f"{p.steps * p.batch_size / min(p.sizes):,.0f} times and each of {n_fmt(max(p.sizes))} blocks about "
            f"{p.steps * p.batch_size / max(p.sizes):,.0f} times. The meeting point "
            "of a model is therefore a property of this step budget as much as of the model.",
        ]
    )
