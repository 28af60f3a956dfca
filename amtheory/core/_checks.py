"""Input validation shared by every public function.

Each check raises ``ValueError`` or ``TypeError`` with a message that names the argument, what was expected and
what arrived. Nothing is coerced: a float tensor handed in as tokens is an error, not a silent cast.
"""

from __future__ import annotations

import functools
import math
import os

import torch

#: Largest vocabulary: tokens are ``torch.long`` and ``torch.randint`` draws below an int64 bound.
MAX_VOCAB_SIZE = 2**63 - 1


class NonFiniteError(ValueError):
    """A computed quantity holds NaN or an infinity where the toolkit needs a finite number."""


def check_tokens(
    name: str,
    x: object,
    *,
    vocab_size: int | None = None,
    length: int | None = None,
    rank: int | None = None,
    min_rank: int = 1,
) -> torch.Tensor:
    """Check that ``x`` is a ``torch.long`` token tensor ``[..., L]`` with values in ``[0, vocab_size)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of dtype torch.long, got {type(x).__name__}")
    if x.dtype != torch.long:
        raise TypeError(f"{name}: expected dtype torch.long (token ids), got {x.dtype}")
    if rank is not None and x.dim() != rank:
        raise ValueError(f"{name}: expected a tensor of rank {rank}, got rank {x.dim()} with shape {tuple(x.shape)}")
    if x.dim() < min_rank:
        raise ValueError(f"{name}: expected rank >= {min_rank}, got rank {x.dim()} with shape {tuple(x.shape)}")
    if length is not None and x.shape[-1] != length:
        raise ValueError(f"{name}: expected sequence length L = {length} in the last dimension, got {x.shape[-1]}")
    if x.numel() and vocab_size is not None:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{name}: expected tokens in [0, {vocab_size}), got values in [{lo}, {hi}]")
    return x


def check_vocab_size(name: str, v: object, *, minimum: int = 2) -> int:
    """An int in ``[minimum, MAX_VOCAB_SIZE]``."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(v).__name__} {v!r}")
    if v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    if v > MAX_VOCAB_SIZE:
        raise ValueError(f"{name}: expected an int <= 2**63 - 1 (tokens are torch.long), got {v}")
    return v


@functools.cache
def device_memory_bytes(device: str) -> int | None:
    """Total memory of ``device`` in bytes (a CUDA card's memory; on a CPU the physical memory, or the control
    group's limit where that is lower), or None where it cannot be read."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev).total_memory)
    if dev.type != "cpu":
        return None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total) if total > 0 else None


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_vocab_fits(
    vocab_size: int,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    what: str = "scores",
) -> None:
    """Raise a ``ValueError`` naming ``vocab_size`` when a tensor of ``shape`` and ``dtype`` would exceed the total
    memory of ``device`` (``device_memory_bytes``), before anything tries to allocate it.

    The bound is the whole device: a tensor above it can never be formed, while one below it may still fail where
    other tensors hold memory (then with PyTorch's own out-of-memory error).
    """
    n_bytes = math.prod(int(s) for s in shape) * torch.empty((), dtype=dtype).element_size()
    limit = device_memory_bytes(str(torch.device(device)))
    if limit is not None and n_bytes > limit:
        dims = ", ".join(str(int(s)) for s in shape)
        raise ValueError(
            f"vocab_size: {vocab_size} needs {what} of shape [{dims}] ({dtype}), {_gib(n_bytes)}, more than the "
            f"{_gib(limit)} of memory on {torch.device(device)}; use a smaller vocabulary (or fewer sequences at once)"
        )


def check_finite_rows(name: str, top: torch.Tensor, *, source: str = "") -> None:
    """Raise ``NonFiniteError`` unless every entry of ``top`` (the largest score of each row, as ``amax(-1)`` gives
    it) is finite: a row whose largest score is NaN holds a NaN, +inf holds an infinite score, and -inf has every
    score -inf, so that no token can be chosen or drawn from it."""
    ok = torch.isfinite(top)
    if bool(ok.all()):
        return
    n_nan = int(top.isnan().sum())
    n_inf = int((top == math.inf).sum())
    n_empty = int((top == -math.inf).sum())
    parts = [f"{kind} at {n}" for n, kind in ((n_nan, "NaN"), (n_inf, "+inf"), (n_empty, "only -inf")) if n]
    where = f" from {source}" if source else ""
    raise NonFiniteError(f"{name}: expected finite values{where}, got {', '.join(parts)} of {top.numel()} positions")


def check_finite(name: str, t: torch.Tensor, *, source: str = "") -> torch.Tensor:
    """Raise ``NonFiniteError`` naming ``name`` if ``t`` holds NaN or an infinity; returns ``t``."""
    if bool(torch.isfinite(t).all()):
        return t
    n_nan = int(t.isnan().sum())
    n_inf = int(t.isinf().sum())
    where = f" from {source}" if source else ""
    raise NonFiniteError(
        f"{name}: expected finite values{where}, got {n_nan} NaN and {n_inf} inf among {t.numel()} entries"
    )


def check_int(name: str, v: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum}, got {v}")
    return v


def check_float(
    name: str,
    v: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
    strict_max: bool = False,
) -> float:
    """Check a finite real number in a (half-)open or closed interval."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name}: expected a finite real number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite real number, got {v}")
    lo = "(" if strict_min else "["
    hi = ")" if strict_max else "]"
    interval = f"{lo}{'-inf' if minimum is None else minimum}, {'inf' if maximum is None else maximum}{hi}"
    if minimum is not None and (v < minimum or (strict_min and v == minimum)):
        raise ValueError(f"{name}: expected a value in {interval}, got {v}")
    if maximum is not None and (v > maximum or (strict_max and v == maximum)):
        raise ValueError(f"{name}: expected a value in {interval}, got {v}")
    return v


def check_beta(name: str, beta: object, *, allow_none: bool = False) -> float | None:
    """Inverse temperature: finite and >= 0 (None means the zero-temperature, deterministic limit)."""
    if beta is None and allow_none:
        return None
    return check_float(name, beta, minimum=0.0)


def check_generator(name: str, g: object) -> torch.Generator | None:
    if g is not None and not isinstance(g, torch.Generator):
        raise TypeError(f"{name}: expected a torch.Generator or None, got {type(g).__name__}")
    return g


def check_choice(name: str, v: object, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {v!r}")
    return v  # type: ignore[return-value]


def draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    """Where random numbers are drawn: on the generator's own device, then moved to ``device``.

    Drawing on the generator's device means the same CPU generator gives the same result for CPU and CUDA data;
    pass a CUDA generator to draw on the GPU directly at scale.
    """
    return generator.device if generator is not None else torch.device(device)


def resolve_device(name: str, device: str | None) -> str:
    """``"cuda"`` for ``None``/``"auto"`` when a GPU is available (else ``"cpu"``); ``"cpu"`` or ``"cuda[:i]"`` as
    asked, with an error naming ``name`` when CUDA is asked for without one or the text is neither."""
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) or (device != "cpu" and not device.startswith("cuda")):
        raise ValueError(f"{name}: expected auto, cpu or cuda[:i], got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{name}: {device!r} asked for, but torch.cuda.is_available() is False")
    return device
