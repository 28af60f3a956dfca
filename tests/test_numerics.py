"""Accepted values give right answers or clear errors: Gibbs dynamics at any inverse temperature, the diffusion
posterior and sampler at times down to the smallest float, vocabularies too large for memory, and models whose
outputs are not finite."""

import math
import re
import sys

import pytest
import torch

from amtheory.backends.classical import ClassicalHopfield
from amtheory.backends.dense import DenseAM
from amtheory.backends.modern import ModernHopfield
from amtheory.core.basins import basin_radius
from amtheory.core.corruption import corrupt
from amtheory.core.dynamics import Async, Sync, retrieve, sample_categorical
from amtheory.core.entropy import conditional_entropy, entropy_from_probs
from amtheory.core.interface import AssociativeMemory
from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.empirical import EmpiricalDenoiser
from amtheory.diffusion.sampler import ReverseDiffusion, generate, posterior_step_probs
from amtheory.diffusion.schedule import EPS, sigma
from amtheory.testing.registry import REGISTRY

torch.set_num_threads(1)

FLOAT_MAX = sys.float_info.max
HUGE_BETAS = (1e30, 1e300, FLOAT_MAX)
CASES = [(name, V) for name, case in REGISTRY.items() for V in case.vocab_sizes]
NONFINITE = r"NaN|inf"


def stored(name: str, V: int, seed: int = 0):
    case = REGISTRY[name]
    g = torch.Generator().manual_seed(seed)
    P = torch.randint(0, V, (case.n_patterns, case.length), generator=g)
    x = torch.randint(0, V, (5, case.length), generator=g)
    return case.make().store(P, vocab_size=V), x


def argmax_set(scores: torch.Tensor) -> torch.Tensor:
    s = scores.double()
    return s == s.amax(-1, keepdim=True)


# ---- the Gibbs dynamics at huge inverse temperatures --------------------------------------------------------------


@pytest.mark.parametrize("beta", HUGE_BETAS)
@pytest.mark.parametrize(("name", "V"), CASES)
def test_sync_at_huge_beta_draws_only_tokens_of_top_gibbs_score(name, V, beta):
    mem, x = stored(name, V)
    top = argmax_set(mem.gibbs_scores(x))
    new = Sync(beta=beta).step(mem, x, torch.Generator().manual_seed(1))
    assert bool(top.gather(-1, new.unsqueeze(-1)).all()), "a token below the top Gibbs score was drawn"


@pytest.mark.parametrize("beta", HUGE_BETAS)
@pytest.mark.parametrize(("name", "V"), CASES)
def test_async_at_huge_beta_draws_only_tokens_of_top_gibbs_score_at_every_flip(name, V, beta):
    mem, x = stored(name, V)
    new = Async(beta=beta, order="sequential").step(mem, x, torch.Generator().manual_seed(1))
    # Replay the sweep: position k was drawn from the fields of the state with positions < k already updated.
    fields = mem.local_fields(x)
    rows = torch.arange(x.shape[0])
    for k in range(x.shape[1]):
        pos = torch.full((x.shape[0],), k)
        top = argmax_set(fields.at(pos, gibbs=True))
        assert bool(top[rows, new[:, k]].all()), f"position {k}: a token below the top Gibbs score was drawn"
        fields.set(pos, new[:, k])


@pytest.mark.parametrize("beta", HUGE_BETAS)
@pytest.mark.parametrize(("name", "V"), CASES)
def test_conditionals_at_huge_beta_are_uniform_on_the_top_gibbs_scores(name, V, beta):
    mem, x = stored(name, V)
    top = argmax_set(mem.gibbs_scores(x)).double()
    p = mem.conditionals(x, beta=beta)
    torch.testing.assert_close(p.double(), top / top.sum(-1, keepdim=True), rtol=0, atol=1e-7)


