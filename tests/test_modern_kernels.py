import json
import math
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import amtheory.core._triton
from amtheory.backends import _attention, _triton_attention
from amtheory.backends.modern import ModernHopfield
from amtheory.core.patterns import iid_patterns
from amtheory.testing.profiles import property_settings
from amtheory.testing.strategies import seeds, sizes

torch.set_num_threads(1)
SETTINGS = property_settings(max_examples=25)


def _plain(q, X, beta):
    """Reference: softmax(beta q X^T) X in float64, all logits at once."""
    X = X.double()
    return torch.softmax(beta * q.double() @ X.T, dim=-1) @ X


@SETTINGS
@given(
    seed=seeds(),
    B=sizes(1, 6),
    K=sizes(1, 40),
    d=sizes(1, 9),
    splits=sizes(1, 50),
    beta=st.sampled_from([1e-6, 0.05, 1.0, 30.0, 300.0]),
)
def test_split_and_combine_equals_plain_attention(seed, B, K, d, splits, beta):
    """Any number of slices (dividing K or not, more than K), any beta: the lse-weighted combine is exact."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, d, generator=g, dtype=torch.float64)
    X = torch.randn(K, d, generator=g, dtype=torch.float64)
    out = _attention.split_attention(q, X, beta, splits=splits, backend="reference")
    torch.testing.assert_close(out, _plain(q, X, beta), rtol=1e-9, atol=1e-9)


def test_combine_gives_empty_slices_zero_weight():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 4, generator=g, dtype=torch.float64)
    X = torch.randn(10, 4, generator=g, dtype=torch.float64)
    o1, l1 = _attention.reference_partial(q, X[:6], 0.7)
    o2, l2 = _attention.reference_partial(q, X[6:], 0.7)
    junk = torch.full_like(o1, 1e6)
    out = _attention.combine_partials(
        torch.stack([o1, junk, o2]), torch.stack([l1, torch.full_like(l1, -math.inf), l2])
    )
    torch.testing.assert_close(out, _plain(q, X, 0.7), rtol=1e-12, atol=1e-12)


def test_slice_size_covers_k_without_empty_slices():
    for K in (1, 7, 64, 1000, 1025):
        for splits in (1, 2, 3, 8, 33, 2000):
            for mult in (1, 16, 64):
                per = _attention.slice_size(K, splits, mult)
                n = -(-K // per)
                assert per % mult == 0 and n <= splits and (n - 1) * per < K <= n * per


def test_choose_splits_fills_waves():
    # 8 query blocks on 132 SMs with plenty of keys: enough slices for at least one full wave, at most 64.
    s = _attention.choose_splits(8, 2**20, 132)
    assert 8 * s >= 132 and s <= 64
    eff = 8 * s / (-(-8 * s // 132) * 132)
    assert eff >= 0.9
    # Few keys: never slices shorter than min_keys.
    assert _attention.choose_splits(8, 3000, 132, min_keys=1024) <= 2
    assert _attention.choose_splits(200, 2**20, 132) >= 1


def test_fused_path_on_cpu_flash_kernel():
    """The fused-kernel call (argument mapping, lse shape, ragged tail slice) checked with the CPU flash kernel."""
    if not _attention.fused_backend_ok("flash-cpu", torch.device("cpu"), torch.float32, 16):
        pytest.skip("no CPU flash attention kernel in this torch")
    g = torch.Generator().manual_seed(1)
    q = torch.randn(9, 16, generator=g)
    X = torch.randn(101, 16, generator=g)
    for splits in (1, 4, 7, 101):
        for beta in (0.01, 0.5, 4.0):
            out = _attention.split_attention(q, X, beta, splits=splits, backend="flash-cpu")
            torch.testing.assert_close(out.double(), _plain(q, X, beta), rtol=1e-5, atol=1e-5)
    assert not _attention.fused_backend_ok("flash", torch.device("cpu"), torch.bfloat16, 16)


def _memory(seed, K, L, V, **kw):
    g = torch.Generator().manual_seed(seed)
    X = iid_patterns(K, L, vocab_size=V, generator=g)
    return ModernHopfield(**kw).store(X, vocab_size=V), g


@SETTINGS
@given(
    seed=seeds(),
    K=sizes(1, 30),
    L=sizes(1, 5),
    V=st.sampled_from([2, 3]),
    beta=st.sampled_from([1e-4, 0.3, 5.0, 80.0]),
    chunk=st.one_of(st.none(), sizes(1, 11)),
    splits=st.one_of(st.none(), sizes(1, 35)),
)
def test_split_kernel_equals_stream_kernel(seed, K, L, V, beta, chunk, splits):
    kw = dict(beta=beta, chunk_size=chunk, dtype=torch.float64)
    split, g = _memory(seed, K, L, V, kernel="split-sdpa", splits=splits, **kw)
    stream, _ = _memory(seed, K, L, V, kernel="stream", **kw)
    q = torch.randn(4, split.width, generator=g, dtype=torch.float64) * 2
    torch.testing.assert_close(split.continuous_step(q), stream.continuous_step(q), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(split.continuous_step(q), _plain(q, split.X_, beta), rtol=1e-10, atol=1e-10)


def test_split_kernel_half_precision_matmuls_match_stream():
    for mm in (torch.bfloat16, torch.float16):
        split, g = _memory(3, 70, 12, 2, beta=0.4, chunk_size=16, matmul_dtype=mm, kernel="split-sdpa")
        stream, _ = _memory(3, 70, 12, 2, beta=0.4, chunk_size=16, matmul_dtype=mm, kernel="stream")
        q = torch.randn(5, split.width, generator=g)
        out = split.continuous_step(q)
        assert out.dtype == torch.float32
        # Same rounding of the inputs and of p; only the order of float32 sums differs.
        torch.testing.assert_close(out, stream.continuous_step(q), rtol=0, atol=2e-2)
        torch.testing.assert_close(out.double(), _plain(q, split.X_, 0.4), rtol=0, atol=3e-2)


def test_auto_is_stream_on_cpu_and_kernel_validation():
    mem, g = _memory(4, 20, 6, 2, beta=0.5, chunk_size=7, matmul_dtype=torch.bfloat16)
    assert mem.kernel == "auto" and mem.resolved_kernel("cpu") == "stream"
    ref, _ = _memory(4, 20, 6, 2, beta=0.5, chunk_size=7, matmul_dtype=torch.bfloat16, kernel="stream")
    q = torch.randn(3, mem.width, generator=g)
    assert torch.equal(mem.continuous_step(q), ref.continuous_step(q))
    with pytest.raises(ValueError, match="kernel"):
        ModernHopfield(kernel="fast")
    with pytest.raises(ValueError, match="splits"):
        ModernHopfield(splits=0)
    pinned, _ = _memory(4, 20, 6, 2, kernel="split-flash", matmul_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="kernel"):
        pinned.continuous_step(q)
    # Where the kernel cannot run (a CPU without Triton's interpreter), asking for it is a clear error.
    with mock.patch.object(amtheory.core._triton, "INTERPRET", False):
        assert not _triton_attention.available("cpu")
        tri, _ = _memory(4, 20, 6, 2, kernel="triton")
        with pytest.raises(RuntimeError, match="triton"):
            tri.continuous_step(q)


_INTERPRETED = r"""
import json, torch
torch.set_num_threads(1)
from amtheory.backends import _triton_attention as T, _attention as A
from amtheory.backends.modern import ModernHopfield
from amtheory.core.patterns import iid_patterns
g = torch.Generator().manual_seed(0)
errs = {}
for dt, B, K, d, splits, beta, bm, bn in [
    (torch.float32, 37, 301, 32, 3, 0.7, 16, 32),
    (torch.float16, 20, 130, 16, 2, 0.3, 16, 16),
    (torch.float32, 5, 64, 16, 1, 9.0, 16, 16),
    (torch.float32, 16, 200, 16, 50, 1e-4, 16, 16),
]:
    q = torch.randn(B, d, generator=g).to(dt)
    X = torch.randn(K, d, generator=g).to(dt)
    out, lse = T.split_attention_partials(q, X, beta, splits, block_m=bm, block_n=bn)
    per = A.slice_size(K, splits, bn)
    e = 0.0
    for s in range(out.shape[0]):
        ro, rl = A.reference_partial(q.double(), X[s * per:(s + 1) * per].double(), beta)
        e = max(e, float((out[s].double() - ro).abs().max()), float((lse[s].double() - rl).abs().max()))
    full = A.combine_partials(out, lse).double()
    e = max(e, float((full - A.reference_partial(q.double(), X.double(), beta)[0]).abs().max()))
    errs[f"{dt}-{K}-{splits}"] = [e, out.shape[0]]
