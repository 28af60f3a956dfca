"""The named sweeps of the memorization study (``amtheory.studies.memorization``), and the main job's variant of them.

``preset(name)``; CLI ``experiments/memorization.py --preset NAME``:

* ``tiny`` — CPU, end to end within five minutes on two cores: the embedded corpus (6,000 training sentences),
  16-token blocks, the 512 most frequent ids (the rest are ``[UNK]``), the ``cpu-micro`` DiT (64 wide, 2 blocks)
  without dropout, 4 / 16 / 64 training blocks, 1,600 steps of 16 blocks (lr 3e-3), a 50-step reverse grid and 32
  evaluation blocks per split.
* ``gpu`` — one GPU, the grid that can decide the paper's claims: the full corpus ``data/brown-sotu``, 64-token
  blocks, the 8,192 most frequent ids (95.7% of tokens), three DiTs without dropout — ``gpu-micro`` (48 wide, 2
  blocks), ``gpu-small`` (128 x 4) and ``gpu-quick`` (256 x 6; docs/theory.md, "The denoising network and its
  training"), 0.99M to 10.2M parameters — ten training sizes log-spaced from 16 blocks to the whole pool (53,167),
  three seeds, and two step budgets (800 and 3,200 steps of 64 blocks; float32 with TF32, compiled, lr 1e-3; 3,200
  steps memorize the smallest sets of gpu-small and gpu-quick, not those of gpu-micro:
  benchmarks/h100_memorization_budget_probe.log): 180 models, measured 30 at a time in lockstep (``eval_group``);
  each 800-step model is read off its 3,200-step run at step 800 (``amtheory.studies.memorization.budgets``), so 90
  runs train, 30 at a time (``train_group``). Recovery at t in {0.05, 0.1, 0.25, 0.5, 1.0} on 384 queries per
  split, smaller training sets queried block by block in turn (``GPU_SETTINGS``); the 800-step models are measured
  for recovery and the NELBO, the 3,200-step models for everything (``short_budget_measures``). Every stage prints
  its wall time; run the command again to finish what a first call did not (results: docs/results_memorization.md;
  its time: benchmarks/README.md).
* ``large`` — several GPUs (one worker per GPU through the runner): the paper's "tiny" (256 x 8) and "small"
  (768 x 12) DiTs on 128-token blocks of the full vocabulary, 64 ... 16,384 training blocks (powers of 4 times
  64 and the whole pool), 20,000 steps of 512.
* ``paper`` — the paper's setting, for one host with several GPUs: the paper's "tiny" (256 x 8 x 8) and "small"
  (768 x 12 x 12) DiTs without dropout on 128-token blocks of the full bert-base-uncased vocabulary (30,522 ids, no
  compaction) of the prepared corpus ``data/brown-sotu`` (``make data`` builds it), ten training sizes doubling
  from 32 to 16,384 blocks, two training seeds (40 models), each trained for 20,000 steps of 512 blocks (every
  block of the 32-block sets is drawn 320,000 times, far past what memorized 32 blocks in the gpu preset). The
  cells spread over the GPUs with the sweep runner's workers (``workers="auto"``: one process per visible GPU,
  each stage's cells split between them); ``experiments/slurm_memorization.py --preset paper`` sends the same
  models to a Slurm job array instead, one model per element.

``main_job_preset(name)``: the preset that ``amtheory run`` uses (on "gpu": two of the gpu preset's DiTs, one seed
and one budget, on the embedded corpus, within the main job's 10 minutes).
"""

from __future__ import annotations

import dataclasses

from amtheory.core._checks import check_choice, check_int
from amtheory.studies.memorization.cells import DataSpec, EvalSettings, ModelSpec, Preset
from amtheory.studies.memorization.data import load_data

__all__ = ["GPU_POOL_BLOCKS", "GPU_SETTINGS", "GPU_SIZES", "PRESET_NAMES", "main_job_preset", "preset"]

#: The named presets, in order of size.
PRESET_NAMES = ("tiny", "gpu", "large", "paper")