def test_a_gibbs_draw_never_picks_a_token_of_zero_probability():
    # u = 0 lands on the cumulative sum's first entry, which is 0 when token 0 has probability 0.
    logits = torch.tensor([[float("-inf"), 0.0, 1.0]])
    assert int(sample_categorical(logits, torch.zeros(1))) != 0


def test_dense_exponential_memory_rejects_a_beta_whose_energies_overflow():
    with pytest.raises(ValueError, match="beta"):
        DenseAM("exp", beta=FLOAT_MAX).store(torch.zeros(2, 12, dtype=torch.long), vocab_size=2)


@pytest.mark.parametrize("beta", [1e30, FLOAT_MAX])
@pytest.mark.parametrize("V", [2, 3])
def test_modern_network_at_huge_beta_retrieves_the_nearest_pattern_or_says_why_not(V, beta):
    g = torch.Generator().manual_seed(3)
    P = torch.randint(0, V, (3, 16), generator=g)
    q = P.clone()
    q[:, :2] = (q[:, :2] + 1) % V  # two tokens off: the nearest stored pattern is its own (others ~ 16 / V off)
    d = (q[:, None, :] != P[None]).sum(-1)
    assert bool((d.sort(-1).values[:, 0] < d.sort(-1).values[:, 1]).all())
    try:
        mem = ModernHopfield(beta=beta).store(P, vocab_size=V)
        r = retrieve(mem, q, update="sync", max_steps=3)
    except ValueError as e:
        assert re.search(r"beta|NaN|inf", str(e)), str(e)
        return
    assert torch.equal(r.states, P[d.argmin(-1)])


@pytest.mark.parametrize("beta", [1e10, 1e20, 1e30])
def test_modern_network_at_a_huge_but_representable_beta_retrieves_the_nearest_pattern(beta):
    # beta times every overlap is a finite float32 here, so the zero-temperature answer is owed, not an error.
    g = torch.Generator().manual_seed(5)
    P = torch.randint(0, 2, (4, 32), generator=g)
    q = P.clone()
    q[:, :3] = 1 - q[:, :3]
    d = (q[:, None, :] != P[None]).sum(-1)
    assert bool((d.sort(-1).values[:, 0] < d.sort(-1).values[:, 1]).all())
    mem = ModernHopfield(beta=beta).store(P, vocab_size=2)
    r = retrieve(mem, q, update="sync", max_steps=3)
    assert torch.equal(r.states, P[d.argmin(-1)])


# ---- the diffusion posterior, schedule and sampler at tiny times --------------------------------------------------

TINY_TIMES = (1e-12, 1e-300, 5e-324)


@pytest.mark.parametrize("t", TINY_TIMES)
def test_memorizing_posterior_inverse_temperature_is_exact_at_tiny_t(t):
    V = 5
    P = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 4]])  # agreements with x differ by one
    mem = EmpiricalDenoiser().store(P, vocab_size=V)
    lp = mem.pattern_log_posterior(torch.tensor([[0, 1, 2, 3]]), t)
    assert bool(torch.isfinite(lp).all()), lp
    om = (1 - EPS) * t  # 1 - alpha_t, without rounding alpha_t to 1
    expected = math.log(V - (V - 1) * om) - math.log(om)  # log(1 + V alpha / (1 - alpha))
    assert math.isclose(float(lp[0, 0] - lp[0, 1]), expected, rel_tol=1e-12)


@pytest.mark.parametrize("t", TINY_TIMES)
def test_memorizing_posterior_at_tiny_t_is_the_nearest_patterns_indicator(t):
    g = torch.Generator().manual_seed(1)
    V, L, K = 6, 20, 4
    P = torch.randint(0, V, (K, L), generator=g)
    q = P.clone()
    q[:, :3] = (q[:, :3] + 1) % V
    d = (q[:, None, :] != P[None]).sum(-1)
    assert bool((d.sort(-1).values[:, 0] < d.sort(-1).values[:, 1]).all())
    p = EmpiricalDenoiser().store(P, vocab_size=V).log_posterior(q, t).exp()
    onehot = torch.nn.functional.one_hot(P[d.argmin(-1)], V).double()
    torch.testing.assert_close(p, onehot, rtol=0, atol=1e-12)


