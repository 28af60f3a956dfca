"""The fused residual update and modulated LayerNorm of the DiT against a float64 evaluation of the same map.

Without a GPU the kernels run in Triton's interpreter (conftest.py); on a CUDA machine they are compiled.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.diffusion import norm_kernels as nk
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import sizes

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not nk.available(DEV), reason="Triton kernels cannot run on this device")
NAMES = ("x_new", "h", "grad x", "grad o", "grad gate", "grad weight", "grad shift", "grad scale")


def _case(B, L, D, seed=0, spread=3.0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * s

    inputs = (r(B, L, D, s=spread), r(B, L, D), r(B, D), r(D), r(B, D), r(B, D))  # x, o, gate, weight, shift, scale
    return inputs, (r(B, L, D), r(B, L, D))  # and the gradients of x_new and h


def _reference(inputs, grads, keep, p):
    ts = [t.clone().requires_grad_(True) for t in inputs]
    xn, h = nk.reference_add_norm(*ts, keep=keep, p=p)
    (xn * grads[0] + h * grads[1]).sum().backward()
    return [xn.detach(), h.detach()] + [t.grad for t in ts]


def _fused(inputs, grads, p, seed, o_dtype=torch.float32):
    dtypes = (torch.float32, o_dtype) + (torch.float32,) * 4
    ts = [t.to(DEV, dt).requires_grad_(True) for t, dt in zip(inputs, dtypes, strict=True)]
    xn, h = nk.add_norm(*ts, p=p, seed=seed, out_dtype=torch.float32)
    (xn * grads[0].to(DEV, torch.float32) + h * grads[1].to(DEV, torch.float32)).sum().backward()
    return [t.detach().cpu().double() for t in [xn, h] + [t.grad for t in ts]]


def _assert_close(got, ref, tol, names=NAMES):
    for name, a, b in zip(names, got, ref, strict=True):
        assert a.shape == b.shape, name
        err, size = float((a - b).abs().max()), float(b.abs().max())
        assert err <= tol * size, f"{name}: error {err:.2e} against values up to {size:.2e} (tolerance {tol})"


def _keep(p, shape, seed):
    return nk.dropout_keep(seed, shape, p).cpu() if p > 0 else None


@pytest.mark.parametrize("B,L,D", [(2, 20, 48), (1, 128, 256), (3, 1, 32), (2, 7, 100)])
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_float32_matches_float64_reference(B, L, D, p):
    """Outputs and every gradient, with and without dropout (the reference given the kernels' own mask)."""
    inputs, grads = _case(B, L, D)
    seed = torch.tensor([1234], dtype=torch.int64, device=DEV)
    ref = _reference(inputs, grads, _keep(p, (B, L, D), seed), p)
    _assert_close(_fused(inputs, grads, p, seed if p > 0 else None), ref, 1e-5)


@property_settings(max_examples=12)
@given(
    B=sizes(1, 4),
    L=st.integers(1, 40),
    D=st.integers(1, 300),
    spread=st.sampled_from((0.01, 1.0, 100.0)),
    p=st.sampled_from((0.0, 0.1, 0.5)),
    seed=st.integers(0, 2**16),
)
def test_any_shape_matches_reference(B, L, D, spread, p, seed):
    """Any batch, length and width (one program's slices of a sequence included), streams of small and large
    magnitude: the fused map and its gradients equal the float64 evaluation to float32 precision."""
    inputs, grads = _case(B, L, D, seed=seed, spread=spread)
    s = torch.tensor([seed], dtype=torch.int64, device=DEV)
    ref = _reference(inputs, grads, _keep(p, (B, L, D), s), p)
    _assert_close(_fused(inputs, grads, p, s if p > 0 else None), ref, 1e-4)


def test_float16_branch_matches_reference_of_rounded_inputs():
    inputs, grads = _case(2, 16, 64)
    inputs = (inputs[0], inputs[1].half().double()) + inputs[2:]
    ref = _reference(inputs, grads, None, 0.0)
    got = _fused(inputs, grads, 0.0, None, o_dtype=torch.float16)
    others = [i for i in range(len(NAMES)) if i != 3]
    _assert_close([got[i] for i in others], [ref[i] for i in others], 1e-5, [NAMES[i] for i in others])
    assert float((got[3] - ref[3]).abs().max() / ref[3].abs().max()) < 2e-3  # grad o is rounded to float16


def test_dropout_mask_is_a_function_of_the_seed_at_the_rate():
    shape = (4, 32, 96)
    a = nk.dropout_keep(torch.tensor([7], device=DEV), shape, 0.25)
    b = nk.dropout_keep(torch.tensor([7], device=DEV), shape, 0.25)
    c = nk.dropout_keep(torch.tensor([8], device=DEV), shape, 0.25)
    assert torch.equal(a, b) and not torch.equal(a, c)
    n = a.numel()
    sd = (0.25 * 0.75 / n) ** 0.5
    assert abs(float(a.float().mean()) - 0.75) < 5 * sd
    # The forward applies exactly this mask: x_new - x = gate * o * keep / (1 - p) with o = gate = 1.
    x = torch.zeros(shape, device=DEV)
    ones = torch.ones(shape, device=DEV)
    vec = torch.ones(shape[0], shape[2], device=DEV)
    xn, _ = nk.add_norm(x, ones, vec, ones[0, 0], vec, vec, p=0.25, seed=torch.tensor([7], device=DEV))
    assert torch.equal(xn != 0, a)
    assert torch.allclose(xn[a], torch.full_like(xn[a], 1 / 0.75))


def _dit(dropout):
    torch.manual_seed(0)
    cfg = DiTConfig(vocab_size=50, length=12, d_model=64, n_blocks=2, n_heads=2, cond_dim=16, dropout=dropout)
    model = DiT(cfg).to(DEV)
    with torch.no_grad():  # away from the zero initialisation, so every branch and gate matters
        for prm in model.parameters():
            prm.add_(0.1 * torch.randn_like(prm))
    return model


def _dit_step(model, norm):
    x = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(1)).to(DEV)
    sigma = torch.tensor([0.1, 1.0, 3.0], device=DEV)
    model.zero_grad()
    model.kernels = Kernels(attention="sdpa", norm=norm)
    logits = model(x, sigma)
    logits.square().mean().backward()
    return logits.detach().cpu().double(), [p.grad.detach().cpu().double() for p in model.parameters()]


