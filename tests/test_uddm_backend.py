"""The network-backed denoiser (with a small stand-in network) and the distance from the memorization limit."""

import math
import sys
import types

import pytest
import torch

from amtheory import NotStoredError, retrieve
from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.distance import kl_from_memorization, per_token_kl
from amtheory.diffusion.empirical import EmpiricalDenoiser
from amtheory.diffusion.sampler import ReverseDiffusion, corrupt_forward, fixed_point_share, generate
from amtheory.diffusion.schedule import alpha
from amtheory.testing.conformance import CHECKS, run_check
from amtheory.testing.registry import ConformanceCase

torch.set_num_threads(1)


class StandInNet(torch.nn.Module):
    """forward(x_BL, sigma_B) -> logits_BLV: embedding + positions + time, one tanh layer, dropout, a head."""

    def __init__(self, vocab_size: int, *, out_vocab: int | None = None, max_len: int = 16, d: int = 12, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Parameter(torch.randn(vocab_size, d, generator=g))
        self.pos = torch.nn.Parameter(torch.randn(max_len, d, generator=g))
        self.time = torch.nn.Parameter(torch.randn(d, generator=g))
        self.head = torch.nn.Parameter(torch.randn(d, out_vocab or vocab_size, generator=g))
        self.drop = torch.nn.Dropout(0.5)
        self.sigmas: list[torch.Tensor] = []

    def forward(self, x, sigma):
        self.sigmas.append(sigma.detach().clone())
        h = torch.tanh(self.emb[x] + self.pos[: x.shape[1]] + sigma[:, None, None] * self.time)
        return 3.0 * self.drop(h) @ self.head


def make_lm(V=5, **kw):
    return UniformDiffusionLM(StandInNet(V), vocab_size=V, **kw)


def test_log_posterior_is_the_log_softmax_of_the_network():
    g = torch.Generator().manual_seed(0)
    net = StandInNet(5)
    lm = UniformDiffusionLM(net, vocab_size=5, use_ema=False)
    assert not net.training, "wrapping puts the network in eval mode (no dropout)"
    P = torch.randint(0, 5, (3, 8), generator=g)
    lm.store(P)
    x = torch.randint(0, 5, (4, 8), generator=g)
    t = torch.tensor([0.1, 0.5, 1.0, 1e-5])
    lp = lm.log_posterior(x, t)
    assert lp.shape == (4, 8, 5) and lp.dtype == torch.float32
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(4, 8))
    sig = net.sigmas[-1]
    torch.testing.assert_close(sig.double(), -torch.log(alpha(t.double())), rtol=1e-6, atol=1e-9)
    with torch.no_grad():
        ref = torch.log_softmax(net(x, sig), -1)
    torch.testing.assert_close(lp, ref)
    # Deterministic (dropout off) and independent of the batching.
    torch.testing.assert_close(lm.log_posterior(x, t), lp, rtol=0, atol=0)
    torch.testing.assert_close(make_lm(batch_size=3).store(P).log_posterior(x, t), lp, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lm.scores(x), lm.log_posterior(x, lm.t_eval))
    torch.testing.assert_close(lm.conditionals(x, t=0.5), lm.log_posterior(x, 0.5).exp())


def test_describe_records_the_weights():
    assert make_lm(use_ema=True).describe()["weights"] == "ema"
    assert make_lm(use_ema=False).describe()["weights"] == "raw"
    d = make_lm().describe()
    assert d["weights"] == "unspecified" and d["checkpoint"] is None and d["denoiser"] == "UniformDiffusionLM"


def test_from_checkpoint_uses_load_model_and_ema_by_default(monkeypatch, tmp_path):
    calls = []

    def load_model(path, *, ema=True, device="cpu"):
        calls.append((path, ema, device))
        loaded = "ema" if ema and "no-ema" not in str(path) else "model"
        return StandInNet(6, seed=1), types.SimpleNamespace(vocab_size=6), {"step": 1234, "weights_loaded": loaded}

    fake = types.ModuleType("amtheory.diffusion.checkpoint")
    fake.load_model = load_model
    monkeypatch.setitem(sys.modules, "amtheory.diffusion.checkpoint", fake)
    lm = UniformDiffusionLM.from_checkpoint(tmp_path, device="cpu")
    assert calls == [(tmp_path, True, "cpu")]
    assert lm.describe() == {
        "denoiser": "UniformDiffusionLM",
        "t_eval": 1e-5,
        "weights": "ema",
        "checkpoint": str(tmp_path),
        "step": 1234,
    }
    raw = UniformDiffusionLM.from_checkpoint(tmp_path, ema=False)
    assert raw.weights_ == "raw" and calls[-1][1] is False
    # A checkpoint without an EMA copy: the raw weights are loaded, and recorded as such.
    fallback = UniformDiffusionLM.from_checkpoint(tmp_path / "no-ema")
    assert calls[-1][1] is True and fallback.weights_ == "raw"
    x = torch.randint(0, 6, (2, 5), generator=torch.Generator().manual_seed(0))
    r = retrieve(raw.store(x), x, update=ReverseDiffusion(t_start=0.1, n_steps=20), generator=torch.Generator())
    assert r.info["weights"] == "raw" and r.info["step"] == 1234 and r.info["denoiser"] == "UniformDiffusionLM"


