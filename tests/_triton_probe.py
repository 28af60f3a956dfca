"""Whether Triton's interpreter runs a kernel with a runtime loop bound (run by conftest.py in a subprocess with
TRITON_INTERPRET=1). Some Triton releases' interpreters fail on this under recent numpy ("only 0-dimensional
arrays can be converted to Python scalars"); every kernel of the package has such a bound. Exit status 0: usable."""

import torch
import triton
import triton.language as tl


@triton.jit
def _prefix_sum_kernel(X, OUT, n, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(X + offs, mask=offs < n, other=0.0)
    tl.store(OUT + tl.arange(0, BLOCK), acc)


if __name__ == "__main__":
    x = torch.arange(40, dtype=torch.float32)
    out = torch.empty(16)
    _prefix_sum_kernel[(1,)](x, out, 40, BLOCK=16)
    expect = torch.stack([x[i::16].sum() for i in range(16)])
    assert torch.equal(out, expect), (out, expect)
