"""The optimizer (HF Trainer: `create_optimizer` + `get_decay_parameter_names`).

bitsandbytes' 8-bit AdamW keeps the two Adam moments in 8 bits, quantised blockwise (256 values per
block, one float32 absmax each) with a dynamic 256-entry code book shared by all tensors: 2 bytes/param
of state plus 2 x 4/256 bytes of absmax, instead of 8 bytes/param.
Tensors with fewer than `min_8bit_size` = 4096 elements keep 32-bit state (8 bytes/param): the
quantisation overhead would not pay off. A LoRA A matrix of rank 16 on a 576-wide layer is 9216 elements,
so most LoRA tensors of the default model do get 8-bit state; the tracker reports what really happened.

"paged" optimizers allocate their state in CUDA unified memory, which the driver can evict to host RAM
under memory pressure (like OS paging) instead of failing with out-of-memory. That memory is invisible to
`torch.cuda.memory_allocated()`; engine/memory.py reports it separately. Paging is a CUDA concept: on a CPU
we use the unpaged variant and say so.
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("paged_adamw_8bit", "adamw_8bit", "paged_adamw", "adamw")  # train.py --optim
PAGED_TO_UNPAGED = {"paged_adamw_8bit": "adamw_8bit", "paged_adamw": "adamw"}
NO_DECAY_PARAM_MARKERS = ("bias", "norm")  # Trainer's rule: no decay for biases and LayerNorm/RMSNorm weights


def resolve_optimizer_name(name: str, device: torch.device) -> tuple[str, str | None]:
    """(name to use, note to print or None)."""
    if device.type != "cuda" and name in PAGED_TO_UNPAGED:
        unpaged = PAGED_TO_UNPAGED[name]
        return unpaged, (f"optimizer: {name} pages its state through CUDA unified memory, which a CPU run "
                         f"does not have; using {unpaged} (same update rule, unpaged state)")
    return name, None


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_no_decay = param.ndim < 2 or any(marker in name.lower() for marker in NO_DECAY_PARAM_MARKERS)
        (no_decay if is_no_decay else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def create_optimizer(model: torch.nn.Module, *, name: str, lr: float, weight_decay: float,
                     betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.Optimizer:
    """`name` must already be resolved for the device (see `resolve_optimizer_name`)."""
    groups = parameter_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    import bitsandbytes as bnb

    cls = {
        "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
        "adamw_8bit": bnb.optim.AdamW8bit,
        "paged_adamw": bnb.optim.PagedAdamW,
    }[name]
    return cls(groups, lr=lr, betas=betas, eps=eps)
