"""The chain step's statistics (``amtheory.diffusion.chain_kernels``): the Triton kernel against the torch
operations, on rows that rule out whole blocks of tokens, tie, hold non-finite values or are bf16; and the chain
step fed either, which must draw the same tokens.

Without a GPU the kernel runs in Triton's interpreter on CPU tensors (tests/conftest.py sets ``TRITON_INTERPRET=1``
before Triton is imported); on a CUDA machine it is compiled and runs on the GPU.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from amtheory.core._checks import NonFiniteError
from amtheory.diffusion.chain_kernels import chain_stats
from amtheory.diffusion.sampler.steps import chain_update
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import seeds, sizes

loss_kernels = pytest.importorskip("amtheory.diffusion.loss_kernels")
if not (loss_kernels.available("cpu") or loss_kernels.available("cuda")):
    pytest.skip("the Triton kernels need Triton and a CUDA device, or Triton's interpreter", allow_module_level=True)

DEV = torch.device("cpu") if loss_kernels.available("cpu") else torch.device("cuda")
#: Small tiles under the interpreter, so that rows span several column blocks; the GPU's own tiles on CUDA.
TILES = {"BLOCK_R": 2, "BLOCK_C": 8} if DEV.type == "cpu" else None


def _rows(seed: int, n: int, L: int, V: int, sharp: float, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    logits = (sharp * torch.randn(n, L, V, generator=g)).round()  # rounding makes exact ties common
    logits[0, 0, : min(V - 1, 9)] = float("-inf")  # the first column block(s) ruled out
    if n > 1:
        logits[1, 0, V // 2 :] = float("-inf")  # the last ones
    x = torch.randint(0, V, (n, L), generator=g)
    return logits.to(dtype).to(DEV), x.to(DEV)


@property_settings(max_examples=25)
@given(
    seed=seeds(),
    n=sizes(1, 4),
    V=sizes(2, 40),
    sharp=st.floats(0.0, 20.0),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
)
def test_kernel_statistics_equal_the_torch_operations(seed, n, V, sharp, dtype):
    """Log-sum-exp (to float32 rounding), largest logit, its first index and the logit at the current token: the
    same from the kernel's one sweep as from torch, also where a whole column block is -inf and on exact ties."""
    logits, x = _rows(seed, n, 3, V, sharp, dtype)
    got = chain_stats(logits, x, kernel="triton", tiles=TILES)
    want = chain_stats(logits, x, kernel="torch")
    torch.testing.assert_close(got.lse, want.lse, rtol=2e-6, atol=2e-6)
    assert torch.equal(got.top, want.top)
    assert torch.equal(got.best, want.best)
    assert torch.equal(got.at_z, want.at_z)
    assert got.best.dtype == torch.long and got.lse.shape == (n, 3)


@pytest.mark.parametrize("kernel", ["triton", "torch"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_non_finite_rows_make_the_step_raise(kernel, bad):
    """A NaN or +inf logit gives a log-sum-exp that is not finite, and a row of -inf gives -inf (not NaN from
    -inf + inf), in the kernel as in torch; the chain step then raises, whichever step it is."""
    logits, x = _rows(0, 2, 3, 20, 3.0, torch.float32)
    if bad is None:
        logits[1, 2] = float("-inf")
    else:
        logits[1, 2, 13] = bad
    stats = chain_stats(logits, x, kernel=kernel, tiles=TILES if kernel == "triton" else None)
    lse = float(stats.lse[1, 2])
    assert lse == float("-inf") if bad is None else not torch.isfinite(stats.lse[1, 2])
    assert torch.isfinite(stats.lse[0]).all()
    t = torch.full((2,), 0.5, dtype=torch.float64, device=DEV)
    for t_to, u, final in ((None, None, "argmax"), (None, None, "posterior"), (t / 2, None, "argmax"),
                           (t / 2, torch.rand(2, 3, device=DEV), "argmax")):  # fmt: skip
        with pytest.raises(NonFiniteError, match="log_x_theta"):
            chain_update(logits, x, t, t_to, final=final, u=u, source="test", stats=stats)


def test_the_step_draws_the_same_tokens_from_either_statistics():
    """Drawn, argmax and final steps fed the kernel's statistics equal those fed torch's, on logits with ruled-out
    tokens and ties."""
    logits, x = _rows(3, 4, 5, 37, 4.0, torch.float32)
    g = torch.Generator().manual_seed(1)
    u = torch.rand(4, 5, generator=g).to(DEV)
    t = torch.full((4,), 0.6, dtype=torch.float64, device=DEV)
    by = {k: chain_stats(logits, x, kernel=k, tiles=TILES if k == "triton" else None) for k in ("triton", "torch")}
    for t_to, uu, final in ((t * 0.9, u, "argmax"), (t * 0.9, None, "argmax"), (None, None, "posterior"),
                            (None, None, "argmax")):  # fmt: skip
        a, b = (chain_update(logits, x, t, t_to, final=final, u=uu, source="test", stats=by[k]) for k in by)
        assert torch.equal(a, b), final


def test_bad_kernel_choice():
    logits, x = _rows(0, 1, 2, 5, 1.0, torch.float32)
    with pytest.raises(ValueError, match="kernel"):
        chain_stats(logits, x, kernel="cuda")
    with pytest.raises(ValueError, match="kernel: 'triton' needs"):
        chain_stats(logits.double(), x, kernel="triton")