def test_retrieval_generation_and_fixed_points_run_on_the_network():
    g = torch.Generator().manual_seed(2)
    lm = make_lm(batch_size=4).store(torch.randint(0, 5, (6, 10), generator=g))
    q = corrupt_forward(lm.patterns_, 0.25, 5, g).states
    r = retrieve(lm, q, update=ReverseDiffusion(t_start=0.25, n_steps=100), generator=g)
    assert r.states.shape == (6, 10) and torch.equal(r.steps, torch.full((6,), 25))
    x = generate(lm, 3, n_steps=20, generator=g)
    assert x.shape == (3, 10) and bool(((x >= 0) & (x < 5)).all())
    fp = fixed_point_share(lm, lm.patterns_, n_steps=20)
    assert fp.shape == (6,) and fp.dtype == torch.bool


def test_vocab_size_mismatch_is_rejected():
    P = torch.zeros(2, 4, dtype=torch.long)
    wrong_net = UniformDiffusionLM(StandInNet(5, out_vocab=7), vocab_size=5)
    with pytest.raises(ValueError, match="vocab_size"):
        wrong_net.store(P)
    with pytest.raises(ValueError, match="vocab_size"):
        make_lm(5).store(P, vocab_size=6)
    with pytest.raises(ValueError, match="patterns"):
        make_lm(5).store(torch.full((2, 4), 5))
    with pytest.raises(NotStoredError):
        make_lm(5).log_posterior(P, 0.5)
    with pytest.raises(TypeError, match="model"):
        UniformDiffusionLM(lambda x, s: x, vocab_size=5)
    with pytest.raises(ValueError, match="t_B"):
        make_lm(5).store(P).log_posterior(P, 0.0)


LM_CASE = ConformanceCase("uddm-stand-in", lambda: make_lm(3), vocab_sizes=(3,))


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_conformance(check):
    run_check(check, LM_CASE, seed=1234)


# ---- distance from the memorization limit ------------------------------------------------------------------------
def test_kl_is_zero_against_itself_and_positive_against_others():
    g = torch.Generator().manual_seed(3)
    V, L = 4, 10
    P = torch.randint(0, V, (6, L), generator=g)
    emp = EmpiricalDenoiser().store(P, vocab_size=V)
    ts = (0.05, 0.25, 0.5)
    same = kl_from_memorization(emp, emp, P, ts=ts, generator=torch.Generator().manual_seed(0))
    assert list(same.columns) == ["sequence", "t", "fraction_changed", "kl", "kl_changed", "argmax_differs"]
    assert len(same) == 6 * len(ts) and sorted(set(same["t"])) == list(ts)
    assert (same["kl"].abs() < 1e-12).all() and (same["argmax_differs"] == 0).all()
    # A denoiser that memorized a larger set: its support covers the smaller one's, so the KL is finite and > 0.
    more = EmpiricalDenoiser().store(torch.cat([P, torch.randint(0, V, (6, L), generator=g)]), vocab_size=V)
    far = kl_from_memorization(more, emp, P, ts=ts, generator=torch.Generator().manual_seed(0), batch_size=4)
    assert (far["kl"] > 0).all() and far["kl"].map(math.isfinite).all()
    # The same seed gives the same inputs: the fraction changed matches the first table row by row.
    assert (far["fraction_changed"].to_numpy() == same["fraction_changed"].to_numpy()).all()
    lm = make_lm(V).store(P)
    net = kl_from_memorization(lm, emp, P, ts=ts, generator=torch.Generator().manual_seed(0))
    assert (net["kl"] > 0.01).all() and (net["argmax_differs"] > 0).any()


def test_per_token_kl_against_a_direct_sum():
    g = torch.Generator().manual_seed(5)
    lp = torch.log_softmax(torch.randn(2, 3, 4, generator=g, dtype=torch.float64), -1)
    lq = torch.log_softmax(torch.randn(2, 3, 4, generator=g, dtype=torch.float64), -1)
    ref = (lp.exp() * (lp - lq)).sum(-1)
    torch.testing.assert_close(per_token_kl(lp, lq), ref)
    lp0 = lp.clone()
    lp0[..., 0] = float("-inf")  # p = 0 terms vanish even where q is 0 as well
    lq0 = lq.clone()
    lq0[..., 0] = float("-inf")
    assert bool(torch.isfinite(per_token_kl(lp0, lq0)).all())
    assert bool(torch.isinf(per_token_kl(lq, lq0)).all())


