"""The reverse chain: the step posterior against brute-force Bayes, the chain's bookkeeping, and retrieval with the
memorizing denoiser."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory import ClassicalHopfield, corrupt, retrieve
from amtheory.core.dynamics import argmax_keep
from amtheory.core.patterns import stored_and_unseen
from amtheory.diffusion.denoiser import Denoiser
from amtheory.diffusion.empirical import EmpiricalDenoiser
from amtheory.diffusion.sampler import (
    ReverseDiffusion,
    corrupt_forward,
    final_step,
    fixed_point_share,
    generate,
    posterior_step_probs,
)
from amtheory.diffusion.schedule import alpha
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import seeds, sizes

torch.set_num_threads(1)


class TableDenoiser(Denoiser):
    """A stand-in denoiser: fixed random logits per (position, current token), sharpened as t falls."""

    def __init__(self, seed: int = 0, **kw):
        super().__init__(**kw)
        self.seed = seed

    def _store(self, patterns):
        g = torch.Generator().manual_seed(self.seed)
        self.table_ = torch.randn(self.length_, self.vocab_size_, self.vocab_size_, generator=g, dtype=torch.float64)

    def _log_posterior(self, x_BL, t_B):
        L = x_BL.shape[1]
        logits = self.table_[torch.arange(L), x_BL] / t_B[:, None, None].sqrt()
        return torch.log_softmax(logits, -1)


def brute_force_step(x_theta, z, a_t, a_s, V):
    """sum_x0 q(x_t | x_s) q(x_s | x_0) x_theta(x_0) / q(x_t | x_theta), for every x_s, at one position."""
    a_ts = a_t / a_s
    out = torch.zeros(V, dtype=torch.float64)
    for xs in range(V):
        q_t_s = a_ts * (z == xs) + (1 - a_ts) / V
        for x0 in range(V):
            out[xs] += q_t_s * (a_s * (xs == x0) + (1 - a_s) / V) * x_theta[x0]
    evidence = sum((a_t * (z == x0) + (1 - a_t) / V) * x_theta[x0] for x0 in range(V))
    return out / evidence


@property_settings(max_examples=40)
@given(
    seed=seeds(),
    B=sizes(1, 4),
    L=sizes(1, 4),
    V=sizes(2, 8),
    t=st.floats(1e-3, 1.0),
    frac=st.floats(0.0, 0.999),
    sharp=st.sampled_from([0.0, 0.5, 2.0, 8.0]),
    per_query=st.booleans(),
)
def test_step_posterior_equals_brute_force_bayes(seed, B, L, V, t, frac, sharp, per_query):
    """One reverse step from t to s = frac t (s = 0 included), flat to sharp models, shared or per-query times: every
    position's step distribution is Bayes' rule summed over x_0 by hand."""
    g = torch.Generator().manual_seed(seed)
    logits = sharp * torch.randn(B, L, V, generator=g, dtype=torch.float64)
    x_t = torch.randint(0, V, (B, L), generator=g)
    if per_query:  # each query at its own time, the step ratio s / t kept
        ts = t * (0.05 + 0.95 * torch.rand(B, generator=g, dtype=torch.float64))
        a_t, a_s = alpha(ts), alpha(ts * frac)
        rows = [(float(a_t[b]), float(a_s[b])) for b in range(B)]
    else:
        a_t, a_s = float(alpha(t)), float(alpha(t * frac))
        rows = [(a_t, a_s)] * B
    p = posterior_step_probs(torch.log_softmax(logits, -1), x_t, a_t, a_s)
    assert p.dtype == torch.float64 and p.shape == (B, L, V)
    x_theta = torch.softmax(logits, -1)
    for b, (at, as_) in enumerate(rows):
        for i in range(L):
            ref = brute_force_step(x_theta[b, i], int(x_t[b, i]), at, as_, V)
            torch.testing.assert_close(p[b, i], ref, rtol=1e-10, atol=1e-12)


def test_final_step_is_the_mode_of_the_clean_posterior_and_keeps_unsure_tokens():
    V = 4
    a_t = float(alpha(0.3))
    # The model puts 0.4 on another token and 0.2 on the current one: the posterior weight of the current token,
    # 0.2 (V a_t + 1 - a_t), beats 0.4 (1 - a_t), so the token stays; the argmax of x_theta alone would change it.
    x_theta = torch.tensor([[[0.2, 0.4, 0.2, 0.2]]], dtype=torch.float64)
    x_t = torch.tensor([[0]])
    assert int(final_step(x_theta.log(), x_t, a_t)) == 0
    assert int(x_theta.argmax(-1)) == 1
    # A confident model does change it.
    sure = torch.tensor([[[0.001, 0.997, 0.001, 0.001]]], dtype=torch.float64)
    assert int(final_step(sure.log(), x_t, a_t)) == 1
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 5, V, generator=g, dtype=torch.float64) * 3
    z = torch.randint(0, V, (6, 5), generator=g)
    probs = posterior_step_probs(torch.log_softmax(logits, -1), z, a_t, 1.0)
    assert torch.equal(final_step(torch.log_softmax(logits, -1), z, a_t), probs.argmax(-1))


def stored_denoiser(V=8, L=32, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    P, U = stored_and_unseen(K, 64, L, vocab_size=V, generator=g)
    return EmpiricalDenoiser().store(P, vocab_size=V), P, U


def test_chain_shapes_steps_and_info():
    mem, P, _ = stored_denoiser()
    q = corrupt_forward(P, 0.25, 8, torch.Generator().manual_seed(0)).states
    r = retrieve(mem, q, update=ReverseDiffusion(t_start=0.25, n_steps=1000), generator=torch.Generator())
    assert r.states.shape == q.shape and r.states.dtype == torch.long
    assert torch.equal(r.steps, torch.full((4,), 250)) and bool(r.converged.all()) and not bool(r.cycled.any())
    assert r.info["dynamics"] == "reverse_diffusion" and r.info["sampler"] == "ancestral"
    assert r.info["n_steps"] == 1000 and r.info["grid"] == "global" and r.info["final"] == "posterior"
    assert r.info["t_start"] == 0.25 and r.info["denoiser"] == "EmpiricalDenoiser"
    local = ReverseDiffusion(t_start=0.25, n_steps=40, grid="local").run(mem, q, generator=None)
    assert torch.equal(local.steps, torch.full((4,), 40))
    # A start between grid points takes one partial step first.
    off = ReverseDiffusion(t_start=0.2505, n_steps=1000).run(mem, q, generator=torch.Generator())
    assert torch.equal(off.steps, torch.full((4,), 251))


def test_same_generator_same_chain_and_argmax_is_deterministic():
    mem = TableDenoiser(seed=3).store(torch.zeros(1, 6, dtype=torch.long), vocab_size=5)
    g0 = torch.Generator().manual_seed(9)
    q = torch.randint(0, 5, (12, 6), generator=g0)
    dyn = ReverseDiffusion(t_start=0.8, n_steps=50)
    a = dyn.run(mem, q, generator=torch.Generator().manual_seed(1)).states
    b = dyn.run(mem, q, generator=torch.Generator().manual_seed(1)).states
    c = dyn.run(mem, q, generator=torch.Generator().manual_seed(2)).states
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Chunking the batch does not change the draws.
    chunked = ReverseDiffusion(t_start=0.8, n_steps=50, batch_size=5).run(
        mem, q, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(chunked.states, a)
    am = ReverseDiffusion(t_start=0.8, n_steps=50, sampler="argmax")
    x1 = am.run(mem, q, generator=torch.Generator().manual_seed(1)).states
    x2 = am.run(mem, q, generator=torch.Generator().manual_seed(2)).states
    x3 = am.run(mem, q, generator=None).states
    assert torch.equal(x1, x2) and torch.equal(x1, x3)


def test_memorizing_denoiser_restores_stored_but_not_unseen_patterns():
    mem, P, U = stored_denoiser()
    g = torch.Generator().manual_seed(11)
    targets = {"stored": P.repeat(16, 1), "unseen": U}  # 64 queries each
    rate = {}
    for name, x0 in targets.items():
        c = corrupt_forward(x0, 0.25, 8, g)
        assert float(c.fraction_changed.mean()) > 0.15  # about 7 of 32 tokens changed
        r = retrieve(mem, c.states, update=ReverseDiffusion(t_start=0.25), generator=g)
        rate[name] = float((r.states == x0).all(-1).double().mean())
    assert rate["stored"] >= 0.9 and rate["unseen"] <= 0.1, rate


def test_fixed_points_are_the_stored_patterns():
    mem, P, U = stored_denoiser()
    assert bool(fixed_point_share(mem, P, n_steps=200).all())
    assert not bool(fixed_point_share(mem, U[:16], n_steps=200).any())
    assert bool(fixed_point_share(mem, P, n_steps=200, final="argmax").all())


def test_per_query_start_times_join_the_shared_grid():
    mem, P, _ = stored_denoiser()
    q = corrupt_forward(P, 0.5, 8, torch.Generator().manual_seed(5)).states
    starts = torch.tensor([0.1, 0.25, 0.5, 0.3333])
    both = ReverseDiffusion(t_start=starts, n_steps=100, sampler="argmax").run(mem, q)
    assert torch.equal(both.steps, torch.tensor([10, 25, 50, 34]))
    assert both.info["t_start"] == pytest.approx(starts.tolist())
    for b in range(4):
        one = ReverseDiffusion(t_start=float(starts[b]), n_steps=100, sampler="argmax").run(mem, q[b : b + 1])
        assert torch.equal(one.states[0], both.states[b]) and int(one.steps[0]) == int(both.steps[b])
    # Local grids: every query takes n_steps steps over its own [0, t_start].
    loc = ReverseDiffusion(t_start=starts, n_steps=7, grid="local", sampler="argmax").run(mem, q)
    assert torch.equal(loc.steps, torch.full((4,), 7))


def test_generate_from_the_memorizing_denoiser_gives_stored_patterns():
    mem, P, _ = stored_denoiser()
    x = generate(mem, 8, n_steps=100, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 32) and x.dtype == torch.long
    assert bool((x[:, None, :] == P[None]).all(-1).any(-1).all())
    y = generate(mem, 8, n_steps=100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


def test_corrupt_forward_is_the_bernoulli_kernel():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 6, (5, 40), generator=g)
    a = corrupt_forward(x0, 0.3, 6, torch.Generator().manual_seed(1))
    b = corrupt(x0, vocab_size=6, p=1 - float(alpha(0.3)), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.states, b.states) and torch.equal(a.changed, b.changed)
    assert torch.equal(corrupt_forward(x0, 0.0, 6, g).states, x0)
    per = corrupt_forward(x0, torch.tensor([0.0, 0.3, 0.0, 1.0, 0.3]), 6, torch.Generator().manual_seed(1))
    assert torch.equal(per.states[[0, 2]], x0[[0, 2]]) and bool(per.changed[3].any())
    assert torch.equal(per.changed, per.states != x0)


def test_bad_input():
    mem, P, _ = stored_denoiser()
    hop = ClassicalHopfield().store(torch.zeros(2, 8, dtype=torch.long), vocab_size=2)
    with pytest.raises(TypeError, match="memory"):
        ReverseDiffusion().run(hop, torch.zeros(1, 8, dtype=torch.long), generator=None)
    with pytest.raises(TypeError, match="memory"):
        retrieve(hop, torch.zeros(1, 8, dtype=torch.long), update=ReverseDiffusion())
    for bad in (0.0, 1.5, -0.2, float("nan"), [0.1, 0.0], torch.tensor([0.3, 1.2])):
        with pytest.raises(ValueError, match="t_start"):
            ReverseDiffusion(t_start=bad)
    with pytest.raises(ValueError, match="t_start"):
        ReverseDiffusion(t_start=[0.1, 0.2]).run(mem, P)
    with pytest.raises(ValueError, match="sampler"):
        ReverseDiffusion(sampler="gibbs")
    with pytest.raises(ValueError, match="grid"):
        ReverseDiffusion(grid="log")
    with pytest.raises(ValueError, match="n_steps"):
        ReverseDiffusion(n_steps=0)
    with pytest.raises(ValueError, match="queries"):
        ReverseDiffusion().run(mem, P[:, :-1])
    lx = torch.log_softmax(torch.zeros(1, 2, 8), -1)
    x_t = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="alpha_t"):
        posterior_step_probs(lx, x_t, 0.9, 0.5)
    with pytest.raises(ValueError, match="alpha_s"):
        posterior_step_probs(lx, x_t, 0.5, 1.5)
    with pytest.raises(ValueError, match="x_t"):
        posterior_step_probs(lx, torch.zeros(1, 3, dtype=torch.long), 0.5, 0.6)
    with pytest.raises(TypeError, match="log_x_theta"):
        posterior_step_probs(torch.zeros(1, 2, dtype=torch.long), x_t, 0.5, 0.6)
    with pytest.raises(ValueError, match="alpha_t"):
        final_step(lx, x_t, 1.0)
    with pytest.raises(ValueError, match="t"):
        corrupt_forward(P, 1.5, 8, None)
    with pytest.raises(TypeError, match="denoiser"):
        generate(hop, 2)


def test_a_start_below_the_first_grid_point_still_takes_the_final_step():
    mem, P, _ = stored_denoiser()
    q = P.clone()
    q[:, 0] = (q[:, 0] + 1) % 8
    r = ReverseDiffusion(t_start=torch.tensor([1e-7, 1e-4, 0.002, 0.5]), n_steps=1000).run(mem, q, generator=None)
    assert torch.equal(r.steps, torch.tensor([1, 1, 2, 500]))
    # The memorizing denoiser is sure at small t: one final step already restores the changed token.
    assert torch.equal(r.states, P)


# One step from t to t * frac of a model over V tokens whose logits are scaled by sharp.
_STEP_CASES = dict(
    seed=seeds(), V=sizes(2, 9), t=st.floats(0.01, 1.0), frac=st.floats(0.0, 0.999), sharp=st.floats(0.0, 30.0)
)


@property_settings(max_examples=60)
@given(**_STEP_CASES, per_query=st.booleans())
def test_step_mode_is_the_argmax_of_the_full_step_distribution(seed, V, t, frac, sharp, per_query):
    """The argmax chain's shortcut picks the token argmax_keep picks from the float64 step distribution, for sharp
    and flat models, exact ties (repeated logits) and tokens the model rules out (-inf)."""
    from amtheory.diffusion.sampler.steps import _step_mode, _step_probs

    g = torch.Generator().manual_seed(seed)
    B, L = 3, 5
    logits = (sharp * torch.randn(B, L, V, generator=g)).round()  # rounding makes exact ties common
    logits[0, 0, : V // 2] = float("-inf")  # a position where the model excludes half the vocabulary
    log_x = torch.log_softmax(logits, -1)
    x_t = torch.randint(0, V, (B, L), generator=g)
    s = t * frac
    if per_query:
        a_t, a_s = alpha(torch.full((B,), t, dtype=torch.float64)), alpha(torch.full((B,), s, dtype=torch.float64))
    else:
        a_t, a_s = float(alpha(t)), float(alpha(s))
    full = argmax_keep(_step_probs(log_x, x_t, a_t, a_s), x_t)
    assert torch.equal(_step_mode(log_x, x_t, a_t, a_s), full)


@property_settings(max_examples=30)
@given(**_STEP_CASES, ruled_out=st.booleans(), dtype=st.sampled_from([torch.bfloat16, torch.float32, torch.float64]))
def test_a_stochastic_step_draws_each_token_with_its_step_probability(seed, V, t, frac, sharp, ruled_out, dtype):
    """The ancestral chain's draw, given evenly spaced uniforms u = (k + 1/2) / M at one position, gives each token
    a share of the M draws equal to its probability under the float64 step distribution to within a few draws (one
    per end of each interval of u that maps to the token): the draw is the step distribution, for sharp and flat
    models, tokens the model rules out (never drawn), and bf16, float32 or float64 model output. The step reads
    the model's output as its log posterior up to a constant per position (rounded bf16 log-probabilities need not
    sum to 1), so the reference is the step distribution of that output normalized; a constant added to each
    position's output (logits rather than log-probabilities) changes no draw."""
    from amtheory.diffusion.sampler.steps import _step_probs, chain_update
    from amtheory.diffusion.schedule import one_minus_alpha

    g = torch.Generator().manual_seed(seed)
    M = 20000
    logits = sharp * torch.randn(2, V, generator=g, dtype=torch.float64)
    if ruled_out:
        logits[:, : V // 2] = float("-inf")
    log_x = torch.log_softmax(logits, -1).to(dtype)
    z = torch.randint(0, V, (2,), generator=g)
    t_from, t_to = torch.full((2,), t, dtype=torch.float64), torch.full((2,), t * frac, dtype=torch.float64)
    normalized = torch.log_softmax(log_x.double(), -1)
    p = _step_probs(normalized[:, None], z[:, None], alpha(t_from), alpha(t_to), one_minus_alpha(t_from - t_to),
                    one_minus_alpha(t_to))[:, 0]  # fmt: skip
    u = ((torch.arange(M, dtype=torch.float64) + 0.5) / M).to(torch.float32).expand(2, M)
    drawn = chain_update(log_x[:, None].expand(2, M, V), z[:, None].expand(2, M), t_from, t_to, final="argmax",
                         u=u, source="test")  # fmt: skip
    if dtype != torch.bfloat16:  # a shifted bf16 output is rounded again, to a coarser grid
        shift = torch.tensor([[7.5], [-3.25]], dtype=log_x.dtype)
        as_logits = chain_update((log_x + shift)[:, None].expand(2, M, V), z[:, None].expand(2, M), t_from, t_to,
                                 final="argmax", u=u, source="test")  # fmt: skip
        assert (as_logits != drawn).sum() <= 2, int((as_logits != drawn).sum())
    for row in range(2):
        counts = torch.bincount(drawn[row], minlength=V).double()
        assert (counts - M * p[row]).abs().max() <= 6, (counts.tolist(), (M * p[row]).tolist())
        assert counts[p[row] == 0].sum() == 0


@property_settings(max_examples=40)
@given(
    seed=seeds(),
    V=sizes(2, 9),
    t=st.floats(1e-4, 1.0),
    sharp=st.floats(0.0, 30.0),
    per_query=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_final_mode_is_the_argmax_of_the_full_final_scores(seed, V, t, sharp, per_query, dtype):
    """The chain's last step picks the token argmax_keep picks from the float64 final scores, for sharp and flat
    models, exact ties (repeated logits) and tokens the model rules out (-inf)."""
    from amtheory.diffusion.sampler.steps import _final_mode, _final_scores
    from amtheory.diffusion.schedule import one_minus_alpha

    g = torch.Generator().manual_seed(seed)
    B, L = 3, 5
    logits = (sharp * torch.randn(B, L, V, generator=g)).round()
    logits[0, 0, : V // 2] = float("-inf")
    log_x = torch.log_softmax(logits.to(dtype), -1)
    x_t = torch.randint(0, V, (B, L), generator=g)
    tt = torch.full((B,), t, dtype=torch.float64) if per_query else torch.tensor(t, dtype=torch.float64)
    a_t, om_t = alpha(tt), one_minus_alpha(tt)
    full = argmax_keep(_final_scores(log_x, x_t, a_t, om_t), x_t)
    assert torch.equal(_final_mode(log_x, x_t, a_t, om_t), full)


def test_a_stochastic_step_forms_no_float64_tensor_over_the_vocabulary():
    """A drawn step reads the model's probabilities in their own precision: positions that stay (here every one:
    u = 0 falls in the current token's part) need no float64 tensor over the vocabulary, which for 30 models of
    64 x 64 queries at V = 8,192 would be 8 GiB a step (written, then read back, to sum each row)."""
    from torch.profiler import ProfilerActivity, profile

    from amtheory.diffusion.sampler.steps import chain_update

    g = torch.Generator().manual_seed(0)
    B, L, V = 3, 4, 500
    log_x = torch.log_softmax(torch.randn(B, L, V, generator=g), -1)
    x_t = torch.randint(0, V, (B, L), generator=g)
    t_from, t_to = torch.full((B,), 0.5, dtype=torch.float64), torch.full((B,), 0.4, dtype=torch.float64)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = chain_update(log_x, x_t, t_from, t_to, final="posterior", u=torch.zeros(B, L), source="test")
    assert torch.equal(out, x_t)  # u = 0: every position keeps its token
    # The probabilities themselves (float32, 4 bytes an entry) are allowed; a float64 copy (8 bytes) is not.
    allocated = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
    assert allocated and max(allocated) < B * L * V * 8, sorted(allocated)[-3:]
