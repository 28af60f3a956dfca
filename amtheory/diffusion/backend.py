"""A trained uniform-diffusion language model as an associative memory.

Wraps any network with ``forward(x_BL, sigma_B) -> logits_BLV`` (the DiT of ``amtheory.diffusion.model``), where
``sigma_t = -log alpha_t`` and ``alpha_t = 1 - (1 - 1e-3) t``. Its denoiser is the "mean" parameterization
``p_theta(x_0,i = v | x_t) = softmax(logits)_v`` (UDLM / Duo). Training is a separate job; ``store`` only records
the reference set (the training sequences, or any set of the right length) so that retrieval, basins and the
conditional-entropy probe (Pham et al. 2026) run on the same interface as every other memory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from amtheory.core._checks import check_finite_rows, check_tokens, check_vocab_fits, check_vocab_size
from amtheory.core.interface import AssociativeMemory
from amtheory.core.registry import register_backend
from amtheory.diffusion.denoiser import Denoiser
from amtheory.diffusion.schedule import sigma as sigma_of_t


def _module_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class UniformDiffusionLM(Denoiser):
    """Denoiser backed by a network ``model(x_BL, sigma_B) -> logits_BLV``.

    ``log_posterior = log_softmax(float32 logits)`` under ``torch.inference_mode``, in batches of ``batch_size``
    sequences (None: all at once). The model is put in eval mode (no dropout) and moved to ``device`` (None: where
    its parameters are). ``use_ema``: whether the wrapped weights are the EMA copy (True), the raw ones (False) or
    unknown (None); recorded as ``weights_`` and in ``describe()``. ``autocast_dtype`` (e.g. ``torch.bfloat16``)
    runs the forward pass under ``torch.autocast`` on the model's device; logits are cast to float32 before the
    softmax either way. Log posteriors come back as inference tensors (read them; do not modify them in place).
    Logits with a NaN or a +inf, or a position whose logits are all -inf, raise ``NonFiniteError``: every
    result computed from them (retrieval, entropies, the probe) would be meaningless.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        vocab_size: int,
        t_eval: float = 1e-5,
        use_ema: bool | None = None,
        device: torch.device | str | None = None,
        batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
    ):
        super().__init__(t_eval=t_eval, batch_size=batch_size)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module with forward(x, sigma), got {type(model).__name__}")
        self.vocab_size = check_vocab_size("vocab_size", vocab_size)
        if use_ema is not None and not isinstance(use_ema, bool):
            raise TypeError(f"use_ema: expected a bool or None, got {type(use_ema).__name__}")
        if autocast_dtype is not None and autocast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"autocast_dtype: expected None, torch.bfloat16 or torch.float16, got {autocast_dtype}")
        self.autocast_dtype = autocast_dtype
        self.model = model.to(device) if device is not None else model
        self.model.eval()
        self.weights_ = {True: "ema", False: "raw", None: "unspecified"}[use_ema]
        self.checkpoint_: str | None = None
        self.step_: int | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        ema: bool = True,
        device: torch.device | str = "cpu",
        t_eval: float = 1e-5,
        batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> UniformDiffusionLM:
        """Load a trained model (EMA weights by default) with ``amtheory.diffusion.checkpoint.load_model``.

        ``weights_`` records what was actually loaded ("ema", or "raw" where the checkpoint has no EMA copy),
        ``checkpoint_`` the resolved checkpoint folder and ``step_`` its training step.
        """
        from amtheory.diffusion.checkpoint import load_model

        if not isinstance(ema, bool):
            raise TypeError(f"ema: expected a bool, got {type(ema).__name__}")
        model, config, meta = load_model(path, ema=ema, device=device)
        vocab_size = config.get("vocab_size") if isinstance(config, dict) else getattr(config, "vocab_size", None)
        if vocab_size is None:
            raise ValueError(f"path: the checkpoint's config at {path} does not give a vocab_size, got {config!r}")
        out = cls(
            model,
            vocab_size=int(vocab_size),
            t_eval=t_eval,
            use_ema=ema,
            device=device,
            batch_size=batch_size,
            autocast_dtype=autocast_dtype,
        )
        return out.record_checkpoint(meta, path)

    def record_checkpoint(self, meta: dict | None, path: str | Path) -> UniformDiffusionLM:
        """Record where the wrapped weights come from, from the meta of ``load_model(path)``: ``weights_``
        ("ema", or "raw" where the checkpoint had no EMA copy), ``checkpoint_`` and ``step_``; returns the memory.
        (``from_checkpoint`` calls it; so does a caller that loaded the weights itself.)"""
        meta = meta if isinstance(meta, dict) else {}
        # load_model falls back to the raw weights when a checkpoint has no EMA copy: record what was loaded.
        loaded = meta.get("weights_loaded")
        if loaded is not None:
            self.weights_ = "ema" if loaded == "ema" else "raw"
        self.checkpoint_ = str(meta.get("path", path))
        self.step_ = None if meta.get("step") is None else int(meta["step"])
        return self

    def describe(self) -> dict:
        return {**super().describe(), "weights": self.weights_, "checkpoint": self.checkpoint_, "step": self.step_}

    # ---- storing the reference set ---------------------------------------------------------------------------
    def store(self, patterns: torch.Tensor, *, vocab_size: int | None = None) -> UniformDiffusionLM:
        """Record the reference set ``[K, L]`` (moved to the model's device); ``vocab_size`` defaults to the
        model's and must agree with it. Nothing is trained. (Overrides the base ``store`` only for that default.)
        """
        if vocab_size is None:
            vocab_size = self.vocab_size
        check_vocab_size("vocab_size", vocab_size)
        if vocab_size != self.vocab_size:
            raise ValueError(f"vocab_size: the model was built with vocab_size = {self.vocab_size}, got {vocab_size}")
        check_tokens("patterns", patterns, vocab_size=vocab_size, rank=2)
        super().store(patterns.to(_module_device(self.model)), vocab_size=vocab_size)
        return self

    def _store(self, patterns: torch.Tensor) -> None:
        # One forward pass on one stored sequence checks that the network's output agrees with vocab_size.
        self._forward_log_softmax(patterns[:1], torch.full((1,), self.t_eval, dtype=torch.float64))

    # ---- the denoiser --------------------------------------------------------------------------------------
    def _forward_logits(self, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        """The network's logits ``[B, L, V]`` (float32), shape-checked, not checked for non-finite values."""
        dev = x_BL.device
        check_vocab_fits(
            self.vocab_size, (*x_BL.shape, self.vocab_size), dtype=torch.float32, device=dev, what="logits"
        )
        sigma_B = sigma_of_t(t_B.to(device=dev, dtype=torch.float64)).to(torch.float32)
        with torch.inference_mode():
            if self.autocast_dtype is not None:
                with torch.autocast(device_type=dev.type, dtype=self.autocast_dtype):
                    logits = self.model(x_BL, sigma_B)
            else:
                logits = self.model(x_BL, sigma_B)
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (*x_BL.shape, self.vocab_size):
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise ValueError(
                    f"vocab_size: expected model logits of shape {(*x_BL.shape, self.vocab_size)} "
                    f"(vocab_size = {self.vocab_size}), got {got}"
                )
            return logits.float()

    def _forward_log_softmax(self, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            lp = torch.log_softmax(self._forward_logits(x_BL, t_B), dim=-1)
            # The largest log-probability of a position is NaN if any logit there is NaN or +inf (or all are -inf).
            check_finite_rows("model", lp.amax(-1), source=f"the logits of {type(self.model).__name__}")
            return lp

    def _log_posterior(self, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        return self._batched(self._forward_log_softmax, x_BL, t_B)

    def _chain_logits(self, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        # Unchecked: the chain step's log-sum-exp over each position raises on non-finite logits.
        return self._batched(self._forward_logits, x_BL, t_B)

    def _batched(self, fn, x_BL: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        B = x_BL.shape[0]
        step = self.batch_size or max(B, 1)
        parts = [fn(x_BL[i : i + step], t_B[i : i + step]) for i in range(0, B, step)]
        return torch.cat(parts, dim=0) if len(parts) != 1 else parts[0]

    # ---- devices ---------------------------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> AssociativeMemory:
        """Move the network and the reference set to ``device`` (in place); returns the memory."""
        self.model.to(device)
        return super().to(device)

    @property
    def n_parameters(self) -> int:
        """Number of parameters of the wrapped network."""
        return int(sum(p.numel() for p in self.model.parameters()))


# A trained network is needed to build one, so there is no factory and no stand-alone conformance case: the
# conformance checks run on a stand-in network in tests/test_uddm_backend.py.
register_backend("uddm", UniformDiffusionLM, label="UDDM", colour="#56b4e9")