#: Packed 64-token training blocks of the prepared Brown + State of the Union corpus (``amtheory prepare``): the
#: largest training set of the gpu preset is the whole pool.
GPU_POOL_BLOCKS = 53167

#: The gpu preset's training sizes: ten, log-spaced (a factor of about 2.46) from 16 blocks to the whole pool.
GPU_SIZES = tuple(int(round(16 * (GPU_POOL_BLOCKS / 16) ** (k / 9))) for k in range(10))

#: How the gpu preset measures each model: recovery at five noise levels up to t = 1 on a 50-step global grid,
#: 384 blocks per split (three seeds pool 1,152 a split, for a standard error of train minus test recovery near
#: 0.01; a training set of fewer blocks gives 384 queries all the same, its blocks in turn, each corrupted anew: with
#: one query per block the 16-block sets' standard errors were 0.017-0.046, docs/results_memorization.md), basin
#: radii of 16 blocks per split from 16 corruptions per level on a 10-step local grid, 96 samples, the NELBO at 8
#: stratified times, 128 sequences a forward pass per model (a lockstep group of 30 models runs 3,840 at once).
GPU_SETTINGS = EvalSettings(
    n_eval=384,
    ts=(0.05, 0.1, 0.25, 0.5, 1.0),
    n_steps=50,
    n_basin=16,
    basin_trials=16,
    basin_delta=0.1,
    basin_steps=10,
    n_generate=96,
    nelbo_ts=8,
    kl_ts=(0.05, 0.1, 0.25, 0.5),
    batch_size=128,
    empirical_steps=50,
    hopfield_batch=32,
    modern_max_bytes=8 * 2**30,
    fill_train=True,
)


#: How the presets for several GPUs (``large``, ``paper``) measure each model: the paper's 1,000-step reverse grid,
#: 512 blocks per split, 64 basin blocks per split. One-hot 128-token blocks of 30,522 ids take 15.6 MB a block, so
#: within ``modern_max_bytes`` the modern network runs up to 1,024 stored blocks.
SEVERAL_GPU_SETTINGS = EvalSettings(
    n_eval=512,
    n_steps=1000,
    n_basin=64,
    basin_trials=32,
    basin_delta=0.1,
    basin_steps=20,
    n_generate=512,
    nelbo_ts=16,
    kl_ts=(0.05, 0.1, 0.25, 0.5),
    batch_size=512,
    empirical_steps=100,
    hopfield_batch=16,
    modern_max_bytes=16 * 2**30,
)


def preset(
    name: str, *, data: str | None = None, steps: int | None = None, sizes: tuple[int, ...] | None = None
) -> Preset:
    """The preset ``name`` (one of ``PRESET_NAMES``; see the module docstring), with optional overrides of the
    corpus folder, the step count and the training sizes."""
    check_choice("name", name, PRESET_NAMES)
    if name == "tiny":
        p = Preset(
            name="tiny",
            # Sized so that the run shows both ends within five minutes on two cores (docs/main_job_tiny_cpu.md has
            # the settings tried): at 4 blocks the model memorizes (training recovery >= 0.95 at every t, training
            # entropy < 0.05 nats), at 64 its training and test recovery agree within two standard errors. 16-token
            # blocks of a 512-id vocabulary train in about half the time of 32 tokens of 2,048; 1,600 steps (not
            # 1,200) bring the 4-block model's recovery at t = 0.5 from 0.92 to 0.96. 128 evaluation queries per
            # split, a training set of fewer blocks queried block by block in turn (fill_train), decide memorization
            # at 4 blocks beyond two standard errors at every t (1.00 ± 0.02 at t = 0.05, 0.98 ± 0.01 at 0.5); with
            # 32 and one query per training block it rested on 4 queries (0.81 ± 0.17 at t = 0.5 when one went
            # astray), and 32 filled queries left t = 0.05 within noise (1.00 ± 0.08: few tokens change there).
            data=DataSpec("embedded", 16, 512),
            archs=(ModelSpec.preset("cpu-micro", dropout=0.0),),
            sizes=(4, 16, 64),
            steps=1600,
            batch_size=16,
            lr=3e-3,
            warmup=20,
            ema=0.999,
            settings=EvalSettings(n_eval=128, fill_train=True),
            checkpoint_every=400,
        )
    elif name == "gpu":
        p = _gpu()
    elif name == "paper":
        p = _paper()
    else:
        p = Preset(
            name="large",
            data=DataSpec("data/brown-sotu", 128, None),
            archs=(ModelSpec.preset("tiny"), ModelSpec.preset("small")),
            sizes=(64, 256, 1024, 4096, 16384),
            steps=20000,
            batch_size=512,
            lr=3e-4,
            warmup=2500,
            ema=0.9999,
            settings=SEVERAL_GPU_SETTINGS,
            workers="auto",
            checkpoint_every=2000,
        )
    if data is not None:
        p = dataclasses.replace(p, data=dataclasses.replace(p.data, source=str(data)))
    if steps is not None:
        p = dataclasses.replace(p, steps=check_int("steps", steps, minimum=1))
    if sizes is not None:
        p = dataclasses.replace(p, sizes=tuple(check_int("sizes", int(s), minimum=1) for s in sizes))
    return p


