"""Checkpointed, resumable training of a group of diffusion LMs of one shape (:class:`GroupTrainer`), one run
folder per member in the single-model trainer's layout.

Member ``g``'s folder ``out_dirs[g]`` ends up as :func:`amtheory.diffusion.train.train` would leave it for the same
model, settings and data: ``log.jsonl`` with the mean loss of each log interval, checkpoints (format 2:
safetensors + JSON) every ``checkpoint_every`` steps and at the end, the newest ``keep_checkpoints`` kept, each
holding the member's weights, EMA, AdamW state and counters. So a member can be resumed, evaluated or loaded by
the single trainer and every reader of its checkpoints, and a group resumes from its members' checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from amtheory.diffusion.checkpoint import (
    CheckpointError,
    clear_interrupted_writes,
    load_resumable,
    mark_latest,
    save_checkpoint,
    step_checkpoints,
)
from amtheory.diffusion.group_train import GroupTrainer, check_group_configs
from amtheory.diffusion.model import DiTConfig
from amtheory.diffusion.resume import LOG, check_resume, data_sha256, drop_log_after, last_logged_loss, weights_sha256
from amtheory.diffusion.train_config import TrainConfig

__all__ = ["train_group"]


def _member_meta(user_meta: dict[str, Any], data: torch.Tensor, cfg: TrainConfig) -> dict[str, Any]:
    """The ``meta`` the single trainer stores for this member (world size 1)."""
    return {
        **user_meta,
        "data": {**user_meta.get("data", {}), "n": int(data.shape[0]), "length": int(data.shape[1]),
                 "sha256": data_sha256(data)},
        "seed": cfg.seed,
        "world_size": 1,
        "torch": torch.__version__,
    }  # fmt: skip


def train_group(
    model_config: DiTConfig,
    train_configs: Sequence[TrainConfig],
    data: Sequence[torch.Tensor],
    out_dirs: Sequence[str | os.PathLike],
    *,
    device: torch.device | str = "cpu",
    resume: bool = True,
    metas: Sequence[dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """Train member ``g`` (``train_configs[g]``, data ``data[g]``) into ``out_dirs[g]`` for every ``g`` at once;
    returns one summary per member with the keys of :func:`amtheory.diffusion.train.train`'s (``wall_s`` and
    ``tokens_per_s`` are the group's: the time of the whole group, the tokens of this member).

    With ``resume`` every member continues from its newest intact checkpoint, checked as the single trainer checks
    it (model config, settings, data, ``metas[g]["vocab_sha256"]``); all members must stand at the same step (an
    error names them otherwise). ``resume=False`` refuses folders that hold checkpoints. ``metas[g]`` is stored in
    member ``g``'s checkpoints like the single trainer's ``meta``.
    """
    cfg = check_group_configs(train_configs)
    G = len(train_configs)
    if isinstance(out_dirs, (str, os.PathLike)) or len(out_dirs) != G:
        raise ValueError(f"out_dirs: expected one run folder per member ({G}), got {out_dirs!r:.80}")
    if len({str(Path(o).resolve()) for o in out_dirs}) != G:
        raise ValueError(f"out_dirs: expected {G} distinct folders, got {[str(o) for o in out_dirs]}")
    metas = [None] * G if metas is None else list(metas)
    if len(metas) != G:
        raise ValueError(f"metas: expected one dict (or None) per member ({G}), got {len(metas)}")
    trainer = GroupTrainer(model_config, train_configs, data, device=device)
    outs = [Path(o) for o in out_dirs]
    roots = [o / "checkpoints" for o in outs]
    member_meta = [_member_meta(m or {}, d, tc) for m, d, tc in zip(metas, data, train_configs)]

    starts: list[int] = []
    resumed_from: list = []
    notes_of: list = []
    walls_before: list[float] = []
    for g, (root, tc) in enumerate(zip(roots, train_configs)):
        if not resume and ((root / "LATEST").exists() or step_checkpoints(root)):
            raise ValueError(
                f"out_dirs[{g}]: {outs[g]} already holds checkpoints and resume=False; pass resume=True to continue "
                "that run or choose an empty folder"
            )
        stored, notes = load_resumable(root, device=trainer.device) if resume else (None, [])
        notes_of.append(notes)
        if stored is None:
            starts.append(0)
            resumed_from.append(None)
            walls_before.append(0.0)
            continue
        check_resume(stored, model_config, tc, member_meta[g])
        if stored["train_state"]["optimizer"] is None:
            raise CheckpointError(f"{stored['path']}: holds no optimizer state; cannot resume from it")
        start = int(stored["step"])
        extra = stored["train_state"]["extra"]
        trainer.load_member(
            g, stored["model_state"], stored["ema_state"], stored["train_state"]["optimizer"],
            ema_updates=int(extra.get("ema_updates", start)), skipped=int(extra.get("skipped", 0)),
        )  # fmt: skip
        starts.append(start)
        resumed_from.append(stored["path"])
        walls_before.append(float(extra.get("train_wall_s", math.nan)))
    if len(set(starts)) > 1:
        raise ValueError(
            f"out_dirs: the members stand at different steps {dict(zip(map(str, outs), starts))}; a group trains "
            "members that stand at one step (group them by step, or train them alone)"
        )
    start = starts[0]
    for g in range(G):
        for note in notes_of[g]:
            warnings.warn(f"resume: {note}", RuntimeWarning, stacklevel=2)
        clear_interrupted_writes(roots[g])
        if outs[g].is_dir():
            drop_log_after(outs[g], start)
        outs[g].mkdir(parents=True, exist_ok=True)

    # Each member's training seconds as its newest checkpoint records them (the group's time since it started).
    train_walls = list(walls_before)

    def checkpoint(step: int) -> list[str]:
        paths = []
        elapsed = time.perf_counter() - t0
        train_walls[:] = [w + elapsed for w in walls_before]
        skipped = trainer.skipped.tolist()
        ema_updates = trainer.ema_count.tolist()
        for g in range(G):
            model = trainer.member_model(g)
            name = f"step-{step:08d}"
            path = save_checkpoint(
                roots[g] / name, model=model, ema_state=trainer.member_ema_state(g),
                optimizer=trainer.member_optimizer(g, model), step=step, model_config=model_config,
                train_config=train_configs[g], meta=member_meta[g],
                extra_state={"ema_updates": int(ema_updates[g]), "skipped": int(skipped[g]),
                             "train_wall_s": train_walls[g]},
            )  # fmt: skip
            mark_latest(roots[g], name)
            older = [p for n, p in step_checkpoints(roots[g]) if n < step]
            for p in older[: max(0, len(older) - (cfg.keep_checkpoints - 1))]:
                shutil.rmtree(p, ignore_errors=True)
            paths.append(str(path))
        return paths

    losses: list[list[tuple[int, float]]] = [[] for _ in range(G)]
    last = [None if r is None else str(r) for r in resumed_from]
    interval = torch.zeros(G, device=trainer.device)
    interval_n = 0
    norm = torch.zeros(G)
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        loss, norm, _ = trainer.step(step)
        interval += loss
        interval_n += 1
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            means = (interval / interval_n).tolist()
            interval.zero_()
            interval_n = 0
            norms, skipped = norm.tolist(), trainer.skipped.tolist()
            elapsed = time.perf_counter() - t0
            for g in range(G):
                record = {"step": done, "loss": means[g], "lr": cfg.lr_at(step), "grad_norm": norms[g],
                          "skipped": int(skipped[g]), "elapsed_s": elapsed}  # fmt: skip
                losses[g].append((done, means[g]))
                with open(outs[g] / LOG, "a") as f:
                    f.write(json.dumps(record) + "\n")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            last = checkpoint(done)
    wall = time.perf_counter() - t0
    trained = cfg.steps - start
    skipped = trainer.skipped.tolist()
    summaries = []
    for g in range(G):
        summaries.append(
            {
                "steps": cfg.steps,
                "start_step": start,
                "resumed_from": resumed_from[g],
                "losses": losses[g],
                "final_loss": losses[g][-1][1] if losses[g] else last_logged_loss(outs[g]),
                "skipped_steps": int(skipped[g]),
                "wall_s": wall,
                "train_wall_s": train_walls[g],
                "tokens_per_s": trained * cfg.batch_size * model_config.length / wall if trained and wall > 0 else None,
                "checkpoint": last[g],
                "rank": 0,
                "world_size": 1,
                "device": str(trainer.device),
                "weights_sha256": weights_sha256(list(trainer.member_model(g).parameters())),
                "ema_sha256": weights_sha256(list(trainer.member_ema_state(g).values())),
                "resume_notes": notes_of[g],
                "group_size": G,
            }
        )
    return summaries
