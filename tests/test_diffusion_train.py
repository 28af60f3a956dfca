"""The UDDM trainer: it learns, stays finite on tiny sets, resumes bit-identically, accumulates gradients
exactly, runs data-parallel over gloo, and its CLI writes a checkpoint."""

from __future__ import annotations

import json
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from amtheory.diffusion.checkpoint import CheckpointError, load_model
from amtheory.diffusion.loss import antithetic_times, chunked_nelbo, forward_noise
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.train import (
    EMA,
    NELBOObjective,
    TrainConfig,
    optimizer_step,
    sample_batch,
    step_generator,
    train,
)

torch.set_num_threads(1)


def _progressions(n: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    """Rows ``(a + b j) mod V``: learnable structure, so a few hundred steps can show progress."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, vocab, (n, 1), generator=g)
    b = torch.randint(1, 4, (n, 1), generator=g)
    return (a + b * torch.arange(length)) % vocab


@torch.no_grad()
def _eval_nelbo(model: DiT, data: torch.Tensor, seed: int = 123) -> float:
    """NELBO of ``model`` on ``data`` with fixed times and noise (eval mode)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x0 = data.repeat(4, 1)
    t = antithetic_times(x0.shape[0], generator=g)
    xt, a, ap = forward_noise(x0, t, model.config.vocab_size, generator=g)
    h = model.hidden(xt, -torch.log(a))
    return float(chunked_nelbo(h, model.out.weight, x0, xt, a, ap, head_bias=model.out.bias))


def test_training_lowers_the_loss(tmp_path):
    V, L = 50, 16
    data = _progressions(48, L, V, seed=0)
    mc = DiTConfig.preset("cpu-micro", V, L, dropout=0.0)
    tc = TrainConfig(steps=300, batch_size=32, lr=3e-3, warmup=20, seed=1, checkpoint_every=300, log_every=50)
    summary = train(mc, tc, data, tmp_path, device="cpu", progress=False)
    initial = _eval_nelbo(DiT(mc), data)  # the zero output layer makes every fresh model predict uniformly
    trained = _eval_nelbo(load_model(tmp_path, ema=False)[0], data)
    ema = _eval_nelbo(load_model(tmp_path, ema=True)[0], data)
    assert summary["skipped_steps"] == 0
    assert trained < 0.8 * initial, (initial, trained)
    assert ema < initial, (initial, ema)
    assert summary["losses"][-1][1] < summary["losses"][0][1]


def test_tiny_training_set_stays_finite(tmp_path):
    """docs/theory.md, "Numerical pitfalls": a few dozen sequences diverged to NaN. Here 16 sequences, a high lr,
    250 steps."""
    V, L = 100, 32
    data = torch.randint(0, V, (16, L), generator=torch.Generator().manual_seed(3))
    mc = DiTConfig.preset("cpu-micro", V, L)
    tc = TrainConfig(steps=250, batch_size=16, lr=3e-3, warmup=10, seed=2, checkpoint_every=250, log_every=10)
    summary = train(mc, tc, data, tmp_path, device="cpu", progress=False)
    losses = torch.tensor([l for _, l in summary["losses"]])
    assert torch.isfinite(losses).all() and summary["skipped_steps"] == 0
    model, _, _ = load_model(tmp_path, ema=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-5:].mean() < losses[:5].mean()


class _Stop(Exception):
    pass


def test_resume_is_bit_identical(tmp_path):
    V, L = 30, 8
    data = _progressions(10, L, V, seed=4)
    mc = DiTConfig.preset("cpu-micro", V, L)  # dropout 0.1: its masks must be reproduced too
    tc = TrainConfig(steps=7, batch_size=6, lr=1e-3, warmup=3, seed=5, checkpoint_every=2, log_every=1)
    rng_before = torch.get_rng_state()
    full = train(mc, tc, data, tmp_path / "full", device="cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before), "training touched the global RNG"

    def stop_after_5(step, record):
        if step == 5:
            raise _Stop  # dies after step 5; the last checkpoint is at step 4

    with pytest.raises(_Stop):
        train(mc, tc, data, tmp_path / "cut", device="cpu", progress=False, callback=stop_after_5)
    resumed = train(mc, tc, data, tmp_path / "cut", device="cpu", progress=False)
    assert resumed["start_step"] == 4
    assert resumed["weights_sha256"] == full["weights_sha256"]
    assert resumed["ema_sha256"] == full["ema_sha256"]
    assert resumed["losses"][-3:] == full["losses"][-3:]
    # A changed seed gives other weights (the hash can tell runs apart).
    other = train(mc, TrainConfig(**{**tc.to_dict(), "seed": 6}), data, tmp_path / "o", device="cpu", progress=False)
    assert other["weights_sha256"] != full["weights_sha256"]
    # Resuming with other data or another model config is refused.
    with pytest.raises(CheckpointError, match="other data"):
        train(mc, tc, (data + 1) % V, tmp_path / "full", device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="model config"):
        train(DiTConfig.preset("cpu-micro", V, L, dropout=0.0), tc, data, tmp_path / "full", progress=False)
    with pytest.raises(CheckpointError, match="train config"):
        train(mc, TrainConfig(**{**tc.to_dict(), "lr": 0.1}), data, tmp_path / "full", progress=False)
    with pytest.raises(ValueError, match="resume=False"):
        train(mc, tc, data, tmp_path / "full", resume=False, progress=False)


def test_gradient_accumulation_is_exact():
    V, L = 20, 8
    mc = DiTConfig.preset("cpu-micro", V, L, dropout=0.0)
    batch = sample_batch(_progressions(12, L, V, 6), 8, V, torch.Generator().manual_seed(0))
    deltas = []
    for accum in (1, 4):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = DiT(mc)
        with torch.no_grad():
            model.out.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
        before = [p.detach().clone() for p in model.parameters()]
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)
        optimizer_step(NELBOObjective(model, chunk_rows=5), sgd, batch, grad_accum=accum, clip=0.0, autocast_dtype=None)
        deltas.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]))
    assert deltas[0].abs().max() > 0
    assert torch.allclose(deltas[0], deltas[1], rtol=1e-4, atol=1e-7)


