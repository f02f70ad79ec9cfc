"""Which device and which compute dtype a run uses (train.py and eval.evaluate agree through this)."""

from __future__ import annotations

import torch

COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}  # --compute-dtype


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
    return COMPUTE_DTYPES[name]