def test_per_token_kl_holds_a_bounded_part_of_the_vocabulary_table_at_once():
    # Thirty models measured side by side each compute this KL: its float64 work must come in parts of at most
    # 2**22 entries (32 MiB), not in copies of the whole [rows, L, V] table (64 MiB each here), and give the same sums.
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(16, 64, 8192, generator=g), -1)
    lq = torch.log_softmax(torch.randn(16, 64, 8192, generator=g), -1)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        kl = per_token_kl(lp, lq)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest <= 2**22 * 8, f"one allocation of {largest / 2**20:.1f} MiB"
    torch.testing.assert_close(kl, (lp.double().exp() * (lp.double() - lq.double())).sum(-1))


def test_distance_bad_input():
    P = torch.zeros(2, 4, dtype=torch.long)
    emp = EmpiricalDenoiser().store(P, vocab_size=3)
    with pytest.raises(TypeError, match="empirical"):
        kl_from_memorization(emp, make_lm(3).store(P), P)
    with pytest.raises(ValueError, match="denoiser"):
        kl_from_memorization(EmpiricalDenoiser().store(P, vocab_size=4), emp, P)
    with pytest.raises(ValueError, match="ts"):
        kl_from_memorization(emp, emp, P, ts=(0.0,))
    with pytest.raises(ValueError, match="x0"):
        kl_from_memorization(emp, emp, P[:, :3])


def _largest_allocation(fn):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    return out, max(e.cpu_memory_usage for e in prof.events())


def _wide_vocabulary_lm(seed: int):
    """A generator, a stand-in denoiser over the memorization study's 8,192 ids storing two 64-token blocks, and
    the (V, B, L) of the queries the entropy tests ask about."""
    g = torch.Generator().manual_seed(seed)
    V, B, L = 8192, 16, 64
    lm = UniformDiffusionLM(StandInNet(V, max_len=L), vocab_size=V, use_ema=False)
    lm.store(torch.randint(0, V, (2, L), generator=g))
    return g, lm, (V, B, L)


def test_denoiser_entropy_is_the_conditional_entropy_without_a_float64_table():
    # The memorization study measures this entropy for thirty models at once, beside other jobs on the card (an H100
    # ran out of memory in the float64 Gibbs path): the log posterior [B, L, V] in float32 is the largest table it
    # may hold; its float64 work comes in parts of at most 2**22 entries.
    from amtheory.core.entropy import conditional_entropy

    g, lm, (V, B, L) = _wide_vocabulary_lm(0)
    x = torch.randint(0, V, (B, L), generator=g)
    h, largest = _largest_allocation(lambda: lm.entropy(x, t=0.3))
    assert largest <= B * L * V * 4, f"one allocation of {largest / 2**20:.1f} MiB"
    assert h.shape == (B, L) and h.dtype == torch.float32
    ref = conditional_entropy(lm, x, beta=1.0, conditionals_kwargs={"t": 0.3})
    torch.testing.assert_close(h, ref, atol=2e-5, rtol=1e-5)
    # A position whose posterior rules tokens out (log p = -inf) still has a finite entropy; a non-finite one raises.
    from amtheory.core.entropy import entropy_from_log_probs

    lp = torch.log_softmax(torch.randn(2, 3, 5, generator=g), -1)
    lp[0, 0, :4] = float("-inf")
    lp[0, 0, 4] = 0.0
    got = entropy_from_log_probs(lp)
    assert float(got[0, 0]) == 0.0 and bool(torch.isfinite(got).all())
    torch.testing.assert_close(got[1], -(lp[1].double().exp() * lp[1].double()).sum(-1))
    lp[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="log_p"):
        entropy_from_log_probs(lp)


def test_study_token_entropy_holds_no_float64_table():
    # The recovery measurement's per-token entropy of recovered and unrecovered tokens (the measurement that ran out of
    # memory on an H100) goes through the denoiser's entropy.
    import numpy as np
    import pandas as pd

    from amtheory.studies.memorization import DataSpec
    from amtheory.studies.memorization.token_entropy import entropy_by_outcome

    g, lm, (V, B, L) = _wide_vocabulary_lm(1)
    x0 = torch.randint(5, V, (B, L), generator=g)
    xq = torch.where(torch.rand(B, L, generator=g) < 0.5, torch.randint(5, V, (B, L), generator=g), x0)
    df = pd.DataFrame({"t": 0.25, "x0": list(x0.numpy()), "xq": list(xq.numpy()), "xf": list(x0.numpy())})
    out, largest = _largest_allocation(lambda: entropy_by_outcome(lm, df, DataSpec("embedded", L, V), "cpu", B))
    assert largest <= B * L * V * 4, f"one allocation of {largest / 2**20:.1f} MiB"
    h = lm.entropy(xq, t=0.25).double()
    changed = (xq != x0).numpy()
    want = np.array([h[i][changed[i]].mean().item() for i in range(B)])
    np.testing.assert_allclose(out["entropy_recovered"].to_numpy(), want, rtol=1e-6)
