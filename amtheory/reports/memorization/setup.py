"""The memorization results page: the run (commands, machine, what was measured, time), the set-up and how it
differs from the paper's, all from the data folder."""

from __future__ import annotations

from amtheory.reports.memorization.numbers import model_label, n_fmt, pm, section, table
from amtheory.studies.memorization.summary import MemorizationData

#: How the page's data folder ({folder}) is made and read (the run itself is ``experiments/memorization.py``).
COMMANDS = (
    "python experiments/memorization.py --preset gpu --out results/memorization_gpu --data data/brown-sotu "
    "--device cuda",
    "python experiments/summarize_memorization.py --export results/memorization_gpu --data {folder} "
    '--log memorization_gpu.log --corpus data/brown-sotu --machine "..."',
    "python experiments/summarize_memorization.py --data {folder} --out docs/results_memorization.md "
    "--figures docs/figures",
)


def _seconds(g, column: str) -> str:
    """The mean of ``column`` over a cell's seeds to one decimal, or a dash where the table has none (a model that
    the job writing its row only loaded ran no steps in it, so its time per step is unknown)."""
    v = float(g[column].astype(float).mean()) if column in g else float("nan")
    return "–" if v != v else f"{v:.1f}"


_KEY = ["model_size", "steps", "train_size", "seed"]


def _models_in(df, measure: str | None = None) -> set[tuple]:
    """The (model size, budget, size, seed) of the UDDM rows of a table (of one ``measure`` where given)."""
    if df is None or df.empty or not set(_KEY) <= set(df.columns):
        return set()
    u = df[df["backend"] == "uddm"] if "backend" in df.columns else df
    if measure is not None:
        u = u[u["measure"] == measure]
    return {tuple(r) for r in u[_KEY].astype(object).values}


def _completeness(data: MemorizationData) -> list[str]:
    """Per model size and budget, the trained models that were not measured and those measured in part (naming the
    measurements missing), when any are."""
    trained = _models_in(data.models)
    tables = {"recovery": _models_in(data.uddm_recovery), "basins": _models_in(data.basins),
              "trajectory": _models_in(data.trajectory)}  # fmt: skip
    if not data.means.empty and "measure" in data.means.columns:
        tables.update({m: _models_in(data.means, m) for m in sorted(set(data.means["measure"]))})
    present = {m: got for m, got in tables.items() if got}  # measurements this run made for some model
    measured = set().union(*present.values()) if present else set()
    plan = data.run.get("plan") or {}
    longest = plan.get("longest_steps")
    short = plan.get("short_budget_measures") if longest is not None else None  # None: every budget gets everything
    notes = []
    budgets = data.budgets()
    for ms, steps in sorted({(m[0], m[1]) for m in trained}, key=lambda k: (str(k[0]), float(k[1]))):
        mine = {m for m in trained if (m[0], m[1]) == (ms, steps)}
        label = model_label(ms, steps, budgets)
        if mine - measured:
            notes.append(f"{label}: {len(mine - measured)} of {len(mine)} models not measured")
        partial = mine & measured
        # A shorter budget's models get only the plan's short-budget measurements: the others are not missing.
        planned = set(short) if short is not None and steps < longest else set(present)
        missing = sorted(m for m, got in present.items() if partial and m in planned and not partial <= got)
        if missing:
            notes.append(f"{label}: {len(partial)} of {len(mine)} models measured in part (no {', '.join(missing)})")
    lines = []
    if short is not None and any(b < longest for b in budgets):
        shorter = ", ".join(f"{b:,}" for b in budgets if b < longest)
        lines += [f"By the sweep's plan the models of the shorter step budgets ({shorter} steps) are measured for "
                  f"{', '.join(short)} only, the models of {longest:,} steps for every measurement: the "
                  "budgets are compared by where training and test recovery meet (claim (g)).", ""]  # fmt: skip
    if notes:
        lines += ["**The sweep is incomplete**: " + "; ".join(notes) + ". The claims below use the measurements made.",
                  ""]  # fmt: skip
    return lines


