"""The fused rotary attention kernels of the DiT against a float64 evaluation of the same map.

Without a GPU the kernels run in Triton's interpreter (conftest.py), whose bf16 products are not usable, so the CPU
runs check float32 and float16; on a CUDA machine the same tests run the compiled kernels, bf16 included.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.diffusion import attention_kernels as ak
from amtheory.diffusion.kernels import Kernels
from amtheory.diffusion.model import DiT, DiTConfig
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import sizes

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not ak.available(DEV), reason="Triton kernels cannot run on this device")


def _case(B, L, H, hd, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(B, L, 3 * H * hd, generator=g, dtype=torch.float64) * scale
    do = torch.randn(B, L, H * hd, generator=g, dtype=torch.float64)
    cos, sin = ak.rotary_tables(L, hd)
    return qkv, do, cos, sin


def _reference(qkv, do, cos, sin, H):
    """Output and gradient in float64 on the CPU: rotary by hand, softmax attention written out."""
    B, L, D3 = qkv.shape
    D = D3 // 3
    x = qkv.clone().requires_grad_(True)
    q, k, v = x.view(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)
    c, s = cos.double(), sin.double()
    q, k = ak.apply_rotary(q, c, s), ak.apply_rotary(k, c, s)
    att = torch.softmax(q @ k.transpose(-1, -2) / (D // H) ** 0.5, dim=-1)
    out = (att @ v).transpose(1, 2).reshape(B, L, D)
    out.backward(do)
    return out.detach(), x.grad


def _fused(qkv, do, cos, sin, H, dtype):
    x = qkv.to(DEV, dtype).requires_grad_(True)
    out = ak.rotary_attention(x, cos.to(DEV), sin.to(DEV), H)
    out.backward(do.to(DEV, dtype))
    return out.detach().cpu().double(), x.grad.cpu().double()


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(
    "B,L,H,hd",
    [(2, 20, 2, 32), (1, 128, 2, 64), (3, 1, 1, 32), (2, 70, 3, 32), (1, 33, 1, 64)],
)
def test_float32_matches_float64_reference(B, L, H, hd):
    qkv, do, cos, sin = _case(B, L, H, hd)
    ref_o, ref_g = _reference(qkv, do, cos, sin, H)
    o, g = _fused(qkv, do, cos, sin, H, torch.float32)
    assert o.shape == (B, L, H * hd) and g.shape == qkv.shape
    assert _rel(o, ref_o) < 1e-5
    assert _rel(g, ref_g) < 1e-5


@property_settings(max_examples=25)
@given(
    B=sizes(1, 3),
    L=st.integers(1, 128),
    H=sizes(1, 3),
    hd=st.sampled_from((32, 64)),
    scale=st.sampled_from((0.05, 1.0, 4.0)),
    seed=st.integers(0, 2**16),
)
def test_any_supported_shape_matches_reference(B, L, H, hd, scale, seed):
    """Every shape the kernels take (any length up to 128, any batch and head count, both head widths, flat to
    peaked attention): output and gradient equal the float64 evaluation to float32 precision."""
    qkv, do, cos, sin = _case(B, L, H, hd, seed=seed, scale=scale)
    ref_o, ref_g = _reference(qkv, do, cos, sin, H)
    o, g = _fused(qkv, do, cos, sin, H, torch.float32)
    assert _rel(o, ref_o) < 1e-4
    assert _rel(g, ref_g) < 1e-4


def test_reduced_precision_matches_reference():
    """float16 (and bf16 where compiled): products in the input dtype, softmax and accumulation in float32."""
    qkv, do, cos, sin = _case(2, 48, 2, 64, seed=1)
    ref_o, ref_g = _reference(qkv, do, cos, sin, 2)
    dtypes = [torch.float16] + ([torch.bfloat16] if DEV.type == "cuda" else [])
    for dt in dtypes:
        o, g = _fused(qkv, do, cos, sin, 2, dt)
        tol = 2e-2 if dt == torch.bfloat16 else 4e-3
        assert _rel(o, ref_o) < tol, dt
        assert _rel(g, ref_g) < tol, dt


def test_large_logits_stay_finite_and_exact():
    """Attention logits near 1,000 (a model memorizing its data) give finite outputs and gradients."""
    qkv, do, cos, sin = _case(1, 64, 2, 32, seed=2, scale=8.0)
    ref_o, ref_g = _reference(qkv, do, cos, sin, 2)
    q = qkv.view(1, 64, 3, 2, 32)[:, :, 0]
    assert float((q @ q.transpose(-1, -2)).abs().max()) / 32**0.5 > 500
    o, g = _fused(qkv, do, cos, sin, 2, torch.float32)
    assert torch.isfinite(o).all() and torch.isfinite(g).all()
    assert _rel(o, ref_o) < 1e-4
    assert _rel(g, ref_g) < 1e-3


def test_dit_fused_and_sdpa_attention_agree():
    """The DiT's logits and parameter gradients are the same map under either attention."""
    cfg = DiTConfig(vocab_size=50, length=24, d_model=64, n_blocks=2, n_heads=2, dropout=0.0)
    torch.manual_seed(0)
    model = DiT(cfg).to(DEV)
    with torch.no_grad():  # adaLN-Zero starts every block as the identity: give the blocks something to do
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randint(0, 50, (3, 24), device=DEV)
    sigma = torch.tensor([0.1, 1.0, 3.0], device=DEV)
    grads = {}
    for name in ("fused", "sdpa"):
        model.zero_grad()
        model.kernels = Kernels(attention=name)
        logits = model(x, sigma)
        logits.square().mean().backward()
        grads[name] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    (lf, gf), (ls, gs) = grads["fused"], grads["sdpa"]
    assert torch.allclose(lf, ls, atol=1e-5, rtol=1e-4)
    for a, b in zip(gf, gs):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-3)


