"""The Triton loss kernels (``amtheory.diffusion.loss_kernels``) against direct torch computations and the literal
float64 formula; ``chunked_nelbo(kernel=TRITON_ROWS)`` against the eager chunked loss and that formula (value and
gradients); a confident model, bad input, the trainer's ``loss_kernel`` option, and a short training run.

Without a GPU the kernels run in Triton's interpreter on CPU tensors (tests/conftest.py sets ``TRITON_INTERPRET=1``
before Triton is imported): exact float32 arithmetic, but slow, so the shapes here are small. On a CUDA machine
the kernels are compiled and run on the GPU, where ``tl.dot`` on float32 inputs rounds them to TF32: the
tolerances are looser there.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

loss_kernels = pytest.importorskip("amtheory.diffusion.loss_kernels")

if not (loss_kernels.available("cpu") or loss_kernels.available("cuda")):
    pytest.skip(
        "the Triton loss kernels need Triton and a CUDA device, or Triton's interpreter (TRITON_INTERPRET=1)",
        allow_module_level=True,
    )

from amtheory.diffusion.kernels import Kernels, resolve_loss_kernel  # noqa: E402
from amtheory.diffusion.loss import (  # noqa: E402
    PAD_LOGIT,
    TRITON_ROWS,
    chunked_nelbo,
    nelbo_per_token_reference,
    pad_vocab,
)
from amtheory.diffusion.train import TrainConfig  # noqa: E402
from amtheory.testing.profiles import property_settings  # noqa: E402
from amtheory.testing.strategies import sizes  # noqa: E402

torch.set_num_threads(1)

#: Where the kernels run: CPU tensors under the interpreter, else the GPU.
DEV = torch.device("cpu") if loss_kernels.available("cpu") else torch.device("cuda")
#: Relative tolerance (to the largest entry) against float32 torch: rounding only under the interpreter; TF32
#: products on the GPU.
RTOL = 1e-5 if DEV.type == "cpu" else 3e-3
#: The alphas of the batch's sequences: nearly all noise to nearly clean.
ALPHAS = (0.01, 0.2, 0.6, 0.95, 0.999)


def _assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float, what: str, atol: float = 1e-30) -> None:
    """``max |got - want| <= rtol * max |want| + atol`` (and both finite)."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert torch.isfinite(got).all() and torch.isfinite(want).all(), what
    err = float((got - want).abs().max())
    scale = float(want.abs().max())
    assert err <= rtol * scale + atol, f"{what}: max error {err:.3e} > {rtol:.1e} x max |want| {scale:.3e} + {atol:.0e}"


def _case(seed: int, L: int, D: int, V: int, bias: bool, same: float = 0.4, spread: float = 1.0):
    """A batch of ``len(ALPHAS)`` sequences of length ``L``: hidden states, head weight and bias (leaves that need a
    gradient), clean tokens, noisy tokens equal to the clean ones with probability ``same``, alphas and alpha'."""
    g = torch.Generator().manual_seed(seed)
    B = len(ALPHAS)
    h = torch.randn(B, L, D, generator=g)
    W = torch.randn(V, D, generator=g) * (spread / D**0.5)
    b = torch.randn(V, generator=g) * 0.5 if bias else None
    x0 = torch.randint(0, V, (B, L), generator=g)
    other = (x0 + torch.randint(1, V, (B, L), generator=g)) % V
    xt = torch.where(torch.rand(B, L, generator=g) < same, x0, other)
    a = torch.tensor(ALPHAS)
    ap = -(0.5 + torch.rand(B, generator=g) * 3)
    leaves = [t.to(DEV).requires_grad_() if t is not None else None for t in (h, W, b)]
    return (*leaves, x0.to(DEV), xt.to(DEV), a.to(DEV), ap.to(DEV))