def section_run(data: MemorizationData, machine: str | None, folder: str = "docs/data/memorization") -> str:
    """The run's commands, machine and time; ``folder``: the data folder's name as the page gives it."""
    folder = folder.rstrip("/")
    run = data.run
    m = data.models
    budgets = data.budgets()
    machine = machine or run.get("machine") or "not recorded"
    log = run.get("log") or {}
    # The run's own command line where the export recorded it, else the gpu preset's.
    commands = tuple(c.format(folder=folder) for c in COMMANDS)
    if run.get("command"):
        # A merged folder holds each part's command (one a line) and results folder ("; " between them), in order.
        runs = str(run["command"]).split("\n")
        results = str(run.get("results") or "RESULTS").split("; ")
        parts = [folder] if len(results) == 1 else [f"PART{i + 1}" for i in range(len(results))]
        exports = [f"python experiments/summarize_memorization.py --export {r} --data {d} --command \"...\" "
                   '--machine "..."' for r, d in zip(results, parts)]  # fmt: skip
        paired = [line for c, e in zip(runs, exports) for line in (c, e)] if len(runs) == len(exports) else None
        merge = [f"python experiments/summarize_memorization.py --merge {' '.join(parts)} --data {folder}"]
        commands = (*(paired or [*runs, *exports]), *(merge if len(parts) > 1 else []), commands[2])
    lines = ["## Commands, machine, what was measured, time", "", "```", *commands, "```", ""]
    lines += [
        f"Machine: {machine}. The results folder is not in the repository; the data folder "
        f"(`{folder}/`, columns in its README) holds the per-cell summaries every number and figure on "
        "this page is computed from.",
        "",
        *_completeness(data),
    ]
    if m.empty:
        return "\n".join([*lines, "The data folder has no training table."])
    rows = []
    for (ms, steps, n), g in m.groupby(["model_size", "steps", "train_size"]):
        ev = g["eval_s"].dropna() if "eval_s" in g else []
        loss = g["final_loss"].astype(float)
        rows.append([model_label(ms, steps, budgets), n_fmt(n), len(g), pm(loss.mean(), loss.sem()),
                     int(g["skipped_steps"].sum()) if "skipped_steps" in g else "–", _seconds(g, "wall_s"),
                     _seconds(g, "ms_per_step"),
                     f"{sum(ev) / len(ev):.1f}" if len(ev) else "–"])  # fmt: skip
    lines += [
        "Per model size, step budget and training size (means over seeds, the final loss ± its standard error over "
        "seeds; train s and ms / step are those of the model's training group where models trained in groups; "
        "evaluation time from the run log, where it names the models):",
        "",
        table(["model", "blocks", "seeds", "final loss", "skipped steps", "train s", "ms / step", "evaluation s"],
              rows),
        "",
        f"{len(m)} models trained ({m['model_size'].nunique()} sizes x {len(budgets)} budget(s) x "
        f"{m['train_size'].nunique()} training sizes x {m['seed'].nunique()} seed(s)); {_training_time(m)}."
        + (f" The whole run took {log['total_s']:,.0f} s ({log['total_s'] / 60:.1f} min)." if log.get("total_s")
           else ""),
    ]  # fmt: skip
    return "\n".join(lines)


def _training_time(m) -> str:
    """The training time of the models in ``m``: a group's members each carry the group's wall time
    (``group_size`` members; 1 where the column is absent), so each group counts once; rows without a time are
    counted apart."""
    wall = m["wall_s"].astype(float)
    size = m["group_size"].astype(float) if "group_size" in m else 1.0
    known = wall.notna()
    text = f"training took {(wall / size)[known].sum():,.0f} s in all"
    if known.all():
        return text
    if not known.any():
        return "training time not recorded"
    return f"{text} for {int(known.sum())} of them (not recorded for {int((~known).sum())})"


def _precision(row) -> str:
    """The training precision as it ran: bf16 autocast is a CUDA setting (a CPU run trains in float32)."""
    on_cuda = str(row.get("device", "")).startswith("cuda")
    if str(row["bf16"]) == "True":
        return "bf16 autocast" if on_cuda else "float32 (bf16 autocast applies on CUDA only)"
    return "float32 (TF32 matrix products)" if on_cuda else "float32"


