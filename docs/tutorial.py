# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial: associative memories side by side
#
# This notebook walks through the toolkit on a CPU in about a minute:
#
# 1. store binary patterns in two backends, corrupt them, retrieve them and measure their basins;
# 2. write a backend of your own, register it and run the conformance suite on it;
# 3. run a small sweep with the sweep runner and draw its figure;
# 4. train a small uniform-noise diffusion language model and probe it as an associative memory.
#
# It is kept as a text file (`docs/tutorial.py`, jupytext's percent format); `make test` turns it into a notebook
# and executes it. Open it in Jupyter with `jupytext --to ipynb docs/tutorial.py`.

# %%
import tempfile
from pathlib import Path

import torch

import amtheory as am

torch.manual_seed(0)
torch.set_num_threads(1)  # these computations are small: more threads only wait on each other
workdir = Path(tempfile.mkdtemp(prefix="amtheory-tutorial-"))

# %% [markdown]
# ## 1. Store, corrupt, retrieve, measure basins
#
# Every backend works on one state space: a pattern is a `torch.long` tensor of tokens in `[0, V)`. Binary
# patterns have `V = 2` (token 0 is spin -1, token 1 is spin +1). Here are 12 random patterns of length 100.

# %%
g = torch.Generator().manual_seed(0)
patterns = am.iid_patterns(12, 100, generator=g)  # [K, N] = [12, 100]
patterns.shape, patterns.dtype

# %% [markdown]
# Store them in a classical Hopfield network (Hebbian rule) and in a dense associative memory with an exponential
# interaction. `store` returns the memory itself.

# %%
memories = {
    "hebbian": am.ClassicalHopfield("hebbian").store(patterns, vocab_size=2),
    "exp": am.DenseAM("exp").store(patterns, vocab_size=2),
}

# %% [markdown]
# `corrupt` changes exactly `n_changed` tokens of each pattern (or each token with probability `p`); `retrieve`
# runs the dynamics from the corrupted states until they stop changing. `retrieval_records` compares the result
# with the stored pattern.

# %%
queries = am.corrupt(patterns, vocab_size=2, n_changed=25, generator=g)
for name, memory in memories.items():
    result = am.retrieve(memory, queries.states, update="async", generator=g)
    records = am.retrieval_records(patterns, queries.states, result.states, vocab_size=2)
    exact = records["exact"].float().mean().item()
    print(
        f"{name:8s} exact retrieval from 25 changed tokens: {exact:.2f}, mean steps {result.steps.float().mean():.1f}"
    )

# %% [markdown]
# The basin radius of a pattern is the largest number of changed tokens from which it is retrieved with
# probability at least `1 - delta`. `basin_radius` estimates it by Monte Carlo for every pattern and gives the
# median with a bootstrap interval.

# %%
for name, memory in memories.items():
    radius = am.basin_radius(memory, patterns, delta=0.1, n_trials=8, generator=g)
    print(f"{name:8s} median basin radius {radius.median:.0f} of N = 100, 95% interval {radius.median_ci}")

# %% [markdown]
# At a load of K/N = 0.12 the Hebbian network is close to its capacity (about 0.14 N), so its basins are small;
# the exponential memory's are far wider. `amtheory.available_backends()` lists every registered backend, and
# `make_backend` builds one by name the way the comparison does.

# %%
from amtheory.core.registry import make_backend

print(list(am.available_backends()))
make_backend("storkey")

# %% [markdown]
# ## 2. A backend of your own
#
# A backend subclasses `AssociativeMemory` and implements `_store` (remember the patterns) and `scores` (what the
# deterministic update maximises, `[B, L, V]`). This one is a Potts network whose token `v` at position `i` is
# supported by every stored pattern that has `v` there, weighted by the square of that pattern's agreement with
# the rest of the state: a second-order dense memory for any `V`.

# %%
from amtheory.core.interface import AssociativeMemory
from amtheory.core.registry import ConformanceCase, register_backend, unregister_backend


