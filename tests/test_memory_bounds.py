"""Every batched path of the Hopfield-family backends runs in chunks of queries sized to a working-memory budget.

Each test forces a budget so small that every chunk is one query row, checks through a spy on
``amtheory.core.budget.row_slices`` that the path really split its rows, and compares with the same call under the
default budget, where the test sizes fit in one chunk: the exact paths must agree bit for bit, the floating-point
paths within rounding.
"""

import math
import weakref

import pandas as pd
import pytest
import torch

from amtheory.backends import _attention
from amtheory.backends._exact_mm import digit_matmul
from amtheory.backends.classical import ClassicalHopfield
from amtheory.backends.dense import DenseAM, similarity
from amtheory.backends.modern import ModernHopfield
from amtheory.core import budget as memory
from amtheory.core.corruption import corrupt
from amtheory.core.patterns import iid_patterns

torch.set_num_threads(1)

#: One byte: every chunk is a single query row.
TINY = 1


@pytest.fixture
def chunks(monkeypatch):
    """Records ``(n_rows, n_chunks)`` of every ``row_slices`` call."""
    calls: list[tuple[int, int]] = []
    original = memory.row_slices

    def spy(n_rows, bytes_per_row, device):
        out = original(n_rows, bytes_per_row, device)
        calls.append((n_rows, len(out)))
        return out

    monkeypatch.setattr(memory, "row_slices", spy)
    return calls


def _both(chunks, fn, rows):
    """``fn()`` under the default budget (asserted to run in one chunk) and under ``TINY`` (asserted to have split
    ``rows`` query rows into one chunk each)."""
    chunks.clear()
    full = fn()
    assert chunks, "the path never asked for a chunk size"
    assert all(n <= 1 for _, n in chunks), f"the default budget split the rows: {chunks}"
    chunks.clear()
    with memory.memory_budget(TINY):
        small = fn()
    assert (rows, rows) in chunks, f"expected {rows} rows in {rows} chunks of one row, got (rows, chunks) {chunks}"
    return full, small


def _equal(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b)


def _close(a, b):
    """Equal within the rounding of the dtype (the default tolerances of ``assert_close``): a matrix-multiply
    library may sum in another order for another number of rows."""
    torch.testing.assert_close(a, b)


def _queries(X, V, B, seed=0, flips=3):
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(B) % X.shape[0]
    return corrupt(X[rows], vocab_size=V, n_changed=min(flips, X.shape[1]), generator=g).states


def _patterns(K, L, V=2, seed=1):
    return iid_patterns(K, L, vocab_size=V, generator=torch.Generator().manual_seed(seed))


# ---- the budget itself -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, n",
    [("40GiB", 40 * 2**30), ("512 MiB", 512 * 2**20), ("80GB", 80 * 10**9), ("2e9", 2 * 10**9), ("7", 7), (3, 3)],
)
def test_parse_bytes(text, n):
    assert memory.parse_bytes("max_memory", text) == n


@pytest.mark.parametrize("bad, err", [("lots", ValueError), ("0", ValueError), ("-1GiB", ValueError),
                                      ("12 parsecs", ValueError), (0, ValueError), (1.5, TypeError),
                                      (True, TypeError), (None, TypeError)])  # fmt: skip
def test_parse_bytes_rejects(bad, err):
    with pytest.raises(err, match=r"max_memory: expected a positive number of bytes .* got"):
        memory.parse_bytes("max_memory", bad)


def test_budget_context_lowers_and_restores():
    assert memory.current_cap() is None
    assert memory.budget_bytes("cpu") == memory.CPU_BUDGET
    with memory.memory_budget("1MiB") as cap:
        assert cap == 2**20 == memory.current_cap()
        assert memory.budget_bytes("cpu") == 2**20
        with memory.memory_budget(2**30):  # an inner block cannot raise an outer cap
            assert memory.budget_bytes("cpu") == 2**20
        with memory.memory_budget(1000):
            assert memory.budget_bytes("cpu") == 1000
        with memory.memory_budget(None):
            assert memory.current_cap() == 2**20
    assert memory.current_cap() is None
    with pytest.raises(ValueError, match="max_bytes"):
        with memory.memory_budget("nothing"):
            pass


