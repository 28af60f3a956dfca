"""Split-K softmax attention with keys = values = X, the large-K kernel of the modern Hopfield step.

One step ``X^T softmax(beta X q)`` over K stored patterns is split into S contiguous slices ``X_s``; each slice
gives a normalized partial output and its log-sum-exp,

    o_s = softmax(beta q X_s^T) X_s,   lse_s = log sum_{mu in s} exp(beta q . x_mu),

and the slices combine exactly as ``sum_s w_s o_s`` with ``w_s = softmax_s(lse_s)`` (Milakov and Gimelshein 2018;
"flash-decoding", Dao et al. 2023). Splitting matters on a GPU when there are few query blocks but many keys: a
fused attention kernel parallelizes over query blocks only, so B = 1024 queries leave most SMs idle; S slices run
as S batch entries of one call.

Per-slice backends: the fused CUDA kernels behind ``scaled_dot_product_attention`` that return the log-sum-exp
(``flash``, ``efficient``, ``cudnn``; private ATen ops, called by argument name so small signature changes between
torch versions do not break them, and checked once per device and width against the reference), and
``reference``, plain float matmuls that run anywhere (the CPU path, and what the tests check the combine with).
Memory: the partials take ``S B d``; no ``[B, K]`` matrix is formed by the fused backends, and the plain-matmul
slices run over chunks of queries sized to the working-memory budget (``amtheory.core.budget``).
"""

from __future__ import annotations

import math

import torch

from amtheory.core import budget

FUSED_BACKENDS = ("flash", "cudnn", "efficient")
_OPS = {
    "flash": "_scaled_dot_product_flash_attention",
    "efficient": "_scaled_dot_product_efficient_attention",
    "cudnn": "_scaled_dot_product_cudnn_attention",
    # The CPU flash kernel: not used by "auto" (plain matmuls are exact there) but it runs the same call, lse and
    # combine path as the CUDA kernels, so that path is testable without a GPU.
    "flash-cpu": "_scaled_dot_product_flash_attention_for_cpu",
}
# Backend checks are cached per (backend, device, dtype, d): a failed check disables that backend there.
_VERIFIED: dict[tuple[str, str, torch.dtype, int], bool] = {}


