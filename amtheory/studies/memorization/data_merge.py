"""One data folder of the memorization study from several, each exported from a part of one sweep: for example one
model size per GPU job, so that a machine lost between jobs costs only its part (``experiments/gpu/
memorization_gpu_preset.sh`` with ``MODELS``). ``python experiments/summarize_memorization.py --merge A B --data
OUT``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from amtheory.studies.memorization.export import CELL, DATA_FILES
from amtheory.studies.memorization.run_record import run_json
from amtheory.studies.memorization.summary import read_data

__all__ = ["merge_data"]

#: What must agree between the parts: they are parts of one sweep (``data`` by :func:`_same_data`).
_SAME = ("format", "settings", "data", "trajectory_points", "plan")


def _same_data(a: dict | None, b: dict | None) -> bool:
    """Whether two parts' data specs name one corpus: the same source, block length and vocabulary, and the same
    compacted vocabulary size where both know it (a part of the Hopfield family alone trained no model to read it
    from)."""
    a, b = a or {}, b or {}
    if any(a.get(k) != b.get(k) for k in ("source", "length", "vocab")):
        return False
    return a.get("vocab_size") is None or b.get("vocab_size") is None or a["vocab_size"] == b["vocab_size"]


def _joined(values: list, sep: str) -> str | None:
    kept = [str(v) for v in values if v]
    return sep.join(dict.fromkeys(kept)) or None


def merge_data(folders: Sequence[str | Path], out: str | Path) -> list[Path]:
    """Write into ``out`` the union of the data folders ``folders`` (at least two, none of them ``out``): every
    cell (``CELL``) from the first folder that has it, so that cells run in several parts (the Hopfield
    family beside each part's models) are counted once. The parts must share the run settings (``_SAME``); their
    commands, machines and run times are kept in order (times summed). Values are copied as written, not re-read
    as numbers. Returns the files written."""
    if isinstance(folders, (str, Path)) or not isinstance(folders, Sequence) or len(folders) < 2:
        raise TypeError(f"folders: expected two or more data folders, got {folders!r}")
    roots = [Path(f) for f in folders]
    target = Path(out)
    if len({r.resolve() for r in roots}) != len(roots) or target.resolve() in {r.resolve() for r in roots}:
        raise ValueError(f"folders: expected distinct data folders other than out ({target}), got {roots}")
    for r in roots:
        if not r.is_dir():
            raise FileNotFoundError(f"folders: expected a data folder, got {r} (no such folder)")
    runs = [read_data(r).run for r in roots]  # each checked as a data folder (its files, format and columns)
    for r, run in zip(roots[1:], runs[1:]):
        for key in _SAME:
            same = _same_data(run.get(key), runs[0].get(key)) if key == "data" else run.get(key) == runs[0].get(key)
            if not same:
                raise ValueError(f"folders: {r} has another {key!r} than {roots[0]} ({run.get(key)!r} against "
                                 f"{runs[0].get(key)!r}): not parts of one sweep")  # fmt: skip
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in (n for n in DATA_FILES if n.endswith(".csv")):
        seen: set[tuple] = set()
        parts = []
        for r in roots:
            df = pd.read_csv(r / name, dtype=str, keep_default_na=False)
            keys = list(map(tuple, df[CELL].to_numpy()))
            new = [k not in seen for k in keys]
            parts.append(df.loc[np.asarray(new, dtype=bool)])  # (df[[]] would select no columns of an empty table)
            seen.update(keys)
        pd.concat(parts, ignore_index=True).to_csv(target / name, index=False)
        paths.append(target / name)
    totals = [(run.get("log") or {}).get("total_s") for run in runs]
    merged = {
        **runs[0],
        # A part that trained models knows the compacted vocabulary, and has example blocks (the family has none).
        "data": next((run["data"] for run in runs if (run.get("data") or {}).get("vocab_size")), runs[0].get("data")),
        "examples": next((run["examples"] for run in runs if run.get("examples")), runs[0].get("examples")),
        "results": _joined([run.get("results") for run in runs], "; "),
        "machine": _joined([run.get("machine") for run in runs], "; "),
        "command": _joined([run.get("command") for run in runs], "\n"),
        "corpus": next((run["corpus"] for run in runs if run.get("corpus")), None),
        "log": None if any(t is None for t in totals) else {"file": _joined(
            [(run.get("log") or {}).get("file") for run in runs], ", "), "total_s": float(sum(totals))},
    }  # fmt: skip
    (target / "run.json").write_text(run_json(merged))
    return [*paths, target / "run.json"]