def test_row_slices_cover_the_rows():
    with memory.memory_budget(100):
        assert memory.rows_per_chunk(30, "cpu") == 3
        assert memory.row_slices(7, 30, "cpu") == [slice(0, 3), slice(3, 6), slice(6, 7)]
        assert memory.rows_per_chunk(10**9, "cpu") == 1
    assert memory.row_slices(0, 30, "cpu") == []
    assert memory.row_slices(5, 30, "cpu") == [slice(0, 5)]


def test_map_rows_concatenates_tensors_and_tuples():
    x = torch.arange(10).view(5, 2)
    with memory.memory_budget(2):
        assert torch.equal(memory.map_rows(lambda a: a * 2, x, bytes_per_row=1), x * 2)
        s, t = memory.map_rows(lambda a, b: (a + b, a.sum(-1)), x, x, bytes_per_row=1)
    assert torch.equal(s, 2 * x) and torch.equal(t, x.sum(-1))


# ---- exact integer products -------------------------------------------------------------------------------------
def test_digit_matmul_in_chunks_is_bit_identical(chunks):
    g = torch.Generator().manual_seed(3)
    a = torch.randint(-(2**40), 2**40, (9, 30), generator=g).double()
    b16 = (torch.randint(0, 2, (30, 11), generator=g) * 2 - 1).to(torch.bfloat16)
    full, small = _both(chunks, lambda: digit_matmul(a, b16, max_abs=2**40, out_dtype=torch.float64), 9)
    _equal(full, small)
    assert torch.equal(small, (a.long() @ b16.long()).double())


# ---- dense associative memories ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["poly", "rectpoly", "exp"])
def test_dense_spin_sync_in_chunks(chunks, kind):
    X = _patterns(7, 40)
    q = _queries(X, 2, 9)
    mem = DenseAM(kind, n=3, beta=0.7).store(X, vocab_size=2)
    full, small = _both(chunks, lambda: mem.sync_update(q), 9)
    _equal(full, small)


@pytest.mark.parametrize("kind", ["poly", "rectpoly", "exp"])
def test_dense_scores_gibbs_energy_in_chunks(chunks, kind):
    X = _patterns(6, 9, V=3)
    q = _queries(X, 3, 8)
    mem = DenseAM(kind, n=3, beta=0.9).store(X, vocab_size=3)
    for fn in (mem.scores, mem.gibbs_scores, mem.energy, lambda y: mem.conditionals(y, beta=0.5)):
        full, small = _both(chunks, lambda fn=fn: fn(q), 8)
        _equal(full, small)


def test_dense_pattern_conditionals_and_similarity_in_chunks(chunks):
    X = _patterns(6, 9, V=3)
    q = _queries(X, 3, 8)
    mem = DenseAM("exp", beta=0.9).store(X, vocab_size=3)
    full, small = _both(chunks, lambda: mem.pattern_conditionals(q), 8)
    _equal(full, small)
    full, small = _both(chunks, lambda: similarity(q, X, 3), 8)
    _equal(full, small)


def test_dense_local_fields_in_chunks(chunks):
    X = _patterns(6, 9, V=3)
    q = _queries(X, 3, 8)
    mem = DenseAM("poly", n=3).store(X, vocab_size=3)
    pos = torch.arange(8) % 9

    def run():
        f = mem.local_fields(q)
        f.set(pos, (f.x[torch.arange(8), pos] + 1) % 3)
        return f.at(pos), f.at(pos, gibbs=True), f.sim

    full, small = _both(chunks, run, 8)
    _equal(full, small)


# ---- classical networks -----------------------------------------------------------------------------------------
CLASSICAL = [
    dict(rule="hebbian"),  # binary pattern form: the fused integer path
    dict(rule="hebbian", matmul="exact-bf16"),
    dict(rule="hebbian", form="weights"),
    dict(rule="hebbian", zero_diagonal=False),
    dict(rule="storkey"),
    dict(rule="pseudoinverse"),
]


