"""Data parallelism under `torchrun`, with PyTorch's own DistributedDataParallel (DDP).

Every rank holds a full copy of the model (4-bit base included) on its own device and sees a different
slice of each global batch. DDP all-reduces the trainable gradients during backward, so after every
optimizer step all ranks hold identical weights. `torchrun --nproc-per-node N train.py ...` sets the
environment this module reads: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.

HF Trainer does the same through `accelerate`; `Distributed` offers the loop the four calls it needs
from accelerate's `Accelerator` (`prepare`, `no_sync`, `reduce`, `gather`), each a no-op in a single
process, so the loop reads the same with one rank or many.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class LaunchError(ValueError):
    """The launch environment is incomplete or inconsistent."""


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, metrics, checkpoints and the adapter."""
        return self.rank == 0

    def print(self, *args, **kwargs) -> None:
        """`print` on rank 0; the other ranks say nothing."""
        if self.is_main:
            print(*args, **kwargs)

    def prepare(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """accelerate's `prepare`: under torchrun, wrap `module` (forward = the loss) in DDP, which registers
        the gradient all-reduce hooks; the optimizer keeps the same tensors. The wrapper counts its
        all-reduce calls (one per gradient bucket) in `grad_allreduces`. One process: `module` as is."""
        if not self.enabled:
            return module
        ddp = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
        ddp.grad_allreduces = 0

        def counting_allreduce(process_group, bucket):  # DDP's default hook, counted
            ddp.grad_allreduces += 1
            return allreduce_hook(process_group, bucket)

        ddp.register_comm_hook(None, counting_allreduce)
        return ddp

    def no_backward_sync(self, module: torch.nn.Module, enabled: bool):
        """accelerate's `no_sync` (litgpt's `no_backward_sync`): while accumulating, DDP's backward keeps
        gradients local instead of all-reducing them after every micro-batch; the last micro-batch of
        the window syncs once. A no-op in one process or when not `enabled`."""
        return module.no_sync() if self.enabled and enabled else nullcontext()

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (a no-op in a single process)."""
        if self.enabled:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def sum_over_ranks(self, values: list[int], device: torch.device) -> list[int]:
        """Python integers summed over ranks: one small all-reduce (a sync); unchanged in one process,
        where no device tensor is made (reading one back would sync with the device)."""
        if not self.enabled:
            return values
        return self.all_reduce_sum(torch.tensor(values, device=device)).tolist()

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order (a one-element list in a single process)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def launch_environment() -> Distributed:
    """Read torchrun's variables; none set means a plain single process."""
    present = {name: os.environ.get(name) for name in LAUNCH_VARIABLES}
    if not any(present.values()):
        return Distributed()
    missing = [name for name, value in present.items() if not value]
    if missing:
        raise LaunchError(f"incomplete distributed launch environment: {', '.join(missing)} not set "
                          f"(launch with torchrun --nproc-per-node N train.py ...)")
    try:
        rank, local_rank, world = (int(present[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    except ValueError:
        raise LaunchError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers, got "
                          f"{present['RANK']!r}, {present['LOCAL_RANK']!r}, {present['WORLD_SIZE']!r}") from None
    if not (world >= 1 and 0 <= rank < world and 0 <= local_rank < world):
        raise LaunchError(f"inconsistent launch environment: RANK={rank} LOCAL_RANK={local_rank} WORLD_SIZE={world}")
    return Distributed(rank=rank, local_rank=local_rank, world_size=world)


def init_distributed(env: Distributed, device: torch.device, timeout_s: float) -> torch.device:
    """Join the process group; return this rank's device. NCCL for GPUs, gloo for CPUs.
    `timeout_s` bounds how long a collective waits for a dead or stuck peer before raising."""
    if not env.enabled:
        return device
    if device.type == "cuda":
        if torch.cuda.device_count() <= env.local_rank:
            raise LaunchError(f"LOCAL_RANK={env.local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)
    return device


def shutdown(env: Distributed) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()
