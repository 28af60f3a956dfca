"""The memorization experiment's example figure: one block, corrupted and restored by the models of the smallest and
the largest training set, every token coloured (restored, still wrong, broken, clean, corrupted).

Every panel is as tall as the lines its rows wrap into, and the panels are placed one under the other in inches, so
a long block (64 tokens and more) wraps inside its own panel and never runs into the next one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amtheory.figures import style

TOKEN_COLORS = {"restored": "#a6dba0", "wrong": "#f4a582", "broken": "#ca0020", "clean": "#f0f0f0",
                "corrupted": "#92c5de"}  # fmt: skip
TOKEN_LABELS = {"restored": "restored", "wrong": "still wrong", "broken": "broken (was clean)", "clean": "clean",
                "corrupted": "corrupted"}  # fmt: skip
FONT_PT = 7.5
LINE_PT = 13.0  # one line of tokens, box padding included
WIDTH_IN = 12.0
LEFT_IN, RIGHT_IN = 0.9, 0.15  # room for the row labels on the left
TITLE_IN, GAP_IN, LEGEND_IN = 0.3, 0.15, 0.35

Row = tuple[str, list[str], list[str]]  # (row label, tokens, kinds)


def _short(word: str) -> str:
    return word if len(word) <= 14 else word[:13] + "…"


def token_lines(words: list[str], width_pt: float) -> list[list[tuple[float, int]]]:
    """Lay the tokens out in lines no wider than ``width_pt`` points: per line, (x in [0, 1), token index)."""
    char_pt, pad_pt = 0.62 * FONT_PT, 0.3 * FONT_PT + 4.0
    lines: list[list[tuple[float, int]]] = [[]]
    x = 0.0
    for i, w in enumerate(words):
        dx = len(_short(w)) * char_pt + pad_pt
        if lines[-1] and x + dx > width_pt:
            lines.append([])
            x = 0.0
        lines[-1].append((x / width_pt, i))
        x += dx
    return lines


def _panel_lines(rows: list[Row], width_pt: float) -> int:
    return sum(len(token_lines(words, width_pt)) for _, words, _ in rows)


def draw_example_panels(panels: list[tuple[str, list[Row]]]) -> style.plt.Figure:
    """One panel per (title, rows), each as tall as its wrapped lines, stacked top to bottom; a legend under them."""
    plt = style.plt
    width_pt = (WIDTH_IN - LEFT_IN - RIGHT_IN) * 72.0
    heights = [_panel_lines(rows, width_pt) * LINE_PT / 72.0 for _, rows in panels]
    total = sum(heights) + len(panels) * (TITLE_IN + GAP_IN) + LEGEND_IN
    fig = plt.figure(figsize=(WIDTH_IN, total))
    fig.set_layout_engine("none")  # the panels are placed by hand, in inches
    top = total
    for (title, rows), h in zip(panels, heights):
        top -= TITLE_IN
        ax = fig.add_axes((LEFT_IN / WIDTH_IN, (top - h) / total, 1 - (LEFT_IN + RIGHT_IN) / WIDTH_IN, h / total))
        n = _panel_lines(rows, width_pt)
        ax.set(xlim=(0, 1), ylim=(-n, 0))
        ax.axis("off")
        ax.set_title(title, fontsize=9, loc="left")
        y = 0
        for label, words, kinds in rows:
            ax.text(-0.01, -(y + 0.5), label, ha="right", va="center", fontsize=8, fontweight="bold")
            for line in token_lines(words, width_pt):
                for x, i in line:
                    ax.text(x, -(y + 0.5), _short(words[i]), ha="left", va="center", fontsize=FONT_PT,
                            family="monospace", bbox={"boxstyle": "square,pad=0.15", "fc": TOKEN_COLORS[kinds[i]],
                                                      "ec": "none"})  # fmt: skip
                y += 1
        top -= h + GAP_IN
    handles = [plt.Rectangle((0, 0), 1, 1, fc=c) for c in TOKEN_COLORS.values()]
    fig.legend(handles, list(TOKEN_LABELS.values()), loc="lower center", ncol=5, frameon=False)
    return fig


def example_rows(row, decode) -> tuple[list[Row], dict]:
    """The rows (original, corrupted, restored) of one recovery record, and its counts."""
    x0, xq, xf = (np.asarray(row[c]) for c in ("x0", "xq", "xf"))
    changed, right = xq != x0, xf == x0
    kinds_q = ["corrupted" if c else "clean" for c in changed]
    kinds_f = [("restored" if r else "wrong") if c else ("clean" if r else "broken") for c, r in zip(changed, right)]
    rows = [("original", decode(x0), ["clean"] * len(x0)), ("corrupted", decode(xq), kinds_q),
            ("restored", decode(xf), kinds_f)]  # fmt: skip
    counts = dict(
        corrupted=int(changed.sum()), restored=int((changed & right).sum()), broken=int((~changed & ~right).sum())
    )
    return rows, counts


def fig_example(data, out: Path) -> list[Path]:
    """Draw ``memorization_example`` from the token rows a data folder keeps (``run.json``'s ``examples``): the
    largest model at its largest budget, the first training and test block at the smallest and the largest training
    size; nothing when the export had no vocabulary to decode them with."""
    examples = [e for e in data.run.get("examples", []) if e["model_size"] in data.model_sizes()]
    if not examples:
        return []
    params = data.params()
    ms = max({e["model_size"] for e in examples}, key=lambda m: (params.get(m, 0.0), m))
    rows_of = [e for e in examples if e["model_size"] == ms]
    panels = []
    for e in sorted(rows_of, key=lambda e: (e["train_size"], e["split"] != "train")):
        words = e["words"]
        rows, c = example_rows(e, lambda ids, words=words: [words[str(int(i))] for i in ids])
        title = (f"{style.backend_label('uddm')} {ms} ({e['steps']:,} steps) trained on {e['train_size']:,} blocks, "
                 f"a {e['split']} block at t = {e['t']:g}: {c['corrupted']} corrupted, {c['restored']} restored, "
                 f"{c['broken']} broken")  # fmt: skip
        panels.append((title, rows))
    return style.save(draw_example_panels(panels), out, "memorization_example")