def test_operator_registration():
    """Schema, fake (meta) implementation and autograd of the custom operator, as torch.compile sees them."""
    qkv, _, cos, sin = _case(2, 16, 2, 32)
    x = qkv.to(DEV, torch.float32).requires_grad_(True)
    torch.library.opcheck(
        torch.ops.amtheory.rotary_attention_fwd.default,
        (x, cos.to(DEV), sin.to(DEV), 2),
        test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
    )


def test_bad_input_names_the_argument():
    qkv, _, cos, sin = _case(1, 8, 2, 32)
    x = qkv.float().to(DEV)
    c, s = cos.to(DEV), sin.to(DEV)
    with pytest.raises(ValueError, match="n_heads"):
        ak.rotary_attention(x, c, s, 3)
    with pytest.raises(ValueError, match="cos"):
        ak.rotary_attention(x, c[:4], s, 2)
    with pytest.raises(ValueError, match="qkv"):
        ak.rotary_attention(x[..., :-1], c, s, 2)
    with pytest.raises(ValueError, match="head width"):
        ak.rotary_attention(torch.zeros(1, 8, 3 * 2 * 24, device=DEV), *ak.rotary_tables(8, 24, DEV), 2)
    with pytest.raises(TypeError, match="qkv"):
        ak.rotary_attention(x.double(), c, s, 2)
    with pytest.raises(ValueError, match="attention"):
        Kernels(attention="flash")
    with pytest.raises(ValueError, match="kernel"):
        ak.block_attention(x, c, s, 2, "flash")
    long = torch.zeros(1, ak.MAX_LENGTH + 1, 3 * 64, device=DEV)
    with pytest.raises(RuntimeError, match="fused"):
        ak.block_attention(long, *ak.rotary_tables(ak.MAX_LENGTH + 1, 32, DEV), 2, "fused")


def test_auto_choice_takes_the_kernels_only_where_they_apply(monkeypatch):
    """'auto' takes the fused kernels for 16-bit inputs on CUDA of a length they hold, and SDPA otherwise: for
    float32 (a precision check), on a CPU, and for a sequence longer than the kernels hold."""
    taken = []
    fused = ak.rotary_attention
    monkeypatch.setattr(ak, "rotary_attention", lambda *a: taken.append(a[0].shape[1]) or fused(*a))
    cases = [(64, torch.float32), (64, torch.bfloat16), (ak.MAX_LENGTH + 3, torch.bfloat16)]
    for L, dtype in cases:
        qkv, _, cos, sin = _case(1, L, 1, 32)
        x, c, s = qkv.to(DEV, dtype), cos.to(DEV), sin.to(DEV)
        out = ak.block_attention(x, c, s, 1)
        assert out.shape == (1, L, 32) and torch.isfinite(out).all()
    assert taken == ([64] if DEV.type == "cuda" else [])


@pytest.mark.parametrize("B, H", [(256, 8), (32 * 256, 8), (2**20, 16)])
def test_launch_grid_stays_within_cuda_limits_for_any_batch(B, H):
    # CUDA caps a grid's second and third axes at 65,535 programs (the first at 2^31 - 1); many models trained as
    # one group fold their members into the batch, so sequences x heads alone can pass 65,535.
    grid = ak.forward_grid(B, 64, H, block_m=16)
    assert grid[0] <= 2**31 - 1 and all(g <= 65535 for g in grid[1:]), grid
    assert grid[0] * grid[1] == B * H * 4  # every (sequence x head, query block) pair has its program
