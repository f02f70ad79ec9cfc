"""Side by side: our engine against HF Trainer on the same model, data, LoRA, optimizer and batch shape.

    python -m engine.tools.bench --model smollm2-135m-instruct --data synthetic --batch-size 4 --accum 4 --ckpt \\
        --steps 10 --warmup-steps 2 --systems hf ours
    python -m engine.tools.bench ... --systems hf "ours --no-loss-on-labels-only" ours "ours --group-by-length"
    python -m engine.tools.bench ... --ladder      # hf, then ours with one engine switch more per row
    python -m engine.tools.bench --model arch:llama-3.1-8b --data dummy --max-length 81920 --batch-size 1 \
        --accum 1 --ckpt --steps 1 --warmup-steps 0 --memory-cap-gib 24 --systems hf-kbit "ours --offload-activations"

Each system runs in its own Python process, one after the other. A fresh process is the only clean
slate for what the table compares: the CUDA caching allocator keeps its segments (reserved memory)
until the process ends, `empty_cache` cannot return blocks that are fragmented or held by the cuBLAS
workspace or by bitsandbytes' paged (unified-memory) optimizer state, torch.compile keeps its caches,
and on a CPU the process's peak RSS can only be read per process.

In each process: the model is built by our `load_model` (same spec and seed: the same weights and LoRA
init), the data is generated or tokenised identically, then
  hf    Trainer(TrainingArguments(per_device_train_batch_size, gradient_accumulation_steps, gradient
        checkpointing with use_reentrant=False, paged_adamw_8bit on CUDA / adamw_bnb_8bit on CPU, bf16
        on CUDA, lr 2e-4, max_grad_norm 1, logging_steps 1, ...)), fed the examples in our loop's order;
  hf-kbit  the same after peft's `prepare_model_for_kbit_training` on the quantised base, the seeds'
        recipe (002-004), which casts the frozen bf16 weights (embeddings, norms, LM head) to fp32;
  ours  engine.loop.train, the real loop, with the TrainConfig that `train.py <flags>` would build.
The clock starts at the end of optimizer step `--warmup-steps` (first steps allocate the optimizer
state, warm up allocators, compile; 0: at the start of training) and stops at the end of the last step,
after a device sync. `--memory-cap-gib` caps each process's CUDA allocator
(`torch.cuda.set_per_process_memory_fraction`) to emulate a smaller card: what does not fit fails
with an out-of-memory error, a row of its own.
tokens/s counts non-pad tokens (prompt + answer).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

from data.files import atomic_write_json, atomic_write_text
from engine.config import TrainConfig, _OneLineErrorParser
from engine.config import build_parser as build_train_parser
from engine.memory import format_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_NAMES = ("hf", "hf-kbit", "ours")
H100_SXM_BF16_DENSE_TFLOPS = 989.0
BENCH_LR, BENCH_WEIGHT_DECAY, BENCH_MAX_GRAD_NORM = 2e-4, 0.01, 1.0
# TrainConfig fields the benchmark sets for every system alike: --ours-flags may not change them,
# or "ours" would train another model, on other data or with another batch shape than "hf".
SHARED_FIELDS = ("model", "peft", "quant", "double_quant", "compute_dtype", "lora_r", "lora_alpha", "lora_dropout",
                 "target_modules", "device", "data", "split", "sample_rows", "max_length", "batch_size", "accum", "ckpt",
                 "max_steps", "epochs", "lr", "warmup", "scheduler", "weight_decay", "max_grad_norm", "optim",
                 "seed", "out", "resume", "save_every")
# Engine switches the benchmark records per row (TrainConfig fields): run_ours applies them through train.py's
# own set-up (engine/recipe.py), so every switch acts exactly where and when it does in a training run.
SPEED_SWITCHES = {"fused_lora": "--fused-lora", "compile_layers": "--compile-layers", "cuda_graphs": "--cuda-graphs",
                  "chunked_loss": "--chunked-loss", "offload_embeddings": "--offload-embeddings",
                  "expandable_segments": "--expandable-segments", "cublas_workspace_mib": "--cublas-workspace-mib"}
# --ladder: each row adds one switch to the row above it (the first row is the closest to HF: logits
# everywhere); with --ours-flags in front of each. The speed switches first, then the memory ones.
# --cuda-graphs needs CUDA: the CPU ladder stops before it.
_SPEED = "--group-by-length --fused-lora --chunked-loss --cuda-graphs"
LADDER = ("--no-loss-on-labels-only", "", "--group-by-length", "--group-by-length --fused-lora",
          "--group-by-length --fused-lora --chunked-loss", _SPEED, f"{_SPEED} --expandable-segments",
          f"{_SPEED} --expandable-segments --offload-embeddings",
          f"{_SPEED} --expandable-segments --offload-embeddings --cublas-workspace-mib 8")
MFU_FORMULA = ("MFU = (6 * N_nonembed * tokens + 12 * L * H * d_head * sum(T_i^2)) / time / peak  "
               "[N_nonembed: parameters without embeddings/lm_head (4-bit weights counted unpacked, LoRA "
               "included); L layers, H heads of d_head; T_i each example's length; model FLOPs: "
               "checkpointing recompute and label-only savings not credited]")


class BenchError(ValueError):
    """Bad benchmark arguments: printed as one line, exit status 2."""


# ---- arguments ----------------------------------------------------------------------------------

@dataclasses.dataclass
class BenchArgs:
    model: str = "smollm2-135m-instruct"
    data: str = "synthetic"
    split: str = "train"
    num_examples: int = 1024
    max_length: int = 512
    batch_size: int = 4
    accum: int = 4
    ckpt: bool = False
    steps: int = 10
    warmup_steps: int = 2
    memory_cap_gib: float | None = None
    device: str = "auto"
    seed: int = 1234
    systems: list[str] = dataclasses.field(default_factory=lambda: ["hf", "ours"])
    ours_flags: str = ""
    repeats: int = 1
    peak_tflops: float = H100_SXM_BF16_DENSE_TFLOPS
    out: str | None = None

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.steps


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineErrorParser(prog="python -m engine.tools.bench", description=" ".join(__doc__.split("\n\n")[0].split()))
    d = BenchArgs()
    p.add_argument("--model", default=d.model,
                   help=f"model spec, as train.py --model, e.g. arch:llama-3.2-1b (default: {d.model})")
    p.add_argument("--data", choices=("synthetic", "bundled", "dummy"), default=d.data,
                   help="synthetic: seeded text-to-SQL-shaped ids (data/synthetic.py); bundled: the generated "
                        "benchmark; dummy: random sequences of exactly --max-length tokens, every position "
                        f"labelled (data/dummy.py) (default: {d.data})")
    p.add_argument("--split", default=d.split, help=f"split of the bundled benchmark (default: {d.split})")
    p.add_argument("--num-examples", type=int, default=d.num_examples,
                   help=f"synthetic examples to generate (default: {d.num_examples})")
    p.add_argument("--max-length", type=int, default=d.max_length,
                   help=f"bundled and synthetic: drop longer examples, and the row length of --packing; dummy: the "
                        f"sequence length (default: {d.max_length})")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"micro-batch of both systems (default: {d.batch_size})")
    p.add_argument("--accum", type=int, default=d.accum,
                   help=f"gradient accumulation of both systems (default: {d.accum})")
    p.add_argument("--ckpt", action=argparse.BooleanOptionalAction, default=d.ckpt,
                   help="gradient checkpointing (default: off)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"timed optimizer steps (default: {d.steps})")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help=f"untimed optimizer steps first; 0 times from the first step (default: {d.warmup_steps})")
    p.add_argument("--memory-cap-gib", type=float, default=d.memory_cap_gib,
                   help="CUDA: cap each system's allocator at this many GiB, as a smaller card (default: none)")
    p.add_argument("--device", default=d.device, help=f"auto, cpu, cuda or cuda:N (default: {d.device})")
    p.add_argument("--seed", type=int, default=d.seed,
                   help=f"seed of the model, LoRA and data of every system (default: {d.seed})")
    p.add_argument("--systems", nargs="+", default=None,
                   help='hf, hf-kbit, ours, or "ours <train.py flags>" for a variant of ours (default: hf ours)')
    p.add_argument("--ladder", action="store_true", help="systems: hf, then " + " | ".join(
        f"ours {flags}".strip() for flags in LADDER) + " (default: off)")
    p.add_argument("--ours-flags", default="",
                   help='train.py flags for every ours system, e.g. "--group-by-length" (default: none)')
    p.add_argument("--repeats", type=int, default=d.repeats,
                   help="run the system list this many times, interleaved; the table shows each system's fastest "
                        f"run (default: {d.repeats})")
    p.add_argument("--peak-tflops", type=float, default=d.peak_tflops,
                   help="device peak dense TFLOP/s for MFU (default: H100 SXM bf16, 989)")
    p.add_argument("--out", default=None, help="directory for bench.json and bench.md (default: runs/bench-<time>)")
    p.add_argument("--worker", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str] | None) -> tuple[BenchArgs, list[str] | None]:
    from engine.device import resolve_device

    ns = build_parser().parse_args(argv)
    if ns.worker:
        return BenchArgs(), ns.worker
    systems = ns.systems or ["hf", "ours"]
    if ns.ladder:
        if ns.systems:
            raise BenchError("--ladder chooses the systems itself: give either --ladder or --systems")
        on_cpu = resolve_device(ns.device).type == "cpu"
        systems = ["hf"] + [f"ours {flags}".strip() for flags in LADDER if not (on_cpu and "--cuda-graphs" in flags)]
    args = BenchArgs(**{k: v for k, v in vars(ns).items() if k not in ("worker", "ladder", "systems")}, systems=systems)
    for name in ("batch_size", "accum", "steps", "num_examples", "repeats"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup_steps < 0:
        raise BenchError(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    if args.memory_cap_gib is not None and not (math.isfinite(args.memory_cap_gib) and args.memory_cap_gib > 0):
        raise BenchError(f"--memory-cap-gib must be > 0, got {args.memory_cap_gib}")
    if args.peak_tflops <= 0:
        raise BenchError(f"--peak-tflops must be > 0, got {args.peak_tflops}")
    from models.load import ARCH_PREFIX, is_random_init
    from models.presets import PRESETS

    device = resolve_device(args.device)  # no CUDA here: one line now, not one failed process per system
    if args.memory_cap_gib is not None and device.type != "cuda":
        raise BenchError("--memory-cap-gib caps the CUDA allocator: it needs a CUDA device")
    if is_random_init(args.model) and args.model[len(ARCH_PREFIX):] not in PRESETS:
        raise BenchError(f"unknown architecture preset in --model {args.model!r}; known: "
                         f"{', '.join(ARCH_PREFIX + name for name in PRESETS)}")
    for system in systems:
        if split_system(system)[0] == "ours":
            ours_config(args, system)  # a bad flag fails here, before any process starts
    if args.data == "synthetic":
        require_examples(args.num_examples, args)
    elif args.data == "dummy":
        from data.dummy import DEFAULT_NUM_EXAMPLES

        require_examples(DEFAULT_NUM_EXAMPLES, args)
    return args, None


def split_system(system: str) -> tuple[str, list[str]]:
    """"ours --group-by-length" -> ("ours", ["--group-by-length"])."""
    words = shlex.split(system)
    if not words or words[0] not in SYSTEM_NAMES:
        raise BenchError(f"unknown system {system!r}: use hf, hf-kbit, ours, or \"ours <train.py flags>\"")
    if words[0].startswith("hf") and len(words) > 1:
        raise BenchError(f"system {system!r}: {words[0]} takes no flags (it is a Trainer set-up)")
    return words[0], words[1:]


def ours_config(args: BenchArgs, system: str) -> tuple[TrainConfig, dict[str, bool]]:
    """(TrainConfig, speed switches) for an "ours ..." system: the bench's shared settings, then
    --ours-flags, then the system's own flags, parsed by train.py's own parser."""
    rest = shlex.split(args.ours_flags) + split_system(system)[1]
    data = {"synthetic": ["--data", f"synthetic:{args.num_examples}", "--max-length", str(args.max_length)],
            "dummy": ["--data", f"dummy:{args.max_length}", "--max-length", str(args.max_length)],
            "bundled": ["--data", "bundled", "--split", args.split, "--max-length", str(args.max_length)]}[args.data]
    base = [*data, "--model", args.model, "--batch-size", str(args.batch_size), "--accum", str(args.accum),
            "--max-steps", str(args.total_steps), "--warmup", "0", "--lr", str(BENCH_LR),
            "--weight-decay", str(BENCH_WEIGHT_DECAY), "--max-grad-norm", str(BENCH_MAX_GRAD_NORM),
            "--seed", str(args.seed), "--device", args.device, "--ckpt" if args.ckpt else "--no-ckpt"]

    def fail(message: str):  # argparse would print and exit; one line from the caller instead
        raise BenchError(f"system {system!r}: {message}")

    parser = build_train_parser(TrainConfig)
    parser.error = fail
    reference, cfg = (TrainConfig(**vars(parser.parse_args(flags_))) for flags_ in (base, base + rest))
    for name in SHARED_FIELDS:
        if getattr(cfg, name) != getattr(reference, name):
            raise BenchError(f"system {system!r} may not change --{name.replace('_', '-')}: the benchmark sets "
                             f"it for every system")
    return cfg, {name: getattr(cfg, name) for name in SPEED_SWITCHES}


# ---- one system, in its own process -------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_used(device: torch.device) -> int | None:
    """Total minus free device memory: the CUDA context, every allocator's cache, other processes too."""
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    return total - free


