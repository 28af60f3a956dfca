"""Whether Triton's interpreter runs a kernel whose loop bound is computed at run time (run by conftest.py in a
subprocess with TRITON_INTERPRET=1). Triton 3.6's interpreter fails on such bounds under numpy 2.5, and on bounds
passed as arguments too under numpy 2.4 ("only 0-dimensional arrays can be converted to Python scalars"); the
package's kernels loop over both kinds. The probe is a kernel of its own, not one of the package's, so that a fault
in those fails their tests instead of skipping them. Exit status 0: usable."""

import torch
import triton
import triton.language as tl


@triton.jit
def _slice_sum_kernel(X, OUT, n, per, BLOCK: tl.constexpr):
    """Program p sums its slice ``X[p per : min((p + 1) per, n)]`` into BLOCK lanes: a loop bound computed from the
    program id and the arguments, as in the package's kernels."""
    pid = tl.program_id(0)
    lo = pid * per
    hi = tl.minimum(lo + per, n)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, hi - lo, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(X + lo + offs, mask=offs < hi - lo, other=0.0)
    tl.store(OUT + pid * BLOCK + tl.arange(0, BLOCK), acc)


if __name__ == "__main__":
    x = torch.arange(40, dtype=torch.float32)
    out = torch.empty(3, 8)
    _slice_sum_kernel[(3,)](x, out, 40, 16, BLOCK=8)
    slices = [x[p * 16 : min(p * 16 + 16, 40)] for p in range(3)]
    expect = torch.stack([torch.stack([sl[i::8].sum() for i in range(8)]) for sl in slices])
    assert torch.equal(out, expect), (out, expect)