def section_setup(data: MemorizationData) -> str:
    s, d, m = data.settings, data.run["data"], data.models
    corpus = data.run.get("corpus")
    length, vocab = int(d["length"]), d["vocab"]
    lines = ["## Setup", ""]
    line = (f"- Corpus: `{d['source']}`, sentences tokenized with the bert-base-uncased WordPiece vocabulary, packed "
            f"into blocks of {length} tokens (`[CLS]` + {length - 2} stream tokens + `[SEP]`)")  # fmt: skip
    if corpus:
        line += (f"; {n_fmt(corpus['train_blocks'])} training and {n_fmt(corpus['test_blocks'])} test blocks are "
                 f"available at this length, and {100 * corpus['unk_share']:.1f}% of the tokens are `[UNK]` after "
                 "compaction")  # fmt: skip
    lines.append(line + ".")
    if vocab is not None:
        lines.append(f"- Vocabulary: compacted to {n_fmt(vocab)} ids (the {n_fmt(vocab - 5)} most frequent ordinary "
                     "ids plus the 5 special tokens; every other id becomes `[UNK]`).")  # fmt: skip
    if not m.empty:
        arch = []
        for ms in data.model_sizes():
            r = m[m["model_size"] == ms].iloc[0]
            arch.append(
                [
                    ms,
                    int(r["arch.d_model"]),
                    int(r["arch.n_blocks"]),
                    int(r["arch.n_heads"]),
                    int(r["arch.cond_dim"]),
                    r["arch.dropout"],
                    f"{int(r['n_params']) / 1e6:.2f}M",
                ]
            )
        r0 = m.iloc[0]
        lines += [
            "- Models: the DiT of the package (adaLN time conditioning, rotary positions, GELU-tanh MLP 4x, zero-"
            "initialized output), conditioned on sigma_t = -log alpha_t:",
            "",
            table(["model", "width", "blocks", "heads", "cond dim", "dropout", "parameters"], arch),
            "",
            f"- Training (the same at every size): {' or '.join(f'{b:,}' for b in data.budgets())} AdamW steps of "
            f"{int(r0['batch_size'])} blocks drawn with replacement from the first n training blocks (nested subsets "
            f"of one seeded shuffle), lr {r0['lr']:g}, {int(r0['warmup'])} warm-up steps, EMA {r0['ema']:g} (the EMA "
            f"weights are evaluated), {_precision(r0)}, `torch.compile`: {r0['compile']}; training seeds "
            f"{', '.join(str(v) for v in sorted(set(m['seed'])))}. Training sizes n: "
            f"{', '.join(n_fmt(n) for n in sorted(set(m['train_size'])))} blocks.",
        ]
    if s:
        lines += [
            f"- Evaluation: {s['n_eval']} blocks per split (the first min({s['n_eval']}, n) training blocks, the "
            f"first {s['n_eval']} test blocks and {s['n_eval']} random blocks)"
            + (
                f"; a training set of fewer blocks gives {s['n_eval']} recovery queries all the same, its blocks in "
                "turn, each corrupted anew, with standard errors clustered by block"
                if s.get("fill_train")
                else ""
            )
            + "; recovery at t in "
            f"{{{', '.join(f'{t:g}' for t in s['ts'])}}} by ancestral reverse sampling on the global "
            f"{s['n_steps']}-step grid with the posterior final step, counting changed ordinary tokens only; basin "
            f"radius of {s['n_basin']} training and {s['n_basin']} test blocks ({s['basin_trials']} trials per "
            f"level, success probability >= 1 - {s['basin_delta']:g}, argmax chain on a local {s['basin_steps']}-"
            f"step grid); fixed points from t = 1; {s['n_generate']} generated blocks for the entropy at t = "
            f"{s['entropy_t']:g} and for extraction; test NELBO from {s['nelbo_ts']} stratified times per block; "
            f"KL from the empirical denoiser at t in {{{', '.join(f'{t:g}' for t in s['kl_ts'])}}}; the Hopfield "
            f"family storing the same first n training blocks (empirical denoiser on a {s['empirical_steps']}-step "
            f"grid, dense exp and modern memories with at most {s['hopfield_max_iter']} synchronous steps).",
        ]
    return "\n".join(lines)


def section_differences(data: MemorizationData) -> str:
    d, s, m = data.run["data"], data.settings, data.models
    sizes = sorted(set(data.uddm_recovery["train_size"]))
    params = data.params()
    models = ", ".join(f"{ms} ({params.get(ms, float('nan')) / 1e6:.1f}M)" for ms in data.model_sizes())
    batch = int(m["batch_size"].iloc[0]) if len(m) else 0
    rows = [
        ["corpus", "LM1B", f"`{d['source']}`"],
        ["vocabulary", "bert-base-uncased, 30,522", "the same ids" + (f" compacted to {n_fmt(d['vocab'])}"
                                                                       if d["vocab"] else "")],
        ["block", "128 tokens", f"{d['length']} tokens"],
        ["models", "DiT 256x8 (23.7M) to 1024x24 (384M)", models],
        ["steps", "1,000,000 x 512 blocks", " or ".join(f"{b:,}" for b in data.budgets()) + f" x {batch} blocks"],
        ["training sizes", "54 fractions of LM1B, 1e-4 to 1",
         f"{n_fmt(sizes[0])} ... {n_fmt(sizes[-1])} blocks ({len(sizes)} sizes)" if sizes else "–"],
        ["seeds", "one", f"{len(data.seeds())}"],
        ["evaluation", "5,000 train / 5,000 test sequences",
         f"{s.get('n_eval', '–')} blocks per split, t up to {max(s.get('ts', [float('nan')])):g}"],
    ]  # fmt: skip
    return section(
        "How this differs from the paper",
        table(["", "Pham et al. 2026", "here"], rows),
        "The sizes are measured in blocks, not in a fraction of a corpus, and every model of a budget takes the same "
        "steps at every size, so the meeting point of a model is a property of its step budget as much as of the "
        "model (claim (g)).",
    )  # fmt: skip