def model_facts(model: torch.nn.Module) -> dict[str, int]:
    """What the MFU formula needs: non-embedding parameters, layers, heads, head size."""
    from models.report import count_parameters

    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    untied_head = head.weight.numel() if head is not None and head.weight is not embedding else 0
    config = model.config
    heads = config.num_attention_heads
    return {"params_nonembed": count_parameters(model)["total"] - embedding.numel() - untied_head,
            "layers": config.num_hidden_layers, "heads": heads,
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads}


def require_examples(num_examples: int, args: BenchArgs) -> None:
    """Every system reads one epoch in order (ours resumes its timed call inside epoch 0)."""
    if num_examples < args.total_steps * args.batch_size * args.accum:
        raise BenchError(f"{num_examples} examples are fewer than the {args.total_steps} steps x "
                         f"{args.batch_size * args.accum} examples the run consumes: lower --steps")


def windows_of(data, cfg: TrainConfig, steps: int) -> list[list[list[int]]]:
    """Example indices of the micro-batches of each of the first `steps` optimizer steps of our loop
    (replayed with the loop's own order function)."""
    from engine.checkpoint import TrainState
    from engine.loop import accumulation_windows

    windows = accumulation_windows(data, cfg, TrainState())
    return [next(windows).micro_batches for _ in range(steps)]


