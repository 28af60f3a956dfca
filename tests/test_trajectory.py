"""The denoiser's prediction along the reverse chain from t = 1: the sampler's observation hook, the entropy and
the top-two gap of p(x_0 | x_t) per step, and the memorizing denoiser's collapse as t -> 0."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from amtheory.core.entropy import entropy_from_probs
from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.empirical import EmpiricalDenoiser
from amtheory.diffusion.sampler import ReverseDiffusion, generate
from amtheory.diffusion.trajectory import prediction_gap, prediction_trajectory, trajectory_summary

torch.set_num_threads(1)

COLUMNS = {"step", "t", "entropy", "entropy_se", "gap", "gap_se", "n_sequences"}


class TinyNet(torch.nn.Module):
    """forward(x_BL, sigma_B) -> logits_BLV: token and position embeddings plus time, one tanh layer, a head."""

    def __init__(self, vocab_size: int, length: int, d: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Parameter(torch.randn(vocab_size, d, generator=g))
        self.pos = torch.nn.Parameter(torch.randn(length, d, generator=g))
        self.time = torch.nn.Parameter(torch.randn(d, generator=g))
        self.head = torch.nn.Parameter(torch.randn(d, vocab_size, generator=g))

    def forward(self, x, sigma):
        return 2.0 * torch.tanh(self.emb[x] + self.pos + sigma[:, None, None] * self.time) @ self.head


def memorizer(K=3, L=6, V=8, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randint(0, V, (K, L), generator=g)
    return EmpiricalDenoiser(**kw).store(patterns, vocab_size=V), patterns


# ---------------------------------------------------------------------------------------------------------------
# The hook in the sampler
# ---------------------------------------------------------------------------------------------------------------
def test_observing_the_chain_leaves_generation_unchanged_and_sees_every_step():
    emp, _ = memorizer()
    seen = []

    def observe(step, rows, t, x_t, log_x):
        seen.append((step, rows.clone(), t.clone(), x_t.clone(), log_x.shape))

    plain = generate(emp, 5, n_steps=8, generator=torch.Generator().manual_seed(3))
    watched = generate(emp, 5, n_steps=8, generator=torch.Generator().manual_seed(3), observe=observe)
    assert torch.equal(plain, watched)
    # One call per reverse step (all 5 queries fit one chunk): t = 1, 7/8, ..., 1/8, the last the final step.
    assert [s for s, *_ in seen] == list(range(8))
    for k, (_, rows, t, x_t, shape) in enumerate(seen):
        assert torch.equal(rows, torch.arange(5))
        torch.testing.assert_close(t.cpu(), torch.full((5,), (8 - k) / 8, dtype=torch.float64))
        assert x_t.shape == (5, 6) and shape == (5, 6, 8)
    # The state handed over at step k + 1 is the chain's state after step k; the last step's output is the sample.
    assert not torch.equal(seen[0][3], seen[-1][3])


def test_observe_sees_every_query_once_per_step_across_chunks():
    emp, _ = memorizer()
    calls = []
    dyn = ReverseDiffusion(t_start=1.0, n_steps=4, grid="global", batch_size=2)
    x = torch.randint(0, 8, (5, 6), generator=torch.Generator().manual_seed(1))
    dyn.run(emp, x, generator=torch.Generator().manual_seed(0), observe=lambda s, r, *_: calls.append((s, r.tolist())))
    for k in range(4):
        assert sorted(i for s, rows in calls if s == k for i in rows) == list(range(5))


def test_observe_must_be_callable():
    emp, _ = memorizer()
    with pytest.raises(TypeError, match="observe"):
        generate(emp, 2, n_steps=2, observe="entropy")


# ---------------------------------------------------------------------------------------------------------------
# The gap and the table
# ---------------------------------------------------------------------------------------------------------------
def test_prediction_gap_is_the_top_two_difference():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(prediction_gap(p.log()), torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="log_x"):
        prediction_gap(torch.zeros(3, 1))


def test_trajectory_summary_is_the_mean_and_standard_error_over_sequences():
    rows = pd.DataFrame(
        {"step": [0, 0, 0, 1, 1, 1], "t": [1.0] * 3 + [0.5] * 3, "sequence": [0, 1, 2] * 2,
         "entropy": [1.0, 2.0, 4.0, 0.0, 0.0, 0.3], "gap": [0.1, 0.2, 0.3, 0.9, 0.9, 0.9]}
    )  # fmt: skip
    s = trajectory_summary(rows)
    assert COLUMNS <= set(s.columns) and list(s["step"]) == [0, 1]
    assert s["entropy"].iloc[0] == pytest.approx(7 / 3)
    assert s["entropy_se"].iloc[0] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1) / math.sqrt(3))
    assert s["gap_se"].iloc[1] == pytest.approx(0.0)
    assert (s["n_sequences"] == 3).all()
    with pytest.raises(ValueError, match="rows"):
        trajectory_summary(rows[rows["sequence"] == 0])


def test_memorizing_denoiser_entropy_collapses_as_t_goes_to_0():
    emp, patterns = memorizer(K=3, L=6, V=8)
    df = prediction_trajectory(emp, 16, n_steps=20, generator=torch.Generator().manual_seed(0))
    assert COLUMNS <= set(df.columns)
    # 20 chain steps (t = 1 down to 1/20), then the prediction on the samples themselves at t_end.
    assert len(df) == 21 and list(df["step"]) == list(range(21))
    np.testing.assert_allclose(df["t"].to_numpy()[:20], (20 - np.arange(20)) / 20)
    assert df["t"].iloc[-1] == pytest.approx(1e-5)
    # At t = 1 (alpha = 1e-3) the exact posterior weights the 3 stored blocks almost equally, so each position's
    # prediction is the frequency of the tokens the blocks put there.
    freq = torch.stack([torch.bincount(patterns[:, i], minlength=8) for i in range(6)]).double() / 3
    expected = float(entropy_from_probs(freq).mean())
    assert df["entropy"].iloc[0] == pytest.approx(expected, abs=0.02)
    assert df["entropy"].iloc[0] > 0.3
    # As t -> 0 the chain has settled on one stored block: the prediction is that block, with no entropy left.
    assert df["entropy"].iloc[-1] < 1e-3 and df["gap"].iloc[-1] > 0.999
    assert df["entropy"].iloc[-1] < df["entropy"].iloc[0] and df["gap"].iloc[-1] > df["gap"].iloc[0]
    assert (df["entropy_se"] >= 0).all() and np.isfinite(df[["entropy_se", "gap_se"]].to_numpy()).all()
    assert (df["n_sequences"] == 16).all()


def test_per_sequence_rows_summarize_to_the_table_and_positions_select_columns():
    emp, _ = memorizer()
    kw = dict(n_steps=5, t_end=1e-4)
    rows = prediction_trajectory(emp, 4, per_sequence=True, generator=torch.Generator().manual_seed(2), **kw)
    assert {"step", "t", "sequence", "entropy", "gap"} <= set(rows.columns) and len(rows) == 6 * 4
    table = prediction_trajectory(emp, 4, generator=torch.Generator().manual_seed(2), **kw)
    pd.testing.assert_frame_equal(trajectory_summary(rows), table)
    inner = torch.zeros(6, dtype=torch.bool)
    inner[1:-1] = True
    sub = prediction_trajectory(emp, 4, positions=inner, generator=torch.Generator().manual_seed(2), **kw)
    assert not np.allclose(sub["entropy"], table["entropy"])


def test_trained_network_backend_gives_finite_statistics():
    V, L = 7, 5
    lm = UniformDiffusionLM(TinyNet(V, L), vocab_size=V, batch_size=3)
    lm.store(torch.randint(0, V, (2, L), generator=torch.Generator().manual_seed(0)))
    df = prediction_trajectory(lm, 5, n_steps=6, generator=torch.Generator().manual_seed(1))
    assert len(df) == 7 and COLUMNS <= set(df.columns)
    vals = df[["entropy", "entropy_se", "gap", "gap_se"]].to_numpy()
    assert np.isfinite(vals).all() and (vals >= 0).all()
    assert (df["entropy"] <= math.log(V) + 1e-9).all() and (df["gap"] <= 1).all()


def test_bad_input_names_the_argument():
    emp, _ = memorizer()
    with pytest.raises(TypeError, match="denoiser"):
        prediction_trajectory(object(), 4)
    with pytest.raises(ValueError, match="n"):
        prediction_trajectory(emp, 1)
    with pytest.raises(ValueError, match="positions"):
        prediction_trajectory(emp, 4, n_steps=2, positions=torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="positions"):
        prediction_trajectory(emp, 4, n_steps=2, positions=torch.zeros(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="t_end"):
        prediction_trajectory(emp, 4, n_steps=2, t_end=0.0)


def test_the_trajectory_holds_no_float64_table_of_the_prediction():
    # Recorded at every reverse step for thirty models of a measured group, the entropy and the gap are read off the
    # float32 log posterior [n, L, V] (float64 sums only): a float64 copy of it took most of the time of the
    # measurement's steps (benchmarks/h100_memorization_gpu.log, "trajectory").
    from torch.profiler import ProfilerActivity, profile

    V, n, L = 8192, 16, 64
    lm = UniformDiffusionLM(TinyNet(V, L), vocab_size=V, use_ema=False)
    lm.store(torch.randint(0, V, (2, L), generator=torch.Generator().manual_seed(0)))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        rows = prediction_trajectory(lm, n, n_steps=3, generator=torch.Generator().manual_seed(1), per_sequence=True)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest <= n * L * V * 4, f"one allocation of {largest / 2**20:.1f} MiB"
    assert rows["entropy"].between(0.0, float(np.log(V)) + 1e-9).all() and rows["gap"].between(0.0, 1.0).all()
