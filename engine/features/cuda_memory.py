"""CUDA memory switches that must act before the model exists: --expandable-segments,
--cublas-workspace-mib and --memory-cap-gib. The first two are settings PyTorch reads once (the allocator's at
its first allocation, cuBLAS's at its first handle), so all three are applied at the very start of set-up."""

from __future__ import annotations

import os

import torch


def use_expandable_segments() -> None:
    """PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True, set from inside the process. Call it before the
    first CUDA allocation: segments that exist already keep their fixed size.

    Why it matters here: the caching allocator carves fixed-size segments and keeps them; micro-batches
    of changing lengths leave blocks of the wrong size cached, so `reserved` climbs well above
    `allocated`. An expandable segment maps more physical pages onto one growing virtual range instead."""
    setting = "expandable_segments:True"
    for name in ("_accelerator_setAllocatorSettings", "_cuda_cudaCachingAllocator_set_allocator_settings"):
        setter = getattr(torch._C, name, None)  # the first name is torch >= 2.9's, the second older
        if setter is not None:
            setter(setting)
            return
    raise ValueError("--expandable-segments: this PyTorch cannot change the allocator's settings at run time; "
                     f"set PYTORCH_CUDA_ALLOC_CONF={setting} instead")


def set_cublas_workspace(mib: int) -> None:
    """Each cuBLAS workspace (and cuBLASLt's) `mib` MiB. PyTorch reads the size once, when it makes the
    process's first cuBLAS handle (the first matmul): call this before any. A training step holds two or
    more workspaces (one per cuBLAS handle and stream: forward and backward run on different threads)."""
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = f":{mib * 1024}:1"  # :<KiB>:<count>
    os.environ["CUBLASLT_WORKSPACE_SIZE"] = str(mib * 1024)  # KiB


def cap_cuda_memory(gib: float, device: torch.device) -> None:
    """The CUDA allocator of this process capped at `gib` GiB (torch.cuda.set_per_process_memory_fraction):
    past it, allocations fail with out-of-memory. The cap is the allocator's budget only: the CUDA context
    (about 1 GiB on an H200) is outside it, where on a real card it takes from the same memory, so a card
    of G GiB corresponds to a cap of G minus the context."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total), index)
