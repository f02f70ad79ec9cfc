"""One typed configuration for a training run; `train.py`'s command line is generated from it.

Every field's docstring (the string literal under it) is its `--help` text, so the documentation
lives in one place. Field `batch_size` becomes the flag `--batch-size`; booleans get `--x/--no-x`.
The flag spellings are a contract: scripts outside the project call them.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import json
import math
import typing
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Literal, Optional

from data.sqlbench import BENCHMARK_SPLITS, SPLIT_ALIASES
from engine.device import COMPUTE_DTYPES
from engine.optim import OPTIMIZERS
from engine.schedule import SCHEDULERS
from models.bundled import BUNDLED_NAME
from models.load import DEFAULT_SEED, PEFT_MODES
from models.quantize import QUANT_TYPES


def _is_split(name: str) -> bool:
    return name in BENCHMARK_SPLITS or name in SPLIT_ALIASES


def _is_random_ids(source: str) -> bool:
    return source.startswith(("dummy:", "synthetic:"))


REPORT_TO = ("none", "tensorboard")  # train.py --report-to


class ConfigError(ValueError):
    """A bad value on the command line or in a config: printed as one line, exit status 2."""


# What --resume may change: how far the run goes, how it is logged, saved and evaluated, and the speed and
# memory switches (each keeps the loss of the plain loop). Everything else defines what is trained.
RESUME_MAY_CHANGE = {"max_steps", "epochs", "log_every", "save_every", "dist_timeout", "memory_snapshot", "eval",
                     "eval_split", "eval_limit", "val_data", "val_split", "eval_every", "eval_ex", "save_best",
                     "save_total_limit", "report_to", "fused_lora", "compile_layers", "cuda_graphs", "chunked_loss",
                     "offload_embeddings", "offload_activations", "mlp_chunk", "fused_rmsnorm", "expandable_segments",
                     "cublas_workspace_mib", "memory_cap_gib", "out", "resume"}


@dataclass
class TrainConfig:
    # ---- model ------------------------------------------------------------------------------
    model: str = BUNDLED_NAME
    """Model spec: smollm2-135m-instruct (the bundled SmolLM2-135M-Instruct), `arch:<preset>` for a
    random-init model from a built-in architecture (tiny, smollm2-135m, llama-3.2-1b, qwen2.5-0.5b,
    polyglot-ko-1.3b, hyperclovax-seed-1.5b, phi-3-mini, llama-3.1-8b), a local HF directory, or a hub id
    already in the local Hugging Face cache."""
    peft: Literal[PEFT_MODES] = "qlora"
    """qlora: 4-bit frozen base + LoRA; lora: base in the compute dtype + LoRA; full: every weight trained."""
    quant: Literal[QUANT_TYPES] = "nf4"
    """4-bit data type for qlora (NF4 suits normally distributed weights; the QLoRA paper's choice)."""
    double_quant: bool = True
    """Quantise the 4-bit blocks' absmax constants too (8-bit, blocks of 256): ~0.37 bits/param saved."""
    compute_dtype: Literal[("auto", *COMPUTE_DTYPES)] = "auto"
    """dtype of activations and frozen float weights. auto: bf16 on a CUDA GPU that supports it, else fp32
    (bf16 matmuls are emulated and ~20x slower on AVX2 CPUs)."""
    lora_r: int = 16
    """LoRA rank r: each adapted W (out x in) gets B (out x r) @ A (r x in)."""
    lora_alpha: int = 32
    """LoRA scale numerator: the update is (alpha / r) * B @ A."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input path (0 keeps runs bit-reproducible across --resume)."""
    target_modules: Optional[list[str]] = None
    """Linear layers to adapt, by module name, e.g. q_proj v_proj (default: every linear layer of the decoder)."""
    device: str = "auto"
    """auto (cuda if available, else cpu), cpu, cuda, or cuda:N."""

    # ---- data -------------------------------------------------------------------------------
    data: str = "bundled"
    """Training data: `bundled` (generated text-to-SQL benchmark), a Spider CSV or JSON file (schema DDL
    from tables.json / the database folder when present), a BIRD train.json (train_databases/ beside it;
    its evidence goes into the prompt), a Spider or BIRD directory (with --split), a chat / alpaca /
    prompt-completion JSONL file,
    `dummy:<length>` (random ids, every position labelled) or `synthetic:<examples>` (random ids shaped
    like text-to-SQL examples: prompt 120-260 tokens, answer 20-70, as in the earlier bundled corpus)."""
    split: str = "train"
    """Split of the bundled benchmark to train on (train; test, heldout_db, heldout_domain are for evaluation),
    or the <split>.json of a Spider or BIRD directory."""
    db_dir: Optional[str] = None
    """Spider data: the directory of <db_id>/<db_id>.sqlite whose CREATE statements go into each prompt, as
    for `eval.evaluate --db-dir`, so training and evaluation prompts are the same; --eval and --eval-ex
    execute queries there (default: database/ beside the data file)."""
    tables: Optional[str] = None
    """Spider data: tables.json, the schema source for a db_id without a SQLite file, as for `eval.evaluate
    --tables` (default: tables.json beside the data file)."""
    schema: bool = True
    """Text-to-SQL prompts carry the schema DDL. Spider data whose schema is not found (no --db-dir,
    --tables, nor database/ or tables.json beside the file) is an error; --no-schema trains on the
    question alone (seed 000's prompt), and `eval.evaluate --adapter` follows the run's choice."""
    sample_rows: int = 0
    """Show this many rows of each table as a comment under its CREATE TABLE in text-to-SQL prompts (as
    CodeS and Qwen's text-to-SQL prompts do); training and --eval prompts alike; 0: none. Longer prompts:
    raise --max-length with it."""
    max_length: int = 512
    """Longest example in tokens. Longer examples are dropped and counted, never truncated (a cut answer
    would teach the model to stop mid-query)."""
    group_by_length: bool = False
    """Batch examples of similar length together (less padding, less compute per step). In text-to-SQL the schema
    sets the length, so length groups lean towards one database's questions: the batches mix 32-token length
    buckets in shuffled order; the README gives held-out accuracy with and without it."""
    packing: bool = False
    """Concatenate examples into rows of up to --max-length tokens (data/batching.py): almost no padding;
    positions restart at each example and attention never crosses from one example into another."""

    # ---- optimisation -----------------------------------------------------------------------
    batch_size: int = 1
    """Micro-batch: sequences per forward/backward pass (1 with --accum 4 is seed 000's set-up; on a GPU,
    larger micro-batches are much faster: e.g. --batch-size 16 --accum 1)."""
    accum: int = 1
    """Gradient accumulation: micro-batches per optimizer step (effective batch = batch_size x accum)."""
    ckpt: bool = False
    """Gradient checkpointing: keep only each decoder layer's input and recompute the layer in backward."""
    max_steps: int = 30
    """Optimizer steps to run; -1 runs --epochs full epochs instead. 30 steps of --accum 4 --ckpt took 10.5
    min on a 2-core CPU (the bundled model's conversion included); on a GPU use e.g. --max-steps 600 or
    --max-steps -1 --epochs 1."""
    epochs: int = 1
    """Passes over the data when --max-steps is -1."""
    lr: float = 2e-4
    """Peak learning rate (the QLoRA paper's 2e-4)."""
    warmup: float = 0.03
    """Warmup length: below 1 a fraction of the optimizer steps (rounded up), from 1 a number of steps."""
    scheduler: Literal[SCHEDULERS] = "linear"
    """Learning-rate decay after warmup."""
    weight_decay: float = 0.01
    """Decoupled weight decay (AdamW), not applied to biases and norm weights."""
    max_grad_norm: float = 1.0
    """Clip the global gradient L2 norm to this value; 0 disables clipping (the norm is still reported)."""
    optim: Literal[OPTIMIZERS] = "paged_adamw_8bit"
    """Optimizer. paged_*: bitsandbytes, state in CUDA unified memory (CUDA only: on CPU the unpaged
    variant is used and the choice is printed); *_8bit: blockwise 8-bit state; adamw: torch.optim.AdamW."""
    loss_on_labels_only: bool = True
    """Apply the LM head and the loss only where the label is not -100 (the answer tokens): the vocab-wide
    logits of the prompt are never built. --no-loss-on-labels-only builds logits everywhere like HF models."""

    # ---- validation during training -----------------------------------------------------------
    val_data: Optional[str] = None
    """Validation data, in any format --data takes; Spider data reads its schema as the training data does
    (--db-dir, --tables, --no-schema) (default: none; with --val-split alone, a split of --data)."""
    val_split: Optional[str] = None
    """Split of the validation data: of the bundled benchmark (test, heldout) or the file of a Spider-layout
    directory (dev for dev.json); without --val-data, a split of --data (default: none)."""
    eval_every: int = 0
    """Validation every N optimizer steps and at the last step (Trainer: eval_steps): the token-weighted mean
    loss over every label token of the validation data, the training loss's normalisation, goes into that
    step's record as val_loss; 0: at the last step only, when there is validation data."""
    eval_ex: int = 0
    """At each validation, also text-to-SQL execution accuracy (val_ex) on this many validation examples,
    spread evenly, generated greedily by the model as it trains; 0: off."""
    save_best: bool = False
    """Write checkpoint-N/ at each validation whose val_loss is the lowest so far, and never delete the best
    one (Trainer: metric_for_best_model eval_loss, best_model_checkpoint)."""
    save_total_limit: Optional[int] = None
    """Keep at most N checkpoint-N/ directories: after each save the oldest are deleted, never the latest nor
    the best one (Trainer: save_total_limit) (default: keep all)."""
    report_to: Literal[REPORT_TO] = "none"
    """tensorboard: also write every number of metrics.jsonl (loss, lr, grad norm, tokens/s, each memory
    component, validation) as TensorBoard scalars in <out>/tensorboard (Trainer: report_to)."""

    # ---- evaluation before and after training ----------------------------------------------------
    eval: bool = False
    """Measure text-to-SQL execution accuracy before and after training (greedy decoding, results executed
    on read-only SQLite) on the validation data (--val-data / --val-split) when there is some, else on the
    bundled benchmark's --eval-split, and print both tables and the gain; reports in <out>/eval-base and
    <out>/eval-final."""
    eval_split: str = "heldout_db"
    """Bundled benchmark split for --eval without validation data: heldout_db (databases never trained on, of
    the training domains), heldout_domain (domains never trained on; `heldout` is another name for it) or
    test (new questions on the training databases)."""
    eval_limit: Optional[int] = None
    """Evaluate only this many examples, spread evenly over the split (default: all of them)."""

    fused_lora: bool = False
    """Run each LoRA layer as one autograd node (engine/features/fused_lora.py): peft's arithmetic without its extra
    [tokens, out] passes, and without the fp32 copy of each layer's input kept for backward in bf16 models."""
    compile_layers: bool = False
    """torch.compile one decoder layer and reuse it for every layer (engine/features/compile.py), for training only;
    the first step compiles (~15 s for SmolLM2 on a 2-core CPU)."""
    cuda_graphs: bool = False
    """CUDA only: record each micro-batch's forward + loss + backward as a CUDA graph, once per padded length
    (a multiple of 32 tokens), and replay it (engine/features/cuda_graphs.py): one launch instead of thousands of
    small kernels, which the CPU cannot issue as fast as the GPU runs them."""
    chunked_loss: bool = False
    """Compute the label-only LM head and loss over vocabulary chunks of 4,096 rows, recomputed in backward
    (engine/features/chunked_loss.py): the [label tokens, vocab] fp32 logits and their gradients never exist whole."""
    offload_embeddings: bool = False
    """CUDA only: keep the frozen embedding and LM head in pinned host memory while training (engine/features/offload.py):
    input rows are gathered on the host, the LM head streams its weight in chunks (implies --chunked-loss)."""
    mlp_chunk: int = 0
    """Run each decoder layer's MLP over slices of this many positions, each slice checkpointed
    (engine/features/chunked_mlp.py): at long sequences the MLP's [tokens, intermediate] tensors bound the
    peak; sliced, one slice's are alive at a time, for one more MLP forward per step. 0: off."""
    fused_rmsnorm: bool = False
    """Run each RMSNorm as one autograd node (engine/features/fused_rmsnorm.py) that keeps its input and an fp32
    number per row instead of an fp32 copy of the input, with its backward in slices of 16,384 rows: at long
    sequences the norms' fp32 gradients otherwise bound the peak once the MLP is sliced."""
    offload_activations: bool = False
    """CUDA only: keep the activations saved for backward (with --ckpt: each decoder layer's input) in pinned host
    memory, copied on side streams that overlap compute and brought back one layer ahead of backward
    (engine/features/offload_activations.py): long sequences then hold about one layer's activations on the GPU."""
    expandable_segments: bool = False
    """CUDA only: PyTorch's allocator grows one mapped segment instead of caching fixed blocks
    (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True), so changing shapes fragment less: reserved stays
    near allocated."""
    cublas_workspace_mib: Optional[int] = None
    """CUDA only: size of each cuBLAS workspace in MiB (CUBLAS_WORKSPACE_CONFIG). PyTorch keeps one per
    (cuBLAS handle, stream), and backward runs on a thread with its own handle: two or more workspaces
    (PyTorch makes them 32 MiB each on Hopper). Smaller ones leave cuBLAS fewer split-K choices
    (default: PyTorch's size)."""
    memory_cap_gib: Optional[float] = None
    """CUDA only: cap this process's CUDA allocator at this many GiB (torch.cuda.set_per_process_memory_fraction),
    to find out on a large GPU what fits on a smaller card: past it, out of memory. The CUDA context (~1 GiB) is
    outside the cap, so for a card of G GiB give G minus that (default: no cap)."""

    # ---- run --------------------------------------------------------------------------------
    seed: int = DEFAULT_SEED
    """Seed for data order, LoRA initialisation and random-init presets (seed 000 uses 1234)."""
    out: Optional[str] = None
    """Output directory: config.json, metrics.jsonl, adapter/, checkpoint-N/, ... (default: runs/<timestamp>)."""
    log_every: int = 1
    """Print a log line every N optimizer steps (metrics.jsonl always gets every step)."""
    save_every: int = 0
    """Write checkpoint-N/ every N optimizer steps (0: only the final adapter)."""
    resume: Optional[str] = None
    """Resume from a checkpoint-N directory, or from the latest checkpoint of a run directory (default: a
    new run)."""
    dist_timeout: float = 300.0
    """Under torchrun: seconds a collective waits for the other ranks before the run fails with an error
    (a crashed or hung rank must not leave the others waiting forever)."""
    memory_snapshot: Optional[str] = None
    """CUDA only: record the allocator's history over the first 3 optimizer steps and write a snapshot
    to this path (a .pickle that https://pytorch.org/memory_viz opens) (default: off)."""

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # a choice field (Literal) holds one of its choices
            choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else None
            need(choices is None or getattr(self, f.name) in choices,
                 f"--{f.name.replace('_', '-')} must be one of {', '.join(choices or ())}, got {getattr(self, f.name)!r}")
        need(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        need(self.accum >= 1, f"--accum must be >= 1, got {self.accum}")
        need(self.max_steps == -1 or self.max_steps >= 1, f"--max-steps must be >= 1 or -1, got {self.max_steps}")
        need(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        need(self.max_length >= 16, f"--max-length must be >= 16, got {self.max_length}")
        need(self.sample_rows >= 0, f"--sample-rows must be >= 0, got {self.sample_rows}")
        need(not self.sample_rows or not _is_random_ids(self.data),
             f"--sample-rows shows database rows in text-to-SQL prompts: {self.data} has none")
        need(math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}")
        need(self.warmup >= 0 and (self.warmup < 1 or self.warmup == int(self.warmup)),
             f"--warmup must be a fraction in [0, 1) or a whole number of steps, got {self.warmup}")
        need(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        need(self.max_grad_norm >= 0, f"--max-grad-norm must be >= 0, got {self.max_grad_norm}")
        need(self.lora_r >= 1, f"--lora-r must be >= 1, got {self.lora_r}")
        need(self.lora_alpha > 0, f"--lora-alpha must be > 0, got {self.lora_alpha}")
        need(0 <= self.lora_dropout < 1, f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        need(not self.cuda_graphs or self.lora_dropout == 0,
             "--cuda-graphs replays fixed kernels: it needs --lora-dropout 0 (nothing random in the model)")
        need(not (self.offload_activations and self.cuda_graphs),
             "--offload-activations runs in autograd's saved-tensor hooks, which CUDA graph replays do not call: drop one")
        need(not (self.packing and self.cuda_graphs),
             "--packing needs position ids in the forward, which the recorded CUDA graphs do not take: drop one")
        for flag, on in (("--chunked-loss", self.chunked_loss), ("--offload-embeddings", self.offload_embeddings)):
            need(not on or (self.loss_on_labels_only and self.peft != "full"),
                 f"{flag} needs the label-only loss and a frozen LM head (--loss-on-labels-only, --peft qlora or lora)")
        need(self.mlp_chunk >= 0, f"--mlp-chunk must be >= 0, got {self.mlp_chunk}")
        need(self.cublas_workspace_mib is None or self.cublas_workspace_mib >= 1,
             f"--cublas-workspace-mib must be >= 1, got {self.cublas_workspace_mib}")
        need(self.memory_cap_gib is None or (math.isfinite(self.memory_cap_gib) and self.memory_cap_gib > 0),
             f"--memory-cap-gib must be a positive number of GiB, got {self.memory_cap_gib}")
        need(not (self.memory_snapshot and self.cuda_graphs),
             "--memory-snapshot cannot record the allocator's history while CUDA graphs are captured "
             "(and replays allocate nothing): drop one of them")
        need(self.log_every >= 1, f"--log-every must be >= 1, got {self.log_every}")
        need(self.save_every >= 0, f"--save-every must be >= 0, got {self.save_every}")
        need(self.eval_limit is None or self.eval_limit >= 1, f"--eval-limit must be >= 1, got {self.eval_limit}")
        need(not self.eval or _is_split(self.eval_split),
             f"--eval-split {self.eval_split!r} is not a split of the bundled benchmark: use one of "
             f"{', '.join(BENCHMARK_SPLITS + tuple(SPLIT_ALIASES))}")
        need(self.dist_timeout > 0, f"--dist-timeout must be > 0, got {self.dist_timeout}")
        need(self.eval_every >= 0, f"--eval-every must be >= 0, got {self.eval_every}")
        need(self.eval_ex >= 0, f"--eval-ex must be >= 0, got {self.eval_ex}")
        need(self.save_total_limit is None or self.save_total_limit >= 1,
             f"--save-total-limit must be >= 1, got {self.save_total_limit}")
        if self.resume is None:  # resumed: checked once the run's saved settings are in (train.py)
            self.check_watching()
        need(self.val_data is not None or self.val_split is None or self.val_split != self.split
             or self.data != "bundled", f"--val-split {self.val_split} is the split trained on (--split): "
             "validation needs examples the model does not train on")
        need(not (self.eval_ex and self.offload_embeddings), "--eval-ex generates with the LM head on the device: "
             "it cannot run beside --offload-embeddings (validation loss can: drop --eval-ex)")
        need(self.data != "bundled" or not (self.db_dir or self.tables),
             "--db-dir and --tables apply to Spider files; the bundled benchmark has its own")
        need(self.schema or not self.tables, "--no-schema leaves the schema out of the prompts: --tables would not be read")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def check_files(self) -> None:
        """The data files named exist: checked when a run starts, before its directory and its model (a
        configuration can be parsed and inspected without them)."""
        def generated(source: str) -> bool:
            return source == "bundled" or _is_random_ids(source)

        if not generated(self.data):
            path = Path(self.data) / f"{self.split}.json" if Path(self.data).is_dir() else Path(self.data)
            if not path.is_file():
                raise ConfigError(f"data file not found: {path}")
        if self.val_data and not generated(self.val_data) and not Path(self.val_data).exists():
            raise ConfigError(f"data file not found: {self.val_data} (--val-data)")

    def check_watching(self) -> None:
        """What validation and checkpointing need from the rest of the configuration."""
        for flag, on in (("--eval-every N", self.eval_every), ("--eval-ex K", self.eval_ex), ("--save-best", self.save_best)):
            if on and self.validation_source is None:
                raise ConfigError(f"{flag} needs validation data: --val-data FILE, or --val-split SPLIT of --data")
        if self.save_total_limit is not None and not (self.save_every or self.save_best):
            raise ConfigError("--save-total-limit N limits the checkpoints that --save-every or --save-best write: "
                              "give one of them")

    # ---- derived numbers --------------------------------------------------------------------
    @property
    def validation_source(self) -> tuple[str, str | None] | None:
        """(data, split) of the validation data: --val-data (and --val-split, for a bundled or Spider
        directory), or --val-split of --data; None without either."""
        if self.val_data is not None:
            return self.val_data, self.val_split
        return (self.data, self.val_split) if self.val_split is not None else None

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step."""
        return self.batch_size * self.accum

    def warmup_steps(self, total_steps: int) -> int:
        """HF Trainer's rule: a ratio is rounded up (`math.ceil(total * ratio)`)."""
        return math.ceil(total_steps * self.warmup) if self.warmup < 1 else int(self.warmup)

    def to_dict(self) -> dict:
        return asdict(self)


def read_settings(file: Path) -> dict:
    """A run's config.json as TrainConfig fields; one line when it is not one (broken JSON, not an
    object, or keys that are not TrainConfig fields: a config.json of some other program or model).
    The `resolved` record beside the settings (what the run resolved them to) is not a setting."""
    try:
        settings = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{file} is not a train.py config ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{file} is not a train.py config: it holds a JSON {type(settings).__name__}, "
                          "not an object of settings")
    settings.pop(RESOLVED_KEY, None)
    unknown = sorted(set(settings) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"{file} is not a train.py config: unknown keys {', '.join(unknown[:5])}"
                          + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
    return settings


# ---- --config FILE: settings from YAML or JSON -------------------------------------------------

RESOLVED_KEY = "resolved"  # a run's config.json: what the settings resolved to on its machine (train.py)
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def read_config_file(file: str | Path, cls: type = TrainConfig) -> dict:
    """--config FILE: settings keyed by field name (`batch_size: 4`, as in config.json), checked and
    typed like the flags they stand for; one line naming the file and the key for anything else. A
    run's config.json is one: its `resolved` record is skipped. Relative paths inside it are read from
    the current directory, as on the command line."""
    path = Path(file)
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError(f"--config {path}: expected a .yaml, .yml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    try:
        settings = json.loads(text) if path.suffix.lower() == ".json" else _yaml(text)
    except ValueError as e:  # the parser's own message (it names the line), on one line
        raise ConfigError(f"--config {path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                          f"({' '.join(str(e).split())[:160]})") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(f"--config {path}: expected a mapping of settings (key: value), got a "
                          f"{type(settings).__name__}")
    settings.pop(RESOLVED_KEY, None)
    names = {f.name for f in fields(cls)}
    for key in settings:
        if key not in names:
            close = difflib.get_close_matches(str(key).replace("-", "_"), sorted(names), n=1)
            raise ConfigError(f"--config {path}: unknown key {key!r}" + (f" (did you mean {close[0]}?)" if close else
                                                                          " (keys are train.py's options, e.g. batch_size)"))
    hints = typing.get_type_hints(cls)
    return {key: _typed(value, hints[key], f"--config {path}: {key}") for key, value in settings.items()}


def _yaml(text: str):
    import yaml  # only for --config FILE.yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:  # its message names the line; the stream's name is noise
        raise ValueError(str(e).replace('in "<unicode string>", ', "")) from None


def _typed(value, hint, where: str):
    """`value` as the field's type: a number for a float (YAML reads 2e-4 as a string, so a numeric
    string is taken), a whole number for an int, true/false for a flag, a list of strings for a list."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        ok, kind = isinstance(value, bool), "true or false"
    elif hint is int:
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif hint is float:
        kind = "a number"
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(value, str):
            try:
                value, ok = float(value), True
            except ValueError:
                ok = False
        value = float(value) if ok else value
    elif origin is list:
        ok, kind = isinstance(value, list) and all(isinstance(v, args[0]) for v in value), "a list of strings"
    else:  # str, and Literal choices (which __post_init__ checks against the choices)
        ok, kind = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"{where} must be {kind}, got {json.dumps(value)[:60]}")
    return value


# ---- CLI generated from the dataclass ---------------------------------------------------------

def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings: the string literal right below each annotated field in the class body."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def help_text(doc: str, default) -> str:
    """A field's docstring and its default, once: a docstring that states its own `(default: ...)` (what
    None means, for one) keeps it; booleans read on/off. `%` is escaped for argparse's formatting."""
    if "(default:" not in doc:
        shown = (("on" if default else "off") if isinstance(default, bool)
                 else " ".join(map(str, default)) if isinstance(default, list) else default)
        doc = f"{doc} (default: {shown})"
    return doc.replace("%", "%%")


def _add_field(parser: argparse.ArgumentParser, f, hint, doc: str) -> None:
    flag = "--" + f.name.replace("_", "-")
    default = f.default if f.default is not MISSING else None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union and type(None) in args:  # Optional[X] -> X, default None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        action = parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
    elif origin is Literal:
        action = parser.add_argument(flag, choices=list(args), default=default)
    elif origin is list:
        action = parser.add_argument(flag, nargs="+", type=args[0], default=default)
    else:
        action = parser.add_argument(flag, type=hint, default=default)
    # Set after creation: some Python versions' BooleanOptionalAction append a default of their own.
    action.help = help_text(doc, default)


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage + error and exits 2; keep the exit status, print one clear line."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser(cls: type = TrainConfig, *, config_file: bool = False, **kwargs) -> argparse.ArgumentParser:
    """A flag per field; with `config_file`, --config FILE first (it is no field: a file names settings)."""
    parser = _OneLineErrorParser(**kwargs)
    if config_file:
        parser.add_argument("--config", metavar="FILE", default=None, help=help_text(
            "YAML or JSON file of settings keyed by option name (batch_size: 4, as a run's config.json, which "
            "is one); flags given on the command line override it; recipes in docs/recipes/", "none"))
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in fields(cls):
        _add_field(parser, f, hints[f.name], docs.get(f.name, ""))
    return parser


def parse_config(argv: list[str] | None = None, cls: type = TrainConfig, **kwargs):
    """Command line (and --config FILE) -> config. The file's settings become the flags' defaults, so a
    flag given on the command line wins (HF's `HfArgumentParser` reads a file instead of the command
    line; here both combine). Unknown flags and bad choices exit 2 with one line (argparse); bad values
    and a bad file raise ConfigError (the caller prints it and exits 2)."""
    parser = build_parser(cls, config_file=True, **kwargs)
    config_file = parser.parse_known_args(argv)[0].config  # the same parser: --conf abbreviates alike
    if config_file:
        parser.set_defaults(**read_config_file(config_file, cls))
    settings = vars(parser.parse_args(argv))
    settings.pop("config")
    return cls(**settings)