pat = iid_patterns(50, 5, vocab_size=3, generator=g)
mem = ModernHopfield(beta=0.8, kernel="triton", splits=3).store(pat, vocab_size=3)
ref = ModernHopfield(beta=0.8, kernel="stream", dtype=torch.float64).store(pat, vocab_size=3)
xi = torch.randn(7, mem.width, generator=g)
errs["memory-d15"] = [float((mem.continuous_step(xi).double() - ref.continuous_step(xi.double())).abs().max()), 3]
print(json.dumps(errs))
"""


def test_triton_kernel_under_interpreter():
    """The Triton kernel's partials, lse and the combine, run by Triton's CPU interpreter (bf16 dots are not
    emulated there, so float32 and float16 inputs)."""
    if not _triton_attention.HAVE_TRITON:
        pytest.skip("triton is not installed")
    status = os.environ.get("AMTHEORY_TRITON_INTERPRETER", "ok")  # set by conftest.py
    if status.startswith("unusable"):
        pytest.skip(f"Triton's interpreter: {status}")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", _INTERPRETED], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    errs = json.loads(res.stdout.strip().splitlines()[-1])
    for name, (err, _) in errs.items():
        tol = 5e-3 if "float16" in name else 1e-4
        assert err < tol, (name, err)
    assert errs["torch.float32-301-3"][1] == 3 and errs["torch.float32-200-50"][1] == 13
