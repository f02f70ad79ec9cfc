"""The validation loss (HF Trainer: `evaluate` -> `evaluation_loop`, the loss part), computed the way the
training loss is: the sum of next-token cross-entropies over every label token of the validation set,
divided by the number of those tokens — a token-weighted mean, not a mean of per-batch means, so it does
not depend on the batch size or on how lengths fall into batches.

The model runs as it trains (the same `compute_loss`, label-only head, chunked or not), in eval() mode
(no dropout; HF models skip gradient checkpointing there) and without autograd. Nothing of the training
changes: the train/eval mode is restored, and the RNG states are forked, so that dropout masks and data
order after a validation are those of a run without one (tests/test_validation.py compares the losses).
"""

from __future__ import annotations

import torch

from data.batching import TrainData
from engine.distributed import Distributed
from engine.loss import HeadLoss, compute_loss, plain_head_loss


def validation_loss(model: torch.nn.Module, data: TrainData, *, batch_size: int, label_only: bool,
                    head_loss: HeadLoss = plain_head_loss, device: torch.device,
                    dist: Distributed = Distributed()) -> float:
    """Σ token losses / Σ label tokens over `data`. Under torchrun each rank takes every world_size-th
    example and the two sums are added over ranks (one all-reduce): every rank returns the same number."""
    mine = list(range(dist.rank, len(data.input_ids), dist.world_size))
    total = torch.zeros((), dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for first in range(0, len(mine), batch_size):
                batch = data.micro_batch(mine[first:first + batch_size], device)
                total += compute_loss(model, batch, label_only=label_only, head_loss=head_loss).double()
    finally:
        model.train(was_training)
    tokens = float(sum(data.label_tokens(i) for i in mine))
    sums = dist.all_reduce_sum(torch.stack([total, torch.tensor(tokens, dtype=torch.float64, device=device)]))
    loss, count = sums.tolist()
    return loss / count