def _loss_and_grads(h, W, b, x0, xt, a, ap, **kw):
    loss = chunked_nelbo(h, W, x0, xt, a, ap, head_bias=b, **kw)
    leaves = [t for t in (h, W, b) if t is not None]
    return loss.detach(), torch.autograd.grad(loss, leaves)


# ------------------------------------------------------------------------------------ chunked_nelbo end to end
@pytest.mark.parametrize(
    ("D", "V", "bias"), [(16, 50, False), (32, 75, True), (48, 130, True), (48, 130, False)]
)  # fmt: skip
def test_chunked_nelbo_matches_eager_and_reference(D, V, bias):
    """Value and gradients (hidden, weight, bias) of the Triton path equal the eager chunked loss for chunk sizes
    that leave a partial last chunk of the 40 rows (7, 16), equal them (40) or exceed them (2048); both equal the
    literal float64 formula."""
    case = _case(D + V, L=8, D=D, V=V, bias=bias)
    h, W, b, x0, xt, a, ap = case
    assert (x0 == xt).any() and (x0 != xt).any()
    want_loss, want_grads = _loss_and_grads(*case, kernel=None)
    for chunk_rows in (7, 16, 40, 2048):  # 7 and 16 leave a partial last chunk of the 40 rows
        loss, grads = _loss_and_grads(*case, kernel=TRITON_ROWS, chunk_rows=chunk_rows)
        _assert_close(loss, want_loss, RTOL, f"loss, chunk_rows={chunk_rows}")
        for name, g, w in zip(("hidden", "weight", "bias"), grads, want_grads):
            _assert_close(g, w, RTOL, f"d/d{name}, chunk_rows={chunk_rows}")

    # The literal formula of docs/theory.md in float64 on the full logits, value and gradient.
    h64, W64 = h.detach().double().requires_grad_(), W.detach().double().requires_grad_()
    b64 = b.detach().double().requires_grad_() if b is not None else None
    logits = h64 @ W64.T + (b64 if b64 is not None else 0.0)
    ref = nelbo_per_token_reference(F.log_softmax(logits, -1), x0, xt, a.double(), ap.double()).mean()
    ref_grads = torch.autograd.grad(ref, [t for t in (h64, W64, b64) if t is not None])
    ref_rtol = 1e-5 if DEV.type == "cpu" else 3e-3
    _assert_close(want_loss, ref, ref_rtol, "eager loss vs reference")
    _assert_close(loss, ref, ref_rtol, "triton loss vs reference")
    for name, g, w in zip(("hidden", "weight", "bias"), grads, ref_grads):
        _assert_close(g, w, 20 * ref_rtol, f"triton d/d{name} vs reference")


