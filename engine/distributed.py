"""Data parallelism under `torchrun`, with PyTorch's own DistributedDataParallel (DDP).

Every rank holds a full copy of the model (4-bit base included) on its own device and sees a different
slice of each global batch. DDP all-reduces the trainable gradients during backward, so after every
optimizer step all ranks hold identical weights. `torchrun --nproc-per-node N train.py ...` sets the
environment this module reads: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.

HF Trainer does the same through `accelerate` (`Accelerator.prepare`, `accelerator.accumulate`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
FAULT_VARIABLE = "QLORA_ENGINE_FAULT"  # "RANK:STEP": that rank dies abruptly at that step (failure tests)


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


def all_reduce_sum(value: torch.Tensor, env: Distributed) -> torch.Tensor:
    """Sum over ranks, in place (a no-op in a single process)."""
    if env.enabled:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def gather_objects(obj, env: Distributed) -> list:
    """Every rank's `obj`, in rank order (a one-element list in a single process)."""
    if not env.enabled:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def maybe_inject_fault(env: Distributed, step: int) -> None:
    """Failure testing: `QLORA_ENGINE_FAULT=1:2` kills rank 1 abruptly at step 2, as a crash would."""
    spec = os.environ.get(FAULT_VARIABLE)
    if spec and spec == f"{env.rank}:{step}":
        os._exit(17)


def shutdown(env: Distributed) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()
