"""The UDDM trainer: it learns, stays finite on tiny sets, resumes bit-identically, accumulates gradients
exactly, runs data-parallel over gloo, and its CLI writes a checkpoint."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from amtheory.diffusion.checkpoint import CheckpointError, load_model
from amtheory.diffusion.loss import antithetic_times, chunked_nelbo, forward_noise
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.train import NELBOObjective, TrainConfig, optimizer_step, sample_batch, train

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
    """REFERENCE.md "Pitfalls": a few dozen sequences diverged to NaN. Here 16 sequences, a high lr, 250 steps."""
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
    from amtheory.diffusion.train import _weights_sha256

    assert _weights_sha256(list(model.parameters())) == r0["weights_sha256"]


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