@pytest.mark.parametrize("t", TINY_TIMES)
def test_conditional_entropy_at_tiny_t_vanishes_on_stored_patterns(t):
    g = torch.Generator().manual_seed(2)
    P = torch.randint(0, 5, (4, 10), generator=g)
    mem = EmpiricalDenoiser().store(P, vocab_size=5)
    H = conditional_entropy(mem, P, conditionals_kwargs={"t": t})
    assert bool(torch.isfinite(H).all()) and float(H.abs().max()) < 1e-9, H


@pytest.mark.parametrize("t", TINY_TIMES)
@pytest.mark.parametrize("sampler", ["ancestral", "argmax"])
@pytest.mark.parametrize("grid", ["global", "local"])
def test_reverse_chain_from_a_tiny_time_restores_a_token_no_pattern_holds(t, sampler, grid):
    # Every stored pattern holds token 0 at position 0: token 2 there has posterior 0 and must be removed.
    P = torch.tensor([[0, 1, 2, 1, 0, 2], [0, 2, 1, 0, 1, 1]])
    mem = EmpiricalDenoiser().store(P, vocab_size=3)
    q = P.clone()
    q[:, 0] = 2
    dyn = ReverseDiffusion(t_start=t, n_steps=4, sampler=sampler, grid=grid)
    r = retrieve(mem, q, update=dyn, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r.states, P)


def test_noise_conditioning_is_exact_at_tiny_t():
    t = 1e-12
    assert math.isclose(float(sigma(torch.tensor(t, dtype=torch.float64))), -math.log1p(-(1 - EPS) * t), rel_tol=1e-9)
    assert math.isclose(sigma(t), -math.log1p(-(1 - EPS) * t), rel_tol=1e-9)


def test_memorizing_inverse_temperature_outside_its_range_names_the_argument():
    from amtheory.diffusion import schedule

    with pytest.raises(ValueError, match="^a:"):
        schedule.beta_of_alpha(1.0, 5)  # infinite: no noise at all
    with pytest.raises(ValueError, match="^t:"):
        schedule.beta_of_t(0.0, 5)
    assert math.isfinite(schedule.beta_of_t(5e-324, 5))


def test_a_step_distribution_without_mass_is_an_error():
    # alpha_t = alpha_s = 1 (no noise either side) keeps the current token, which the model rules out.
    log_x = torch.log(torch.tensor([[[0.0, 1.0]]], dtype=torch.float64))
    with pytest.raises(ValueError, match="log_x_theta"):
        posterior_step_probs(log_x, torch.tensor([[0]]), 1.0, 1.0)


# ---- vocabularies too large for memory ------------------------------------------------------------------------------

HUGE_V = 10**12  # one sequence's [L, V] float64 scores alone are about 10^14 bytes


@pytest.mark.parametrize("name", list(REGISTRY))
def test_storing_with_a_vocabulary_too_large_for_memory_names_vocab_size(name):
    P = torch.randint(0, 5, (3, 12), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"vocab_size.*GiB"):
        REGISTRY[name].make().store(P, vocab_size=HUGE_V)


def test_potts_couplings_too_large_for_memory_name_vocab_size():
    # One sequence's scores fit (12 x 10^5 float64), the [N V, N V] couplings (1.4e13 bytes) do not.
    P = torch.randint(0, 5, (20, 12), generator=torch.Generator().manual_seed(0))
    for form in ("weights", "auto"):
        with pytest.raises(ValueError, match=r"vocab_size.*GiB"):
            ClassicalHopfield("hebbian", form=form).store(P, vocab_size=10**5 + 7)


