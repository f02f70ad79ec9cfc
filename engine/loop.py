"""The training loop: what HF `Trainer.train()` does for a causal-LM fine-tune, top to bottom.

One optimizer step = one accumulation window of `accum` micro-batches:

    get_batch_samples   the window's micro-batches, and its label tokens over all ranks (the normaliser)
    for each micro-batch: forward_backward   forward -> loss sum x (ranks / window label tokens) -> backward
    clip_grad_norm -> optimizer_step (optimizer, then scheduler) -> zero_grad -> log -> observers

Each function carries the name of the Trainer method it stands for; docs/how-trainer-works.md walks
through Trainer's own code beside these lines. What is not here on purpose: the micro-step's
implementation (engine/step.py: eager or CUDA graphs, chosen before the loop), data parallelism
(engine/distributed.py: no-ops in one process), and everything that only watches a step — memory,
metrics, validation, progress, TensorBoard, checkpoints (engine/observers.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import torch

from data.batching import TrainData, batch_order
from engine.checkpoint import TrainState
from engine.config import TrainConfig
from engine.distributed import Distributed
from engine.observers import LoopState, Observers, StepObserver, Validation, default_observers
from engine.step import MicroStep, prepare_micro_step


def steps_per_epoch(num_examples: int, batch_size: int, accum: int) -> int:
    """Optimizer steps in one epoch; a last, shorter window still makes a step (as Trainer does)."""
    return math.ceil(math.ceil(num_examples / batch_size) / accum)


def total_optimizer_steps(cfg: TrainConfig, num_examples: int, world_size: int = 1) -> int:
    """Trainer: `max_steps`, or epochs x update steps per epoch, computed atop `_inner_training_loop`."""
    global_batch = cfg.batch_size * world_size
    return cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * steps_per_epoch(num_examples, global_batch, cfg.accum)


class WindowIndices(NamedTuple):
    epoch: int
    next_batch: int          # the next global batch of this epoch's order after the window: the resume point
    batches_in_epoch: int
    micro_batches: list[list[int]]  # this rank's example indices, one list per micro-batch


def accumulation_windows(data: TrainData, cfg: TrainConfig, start: TrainState,
                         dist: Distributed = Distributed()) -> Iterator[WindowIndices]:
    """The accumulation windows from `start` on; epochs repeat until the caller stops.

    The batch order of an epoch is a pure function of (seed, epoch), so a resumed run regenerates
    it and skips exactly the micro-batches already consumed. Under data parallelism the order is built
    for *global* batches of batch_size x world_size, and rank r takes every world_size-th example of
    each: N ranks with batch b see exactly the batches of one process with batch N*b
    (tests/test_distributed.py)."""
    epoch, first = start.epoch, start.batch_in_epoch
    while True:
        batches = batch_order(data.lengths, cfg.batch_size * dist.world_size, seed=cfg.seed, epoch=epoch,
                              group_by_length=cfg.group_by_length)
        for i in range(first, len(batches), cfg.accum):
            yield WindowIndices(epoch, min(i + cfg.accum, len(batches)), len(batches),
                                [batch[dist.rank::dist.world_size] for batch in batches[i:i + cfg.accum]])
        epoch, first = epoch + 1, 0


@dataclass
class Window:
    """One optimizer step's data: this rank's micro-batches and the counts of the whole window."""

    indices: WindowIndices
    label_tokens: int  # over all ranks: the loss normaliser (Trainer: `num_items_in_batch`)
    tokens: int        # non-pad tokens over all ranks


def get_batch_samples(windows: Iterator[WindowIndices], data: TrainData, dist: Distributed,
                      device: torch.device) -> Window:
    """Trainer.get_batch_samples: the next window and its label-token count. The count must cover the
    whole window on every rank before the first backward, because each micro-batch's loss is divided
    by it: that is what makes accumulation equal one big batch (the 2024 gradient-accumulation fix)."""
    indices = next(windows)
    examples = [i for batch in indices.micro_batches for i in batch]
    # Counted from the host-side lists, not from device tensors: reading a GPU tensor would sync.
    counts = [sum(data.label_tokens(i) for i in examples), sum(len(data.input_ids[i]) for i in examples)]
    label_tokens, tokens = dist.sum_over_ranks(counts, device)
    return Window(indices, label_tokens, tokens)


def clip_grad_norm(parameters: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Trainer._clip_grad_norm (`accelerator.clip_grad_norm_`): the global L2 norm of the gradients
    *before* clipping, after scaling them down to `max_norm` if above it (0: measure only). Under DDP
    the gradients are already synchronised, so every rank computes the same norm."""
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm > 0 else float("inf"))