def run_ours(args: BenchArgs, system: str, device: torch.device) -> dict:
    """ours: train.py's own set-up (engine/recipe.py), then two calls of the loop on one micro-step
    (the timed steps replay the CUDA graphs the warm-up recorded)."""
    from engine.checkpoint import TrainState
    from engine.distributed import Distributed
    from engine.loop import train
    from engine.recipe import set_up

    cfg, switches = ours_config(args, system)
    recipe = set_up(cfg, Distributed(), device)
    model, data = recipe.model, recipe.data
    require_examples(len(data.input_ids), args)
    steps = windows_of(data, cfg, args.total_steps)
    reset_peaks(device)
    with tempfile.TemporaryDirectory() as run_dir, recipe.training() as micro_step:
        common = dict(device=device, run_dir=Path(run_dir), micro_step=micro_step)
        warm = train(cfg, model, data, recipe.optimizer, recipe.scheduler, start=TrainState(),
                     total_steps=args.warmup_steps, **common)
        resume_at = TrainState(step=args.warmup_steps, epoch=0, batch_in_epoch=args.warmup_steps * args.accum)
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        timed = train(cfg, model, data, recipe.optimizer, recipe.scheduler, start=resume_at,
                      total_steps=args.total_steps, **common)
        synchronize(device)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        # Read before the block ends: undoing the switches moves offloaded embeddings back to the device.
        max_reserved = torch.cuda.max_memory_reserved(device) if device.type == "cuda" else None
    records = warm + timed
    expected_tokens = [sum(data.lengths[i] for batch in step for i in batch) for step in steps]
    if [r["tokens"] for r in records] != expected_tokens:  # the examples the MFU sums over are the ones trained on
        raise RuntimeError("the benchmark's replay of the loop's data order disagrees with the loop")
    mems = [r["mem"] for r in records]
    peak = lambda key: max((m[key] for m in mems if m[key] is not None), default=None)  # noqa: E731
    memory = {"peak_allocated": peak("peak_allocated"), "peak_reserved": peak("reserved"),
              "device_used": peak("device_used")}
    if max_reserved is not None:  # the loop resets the peak counters each step; reserved never shrinks here
        memory["peak_reserved"] = max(memory["peak_reserved"] or 0, max_reserved)
    return result_record(args, model, data, steps, wall=wall, cpu=cpu, losses=[r["loss"] for r in records],
                         step_times=[r["step_s"] for r in timed], memory=memory, switches=switches)