def test_bad_input(tmp_path):
    mc = DiTConfig.preset("cpu-micro", 20, 8)
    tc = TrainConfig(steps=1, batch_size=4)
    with pytest.raises(ValueError, match="data_BL"):
        train(mc, tc, torch.full((4, 8), 20), tmp_path, progress=False)
    with pytest.raises(ValueError, match="data_BL"):
        train(mc, tc, torch.zeros(4, 7, dtype=torch.long), tmp_path, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(steps=1, batch_size=6, grad_accum=4)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(steps=1, batch_size=4, lr=0.0)
    with pytest.raises(ValueError, match="attention"):
        TrainConfig(steps=1, batch_size=4, attention="flash")
    with pytest.raises(ValueError, match="norm"):
        TrainConfig(steps=1, batch_size=4, norm="apex")


@pytest.mark.parametrize("setting,fused,other", [("attention", "fused", "sdpa"), ("norm", "fused", "torch")])
def test_training_with_fused_kernels_matches_torch(tmp_path, setting, fused, other):
    """The trainer's ``attention`` and ``norm`` settings: a few steps with the fused kernels (Triton's interpreter
    on a CPU) give the losses and weights of the same steps through torch operations, up to float32 rounding;
    switching on resume is allowed (it does not change the optimisation)."""
    from amtheory.diffusion import attention_kernels, norm_kernels

    module = attention_kernels if setting == "attention" else norm_kernels
    if not module.available("cpu" if not torch.cuda.is_available() else "cuda"):
        pytest.skip("the fused kernels cannot run here")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    V, L = 30, 16
    data = _progressions(10, L, V, seed=4)
    mc = DiTConfig.preset("cpu-micro", V, L, dropout=0.0)
    base = dict(steps=4, batch_size=6, lr=3e-3, warmup=1, seed=5, checkpoint_every=2, log_every=1, bf16=False)
    runs = {a: train(mc, TrainConfig(**base, **{setting: a}), data, tmp_path / a, device=dev, progress=False)
            for a in (fused, other)}  # fmt: skip
    (fl, sl) = ([l for _, l in runs[a]["losses"]] for a in (fused, other))
    assert fl == pytest.approx(sl, rel=1e-4)
    wf, ws = (load_model(tmp_path / a, ema=False)[0].state_dict() for a in (fused, other))
    for k in ws:
        assert torch.allclose(wf[k], ws[k], rtol=1e-3, atol=1e-5), k
    assert any(not torch.equal(wf[k], ws[k]) for k in ws)  # the setting reached the model: rounding differs
    more = train(mc, TrainConfig(**{**base, "steps": 5}, **{setting: other}), data, tmp_path / fused, device=dev,
                 progress=False)  # fmt: skip
    assert more["start_step"] == 4


# ------------------------------------------------------------------------------------------------ DDP over gloo
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")  # fmt: skip
    torch.set_num_threads(1)
    V, L = 20, 8
    data = _progressions(12, L, V, seed=7)
    mc = DiTConfig.preset("cpu-micro", V, L)
    tc = TrainConfig(steps=4, batch_size=8, lr=1e-3, warmup=2, seed=3, checkpoint_every=4, log_every=2)
    summary = train(mc, tc, data, out, device="cpu", progress=False)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({k: summary[k] for k in ("weights_sha256", "world_size", "rank", "losses")}, f)


def test_two_process_data_parallel_over_gloo(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["weights_sha256"] == r1["weights_sha256"], "ranks diverged"
    assert r0["losses"] == r1["losses"], "the logged loss is the mean over ranks"
    model, _, meta = load_model(tmp_path, ema=False)
    assert meta["world_size"] == 2 and meta["step"] == 4
    # The checkpoint (written by rank 0 only) holds the weights both ranks ended with.
    from amtheory.diffusion.resume import weights_sha256

    assert weights_sha256(list(model.parameters())) == r0["weights_sha256"]


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_trains_from_a_token_corpus(tmp_path):
    from amtheory.diffusion.data import TokenCorpus
    from amtheory.diffusion.train import main

    g = torch.Generator().manual_seed(0)
    sentences = [torch.randint(104, 140, (int(n),), generator=g).tolist() for n in torch.randint(3, 12, (60,))]
    corpus = TokenCorpus.from_sentences(sentences, test_size=10, generator=g, vocab_size=140)
    corpus.save(tmp_path / "corpus")
    args = ["--data", str(tmp_path / "corpus"), "--n-train", "12", "--preset", "cpu-micro", "--length", "16",
            "--steps", "3", "--batch-size", "4", "--warmup", "1", "--out", str(tmp_path / "run"), "--device", "cpu",
            "--no-progress", "--checkpoint-every", "2"]  # fmt: skip
    summary = main(args)
    assert summary["steps"] == 3
    model, cfg, meta = load_model(tmp_path / "run")
    assert cfg.vocab_size == 140 and cfg.length == 16 and meta["step"] == 3
    assert meta["data"]["n_blocks"] == 12 and "vocab_sha256" in meta


# ------------------------------------------------------------------------------------------------ device-side skipping
def _setup_step(fused: bool, seed: int = 0):
    V, L = 20, 8
    mc = DiTConfig.preset("cpu-micro", V, L, dropout=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DiT(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=fused, foreach=None if fused else True)
    ema = EMA(model, 0.9)
    data = _progressions(12, L, V, 6)
    batches = [sample_batch(data, 8, V, torch.Generator().manual_seed(i)) for i in range(4)]
    return model, NELBOObjective(model, chunk_rows=16), opt, ema, batches


def _snapshot(model, opt, ema):
    params = [p.detach().clone() for p in model.parameters()]
    state = [{k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()]
    return params, state, [s.clone() for s in ema.shadow], ema.updates


@pytest.mark.parametrize("fused", [True, False])
def test_nonfinite_step_is_skipped_on_the_device(fused):
    """A NaN gradient leaves parameters, Adam moments and step count, and the EMA untouched, and is counted; the
    fused kernel skips through found_inf, the foreach optimizer through the masked update."""
    model, objective, opt, ema, batches = _setup_step(fused)
    skipped = torch.zeros(())
    kw = dict(grad_accum=1, clip=1.0, autocast_dtype=None, ema=ema, skipped=skipped)
    for b in batches[:2]:
        optimizer_step(objective, opt, b, **kw)
    before = _snapshot(model, opt, ema)
    assert before[3] == 2 and float(skipped) == 0
    handle = model.blocks[0].qkv.weight.register_hook(lambda g: g * float("nan"))
    _, norm, found_inf = optimizer_step(objective, opt, batches[2], **kw)
    handle.remove()
    assert not torch.isfinite(norm) and float(found_inf) == 1.0 and float(skipped) == 1.0
    after = _snapshot(model, opt, ema)
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0])), "parameters moved"
    for sb, sa in zip(before[1], after[1]):
        assert sb.keys() == sa.keys() and all(torch.equal(sb[k], sa[k]) for k in sb), "moments or step moved"
    assert all(torch.equal(a, b) for a, b in zip(before[2], after[2])), "EMA moved"
    assert after[3] == 2, "EMA update count moved"
    # The next finite step is taken normally.
    _, _, found_inf = optimizer_step(objective, opt, batches[3], **kw)
    assert float(found_inf) == 0.0 and float(skipped) == 1.0 and ema.updates == 3
    assert not all(torch.equal(a, p) for a, p in zip(before[0], model.parameters()))


def test_nonfinite_first_step_leaves_a_fresh_optimizer_fresh():
    model, objective, opt, ema, batches = _setup_step(False)
    before = [p.detach().clone() for p in model.parameters()]
    skipped = torch.zeros(())
    model.out.bias.register_hook(lambda g: g + float("inf"))
    optimizer_step(objective, opt, batches[0], grad_accum=1, clip=1.0, autocast_dtype=None, ema=ema, skipped=skipped)
    assert float(skipped) == 1.0 and ema.updates == 0 and len(opt.state) == 0
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_device_skipping_equals_the_plain_step_when_finite():
    """With nothing skipped, the masked optimizer and EMA give exactly the plain AdamW step and the plain EMA
    formula shadow <- lerp(shadow, p, 1 - min(decay, (1 + n)/(10 + n)))."""
    ref_model, ref_obj, ref_opt, _, batches = _setup_step(False, seed=1)
    model, objective, opt, ema, _ = _setup_step(False, seed=1)
    shadow = [p.detach().clone() for p in ref_model.parameters()]
    for n, b in enumerate(batches, start=1):
        ref_obj(b["x0"], b["xt"], b["alpha"], b["alpha_prime"], b["sigma"]).backward()
        torch.nn.utils.clip_grad_norm_(list(ref_model.parameters()), 1.0)
        ref_opt.step()
        ref_opt.zero_grad()
        torch._foreach_lerp_(shadow, [p.detach() for p in ref_model.parameters()], 1.0 - min(0.9, (1 + n) / (10 + n)))
        optimizer_step(objective, opt, b, grad_accum=1, clip=1.0, autocast_dtype=None, ema=ema)
    assert all(torch.equal(a, p) for a, p in zip(ref_model.parameters(), model.parameters()))
    assert all(torch.equal(a, s) for a, s in zip(shadow, ema.shadow))


def test_no_host_reads_in_a_fused_step(monkeypatch):
    """The step never reads a tensor on the host (bool/float/int/item), so on a GPU nothing waits for it."""
    model, objective, opt, ema, batches = _setup_step(True)
    skipped = torch.zeros(())
    kw = dict(grad_accum=1, clip=1.0, autocast_dtype=None, ema=ema, skipped=skipped, dropout_seed=3)
    optimizer_step(objective, opt, batches[0], **kw)  # state is created here

    def refuse(*args, **kwargs):
        raise AssertionError("host read of a tensor")

    for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    optimizer_step(objective, opt, batches[1], **kw)
    monkeypatch.undo()
    assert ema.updates == 2


def test_dropout_masks_come_from_the_step_seed_not_the_caller_rng():
    """optimizer_step re-seeds the device RNG from dropout_seed (training owns it during a run): the same seed
    gives the same step whatever the caller's RNG state; another seed gives other masks."""
    results = []
    for caller_seed, dropout_seed in ((0, 7), (1, 7), (0, 8)):
        V, L = 20, 8
        mc = DiTConfig.preset("cpu-micro", V, L, dropout=0.5)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = DiT(mc)
        with torch.no_grad():  # open the zero-initialised gates, or the masks would have no effect
            for name, p in model.named_parameters():
                if "adaLN" in name or name.startswith("out."):
                    p.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        batch = sample_batch(_progressions(12, L, V, 6), 8, V, torch.Generator().manual_seed(0))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(caller_seed)
            sgd = torch.optim.SGD(model.parameters(), lr=0.1)
            loss, _, _ = optimizer_step(NELBOObjective(model), sgd, batch, grad_accum=1, clip=0.0,
                                        autocast_dtype=None, dropout_seed=dropout_seed)  # fmt: skip
        results.append(float(loss))
    assert results[0] == results[1]
    assert results[0] != results[2]


def test_step_generator_reseeds_one_object():
    g = torch.Generator()
    a = step_generator(3, 0, 5, "cpu", g)
    assert a is g
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=step_generator(3, 0, 5, "cpu")))
    assert not torch.equal(torch.rand(4, generator=step_generator(3, 0, 6, "cpu", g)),
                           torch.rand(4, generator=step_generator(3, 0, 5, "cpu")))  # fmt: skip


