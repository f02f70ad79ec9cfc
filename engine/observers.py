"""Step observers: what happens around an optimizer step without being the step (Trainer: callbacks).

The loop calls every observer at the same fixed points, in the order they were set up:

    on_train_begin                      before the first step of this call
    on_step_begin                       a window was fetched, nothing computed yet
    on_optimizer_step                   after optimizer.step(), before zero_grad: gradients still exist
    on_log(record)                      the step's record: observers add to it (memory), then write it
    on_step_end                         the step is complete (checkpoints)
    on_train_end                        after the last step (files closed)

Trainer's `TrainerCallback` has the same hooks (and more). Each observer below does one thing;
`default_observers` is the set train.py runs with.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.utils.checkpoint
from tqdm.auto import tqdm

from engine.checkpoint import TrainState, rotate_checkpoints, save_checkpoint
from engine.config import TrainConfig
from engine.distributed import Distributed
from engine.memory import (SNAPSHOT_STEPS, MemoryTracker, dump_allocator_history, format_bytes, gradient_bytes,
                           start_allocator_history, tracked_total)


@dataclass
class LoopState:
    """Where the loop stands, as observers see it (Trainer: `TrainerState`)."""

    position: TrainState  # after the last finished optimizer step: what a checkpoint saves
    start_step: int       # optimizer steps already done when this call began (> 0 when resumed)
    total_steps: int

    @property
    def step(self) -> int:
        return self.position.step

    @property
    def is_last_step(self) -> bool:
        return self.step == self.total_steps


class StepObserver:
    """Every hook does nothing: an observer overrides the ones it needs."""

    def on_train_begin(self, state: LoopState) -> None: ...

    def on_step_begin(self, state: LoopState) -> None: ...

    def on_optimizer_step(self, state: LoopState) -> None: ...

    def on_log(self, state: LoopState, record: dict) -> None: ...

    def on_step_end(self, state: LoopState) -> None: ...

    def on_train_end(self, state: LoopState) -> None: ...


class Observers(StepObserver):
    """Trainer's `CallbackHandler`: one call reaches every observer, in order."""

    def __init__(self, observers: list[StepObserver]):
        self.observers = list(observers)

    def on_train_begin(self, state: LoopState) -> None:
        for o in self.observers:
            o.on_train_begin(state)

    def on_step_begin(self, state: LoopState) -> None:
        for o in self.observers:
            o.on_step_begin(state)

    def on_optimizer_step(self, state: LoopState) -> None:
        for o in self.observers:
            o.on_optimizer_step(state)

    def on_log(self, state: LoopState, record: dict) -> None:
        for o in self.observers:
            o.on_log(state, record)

    def on_step_end(self, state: LoopState) -> None:
        for o in self.observers:
            o.on_step_end(state)

    def on_train_end(self, state: LoopState) -> None:
        for o in self.observers:
            o.on_train_end(state)


class MemoryRecorder(StepObserver):
    """Adds the step's memory record, `mem` (engine/memory.py), to the log record."""

    def __init__(self, tracker: MemoryTracker):
        self.tracker, self.grads = tracker, 0

    def on_step_begin(self, state: LoopState) -> None:
        self.tracker.start_step()

    def on_optimizer_step(self, state: LoopState) -> None:
        self.grads = gradient_bytes(self.tracker.model)  # at their peak: the window's backward is done

    def on_log(self, state: LoopState, record: dict) -> None:
        record["mem"] = self.tracker.record(self.grads)


class DataParallelRecord(StepObserver):
    """Under torchrun: every rank's memory and the DDP gradient all-reduces of the step in the record
    (`mem` itself is rank 0's). Runs on every rank: gathering is a collective."""

    def __init__(self, dist: Distributed, module: torch.nn.Module):
        self.dist, self.module = dist, module  # the DDP wrapper, which counts its all-reduces

    def on_step_begin(self, state: LoopState) -> None:
        self.module.grad_allreduces = 0

    def on_log(self, state: LoopState, record: dict) -> None:
        record.update(world_size=self.dist.world_size, mem_ranks=self.dist.gather(record["mem"]),
                      grad_allreduces=self.module.grad_allreduces)


