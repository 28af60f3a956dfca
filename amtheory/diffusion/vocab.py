"""Token-id vocabularies of a prepared corpus: the special tokens of a BERT-style vocabulary and the dense
relabelling (:class:`VocabMapping`) that compacts the ids a corpus uses to ``[0, V_c)``, special tokens first, so
that small models need a much smaller embedding and output layer. Re-exported by :mod:`amtheory.diffusion.data`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amtheory.core._checks import check_tokens, check_vocab_size

__all__ = ["BERT_SPECIALS", "COMPACT_SPECIALS", "SpecialTokens", "VocabMapping"]


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the five special tokens of a BERT-style vocabulary."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    def ids(self) -> tuple[int, int, int, int, int]:
        """The ids in the fixed order PAD, UNK, CLS, SEP, MASK."""
        return (self.pad, self.unk, self.cls, self.sep, self.mask)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SpecialTokens:
        missing = [k for k in ("pad", "unk", "cls", "sep", "mask") if k not in d]
        if missing:
            raise ValueError(f"specials: expected keys pad, unk, cls, sep, mask, missing {missing}")
        return SpecialTokens(**{k: int(d[k]) for k in ("pad", "unk", "cls", "sep", "mask")})


#: bert-base-uncased: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103.
BERT_SPECIALS = SpecialTokens(pad=0, unk=100, cls=101, sep=102, mask=103)
#: A compacted vocabulary puts the special tokens first, in this order.
COMPACT_SPECIALS = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)


def _as_long(name: str, a: object) -> torch.Tensor:
    """A 1-D int64 tensor from a numpy array, tensor or sequence of ints (integer dtypes only)."""
    if isinstance(a, torch.Tensor):
        t = a.detach().cpu()
    elif isinstance(a, np.ndarray):
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name}: expected integer ids, got a numpy array of dtype {a.dtype}")
        t = torch.from_numpy(a.astype(np.int64, copy=False))
    elif isinstance(a, Sequence):
        t = torch.as_tensor(list(a), dtype=torch.long)
    else:
        raise TypeError(f"{name}: expected a 1-D integer array, tensor or sequence, got {type(a).__name__}")
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
        raise TypeError(f"{name}: expected integer ids, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {tuple(t.shape)}")
    return t.long()


class VocabMapping:
    """A dense relabelling of the token ids a corpus uses: full id ``to_full[c]`` gets compact id ``c``.

    Compact ids ``0..4`` are the special tokens (PAD, UNK, CLS, SEP, MASK); then the kept ordinary tokens follow in
    decreasing corpus frequency (ties by full id). A full id that is not kept encodes to the compact ``[UNK]``,
    so ``decode(encode(x)) == x`` exactly when every id of ``x`` is kept (``covers(x)``). Store ``to_dict()`` with
    any result computed in compact ids; ``VocabMapping.from_dict`` restores it.
    """

    def __init__(self, to_full: torch.Tensor | Sequence[int], *, full_size: int, full_specials: SpecialTokens):
        check_vocab_size("full_size", full_size)
        if not isinstance(full_specials, SpecialTokens):
            raise TypeError(f"full_specials: expected SpecialTokens, got {type(full_specials).__name__}")
        to_full = _as_long("to_full", to_full)
        if to_full.numel() < 5 or tuple(to_full[:5].tolist()) != full_specials.ids():
            raise ValueError(
                f"to_full: expected the special ids {full_specials.ids()} first, got {tuple(to_full[:5].tolist())}"
            )
        if to_full.numel() and (int(to_full.min()) < 0 or int(to_full.max()) >= full_size):
            raise ValueError(
                f"to_full: expected ids in [0, {full_size}), got [{int(to_full.min())}, {int(to_full.max())}]"
            )
        if torch.unique(to_full).numel() != to_full.numel():
            raise ValueError("to_full: expected distinct full ids, got repeats")
        self.to_full = to_full
        self.full_size = full_size
        self.full_specials = full_specials
        self.specials = COMPACT_SPECIALS
        # Every full id starts at the compact [UNK]; kept ids overwrite their slot.
        table = torch.full((full_size,), COMPACT_SPECIALS.unk, dtype=torch.long)
        table[to_full] = torch.arange(to_full.numel())
        self.to_compact = table

    @property
    def size(self) -> int:
        """The compact vocabulary size ``V_c`` (special tokens included)."""
        return int(self.to_full.numel())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Full ids -> compact ids (ids not kept become the compact ``[UNK]``)."""
        check_tokens("x", x, vocab_size=self.full_size, min_rank=0)
        return self.to_compact.to(x.device)[x]

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Compact ids -> full ids."""
        check_tokens("y", y, vocab_size=self.size, min_rank=0)
        return self.to_full.to(y.device)[y]

    def covers(self, x: torch.Tensor) -> bool:
        """Whether every id of ``x`` (full ids) is kept, i.e. the round trip is exact."""
        check_tokens("x", x, vocab_size=self.full_size, min_rank=0)
        kept = torch.zeros(self.full_size, dtype=torch.bool)
        kept[self.to_full] = True
        return bool(kept.to(x.device)[x].all())

    def fingerprint(self) -> str:
        """sha256 of the mapping, to tie a result to the exact relabelling it used."""
        h = hashlib.sha256()
        h.update(json.dumps({"full_size": self.full_size, "specials": self.full_specials.to_dict()}).encode())
        h.update(self.to_full.numpy().astype("<i8").tobytes())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "full_size": self.full_size,
            "full_specials": self.full_specials.to_dict(),
            "to_full": self.to_full.tolist(),
            "sha256": self.fingerprint(),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> VocabMapping:
        m = VocabMapping(
            d["to_full"], full_size=int(d["full_size"]), full_specials=SpecialTokens.from_dict(d["full_specials"])
        )
        if "sha256" in d and d["sha256"] != m.fingerprint():
            raise ValueError("mapping: the stored sha256 does not match the stored ids")
        return m

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @staticmethod
    def load(path: str | os.PathLike) -> VocabMapping:
        return VocabMapping.from_dict(json.loads(Path(path).read_text()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VocabMapping):
            return NotImplemented
        return (
            self.full_size == other.full_size
            and self.full_specials == other.full_specials
            and torch.equal(self.to_full, other.to_full)
        )

    def __repr__(self) -> str:
        return f"VocabMapping(size={self.size}, full_size={self.full_size})"
