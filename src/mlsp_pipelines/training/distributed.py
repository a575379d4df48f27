"""A training process's place in a data-parallel job (``torchrun`` or :mod:`.launch`'s ranks):
joining the process group, each rank's share of an epoch, and sums across ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class World:
    """This process's place in a (possibly single-process) data-parallel job."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(mode: str, device: torch.device) -> World:
    """Join the ``torchrun`` process group when launched by it (``WORLD_SIZE`` > 1) and
    ``mode`` is ``auto``; gloo on CPU, NCCL on GPUs. Single process otherwise."""
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1"))
    if mode == "off" or size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def reduce_sums(values: list[float], world: World) -> list[float]:
    """Sum per-rank partial sums across ranks (identity for one process)."""
    if world.size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def shard_order(n: int, seed: int, epoch: int, world: World, shuffle: bool) -> Tensor:
    """This rank's sample indices for an epoch, from ``DistributedSampler`` (which, with one
    replica, is a seeded permutation). Rank r takes every world-th index, so the union of the
    ranks' k-th batches is exactly the single-process k-th batch of the same global size."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=world.size, rank=world.rank, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)
