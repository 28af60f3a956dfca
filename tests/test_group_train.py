"""Training a group of diffusion LMs at once: each member trains as it would alone (losses, weights and EMA within
float tolerance), clipping, skipping and the optimizer state are per member, and a group's checkpoints are the single
trainer's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from amtheory.diffusion.checkpoint import load_model, load_train_state
from amtheory.diffusion.group_model import GroupLayout
from amtheory.diffusion.group_run import train_group
from amtheory.diffusion.group_train import GroupTrainer, check_group_configs
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train import TrainConfig, train

V, L = 40, 8
CFG = DiTConfig(vocab_size=V, length=L, d_model=16, n_blocks=2, n_heads=2, cond_dim=8, dropout=0.0)
SIZES = (3, 7, 20)
SEEDS = (0, 5, 11)


def _configs(steps: int = 5, **kw) -> list[TrainConfig]:
    base = TrainConfig(steps=steps, batch_size=4, lr=1e-2, warmup=2, ema=0.9, log_every=1, checkpoint_every=3,
                       loss_kernel="eager", **kw)  # fmt: skip
    return [dataclasses.replace(base, seed=s) for s in SEEDS]


def _data() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    pool = torch.randint(0, V, (max(SIZES), L), generator=g)
    return [pool[:n].clone() for n in SIZES]


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 2e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize(("grad_accum", "weight_decay"), [(1, 0.0), (2, 0.0), (1, 0.1)])
def test_each_member_trains_as_it_would_alone(tmp_path, grad_accum, weight_decay):
    configs = [dataclasses.replace(c, grad_accum=grad_accum, weight_decay=weight_decay) for c in _configs()]
    data = _data()
    group_dirs = [tmp_path / f"group-{g}" for g in range(len(SEEDS))]
    summaries = train_group(CFG, configs, data, group_dirs)
    for g, (tc, d) in enumerate(zip(configs, data)):
        alone = train(CFG, tc, d, tmp_path / f"alone-{g}", progress=False)
        assert [s for s, _ in summaries[g]["losses"]] == [s for s, _ in alone["losses"]]
        torch.testing.assert_close(
            torch.tensor([v for _, v in summaries[g]["losses"]]), torch.tensor([v for _, v in alone["losses"]]),
            atol=1e-5, rtol=1e-5,
        )  # fmt: skip
        assert summaries[g]["skipped_steps"] == alone["skipped_steps"] == 0
        for ema in (False, True):
            grouped = load_model(summaries[g]["checkpoint"], ema=ema)[0]
            single = load_model(alone["checkpoint"], ema=ema)[0]
            _close(dict(grouped.named_parameters()), dict(single.named_parameters()))
        opt_group = load_train_state(summaries[g]["checkpoint"])["train_state"]["optimizer"]["state"]
        opt_alone = load_train_state(alone["checkpoint"])["train_state"]["optimizer"]["state"]
        assert opt_group.keys() == opt_alone.keys()
        for i in opt_alone:
            assert float(opt_group[i]["step"]) == float(opt_alone[i]["step"])
            torch.testing.assert_close(opt_group[i]["exp_avg"], opt_alone[i]["exp_avg"], atol=1e-6, rtol=1e-4)


def test_each_member_draws_the_batch_the_single_trainer_draws():
    # A step's batches are drawn member by member from each one's generator and then formed for all at once: every
    # tensor is, bit for bit, the single trainer's sample_batch for that member's seed, data and step.
    from amtheory.diffusion.train_step import sample_batch, step_generator

    data = _data()
    trainer = GroupTrainer(CFG, _configs(), data)
    for step in (0, 1, 7):
        got = trainer.batch(step)
        for g, (seed, d) in enumerate(zip(SEEDS, data)):
            alone = sample_batch(d, 4, V, step_generator(seed, 0, step, "cpu"))
            assert got.keys() == alone.keys()
            for k in alone:
                assert got[k][g].dtype == alone[k].dtype and torch.equal(got[k][g], alone[k]), (step, g, k)
    assert [d.shape[0] for d in trainer.data] == list(SIZES)
    assert all(torch.equal(a, b) for a, b in zip(trainer.data, data))


def test_a_member_adds_a_few_host_operations_to_the_batch_of_a_step():
    # Each member's draws are its own; everything computed from them is done once for the group. The operations the
    # host issues for a step's batches (counted by the torch profiler) grow by 14 a member; drawn member by member
    # with sample_batch they grew by 61, which held up a GPU step of the gpu preset's smallest models.
    from torch.profiler import ProfilerActivity, profile

    def ops(G: int) -> int:
        configs = [dataclasses.replace(_configs()[0], seed=g) for g in range(G)]
        trainer = GroupTrainer(CFG, configs, [_data()[g % 3] for g in range(G)])
        trainer.batch(0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.batch(1)
        return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))

    per_member = (ops(12) - ops(4)) / 8
    assert per_member <= 20, per_member


def test_a_group_of_one_equals_the_same_member_in_a_larger_group():
    configs, data = _configs(), _data()
    big = GroupTrainer(CFG, configs, data)
    one = GroupTrainer(CFG, configs[1:2], data[1:2])
    for step in range(3):
        big_loss, _, _ = big.step(step)
        one_loss, _, _ = one.step(step)
        torch.testing.assert_close(big_loss[1:2], one_loss, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(big.weights.detach()[1:2], one.weights.detach(), atol=1e-6, rtol=1e-5)


def _with_grads(grads: torch.Tensor) -> GroupTrainer:
    trainer = GroupTrainer(CFG, _configs(), _data())
    trainer.weights.grad = grads.clone()
    return trainer


def test_clipping_is_per_member():
    P = GroupLayout.of(CFG).width
    gen = torch.Generator().manual_seed(0)
    small = 1e-3 * torch.randn(len(SEEDS), P, generator=gen)  # every member's norm well below clip = 1
    huge = small.clone()
    huge[0] *= 1e9
    calm, wild = _with_grads(small), _with_grads(huge)
    norm_calm, _ = calm.update(1e-2)
    norm_wild, found_inf = wild.update(1e-2)
    assert float(norm_wild[0]) > 1e5 and bool((norm_calm < 1).all()) and not bool(found_inf.any())
    # The others are untouched by member 0's norm ...
    torch.testing.assert_close(wild.weights.detach()[1:], calm.weights.detach()[1:], atol=0, rtol=0)
    torch.testing.assert_close(wild.exp_avg[1:], calm.exp_avg[1:], atol=0, rtol=0)
    # ... and member 0's gradient was clipped to norm 1: its first moment is (1 - beta1) x the clipped gradient.
    torch.testing.assert_close(float(wild.exp_avg[0].norm()), 0.1, atol=1e-6, rtol=1e-4)


def test_a_member_with_a_non_finite_gradient_is_skipped_alone():
    P = GroupLayout.of(CFG).width
    grads = 1e-3 * torch.randn(len(SEEDS), P, generator=torch.Generator().manual_seed(1))
    grads[2, 5] = float("nan")
    trainer = _with_grads(grads)
    before = trainer.weights.detach().clone()
    _, found_inf = trainer.update(1e-2)
    assert found_inf.tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(trainer.weights.detach()[2], before[2], atol=0, rtol=0)
    assert not torch.equal(trainer.weights.detach()[0], before[0])
    assert trainer.adam_steps.tolist() == [1.0, 1.0, 0.0]
    assert trainer.ema_count.tolist() == [1.0, 1.0, 0.0]
    assert trainer.skipped.tolist() == [0.0, 0.0, 1.0]
    assert bool(torch.isfinite(trainer.exp_avg).all() and torch.isfinite(trainer.ema).all())


def _grads_with_a_skipped_and_a_clipped_member() -> torch.Tensor:
    P = GroupLayout.of(CFG).width
    grads = 1e-3 * torch.randn(len(SEEDS), P, generator=torch.Generator().manual_seed(2))
    grads[0] *= 1e4  # norm far above clip = 1
    grads[2, 7] = float("nan")
    return grads


def test_the_compiled_update_equals_the_eager_one():
    # Three updates with a clipped member, a skipped one and weight decay: weights, moments, EMA and counts agree.
    configs = [dataclasses.replace(c, weight_decay=0.1) for c in _configs()]
    eager = GroupTrainer(CFG, configs, _data())
    fused = GroupTrainer(CFG, [dataclasses.replace(c, compile=True) for c in configs], _data())
    for step in range(3):
        grads = _grads_with_a_skipped_and_a_clipped_member() * (step + 1)
        for trainer in (eager, fused):
            trainer.weights.grad = grads.clone()
            trainer.update(1e-2 / (step + 1))
    for name in ("weights", "exp_avg", "exp_avg_sq", "ema"):
        a, b = getattr(eager, name).detach(), getattr(fused, name).detach()
        assert bool(torch.isfinite(b).all()), name
        torch.testing.assert_close(b, a, atol=1e-7, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    assert fused.adam_steps.tolist() == eager.adam_steps.tolist() == [3.0, 3.0, 0.0]
    assert fused.skipped.tolist() == [0.0, 0.0, 3.0]


def test_the_compiled_update_makes_no_temporary_of_the_members_weights():
    # The eager update makes several [G, P] temporaries, each a full pass over memory (on an H100, about a millisecond
    # each for 30 models of 10M parameters); compiled, the elementwise work is one pass that allocates none.
    from torch.profiler import ProfilerActivity, profile

    trainer = GroupTrainer(CFG, [dataclasses.replace(c, compile=True) for c in _configs()], _data())
    grads = _grads_with_a_skipped_and_a_clipped_member()
    trainer.weights.grad = grads.clone()
    trainer.update(1e-2)  # compiles
    trainer.weights.grad = grads.clone()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer.update(1e-2)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < grads.numel() * grads.element_size(), f"an allocation of {largest} bytes"


def test_a_group_resumes_from_its_members_checkpoints(tmp_path):
    configs, data = _configs(steps=5), _data()
    dirs = [tmp_path / f"m{g}" for g in range(len(SEEDS))]
    whole = train_group(CFG, configs, data, [tmp_path / f"w{g}" for g in range(len(SEEDS))])
    train_group(CFG, [dataclasses.replace(c, steps=3) for c in configs], data, dirs)
    resumed = train_group(CFG, configs, data, dirs)
    for a, b in zip(resumed, whole):
        assert a["start_step"] == 3
        assert a["weights_sha256"] == b["weights_sha256"] and a["ema_sha256"] == b["ema_sha256"]
    # A member resumed by the single trainer continues too (same format).
    more = [dataclasses.replace(c, steps=6) for c in configs]
    assert train(CFG, more[0], data[0], dirs[0], progress=False)["start_step"] == 5


def test_bad_groups_are_refused(tmp_path):
    configs, data = _configs(), _data()
    with pytest.raises(ValueError, match=r"train_configs\[1\].*\['lr'\]"):
        check_group_configs([configs[0], dataclasses.replace(configs[1], lr=1.0)])
    with pytest.raises(ValueError, match="model_config.dropout"):
        GroupTrainer(dataclasses.replace(CFG, dropout=0.1), configs, data)
    with pytest.raises(ValueError, match="data: expected one tensor"):
        GroupTrainer(CFG, configs, data[:2])
    with pytest.raises(ValueError, match="distinct folders"):
        train_group(CFG, configs, data, [tmp_path] * 3)
    dirs = [tmp_path / f"m{g}" for g in range(3)]
    train_group(CFG, [dataclasses.replace(c, steps=3) for c in configs[:1]], data[:1], dirs[:1])
    with pytest.raises(ValueError, match="different steps"):
        train_group(CFG, configs, data, dirs)


def test_the_benchmark_runs_on_a_cpu_and_writes_its_record(tmp_path):
    import importlib.util
    import json

    script = Path(__file__).resolve().parents[1] / "experiments" / "bench_group_train.py"
    spec = importlib.util.spec_from_file_location("bench_group_train", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--device", "cpu", "--tiny", "--shapes", "tiny-a", "--group-sizes", "1,2", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "bench_group_train.json").read_text())
    assert record["command"].startswith("python experiments/bench_group_train.py --device cpu --tiny")
    assert record["matmul_flops"] > 0 and record["nominal_flops"] == 989e12
    assert [(r["mode"], r["group_size"]) for r in record["rows"]] == [("single", 1), ("group", 1), ("group", 2)]
    for r in record["rows"]:
        assert "error" not in r, r
        assert r["tokens_s"] > 0 and r["speedup"] > 0 and r["flops_per_token"] > 0
        assert r["mfu"] == pytest.approx(r["flops_per_token"] * r["tokens_s"] / record["matmul_flops"])
        assert r["mfu_989"] == pytest.approx(r["flops_per_token"] * r["tokens_s"] / 989e12)
    assert record["rows"][0]["speedup"] == 1.0
    # MFU counts the products a training step performs, as torch's FLOP counter counts them in the model's forward
    # pass (x3 for the backward's two products a weight) plus attention: the conditioning maps run once a sequence.
    performed = _counted_training_flops_per_token(TINY_A)
    for r in record["rows"]:
        assert r["mfu"] == pytest.approx(performed * r["tokens_s"] / record["matmul_flops"], rel=1e-9)
        assert r["mfu_with_head"] > r["mfu"]
    text = (tmp_path / "bench_group_train.txt").read_text()
    assert "# command:" in text and "| tiny-a (16 x 1) | group | 2 |" in text


TINY_A = DiTConfig(vocab_size=64, length=16, d_model=16, n_blocks=1, n_heads=2, cond_dim=16, dropout=0.0)


def _counted_training_flops_per_token(cfg: DiTConfig) -> float:
    """3 x the FLOPs of the products in one forward pass of a DiT of ``cfg`` (features and head), per token, as
    ``torch.utils.flop_counter`` counts them, plus attention's 12 L D per block."""
    from torch.utils.flop_counter import FlopCounterMode

    from amtheory.diffusion.model import DiT

    model = DiT(cfg)
    B = 3
    x = torch.randint(0, cfg.vocab_size, (B, cfg.length), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model.head(model.hidden(x, torch.full((B,), 0.5), check=False))
    counted = counter.get_flop_counts()["Global"]
    assert set(map(str, counted)) <= {"aten.mm", "aten.addmm"}, counted  # attention is added below, not counted
    return 3 * counter.get_total_flops() / (B * cfg.length) + 12 * cfg.n_blocks * cfg.length * cfg.d_model


def test_the_recorded_group_benchmark_is_restated_under_both_flop_counts(capsys):
    import importlib.util
    import json

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_group_train", root / "experiments" / "bench_group_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorded = root / "benchmarks" / "h100_bench_group_train.json"
    restated = module.main(["--accounting-from", str(recorded)])
    sections = json.loads(recorded.read_text())
    assert list(restated) == list(sections)
    out = capsys.readouterr().out
    for title, rec in restated.items():
        assert title in out
        for r, was in zip(rec["rows"], sections[title]["rows"]):
            if "tokens_s" not in was:
                continue
            # The recorded MFU was the 6 N count with the head; restated, it stays beside the performed count.
            assert r["mfu_with_head"] == pytest.approx(was["mfu"], rel=1e-9)
            cfg = DiTConfig.from_dict(rec["shapes"][r["shape"]])
            performed = _counted_training_flops_per_token(cfg)
            assert r["mfu"] == pytest.approx(performed * was["tokens_s"] / rec["matmul_flops"])
    bf16 = restated["batch 64, bf16 autocast (gpu-micro, gpu-small, gpu-quick)"]["rows"]
    quick = next(r for r in bf16 if r["shape"] == "gpu-quick" and r["mode"] == "group")
    assert (round(100 * quick["mfu"], 1), round(100 * quick["mfu_with_head"], 1)) == (15.0, 17.8)
    assert "| gpu-quick (256 x 6) | group | 30 | 43.50 | 2,824,965 | 12.03 | 15.0% | 12.1% | 17.8% |" in out


def test_the_update_benchmark_runs_on_a_cpu_and_writes_its_record(tmp_path):
    import json

    from _studies import load_experiment

    main = load_experiment("bench_group_update").main
    main(["--device", "cpu", "--tiny", "--shapes", "tiny-a", "--group-size", "3", "--repeats", "2", "--warmup", "1",
          "--out", str(tmp_path)])  # fmt: skip
    record = json.loads((tmp_path / "bench_group_update.json").read_text())
    assert record["command"].startswith("python experiments/bench_group_update.py --device cpu --tiny")
    (row,) = record["rows"]
    tiny = DiTConfig(vocab_size=64, length=16, d_model=16, n_blocks=1, n_heads=2, cond_dim=16, dropout=0.0)
    assert (row["shape"], row["G"], row["P"]) == ("tiny-a", 3, GroupLayout.of(tiny).width)
    for mode in ("eager", "compiled"):
        assert row[f"{mode}_s"] > 0
        assert row[f"{mode}_gb_s"] == pytest.approx(record["passes"] * 3 * row["P"] * 4 / row[f"{mode}_s"] / 1e9)
    assert row["speedup"] == pytest.approx(row["eager_s"] / row["compiled_s"])
    assert "| tiny-a | 3 |" in (tmp_path / "bench_group_update.txt").read_text()
    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--tiny", "--group-size", "0", "--out", str(tmp_path)])


def test_flops_per_token_counts_the_products_a_step_performs_and_the_6n_counts():
    from amtheory.diffusion.model import DiT
    from amtheory.studies.benchmarks.flops import flops_per_token, step_flops
    from amtheory.studies.benchmarks.group_training import preset_shapes

    shapes, _ = preset_shapes(False)
    for cfg in (TINY_A, CFG, *shapes.values()):
        attention = 12 * cfg.n_blocks * cfg.length * cfg.d_model
        assert flops_per_token(cfg) == pytest.approx(_counted_training_flops_per_token(cfg), rel=1e-12)
        with torch.device("meta"):
            model = DiT(cfg)
        total, embed, head = (sum(p.numel() for p in model.parameters()), model.embed.weight.numel(),
                              model.out.weight.numel())  # fmt: skip
        assert flops_per_token(cfg, "with_head") == 6 * (total - embed) + attention
        assert flops_per_token(cfg, "non_embedding") == 6 * (total - embed - head) + attention
        assert flops_per_token(cfg, "all") == 6 * total + attention
        assert step_flops(cfg, 5, count="all") == flops_per_token(cfg, "all") * 5 * cfg.length
    # The study's three models: the 6 N count with the head counts 1.19-1.31x the FLOPs their steps perform.
    ratios = [flops_per_token(c, "with_head") / flops_per_token(c) for c in shapes.values()]
    assert ratios == pytest.approx([1.309, 1.253, 1.185], abs=1e-3)
    with pytest.raises(ValueError, match="count: expected one of"):
        flops_per_token(CFG, "some")
    with pytest.raises(TypeError, match="cfg: expected a DiTConfig"):
        flops_per_token({"d_model": 16})


def _study_preset(**kw):
    """A memorization preset of two nano models on the embedded corpus, small enough for a test to run whole."""
    from amtheory.studies.memorization import DataSpec, EvalSettings, ModelSpec, Preset

    kw.setdefault("backends", ())
    return Preset(
        name="micro", data=DataSpec("embedded", 12, 128),
        archs=(ModelSpec("nano", d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0),),
        sizes=(4, 16), batch_size=4, lr=3e-3, warmup=2, ema=0.9,
        settings=EvalSettings(n_eval=3, ts=(0.1, 0.5), n_steps=4, n_basin=2, basin_trials=2, basin_steps=2,
                              n_generate=3, nelbo_ts=2, kl_ts=(0.5,), empirical_steps=3, hopfield_max_iter=2),
        **kw,
    )  # fmt: skip


def test_the_memorization_tables_are_the_same_with_cells_trained_in_groups(tmp_path):
    from _tables import assert_same_tables

    from amtheory.studies.memorization import run_experiment

    p = _study_preset(steps=12, checkpoint_every=5)
    alone = run_experiment(p, tmp_path / "alone", device="cpu", progress=False)
    grouped = run_experiment(dataclasses.replace(p, train_group=2), tmp_path / "grouped", device="cpu", progress=False)
    assert_same_tables(alone, grouped, tmp_path / "alone", tmp_path / "grouped")


def test_the_benchmark_profiles_each_group_when_asked(tmp_path, capsys):
    """--profile prints where a few steps of each group spend their time, after that group's timing."""
    from amtheory.studies.benchmarks.group_training import main

    main(["--device", "cpu", "--tiny", "--shapes", "tiny-a", "--group-sizes", "2", "--profile",
          "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert "--- profile: tiny-a group of 2, 3 steps, sorted by cpu_time_total" in out
    assert "--- profile: tiny-a one-at-a-time" not in out  # the baseline is timed, not profiled


def _run_cut_in(module, name: str, p, out: Path, monkeypatch) -> None:
    """Run the preset ``p`` into ``out`` as a job whose time runs out when it calls ``module.name``."""
    from amtheory.studies.memorization import run_experiment

    def stop(*args, **kwargs):
        raise KeyboardInterrupt("the job's time ran out")

    with monkeypatch.context() as m:
        m.setattr(module, name, stop)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(p, out, device="cpu", progress=False)


def test_a_run_cut_while_measuring_keeps_the_training_rows_of_its_groups(tmp_path, monkeypatch):
    # A job stopped during the grouped measurements must not lose what the grouped training recorded: the next job
    # finds the models trained and their rows (final loss, steps run) as the uncut run has them.
    from amtheory.core.sweep import result_path
    from amtheory.studies.memorization import group_evaluation, run_experiment

    p = _study_preset(steps=6, checkpoint_every=3, train_group=2, eval_group=2)
    whole = run_experiment(p, tmp_path / "whole", device="cpu", progress=False)["train"]

    _run_cut_in(group_evaluation, "evaluate_models_in_groups", p, tmp_path / "cut", monkeypatch)
    for tc in p.train_cells():
        assert result_path(tmp_path / "cut" / "train", tc).exists(), tc
    resumed = run_experiment(p, tmp_path / "cut", device="cpu", progress=False)["train"]
    key = ["model_size", "train_size", "seed"]
    whole, resumed = whole.sort_values(key).reset_index(drop=True), resumed.sort_values(key).reset_index(drop=True)
    assert (resumed["steps_run"] == p.steps).all()
    torch.testing.assert_close(torch.tensor(resumed["final_loss"].to_numpy()),
                               torch.tensor(whole["final_loss"].to_numpy()))  # fmt: skip


def test_a_group_cut_while_measuring_keeps_the_measurements_it_finished(tmp_path, monkeypatch):
    # A group's measurements take minutes on a GPU; a job whose time runs out in one of them (the NELBO, say) must
    # keep the tables of the measurements before it, and the next job finishes the rest into the uncut run's tables.
    from _tables import assert_same_tables

    from amtheory.core.sweep import result_path
    from amtheory.diffusion import group_eval
    from amtheory.studies.memorization import MEASURES, EvalCell, run_experiment

    p = _study_preset(steps=3, checkpoint_every=3, train_group=2, eval_group=2)
    whole = run_experiment(p, tmp_path / "whole", device="cpu", progress=False)

    _run_cut_in(group_eval, "group_stratified_nelbo", p, tmp_path / "cut", monkeypatch)
    before = MEASURES[: MEASURES.index("nelbo")]
    for tc in p.train_cells():
        for measure in MEASURES:
            written = result_path(tmp_path / "cut" / measure, EvalCell(tc, measure, p.settings)).exists()
            assert written == (measure in before), (tc, measure)
    resumed = run_experiment(p, tmp_path / "cut", device="cpu", progress=False)
    assert_same_tables(whole, resumed, tmp_path / "whole", tmp_path / "cut")


def test_a_run_cut_while_training_keeps_the_rows_of_the_groups_it_finished(tmp_path, monkeypatch):
    # A job stopped while a later group trains (the longer budget, say) keeps the rows of the groups it finished as
    # they trained (steps run, time per step); they are not written as "found trained, 0 steps" by the next job.
    from amtheory.core.sweep import result_path
    from amtheory.diffusion import group_run
    from amtheory.studies.memorization import run_experiment

    p = _study_preset(steps=4, checkpoint_every=4, budgets=(1, 2), train_group=2, eval_group=2)
    real = group_run.train_group
    calls = []

    def cut_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("the job's time ran out")
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(group_run, "train_group", cut_second)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(p, tmp_path / "cut", device="cpu", progress=False)
    first = [tc for tc in p.train_cells() if tc.steps == p.steps]
    assert len(first) == 2
    for tc in first:
        assert result_path(tmp_path / "cut" / "train", tc).exists(), tc
    rows = run_experiment(p, tmp_path / "cut", device="cpu", progress=False)["train"]
    kept = rows[rows["steps"] == p.steps] if "steps" in rows else rows[rows["steps_run"] > 0]
    assert len(kept) == 2 and (kept["steps_run"] == p.steps).all() and kept["ms_per_step"].notna().all(), kept


def test_a_run_found_finished_reports_the_final_loss_of_its_log(tmp_path):
    # Called again on a finished run (a job that trained it was cut before its row was written), the trainers
    # train nothing and still report the run's last logged loss, not None.
    configs, data = _configs(), _data()
    dirs = [tmp_path / f"g{g}" for g in range(len(SEEDS))]
    first = train_group(CFG, configs, data, dirs)
    again = train_group(CFG, configs, data, dirs)
    assert [s["final_loss"] for s in again] == [s["final_loss"] for s in first]
    assert all(s["start_step"] == s["steps"] for s in again)
    alone = train(CFG, configs[0], data[0], tmp_path / "alone", progress=False)
    assert train(CFG, configs[0], data[0], tmp_path / "alone", progress=False)["final_loss"] == alone["final_loss"]


def test_a_group_found_trained_is_reported_as_loaded_not_as_trained(tmp_path, capsys):
    from amtheory.studies.memorization.training import train_cells_in_groups

    cells = _study_preset(steps=3, checkpoint_every=3).train_cells()
    first = train_cells_in_groups(cells, "cpu", root=str(tmp_path), group_size=2)
    assert "trained 2 nano models to 3 steps in one group" in capsys.readouterr().out
    rows = train_cells_in_groups(cells, "cpu", root=str(tmp_path), group_size=2)
    out = capsys.readouterr().out
    assert "found 2 nano models to 3 steps trained already" in out and "tokens/s" not in out
    assert all(r["steps_run"].item() == 0 and r["final_loss"].notna().all() for r in rows.values())
    # Its training time is the one the training recorded, not the loading time of the second call.
    assert {c: r["wall_s"].item() for c, r in rows.items()} == {c: r["wall_s"].item() for c, r in first.items()}


def test_a_measured_group_says_where_its_time_went(tmp_path, capsys):
    import re

    from amtheory.studies.memorization import MEASURES, run_experiment
    from amtheory.studies.memorization.cells import BATCHED_MEASURES

    run_experiment(_study_preset(steps=3, checkpoint_every=3, eval_group=2), tmp_path, device="cpu", progress=False)
    line = next(x for x in capsys.readouterr().out.splitlines() if "models in one group:" in x and "measured" in x)
    parts = re.findall(r"([a-z_ ]+?) (\d+\.\d)(?: \((\d+) passes\))?(?:,|\)$)", line.split("(s: ")[1])
    split = {k.strip(): float(v) for k, v, _ in parts}
    passes = {k.strip(): int(n) for k, _, n in parts if n}
    # One measurement at a time: the batched work of recovery, fixed points, generation and the NELBO (their chains,
    # samples, entropies), then that measurement's tables in lockstep.
    order = [step for m in MEASURES for step in ((f"batched {m}", m) if m in BATCHED_MEASURES else (m,))]
    assert list(split) == ["load", *order], line
    total = float(re.search(r"one group: (\d+\.\d) s", line).group(1))
    assert sum(split.values()) <= total + 0.1 * len(split)
    # Each lockstep phase's passes, and together the group's.
    assert list(passes) == list(MEASURES) and passes["basins"] > 0, line
    # The tables of the batched measurements take their chains, samples, entropies and NELBO from the batched
    # passes: the one lockstep pass of each such phase is each member's store() checking its network's output once.
    assert all(passes[m] == 1 for m in BATCHED_MEASURES), line
    assert sum(passes.values()) == int(re.search(r"(\d+) lockstep passes", line).group(1)), line


@pytest.mark.parametrize("eval_group", [1, 2])
def test_a_preset_with_some_measures_runs_only_those(tmp_path, eval_group):
    # A quick probe (which budget memorizes?) needs the recovery alone: the other measurements' folders stay
    # empty, alone or in lockstep groups, and the recovery tables are the full run's.
    import pandas as pd

    from amtheory.studies.memorization import MEASURES, run_experiment

    p = _study_preset(steps=3, checkpoint_every=3, eval_group=eval_group, measures=("recovery",))
    tables = run_experiment(p, tmp_path / "probe", device="cpu", progress=False)
    assert len(tables["recovery"]) > 0 and len(tables["train"]) == 2
    for m in MEASURES:
        if m != "recovery":
            assert tables[m].empty and not list((tmp_path / "probe" / m).glob("*.parquet")), m
    whole = run_experiment(dataclasses.replace(p, measures=MEASURES), tmp_path / "whole", device="cpu", progress=False)
    key = ["train_size", "split", "t", "sequence"]
    a = tables["recovery"].sort_values(key).reset_index(drop=True)
    b = whole["recovery"].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[[c for c in a.columns if not c.endswith("_s")]],
                                  b[[c for c in b.columns if not c.endswith("_s")]])  # fmt: skip


def test_a_preset_refuses_unknown_or_repeated_measures():
    for bad in ((), ("recovery", "recovery"), ("recall",), "recovery"):
        with pytest.raises((ValueError, TypeError), match="measures: expected"):
            _study_preset(steps=3, measures=bad)


def _adds_up(first: dict, second: dict) -> None:
    # The second job's total is the first's plus the part of its own call spent training (more than nothing, at most
    # the whole call, which also loads the run and writes its last checkpoint): bounds, not a timing tolerance.
    assert first["train_wall_s"] < second["train_wall_s"] <= first["train_wall_s"] + second["wall_s"] + 1e-9


def test_the_training_time_of_a_run_adds_up_over_the_jobs_that_trained_it(tmp_path):
    # A run trained in two jobs reports the time of both (its checkpoints carry the time so far), and a later call
    # that finds it finished reports that same time rather than its own loading time.
    configs, data = _configs(), _data()
    dirs = [tmp_path / f"g{g}" for g in range(len(SEEDS))]
    first = train_group(CFG, [dataclasses.replace(c, steps=3) for c in configs], data, dirs)
    second = train_group(CFG, configs, data, dirs)
    for a, b in zip(first, second):
        assert a["train_wall_s"] > 0 and b["start_step"] == 3
        _adds_up(a, b)
    again = train_group(CFG, configs, data, dirs)
    assert [s["train_wall_s"] for s in again] == [s["train_wall_s"] for s in second]
    one = dataclasses.replace(configs[0], steps=3)
    a = train(CFG, one, data[0], tmp_path / "alone", progress=False)
    b = train(CFG, configs[0], data[0], tmp_path / "alone", progress=False)
    _adds_up(a, b)
    assert train(CFG, configs[0], data[0], tmp_path / "alone", progress=False)["train_wall_s"] == b["train_wall_s"]


def test_a_filled_training_split_is_measured_alike_alone_and_in_a_group(tmp_path):
    # fill_train: the 4-block set gives 6 recovery queries (its blocks in turn, each with its own corruption) whether
    # its model is measured alone or with the others of its shape; the other measurements keep the distinct blocks.
    from _tables import assert_same_tables

    from amtheory.studies.memorization import run_experiment

    p = _study_preset(steps=3, checkpoint_every=3, measures=("recovery", "fixed_points"))
    p = dataclasses.replace(p, settings=dataclasses.replace(p.settings, n_eval=6, fill_train=True))
    alone = run_experiment(p, tmp_path / "alone", device="cpu", progress=False)
    grouped = run_experiment(dataclasses.replace(p, eval_group=2), tmp_path / "grouped", device="cpu", progress=False)
    kept = ("train", "recovery", "fixed_points")
    assert_same_tables({k: alone[k] for k in kept}, {k: grouped[k] for k in kept}, tmp_path / "alone",
                       tmp_path / "grouped")  # fmt: skip
    rec = alone["recovery"]
    small = rec[(rec["train_size"] == 4) & (rec["split"] == "train") & (rec["t"] == 0.5)]
    assert small["block"].tolist() == [0, 1, 2, 3, 0, 1]
    xq = np.stack(small["xq"].to_numpy())
    assert not np.array_equal(xq[0], xq[4])  # the same block, corrupted anew
    fixed = alone["fixed_points"]
    assert len(fixed[(fixed["train_size"] == 4) & (fixed["split"] == "train")]) == 4


def test_a_compiled_preset_measures_its_recovery_with_compiled_blocks(tmp_path, monkeypatch):
    # compile: the recovery chains of a measured group (forward passes of one shape, [members, batch_size // 2, L])
    # run the blocks under torch.compile with static shapes, as the training does; the rest (fixed points, NELBO:
    # subgroups and batches of many sizes) stays eager.
    # torch.compile stands in here as a recorder that runs each function eagerly: the test is of what is compiled and
    # used where, not of the compiler (tests/test_group_eval.py compares compiled blocks with eager ones).
    from amtheory.diffusion import group_eval, group_model, train_step
    from amtheory.studies.memorization import run_experiment

    calls: dict[tuple[str, bool], int] = {}

    def recorder(fn, dynamic=None, **kw):
        key = (fn.__name__, bool(dynamic))
        calls.setdefault(key, 0)

        def run(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(torch, "compile", recorder)
    monkeypatch.setattr(group_model, "_COMPILED", {})  # built anew with the recorder, and restored after the test
    monkeypatch.setattr(train_step, "_COMPILED_KERNEL", {})
    used: list[tuple[str, object]] = []  # (what ran, its denoiser's block function)
    chain, nelbo = group_eval.group_reverse_chain, group_eval.group_stratified_nelbo

    def chain_spy(denoiser, dynamics, *args, **kwargs):
        used.append((f"{dynamics.sampler} chain", denoiser.block_fn))
        return chain(denoiser, dynamics, *args, **kwargs)

    def nelbo_spy(denoiser, *args, **kwargs):
        used.append(("nelbo", denoiser.block_fn))
        return nelbo(denoiser, *args, **kwargs)

    monkeypatch.setattr(group_eval, "group_reverse_chain", chain_spy)
    monkeypatch.setattr(group_eval, "group_stratified_nelbo", nelbo_spy)
    p = _study_preset(steps=3, checkpoint_every=3, train_group=2, eval_group=2, compile=True,
                      measures=("recovery", "fixed_points", "nelbo"))  # fmt: skip
    run_experiment(p, tmp_path, device="cpu", progress=False)
    static = group_model._COMPILED["block, dynamic=False"]
    assert calls[("group_block", False)] > 0 and ("group_block", True) not in calls
    assert {what for what, _ in used} == {"ancestral chain", "argmax chain", "nelbo"}
    for what, block_fn in used:
        assert block_fn is (static if what == "ancestral chain" else None), what  # the recovery chains: static
    # Without compile, nothing of the measuring is compiled.
    calls.clear()
    used.clear()
    run_experiment(dataclasses.replace(p, compile=False), tmp_path / "eager", device="cpu", progress=False)
    assert calls == {} and used and all(block_fn is None for _, block_fn in used)