def test_dit_fused_norms_match_torch_norms():
    """The whole network (every residual update moved into the next norm, the last one into the final norm):
    logits and every parameter's gradient agree between the fused kernels and torch operations."""
    model = _dit(0.0)
    ref_logits, ref_grads = _dit_step(model, "torch")
    logits, grads = _dit_step(model, "fused")
    assert float((logits - ref_logits).abs().max() / ref_logits.abs().max()) < 1e-5
    for (name, _), g, r in zip(model.named_parameters(), grads, ref_grads, strict=True):
        assert float((g - r).abs().max()) <= 1e-4 * float(r.abs().max()) + 1e-12, name


def test_dit_fused_dropout_follows_the_generator():
    """With dropout the fused path draws its masks' seeds from the default generator: a step is repeated
    exactly under the same seed, differs under another, and in eval mode equals the torch path."""
    model = _dit(0.3)
    outs = []
    for s in (5, 5, 6):
        torch.manual_seed(s)
        if DEV.type == "cuda":
            torch.cuda.manual_seed(s)
        outs.append(_dit_step(model, "fused")[0])
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    model.eval()
    a, b = _dit_step(model, "fused")[0], _dit_step(model, "torch")[0]
    assert float((a - b).abs().max() / b.abs().max()) < 1e-5


@pytest.mark.skipif(DEV.type != "cuda", reason="torch.compile launches the Triton kernels on CUDA only")
def test_compiled_block_traces_the_kernels():
    """Under torch.compile the autograd function and its kernels are traced into the block's graph: the compiled
    network gives the eager network's logits and gradients (float32, dropout off)."""
    model = _dit(0.0)
    ref_logits, ref_grads = _dit_step(model, "fused")
    for blk in model.blocks:
        blk.compile()
    logits, grads = _dit_step(model, "fused")
    assert float((logits - ref_logits).abs().max() / ref_logits.abs().max()) < 1e-5
    for (name, _), g, r in zip(model.named_parameters(), grads, ref_grads, strict=True):
        assert float((g - r).abs().max()) <= 1e-4 * float(r.abs().max()) + 1e-12, name


def test_bad_input_is_named():
    inputs, _ = _case(2, 5, 8)
    x, o, gate, w, shift, scale = (t.float().to(DEV) for t in inputs)
    with pytest.raises(ValueError, match="x: expected a float32"):
        nk.add_norm(x.half(), o, gate, w, shift, scale)
    with pytest.raises(ValueError, match="o: expected"):
        nk.add_norm(x, o[:, :3], gate, w, shift, scale)
    with pytest.raises(ValueError, match="gate: expected"):
        nk.add_norm(x, o, gate[:1], w, shift, scale)
    with pytest.raises(ValueError, match="p: expected"):
        nk.add_norm(x, o, gate, w, shift, scale, p=1.0)
    with pytest.raises(ValueError, match="seed: expected"):
        nk.add_norm(x, o, gate, w, shift, scale, p=0.1)
    with pytest.raises(ValueError, match="norm: expected"):
        Kernels(norm="cudnn")
    with pytest.raises(ValueError, match="kernel: expected"):
        nk.use_fused_norm(x, "cudnn")