BATCH_CALLS = {
    "conditionals": lambda m, x: m.conditionals(x, beta=1.0),
    "sync": lambda m, x: retrieve(m, x, update="sync", max_steps=1),
    "glauber": lambda m, x: retrieve(m, x, update="sync", beta=1.0, max_steps=1),
    "log_posterior": lambda m, x: m.log_posterior(x, 0.5),
    "reverse-chain": lambda m, x: retrieve(m, x, update=ReverseDiffusion(t_start=0.5, n_steps=2)),
}
BATCH_CASES = [
    ("dense", "conditionals"),
    ("dense", "glauber"),
    *(("empirical", what) for what in BATCH_CALLS),
]


@pytest.mark.parametrize(("backend", "what"), BATCH_CASES)
def test_a_batch_whose_scores_exceed_memory_names_vocab_size(backend, what):
    V = 10**7  # one sequence's [12, V] float64 scores take 1 GB; 10^5 of them 9.6 TB
    P = torch.randint(0, 5, (3, 12), generator=torch.Generator().manual_seed(0))
    mem = (DenseAM("poly", n=3) if backend == "dense" else EmpiricalDenoiser()).store(P, vocab_size=V)
    x = torch.randint(0, 5, (10**5, 12), generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"vocab_size.*GiB"):
        BATCH_CALLS[what](mem, x)


def test_a_vocabulary_beyond_int64_tokens_names_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        corrupt(torch.zeros(2, 5, dtype=torch.long), vocab_size=2**64, n_changed=1)


def test_corrupt_moves_tokens_modulo_vocab_size_without_int64_overflow():
    V = 2**63 - 1
    x = torch.full((4, 6), V - 1)
    out = corrupt(x, vocab_size=V, n_changed=6, generator=torch.Generator().manual_seed(0)).states
    # Replay the draws: the keys that choose the positions, then the offsets in [1, V).
    g = torch.Generator().manual_seed(0)
    torch.rand(x.shape, generator=g)
    offset = torch.randint(1, V, x.shape, generator=g)
    assert torch.equal(out, offset - 1), "(V - 1 + offset) mod V = offset - 1"


# ---- models and memories whose outputs are not finite --------------------------------------------------------------


class ConstantNet(torch.nn.Module):
    """forward(x, sigma) -> logits that are ``value`` at position 0 and zero elsewhere."""

    def __init__(self, vocab_size: int, value: float):
        super().__init__()
        self.V = vocab_size
        self.value = value
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, sigma):
        out = torch.zeros(*x.shape, self.V) + self.anchor
        out[:, 0] = self.value
        return out


class ConstantScores(AssociativeMemory):
    """A memory whose scores are ``value`` at position 0 and zero elsewhere."""

    has_energy = False

    def __init__(self, value: float):
        self.value = value

    def _store(self, patterns):
        pass

    def scores(self, x):
        out = torch.zeros(*x.shape, self.vocab_size_, dtype=torch.float64)
        out[:, 0] = self.value
        return out


POISON = [float("nan"), float("inf"), float("-inf")]


def poisoned_lm(value: float, V: int = 5, L: int = 6) -> UniformDiffusionLM:
    lm = UniformDiffusionLM(ConstantNet(V, 0.0), vocab_size=V)
    lm.store(torch.randint(0, V, (3, L), generator=torch.Generator().manual_seed(0)))
    lm.model.value = value  # poisoned after store, whose one forward pass on a stored row is finite
    return lm


LM_CALLS = {
    "log_posterior": lambda m, x: m.log_posterior(x, 0.5),
    "conditionals": lambda m, x: m.conditionals(x, t=0.5),
    "conditional_entropy": lambda m, x: conditional_entropy(m, x, conditionals_kwargs={"t": 0.5}),
    "sync": lambda m, x: retrieve(m, x, update="sync", max_steps=2),
    "async": lambda m, x: retrieve(m, x, update="async", max_steps=2, generator=torch.Generator().manual_seed(0)),
    "glauber": lambda m, x: retrieve(m, x, update="sync", beta=1.0, generator=torch.Generator().manual_seed(0)),
    "ancestral": lambda m, x: retrieve(m, x, update=ReverseDiffusion(t_start=0.5, n_steps=3)),
    "argmax-chain": lambda m, x: retrieve(m, x, update=ReverseDiffusion(t_start=0.5, n_steps=3, sampler="argmax")),
    "generate": lambda m, x: generate(m, 2, n_steps=3, generator=torch.Generator().manual_seed(0)),
    "basin_radius": lambda m, x: basin_radius(m, x[:1], n_trials=2, generator=torch.Generator().manual_seed(0)),
}