def _rerecord_checksums(ckpt) -> None:
    """Record the current size and sha256 of every file of checkpoint folder ``ckpt`` in its checksums.json."""
    import hashlib

    sums = ckpt / "checksums.json"
    doc = json.loads(sums.read_text())
    for name in doc["files"]:
        data = (ckpt / name).read_bytes()
        doc["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    body = json.dumps(doc["files"], sort_keys=True, separators=(",", ":")).encode()
    doc["sha256"] = hashlib.sha256(body).hexdigest()
    sums.write_text(json.dumps(doc))


def test_cpu_bf16_switch_and_resume_of_an_older_config(tmp_path):
    """cpu_bf16 turns on bf16 autocast on CPU (other losses, still finite); a checkpoint written before the field
    existed (its config.json edited, and its checksum record with it) resumes, the missing field counting as its
    default."""
    V, L = 30, 8
    data = _progressions(10, L, V, seed=4)
    mc = DiTConfig.preset("cpu-micro", V, L, dropout=0.0)
    base = dict(steps=4, batch_size=6, lr=1e-3, warmup=2, seed=5, checkpoint_every=2, log_every=1)
    f32 = train(mc, TrainConfig(**base), data, tmp_path / "f32", progress=False)
    bf16 = train(mc, TrainConfig(**base, cpu_bf16=True), data, tmp_path / "bf16", progress=False)
    assert all(math.isfinite(l) for _, l in bf16["losses"]) and bf16["losses"] != f32["losses"]
    cfg_file = tmp_path / "f32" / "checkpoints" / "step-00000004" / "config.json"
    doc = json.loads(cfg_file.read_text())
    del doc["train_config"]["cpu_bf16"]
    cfg_file.write_text(json.dumps(doc))
    _rerecord_checksums(cfg_file.parent)
    more = train(mc, TrainConfig(**{**base, "steps": 5}), data, tmp_path / "f32", progress=False)
    assert more["start_step"] == 4 and more["steps"] == 5


def test_diagnosis_script_finds_an_injected_nan(tmp_path, capsys):
    """The training diagnosis (experiments/diagnose_training.py) with --small: timing parts run, and a NaN injected
    into the last block's MLP gradient at step 5 is reported there, with a finite float32 recomputation of the same
    step."""
    from amtheory.studies.benchmarks.training_diagnosis import main

    res = main(["--small", "--steps", "8", "--bench-steps", "2", "--inject-nan-at", "5", "--threads", "1"])
    assert res["phases_ms"]["total"] > 0 and res["trainer"]["second_ms_per_step"] > 0
    first = res["run"]["first_nonfinite"]
    assert first["step"] == 5 and res["run"]["skipped"] == 1
    assert first["origin"] == "blocks.1.mlp.2.weight"
    assert {b["param"] for b in first["nonfinite_grads"]} == {"blocks.1.mlp.2.weight"}
    assert first["recomputed_float32"]["finite"] and first["n_nonfinite_rows"] == 0
    assert len(first["attn_lse_min"]) == 2 and "first non-finite step: 5" in capsys.readouterr().out


def test_training_attention_leaves_out_cudnn():
    """The trainer's attention context must exclude the cuDNN kernel (non-finite backward seen on an H200) and
    still run attention on this machine."""
    import torch.nn.functional as F

    from amtheory.diffusion.train import training_attention_backends

    cuda = torch.backends.cuda
    allowed = (cuda.flash_sdp_enabled, cuda.mem_efficient_sdp_enabled, cuda.math_sdp_enabled)
    cuda.enable_cudnn_sdp(True)
    q = torch.randn(1, 2, 4, 8, requires_grad=True)
    with training_attention_backends():
        assert not cuda.cudnn_sdp_enabled() and all(on() for on in allowed)
        F.scaled_dot_product_attention(q, q, q).sum().backward()
    assert cuda.cudnn_sdp_enabled(), "the caller's setting is restored"
    assert torch.isfinite(q.grad).all()