def _paper() -> Preset:
    """The ``paper`` preset (see the module docstring)."""
    return Preset(
        name="paper",
        data=DataSpec("data/brown-sotu", 128, None),
        # The paper's "medium" (1024 x 24 x 16) is left out: in float32 its activations at 512 blocks of 128 tokens
        # come to about 110 GB (some 70 kB per token and block), past one 80 GB card, and a training cell has no
        # gradient accumulation. No dropout: with 0.1 the gpu preset's 32-block models reproduced none of their
        # blocks verbatim.
        archs=(ModelSpec.preset("tiny", dropout=0.0), ModelSpec.preset("small", dropout=0.0)),
        # Doubling from 32 blocks, so that the transition is resolved within a factor of two, to 16,384 (the
        # 128-token pool of data/brown-sotu holds about 26,000).
        sizes=tuple(2**k for k in range(5, 15)),
        seeds=(0, 1),
        steps=20000,
        batch_size=512,
        lr=3e-4,
        warmup=2500,
        ema=0.9999,
        settings=SEVERAL_GPU_SETTINGS,
        workers="auto",
        checkpoint_every=2000,
        # float32 with TF32 matmuls: with bf16 autocast the attention logits of a model memorizing a few dozen
        # blocks overflowed and most of its steps were skipped (the gpu preset's note).
        bf16=False,
        compile=True,
        # At V = 30,522 a loss chunk of 16,384 rows is as fast as 32,768 with less memory (benchmarks/README.md).
        chunk_rows=16384,
    )