@pytest.mark.parametrize("kw", CLASSICAL, ids=lambda kw: "-".join(str(v) for v in kw.values()))
@pytest.mark.parametrize("V", [2, 3])
def test_classical_paths_in_chunks(chunks, kw, V):
    X = _patterns(4, 24, V=V)
    q = _queries(X, V, 7)
    mem = ClassicalHopfield(**kw).store(X, vocab_size=V)
    exact = kw["rule"] == "hebbian"
    for fn in (mem.sync_update, mem.scores, mem.gibbs_scores, mem.energy, mem.fields):
        full, small = _both(chunks, lambda fn=fn: fn(q), 7)
        (_equal if exact or fn == mem.sync_update else _close)(full, small)


@pytest.mark.parametrize("form", ["patterns", "weights"])
def test_classical_local_fields_in_chunks(chunks, form):
    X = _patterns(4, 12, V=3)
    q = _queries(X, 3, 7)
    mem = ClassicalHopfield("hebbian", form=form).store(X, vocab_size=3)
    pos = torch.arange(7) % 12

    def run():
        f = mem.local_fields(q)
        f.set(pos, (f.x[torch.arange(7), pos] + 1) % 3)
        return f.at(pos), f.at(pos, gibbs=True)

    full, small = _both(chunks, run, 7)
    _equal(full, small)


# ---- modern Hopfield --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["stream", "split-sdpa"])
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_modern_paths_in_chunks(chunks, kernel, chunk_size):
    X = _patterns(8, 20)
    q = _queries(X, 2, 9)
    mem = ModernHopfield(beta=4 / math.sqrt(20), kernel=kernel, chunk_size=chunk_size).store(X, vocab_size=2)
    xi = mem.embed(q)
    for fn in (
        mem.sync_update,
        mem.scores,
        mem.gibbs_scores,
        mem.energy,
        lambda y: mem.continuous_step(mem.embed(y)),
        lambda y: mem.metastability(mem.embed(y)),
    ):
        full, small = _both(chunks, lambda fn=fn: fn(q), 9)
        _close(full, small)
    full, small = _both(chunks, lambda: mem.iterate(xi, max_iter=3).states, 9)
    _close(full, small)


def test_modern_local_fields_in_chunks(chunks):
    X = _patterns(6, 5, V=3)
    q = _queries(X, 3, 7)
    mem = ModernHopfield(beta=0.8).store(X, vocab_size=3)
    pos = torch.arange(7) % 5

    def run():
        f = mem.local_fields(q)
        f.set(pos, (f.x[torch.arange(7), pos] + 1) % 3)
        return f.at(pos), f.at(pos, gibbs=True)

    full, small = _both(chunks, run, 7)
    _close(full, small)


def test_split_attention_reference_in_chunks(chunks):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(11, 16, generator=g)
    x = torch.randn(50, 16, generator=g)
    full, small = _both(chunks, lambda: _attention.split_attention(q, x, 0.3, splits=4, backend="reference"), 11)
    _close(full, small)


