"""One set-up path, for train.py and the benchmark alike (Trainer: `__init__` and the top of `train()`):

    machine checks -> CUDA memory settings -> model -> data -> step counts -> optimizer -> scheduler

`set_up` returns a `Recipe` holding all of it. `Recipe.training()` is the one lifetime rule of the
speed and memory switches: applied when training starts, the micro-step built (CUDA graphs recorded)
inside, everything undone when training ends.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from data.batching import TrainData
from data.dummy import dummy_examples, parse_dummy_spec
from data.synthetic import parse_synthetic_spec, synthetic_examples
from data.tokenize import IGNORE_INDEX
from engine.config import ConfigError, TrainConfig
from engine.device import resolve_compute_dtype
from engine.distributed import Distributed, LaunchError
from engine.features.switches import apply_cuda_memory_settings, check_switches, training_switches
from engine.loop import total_optimizer_steps
from engine.memory import format_bytes
from engine.optim import create_optimizer, resolve_optimizer_name
from engine.schedule import create_scheduler
from engine.step import MicroStep, prepare_micro_step
from models.load import is_random_init, load_model, load_tokenizer

Say = Callable[[str], None]


@dataclass
class Recipe:
    """Everything a run trains with, built once by `set_up`."""

    cfg: TrainConfig
    dist: Distributed
    device: torch.device
    compute_dtype: torch.dtype
    tokenizer: object | None  # None when the data is made of token ids (dummy:, synthetic:)
    model: torch.nn.Module
    data: TrainData
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    total_steps: int
    say: Say = print

    @property
    def is_peft(self) -> bool:
        return self.cfg.peft != "full"

    @contextmanager
    def training(self) -> Iterator[MicroStep]:
        """The switches applied (engine/features/switches.py), the micro-step built: yields the
        micro-step for `engine.loop.train`; the model is plain again after the block."""
        with training_switches(self.cfg, self.model, self.device, self.say):
            yield prepare_micro_step(self.cfg, self.model, self.data, self.device, self.dist, log=self.say)


def set_up(cfg: TrainConfig, dist: Distributed, device: torch.device, say: Say = print) -> Recipe:
    """Build the run of `cfg` on `device`, printing what each stage decided."""
    check_switches(cfg, device, dist)
    if cfg.eval and dist.enabled:
        raise ConfigError("--eval runs in a single process; evaluate the adapter afterwards with python -m eval.evaluate")
    apply_cuda_memory_settings(cfg)  # before the model exists: its first allocation reads them
    random.seed(cfg.seed)  # Trainer: set_seed (the model's own draws are seeded by load_model)
    torch.manual_seed(cfg.seed)
    compute_dtype = resolve_compute_dtype(cfg.compute_dtype, device)
    say(f"{f'world size {dist.world_size} | ' if dist.enabled else ''}device {device} | compute dtype "
        f"{str(compute_dtype).removeprefix('torch.')}")
    model = load_model_for_training(cfg, device, compute_dtype, say)
    data, tokenizer = load_train_data(cfg, model, say)
    total_steps = count_steps(cfg, data, dist, say)
    optimizer, scheduler = create_optimizer_and_scheduler(cfg, model, device, total_steps, say)
    return Recipe(cfg, dist, device, compute_dtype, tokenizer, model, data, optimizer, scheduler, total_steps, say)


def load_model_for_training(cfg: TrainConfig, device: torch.device, compute_dtype: torch.dtype,
                            say: Say = print) -> torch.nn.Module:
    """Load (for qlora quantise to 4-bit), then wrap with LoRA (models/load.py). Memory at load is what
    the weights alone cost, before any gradient, optimizer state or activation exists."""
    from models.report import format_model_report

    model = load_model(cfg.model, peft=cfg.peft, quant=cfg.quant, double_quant=cfg.double_quant,
                       compute_dtype=compute_dtype, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                       lora_dropout=cfg.lora_dropout, target_modules=cfg.target_modules, device=device,
                       seed=cfg.seed)
    say(format_model_report(model))
    if device.type == "cuda":
        say(f"CUDA memory allocated at load: {format_bytes(torch.cuda.memory_allocated(device))}")
    return model


def load_train_data(cfg: TrainConfig, model: torch.nn.Module, say: Say = print) -> tuple[TrainData, object | None]:
    """(data, tokenizer). Every text format becomes chat messages rendered with the model's own chat
    template, and only the answer and its end-of-turn token carry labels (data/tokenize.py).
    `dummy:` and `synthetic:` are token ids made up for memory and speed measurements: they need no
    tokenizer (None), and take their end and pad ids from the model's config."""
    vocab_size = model.get_input_embeddings().num_embeddings
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, (list, tuple)) else eos
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else eos
    tokenizer, num_dropped = None, 0
    if (seq_len := parse_dummy_spec(cfg.data)) is not None:  # the book's make_dummy_dataset: 64 rows
        data = TrainData(*dummy_examples(seq_len, 64, vocab_size, cfg.seed), pad_token_id=pad)
    elif (count := parse_synthetic_spec(cfg.data)) is not None:
        data = TrainData(*synthetic_examples(count, vocab_size=vocab_size, end_id=eos, seed=cfg.seed), pad_token_id=pad)
    else:  # imported here: reading text formats needs `datasets`, token ids do not
        from data.formats import load_examples
        from data.tokenize import tokenize_dataset

        tokenizer = load_tokenizer(cfg.model)
        examples = load_examples(cfg.data, cfg.split, sample_rows=cfg.sample_rows)
        tokenized = tokenize_dataset(examples, tokenizer, cfg.max_length)
        data = TrainData(tokenized.dataset["input_ids"], tokenized.dataset["labels"], tokenizer.pad_token_id)
        num_dropped = tokenized.num_dropped
    if not data.input_ids:
        raise ConfigError(f"no training example fits --max-length {cfg.max_length}")
    if is_random_init(cfg.model) and max(max(ids) for ids in data.input_ids) >= vocab_size:
        say(f"note: {cfg.model} has a {vocab_size}-token vocabulary, smaller than the tokenizer's: token ids "
            f"are folded modulo {vocab_size} (random weights: memory and speed are unaffected)")
        data = data.fold_token_ids(vocab_size)
    lengths = data.lengths
    label_tokens = sum(sum(1 for t in y if t != IGNORE_INDEX) for y in data.labels)
    say(f"data {cfg.data} [{cfg.split}]: {len(lengths)} examples, {num_dropped} dropped (longer than "
        f"--max-length {cfg.max_length}); tokens per example mean {sum(lengths) / len(lengths):.0f}, max "
        f"{max(lengths)}; label tokens mean {label_tokens / len(lengths):.1f}")
    return data, tokenizer