class SquaredAgreement(AssociativeMemory):
    """Potts memory: ``scores[b, i, v] = sum_mu [xi_mu,i = v] * (agreement of x without i with xi_mu)^2``."""

    def _store(self, patterns: torch.Tensor) -> None:
        self.onehot_ = torch.nn.functional.one_hot(patterns, self.vocab_size_).double()  # [K, L, V]

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        self.require_stored()
        x = self.check_queries("x", x)
        same = (x.unsqueeze(1) == self.patterns_.unsqueeze(0)).double()  # [B, K, L]
        rest = same.sum(-1, keepdim=True) - same  # agreement without position i
        return torch.einsum("bkl,klv->blv", rest**2, self.onehot_)


# %% [markdown]
# One call registers it: its name, class, figure label, a factory for the comparison and the configurations the
# conformance suite checks. No colour is given, so the registry picks the first free one of its palette.

# %%
register_backend(
    "squared",
    SquaredAgreement,
    label="squared agreement",
    make=lambda beta=None: SquaredAgreement(),
    conformance=[ConformanceCase("squared", SquaredAgreement, vocab_sizes=(2, 3))],
    compare=True,
)
print("squared" in am.available_backends())

# %% [markdown]
# The conformance suite (`amtheory.testing.conformance`) holds the checks every backend must pass: shapes and
# dtypes, a batch equals its rows one by one, reproducibility, incremental fields that track the scores, energy
# descent and Gibbs-vs-energy agreement (skipped, with the reason, for a backend without an energy), and errors on
# bad input. `REGISTRY` is every registered case, ours included; each check is a function of a case and a seed that
# raises on failure and raises `NotApplicable` where it does not apply. In a pytest suite, `run_check` turns the
# latter into a skip, and `tests/test_conformance.py` runs every check over every case in `REGISTRY`.

# %%
from amtheory.testing.conformance import CHECKS, NotApplicable
from amtheory.testing.registry import REGISTRY

for check in CHECKS:
    try:
        check(REGISTRY["squared"], 0)
        print(f"passed   {check.__name__}")
    except NotApplicable as reason:
        print(f"skipped  {check.__name__}: {reason}")

# %% [markdown]
# ## 3. A small sweep and its figure
#
# An experiment is a list of cells, small frozen dataclasses; `run_sweep` calls a function on each cell with a
# generator seeded from the cell, writes one checksummed table per cell, and skips cells whose table is already
# there, so running it again computes nothing. Here: exact retrieval against load for three backends, ours
# included, at N = 48 with 8 changed tokens.

# %%
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class LoadCell:
    backend: str
    n: int
    load: float
    changed: int  # tokens changed per query


def retrieval_at_load(cell: LoadCell, generator: torch.Generator, device: str) -> pd.DataFrame:
    k = max(1, round(cell.load * cell.n))
    stored = am.iid_patterns(k, cell.n, generator=generator)
    memory = make_backend(cell.backend).store(stored, vocab_size=2)
    q = am.corrupt(stored, vocab_size=2, n_changed=cell.changed, generator=generator)
    r = am.retrieve(memory, q.states, update="async", generator=generator)
    return am.records_to_frame(am.retrieval_records(stored, q.states, r.states, vocab_size=2))


cells = [LoadCell(backend, 48, load, 8) for backend in ("hebbian", "exp", "squared") for load in (0.05, 0.1, 0.2, 0.4)]
table = am.run_sweep(cells, retrieval_at_load, workdir / "sweep", root_seed=0, progress=False)
rates = table.groupby(["backend", "load"])["exact"].mean().unstack("backend")
rates

# %% [markdown]
# Figures take each backend's label and colour from the registry, so a registered backend is drawn the same way
# in every figure.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from amtheory.core import registry

fig, ax = plt.subplots(figsize=(5, 3.2))
for backend in rates.columns:
    ax.plot(rates.index, rates[backend], "o-", color=registry.colour(backend), label=registry.label(backend))
ax.set(xlabel="load K/N", ylabel="exact retrieval", title="N = 48, 8 tokens changed")
ax.legend()
fig.tight_layout()
fig.savefig(workdir / "retrieval_vs_load.png", dpi=120)

# %% [markdown]
# The side-by-side comparison of the main job (`amtheory.studies.hopfield.compare`) is the same kind of sweep over
# the registered backends; a preset small enough for a notebook shows ours in its tables and in its figure.

