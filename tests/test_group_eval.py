"""Evaluating a group of diffusion LMs at once: every member's log posterior, entropy, NELBO, reverse chains,
samples and fixed points equal those of the member evaluated alone with the single-model code."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from amtheory.core.entropy import conditional_entropy
from amtheory.diffusion.backend import UniformDiffusionLM
from amtheory.diffusion.group_eval import (
    GroupDenoiser,
    group_fixed_points,
    group_generate,
    group_reverse_chain,
    group_stratified_nelbo,
)
from amtheory.diffusion.group_train import GroupTrainer, initial_state
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.sampler import ReverseDiffusion, fixed_point_share, generate
from amtheory.diffusion.train import TrainConfig
from amtheory.diffusion.trajectory import group_prediction_trajectory, prediction_trajectory
from amtheory.studies.memorization.evaluation import _uddm_nelbo

V, L, G, B = 24, 8, 3, 5
CFG = DiTConfig(vocab_size=V, length=L, d_model=16, n_blocks=2, n_heads=2, cond_dim=8, dropout=0.0)
SEEDS = (0, 5, 11)


def _states() -> list[dict[str, torch.Tensor]]:
    """Three members with different, far-from-uniform weights (an initial DiT has a zero head)."""
    out = []
    for s in SEEDS:
        g = torch.Generator().manual_seed(100 + s)
        sd = initial_state(CFG, s)
        out.append({k: torch.randn(v.shape, generator=g) * 0.6 for k, v in sd.items()})
    return out


def _members(states) -> list[UniformDiffusionLM]:
    patterns = torch.randint(0, V, (4, L), generator=torch.Generator().manual_seed(1))
    out = []
    for sd in states:
        model = DiT(CFG)
        model.load_state_dict(sd)
        out.append(UniformDiffusionLM(model, vocab_size=V).store(patterns))
    return out


@pytest.fixture(scope="module")
def group():
    states = _states()
    return GroupDenoiser.from_states(CFG, states), _members(states)


def _queries(seed: int = 2) -> torch.Tensor:
    return torch.randint(0, V, (G, B, L), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("batch_size", [None, 2])
def test_log_posterior_of_each_member_equals_the_member_alone(group, batch_size):
    den, members = group
    den.batch_size = batch_size
    x = _queries()
    t_GB = torch.rand(G, B, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.9 + 0.05
    lp = den.log_posterior(x, t_GB)
    assert lp.shape == (G, B, L, V) and lp.dtype == torch.float32
    shared = den.log_posterior(x, t_GB[0])
    den.batch_size = None
    for g, m in enumerate(members):
        torch.testing.assert_close(lp[g], m.log_posterior(x[g], t_GB[g]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(shared[g], m.log_posterior(x[g], t_GB[0]), atol=1e-5, rtol=1e-5)


def test_entropy_equals_conditional_entropy_of_each_member(group):
    den, members = group
    x = _queries(4)
    h = den.entropy(x, 0.3)
    for g, m in enumerate(members):
        ref = conditional_entropy(m, x[g], beta=1.0, conditionals_kwargs={"t": 0.3})
        torch.testing.assert_close(h[g], ref, atol=1e-5, rtol=1e-5)


def test_entropy_holds_one_batch_of_log_posteriors_at_a_time(group):
    # The memorization study computes these entropies for a group's recovery queries (hundreds of blocks per member):
    # the group's [G, B, L, V] table must not be formed, only batch_size rows of it per member at a time.
    from torch.profiler import ProfilerActivity, profile

    den, members = group
    x = torch.randint(0, V, (G, 200, L), generator=torch.Generator().manual_seed(8))
    den.batch_size = 2
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            h = den.entropy(x, 0.4)
    finally:
        den.batch_size = None
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < G * 200 * L * V * 4 // 4, f"one allocation of {largest} bytes"
    for g, m in enumerate(members):
        ref = conditional_entropy(m, x[g], beta=1.0, conditionals_kwargs={"t": 0.4})
        # Batched products round differently from the member's own: 1.5e-5 nats at most over these 1,600 positions.
        torch.testing.assert_close(h[g], ref, atol=5e-5, rtol=1e-4)


def test_nelbo_holds_one_batch_of_log_posteriors_at_a_time(group):
    # The study's test NELBO asks about n_eval blocks x nelbo_ts times per member at once (3,072 rows in the gpu
    # preset): only batch_size rows of the group's log posteriors may be held at a time.
    from torch.profiler import ProfilerActivity, profile

    den, _ = group
    g = torch.Generator().manual_seed(9)
    x0 = torch.randint(0, V, (G, 200, L), generator=g)
    xt = torch.randint(0, V, (G, 200, L), generator=g)
    t = torch.rand(G, 200, generator=g, dtype=torch.float64) * 0.9 + 0.05
    whole = den.nelbo(x0, xt, t)
    den.batch_size = 2
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            parts = den.nelbo(x0, xt, t)
    finally:
        den.batch_size = None
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < G * 200 * L * V * 4 // 4, f"one allocation of {largest} bytes"
    # Products over fewer rows round differently: the per-token NELBO agrees to 1e-4.
    torch.testing.assert_close(parts, whole, atol=1e-4, rtol=1e-4)


def test_stratified_nelbo_equals_the_study_measurement_of_each_member(group):
    den, members = group
    train = _queries(5)
    test = _queries(6)
    k = 4
    gens = [torch.Generator().manual_seed(50 + g) for g in range(G)]
    nel = {split: group_stratified_nelbo(den, x, k, gens) for split, x in (("train", train), ("test", test))}
    cell = SimpleNamespace(settings=SimpleNamespace(nelbo_ts=k, batch_size=3))
    for g, m in enumerate(members):
        sets = {"train": train[g], "test": test[g]}
        ref = _uddm_nelbo(m, cell, sets, torch.Generator().manual_seed(50 + g), "cpu")
        for split in ("train", "test"):
            want = torch.tensor(ref[ref["split"] == split]["nelbo"].to_numpy())
            torch.testing.assert_close(nel[split][g], want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("final", ["posterior", "argmax"])
def test_argmax_chain_and_fixed_points_equal_each_member_alone(group, final):
    den, members = group
    x = _queries(7)
    starts = tuple(float(v) for v in torch.linspace(0.1, 1.0, B))
    dyn = ReverseDiffusion(t_start=starts, n_steps=12, sampler="argmax", final=final, grid="local", batch_size=2)
    out = group_reverse_chain(den, dyn, x)
    fixed = group_fixed_points(den, x, n_steps=20, final=final)
    for g, m in enumerate(members):
        assert torch.equal(out[g], dyn.run(m, x[g]).states)
        assert torch.equal(fixed[g], fixed_point_share(m, x[g], n_steps=20, final=final))


def test_ancestral_chain_and_generation_with_per_member_generators_equal_each_member_alone(group):
    den, members = group
    x = _queries(8)
    dyn = ReverseDiffusion(t_start=0.6, n_steps=30, sampler="ancestral", final="posterior", grid="global")
    out = group_reverse_chain(den, dyn, x, generators=[torch.Generator().manual_seed(70 + g) for g in range(G)])
    samples = group_generate(den, 4, n_steps=25, generators=[torch.Generator().manual_seed(80 + g) for g in range(G)])
    assert samples.shape == (G, 4, L)
    for g, m in enumerate(members):
        alone = dyn.run(m, x[g], generator=torch.Generator().manual_seed(70 + g)).states
        assert torch.equal(out[g], alone)
        assert torch.equal(samples[g], generate(m, 4, n_steps=25, generator=torch.Generator().manual_seed(80 + g)))
    assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize("batch_size", [None, 3])
def test_the_trajectory_of_each_member_equals_the_member_alone(group, batch_size):
    # The memorization study records the trajectory for a whole measured group at once: each member's rows (its
    # samples' entropy and gap at every step, then at t_end) are those of its own trajectory with its generator.
    den, members = group
    den.batch_size = batch_size
    inside = torch.zeros(L, dtype=torch.bool)
    inside[1 : L - 1] = True
    kw = {"n_steps": 12, "t_end": 0.01, "positions": inside}
    tables = group_prediction_trajectory(den, 5, generators=[torch.Generator().manual_seed(90 + g) for g in range(G)],
                                         **kw)  # fmt: skip
    den.batch_size = None
    assert len(tables) == G
    for g, m in enumerate(members):
        alone = prediction_trajectory(m, 5, generator=torch.Generator().manual_seed(90 + g), per_sequence=True, **kw)
        assert list(tables[g].columns) == list(alone.columns) and len(tables[g]) == len(alone) == 13 * 5
        for col in ("step", "sequence"):
            assert (tables[g][col].to_numpy() == alone[col].to_numpy()).all()
        for col in ("t", "entropy", "gap"):
            torch.testing.assert_close(torch.tensor(tables[g][col].to_numpy()), torch.tensor(alone[col].to_numpy()),
                                       atol=1e-5, rtol=1e-5)  # fmt: skip
    assert not tables[0]["entropy"].equals(tables[1]["entropy"])


@pytest.mark.parametrize("ema", [True, False])
def test_a_trainers_members_evaluate_as_their_own_models(ema):
    base = TrainConfig(steps=4, batch_size=4, lr=1e-2, warmup=1, ema=0.9, loss_kernel="eager")
    configs = [dataclasses.replace(base, seed=s) for s in SEEDS]
    data = [torch.randint(0, V, (n, L), generator=torch.Generator().manual_seed(n)) for n in (3, 6, 9)]
    trainer = GroupTrainer(CFG, configs, data)
    for step in range(4):
        trainer.step(step)
    den = GroupDenoiser.from_trainer(trainer, ema=ema)
    x = _queries(9)
    lp = den.log_posterior(x, 0.4)
    for g in range(G):
        alone = UniformDiffusionLM(trainer.member_model(g, ema=ema), vocab_size=V).store(data[g])
        torch.testing.assert_close(lp[g], alone.log_posterior(x[g], 0.4), atol=1e-5, rtol=1e-5)


def test_bad_input_names_the_argument(group):
    den, _ = group
    x = _queries()
    with pytest.raises(ValueError, match="x_t: expected one row of queries per member"):
        den.log_posterior(x[:2], 0.5)
    with pytest.raises(ValueError, match="t: expected a float"):
        den.log_posterior(x, torch.full((2, B), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"t: expected a value in \(0.0, 1.0\]"):
        den.log_posterior(x, 0.0)
    with pytest.raises(ValueError, match="x_t: expected tokens in"):
        den.log_posterior(x + V, 0.5)
    with pytest.raises(ValueError, match="x0: expected the shape of x_t"):
        den.nelbo(x[:, :2], x, 0.5)
    with pytest.raises(ValueError, match="generators: expected None or one torch.Generator per member"):
        group_reverse_chain(den, ReverseDiffusion(t_start=0.5, n_steps=4), x, generators=[torch.Generator()])
    with pytest.raises(TypeError, match="dynamics: expected a ReverseDiffusion"):
        group_reverse_chain(den, "argmax", x)
    with pytest.raises(ValueError, match="weights: expected a tensor"):
        GroupDenoiser(CFG, torch.zeros(G, 7))
    with pytest.raises(ValueError, match="states\\[1\\]: missing parameters"):
        GroupDenoiser.from_states(CFG, [_states()[0], {}])


def test_a_subgroup_is_the_members_it_names(group):
    d, _ = group
    x, t = _queries(), torch.full((B,), 0.4, dtype=torch.float64)
    whole = d.log_posterior(x, t)
    sub = d.subgroup([2, 0], batch_size=2)
    assert sub.n_members == 2 and sub.batch_size == 2 and d.batch_size is None
    torch.testing.assert_close(sub.log_posterior(x[[2, 0]], t), whole[[2, 0]], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="members"):
        d.subgroup([0, G])
    with pytest.raises(TypeError, match="members"):
        d.subgroup([])


def test_a_device_named_with_its_index_takes_queries_made_on_the_plain_device():
    """A group made with device="cpu:0" (as "cuda" on a GPU is "cuda:0") keeps its weights' device, so queries
    built on the plain device run instead of failing the device check."""
    den = GroupDenoiser.from_states(CFG, _states(), device="cpu:0")
    x = _queries(9)
    dyn = ReverseDiffusion(t_start=0.5, n_steps=4, sampler="argmax", final="argmax", grid="global")
    assert den.device == x.device
    assert group_reverse_chain(den, dyn, x).shape == x.shape


def test_the_chain_benchmark_runs_on_a_cpu_and_writes_its_record(tmp_path):
    import json

    from _studies import load_experiment

    argv = ["--device", "cpu", "--tiny", "--shapes", "tiny-a", "--repeats", "1", "--out", str(tmp_path)]
    load_experiment("bench_group_chain").main(argv)
    record = json.loads((tmp_path / "bench_group_chain.json").read_text())
    assert record["command"].startswith("python experiments/bench_group_chain.py --device cpu --tiny")
    (row,) = record["rows"]
    # From t = 0.5 on a 50-step grid: 24 drawn steps and the final one.
    assert row["shape"] == "tiny-a" and row["members"] == 3 and row["steps"] == 25
    assert row["ms_per_step"] == pytest.approx(1e3 * row["chain_s"] / 25)
    assert row["token_steps_s"] == pytest.approx(3 * 4 * 16 * 25 / row["chain_s"])
    text = (tmp_path / "bench_group_chain.txt").read_text()
    assert "# command:" in text and "tiny-a (16 x 1), blocks eager, 3 members x 4 queries, 25 ancestral steps" in text
    assert row["compile"] == "off"
    # The first chain (which compiles compiled blocks) is timed apart from the median.
    assert row["first_chain_s"] > 0 and f"the first chain {row['first_chain_s']:.1f} s" in text


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_group_with_compiled_blocks_gives_the_eager_group_s_log_posteriors(dynamic):
    # block_fn: the blocks under torch.compile (a measured group's option) compute what the eager blocks compute;
    # with dynamic shapes (a measured group's batched work), for subgroups and batches of other sizes too.
    from amtheory.diffusion.group_model import compiled_block

    cfg = DiTConfig(vocab_size=32, length=8, d_model=16, n_blocks=2, n_heads=2, cond_dim=8, dropout=0.0)
    states = []
    for g in range(3):
        torch.manual_seed(g)
        m = DiT(cfg)
        torch.nn.init.normal_(m.out.weight, std=0.5)
        states.append(m.state_dict())
    eager = GroupDenoiser.from_states(cfg, states)
    compiled = eager.subgroup([0, 1, 2], block_fn=compiled_block(dynamic))
    assert compiled.block_fn is not None and eager.block_fn is None
    for members, B in [([0, 1, 2], 5), ([2, 0], 7)] if dynamic else [([0, 1, 2], 5)]:
        x = torch.randint(0, 32, (len(members), B, 8), generator=torch.Generator().manual_seed(B))
        got, want = compiled.subgroup(members).log_posterior(x, 0.4), eager.subgroup(members).log_posterior(x, 0.4)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert compiled.subgroup([1]).block_fn is compiled.block_fn  # a subgroup keeps the setting
    with pytest.raises(TypeError, match="block_fn: expected None or a function like group_block"):
        GroupDenoiser.from_states(cfg, states, block_fn="compiled")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("sampler", ["ancestral", "argmax"])
def test_a_member_with_non_finite_output_stops_the_group_with_an_error(bad, sampler):
    # One member whose head gives NaN (or +inf, whose softmax is NaN) logits: the group's chains, samples and fixed
    # points raise NonFiniteError instead of returning tokens drawn from nothing.
    from amtheory.core._checks import NonFiniteError

    states = _states()
    states[1]["out.bias"][3] = bad
    d = GroupDenoiser.from_states(CFG, states)
    dyn = ReverseDiffusion(t_start=0.5, n_steps=10, sampler=sampler, final="posterior", grid="global")
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    with pytest.raises(NonFiniteError):
        group_reverse_chain(d, dyn, _queries(), generators=gens)
    with pytest.raises(NonFiniteError):
        group_fixed_points(d, _queries(), n_steps=10)
    with pytest.raises(NonFiniteError):
        d.entropy(_queries(), 0.5)