def optimizer_step(optimizer: torch.optim.Optimizer, scheduler) -> float:
    """Trainer: `optimizer.step()`, then `lr_scheduler.step()`; returns the learning rate the step used."""
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    return lr


def log_record(window: Window, *, step: int, loss: float, lr: float, grad_norm: float, step_s: float) -> dict:
    """Trainer.log's `logs`: the step's line of metrics.jsonl, before observers add `mem`."""
    idx = window.indices
    return {"step": step, "epoch": round(idx.epoch + idx.next_batch / idx.batches_in_epoch, 4),  # as Trainer logs it
            "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens": window.tokens,
            "label_tokens": window.label_tokens, "tokens_per_s": window.tokens / step_s, "step_s": step_s}


def train(cfg: TrainConfig, model: torch.nn.Module, data: TrainData, optimizer: torch.optim.Optimizer,
          scheduler, *, device: torch.device, run_dir: Path, start: TrainState = TrainState(), total_steps: int,
          is_peft: bool = True, dist: Distributed = Distributed(), micro_step: MicroStep | None = None,
          observers: list[StepObserver] = (), validation: Validation | None = None) -> list[dict]:
    """Trainer._inner_training_loop: optimizer steps `start.step + 1 .. total_steps`; returns their records
    (rank 0 also appends them to `run_dir/metrics.jsonl`). `micro_step`: built by `prepare_micro_step`
    unless given (keep one to reuse its CUDA graphs across calls); `validation` runs among the defaults,
    before the record is written; `observers` run after the defaults."""
    micro_step = micro_step or prepare_micro_step(cfg, model, data, device, dist)
    observe = Observers(default_observers(cfg, model, optimizer, scheduler, micro_step, device=device, run_dir=run_dir,
                                          is_peft=is_peft, dist=dist, validation=validation) + list(observers))
    trainable = [p for p in model.parameters() if p.requires_grad]
    windows = accumulation_windows(data, cfg, start, dist)
    state = LoopState(position=start, start_step=start.step, total_steps=total_steps)
    records: list[dict] = []
    observe.on_train_begin(state)
    try:  # observers close their files and bars also when a step raises
        while state.step < total_steps:
            window = get_batch_samples(windows, data, dist, device)
            observe.on_step_begin(state)
            started = time.perf_counter()

            # DDP averages gradients over ranks, and the normaliser counts every rank's tokens: scaling each
            # rank's loss by world_size turns that average back into the global token sum.
            scale = dist.world_size / window.label_tokens
            window_loss = torch.zeros((), device=device)  # this rank's share of the token-weighted mean
            micro_batches = window.indices.micro_batches
            for i, indices in enumerate(micro_batches):
                is_accumulating = i < len(micro_batches) - 1  # only the last micro-batch all-reduces gradients
                with dist.no_backward_sync(micro_step.module, enabled=is_accumulating):
                    window_loss += micro_step.forward_backward(indices, scale) / dist.world_size

            grad_norm = clip_grad_norm(trainable, cfg.max_grad_norm)
            lr = optimizer_step(optimizer, scheduler)
            observe.on_optimizer_step(state)
            # set_to_none frees the gradients between steps, and the next backward writes instead of adding.
            # Recorded CUDA graphs add into these very tensors: they are zeroed in place instead.
            optimizer.zero_grad(set_to_none=not micro_step.recorded)

            state.position = TrainState(step=state.step + 1, epoch=window.indices.epoch,
                                        batch_in_epoch=window.indices.next_batch, world_size=dist.world_size)
            loss = dist.all_reduce_sum(window_loss).item()  # .item() syncs with the device: once per step, here
            record = log_record(window, step=state.step, loss=loss, lr=lr, grad_norm=grad_norm.item(),
                                step_s=time.perf_counter() - started)
            observe.on_log(state, record)  # memory is added, metrics.jsonl and the progress bar written
            records.append(record)
            observe.on_step_end(state)  # checkpoints
    finally:
        observe.on_train_end(state)
    return records
