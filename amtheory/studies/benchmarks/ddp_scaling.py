"""Scale-out of one training run over 1, 2, 4 and 8 GPUs: steady-state tokens/s and parallel efficiency.

For each preset and each GPU count N, one run of the trainer's command line (:mod:`amtheory.diffusion.train`) under
``python -m torch.distributed.run --standalone --nproc-per-node N`` (DistributedDataParallel over nccl on CUDA, gloo
on CPU), with NVLink multicast off (``NCCL_NVLS_ENABLE=0``), compiled blocks on CUDA and a fixed number of steps.

The global batch is the same at every N (strong scaling): the trainer's ``--batch-size`` is the global batch, and
each of the N ranks draws ``batch_size / N`` sequences of its own per step (the trainer refuses a batch that N does
not divide, so this benchmark checks it first). N = 1 is plain training in one process, without DDP.

Throughput comes from the run's ``log.jsonl``, whose records carry the seconds since the training loop started:
between the first record at or after ``--skip-steps`` (compilation and warm-up fall before it) and the last record,
tokens/s = steps x global batch x length / seconds, and ms/step = seconds / steps. Efficiency(N) = tokens/s(N) /
(N x tokens/s(1)) of the same preset. The peak memory is what PyTorch allocated at most on rank 0's GPU (the
trainer's summary). A run that fails or outlasts ``--timeout-s`` is a row with its exit status and error; the others
go on. Each run trains in a temporary folder that is removed afterwards (its checkpoint is of no use here); its
``log.jsonl``, stdout and stderr are kept under ``OUT/ddp_scaling_logs/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from amtheory.diffusion.model import PRESETS
from amtheory.studies.benchmarks.measure import command_log, write_record

__all__ = ["TARGET", "format_table", "main", "parse_counts", "steady_throughput", "target_line", "train_command"]

#: The scale-out target: efficiency at least 90% for the small DiT at 8 GPUs.
TARGET = {"preset": "small", "gpus": 8, "efficiency": 0.90}
_PROG = "python experiments/bench_ddp_scaling.py"


def parse_counts(text: str) -> tuple[int, ...]:
    """GPU counts from ``"1,2,4,8"``: distinct positive integers, sorted."""
    try:
        counts = tuple(int(p) for p in str(text).split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise ValueError(
            f"--gpus: expected a comma-separated list of distinct positive integers such as 1,2,4,8, got {text!r}"
        )
    return tuple(sorted(counts))


def steady_throughput(records: list[dict[str, Any]], skip_steps: int, tokens_per_step: int) -> dict[str, float]:
    """ms/step and tokens/s between the first log record at or after step ``skip_steps`` and the last one."""
    window = [r for r in records if r["step"] >= skip_steps]
    if len(window) < 2:
        raise ValueError(
            f"log.jsonl: expected at least two records at or after step {skip_steps} (--skip-steps), got "
            f"{len(window)}; log more often or skip fewer steps"
        )
    first, last = window[0], window[-1]
    steps, seconds = last["step"] - first["step"], last["elapsed_s"] - first["elapsed_s"]
    if steps <= 0 or seconds <= 0:
        raise ValueError(f"log.jsonl: expected later records to have later steps and times, got {first} and {last}")
    return {
        "from_step": first["step"],
        "to_step": last["step"],
        "ms_step": 1e3 * seconds / steps,
        "tokens_s": steps * tokens_per_step / seconds,
    }


def train_command(preset: str, gpus: int, a: argparse.Namespace, run_dir: str) -> list[str]:
    """The torchrun command line of one run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(gpus),
           "-m", "amtheory.diffusion.train", "--data", a.data, "--n-train", str(a.n_train), "--preset", preset,
           "--length", str(a.length), "--batch-size", str(a.batch_size), "--steps", str(a.steps),
           "--log-every", str(a.log_every), "--checkpoint-every", str(a.steps), "--keep-checkpoints", "1",
           "--device", a.device, "--no-progress", "--out", run_dir]  # fmt: skip
    return cmd + (["--compile"] if a.device == "cuda" else [])


def _environment() -> dict[str, str]:
    """This process's environment with NVLink multicast off, the package importable from its source tree and,
    unless set, one OpenMP thread per process (what torchrun sets for N > 1, so N = 1 runs alike)."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[3])  # the folder that holds the amtheory package
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["NCCL_NVLS_ENABLE"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _error_line(stderr: str) -> str:
    """The line of a failed run's stderr that names its error."""
    lines = [re.sub(r"^\[(?:rank|default)?\d+\]:\s*", "", s).strip() for s in stderr.splitlines()]
    lines = [s for s in lines if s and "Warning" not in s]
    for s in lines:
        if s.startswith("amtheory train: error:"):
            return s[:300]
    for s in lines:
        if re.match(r"[\w.]*(Error|Exception)\b:", s) and "ChildFailedError" not in s:
            return s[:300]
    return lines[-1][:300] if lines else "no output on stderr"