class Validation(StepObserver):
    """Trainer's evaluation on `eval_steps` (`_maybe_log_save_evaluate` -> `evaluate`): every `every` steps
    and at the last one, each of `measures` (record key -> function of the model as it is now: val_loss,
    val_ex) goes into the step's record before it is written. A step whose loss is not finite is not
    validated (the non-finite guard ends the run there). Runs on every rank: the loss is summed over them.
    Tracks the lowest val_loss so far (Trainer: `state.best_metric`, `best_model_checkpoint`), from the
    records of the steps before a resume too (`history`), for --save-best; the earliest step wins a tie."""

    def __init__(self, measures: dict[str, Callable[[], float]], every: int, history: list[dict] = ()):
        self.measures, self.every = measures, every
        best = min((r for r in history if "val_loss" in r), key=lambda r: r["val_loss"], default=None)
        self.best_step, self.best_loss = (best["step"], best["val_loss"]) if best else (None, math.inf)

    def on_log(self, state: LoopState, record: dict) -> None:
        due = (self.every > 0 and state.step % self.every == 0) or state.is_last_step
        if not due or not math.isfinite(record["loss"]):
            return
        for key, measure in self.measures.items():
            record[key] = measure()
        if torch.cuda.is_available():  # the blocks validation cached go back: reserved keeps measuring training
            torch.cuda.empty_cache()
        if record["val_loss"] < self.best_loss:
            self.best_step, self.best_loss = state.step, record["val_loss"]


