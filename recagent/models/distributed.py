"""Data-parallel training with PyTorch's own engine: `torchrun --nproc-per-node N -m recagent
train <model> ...` starts N processes; each joins one process group (gloo on CPU, nccl when
the device is CUDA), holds a replica of the model inside `DistributedDataParallel` (which
averages gradients), and trains on its shard of every global batch (rows rank, rank + N,
...). Rank 0 validates and alone writes the checkpoint; it broadcasts what it decided, so every
process stops at the same step. Without torchrun (no WORLD_SIZE) everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This process's share of a global batch."""
        return rows[self.rank :: self.world] if self.active else rows

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's `values` on every process."""
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return tensor.tolist()

    def mean(self, value: float) -> float:
        """The mean of `value` over the processes."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world


def join(device: torch.device) -> tuple[Group, torch.device]:
    """Join the process group torchrun set up in the environment (once per process); returns
    the group and this process's device (`cuda:<LOCAL_RANK>` for CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Group(dist.get_rank(), dist.get_world_size()), device


def wrap(module: torch.nn.Module, group: Group, device: torch.device) -> torch.nn.Module:
    """`module` inside DistributedDataParallel when there are several processes."""
    if not group.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


__all__ = ["Group", "join", "wrap"]
