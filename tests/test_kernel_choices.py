"""The kernel choices of a DiT travel with the model (:class:`amtheory.diffusion.kernels.Kernels`): two models with
different attention and norm kernels run interleaved in one process, each with its own kernels.

Without a GPU the fused kernels run in Triton's interpreter (conftest.py); float32 inputs make the fused kernels and
torch's operations differ by rounding only, so bit-equality tells which ran.
"""

import pytest
import torch

from amtheory.diffusion import attention_kernels as ak
from amtheory.diffusion import norm_kernels as nk
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.model import DiT, DiTConfig

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")

FUSED = Kernels(attention="fused", norm="fused")
TORCH = Kernels(attention="sdpa", norm="torch")


def _models():
    cfg = DiTConfig(vocab_size=40, length=12, d_model=64, n_blocks=2, n_heads=2, cond_dim=16, dropout=0.0)
    torch.manual_seed(0)
    a = DiT(cfg, kernels=FUSED).to(DEV)
    with torch.no_grad():  # away from the zero initialisation, so attention and norms shape the logits
        for p in a.parameters():
            p.add_(0.1 * torch.randn_like(p))
    b = DiT(cfg, kernels=TORCH).to(DEV)
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 40, (3, 12), generator=torch.Generator().manual_seed(1)).to(DEV)
    return a, b, x, torch.tensor([0.1, 1.0, 3.0], device=DEV)


def test_kernels_validated_and_loss_resolved():
    assert Kernels() == Kernels("auto", "auto", "auto")
    for field, bad in (("loss", "fused"), ("attention", "flash"), ("norm", "apex")):
        with pytest.raises(ValueError, match=field):
            Kernels(**{field: bad})
    assert Kernels(attention="sdpa").resolved("cpu") == Kernels(loss="eager", attention="sdpa")
    assert Kernels().resolved("cpu", compile=True).loss == ("triton" if DEV.type == "cuda" else "compiled")
    with pytest.raises(TypeError, match="kernels"):
        DiT(DiTConfig(vocab_size=40, length=12, d_model=64, n_blocks=1, n_heads=2), kernels="fused")


@pytest.mark.skipif(not (ak.available(DEV) and nk.available(DEV)), reason="Triton kernels cannot run on this device")
def test_models_with_different_kernels_run_interleaved():
    """Model A (fused attention and norms) and model B (SDPA and torch norms), same weights: B's forward run in the
    middle of A's (a hook on A's first block), and the two alternated, each give the logits of the model run alone,
    and A's differ from B's (the kernels differ by rounding), so each model ran its own kernels throughout."""
    a, b, x, sigma = _models()
    with torch.no_grad():
        alone_a, alone_b = a(x, sigma), b(x, sigma)
        assert not torch.equal(alone_a, alone_b)
        assert torch.allclose(alone_a, alone_b, rtol=1e-4, atol=1e-5)
        inner = []
        hook = a.blocks[0].register_forward_hook(lambda *_: inner.append(b(x, sigma)))
        outer = a(x, sigma)
        hook.remove()
        assert torch.equal(outer, alone_a) and torch.equal(inner[0], alone_b)
        for _ in range(2):
            assert torch.equal(b(x, sigma), alone_b) and torch.equal(a(x, sigma), alone_a)
    b.kernels = FUSED  # a model's choice is its own attribute: switching it switches that model only
    with torch.no_grad():
        assert torch.equal(b(x, sigma), alone_a) and torch.equal(a(x, sigma), alone_a)
