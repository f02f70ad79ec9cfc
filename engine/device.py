"""Which device and which compute dtype a run uses (train.py and eval.evaluate agree through this)."""

from __future__ import annotations

import os

import torch

from engine.config import ConfigError, TrainConfig


def resolve_device(name: str) -> torch.device:
    """auto: the GPU if there is one, else the CPU. Bad names are a one-line ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return torch.device(name)


def resolve_compute_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on a CUDA GPU that supports it, else fp32. bf16 has fp32's exponent range (no loss
    scaling) but is emulated on CPUs without AVX512-BF16/AMX, where it runs ~20x slower than fp32."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def use_expandable_segments() -> None:
    """PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True, set from inside the process. Call it before the
    first CUDA allocation: segments that exist already keep their fixed size.

    Why it matters here: the caching allocator carves fixed-size segments and keeps them; micro-batches
    of changing lengths leave blocks of the wrong size cached, so `reserved` climbs well above
    `allocated` (measured on an H100, eager Llama-3.2-1B QLoRA 4 x 4: 2.93 GiB reserved for a 1.56 GiB
    peak). An expandable segment maps more physical pages onto one growing virtual range instead."""
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
    process's first cuBLAS handle (the first matmul): call this before any. Measured on an H100: 32 MiB
    per workspace by default, two of them in a training step (forward and backward threads)."""
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = f":{mib * 1024}:1"  # :<KiB>:<count>
    os.environ["CUBLASLT_WORKSPACE_SIZE"] = str(mib * 1024)  # KiB


def apply_cuda_memory_settings(cfg: TrainConfig, device: torch.device) -> None:
    """The CUDA memory switches of `cfg`: refused off CUDA; the allocator and cuBLAS settings applied
    now, which must be before the model exists (its first allocation, the first matmul)."""
    for flag, on in (("--offload-embeddings", cfg.offload_embeddings), ("--expandable-segments", cfg.expandable_segments),
                     ("--cublas-workspace-mib", cfg.cublas_workspace_mib is not None)):
        if on and device.type != "cuda":
            raise ConfigError(f"{flag} is about CUDA memory: it needs a CUDA device")
    if cfg.expandable_segments:
        use_expandable_segments()
    if cfg.cublas_workspace_mib is not None:
        set_cublas_workspace(cfg.cublas_workspace_mib)