class MetricsWriter(StepObserver):
    """Appends each record to `run_dir/metrics.jsonl`, one JSON object per line, flushed every step."""

    def __init__(self, run_dir: Path):
        self.path, self.file = Path(run_dir) / "metrics.jsonl", None

    def on_train_begin(self, state: LoopState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a", encoding="utf-8")

    def on_log(self, state: LoopState, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def on_train_end(self, state: LoopState) -> None:
        self.file.close()


class TensorBoardWriter(StepObserver):
    """--report-to tensorboard (Trainer: `TensorBoardCallback`): every number of the step's record as a
    TensorBoard scalar in <run_dir>/tensorboard/ (`tensorboard --logdir runs` shows every run): the
    training numbers under train/, each memory component in bytes under memory/, validation under eval/,
    named as Trainer names them. metrics.jsonl stays the contract; this is a view of the same numbers
    (float32, as TensorBoard stores them). Flushed every step, like metrics.jsonl. A resumed run purges
    what an earlier writer logged from its first step on, so a step repeated after a resume shows once."""

    TAGS = {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
            "tokens_per_s": "train/tokens_per_s", "epoch": "train/epoch", "step_s": "train/step_s",
            "tokens": "train/tokens", "label_tokens": "train/label_tokens", "val_loss": "eval/loss",
            "val_ex": "eval/execution_accuracy"}

    def __init__(self, run_dir: Path):
        self.log_dir, self.writer = Path(run_dir) / "tensorboard", None

    def on_train_begin(self, state: LoopState) -> None:
        from torch.utils.tensorboard import SummaryWriter  # only for --report-to tensorboard

        self.writer = SummaryWriter(str(self.log_dir), purge_step=state.start_step + 1)

    def on_log(self, state: LoopState, record: dict) -> None:
        scalars = {tag: record[key] for key, tag in self.TAGS.items() if record.get(key) is not None}
        scalars.update((f"memory/{key}", value) for key, value in record["mem"].items() if value is not None)
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, state.step)
        self.writer.flush()

    def on_train_end(self, state: LoopState) -> None:
        self.writer.close()


class ProgressBar(StepObserver):
    """A tqdm bar over the optimizer steps, and a log line every `log_every` steps and at the last."""

    def __init__(self, log_every: int):
        self.log_every, self.bar = log_every, None

    def on_train_begin(self, state: LoopState) -> None:
        self.bar = tqdm(total=state.total_steps, initial=state.start_step, desc="train", unit="step", dynamic_ncols=True)

    def on_log(self, state: LoopState, record: dict) -> None:
        mem = record["mem"]
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", tok_s=f"{record['tokens_per_s']:.0f}",
                             mem=format_bytes(mem["allocated"] if mem["allocated"] is not None else tracked_total(mem)))
        if state.step % self.log_every == 0 or state.is_last_step or "val_loss" in record:
            self.bar.write(format_log_line(record))

    def on_train_end(self, state: LoopState) -> None:
        self.bar.close()


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being a finite number: printed as one line, exit status 1."""


class NonFiniteGuard(StepObserver):
    """Ends the run at the first step whose loss or gradient norm is NaN or infinite, before that step's
    checkpoint and before the final adapter: the last good checkpoint stays the run's last word. Runs on
    every rank (the loss is all-reduced and the norm is taken over synchronised gradients, so all ranks
    stop at the same step). A gradient norm of exactly 0 for `dead_steps` steps in a row is only warned
    about: nothing trains, but nothing is wrong with the numbers either."""

    def __init__(self, dead_steps: int = 3, warn=tqdm.write):
        self.dead_steps, self.warn, self.zero_in_a_row = dead_steps, warn, 0

    def on_log(self, state: LoopState, record: dict) -> None:
        loss, grad_norm = record["loss"], record["grad_norm"]
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise TrainingDiverged(f"step {state.step}: loss {loss}, grad_norm {grad_norm}: training diverged and "
                                   f"nothing of this step was saved; try a lower --lr (this step used {record['lr']:.3g})")
        self.zero_in_a_row = self.zero_in_a_row + 1 if grad_norm == 0 else 0
        if self.zero_in_a_row == self.dead_steps:
            self.warn(f"warning: the gradient norm has been exactly 0 for {self.dead_steps} steps (step {state.step}): "
                      "nothing is training (are all labels -100, or is every trainable tensor frozen?)")


class AllocatorSnapshot(StepObserver):
    """--memory-snapshot: the CUDA allocator's history over the first SNAPSHOT_STEPS steps, written as
    a pickle that https://pytorch.org/memory_viz opens."""

    def __init__(self, path: str, device: torch.device):
        self.path, self.device = path, device
        # While the history records stack traces, a checkpointed recompute must run to its end: torch 2.11
        # loses the exception that stops it early inside a custom autograd Function (our fused LoRA) and
        # fails with "returned NULL without setting an exception" (pytorch/pytorch#179536). The recompute
        # then also makes the tensors after the last one backward needs (one layer's output, freed at once).
        self.full_recompute = torch.utils.checkpoint.set_checkpoint_early_stop(False)
        self.recording = False

    def on_train_begin(self, state: LoopState) -> None:
        self.full_recompute.__enter__()
        start_allocator_history(self.device)
        self.recording = True

    def on_step_end(self, state: LoopState) -> None:
        steps = state.step - state.start_step
        if steps == min(SNAPSHOT_STEPS, state.total_steps - state.start_step):
            dump_allocator_history(self.path)
            self._stop()
            tqdm.write(f"allocator snapshot of {steps} steps: {self.path} (drag it onto https://pytorch.org/memory_viz)")

    def on_train_end(self, state: LoopState) -> None:
        self._stop()  # a run that ended (or failed) before the dump: early stop back on

    def _stop(self) -> None:
        if self.recording:
            self.recording = False
            self.full_recompute.__exit__(None, None, None)