@pytest.mark.parametrize("value", POISON, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("what", list(LM_CALLS))
def test_a_diffusion_model_with_nonfinite_logits_is_an_error(what, value):
    lm = poisoned_lm(value)
    x = torch.randint(0, 5, (3, 6), generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=NONFINITE):
        LM_CALLS[what](lm, x)


MEMORY_CALLS = {
    "conditionals": lambda m, x: m.conditionals(x, beta=1.0),
    "sync": lambda m, x: retrieve(m, x, update="sync", max_steps=2),
    "async": lambda m, x: retrieve(m, x, update="async", max_steps=2, generator=torch.Generator().manual_seed(0)),
    "glauber-sync": lambda m, x: retrieve(m, x, update="sync", beta=2.0, generator=torch.Generator().manual_seed(0)),
    "glauber-async": lambda m, x: retrieve(m, x, update="async", beta=2.0, generator=torch.Generator().manual_seed(0)),
    "conditional_entropy": lambda m, x: conditional_entropy(m, x),
}


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("what", list(MEMORY_CALLS))
def test_a_memory_with_nonfinite_scores_is_an_error(what, value):
    mem = ConstantScores(value).store(torch.zeros(2, 4, dtype=torch.long), vocab_size=3)
    with pytest.raises(ValueError, match=NONFINITE):
        MEMORY_CALLS[what](mem, torch.ones(3, 4, dtype=torch.long))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_entropy_of_something_that_is_not_a_probability_vector_is_an_error(bad):
    p = torch.tensor([[0.5, 0.5], [bad, 0.5]])
    with pytest.raises(ValueError, match=r"p:"):
        entropy_from_probs(p)


class _Conditionals:
    def __init__(self, p):
        self.p = p

    def conditionals(self, x, **kwargs):
        return self.p.expand(x.shape[0], *self.p.shape)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_conditional_entropy_of_nonfinite_conditionals_is_an_error(bad):
    p = torch.tensor([[0.5, 0.5], [bad, 0.5]])
    with pytest.raises(ValueError, match=NONFINITE):
        conditional_entropy(_Conditionals(p), torch.zeros(2, 2, dtype=torch.long), beta=None)


def _nan_checkpoint(path):
    from amtheory.diffusion.checkpoint import save_checkpoint
    from amtheory.diffusion.model import DiT, DiTConfig

    torch.manual_seed(0)
    cfg = DiTConfig(vocab_size=11, length=6, d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0)
    model = DiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    save_checkpoint(
        path, model=model, ema_state=None, optimizer=None, step=3, model_config=cfg, train_config={}, meta={}
    )
    return path


def test_probe_of_a_model_with_nan_weights_exits_nonzero_with_one_line(tmp_path, capsys):
    from amtheory.cli import main

    ckpt = _nan_checkpoint(tmp_path / "ckpt")
    with pytest.raises(SystemExit) as e:
        main(["probe", str(ckpt), "--n", "2", "--steps", "3", "--device", "cpu"])
    code = e.value.code
    assert code not in (0, None), "the probe must fail"
    msg = str(code) if isinstance(code, str) else capsys.readouterr().err
    assert len(msg.strip().splitlines()) == 1 and re.search(NONFINITE, msg), msg
    assert "nats" not in capsys.readouterr().out


def test_probe_checkpoint_of_a_model_with_nan_weights_raises(tmp_path):
    from amtheory.diffusion.probe import probe_checkpoint

    ckpt = _nan_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match=NONFINITE):
        probe_checkpoint(ckpt, n=2, n_steps=3, device="cpu")