def _summary(stdout: str) -> dict[str, Any] | None:
    """The trainer's JSON summary (rank 0 prints it last on stdout), or None."""
    lines = stdout.splitlines()
    starts = [i for i, s in enumerate(lines) if s == "{"]
    if not starts:
        return None
    try:
        return json.loads("\n".join(lines[starts[-1] :]))
    except json.JSONDecodeError:
        return None


def _stop(proc: subprocess.Popen) -> int:
    """End torchrun and its workers (the session the run was started in): SIGTERM, then SIGKILL after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()
    return proc.returncode


def run_one(preset: str, gpus: int, a: argparse.Namespace, work: Path, logs: Path) -> dict[str, Any]:
    """One training run: its row (throughput, or the exit status and error of a run that failed)."""
    tag = f"{preset}-{gpus}gpu"
    run_dir = work / tag
    cmd = train_command(preset, gpus, a, str(run_dir))
    row: dict[str, Any] = {"preset": preset, "gpus": gpus, "global_batch": a.batch_size,
                           "per_gpu_batch": a.batch_size // gpus, "length": a.length,
                           "command": shlex.join(["python", *cmd[1:]])}  # fmt: skip
    t0 = time.perf_counter()
    with open(logs / f"{tag}.stdout.txt", "w") as out, open(logs / f"{tag}.stderr.txt", "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_environment(), start_new_session=True)
        try:
            row["returncode"] = proc.wait(timeout=a.timeout_s)
        except subprocess.TimeoutExpired:
            row["returncode"] = _stop(proc)
            row["error"] = f"timed out after {a.timeout_s:g} s (--timeout-s)"
        except BaseException:  # e.g. Ctrl-C: the run lives in its own session, so end it here
            _stop(proc)
            raise
    row["wall_s"] = time.perf_counter() - t0
    log_file = run_dir / "log.jsonl"
    records = [json.loads(s) for s in log_file.read_text().splitlines() if s.strip()] if log_file.exists() else []
    if log_file.exists():
        shutil.copy(log_file, logs / f"{tag}.log.jsonl")
    shutil.rmtree(run_dir, ignore_errors=True)
    if row["returncode"] != 0:
        row.setdefault("error", _error_line((logs / f"{tag}.stderr.txt").read_text(errors="replace")))
        return row
    summary = _summary((logs / f"{tag}.stdout.txt").read_text(errors="replace")) or {}
    row["peak_memory_gib"] = summary.get("peak_memory_gib")
    row["skipped_steps"] = summary.get("skipped_steps")
    try:
        row.update(steady_throughput(records, a.skip_steps, a.batch_size * a.length))
    except ValueError as e:
        row["error"] = str(e)
    return row


def add_efficiency(rows: list[dict[str, Any]]) -> None:
    """Set each row's efficiency against the one-GPU row of its preset (None without one)."""
    base = {r["preset"]: r.get("tokens_s") for r in rows if r["gpus"] == 1}
    for r in rows:
        one, tps = base.get(r["preset"]), r.get("tokens_s")
        r["efficiency"] = tps / (r["gpus"] * one) if one and tps else None


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| preset | GPUs | global batch | per GPU | ms/step | tokens/s | efficiency | peak GiB (rank 0) | exit "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eff = "n/a" if r.get("efficiency") is None else f"{100 * r['efficiency']:.1f}%"
        lines.append(
            f"| {r['preset']} | {r['gpus']} | {r['global_batch']} x {r['length']} | {r['per_gpu_batch']} | "
            f"{_fmt(r.get('ms_step'), '.2f')} | {_fmt(r.get('tokens_s'), ',.0f')} | {eff} | "
            f"{_fmt(r.get('peak_memory_gib'), '.2f')} | {r.get('returncode', 'n/a')} | {r.get('error', '')} |"
        )
    return "\n".join(lines)


def target_line(rows: list[dict[str, Any]]) -> str:
    """Whether the small DiT reached 90% efficiency at 8 GPUs, or that it was not measured."""
    p, n, goal = TARGET["preset"], TARGET["gpus"], TARGET["efficiency"]
    head = f"target: efficiency >= {100 * goal:.0f}% for {p} at {n} GPUs"
    r = next((r for r in rows if r["preset"] == p and r["gpus"] == n), None)
    if r is None or r.get("efficiency") is None:
        return f"{head}: not measured in this run"
    return f"{head}: {100 * r['efficiency']:.1f}%, {'met' if r['efficiency'] >= goal else 'not met'}"


def _devices(device: str) -> list[str]:
    if device == "cpu":
        return [f"{platform.processor() or platform.machine() or 'cpu'} ({os.cpu_count()} cores)"]
    try:
        q = ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader"]
        return subprocess.run(q, capture_output=True, text=True, check=True, timeout=30).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=_PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", default="1,2,4,8", help="GPU counts (processes on CPU), comma list (default 1,2,4,8)")
    ap.add_argument("--presets", default="tiny,small", help=f"DiT presets, comma list among {', '.join(PRESETS)}")
    ap.add_argument("--data", default="data/brown-sotu", help="folder of a prepared TokenCorpus")
    ap.add_argument("--n-train", type=int, default=16384, help="packed training blocks (default 16384)")
    ap.add_argument("--length", type=int, default=128, help="tokens per block (default 128)")
    ap.add_argument("--batch-size", type=int, default=512, help="global batch at every GPU count (default 512)")
    ap.add_argument("--steps", type=int, default=150, help="steps of each run (default 150)")
    ap.add_argument("--log-every", type=int, default=10, help="steps between log records (default 10)")
    ap.add_argument("--skip-steps", type=int, default=None, help="steps left out of the rate (default 20%% of steps)")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (nccl) or cpu (gloo)")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="a run past this is stopped and recorded as such")
    ap.add_argument("--budget-s", type=float, default=None, help="runs that would start after this are skipped")
    ap.add_argument("--out", required=True, help="folder for bench_ddp_scaling.txt, .json and the runs' logs")
    return ap