def run_hf(args: BenchArgs, device: torch.device, dtype: torch.dtype, *, kbit_recipe: bool) -> dict:
    """hf: Trainer on the very model ours trains. hf-kbit: the seeds' recipe (002-004) on top, peft's
    `prepare_model_for_kbit_training` before LoRA, which casts the frozen bf16 weights (embeddings,
    norms, LM head) to fp32: the set-up most QLoRA users run."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from data.batching import batch_order, collate
    from engine.recipe import load_train_data
    from models.load import load_model

    prepare = None
    if kbit_recipe:
        from peft import prepare_model_for_kbit_training

        def prepare(model):
            return prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.ckpt,
                                                   gradient_checkpointing_kwargs={"use_reentrant": False})
    model = load_model(args.model, peft="qlora", compute_dtype=dtype, device=device, seed=args.seed,
                       prepare_base=prepare)
    data, _ = load_train_data(ours_config(args, "ours")[0], model)  # the data ours trains on
    require_examples(len(data.input_ids), args)
    # Our loop's order for the default config (no length grouping), read sequentially by Trainer.
    order = [i for b in batch_order(data.lengths, args.batch_size, seed=args.seed, epoch=0, group_by_length=False)
             for i in b]
    per_step = args.batch_size * args.accum
    steps = [[order[k * per_step + j * args.batch_size:][:args.batch_size] for j in range(args.accum)]
             for k in range(args.total_steps)]
    examples = [{"input_ids": data.input_ids[i], "labels": data.labels[i]} for i in order]

    class SequentialTrainer(Trainer):
        def _get_train_sampler(self, *unused, **unused_kw):
            return SequentialSampler(self.train_dataset)

    class StepClock(TrainerCallback):
        """Time and device memory at the end of every optimizer step, after a device sync."""

        def __init__(self):
            self.wall, self.cpu, self.used = [], [], []

        def on_train_begin(self, *unused, **unused_kw):  # entry 0: the clock of --warmup-steps 0
            self.on_step_end()

        def on_step_end(self, *unused, **unused_kw):
            synchronize(device)
            self.wall.append(time.perf_counter())
            self.cpu.append(time.process_time())
            self.used.append(device_used(device))

    on_cuda = device.type == "cuda"
    # transformers >= 5.2x calls it activation_checkpointing; gradient_checkpointing is the older name
    ckpt_name = ("activation_checkpointing" if "activation_checkpointing" in
                 {f.name for f in dataclasses.fields(TrainingArguments)} else "gradient_checkpointing")
    clock = StepClock()
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=args.accum, max_steps=args.total_steps,
            **{ckpt_name: args.ckpt, f"{ckpt_name}_kwargs": {"use_reentrant": False}},
            optim="paged_adamw_8bit" if on_cuda else "adamw_bnb_8bit", bf16=on_cuda, use_cpu=not on_cuda,
            learning_rate=BENCH_LR, weight_decay=BENCH_WEIGHT_DECAY, max_grad_norm=BENCH_MAX_GRAD_NORM,
            lr_scheduler_type="linear", warmup_steps=0, report_to="none", logging_steps=1, save_strategy="no",
            seed=args.seed, dataloader_num_workers=0, remove_unused_columns=False)
        trainer = SequentialTrainer(model=model, args=training_args, train_dataset=examples, callbacks=[clock],
                                    data_collator=lambda rows: collate(rows, pad_token_id=data.pad_token_id))
        reset_peaks(device)
        trainer.train()
    first, last = args.warmup_steps, args.total_steps  # entry k: the end of step k (0: the start)
    memory = {"peak_allocated": torch.cuda.max_memory_allocated(device) if on_cuda else None,
              "peak_reserved": torch.cuda.max_memory_reserved(device) if on_cuda else None,
              "device_used": max(clock.used) if on_cuda else None}
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return result_record(args, model, data, steps, wall=clock.wall[last] - clock.wall[first],
                         cpu=clock.cpu[last] - clock.cpu[first], losses=losses,
                         step_times=[b - a for a, b in zip(clock.wall[first:last], clock.wall[first + 1:])],
                         memory=memory, switches={})


def reset_peaks(device: torch.device) -> None:
    """Peaks count from here: after the model is built, before the first training step."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def result_record(args: BenchArgs, model, data, steps: list[list[list[int]]], *, wall: float, cpu: float,
                  losses: list[float], step_times: list[float], memory: dict, switches: dict) -> dict:
    """`steps`: example indices per micro-batch per optimizer step, warm-up steps included;
    `step_times`: seconds of each timed step (a disturbed step stands out in bench.json)."""
    micro_batches = [batch for step in steps[args.warmup_steps:] for batch in step]
    timed = [i for batch in micro_batches for i in batch]
    tokens = sum(data.lengths[i] for i in timed)
    padded = sum(len(batch) * max(data.lengths[i] for i in batch) for batch in micro_batches)  # right-padded
    return {
        "tokens": tokens,
        "examples": len(timed),
        "pad_fraction": 1 - tokens / padded,
        "label_tokens": sum(data.label_tokens(i) for i in timed),
        "sum_sq_lengths": sum(data.lengths[i] ** 2 for i in timed),
        "wall_s": wall, "cpu_s": cpu, "tokens_per_s": tokens / wall, "step_s": wall / args.steps,
        "cpu_s_per_step": cpu / args.steps, "losses": losses, "step_times": step_times,
        "step_tokens": [sum(data.lengths[i] for batch in step for i in batch) for step in steps[args.warmup_steps:]],
        **memory,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
        "switches": switches, **model_facts(model),
    }