@property_settings(max_examples=25)
@given(
    B=sizes(1, 3),
    L=st.integers(1, 9),
    D=st.sampled_from([16, 32, 48]),
    V=st.integers(2, 140),
    bias=st.booleans(),
    chunk_rows=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_matches_eager_any_shape(B, L, D, V, bias, chunk_rows, seed):
    """Random shapes (vocabularies across the padding boundaries, a single row, one-row chunks): loss and gradients
    of the Triton path equal the eager path's to RTOL of the largest entry. Where float32 cancellation puts either
    path further from the float64 formula than that (V = 2 at alpha = 0.01: the eager d/dhidden 1.2e-4 of the
    largest entry off at B = L = 1, the kernels' d/dbias 6e-5 off at L = 2), the Triton path must be within a few
    times the eager path's error of the formula, or within 2e-4 of its largest entry (as in
    test_row_path_matches_float64)."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, L, D, generator=g).to(DEV).requires_grad_()
    W = (torch.randn(V, D, generator=g) * (2 / D**0.5)).to(DEV).requires_grad_()
    b = torch.randn(V, generator=g).to(DEV).requires_grad_() if bias else None
    x0 = torch.randint(0, V, (B, L), generator=g)
    xt = torch.where(torch.rand(B, L, generator=g) < 0.5, x0, torch.randint(0, V, (B, L), generator=g))
    a = torch.tensor(ALPHAS)[torch.randint(0, len(ALPHAS), (B,), generator=g)]
    ap = -(0.1 + torch.rand(B, generator=g))
    case = (h, W, b, x0.to(DEV), xt.to(DEV), a.to(DEV), ap.to(DEV))
    want_loss, want_grads = _loss_and_grads(*case, kernel=None, chunk_rows=chunk_rows)
    loss, grads = _loss_and_grads(*case, kernel=TRITON_ROWS, chunk_rows=chunk_rows)
    leaves64 = [t.detach().double().cpu().requires_grad_() if t is not None else None for t in (h, W, b)]
    h64, W64, b64 = leaves64
    logits = h64 @ W64.T + (b64 if b64 is not None else 0.0)
    ref = nelbo_per_token_reference(F.log_softmax(logits, -1), x0, xt, a.double(), ap.double()).mean()
    ref_grads = torch.autograd.grad(ref, [t for t in leaves64 if t is not None])
    for name, got, eager, want in zip(
        ("loss", "d/dhidden", "d/dweight", "d/dbias"), (loss, *grads), (want_loss, *want_grads), (ref, *ref_grads)
    ):
        got, eager = got.detach().double().cpu(), eager.detach().double().cpu()
        assert torch.isfinite(got).all(), name
        if float((got - eager).abs().max()) <= RTOL * float(eager.abs().max()):
            continue
        err, err_eager = float((got - want).abs().max()), float((eager - want).abs().max())
        bound = max(4 * err_eager, 2e-4 * float(want.abs().max()))
        assert err <= bound, f"{name}: {err:.2e} from float64 (the eager path {err_eager:.2e}), above {bound:.2e}"


def test_partial_gradients_and_no_grad():
    """Only some inputs needing a gradient, and no gradient at all (the loss-only path), give the same values."""
    h, W, b, x0, xt, a, ap = _case(5, L=8, D=32, V=75, bias=True)
    want_loss, (gh, gW, gb) = _loss_and_grads(h, W, b, x0, xt, a, ap, kernel=None, chunk_rows=16)
    Wd, bd = W.detach(), b.detach()
    loss = chunked_nelbo(h, Wd, x0, xt, a, ap, head_bias=bd, kernel=TRITON_ROWS, chunk_rows=16)
    (g,) = torch.autograd.grad(loss, [h])
    _assert_close(g, gh, RTOL, "d/dhidden with a frozen head")
    with torch.no_grad():
        loss = chunked_nelbo(h, W, x0, xt, a, ap, head_bias=b, kernel=TRITON_ROWS, chunk_rows=16)
    _assert_close(loss, want_loss, RTOL, "loss under no_grad")


@pytest.mark.parametrize("same", [1.0, 0.5])
def test_confident_model(same):
    """A memorizing model (the logit at x0 about 30 above every other): the loss stays finite and non-negative up to
    float32's resolution of l_x0, is zero to 1e-9 where x_t = x_0 everywhere, and the Triton path matches the eager
    path."""
    g = torch.Generator().manual_seed(11)
    B, L, D, V = len(ALPHAS), 8, 32, 50
    x0 = torch.randint(0, D, (B, L), generator=g)  # tokens below D: their weight rows are unit vectors
    other = (x0 + torch.randint(1, V, (B, L), generator=g)) % V
    xt = torch.where(torch.rand(B, L, generator=g) < same, x0, other)
    W = torch.cat([torch.eye(D), 0.01 * torch.randn(V - D, D, generator=g)])
    h = 30.0 * F.one_hot(x0, D).float() + 0.01 * torch.randn(B, L, D, generator=g)
    b = 0.01 * torch.randn(V, generator=g)
    a, ap = torch.tensor(ALPHAS), -torch.ones(B)
    h, W, b = (t.to(DEV).requires_grad_() for t in (h, W, b))
    x0, xt, a, ap = x0.to(DEV), xt.to(DEV), a.to(DEV), ap.to(DEV)
    logits = (h @ W.T + b).detach()
    top2 = logits.topk(2, dim=-1).values
    assert (logits.argmax(-1) == x0).all() and ((top2[..., 0] - top2[..., 1]) > 29).all()

    want_loss, want_grads = _loss_and_grads(h, W, b, x0, xt, a, ap, kernel=None, chunk_rows=16)
    loss, grads = _loss_and_grads(h, W, b, x0, xt, a, ap, kernel=TRITON_ROWS, chunk_rows=16)
    # A perfect fit: the loss is about V e^-30 x (second order), far below float32's resolution of l_x0 (ulp(30)):
    # both paths give the literal formula on their float32 log-probabilities, zero up to about 1e-12 either side
    # (the eager path happens to round its sum of softplus terms to exactly zero; the kernel sums the terms other
    # than x0's directly). Gradients are rounding noise there:
    # compared with an absolute floor.
    atol = 1e-9
    assert torch.isfinite(loss) and float(loss) >= -atol, float(loss)
    if same == 1.0:
        assert abs(float(loss)) < atol, float(loss)
    rtol = 1e-4 if DEV.type == "cpu" else 3e-2
    _assert_close(loss, want_loss, rtol, "confident loss", atol)
    for name, gf, ge in zip(("hidden", "weight", "bias"), grads, want_grads):
        _assert_close(gf, ge, rtol, f"confident d/d{name}", atol=1e-7)


# ------------------------------------------------------------------------------------ the kernels alone
def _logits_case(seed: int, n: int, V: int, scale: float = 2.0):
    """Float32 logits ``[n, VP]`` (padding columns at PAD_LOGIT), their float64 log-sum-exp and log-probabilities
    over the first ``V``, tokens (x_t = x_0 on about 40% of rows) and per-row ``lam`` over ALPHAS."""
    g = torch.Generator().manual_seed(seed)
    VP = pad_vocab(V)
    z = torch.randn(n, V, generator=g) * scale
    zf = torch.cat([z, torch.full((n, VP - V), PAD_LOGIT)], dim=1)
    x0 = torch.randint(0, V, (n,), generator=g)
    xt = torch.where(torch.rand(n, generator=g) < 0.4, x0, torch.randint(0, V, (n,), generator=g))
    al = torch.tensor(ALPHAS)[torch.randint(0, len(ALPHAS), (n,), generator=g)]
    lam = torch.log(V * al) - torch.log1p(-al)
    z64 = z.double()
    lse = torch.logsumexp(z64, -1)
    return zf, z64, lse, z64 - lse[:, None], x0, xt, lam


@pytest.mark.parametrize(
    ("n", "V", "tiles"),
    [(37, 50, None), (37, 130, None), (37, 300, {"BLOCK_R": 1, "BLOCK_C": 32}),
     (37, 75, {"BLOCK_R": 4, "BLOCK_C": 128}), (5, 2, None)],
)  # fmt: skip
def test_row_stats_matches_float64(n, V, tiles):
    """``[lse, logit at x0, logit at xt, S_rest, G]`` against float64; padding columns add nothing."""
    zf, z, lse, ell, x0, xt, lam = _logits_case(n + V, n, V)
    arg = ell + lam.double()[:, None]
    sp = F.softplus(arg)
    want = torch.stack(
        [lse, z.gather(1, x0[:, None])[:, 0], z.gather(1, xt[:, None])[:, 0],
         sp.sum(-1) - sp.gather(1, x0[:, None])[:, 0], torch.sigmoid(arg).sum(-1)],
        dim=1,
    )  # fmt: skip
    got = loss_kernels.row_stats(zf.to(DEV), x0.to(DEV), xt.to(DEV), lam.exp().to(DEV), tiles=tiles).cpu()
    assert got.shape == (n, 5) and got.dtype == torch.float32
    for k, name in enumerate(("lse", "logit at x0", "logit at xt", "S_rest", "G")):
        _assert_close(got[:, k], want[:, k], 2e-6, name)
    # Row by row too, relative to each row's own size (S and G differ by orders of magnitude across lam).
    rel = (got.double() - want).abs() / want.abs().clamp_min(1.0)
    assert float(rel.max()) < 2e-5, rel.max(0).values


@pytest.mark.parametrize(
    ("n", "V", "dtype", "tiles"),
    [(37, 50, torch.float32, None), (37, 130, torch.float32, {"BLOCK_R": 2, "BLOCK_C": 32}),
     (37, 75, torch.bfloat16, None)],
)  # fmt: skip
def test_row_logit_grad_matches_float64(n, V, dtype, tiles):
    """Columns < V: ``A sigmoid(l + lam) + P exp(l) + ck [j = x0] + ci [j = xt]`` (both terms on a row with
    x0 = xt); padding columns exactly zero."""
    zf, _, lse, ell, x0, xt, lam = _logits_case(n + V + 1, n, V)
    assert (x0 == xt).any() and (x0 != xt).any()
    A, P, ck, ci = torch.randn(4, n, generator=torch.Generator().manual_seed(V), dtype=torch.float64)
    coef = torch.stack([lse, lam.double().exp(), A, P, ck, ci], dim=1).float()
    want = A[:, None] * torch.sigmoid(ell + lam.double()[:, None]) + P[:, None] * ell.exp()
    want = want.scatter_add(1, x0[:, None], ck[:, None]).scatter_add(1, xt[:, None], ci[:, None])
    got = loss_kernels.row_logit_grad(zf.to(DEV), x0.to(DEV), xt.to(DEV), coef.to(DEV), dtype, tiles=tiles).cpu()
    assert got.shape == zf.shape and got.dtype == dtype
    assert (got[:, V:] == 0).all(), "the padding columns must be exactly zero"
    got = got[:, :V].double()
    rtol = 2e-6
    if dtype == torch.bfloat16:
        # One bf16 rounding of each entry on top of the float32 result: to nearest on the GPU (half an ulp,
        # 2^-8 relative), but Triton's interpreter truncates float32 -> bf16 (up to one ulp, 2^-7 relative).
        ulps = 2.0**-7 if DEV.type == "cpu" else 2.0**-8
        bound = ulps * want.abs() + rtol * want.abs().max()
        assert bool(((got - want).abs() <= bound).all()), float(((got - want).abs() / bound).max())
    else:
        _assert_close(got, want, rtol, "logit gradient")


def test_row_kernels_bad_input():
    zf, _, _, _, x0, xt, lam = _logits_case(0, 3, 20)
    zf, x0, xt, K = zf.to(DEV), x0.to(DEV), xt.to(DEV), lam.exp().to(DEV)
    assert loss_kernels.row_stats(zf[:0], x0[:0], xt[:0], K[:0]).shape == (0, 5)
    with pytest.raises(ValueError, match="logits"):
        loss_kernels.row_stats(zf.double(), x0, xt, K)
    with pytest.raises(ValueError, match="x0"):
        loss_kernels.row_stats(zf, x0[:2], xt, K)
    with pytest.raises(ValueError, match="coef"):
        loss_kernels.row_logit_grad(zf, x0, xt, torch.zeros(2, 6, device=DEV), torch.float32)


@property_settings(max_examples=10)
@given(
    n=sizes(1, 5),
    V=st.integers(2, 300),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
    confident=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_row_path_matches_float64(n, V, scale, confident, seed):
    """The row kernels with the per-row arithmetic between them (one chunk) against the literal formula in float64
    (value, and gradient by autograd) on the same float32 logits and alphas: alphas from 1e-4 to 1 - 1e-6, logits
    spread 0.1 to 30, confident rows (x0 the argmax by 40). About as close as the float32 torch kernel."""
    from functools import partial

    from amtheory.diffusion.loss import rows_loss_and_grad, triton_chunk

    g = torch.Generator().manual_seed(seed)
    VP = pad_vocab(V)
    z = (torch.randn(n, V, generator=g) * scale).float()
    x0 = torch.randint(0, V, (n,), generator=g)
    xt = torch.where(torch.rand(n, generator=g) < 0.5, x0, torch.randint(0, V, (n,), generator=g))
    if confident:
        z.scatter_(1, x0[:, None], z.max(1, keepdim=True).values + 40.0)
    a = torch.tensor([1e-4, 0.01, 0.3, 0.9, 0.999, 1 - 1e-6])[torch.randint(0, 6, (n,), generator=g)]
    ap = -(0.2 + torch.rand(n, generator=g))
    zf = torch.cat([z, torch.full((n, VP - V), PAD_LOGIT)], dim=1).to(DEV)
    x0d, xtd = x0.to(DEV), xt.to(DEV)
    loss, grad = triton_chunk(
        partial(loss_kernels.row_stats, zf, x0d, xtd),
        partial(loss_kernels.row_logit_grad, zf, x0d, xtd, dtype=torch.float32),
        x0d, xtd, a.to(DEV), ap.to(DEV), 1.0, True, V,
    )  # fmt: skip
    loss, grad = loss.cpu().double(), grad.cpu().double()
    assert grad.shape == (n, VP) and bool((grad[:, V:] == 0).all())
    torch_loss, torch_grad = rows_loss_and_grad(z, x0, xt, a, ap, 1.0)
    # float64 truth on the same (float32-rounded) logits and alphas, one row at a time.
    z64 = z.double().requires_grad_()
    ref = torch.stack([
        nelbo_per_token_reference(F.log_softmax(z64[i:i + 1], -1)[None], x0[None, i:i + 1], xt[None, i:i + 1],
                                  a[i:i + 1].double(), ap[i:i + 1].double())[0, 0]
        for i in range(n)
    ])  # fmt: skip
    (ref_grad,) = torch.autograd.grad(ref.sum(), z64)
    ref = ref.detach()
    for name, got, base, want in (("loss", loss, torch_loss, ref), ("gradient", grad[:, :V], torch_grad, ref_grad)):
        # A loss near zero (rows the model fits) comes out of float32 sums of O(1) terms: resolved to about 1e-8
        # (V = 2, logits 18 apart, alpha = 0.01: 7.6e-9 from a true 8e-16), so its scale is at least 1e-4.
        floor = 1e-4 if name == "loss" else 1e-6
        scale_ = want.abs().amax(-1 if want.dim() > 1 else 0, keepdim=want.dim() > 1).clamp_min(floor)
        err, err_torch = ((got - want).abs() / scale_).max(), ((base.double() - want).abs() / scale_).max()
        # A confident row's l_x0 is resolved only to ulp(logit) in float32 (its lse comes out of the kernel's
        # online sum, the torch kernel's from logsumexp): a few times the torch kernel's error, or 2e-4.
        assert float(err) <= max(4 * float(err_torch), 2e-4), (name, float(err), float(err_torch))


# ------------------------------------------------------------------------------------ bad input, config
def test_bad_kernel():
    h, W, b, x0, xt, a, ap = _case(1, L=4, D=16, V=20, bias=True)
    with pytest.raises(ValueError, match="kernel"):
        chunked_nelbo(h, W, x0, xt, a, ap, head_bias=b, kernel="nonsense")


def test_train_config_loss_kernel():
    with pytest.raises(ValueError, match="loss_kernel"):
        TrainConfig(steps=1, batch_size=2, loss_kernel="bogus")
    with pytest.raises(ValueError, match="loss_kernel"):
        TrainConfig(steps=1, batch_size=2, loss_kernel="fused")
    assert resolve_loss_kernel("triton", DEV) == "triton"
    assert resolve_loss_kernel("eager", DEV) == "eager"
    if DEV.type == "cpu":  # "auto" picks the Triton kernels only on CUDA
        assert resolve_loss_kernel("auto", "cpu") == "eager"
        assert Kernels().resolved("cpu", compile=True).loss == "compiled"


# ------------------------------------------------------------------------------------ through the model
def _tiny_model_and_data(V: int = 24, L: int = 8):
    from amtheory.diffusion.model import DiTConfig

    g = torch.Generator().manual_seed(0)
    data = (torch.randint(0, V, (12, 1), generator=g) + torch.arange(L)) % V
    return DiTConfig.preset("cpu-micro", V, L, dropout=0.0), data


def test_objective_gradients_match_eager():
    """The trainer's objective (a DiT and its chunked NELBO): loss and every parameter's gradient agree between
    the Triton kernels and the eager loss (zero-initialised layers, which would block the trunk's gradient, made
    random)."""
    from amtheory.diffusion.model import DiT
    from amtheory.diffusion.train import NELBOObjective, sample_batch

    mc, data = _tiny_model_and_data()
    torch.manual_seed(0)
    model = DiT(mc).to(DEV)
    with torch.no_grad():  # the zero-initialised layers (adaLN, output) would block the trunk's gradient
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.2)
    batch = sample_batch(data.to(DEV), 6, mc.vocab_size, torch.Generator(device=DEV).manual_seed(1))
    results = {}
    for loss_kernel in ("eager", "triton"):
        model.zero_grad(set_to_none=True)
        loss = NELBOObjective(model, 20, loss_kernel)(**batch)  # 48 rows: chunks of 20, 20 and 8
        loss.backward()
        results[loss_kernel] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (le, ge), (lf, gf) = results["eager"], results["triton"]
    _assert_close(lf, le, RTOL, "objective loss")
    assert ge["blocks.0.qkv.weight"].abs().max() > 0  # the gradient reaches the trunk
    for name, g in ge.items():
        _assert_close(gf[name], g, 10 * RTOL, f"d/d{name}")


# ------------------------------------------------------------------------------------ a short training run
def test_training_triton_matches_eager(tmp_path):
    """A few steps of a tiny DiT with the Triton loss kernels and with the eager loss, same seed: the same losses and
    nearly the same weights (Adam's early steps are about lr * sign(gradient): rounding moves little)."""
    from amtheory.diffusion.checkpoint import load_model
    from amtheory.diffusion.train import train

    mc, data = _tiny_model_and_data()
    steps, lr = 4, 3e-3
    runs = {}
    for kind in ("eager", "triton"):
        tc = TrainConfig(steps=steps, batch_size=4, lr=lr, warmup=1, seed=3, log_every=1, checkpoint_every=steps,
                         loss_kernel=kind)  # fmt: skip
        summary = train(mc, tc, data, tmp_path / kind, device=DEV, progress=False)
        model = load_model(tmp_path / kind, ema=False)[0]
        runs[kind] = (summary, dict(model.named_parameters()))
    se, pe = runs["eager"]
    le = torch.tensor([x for _, x in se["losses"]])
    assert len(le) == steps and se["skipped_steps"] == 0
    sf, pf = runs["triton"]
    assert sf["skipped_steps"] == 0
    lf = torch.tensor([x for _, x in sf["losses"]])
    assert torch.isfinite(lf).all()
    tol = 1e-5 if DEV.type == "cpu" else 2e-2
    torch.testing.assert_close(lf, le, rtol=tol, atol=0.0)
    for name, p in pe.items():
        err = float((pf[name].detach() - p.detach()).abs().max())
        # Each Adam step moves a weight by about lr at most: compare against that scale.
        assert err <= (0.01 if DEV.type == "cpu" else 0.2) * lr * steps, (name, err)