def _check(ap: argparse.ArgumentParser, a: argparse.Namespace) -> tuple[tuple[int, ...], list[str]]:
    try:
        counts = parse_counts(a.gpus)
    except ValueError as e:
        ap.error(str(e))
    presets = [p for p in a.presets.split(",") if p]
    unknown = [p for p in presets if p not in PRESETS]
    if not presets or unknown:
        ap.error(f"--presets: expected a comma list of names among {', '.join(PRESETS)}, got {a.presets!r}")
    for name in ("n_train", "length", "batch_size", "steps", "log_every"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(a, name)}")
    a.skip_steps = a.steps // 5 if a.skip_steps is None else a.skip_steps
    if not 0 <= a.skip_steps < a.steps:
        ap.error(f"--skip-steps: expected an integer in [0, --steps = {a.steps}), got {a.skip_steps}")
    uneven = [n for n in counts if a.batch_size % n]
    if uneven:
        ap.error(f"--batch-size: expected a multiple of every count in --gpus, got {a.batch_size} (not of {uneven})")
    if a.timeout_s <= 0:
        ap.error(f"--timeout-s: expected a positive number of seconds, got {a.timeout_s}")
    if not Path(a.data).is_dir():
        ap.error(f"--data: expected the folder of a prepared TokenCorpus, got {a.data!r} (no such folder)")
    if a.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device: cuda asked for, but no GPU is visible (use --device cpu)")
    return counts, presets


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = _parser()
    a = ap.parse_args(argv)
    counts, presets = _check(ap, a)
    out = Path(a.out)
    logs = out / "ddp_scaling_logs"
    logs.mkdir(parents=True, exist_ok=True)
    log, lines, command = command_log("bench_ddp_scaling", argv)
    devices = _devices(a.device)
    for d in devices:
        log(f"device: {d}")
    visible = torch.cuda.device_count() if a.device == "cuda" else os.cpu_count() or 1
    too_many = [n for n in counts if n > visible]
    if too_many:
        log(f"note: skipping GPU counts {too_many}: {visible} {'GPUs' if a.device == 'cuda' else 'cores'} visible")
    counts = tuple(n for n in counts if n <= visible)
    log(f"global batch {a.batch_size} x {a.length} tokens at every count; {a.steps} steps, rate from step "
        f"{a.skip_steps} on (log every {a.log_every}); torch {torch.__version__}")  # fmt: skip
    record: dict[str, Any] = {
        "command": command, "devices": devices, "device": a.device, "torch": torch.__version__,
        "host": platform.node(), "gpus": list(counts), "skipped_counts": too_many, "presets": presets,
        "data": a.data, "n_train": a.n_train, "length": a.length, "global_batch": a.batch_size, "steps": a.steps,
        "log_every": a.log_every, "skip_steps": a.skip_steps, "compile": a.device == "cuda",
        "env": {"NCCL_NVLS_ENABLE": "0"}, "target": TARGET, "rows": [],
    }  # fmt: skip
    rows: list[dict[str, Any]] = record["rows"]
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ddp-scaling-"))
    try:
        for preset in presets:
            for n in counts:
                if a.budget_s is not None and time.perf_counter() - t_start > a.budget_s:
                    rows.append({"preset": preset, "gpus": n, "global_batch": a.batch_size, "length": a.length,
                                 "per_gpu_batch": a.batch_size // n,
                                 "error": f"skipped: past the {a.budget_s:g} s budget (--budget-s)"})  # fmt: skip
                else:
                    rows.append(run_one(preset, n, a, work, logs))
                add_efficiency(rows)
                r = rows[-1]
                log(f"{preset} on {n}: exit {r.get('returncode', 'n/a')}, {_fmt(r.get('ms_step'), '.2f')} ms/step, "
                    f"{_fmt(r.get('tokens_s'), ',.0f')} tokens/s, wall {_fmt(r.get('wall_s'), '.0f')} s"
                    + (f"; {r['error']}" if r.get("error") else ""))  # fmt: skip
                _write(out, record, [*lines, format_table(rows)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(format_table(rows))
    log(target_line(rows))
    _write(out, record, lines)
    return record


def _write(out: Path, record: dict[str, Any], lines: list[str]) -> None:
    """The record as it stands: bench_ddp_scaling.json, and bench_ddp_scaling.txt holding ``lines``."""
    write_record(out, "bench_ddp_scaling", lines, record)