def worker(spec_path: str, result_path: str) -> int:
    from engine.device import resolve_compute_dtype, resolve_device

    spec = json.loads(Path(spec_path).read_text())
    args, system = BenchArgs(**spec["args"]), spec["system"]
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    if args.memory_cap_gib is not None and device.type == "cuda":
        from engine.features.cuda_memory import cap_cuda_memory

        cap_cuda_memory(args.memory_cap_gib, device)
    dtype = resolve_compute_dtype("auto", device)
    load_before = os.getloadavg()[0]
    name = split_system(system)[0]
    try:
        result = (run_ours(args, system, device) if name == "ours"
                  else run_hf(args, device, dtype, kbit_recipe=name == "hf-kbit"))
    except torch.OutOfMemoryError:  # what a max-context search looks for: a row, not a traceback
        cap = f" under the {args.memory_cap_gib:g} GiB cap" if args.memory_cap_gib else ""
        atomic_write_json(result_path, {"system": system, "error": f"out of memory{cap}"})
        return 0
    result.update(system=system, device=describe_device(device), compute_dtype=str(dtype).removeprefix("torch."),
                  load_before=load_before, load_after=os.getloadavg()[0], versions=versions())
    atomic_write_json(result_path, result)
    return 0


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def versions() -> dict[str, str]:
    import bitsandbytes
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "bitsandbytes": bitsandbytes.__version__}


