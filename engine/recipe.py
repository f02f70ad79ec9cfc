"""One set-up path, for train.py and the benchmark alike (Trainer: `__init__` and the top of `train()`):

    machine checks -> CUDA memory settings -> model -> data -> step counts -> optimizer -> scheduler

`set_up` returns a `Recipe` holding all of it. `Recipe.training()` is the one lifetime rule of the
speed and memory switches: applied when training starts, the micro-step built (CUDA graphs recorded)
inside, everything undone when training ends.
"""

from __future__ import annotations

import importlib.util
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from data.batching import TrainData, pack_examples
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
from engine.provenance import git_commit, library_versions
from engine.schedule import create_scheduler
from engine.step import MicroStep, head_loss_for, prepare_micro_step
from engine.validation import validation_loss
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
    val_data: TrainData | None = None  # --val-data / --val-split, tokenised as the training data is
    optim: str = ""  # the optimizer built: --optim, or its unpaged variant where paging does not exist

    @property
    def is_peft(self) -> bool:
        return self.cfg.peft != "full"

    def resolved(self) -> dict:
        """What the settings resolved to on this machine (config.json's `resolved`, engine/provenance.py):
        the optimizer built, the device, the compute dtype, ranks, steps and examples, the library
        versions and the code's git commit."""
        return {"optim": self.optim, "device": str(self.device),
                "compute_dtype": str(self.compute_dtype).removeprefix("torch."), "world_size": self.dist.world_size,
                "total_steps": self.total_steps, "train_examples": len(self.data.input_ids),
                "val_examples": len(self.val_data.input_ids) if self.val_data else None,
                "versions": library_versions(), "git": git_commit()}

    def validation_loss(self) -> float:
        """val_loss of the model as it is now (engine/validation.py), with the training's loss head."""
        return validation_loss(self.model, self.val_data, batch_size=self.cfg.batch_size,
                               label_only=self.cfg.loss_on_labels_only, head_loss=head_loss_for(self.cfg),
                               device=self.device, dist=self.dist)

    @contextmanager
    def training(self) -> Iterator[MicroStep]:
        """The switches applied (engine/features/switches.py), the micro-step built: yields the
        micro-step for `engine.loop.train`; the model is plain again after the block."""
        with training_switches(self.cfg, self.model, self.device, self.say):
            yield prepare_micro_step(self.cfg, self.model, self.data, self.device, self.dist, log=self.say)


def set_up(cfg: TrainConfig, dist: Distributed, device: torch.device, say: Say = print) -> Recipe:
    """Build the run of `cfg` on `device`, printing what each stage decided."""
    check_switches(cfg, device, dist)
    if cfg.report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("--report-to tensorboard needs the tensorboard package: pip install tensorboard")
    for flag, on in (("--eval", cfg.eval), ("--eval-ex", cfg.eval_ex)):
        if on and dist.enabled:
            raise ConfigError(f"{flag} runs in a single process; evaluate the adapter afterwards with python -m "
                              "eval.evaluate")
    apply_cuda_memory_settings(cfg, device)  # before the model exists: its first allocation reads them
    random.seed(cfg.seed)  # Trainer: set_seed (the model's own draws are seeded by load_model)
    torch.manual_seed(cfg.seed)
    compute_dtype = resolve_compute_dtype(cfg.compute_dtype, device)
    say(f"{f'world size {dist.world_size} | ' if dist.enabled else ''}device {device} | compute dtype "
        f"{str(compute_dtype).removeprefix('torch.')}")
    model = load_model_for_training(cfg, device, compute_dtype, say)
    data, tokenizer = load_train_data(cfg, model, say)
    val_data = load_validation_data(cfg, model, tokenizer, say)
    total_steps = count_steps(cfg, data, dist, say)
    optimizer, scheduler, optim = create_optimizer_and_scheduler(cfg, model, device, total_steps, say)
    return Recipe(cfg, dist, device, compute_dtype, tokenizer, model, data, optimizer, scheduler, total_steps, say,
                  val_data, optim)


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
    else:
        tokenizer = load_tokenizer(cfg.model)
        data, num_dropped = load_text_data(cfg, cfg.data, cfg.split, tokenizer)
    if not data.input_ids:
        raise ConfigError(f"no training example fits --max-length {cfg.max_length}")
    if tokenizer is None and (cfg.db_dir or cfg.tables or cfg.validation_source):
        raise ConfigError(f"--data {cfg.data} is token ids: --db-dir, --tables and validation data apply to text data")
    if is_random_init(cfg.model) and max(max(ids) for ids in data.input_ids) >= vocab_size:
        say(f"note: {cfg.model} has a {vocab_size}-token vocabulary, smaller than the tokenizer's: token ids "
            f"are folded modulo {vocab_size} (random weights: memory and speed are unaffected)")
    data = fold_for(cfg, model, data)
    lengths = data.lengths
    label_tokens = sum(sum(1 for t in y if t != IGNORE_INDEX) for y in data.labels)
    say(f"data {cfg.data} [{cfg.split}]: {len(lengths)} examples, {num_dropped} dropped (longer than "
        f"--max-length {cfg.max_length}); tokens per example mean {sum(lengths) / len(lengths):.0f}, max "
        f"{max(lengths)}; label tokens mean {label_tokens / len(lengths):.1f}")
    if cfg.packing:  # from here on an "example" is a packed row
        data = pack_examples(data, cfg.max_length, seed=cfg.seed)
        say(f"packing: {len(lengths)} examples in {len(data.input_ids)} rows of up to {cfg.max_length} tokens, "
            f"{sum(lengths) / (len(data.input_ids) * cfg.max_length):.1%} filled")
    return data, tokenizer


