"""The figures (``amtheory.figures``): what they draw, checked on the artists and the data behind them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from amtheory.core import registry  # noqa: E402
from amtheory.core.sweep import run_sweep  # noqa: E402

# Per-pattern radii of the two sizes: N = 16 has one pattern that is not a fixed point, N = 32 has three radii at
# the search limit N / 2 (censored), so its median over fixed points is a lower bound.
RADII = {16: ([-1, 2, 3, 4], [False] * 4), 32: ([5, 16, 16, 16], [False, True, True, True])}


@pytest.fixture(scope="module")
def compare_tables(tmp_path_factory):
    from amtheory.studies.hopfield import compare

    root = tmp_path_factory.mktemp("compare")
    cells = [compare.CompareCell(b, n, a, n_trials=2) for n in RADII for a in (0.1, 0.2) for b in ("hebbian", "exp")]

    def rec(cell, generator, device):
        return pd.DataFrame({"rho": [0.1, 0.2], "exact": [True, cell.n == 16], "level": [1, 2]})

    def rad(cell, generator, device):
        r, c = RADII[cell.n]
        med = float(np.median(r))  # the radius table's own median, -1 of a non-fixed point included
        return pd.DataFrame(
            {"pattern": range(len(r)), "radius": r, "censored": c, "fixed_point": np.array(r) >= 0,
             "median_fraction": med / cell.n, "median_ci_low": min(r) / cell.n, "median_ci_high": max(r) / cell.n}
        )  # fmt: skip

    run_sweep(cells, rec, root / "recovery", progress=False)
    run_sweep(cells, rad, root / "radius", progress=False)
    return root


def _drawn(monkeypatch, draw):
    """Run a figure function with its saver replaced; returns the figure it would have saved."""
    from amtheory.figures import style

    seen = []
    monkeypatch.setattr(style, "save", lambda fig, out, name: seen.append(fig) or [])
    draw()
    assert len(seen) == 1
    return seen[0]


def test_compare_figure_draws_every_size_with_theory_and_censored_marks(compare_tables, tmp_path, monkeypatch):
    from amtheory.figures import compare as fig

    f = _drawn(monkeypatch, lambda: fig.figure(compare_tables, tmp_path))
    radius_axes = {ax.get_title(): ax for ax in f.axes if "basin radius" in ax.get_title()}
    share_axes = {ax.get_title(): ax for ax in f.axes if "fixed points" in ax.get_title()}
    assert set(radius_axes) == {"N = 16, basin radius", "N = 32, basin radius"}
    assert set(share_axes) == {"N = 16, fixed points", "N = 32, fixed points"}
    hebbian = registry.label("hebbian")
    for n, (r, _) in RADII.items():
        ax = radius_axes[f"N = {n}, basin radius"]
        lines = {line.get_label(): line for line in ax.get_lines()}
        # The median over the fixed points of that N, never the -1 sentinel nor the other N's table.
        expect = np.median([v for v in r if v >= 0]) / n
        assert np.allclose(lines[hebbian].get_ydata(), expect)
        # Theory: the typical-pattern curve beside the all-patterns bound, each labelled.
        assert any("typical pattern" in lab for lab in lines) and any("bound for all patterns" in lab for lab in lines)
        share = {line.get_label(): line for line in share_axes[f"N = {n}, fixed points"].get_lines()}
        assert np.allclose(share[hebbian].get_ydata(), np.mean(np.array(r) >= 0))
        # Intervals: a band per backend in both panels.
        assert len(ax.collections) >= 2
    # The censored medians of N = 32 are marked (open triangles), those of N = 16 are not.
    marks = {
        n: [ln for ln in radius_axes[f"N = {n}, basin radius"].get_lines() if ln.get_marker() == "^"] for n in RADII
    }
    assert not marks[16] and marks[32] and np.allclose(marks[32][0].get_ydata(), 0.5)


# ---- one convention for the radius of a pattern that is not a fixed point ---------------------------------------
def test_summary_table_shows_median_over_fixed_points_and_their_share(compare_tables):
    from amtheory.core.sweep import load_results
    from amtheory.studies.hopfield import compare

    rec, rad = load_results(compare_tables / "recovery"), load_results(compare_tables / "radius")
    _, radius = compare.summary_tables(rec, rad)
    # N = 16: one of four patterns is not a fixed point; the median runs over 2, 3, 4 (3 / 16), never over the -1.
    entry = radius.loc[("hebbian", 16), 0.1]
    assert entry.startswith(f"{3 / 16:.3f} [") and "75% [" in entry
    assert not any("-" in str(v).split("[")[0] for v in radius.to_numpy().ravel())
    # N = 32: the median is at the search limit, marked as a lower bound.
    assert radius.loc[("hebbian", 32), 0.1].startswith(">=0.500")


def test_hopfield_page_radius_tables_use_the_convention():
    from amtheory.reports.hopfield.basins import basin_sections

    # Hebbian at a load where two of four targets are not fixed points, the exponential memory beside it.
    rows = []
    for b, radii in (("hebbian", [-1, -1, 3, 5]), ("exp", [10, 11, 12, 13])):
        for p, r in enumerate(radii):
            rows.append(dict(backend=b, N=32, K=4, replicate=0, radius=r, censored=False, delta=0.1, pattern=p))
    text = basin_sections(pd.DataFrame(rows), [])
    assert "median radius over the patterns that are fixed points" in text and "Wilson" in text
    assert f"{4 / 32:.3f} [" in text and "50% [" in text  # median of 3 and 5 over N, share 2 / 4
    assert "-0.0" not in text
    # The exponential memory's median sits beside the typical-pattern curve, the all-patterns curve as a bound.
    assert "typical pattern rho" in text and "bound for all patterns rho*" in text


# ---- one colour and one label per backend -----------------------------------------------------------------------
def test_every_backend_has_its_own_colour_and_one_label_in_the_figures():
    from amtheory.figures import style

    names = list(registry.backend_names())
    colours = [style.backend_colour(b) for b in names]
    assert len(set(colours)) == len(colours), dict(zip(names, colours))
    assert style.backend_colour("uddm") != style.backend_colour("poly3")
    # An alias (a study's own name) is drawn as its backend: the exponential memory has one label and one colour.
    assert style.backend_label("dense_exp") == style.backend_label("exp") == registry.label("exp")
    assert style.backend_order(["dense_exp", "classical", "unregistered"]) == ["classical", "dense_exp", "unregistered"]
    # A series that is not a backend never borrows a backend's colour; the UDDM's model sizes are shades of its own.
    series = style.series_colours(["poly3", "poly4", "poly5"])
    assert series["poly3"] == registry.colour("poly3")
    assert not {series["poly4"], series["poly5"]} & set(colours) and series["poly4"] != series["poly5"]
    from amtheory.figures.memorization import _uddm_colours

    sizes = _uddm_colours(["small", "medium", "large"])
    assert len(set(sizes.values())) == 3 and not set(sizes.values()) & (set(colours) - {registry.colour("uddm")})


def test_basins_figure_labels_the_exponential_memory_and_its_two_curves():
    from amtheory.figures import basins, style

    rows = [
        dict(backend=b, N=32, K=k, replicate=0, load=k / 32, radius=r, censored=False, delta=0.1, pattern=p)
        for b in ("hebbian", "exp")
        for k in (2, 8)
        for p, r in enumerate([3, 4, 5])
    ]
    style.setup()
    f = basins.draw_basins(pd.DataFrame(rows))
    labels = [t.get_text() for leg in f.legends for t in leg.get_texts()]
    exp = registry.label("exp")
    assert exp in labels and registry.label("hebbian") in labels
    assert sum(lab.startswith(exp) for lab in labels) == 3  # the backend, its typical-pattern curve, its bound
    assert any("typical pattern" in lab for lab in labels) and any("bound for all patterns" in lab for lab in labels)
    style.plt.close(f)


# ---- the example figure: long blocks wrap inside their own panel ------------------------------------------------
def test_example_panels_keep_every_token_inside_their_panel():
    from amtheory.figures import memorization_example as ex

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), size=rng.integers(1, 16))) for _ in range(64)]
    rows = [(name, words, ["clean"] * 64) for name in ("original", "corrupted", "restored")]
    fig = ex.draw_example_panels([("first", rows), ("second", rows[:1]), ("third", rows)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    tol = 1.0  # pixels
    for ax, box in zip(fig.axes, boxes):
        tokens = [t for t in ax.texts if t.get_ha() == "left"]
        assert len(tokens) == 64 * (1 if ax.get_title(loc="left") == "second" else 3)
        for t in tokens:
            e = t.get_bbox_patch().get_window_extent(renderer)
            assert box.y0 - tol <= e.y0 and e.y1 <= box.y1 + tol, (ax.get_title(loc="left"), t.get_text())
            assert e.x1 <= box.x1 + tol
    # Panels (with their titles) do not overlap one another.
    tops = [ax.title.get_window_extent(renderer).y1 for ax in fig.axes]
    for upper, lower_top in zip(boxes[:-1], tops[1:]):
        assert lower_top < upper.y0
    ex.style.plt.close(fig)


def test_trajectory_figure_draws_entropy_and_gap_per_training_size_with_error_bands(tmp_path):
    pytest.importorskip("matplotlib")
    import pandas as pd

    from amtheory.figures.memorization_trajectory import trajectory_axes

    rows = []
    for n, level in ((4, 0.1), (64, 2.0)):
        for step, t in enumerate((1.0, 0.5, 0.1, 1e-5)):
            for seq in range(3):
                rows.append({"model_size": "m", "train_size": n, "split": "generated", "step": step, "t": t,
                             "sequence": seq, "entropy": level * t + 0.01 * seq, "gap": 1 - t / 2})  # fmt: skip
    fig, axes = trajectory_axes(pd.DataFrame(rows))
    ent, gap = axes[0][0], axes[1][0]
    labels = [line.get_label() for line in ent.get_lines()]
    assert labels == ["4 blocks", "64 blocks"]
    # The smaller set's prediction is surer at every t: its curve lies below the larger set's.
    y4, y64 = (line.get_ydata() for line in ent.get_lines())
    assert (y4 < y64).all()
    assert len(ent.collections) == 2 and len(gap.get_lines()) == 2  # one standard-error band per curve
    assert ent.get_xscale() == "log" and ent.xaxis_inverted()
