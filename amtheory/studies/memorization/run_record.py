"""What a data folder of the memorization study records about its run beside the tables
(``amtheory.studies.memorization.export``): the evaluation settings, the corpus, the times in the run's log and the
decoded token rows of the example figure, written as ``run.json``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amtheory.studies.memorization.cells import MEASURES, DataSpec

__all__ = ["PLAN_FILE", "corpus_record", "examples", "log_times", "read_plan", "record_wall_time", "run_json",
           "settings_of"]  # fmt: skip

#: The file of a results folder that says which measurements each step budget of its models gets
#: (``amtheory.studies.memorization.run.write_plan``).
PLAN_FILE = "measures.json"


def read_plan(results: str | Path) -> dict | None:
    """The measurement plan of the results folder ``results`` (``PLAN_FILE``: ``measures``,
    ``short_budget_measures``, ``longest_steps``), or None where the run wrote none. A damaged plan is refused
    naming what was expected and what the file holds."""
    path = Path(results) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"results: {path} is not the JSON of a measurement plan ({exc})") from None

    def names(v: object) -> bool:
        return isinstance(v, list) and all(isinstance(m, str) and m in MEASURES for m in v)

    short = plan.get("short_budget_measures", "?") if isinstance(plan, dict) else "?"
    steps = plan.get("longest_steps") if isinstance(plan, dict) else None
    if not (isinstance(plan, dict) and set(plan) == {"measures", "short_budget_measures", "longest_steps"}
            and names(plan["measures"]) and (short is None or names(short))
            and isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):  # fmt: skip
        raise ValueError(f"results: expected {path} to hold measures (names from {MEASURES}), short_budget_measures "
                         f"(such names or null) and longest_steps (an int >= 1), got {str(plan)[:200]}")  # fmt: skip
    return plan


def _decoded(v: Any) -> Any:
    """A setting column's value: the canonical JSON of a tuple of floats back to a list of floats."""
    if isinstance(v, str) and v[:1] in "[{":
        v = json.loads(v)
    if isinstance(v, dict) and set(v) == {"__float__"}:
        return float(v["__float__"])
    if isinstance(v, list):
        return [_decoded(x) for x in v]
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def settings_of(rec: pd.DataFrame) -> dict[str, Any]:
    """The evaluation settings (``EvalSettings`` fields) of a recovery table's UDDM rows."""
    row = rec[rec["backend"] == "uddm"].iloc[0] if (rec["backend"] == "uddm").any() else rec.iloc[0]
    return {c.split(".", 1)[1]: _decoded(row[c]) for c in rec.columns if c.startswith("settings.")}


def log_times(log: str | Path | None, models: pd.DataFrame) -> tuple[dict | None, float | None]:
    """Per (model size, training size, seed) the seconds of its measurement stages in the run log (None when the
    log cannot tell the step budgets apart: its lines do not name them), and the run's total seconds."""
    if log is None:
        return None, None
    text = Path(log).read_text()
    total = re.findall(r"\[memorization\] total ([\d.]+) s", text)
    pat = re.compile(r"\[memorization\] (\w+) ([\w.-]+) on (\d+) blocks(?:, seed (\d+))?: ([\d.]+) s")
    if models.empty or models["steps"].nunique() > 1:
        return None, float(total[-1]) if total else None
    only_seed = int(models["seed"].iloc[0]) if models["seed"].nunique() == 1 else None
    stage: dict[tuple, float] = {}
    for m in pat.finditer(text):
        if m[1] == "train":
            continue
        seed = int(m[4]) if m[4] is not None else only_seed
        k = (m[1], m[2], int(m[3]), seed)
        stage[k] = max(stage.get(k, 0.0), float(m[5]))  # a later run that skipped the stage logs 0.0 s
    out: dict[tuple, float] = {}
    for (_, ms, n, seed), s in stage.items():
        out[(ms, n, seed)] = out.get((ms, n, seed), 0.0) + s
    return out, float(total[-1]) if total else None


def corpus_record(corpus: str | Path | None, spec: dict) -> dict | None:
    if corpus is None:
        return None
    from amtheory.studies.memorization.data import load_data

    c = load_data(DataSpec(str(corpus), int(spec["length"]), spec["vocab"]))
    return {
        "folder": str(corpus),
        "train_blocks": int(c.n_blocks_available("train", int(spec["length"]))),
        "test_blocks": int(c.n_blocks_available("test", int(spec["length"]))),
        "unk_share": float((np.asarray(c.tokens) == c.specials.unk).mean()),
    }


def examples(rec: pd.DataFrame, models: pd.DataFrame, root: Path, ts: list[float]) -> list[dict]:
    """The decoded token rows of the example figure: per model size (at its largest budget and first seed), the
    first training and test block at t = 0.25 (else the middle t) for the smallest and the largest training set."""
    from amtheory.studies.memorization.data import load_decoder

    maps = sorted((root / "vocab").glob("mapping-*.json"))
    if not (root / "vocab" / "vocab.txt").is_file() or models.empty:
        return []
    decode = load_decoder(root, int(maps[0].stem.split("-", 1)[1]) if maps else None)
    t = 0.25 if 0.25 in ts else sorted(ts)[len(ts) // 2]
    u = rec[(rec["backend"] == "uddm") & (rec["t"] == t)]
    out = []
    for ms, g in models.groupby("model_size"):
        steps, seed = int(g["steps"].max()), int(g["seed"].min())
        sizes = sorted(set(g["train_size"]))
        for n in sorted({sizes[0], sizes[-1]}):
            for split in ("train", "test"):
                sel = (u["model_size"] == ms) & (u["train.steps"] == steps) & (u["train.seed"] == seed)
                rows = u[sel & (u["train_size"] == n) & (u["split"] == split)].sort_values("sequence")
                if rows.empty:
                    continue
                r = rows.iloc[0]
                ids = {c: [int(v) for v in r[c]] for c in ("x0", "xq", "xf")}
                words = sorted({v for c in ids.values() for v in c})
                out.append({"model_size": ms, "steps": steps, "seed": seed, "train_size": int(n), "split": split,
                            "t": float(t), "sequence": int(r["sequence"]), **ids,
                            "words": dict(zip(map(str, words), decode(words)))})  # fmt: skip
    return out


def run_json(run: dict) -> str:
    """``run`` as indented JSON with one line per example (their token lists stay on it)."""
    examples = run["examples"]
    text = json.dumps({**run, "examples": "@"}, indent=1)
    lines = ",\n".join("  " + json.dumps(e) for e in examples)
    return text.replace('"@"', f"[\n{lines}\n ]" if examples else "[]") + "\n"


def record_wall_time(folder: str | Path, seconds: float) -> None:
    """Store ``seconds`` as the run's total time in the data folder's ``run.json``: the wall time its caller
    measured across all the run's jobs, where the log's last total covers one job only and merged parts that ran
    side by side would add up to more than the run took."""
    path = Path(folder) / "run.json"
    run = json.loads(path.read_text())
    run["log"] = {**(run.get("log") or {}), "total_s": float(seconds)}
    path.write_text(run_json(run))