def count_steps(cfg: TrainConfig, data: TrainData, dist: Distributed, say: Say = print) -> int:
    """The numbers Trainer computes silently at the top of `_inner_training_loop`: optimizer steps,
    warmup, sequences and tokens per step."""
    examples, world = len(data.input_ids), dist.world_size
    global_batch = cfg.batch_size * world
    if dist.enabled and 0 < examples % global_batch < world:
        raise LaunchError(f"{examples} examples in global batches of {global_batch} leave a last batch of "
                          f"{examples % global_batch}, fewer than the {world} ranks: change --batch-size or "
                          f"the number of ranks")
    total_steps = total_optimizer_steps(cfg, examples, world)
    per_step = cfg.effective_batch * world
    mean_length = sum(data.lengths) / examples
    say(f"effective batch {per_step} sequences (batch {cfg.batch_size} x accum {cfg.accum}"
        f"{f' x {world} ranks' if dist.enabled else ''}) | ~{per_step * mean_length:.0f} tokens per optimizer "
        f"step | {total_steps} steps ({total_steps * per_step / examples:.2f} epochs) | warmup "
        f"{cfg.warmup_steps(total_steps)} steps | checkpointing {'on' if cfg.ckpt else 'off'}")
    return total_steps


def create_optimizer_and_scheduler(cfg: TrainConfig, model: torch.nn.Module, device: torch.device,
                                   total_steps: int, say: Say = print):
    """Trainer.create_optimizer_and_scheduler. After the model is final (peft-wrapped): the optimizer
    holds references to the trainable tensors."""
    name, note = resolve_optimizer_name(cfg.optim, device)
    if note:
        say(note)
    optimizer = create_optimizer(model, name=name, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = create_scheduler(optimizer, kind=cfg.scheduler, warmup_steps=cfg.warmup_steps(total_steps),
                                 total_steps=total_steps)
    return optimizer, scheduler
