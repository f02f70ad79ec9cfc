"""Learning-rate schedules as multipliers of the peak lr (HF Trainer: `create_scheduler`, which calls
`transformers.get_scheduler`). Same formulas, so runs can be compared step by step with Trainer."""

from __future__ import annotations

import math

import torch

SCHEDULERS = ("linear", "cosine", "constant")  # train.py --scheduler


def lr_multiplier(step: int, *, kind: str, warmup_steps: int, total_steps: int) -> float:
    """Multiplier for the lr used by optimizer step `step` (0-based: the first step uses step=0)."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)  # linear ramp from 0: the first update is lr * 0
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    if kind == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(f"unknown scheduler {kind!r}")


def create_scheduler(optimizer: torch.optim.Optimizer, *, kind: str, warmup_steps: int,
                     total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR sets lr = peak * multiplier(k) after k calls to `scheduler.step()`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_multiplier(step, kind=kind, warmup_steps=warmup_steps, total_steps=total_steps),
    )