class CheckpointSaver(StepObserver):
    """Trainer's `_save_checkpoint`: `checkpoint-N/` every `save_every` steps and at the last (save strategy
    "steps"), and with --save-best at each validation that lowers val_loss (engine/checkpoint.py); then
    Trainer's `_rotate_checkpoints` when --save-total-limit is given: the oldest go, never the latest nor
    the best. Every rank holds the same state after a step, so rank 0 alone writes."""

    def __init__(self, run_dir: Path, model, optimizer, scheduler, cfg: TrainConfig, *, is_peft: bool,
                 validation: Validation | None = None):
        self.run_dir, self.model, self.optimizer, self.scheduler = run_dir, model, optimizer, scheduler
        self.cfg, self.is_peft = cfg, is_peft
        self.best = validation if cfg.save_best else None  # whose best_step is the checkpoint to keep

    def on_step_end(self, state: LoopState) -> None:
        every = self.cfg.save_every
        scheduled = every > 0 and (state.step % every == 0 or state.is_last_step)
        improved = self.best is not None and self.best.best_step == state.step
        if scheduled or improved:
            save_checkpoint(self.run_dir, self.model, self.optimizer, self.scheduler, state.position,
                            self.cfg.to_dict(), is_peft=self.is_peft)
            if self.cfg.save_total_limit:
                rotate_checkpoints(self.run_dir, self.cfg.save_total_limit,
                                   best_step=self.best.best_step if self.best else None)


def default_observers(cfg: TrainConfig, model, optimizer, scheduler, micro_step, *, device: torch.device,
                      run_dir: Path, is_peft: bool, dist: Distributed,
                      validation: Validation | None = None) -> list[StepObserver]:
    """The observers of a train.py run, in the order they must run: the memory record first (the others
    read it), every rank's parts next (collectives: the ranks' memory, the validation loss), then what
    rank 0 alone writes and prints, the non-finite guard, and the checkpoint last (a diverged step is
    never saved)."""
    tracker = MemoryTracker(model, optimizer, device, activations=micro_step.activations,
                            measure_cublas_workspace=not micro_step.recorded,
                            replay_peak_allocated=micro_step.peak_allocated)
    observers: list[StepObserver] = [MemoryRecorder(tracker)]
    if dist.enabled:
        observers.append(DataParallelRecord(dist, micro_step.module))
    if validation is not None:  # before the record is written: val_loss is part of it
        observers.append(validation)
    if dist.is_main:
        observers += [MetricsWriter(run_dir), ProgressBar(cfg.log_every)]
    if dist.is_main and cfg.report_to == "tensorboard":
        observers.append(TensorBoardWriter(run_dir))
    if dist.is_main and cfg.memory_snapshot:
        observers.append(AllocatorSnapshot(cfg.memory_snapshot, device))
    observers.append(NonFiniteGuard())  # after the record is written, before anything is saved
    if dist.is_main and (cfg.save_every or cfg.save_best):
        observers.append(CheckpointSaver(run_dir, model, optimizer, scheduler, cfg, is_peft=is_peft,
                                         validation=validation))
    return observers


def format_log_line(record: dict) -> str:
    mem = record["mem"]
    params = mem["params_4bit"] + mem["params_frozen"] + mem["params_trainable"]
    line = (f"step {record['step']:5d} | loss {record['loss']:.4f} | lr {record['lr']:.2e} | "
            f"grad_norm {record['grad_norm']:.3f} | {record['tokens_per_s']:.0f} tok/s | params {format_bytes(params)} "
            f"grads {format_bytes(mem['grads'])} optim {format_bytes(mem['optimizer'])} act {format_bytes(mem['activations'])}")
    if mem["allocated"] is not None:
        line += f" | cuda alloc {format_bytes(mem['allocated'])} peak {format_bytes(mem['peak_allocated'])}"
    if "val_loss" in record:
        line += f" | val_loss {record['val_loss']:.4f}"
    if record.get("val_ex") is not None:
        line += f" | val_ex {record['val_ex']:.3f}"
    return line