# %%
from amtheory.studies.hopfield import compare
from paper_figures import compare as compare_figure

preset = compare.ComparePreset(ns=(24,), loads=(0.1, 0.2), replicates=1, n_trials=4, backends=("hebbian", "squared"))
recovery, radius = compare.run(preset, out=str(workdir / "compare"), progress=False)
exact_table, radius_table = compare.summary_tables(recovery, radius)
print(radius_table)
paths = compare_figure.figure(workdir / "compare", workdir / "figures")
[p.name for p in paths]

# %% [markdown]
# `unregister_backend` takes it out again.

# %%
unregister_backend("squared")
"squared" in am.available_backends()

# %% [markdown]
# ## 4. A diffusion language model as an associative memory
#
# A uniform-noise diffusion model trained long enough on a few sequences memorizes them: its denoiser then pulls
# corrupted training sequences back, as a Hopfield network pulls corrupted patterns back to its attractors. Here a
# two-block DiT (the `cpu-micro` preset) trains for 1,000 steps on one CPU core on 8 sequences of 10 tokens over a
# vocabulary of 16. `train` writes checksummed safetensors checkpoints into its folder and resumes from them.

# %%
from amtheory.diffusion import EmpiricalDenoiser, ReverseDiffusion, UniformDiffusionLM, corrupt_forward
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.train import TrainConfig, train

V, L = 16, 10
sequences = torch.randint(0, V, (8, L), generator=torch.Generator().manual_seed(1))
model_config = DiTConfig.preset("cpu-micro", V, L, dropout=0.0)
train_config = TrainConfig(
    steps=1000, batch_size=32, lr=5e-3, warmup=10, ema=0.99, checkpoint_every=1000, log_every=100
)
summary = train(model_config, train_config, sequences, workdir / "uddm", device="cpu", progress=False)
print("loss every 100 steps:", [round(loss, 2) for _, loss in summary["losses"]])

# %% [markdown]
# `UniformDiffusionLM` wraps the trained network as a backend (its stored set is the reference the metrics compare
# with; nothing is trained by `store`). `EmpiricalDenoiser` is the exact posterior of a model that memorized the
# same sequences perfectly, the limit the trained model approaches. Both are retrieved with the reverse diffusion
# chain as their dynamics: each sequence gets the forward noise of time `t = 0.25`, then the chain runs back to 0.

# %%
uddm = UniformDiffusionLM.from_checkpoint(workdir / "uddm", device="cpu").store(sequences)
empirical = EmpiricalDenoiser().store(sequences, vocab_size=V)
noised = corrupt_forward(sequences, 0.25, V, generator=torch.Generator().manual_seed(2))
chain = ReverseDiffusion(t_start=0.25, n_steps=100, sampler="argmax")
print(f"noised: {(noised.states == sequences).float().mean():.2f} of the tokens intact")
for name, memory in {"trained DiT": uddm, "empirical denoiser": empirical}.items():
    restored = am.retrieve(memory, noised.states, update=chain, generator=torch.Generator().manual_seed(3))
    tokens = (restored.states == sequences).float().mean()
    exact = (restored.states == sequences).all(-1).float().mean()
    print(f"{name:18s} tokens right {tokens:.2f}, sequences restored exactly {exact:.2f}")

# %% [markdown]
# On 8 sequences, 1,000 steps take the DiT close to the empirical denoiser: it has memorized its training set.
# Trained on many more sequences, the same model generalizes instead and restores them less well; the memorization
# sweep (`amtheory run`, `experiments/memorization.py`) measures that transition.
#
# The probe of Pham et al. measures a model's conditional entropy on its own samples: near zero for a model that
# memorized (it reproduces training sequences and is sure of every token), near that of the data for one that
# generalizes. `amtheory probe RUN_FOLDER` runs the same from the command line; the reference rows it prints come
# from the recorded memorization sweep.

# %%
from amtheory.diffusion.probe import probe_checkpoint

report = probe_checkpoint(workdir / "uddm", n=8, n_steps=50, device="cpu", seed=0)
print(report.text)
