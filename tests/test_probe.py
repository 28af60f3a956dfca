import torch

from amtheory.diffusion.checkpoint import save_checkpoint
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.diffusion.probe import probe_checkpoint, reference_ranges


def test_probe_reads_a_checkpoint_and_reports_entropy(tmp_path):
    torch.manual_seed(0)
    cfg = DiTConfig(vocab_size=11, length=6, d_model=16, n_blocks=1, n_heads=2, cond_dim=8, dropout=0.0)
    model = DiT(cfg)
    save_checkpoint(
        tmp_path / "ckpt", model=model, ema_state=None, optimizer=None, step=3, model_config=cfg,
        train_config={}, meta={},
    )  # fmt: skip
    report = probe_checkpoint(tmp_path / "ckpt", n=3, n_steps=4, device="cpu", seed=1)
    assert report.per_sequence.shape == (3,)
    # A fresh DiT has a zero output layer: x_theta is uniform, so its entropy is log V on any input.
    torch.testing.assert_close(report.per_sequence, torch.full((3,), float(torch.log(torch.tensor(11.0)))).double())
    assert "conditional entropy" in report.text


def test_reference_ranges_are_shipped():
    ref = reference_ranges()
    assert ref is not None and {r["regime"] for r in ref["rows"]} == {"memorizing", "generalizing"}
    mem = next(r for r in ref["rows"] if r["regime"] == "memorizing")
    gen = next(r for r in ref["rows"] if r["regime"] == "generalizing")
    assert mem["generated"] < gen["generated"]