# ---- the basin radius: queries built one corruption level at a time --------------------------------------------
def test_radius_rounds_hold_one_level_of_queries(monkeypatch):
    """A round of ``basin_radius`` evaluates many (pattern, r) pairs; its queries are corrupted one r at a time and
    retrieved in batches, so at no retrieval are more than two levels' queries alive, and the counts are those of
    one batch over all queries."""
    import amtheory.core.basins.radius as basins
    from amtheory.core.basins import basin_radius

    K, L, T = 3, 40, 6
    X = _patterns(K, L, seed=5)
    mem = DenseAM("poly", n=3).store(X, vocab_size=2)
    alive: list[weakref.ref] = []
    most = [0]
    total = [0]
    corrupt_orig, retrieve_orig = basins.corrupt, basins.retrieve

    def corrupt_spy(x0, **kw):
        c = corrupt_orig(x0, **kw)
        alive.append(weakref.ref(c.states))
        return c

    def retrieve_spy(memory_, q, **kw):
        most[0] = max(most[0], sum(r().shape[0] for r in alive if r() is not None))
        total[0] += q.shape[0]
        return retrieve_orig(memory_, q, **kw)

    monkeypatch.setattr(basins, "corrupt", corrupt_spy)
    monkeypatch.setattr(basins, "retrieve", retrieve_spy)
    g = torch.Generator().manual_seed(7)
    small = basin_radius(mem, X, n_trials=T, generator=g, n_boot=50, batch_size=5, max_radius=L // 2)
    assert total[0] > 4 * K * T, "the round is too small to show anything"
    assert most[0] <= 2 * K * T, f"{most[0]} query rows alive at a retrieval, expected at most two levels' {2 * K * T}"
    monkeypatch.setattr(basins, "corrupt", corrupt_orig)
    monkeypatch.setattr(basins, "retrieve", retrieve_orig)
    g = torch.Generator().manual_seed(7)
    whole = basin_radius(mem, X, n_trials=T, generator=g, n_boot=50, max_radius=L // 2)
    assert torch.equal(small.per_pattern, whole.per_pattern)
    pd.testing.assert_frame_equal(small.success, whole.success)
    assert small.median_ci == whole.median_ci


def _counts_corrupting_everything_first(memory_, targets, pairs, n_trials, dyn, max_steps, generator, batch_size):
    """The counts as computed by building every query of the round before the first retrieval (the reference)."""
    from amtheory.core.dynamics import retrieve

    x0s, qs, order = [], [], []
    for r in sorted({r for _, r in pairs}):
        idx = [i for i, p in enumerate(pairs) if p[1] == r]
        x0 = targets[torch.tensor([pairs[i][0] for i in idx])].repeat_interleave(n_trials, dim=0)
        x0s.append(x0)
        qs.append(corrupt(x0, vocab_size=2, n_changed=r, generator=generator).states)
        order += idx
    x0, q = torch.cat(x0s), torch.cat(qs)
    hits = torch.cat([
        (retrieve(memory_, q[i : i + batch_size], update=dyn, max_steps=max_steps, generator=generator).states
         == x0[i : i + batch_size]).all(-1)
        for i in range(0, q.shape[0], batch_size)
    ]).view(len(pairs), n_trials).sum(-1).tolist()  # fmt: skip
    out = [0] * len(pairs)
    for pos, i in enumerate(order):
        out[i] = hits[pos]
    return out


@pytest.mark.parametrize("dynamics", ["async", "glauber", "sync"])
def test_radius_round_draws_as_if_every_query_came_first(dynamics):
    """With dynamics that draw random numbers, the round's counts and the generator's final state equal those of
    corrupting every level before the first retrieval, at any batch size."""
    from amtheory.core.basins.radius import _success_counts
    from amtheory.core.dynamics import Async, Sync

    dyn = {"async": Async(), "glauber": Sync(beta=2.0), "sync": Sync()}[dynamics]
    X = _patterns(3, 24, seed=2)
    mem = ClassicalHopfield("hebbian").store(X, vocab_size=2)
    pairs = [(k, r) for r in (0, 3, 5, 9, 12) for k in range(3)][:-1]
    for batch in (4, 13, 1000):
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        got = _success_counts(mem, X, pairs, 5, dyn, 10, g1, batch, {})
        want = _counts_corrupting_everything_first(mem, X, pairs, 5, dyn, 10, g2, batch)
        assert got == want, batch
        assert torch.equal(g1.get_state(), g2.get_state())


# ---- the main job ------------------------------------------------------------------------------------------------
def test_radius_cell_batches_follow_the_budget(monkeypatch):
    """The Hopfield radius cells of the main job retrieve in batches the budget allows, with identical tables."""
    import amtheory.core.basins.radius as basins
    from amtheory.studies.hopfield import compare

    cell = compare.CompareCell(backend="poly3", n=32, load=0.1, n_trials=8)
    sizes: list[int] = []
    retrieve_orig = basins.retrieve

    def retrieve_spy(memory_, q, **kw):
        sizes.append(q.shape[0])
        return retrieve_orig(memory_, q, **kw)

    monkeypatch.setattr(basins, "retrieve", retrieve_spy)
    whole = compare.radius_cell(cell, torch.Generator(), "cpu")
    assert max(sizes) > 40
    sizes.clear()
    cap = 20 * compare.query_bytes(cell)
    with memory.memory_budget(cap):
        batched = compare.radius_cell(cell, torch.Generator(), "cpu")
    assert 0 < max(sizes) <= 20, sizes
    pd.testing.assert_frame_equal(whole, batched)
    sizes.clear()
    batched = compare.radius_cell(cell, torch.Generator(), "cpu", max_memory=cap)
    assert 0 < max(sizes) <= 20, sizes
    pd.testing.assert_frame_equal(whole, batched)


def test_run_takes_max_memory(monkeypatch, tmp_path):
    from amtheory import cli

    seen = {}
    from amtheory.studies import main_job

    monkeypatch.setattr(main_job, "_run_hopfield", lambda *a, **k: seen.setdefault("cap", memory.current_cap()))
    cli.main(["run", "--part", "hopfield", "--device", "cpu", "--max-memory", "3GiB", "--out", str(tmp_path)])
    assert seen["cap"] == 3 * 2**30
    for bad in ("lots", "0", "-5GB"):
        with pytest.raises(SystemExit, match=r"--max-memory: expected a positive number of bytes .* got"):
            cli.main(["run", "--part", "hopfield", "--device", "cpu", f"--max-memory={bad}", "--out", str(tmp_path)])


# ---- on a GPU: the measured peak stays within the budget --------------------------------------------------------
CUDA_CASES = [
    ("poly3", lambda: DenseAM("poly", n=3)),
    ("rectpoly3", lambda: DenseAM("rectpoly", n=3)),
    ("exp", lambda: DenseAM("exp", beta=1.0)),
    ("hebbian", lambda: ClassicalHopfield("hebbian")),
    ("storkey", lambda: ClassicalHopfield("storkey")),
    ("pseudoinverse", lambda: ClassicalHopfield("pseudoinverse")),
    ("modern", lambda: ModernHopfield(beta=4 / 32)),
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name, make", CUDA_CASES, ids=[c[0] for c in CUDA_CASES])
def test_cuda_sync_step_peak_within_cap(name, make):
    """N = 1024, K = 307 (the main job's largest cell), 16,384 queries: the extra memory one synchronous step
    takes, output included, stays within a 1 GiB cap, and the result equals the step under the default budget."""
    dev = torch.device("cuda")
    X = _patterns(307, 1024).to(dev)
    q = _queries(X.cpu(), 2, 16384, flips=200).to(dev)
    mem = make().store(X, vocab_size=2)
    full = mem.sync_update(q)
    del full
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    cap = base + 2**30
    with memory.memory_budget(cap):
        small = mem.sync_update(q)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(dev) - base
    assert peak <= 2**30, f"{name}: {peak / 2**20:.0f} MiB above the memory held before the call, cap 1024 MiB"
    full = mem.sync_update(q)
    assert torch.equal(full, small) if name != "modern" else (full != small).float().mean() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_cells_draw_corruptions_on_the_device(monkeypatch):
    """On CUDA the main job's cells corrupt with a CUDA generator (the CPU one would take minutes per cell at
    N = 1024), and a radius cell's table does not depend on the working-memory budget there either."""
    import amtheory.core.basins.radius as basins
    from amtheory.studies.hopfield import compare

    cell = compare.CompareCell(backend="poly3", n=256, load=0.05, n_trials=16)
    where: set[str] = set()
    corrupt_orig = basins.corrupt

    def corrupt_spy(x0, **kw):
        where.add(kw["generator"].device.type)
        return corrupt_orig(x0, **kw)

    monkeypatch.setattr(basins, "corrupt", corrupt_spy)
    whole = compare.radius_cell(cell, torch.Generator(), "cuda")
    assert where == {"cuda"}
    small = compare.radius_cell(cell, torch.Generator(), "cuda", max_memory=2 * 2**20)
    pd.testing.assert_frame_equal(whole, small)
    assert compare._corruption_generator(cell, "cpu").device.type == "cpu"