def load_text_data(cfg: TrainConfig, source: str, split: str, tokenizer) -> tuple[TrainData, int]:
    """(data, examples dropped as longer than --max-length) of a text source: records of any format
    (data/formats.py) with the schema as --db-dir/--tables/--no-schema say, rendered with the model's chat
    template and masked (data/tokenize.py). The training and the validation data both come through here."""
    from data.formats import load_examples  # imported here: text formats need `datasets`, token ids do not
    from data.tokenize import tokenize_dataset

    examples = load_examples(source, split, schema=cfg.schema, tables=cfg.tables, db_dir=cfg.db_dir,
                             require_schema=cfg.schema, sample_rows=cfg.sample_rows)
    tokenized = tokenize_dataset(examples, tokenizer, cfg.max_length)
    return (TrainData(tokenized.dataset["input_ids"], tokenized.dataset["labels"], tokenizer.pad_token_id),
            tokenized.num_dropped)


def fold_for(cfg: TrainConfig, model: torch.nn.Module, data: TrainData) -> TrainData:
    """Token ids folded into a random-init preset's smaller vocabulary (TrainData.fold_token_ids); as is otherwise."""
    vocab_size = model.get_input_embeddings().num_embeddings
    if is_random_init(cfg.model) and data.input_ids and max(max(ids) for ids in data.input_ids) >= vocab_size:
        return data.fold_token_ids(vocab_size)
    return data


def load_validation_data(cfg: TrainConfig, model: torch.nn.Module, tokenizer, say: Say = print) -> TrainData | None:
    """--val-data / --val-split as TrainData, through the training data's own path (same template, schema,
    masking and --max-length); None without validation data."""
    if cfg.validation_source is None:
        return None
    source, split = cfg.validation_source
    has_splits = source == "bundled" or Path(source).is_dir()
    if split is None and has_splits:
        raise ConfigError(f"--val-data {source} holds several splits: name one with --val-split (bundled: test or "
                          "heldout; a Spider directory: the file's name, e.g. dev)")
    if split is not None and not has_splits:
        raise ConfigError(f"--val-split {split}: {source} is one file, without splits; validate on another file "
                          "with --val-data FILE")
    data, num_dropped = load_text_data(cfg, source, split or "", tokenizer)
    if not data.input_ids:
        raise ConfigError(f"no validation example fits --max-length {cfg.max_length}")
    data = fold_for(cfg, model, data)
    label_tokens = sum(data.label_tokens(i) for i in range(len(data.input_ids)))
    say(f"validation data {source}{f' [{split}]' if split else ''}: {len(data.input_ids)} examples, {num_dropped} "
        f"dropped (longer than --max-length {cfg.max_length}), {label_tokens} label tokens")
    return data


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
    """Trainer.create_optimizer_and_scheduler: (optimizer, scheduler, the optimizer's resolved name). After
    the model is final (peft-wrapped): the optimizer holds references to the trainable tensors."""
    name, note = resolve_optimizer_name(cfg.optim, device)
    if note:
        say(note)
    optimizer = create_optimizer(model, name=name, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = create_scheduler(optimizer, kind=cfg.scheduler, warmup_steps=cfg.warmup_steps(total_steps),
                                 total_steps=total_steps)
    return optimizer, scheduler, name