# ---- orchestration and report -------------------------------------------------------------------

def run_system(args: BenchArgs, system: str, scratch: Path, index: int) -> dict:
    """Run one system in a fresh interpreter; its output streams through. A failure becomes a row."""
    spec, result = scratch / f"spec-{index}.json", scratch / f"result-{index}.json"
    atomic_write_json(spec, {"args": dataclasses.asdict(args), "system": system})
    print(f"\n=== {system} ===", flush=True)
    status = subprocess.run([sys.executable, "-m", "engine.tools.bench", "--worker", str(spec), str(result)],
                            cwd=REPO_ROOT).returncode
    if status != 0 or not result.exists():
        return {"system": system, "error": f"exit status {status} (its output is above)"}
    return json.loads(result.read_text())


def mfu(run: dict, peak_tflops: float) -> float:
    flops = (6 * run["params_nonembed"] * run["tokens"]
             + 12 * run["layers"] * run["heads"] * run["head_dim"] * run["sum_sq_lengths"])
    return flops / run["wall_s"] / (peak_tflops * 1e12)


def summarise(runs: list[dict], systems: list[str], peak_tflops: float) -> list[dict]:
    """One row per system: its fastest run (all runs stay in bench.json), ratios against hf. Fastest,
    not median: on a shared machine other processes only ever slow a run down (timeit's reasoning), and
    one disturbed run of two would otherwise decide the ratio."""
    rows = []
    for system in systems:
        ok = [r for r in runs if r["system"] == system and "error" not in r]
        if not ok:
            rows.append({"system": system, "error": next(r["error"] for r in runs if r["system"] == system)})
            continue
        row = dict(max(ok, key=lambda r: r["tokens_per_s"]), runs=len(ok))
        row["mfu"] = mfu(row, peak_tflops)
        rows.append(row)
    for reference in REFERENCES:  # vs_hf_*, vs_hf_kbit_*: ratios against each HF row present
        ref = next((r for r in rows if r["system"] == reference and "error" not in r), None)
        prefix = "vs_" + reference.replace("-", "_")
        for row in rows:
            if ref is None or "error" in row:
                continue
            row[f"{prefix}_tokens_per_s"] = row["tokens_per_s"] / ref["tokens_per_s"]
            for key in ("peak_allocated", "peak_reserved", "device_used"):
                if row[key] is not None and ref[key]:
                    row[f"{prefix}_{key}"] = row[key] / ref[key]
    return rows


