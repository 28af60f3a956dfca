"""Data-parallel set-up of a training run: the process group under ``torchrun`` (nccl on CUDA, gloo on CPU), each
rank's device, and the mean of a value over the ranks."""

from __future__ import annotations

import os

import torch


def setup_distributed(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, this rank's device, whether this call initialised the process group)."""
    import torch.distributed as dist

    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    owns = False
    if device.type == "cuda" and device.index is None:
        # torch.cuda.set_device and DDP need an index: this rank's GPU under torchrun, else the current one.
        distributed = world_env > 1 or (dist.is_available() and dist.is_initialized())
        idx = int(os.environ.get("LOCAL_RANK", "0")) if distributed else torch.cuda.current_device()
        device = torch.device("cuda", idx)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_env > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), device, owns
    return 0, 1, device, owns


def all_mean(x: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        x /= world
    return x
