"""Measuring a group of diffusion LMs in lockstep: each member's measurement, written for one model, runs in its own
thread with its network calls batched with the other members'; its results equal those of the member alone, the
calls really are shared, and an error in one member neither hangs nor hides."""

from __future__ import annotations

import pytest
import torch

from amtheory.core.basins import basin_radius
from amtheory.core.entropy import conditional_entropy
from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.group_eval import GroupDenoiser
from amtheory.diffusion.group_train import initial_state
from amtheory.diffusion.lockstep import LockstepNetwork, run_in_lockstep
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.sampler import ReverseDiffusion, generate

V, L = 24, 8
CFG = DiTConfig(vocab_size=V, length=L, d_model=16, n_blocks=2, n_heads=2, cond_dim=8, dropout=0.0)
SEEDS = (0, 5, 11)
PATTERNS = torch.randint(0, V, (4, L), generator=torch.Generator().manual_seed(1))


def _states() -> list[dict[str, torch.Tensor]]:
    out = []
    for s in SEEDS:
        g = torch.Generator().manual_seed(100 + s)
        out.append({k: torch.randn(v.shape, generator=g) * 0.6 for k, v in initial_state(CFG, s).items()})
    return out


def _alone(sd) -> UniformDiffusionLM:
    model = DiT(CFG)
    model.load_state_dict(sd)
    return UniformDiffusionLM(model, vocab_size=V, batch_size=3).store(PATTERNS)


def _measure(uddm: UniformDiffusionLM, seed: int) -> dict[str, torch.Tensor]:
    """A mix of the study's measurements: an ancestral chain, samples, entropies and basin radii, each drawing
    from the member's own generator."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (5, L), generator=g)
    chain = ReverseDiffusion(t_start=0.6, n_steps=6, sampler="ancestral", final="posterior", grid="global")
    out = {"chain": chain.run(uddm, x, generator=g).states}
    out["samples"] = generate(uddm, 4, n_steps=5, generator=g)
    out["entropy"] = conditional_entropy(uddm, x, beta=1.0, conditionals_kwargs={"t": 0.3}, batch_size=2)
    basin = ReverseDiffusion(t_start=0.5, n_steps=3, sampler="argmax", final="posterior", grid="local")
    res = basin_radius(uddm, PATTERNS[:2], delta=0.25, n_trials=3, update=basin, generator=g, n_boot=20)
    out["radius"] = res.per_pattern
    return out


def _lockstep_uddm(network: LockstepNetwork) -> UniformDiffusionLM:
    return UniformDiffusionLM(network, vocab_size=V, batch_size=3).store(PATTERNS)


def test_each_member_measures_as_it_does_alone():
    states = _states()
    alone = [_measure(_alone(sd), 40 + g) for g, sd in enumerate(states)]
    stats: dict = {}
    group = run_in_lockstep(
        GroupDenoiser.from_states(CFG, states),
        [lambda net, g=g: _measure(_lockstep_uddm(net), 40 + g) for g in range(len(states))],
        stats=stats,
    )
    for g, (a, b) in enumerate(zip(alone, group)):
        for name in ("chain", "samples", "radius"):
            assert torch.equal(a[name], b[name]), (g, name)
        torch.testing.assert_close(a["entropy"], b["entropy"], rtol=1e-5, atol=1e-5)
    # The members' calls were shared: fewer forward passes than one member alone makes calls.
    calls: list[int] = []
    counter = _alone(states[0])
    inner = counter.model.forward
    counter.model.forward = lambda *a: (calls.append(1), inner(*a))[1]
    _measure(counter, 40)
    assert 0 < stats["rounds"] <= len(calls) + 1


def test_members_that_call_with_different_batch_sizes_and_finish_early_get_their_own_rows():
    states = _states()

    def task(net, g):
        uddm = _lockstep_uddm(net)
        out = []
        for k in range(g + 1):  # member g makes g + 1 calls of g + 1 rows: the rounds' sizes and members differ
            x = torch.randint(0, V, (g + 1, L), generator=torch.Generator().manual_seed(10 * g + k))
            out.append(uddm.log_posterior(x, torch.full((g + 1,), 0.4, dtype=torch.float64)))
        return out

    got = run_in_lockstep(GroupDenoiser.from_states(CFG, states), [lambda n, g=g: task(n, g) for g in range(3)])
    for g, sd in enumerate(states):
        uddm = _alone(sd)
        for k, lp in enumerate(got[g]):
            x = torch.randint(0, V, (g + 1, L), generator=torch.Generator().manual_seed(10 * g + k))
            want = uddm.log_posterior(x, torch.full((g + 1,), 0.4, dtype=torch.float64))
            torch.testing.assert_close(lp, want, rtol=1e-5, atol=1e-5)


def test_an_error_in_one_member_is_raised_after_the_others_finish():
    states = _states()
    done = []

    def ok(net):
        uddm = _lockstep_uddm(net)
        for _ in range(3):
            uddm.log_posterior(PATTERNS, 0.5)
        done.append(1)

    def bad(net):
        _lockstep_uddm(net).log_posterior(PATTERNS, 0.5)
        raise ValueError("member one broke")

    with pytest.raises(ValueError, match="member one broke"):
        run_in_lockstep(GroupDenoiser.from_states(CFG, states), [ok, bad, ok])
    assert len(done) == 2


def test_bad_input_names_the_argument():
    d = GroupDenoiser.from_states(CFG, _states())
    with pytest.raises(TypeError, match="denoiser"):
        run_in_lockstep(object(), [])
    with pytest.raises(ValueError, match="tasks: expected one task per member"):
        run_in_lockstep(d, [lambda n: None])
    with pytest.raises(TypeError, match=r"tasks\[1\]"):
        run_in_lockstep(d, [lambda n: None, 3, lambda n: None])
    kept = []
    run_in_lockstep(d, [lambda n: kept.append(n)] * 3)
    with pytest.raises(RuntimeError, match="outside run_in_lockstep"):
        kept[0](PATTERNS, torch.ones(4))


def test_the_memorization_tables_are_the_same_with_models_measured_in_groups(tmp_path):
    """The study with its models measured in lockstep groups (two shapes, three training sizes, two budgets)
    writes the tables of the study measuring each model alone."""
    import dataclasses

    from _tables import assert_same_tables

    from amtheory.studies.memorization import DataSpec, EvalSettings, ModelSpec, Preset, run_experiment

    torch.set_num_threads(1)
    p = Preset(
        name="micro", data=DataSpec("embedded", 12, 128),
        archs=(ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0),
               ModelSpec("nano2", d_model=16, n_blocks=2, n_heads=2, cond_dim=8, dropout=0.0)),
        sizes=(2, 8, 16), steps=6, batch_size=4, lr=3e-3, warmup=2, ema=0.9, budgets=(1, 2),
        settings=EvalSettings(n_eval=3, ts=(0.1, 0.5, 1.0), n_steps=4, n_basin=2, basin_trials=2, basin_steps=2,
                              n_generate=3, nelbo_ts=2, kl_ts=(0.5,), empirical_steps=3, hopfield_max_iter=2),
        backends=(), checkpoint_every=6,
    )  # fmt: skip
    alone = run_experiment(p, tmp_path / "alone", device="cpu", progress=False)
    grouped = run_experiment(dataclasses.replace(p, eval_group=4), tmp_path / "grouped", device="cpu", progress=False)
    assert_same_tables(alone, grouped, tmp_path / "alone", tmp_path / "grouped")