def slice_size(K: int, splits: int, multiple: int = 1) -> int:
    """Patterns per slice when K is cut into at most ``splits`` contiguous slices of equal size (a multiple of
    ``multiple``), the last one possibly shorter but never empty: ``ceil(ceil(K / splits) / multiple) multiple``."""
    per = -(-K // max(1, splits))
    return -(-per // multiple) * multiple


def choose_splits(n_query_blocks: int, K: int, n_sm: int, *, min_keys: int = 1024, max_splits: int = 64) -> int:
    """Number of key slices S so that ``n_query_blocks * S`` programs fill whole waves of ``n_sm`` SMs.

    Picks the S in ``[1, min(max_splits, K // min_keys)]`` with the best wave efficiency
    ``programs / (waves * n_sm)`` among those giving at least one full wave (the smallest such S on ties): fewer
    slices mean less combine work, and each slice keeps at least ``min_keys`` patterns to amortize its start-up.
    """
    top = max(1, min(max_splits, K // max(1, min_keys)))
    best, best_eff = 1, -1.0
    for s in range(1, top + 1):
        programs = n_query_blocks * s
        waves = -(-programs // n_sm)
        eff = programs / (waves * n_sm)
        if programs < n_sm:
            eff *= 0.5  # an unfilled GPU: only better than nothing
        if eff > best_eff + 1e-9:
            best, best_eff = s, eff
    return best


def combine_partials(out_SBd: torch.Tensor, lse_SB: torch.Tensor) -> torch.Tensor:
    """Merge per-slice attention outputs: ``sum_s softmax_s(lse_s) o_s`` ``[B, d]`` (float32 or float64).

    Slices without any key (``lse = -inf``) get weight zero; at least one slice per query must have keys.
    """
    work = torch.promote_types(lse_SB.dtype, torch.float32)
    w_SB = torch.softmax(lse_SB.to(work), dim=0)
    return torch.einsum("sb,sbd->bd", w_SB, out_SBd.to(work))


def reference_partial(
    q_Bd: torch.Tensor, x_Kd: torch.Tensor, beta: float, matmul_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One slice in plain matmuls: ``(softmax(beta q x^T) x [B, d], lse [B])`` in the dtype of ``q_Bd``.

    With ``matmul_dtype`` (bfloat16 or float16) both products take inputs rounded to it, as on tensor cores, while
    the logits, the softmax and the accumulation stay in the working dtype.
    """
    work = q_Bd.dtype
    if matmul_dtype is not None and matmul_dtype != work:
        q_r, x_r = q_Bd.to(matmul_dtype).to(work), x_Kd.to(matmul_dtype).to(work)
    else:
        q_r, x_r = q_Bd, x_Kd.to(work)
    z_BK = beta * (q_r @ x_r.T)
    lse_B = torch.logsumexp(z_BK, dim=-1)
    p_BK = torch.exp(z_BK - lse_B.unsqueeze(-1))
    if matmul_dtype is not None and matmul_dtype != work:
        p_BK = p_BK.to(matmul_dtype).to(work)
    return p_BK @ x_r, lse_B


def _call_fused(backend: str, q: torch.Tensor, k: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``[N, H, Lq, d]`` and natural-log lse ``[N, H, Lq]`` of one fused SDPA kernel (keys = values)."""
    op = getattr(torch.ops.aten, _OPS[backend], None)
    if op is None:
        raise RuntimeError(f"torch.ops.aten.{_OPS[backend]} is not available in torch {torch.__version__}")
    wanted = {
        "attn_bias": None,
        "compute_log_sumexp": True,
        "dropout_p": 0.0,
        "is_causal": False,
        "return_debug_mask": False,
        "scale": float(beta),
    }
    kwargs = {}
    for arg in op.default._schema.arguments[3:]:
        if arg.name in wanted:
            kwargs[arg.name] = wanted[arg.name]
        elif not arg.has_default_value():
            raise RuntimeError(f"{_OPS[backend]}: unexpected required argument {arg.name!r}")
    res = op(q, k, k, **kwargs)
    out, lse = res[0], res[1]
    Lq = q.shape[2]
    # The efficient kernel pads the query length of lse to a multiple of 32; some versions add a trailing 1.
    lse = lse.reshape(lse.shape[0], lse.shape[1], -1)[..., :Lq]
    return out, lse


def _fused_partials(
    backend: str, q_Bd: torch.Tensor, x_Kd: torch.Tensor, beta: float, splits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Partials ``[S', B, d]`` and lse ``[S', B]`` from one batched fused call over the equal slices plus one call
    for the shorter tail slice, if any."""
    B, d = q_Bd.shape
    K = x_Kd.shape[0]
    per = slice_size(K, splits)
    n_full = K // per
    outs, lses = [], []
    if n_full:
        k = x_Kd[: n_full * per].view(n_full, 1, per, d)
        q = q_Bd.view(1, 1, B, d).expand(n_full, 1, B, d)
        try:
            out, lse = _call_fused(backend, q, k, beta)
        except RuntimeError:
            # Some kernels want a materialized query batch rather than a stride-0 broadcast.
            out, lse = _call_fused(backend, q.contiguous(), k, beta)
        outs.append(out[:, 0])
        lses.append(lse[:, 0])
    if n_full * per < K:
        out, lse = _call_fused(backend, q_Bd.view(1, 1, B, d), x_Kd[n_full * per :].view(1, 1, -1, d), beta)
        outs.append(out[:, 0])
        lses.append(lse[:, 0])
    return torch.cat(outs), torch.cat(lses)


def fused_backend_ok(backend: str, device: torch.device, dtype: torch.dtype, d: int) -> bool:
    """Whether fused ``backend`` runs for width ``d`` and ``dtype`` on ``device`` and agrees with the reference on a
    small problem with a ragged split (checked once, then cached)."""
    device = torch.device(device)
    if backend not in _OPS or (device.type == "cuda") == (backend == "flash-cpu"):
        return False
    key = (backend, str(device), dtype, d)
    if key not in _VERIFIED:
        ok = False
        try:
            g = torch.Generator(device="cpu").manual_seed(1234)
            q = torch.randn(70, d, generator=g).to(device=device, dtype=dtype)
            x = torch.randn(333, d, generator=g).to(device=device, dtype=dtype)
            beta = 1.0 / math.sqrt(d)
            out = combine_partials(*_fused_partials(backend, q, x, beta, 3))
            ref, _ = reference_partial(q.float(), x.float(), beta)
            ok = bool(torch.isfinite(out).all()) and float((out - ref).abs().max()) < 5e-2
        except (RuntimeError, TypeError, ValueError, NotImplementedError):
            ok = False
        _VERIFIED[key] = ok
    return _VERIFIED[key]


def fused_backends(device: torch.device, dtype: torch.dtype, d: int) -> list[str]:
    """The fused backends that pass ``fused_backend_ok`` here, in order of preference."""
    return [b for b in FUSED_BACKENDS if fused_backend_ok(b, device, dtype, d)]


def split_attention(
    q_Bd: torch.Tensor,
    x_Kd: torch.Tensor,
    beta: float,
    *,
    splits: int | None = None,
    backend: str = "auto",
    matmul_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``softmax(beta q X^T) X`` ``[B, d]`` in the dtype of ``q_Bd``, computed over S key slices and combined.

    ``backend``: ``"auto"`` (the first working fused kernel on CUDA with a half-precision ``matmul_dtype``, else
    ``"reference"``), one of ``FUSED_BACKENDS``, or ``"reference"``. ``splits`` None picks S from the SM count on
    CUDA (``choose_splits``) and 1 elsewhere. ``x_Kd`` should already be in ``matmul_dtype`` for the fused kernels
    (no copy of X is made then). Queries go through in chunks sized to the working-memory budget
    (``amtheory.core.budget``); on CUDA each chunk picks its own S.
    """
    K, d = x_Kd.shape
    e = torch.finfo(torch.promote_types(q_Bd.dtype, torch.float32)).bits // 8
    # Per query: the logits, weights and their casts over one key slice (plain matmuls; the fused kernels keep them
    # on chip) and the per-slice partial outputs, 64 slices at most unless more are asked for.
    slices = max(64, splits or 1)
    per_slice = -(-K // max(1, splits or 1))
    per_row = e * (4 * per_slice + (slices + 4) * d)

    def rows(q: torch.Tensor) -> torch.Tensor:
        return _split_attention_rows(q, x_Kd, beta, splits, backend, matmul_dtype)

    return budget.map_rows(rows, q_Bd, bytes_per_row=per_row)


def _split_attention_rows(
    q_Bd: torch.Tensor,
    x_Kd: torch.Tensor,
    beta: float,
    splits: int | None,
    backend: str,
    matmul_dtype: torch.dtype | None,
) -> torch.Tensor:
    B, d = q_Bd.shape
    K = x_Kd.shape[0]
    work = q_Bd.dtype
    half = matmul_dtype in (torch.bfloat16, torch.float16)
    if backend == "auto":
        usable = fused_backends(q_Bd.device, matmul_dtype, d) if half and q_Bd.is_cuda else []
        backend = usable[0] if usable else "reference"
    if splits is None:
        if q_Bd.is_cuda:
            n_sm = torch.cuda.get_device_properties(q_Bd.device).multi_processor_count
            block_m = 128 if d <= 128 else 64
            splits = choose_splits(-(-B // block_m), K, n_sm)
        else:
            splits = 1
    if backend == "reference":
        per = slice_size(K, splits)
        parts = [reference_partial(q_Bd, x_Kd[s : s + per], beta, matmul_dtype) for s in range(0, K, per)]
        out_SBd = torch.stack([p[0] for p in parts])
        lse_SB = torch.stack([p[1] for p in parts])
    elif backend in _OPS:
        mm = matmul_dtype or work
        out_SBd, lse_SB = _fused_partials(backend, q_Bd.to(mm), x_Kd.to(mm), beta, splits)
    else:
        raise ValueError(f"backend: expected 'auto', 'reference' or one of {tuple(_OPS)}, got {backend!r}")
    if out_SBd.shape[0] == 1:
        return out_SBd[0].to(work)
    return combine_partials(out_SBd, lse_SB).to(work)