def _gpu() -> Preset:
    """The ``gpu`` preset (see the module docstring)."""
    return Preset(
        name="gpu",
        data=DataSpec("data/brown-sotu", 64, 8192),
        # Three DiTs without dropout spanning 10.4x in parameters (0.99M, 3.37M and 10.24M with the embedding and
        # the output head at V = 8,192; 25x without them). No dropout: with 0.1 the 32-block models of an earlier
        # preset restored 80-94% of the corrupted tokens of their training blocks and reproduced none verbatim.
        archs=(
            ModelSpec("gpu-micro", d_model=48, n_blocks=2, n_heads=2, dropout=0.0),
            ModelSpec("gpu-small", d_model=128, n_blocks=4, n_heads=4, dropout=0.0),
            ModelSpec.preset("gpu-quick", dropout=0.0),
        ),
        sizes=GPU_SIZES,
        seeds=(0, 1, 2),
        # Every model at 800 and at 3,200 steps of 64 blocks at lr 1e-3, from the budget probe on an H100
        # (benchmarks/h100_memorization_budget_probe.log): 3,200 steps memorize the 16- and 39-block sets of gpu-small
        # and gpu-quick (training recovery 0.92-1.00 at t = 0.5, test 0.01-0.03), 1,600 only gpu-small's 16-block
        # sets, and gpu-micro memorizes neither in 3,200 (0.53; 0.79 at lr 3e-3, a rate worse for gpu-quick at every
        # budget). The second budget is a quarter of the memorizing one. The 16-block sets are drawn 3,200 (12,800)
        # times a block, the whole pool about 1 (3.9) times. Run as three parts one after another on an H100, it
        # took 42.9 minutes of the card; as four staged parts sharing it (memorization_gpu_parts.sh), 21.0 minutes
        # at 86fbe1a, 19.9 at 2e12428 and 18.0 at 17aea2b, end to end with the page
        # (benchmarks/h100_memorization_gpu.log).
        budgets=(1, 4),
        # The 800-step models are there to move the meeting point (claim (g)): they are measured for recovery and
        # the NELBO; the 3,200-step models for everything. The rest of their measurements took about a quarter of
        # the models' measuring time (gpu-small: about 60 of 230 s; benchmarks/h100_memorization_gpu.log).
        short_budget_measures=("recovery", "nelbo"),
        steps=800,
        batch_size=64,
        lr=1e-3,
        warmup=100,
        ema=0.999,
        settings=GPU_SETTINGS,
        checkpoint_every=1000,
        # bf16 autocast memorizes the 39-block sets less (gpu-quick at 3,200 steps: training recovery 0.857 +- 0.010 at
        # t = 0.5 against 0.98 in float32; benchmarks/h100_memorization_budget_probe.log), though its step is faster.
        bf16=False,
        compile=True,
        chunk_rows=16384,
        # The 60 models of one shape are measured in two lockstep groups; they train as one group of the 30
        # 3,200-step runs, which stops at step 800 to make the 800-step models' folders (their rows and checkpoints
        # are those of 800-step runs of their own; the 1x budget is read off the 4x run).
        train_group=30,
        eval_group=30,
    )


def _main_job_gpu(data: str, sizes: tuple[int, ...]) -> Preset:
    """The memorization part of the main job on a GPU: two DiTs, one seed, one budget (within 10 minutes)."""
    return Preset(
        name="gpu",
        data=DataSpec(data, 64, 8192),
        archs=(
            ModelSpec("gpu-small", d_model=128, n_blocks=4, n_heads=4, dropout=0.0),
            ModelSpec.preset("gpu-quick", dropout=0.0),
        ),
        sizes=sizes,
        # The steps of these small models are bound by overhead whatever the precision (a bf16 step is no faster;
        # see docs/design_notes.md), so the step count sets the training time: 1,200 steps.
        steps=1200,
        batch_size=256,
        lr=5e-4,
        warmup=100,
        ema=0.999,
        # The gpu preset's measurements on a 250-step global grid, at four noise levels, 96 blocks per split, 512
        # sequences a forward pass.
        settings=dataclasses.replace(GPU_SETTINGS, n_eval=96, ts=(0.05, 0.1, 0.25, 0.5), n_steps=250, batch_size=512),
        checkpoint_every=1000,
        # float32 (TF32 matmuls): while a model memorizes a few dozen blocks its attention logits grow without
        # bound, and with bf16 autocast on an H200 most steps of the 32- and 128-block runs had non-finite
        # gradients (2,185 and 1,807 of 2,500 skipped); at this model size float32 costs little.
        bf16=False,
        compile=True,
        chunk_rows=16384,
    )


def main_job_preset(name: str) -> Preset:
    """The memorization preset of the main job: "tiny" as it is; on "gpu" two of the gpu preset's DiTs
    (``gpu-small``, ``gpu-quick``) with one seed and one step budget, 1,200 steps of 256 blocks, 96 evaluation
    blocks per split on a 250-step grid, on the embedded corpus (shipped with the package, so the job needs no
    prepared data) with the gpu preset's training sizes that are at most half the embedded pool of training
    blocks, then the whole pool."""
    check_choice("name", name, PRESET_NAMES)
    p = preset(name)
    if name != "gpu":
        return p
    spec = DataSpec("embedded", p.data.length, p.data.vocab)
    pool = load_data(spec).n_blocks_available("train", spec.length)
    # Log-spaced by 8 from 32 blocks, cut at half the pool, then the pool.
    sizes = tuple(n for n in (32, 256, 2048, 16384) if 2 * n <= pool) + (pool,)
    return _main_job_gpu("embedded", sizes)
