"""The DiT denoiser (sizes, initial state, conditioning, dtypes, errors) and its checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from amtheory.diffusion.checkpoint import CheckpointError, check_compatible, load_model, save_checkpoint
from amtheory.diffusion.model import DiT, DiTConfig

torch.set_num_threads(1)
V, L = 37, 12


def _model(seed: int = 0, **kw) -> DiT:
    """A micro model whose zero-initialised layers are given random values, so that every path matters."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = DiT(DiTConfig.preset("cpu-micro", V, L, **kw))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "adaLN" in name or name.startswith("out."):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m.eval()


def _tokens(B=3, seed=0):
    return torch.randint(0, V, (B, L), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "name, total, emb",
    [("tiny", 23.7e6, 15.6e6), ("small", 139.3e6, None), ("medium", 384.0e6, None)],
)
def test_paper_parameter_counts(name, total, emb):
    with torch.device("meta"):
        counts = DiT(DiTConfig.preset(name, 30522, 128)).count_parameters()
    assert abs(counts["total"] - total) < 0.05e6, counts
    if emb is not None:
        assert abs(counts["embedding_and_head"] - emb) < 0.05e6, counts
    # The embedding and head weight are 2 V d; the rest depends on V only through the head's V biases.
    with torch.device("meta"):
        other = DiT(DiTConfig.preset(name, 30522 + 100, 128)).count_parameters()
    d = DiTConfig.preset(name, 30522, 128).d_model
    assert other["embedding_and_head"] - counts["embedding_and_head"] == 2 * 100 * d
    assert other["non_embedding"] - counts["non_embedding"] == 100


def test_initial_prediction_is_uniform():
    m = DiT(DiTConfig.preset("cpu-micro", V, L)).eval()
    logits = m(_tokens(), torch.tensor([0.1, 1.0, 5.0]))
    assert logits.dtype == torch.float32 and logits.shape == (3, L, V)
    assert torch.allclose(logits.softmax(-1), torch.full_like(logits, 1 / V))


def test_hidden_then_head_is_forward_and_depends_on_time_and_all_positions():
    m = _model()
    x = _tokens()
    s = torch.tensor([0.2, 0.2, 0.2])
    y = m(x, s)
    assert torch.equal(m.head(m.hidden(x, s)), y)
    assert not torch.allclose(m(x, s * 10), y), "time conditioning has no effect"
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % V
    assert not torch.allclose(m(x2, s)[:, 0], y[:, 0]), "position 0 does not see the last token"
    # Without positions the network would be permutation-equivariant; rotary positions break that.
    perm = torch.arange(L)
    perm[[2, 5]] = perm[[5, 2]]
    assert not torch.allclose(m(x[:, perm], s)[:, 2], y[:, 5], atol=1e-4)


def test_dropout_only_in_training_mode():
    m = _model(dropout=0.5)
    x, s = _tokens(), torch.ones(3)
    assert torch.equal(m(x, s), m(x, s))
    m.train()
    assert not torch.equal(m(x, s), m(x, s))


def test_logits_stay_float32_under_bf16_autocast():
    m = _model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = m.hidden(_tokens(), torch.ones(3))
        y = m.head(h)
    assert h.dtype == torch.float32 and y.dtype == torch.float32
    assert torch.allclose(y, m(_tokens(), torch.ones(3)), atol=0.1, rtol=0.05)


def test_config_round_trip_and_errors():
    cfg = DiTConfig.preset("small", 100, 64)
    assert DiTConfig.from_dict(cfg.to_dict()) == cfg
    assert DiTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="name"):
        DiTConfig.preset("huge", 100, 64)
    with pytest.raises(ValueError, match="d_model"):
        DiTConfig(vocab_size=10, length=4, d_model=30, n_blocks=1, n_heads=4)
    with pytest.raises(ValueError, match="head width"):
        DiTConfig(vocab_size=10, length=4, d_model=12, n_blocks=1, n_heads=4)
    with pytest.raises(ValueError, match="dropout"):
        DiTConfig(vocab_size=10, length=4, d_model=8, n_blocks=1, n_heads=2, dropout=1.0)
    with pytest.raises(ValueError, match="unknown"):
        DiTConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_bad_input():
    m = _model()
    x = _tokens()
    with pytest.raises(ValueError, match="x_BL.*tokens in"):
        m(x + V, torch.ones(3))
    with pytest.raises(TypeError, match="x_BL"):
        m(x.float(), torch.ones(3))
    with pytest.raises(ValueError, match="sigma_B"):
        m(x, -torch.ones(3))
    with pytest.raises(ValueError, match="sigma_B"):
        m(x, torch.ones(2))
    with pytest.raises(ValueError, match="length"):
        m(torch.zeros(1, L + 1, dtype=torch.long), torch.ones(1))


# ------------------------------------------------------------------------------------------------ checkpoints
def _save(tmp_path, m, ema_scale=0.5, meta=None):
    ema = {k: v * ema_scale for k, v in m.state_dict().items()}
    opt = torch.optim.AdamW(m.parameters())
    return save_checkpoint(
        tmp_path / "ck", model=m, ema_state=ema, optimizer=opt, step=7, model_config=m.config,
        train_config={"lr": 1e-3}, meta=meta if meta is not None else {"vocab_sha256": "abc"},
    )  # fmt: skip


def test_checkpoint_round_trip(tmp_path):
    m = _model()
    path = _save(tmp_path, m)
    x, s = _tokens(), torch.ones(3)
    loaded, cfg, meta = load_model(path, ema=False)
    assert cfg == m.config and meta["weights_loaded"] == "model" and meta["step"] == 7
    assert torch.equal(loaded(x, s), m(x, s))
    ema_model, _, meta = load_model(path)
    assert meta["weights_loaded"] == "ema"
    assert torch.equal(ema_model.out.weight, m.out.weight * 0.5)
    assert not list(tmp_path.glob(".*tmp*")), "temporary folder left behind"
    # Saving again replaces the folder as a whole.
    _save(tmp_path, m, ema_scale=2.0)
    assert torch.equal(load_model(path)[0].out.weight, m.out.weight * 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_check_compatible(tmp_path):
    m = _model()
    _, _, meta = load_model(_save(tmp_path, m))
    check_compatible(meta, expected_vocab_sha="abc", expected_config=m.config)
    with pytest.raises(CheckpointError, match="tokenizer"):
        check_compatible(meta, expected_vocab_sha="def")
    other = DiTConfig.preset("cpu-micro", V + 1, L)
    with pytest.raises(CheckpointError, match="vocab_size"):
        check_compatible(meta, expected_config=other)
    with pytest.raises(ValueError, match="tokenizer"):  # callers that catch ValueError catch it too
        check_compatible(meta, expected_vocab_sha="def")
    with pytest.raises(CheckpointError, match="checkpoint folder"):
        load_model(tmp_path / "missing")