REFERENCES = ("hf", "hf-kbit")
COLUMNS = ("system", "tokens/s", "step s", "mean len", "pad", "loss@1", "peak alloc", "peak reserved", "device used",
           "peak RSS", "MFU", "x hf tok/s", "x hf reserved", "x hf-kbit tok/s", "x hf-kbit reserved")


def table_cells(row: dict) -> list[str]:
    if "error" in row:
        return [row["system"], "failed: " + row["error"]] + [""] * (len(COLUMNS) - 2)
    ratio = lambda key: f"{row[key]:.2f}x" if key in row else "n/a"  # noqa: E731
    return [row["system"], f"{row['tokens_per_s']:.1f}", f"{row['step_s']:.2f}",
            f"{row['tokens'] / row['examples']:.0f}", f"{100 * row['pad_fraction']:.0f}%",
            f"{row['losses'][0]:.4f}" if row["losses"] else "n/a", format_bytes(row["peak_allocated"]),
            format_bytes(row["peak_reserved"]), format_bytes(row["device_used"]), format_bytes(row["peak_rss"]),
            f"{100 * row['mfu']:.3g}%", ratio("vs_hf_tokens_per_s"), ratio("vs_hf_peak_reserved"),
            ratio("vs_hf_kbit_tokens_per_s"), ratio("vs_hf_kbit_peak_reserved")]


