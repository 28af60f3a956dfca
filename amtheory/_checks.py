"""Input validation shared by every public function.

Each check raises ``ValueError`` or ``TypeError`` with a message that names the argument, what was expected and
what arrived. Nothing is coerced: a float tensor handed in as tokens is an error, not a silent cast.
"""

from __future__ import annotations

import math

import torch


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
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(v).__name__} {v!r}")
    if v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    return v


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
