"""The training loop: everything HF `Trainer.train()` does for a causal-LM fine-tune, top to bottom.

Trainer spreads this over `_inner_training_loop`, `get_batch_samples`, `training_step`,
`compute_loss`, `_maybe_log_save_evaluate` and the optimizer/scheduler calls between them; each block
below names its counterpart. What Trainer does and we do not: distributed wrappers, evaluation
callbacks, mixed-precision scalers (bf16 needs none; fp16 full fine-tuning would), hub pushes.

One optimizer step = one accumulation window of `accum` micro-batches:

    for each micro-batch:  forward -> sum of token losses / label tokens in the WINDOW -> backward
    clip gradients -> optimizer.step() -> scheduler.step() -> zero_grad(set_to_none=True) -> log
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from data.batching import batch_order, collate
from engine.checkpoint import TrainState, save_checkpoint
from engine.config import TrainConfig
from engine.cuda_graphs import GraphedMicroSteps
from engine.distributed import Distributed, all_reduce_sum, gather_objects, maybe_inject_fault
from engine.loss import CausalLMLoss
from engine.memory import (SNAPSHOT_STEPS, MemoryTracker, dump_allocator_history, format_bytes, gradient_bytes,
                           start_allocator_history, tracked_total)


@dataclass
class TrainData:
    """Tokenised examples as plain lists (fast to index), plus the pad id for collation."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    pad_token_id: int

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def label_tokens(self, i: int) -> int:
        """Targets of example i that enter the loss: labels[1:] (position 0 predicts nothing) not -100."""
        return sum(1 for t in self.labels[i][1:] if t != -100)

    def micro_batch(self, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        batch = collate([{"input_ids": self.input_ids[i], "labels": self.labels[i]} for i in indices],
                        pad_token_id=self.pad_token_id)
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def steps_per_epoch(num_examples: int, batch_size: int, accum: int) -> int:
    """Optimizer steps in one epoch; a last, shorter window still makes a step (as Trainer does)."""
    return math.ceil(math.ceil(num_examples / batch_size) / accum)


def total_optimizer_steps(cfg: TrainConfig, num_examples: int, world_size: int = 1) -> int:
    global_batch = cfg.batch_size * world_size
    return cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * steps_per_epoch(num_examples, global_batch, cfg.accum)


def accumulation_windows(data: TrainData, cfg: TrainConfig, start: TrainState, dist_env: Distributed
                         ) -> Iterator[tuple[int, int, list[list[int]]]]:
    """Yield (epoch, index of the next micro-batch after this window, this rank's micro-batches).

    The batch order of an epoch is a pure function of (seed, epoch), so a resumed run regenerates
    it and skips exactly the micro-batches already consumed. Epochs repeat until the caller stops.
    Under data parallelism the order is built for *global* batches of batch_size x world_size, and
    rank r takes every world_size-th example of each: N ranks with batch b see exactly the batches of
    one process with batch N*b (the test of that equivalence is tests/test_distributed.py).
    """
    world, rank = dist_env.world_size, dist_env.rank
    epoch, first = start.epoch, start.batch_in_epoch
    while True:
        batches = batch_order(data.lengths, cfg.batch_size * world, seed=cfg.seed, epoch=epoch,
                              group_by_length=cfg.group_by_length)
        for i in range(first, len(batches), cfg.accum):
            yield epoch, min(i + cfg.accum, len(batches)), [batch[rank::world] for batch in batches[i:i + cfg.accum]]
        epoch, first = epoch + 1, 0


def train(cfg: TrainConfig, model: torch.nn.Module, data: TrainData, optimizer: torch.optim.Optimizer,
          scheduler, *, device: torch.device, run_dir: Path, start: TrainState, total_steps: int,
          is_peft: bool, dist_env: Distributed = Distributed(), graphed: GraphedMicroSteps | None = None) -> list[dict]:
    """Run optimizer steps `start.step + 1 .. total_steps`; append one record per step to
    `run_dir/metrics.jsonl` (rank 0); return the records of this call. With cfg.cuda_graphs, pass
    `graphed` to keep its recorded graphs across calls (else one is made here)."""
    # ---- set-up (Trainer: `_inner_training_loop` preamble) -------------------------------------
    # Order matters: checkpointing must be switched on after peft wrapped the model (peft forwards the
    # call to the HF model) and before the first forward; `model.train()` after it, because HF models
    # apply checkpointing only in training mode.
    if cfg.ckpt:
        # Non-reentrant checkpointing recomputes through autograd's saved-tensor hooks, so it works
        # when the layer *inputs* do not require grad (frozen embeddings + LoRA inside the layers).
        # The reentrant variant would silently produce no LoRA gradients there, which is why peft
        # needs `enable_input_require_grads()` with it.
        # preserve_rng_state=False under CUDA graphs: nothing random runs (no dropout: validated in the
        # config), so no RNG state needs saving and restoring around the recorded recomputation.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={
            "use_reentrant": False, **({"preserve_rng_state": False} if cfg.cuda_graphs else {})})
    model.config.use_cache = False  # a KV cache is for generation; in training it only costs memory
    model.train()
    # The module that runs forward + loss. Under torchrun it is wrapped by DDP (Trainer: accelerate's
    # `prepare`), which registers the gradient all-reduce hooks; the optimizer keeps the same tensors.
    loss_module: torch.nn.Module = CausalLMLoss(model, label_only=cfg.loss_on_labels_only, chunked=cfg.chunked_loss)
    grad_allreduces = [0]  # DDP gradient all-reduce calls (one per bucket) in the current step
    if dist_env.enabled:
        loss_module = DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)

        def counting_allreduce(process_group, bucket):  # DDP's default hook, counted
            grad_allreduces[0] += 1
            return allreduce_hook(process_group, bucket)

        loss_module.register_comm_hook(None, counting_allreduce)
    trainable = [p for p in model.parameters() if p.requires_grad]
    tracker = MemoryTracker(model, optimizer, device, measure_cublas_workspace=not cfg.cuda_graphs)
    # Forward + loss + backward replayed as CUDA graphs (engine/cuda_graphs.py), or eager (None).
    if cfg.cuda_graphs and dist_env.enabled:
        raise ValueError("--cuda-graphs runs in a single process (DDP's gradient hooks are not captured)")
    if cfg.cuda_graphs and graphed is None:
        graphed = GraphedMicroSteps.for_training(model, data, batch_size=cfg.batch_size,
                                                 label_only=cfg.loss_on_labels_only, device=device,
                                                 chunked=cfg.chunked_loss)
    micro_batches_per_epoch = math.ceil(len(data.input_ids) / (cfg.batch_size * dist_env.world_size))
    metrics_file = None
    if dist_env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics_file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
    records: list[dict] = []

    if cfg.memory_snapshot:
        start_allocator_history(device)
    progress = tqdm(total=total_steps, initial=start.step, desc="train", unit="step", dynamic_ncols=True,
                    disable=not dist_env.is_main)
    if graphed is not None and len(graphed.graphs) < len(graphed.lengths):
        seconds = graphed.record_all()
        progress.write(f"CUDA graphs: recorded {len(graphed.graphs)} (padded lengths {graphed.lengths[-1]}.."
                       f"{graphed.lengths[0]}) in {seconds:.1f} s")
    if graphed is not None:
        tracker.replay_peak_allocated = graphed.peak_allocated
    windows = accumulation_windows(data, cfg, start, dist_env)
    step = start.step
    while step < total_steps:
        epoch, next_batch, window = next(windows)
        step_started = time.perf_counter()
        tracker.start_step()
        grad_allreduces[0] = 0

        # ---- fetch the window (Trainer: `get_batch_samples`) -------------------------------------
        # All micro-batches of the window are built first, because the loss normaliser is the number
        # of label tokens in the whole window, over all ranks: known only once every micro-batch is seen.
        # (Under CUDA graphs the graph's own input tensors are filled instead, one micro-batch at a time.)
        micro_batches = window if graphed is not None else [data.micro_batch(indices, device) for indices in window]
        # Counted from the host-side lists, not the device tensors: reading a GPU tensor would sync.
        counts = [sum(data.label_tokens(i) for indices in window for i in indices),
                  sum(len(data.input_ids[i]) for indices in window for i in indices)]  # non-pad tokens
        if dist_env.enabled:  # every rank's tokens: one small all-reduce (a sync, unavoidable here)
            counts = all_reduce_sum(torch.tensor(counts, device=device), dist_env).tolist()
        window_label_tokens, window_tokens = counts

        # ---- forward / backward per micro-batch (Trainer: `training_step` + `compute_loss`) ------
        # DDP averages gradients over ranks; our normaliser already counts every rank's tokens, so each
        # rank's loss is scaled by world_size to turn that average back into the global token sum.
        scale = dist_env.world_size / window_label_tokens
        window_loss = torch.zeros((), device=device)  # this rank's share of the token-weighted mean
        for i, batch in enumerate(micro_batches):
            is_last_micro_batch = i == len(micro_batches) - 1
            # Without no_sync DDP would all-reduce after every micro-batch's backward: accum times per
            # step. Gradients just accumulate locally until the last micro-batch, which syncs once.
            sync_context = loss_module.no_sync() if dist_env.enabled and not is_last_micro_batch else nullcontext()
            with sync_context:
                if graphed is not None:  # one replay; the first micro-batch of a new length records it
                    micro_loss = graphed.forward_backward([data.input_ids[i] for i in batch],
                                                          [data.labels[i] for i in batch], scale)
                    tracker.activations.note(graphed.last_activations)  # measured when it was recorded
                else:
                    with tracker.activations.count():
                        micro_loss = loss_module(**batch) * scale
                    micro_loss.backward()  # grads accumulate in .grad across the window
            window_loss += micro_loss.detach() / dist_env.world_size

        # ---- clip (Trainer: `_clip_grad_norm` / `accelerator.clip_grad_norm_`) ---------------------
        # On the synchronised gradients (identical on every rank, so every rank computes the same norm).
        # Returns the total norm *before* clipping; with max_norm=inf it only measures.
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_norm)
        grads_bytes = gradient_bytes(model)  # gradients are at their peak now, before zero_grad

        # ---- update (Trainer: `optimizer.step()`, `lr_scheduler.step()`, `model.zero_grad()`) ------
        lr = scheduler.get_last_lr()[0]  # the lr this step uses
        optimizer.step()
        scheduler.step()
        # set_to_none frees the gradient tensors instead of filling them with zeros: the memory is
        # returned between steps, and the next backward writes instead of adding. CUDA graphs recorded
        # their additions into these very tensors: they are zeroed in place instead.
        optimizer.zero_grad(set_to_none=graphed is None)
        step += 1
        is_last_step = step == total_steps
        maybe_inject_fault(dist_env, step)

        # ---- log (Trainer: `_maybe_log_save_evaluate`) -------------------------------------------
        mem = tracker.record(grads_bytes)
        loss_value = all_reduce_sum(window_loss, dist_env).item()  # .item() syncs with the device: once per step, here
        mem_ranks = gather_objects(mem, dist_env)
        step_s = time.perf_counter() - step_started
        record = {
            "step": step,
            "epoch": round(epoch + next_batch / micro_batches_per_epoch, 4),  # fractional, as Trainer logs it
            "loss": loss_value,
            "lr": lr,
            "grad_norm": grad_norm.item(),
            "tokens": window_tokens,
            "label_tokens": window_label_tokens,
            "tokens_per_s": window_tokens / step_s,
            "step_s": step_s,
            "mem": mem,
        }
        if dist_env.enabled:  # every rank's components, rank order; `mem` above is rank 0's
            record.update(world_size=dist_env.world_size, mem_ranks=mem_ranks, grad_allreduces=grad_allreduces[0])
        records.append(record)
        if metrics_file is not None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
        progress.update(1)
        progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}",
                             mem=format_bytes(mem["allocated"] if mem["allocated"] is not None else tracked_total(mem)))
        if dist_env.is_main and (step % cfg.log_every == 0 or is_last_step):
            progress.write(format_log_line(record))

        if cfg.memory_snapshot and step - start.step == min(SNAPSHOT_STEPS, total_steps - start.step):
            dump_allocator_history(cfg.memory_snapshot)
            progress.write(f"allocator snapshot of {step - start.step} steps: {cfg.memory_snapshot} "
                           "(drag it onto https://pytorch.org/memory_viz)")

        # ---- checkpoint (Trainer: `_save_checkpoint`) --------------------------------------------
        # Every rank holds the same weights and optimizer state after the step: rank 0 writes.
        if dist_env.is_main and cfg.save_every and (step % cfg.save_every == 0 or is_last_step):
            position = TrainState(step=step, epoch=epoch, batch_in_epoch=next_batch, world_size=dist_env.world_size)
            save_checkpoint(run_dir, model, optimizer, scheduler, position, cfg.to_dict(), is_peft=is_peft)
    progress.close()
    if metrics_file is not None:
        metrics_file.close()
    return records


def format_log_line(record: dict) -> str:
    mem = record["mem"]
    params = mem["params_4bit"] + mem["params_frozen"] + mem["params_trainable"]
    line = (f"step {record['step']:5d} | loss {record['loss']:.4f} | lr {record['lr']:.2e} | "
            f"grad_norm {record['grad_norm']:.3f} | {record['tokens_per_s']:.0f} tok/s | params {format_bytes(params)} "
            f"grads {format_bytes(mem['grads'])} optim {format_bytes(mem['optimizer'])} act {format_bytes(mem['activations'])}")
    if mem["allocated"] is not None:
        line += f" | cuda alloc {format_bytes(mem['allocated'])} peak {format_bytes(mem['peak_allocated'])}"
    return line