def format_table(rows: list[dict]) -> str:
    cells = [list(COLUMNS)] + [table_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    line = lambda c: "| " + " | ".join(x.ljust(w) for x, w in zip(c, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(c) for c in cells[1:]])


def report_markdown(args: BenchArgs, rows: list[dict], command: str) -> str:
    first = next((r for r in rows if "error" not in r), {})
    lines = [f"# Benchmark: {args.model}, {args.data} data, batch {args.batch_size} x accum {args.accum}, "
             f"checkpointing {'on' if args.ckpt else 'off'}", "",
             f"`{command}`", "",
             f"device {first.get('device', 'n/a')}, compute dtype {first.get('compute_dtype', 'n/a')}, "
             f"{args.steps} timed step(s) after {args.warmup_steps} warm-up step(s), {datetime.now():%Y-%m-%d %H:%M}; "
             f"versions {first.get('versions', {})}", "",
             format_table(rows), ""]
    if args.ours_flags:
        lines += [f"Every ours row also ran with --ours-flags {args.ours_flags!r}.", ""]
    if args.repeats > 1:
        lines += [f"Each row is the fastest of its {args.repeats} runs (interleaved; all of them are in bench.json).", ""]
    lines += [f"{MFU_FORMULA}; peak {args.peak_tflops:g} TFLOP/s.", "",
              "tokens/s: non-pad tokens of the timed steps over their wall time (a busy CPU slows every system: "
              "compare rows run at similar load, listed below). mean len: non-pad tokens per timed example (length "
              "grouping changes which examples the timed steps get). pad: share of the computed (padded) positions "
              "that are padding. loss@1: the first step's loss (the same model on the same examples should agree). "
              "device used: total minus free device memory (the CUDA context, every cache, other processes too). "
              "peak RSS: the process's host memory peak."]
    loads = [f"{r['system']}: {r['load_before']:.1f} -> {r['load_after']:.1f}" for r in rows if "error" not in r]
    if loads and "cpu" in first.get("device", ""):
        lines += ["", "1-minute load average before -> after each system: " + "; ".join(loads)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, worker_paths = parse_args(argv)
    if worker_paths:
        return worker(*worker_paths)
    out = Path(args.out or f"runs/bench-{datetime.now():%Y%m%d-%H%M%S}")
    command = "python -m engine.tools.bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for index, system in enumerate(args.systems):
                runs.append(dict(run_system(args, system, Path(scratch), repeat * len(args.systems) + index),
                                 repeat=repeat))
    rows = summarise(runs, args.systems, args.peak_tflops)
    print("\n" + format_table(rows))
    print(f"{MFU_FORMULA}; peak {args.peak_tflops:g} TFLOP/s")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", {"command": command, "args": dataclasses.asdict(args), "mfu_formula": MFU_FORMULA,
                                           "summary": rows, "runs": runs})
    atomic_write_text(out / "bench.md", report_markdown(args, rows, command))
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as error:  # BenchError, ConfigError, bad model spec, ...: one line
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
