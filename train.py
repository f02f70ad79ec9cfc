"""Fine-tune a (4-bit) causal LM with LoRA for text-to-SQL, and record where the memory goes.

    python train.py --accum 4 --ckpt                  # bundled SmolLM2-135M-Instruct, QLoRA, CPU or GPU
    python train.py --model arch:tiny --accum 4 --ckpt   # seconds: a random-init tiny Llama
    python train.py --help                            # every option
    torchrun --nproc-per-node 2 train.py --accum 2    # data parallel (DDP) over 2 GPUs or CPU processes

The story, in dependency order: config -> model -> data -> optimizer -> engine.loop.train -> save.
"""

from __future__ import annotations

import json
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from engine.checkpoint import TrainState, checkpoint_config, find_checkpoint, load_checkpoint, save_adapter
from engine.compile import compiled_decoder_layers
from engine.config import ConfigError, TrainConfig, parse_config
from engine.device import apply_cuda_memory_settings, resolve_compute_dtype, resolve_device
from engine.distributed import LaunchError, init_distributed, launch_environment, shutdown
from engine.io import atomic_write_json, atomic_write_text
from engine.loop import TrainData, total_optimizer_steps, train
from engine.memory import format_bytes, tracked_total
from engine.optim import create_optimizer, resolve_optimizer_name
from engine.schedule import create_scheduler
from models.offload import embeddings_on_host


def fold_token_ids(input_ids: list[list[int]], labels: list[list[int]], vocab_size: int
                   ) -> tuple[list[list[int]], list[list[int]]]:
    """Random-init presets with a vocabulary smaller than the bundled tokenizer's (polyglot-ko: 30,080
    < 49,152) cannot embed every id. Their weights are random, so fold ids modulo the vocabulary:
    shapes, memory and speed are those of the real model; the text is not."""
    fold = lambda ids: [i % vocab_size if i >= 0 else i for i in ids]  # noqa: E731 (-100 stays)
    return [fold(x) for x in input_ids], [fold(y) for y in labels]


@dataclass
class RunResult:
    model: torch.nn.Module
    records: list[dict]
    run_dir: Path


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv, description=__doc__.split("\n")[0])
    try:
        run(cfg)
    finally:
        shutdown(launch_environment())
    return 0


def run(cfg: TrainConfig) -> RunResult:
    # ------------------------------------------------------------------------------------------
    # Config. A resumed run takes the saved config, so the model, data order and schedule match.
    resume_from = None
    if cfg.resume:
        resume_from = find_checkpoint(cfg.resume)
        saved = checkpoint_config(resume_from)
        saved.update(resume=cfg.resume, out=cfg.out or saved["out"])
        cfg = TrainConfig(**saved)
    # Under torchrun every rank runs this same script; rank 0 alone prints and writes.
    dist_env = launch_environment()
    device = init_distributed(dist_env, resolve_device(cfg.device), cfg.dist_timeout)
    say = print if dist_env.is_main else (lambda *args, **kwargs: None)
    if cfg.memory_snapshot and device.type != "cuda":
        raise ConfigError("--memory-snapshot records the CUDA allocator: it needs a CUDA device")
    if cfg.cuda_graphs and (device.type != "cuda" or dist_env.enabled):
        raise ConfigError("--cuda-graphs needs a CUDA device and a single process (DDP's gradient hooks are not captured)")
    apply_cuda_memory_settings(cfg, device)  # before the model exists: its first allocation reads them
    compute_dtype = resolve_compute_dtype(cfg.compute_dtype, device)
    run_dir = Path(cfg.out or f"runs/{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    cfg.out = str(run_dir)
    if not resume_from and (run_dir / "metrics.jsonl").exists():
        raise ConfigError(f"{run_dir} already holds a run: pick another --out, or --resume {run_dir}")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    say(f"world size {dist_env.world_size} | " if dist_env.enabled else "", end="")
    say(f"device {device} | compute dtype {str(compute_dtype).removeprefix('torch.')} | run dir {run_dir}")

    # ------------------------------------------------------------------------------------------
    # Model: load (and for qlora quantise to 4-bit), then wrap with LoRA. Memory at load is what the
    # weights alone cost, before any gradient, optimizer state or activation exists.
    from models.load import is_random_init, load_model, load_tokenizer
    from models.report import format_model_report

    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, peft=cfg.peft, quant=cfg.quant, double_quant=cfg.double_quant,
                       compute_dtype=compute_dtype, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                       lora_dropout=cfg.lora_dropout, target_modules=cfg.target_modules, device=device,
                       seed=cfg.seed)
    is_peft = cfg.peft != "full"
    if cfg.fused_lora:
        from models.fused_lora import fuse_lora_layers

        say(f"fused LoRA: {fuse_lora_layers(model)} layers run as one autograd node each")
    say(format_model_report(model))
    if device.type == "cuda":
        say(f"CUDA memory allocated at load: {format_bytes(torch.cuda.memory_allocated(device))}")

    # ------------------------------------------------------------------------------------------
    # Data: every format becomes chat messages, rendered with the model's own chat template; only the
    # answer and its end-of-turn token carry labels, the rest is -100.
    from data.formats import load_examples
    from data.tokenize import tokenize_dataset

    vocab_size = model.get_input_embeddings().num_embeddings
    if cfg.data.startswith("dummy:"):  # the book's make_dummy_dataset: random ids, every position labelled
        from data.dummy import dummy_examples, parse_dummy_spec

        input_ids, labels = dummy_examples(parse_dummy_spec(cfg.data), 64, vocab_size, cfg.seed)  # 64: the book's size
        num_dropped = 0
    else:
        examples = load_examples(cfg.data, cfg.split)
        tokenized = tokenize_dataset(examples, tokenizer, cfg.max_length)
        input_ids, labels = tokenized.dataset["input_ids"], tokenized.dataset["labels"]
        num_dropped = tokenized.num_dropped
    if not input_ids:
        raise ConfigError(f"no training example fits --max-length {cfg.max_length}")
    if is_random_init(cfg.model) and max(max(ids) for ids in input_ids) >= vocab_size:
        say(f"note: {cfg.model} has a {vocab_size}-token vocabulary, smaller than the tokenizer's: "
              f"token ids are folded modulo {vocab_size} (random weights: memory and speed are unaffected)")
        input_ids, labels = fold_token_ids(input_ids, labels, vocab_size)
    data = TrainData(input_ids=input_ids, labels=labels, pad_token_id=tokenizer.pad_token_id)
    lengths = data.lengths
    say(f"data {cfg.data} [{cfg.split}]: {len(lengths)} examples, {num_dropped} dropped "
          f"(longer than --max-length {cfg.max_length}); tokens per example mean {sum(lengths) / len(lengths):.0f}, "
          f"max {max(lengths)}; label tokens mean {sum(sum(1 for t in y if t != -100) for y in labels) / len(labels):.1f}")

    # ------------------------------------------------------------------------------------------
    # Derived numbers (what Trainer computes silently at the top of `_inner_training_loop`).
    global_batch = cfg.batch_size * dist_env.world_size
    if dist_env.enabled and 0 < len(lengths) % global_batch < dist_env.world_size:
        raise LaunchError(f"{len(lengths)} examples in global batches of {global_batch} leave a last batch of "
                          f"{len(lengths) % global_batch}, fewer than the {dist_env.world_size} ranks: "
                          f"change --batch-size or the number of ranks")
    total_steps = total_optimizer_steps(cfg, len(lengths), dist_env.world_size)
    warmup_steps = cfg.warmup_steps(total_steps)
    mean_length = sum(lengths) / len(lengths)
    say(f"effective batch {cfg.effective_batch * dist_env.world_size} sequences (batch {cfg.batch_size} x accum "
          f"{cfg.accum}{f' x {dist_env.world_size} ranks' if dist_env.enabled else ''}) | "
          f"~{cfg.effective_batch * dist_env.world_size * mean_length:.0f} tokens per optimizer step | {total_steps} steps "
          f"({total_steps * cfg.effective_batch * dist_env.world_size / len(lengths):.2f} epochs) | warmup {warmup_steps} steps | "
          f"checkpointing {'on' if cfg.ckpt else 'off'}")

    # ------------------------------------------------------------------------------------------
    # Optimizer and schedule (Trainer: `create_optimizer_and_scheduler`). Created after the model is
    # final (peft-wrapped), because the optimizer holds references to the trainable tensors.
    optim_name, note = resolve_optimizer_name(cfg.optim, device)
    if note:
        say(note)
    optimizer = create_optimizer(model, name=optim_name, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = create_scheduler(optimizer, kind=cfg.scheduler, warmup_steps=warmup_steps, total_steps=total_steps)

    start = TrainState(world_size=dist_env.world_size)
    if resume_from:
        start = load_checkpoint(resume_from, model, optimizer, scheduler)
        if start.world_size != dist_env.world_size:
            raise LaunchError(f"{resume_from} was saved by {start.world_size} ranks; resume it with the same "
                              f"number (the data order depends on it), not {dist_env.world_size}")
    if resume_from and dist_env.is_main:
        metrics_path = run_dir / "metrics.jsonl"  # drop records of steps after the checkpoint
        kept = [line for line in (metrics_path.read_text().splitlines() if metrics_path.exists() else [])
                if json.loads(line)["step"] <= start.step]
        atomic_write_text(metrics_path, "".join(line + "\n" for line in kept))
        say(f"resumed from {resume_from} at step {start.step}")
    if dist_env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", cfg.to_dict())

    # ------------------------------------------------------------------------------------------
    # Evaluate before training: LoRA B starts at zero, so this *is* the base model.
    base_report = None
    if cfg.eval:
        from eval.evaluate import evaluation_data, evaluate_model

        if dist_env.enabled:
            raise ConfigError("--eval runs in a single process; evaluate the adapter afterwards with python -m eval.evaluate")
        eval_examples, eval_db_root = evaluation_data("bundled", cfg.eval_split)
        if start.step == 0:  # a resumed model is no longer the base
            say(f"evaluating the base model on bundled [{cfg.eval_split}] ...")
            base_report = evaluate_model(model, tokenizer, eval_examples, eval_db_root, run_dir / "eval-base",
                                         limit=cfg.eval_limit, log=say)

    # ------------------------------------------------------------------------------------------
    # Train.
    started = time.perf_counter()
    # Compiled and offloaded only for training: --eval's generation (changing shapes, the plain LM head)
    # runs eager with the embeddings on the device.
    with (compiled_decoder_layers(model) if cfg.compile_layers else nullcontext(),
          embeddings_on_host(model, device) if cfg.offload_embeddings else nullcontext() as freed):
        if freed:
            say(f"embeddings and LM head in pinned host memory: {format_bytes(freed)} of device memory freed")
        records = train(cfg, model, data, optimizer, scheduler, device=device, run_dir=run_dir, start=start,
                        total_steps=total_steps, is_peft=is_peft, dist_env=dist_env)
    elapsed = time.perf_counter() - started

    # ------------------------------------------------------------------------------------------
    # Save the adapter (PEFT format) and summarise.
    adapter_dir = run_dir / "adapter"
    if dist_env.is_main:
        save_adapter(model, adapter_dir)
    if records:
        peak = max(records, key=lambda r: tracked_total(r["mem"]))["mem"]
        tokens = sum(r["tokens"] for r in records)
        say(f"done: {len(records)} steps in {elapsed:.0f} s, {tokens / elapsed:.0f} tokens/s | "
              f"loss {records[0]['loss']:.4f} -> {records[-1]['loss']:.4f}")
        say("memory at the largest step: " + ", ".join(
            f"{k} {format_bytes(peak[k])}" for k in ("params_4bit", "params_frozen", "params_trainable",
                                                    "grads", "optimizer", "optimizer_paged", "activations",
                                                    "peak_allocated", "reserved")))
    say(f"adapter: {adapter_dir} | metrics: {run_dir / 'metrics.jsonl'}")

    # ------------------------------------------------------------------------------------------
    # Evaluate after training, and show the gain.
    if cfg.eval:
        from eval.report import format_comparison

        say(f"evaluating the fine-tuned model on bundled [{cfg.eval_split}] ...")
        final_report = evaluate_model(model, tokenizer, eval_examples, eval_db_root, run_dir / "eval-final",
                                      limit=cfg.eval_limit, log=say)
        if base_report is not None:
            say(format_comparison(base_report, final_report))
    if cfg.max_steps > 0:
        say(f"train longer with --max-steps N (this run: {cfg.max_steps}), or --max-steps -1 --epochs 1 for a full epoch")
    return RunResult(model=model, records=records, run_dir=run_dir)


if __name__ == "__main__":
    try:
        status = main()
    except (ConfigError, ValueError, FileNotFoundError) as error:  # bad input: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        status = 2
    except RuntimeError as error:
        # A peer rank crashed, hung or was killed: gloo/NCCL raise from inside a collective. Say so in
        # one line; any other runtime error keeps its traceback, which is the useful message there.
        text = str(error).strip()
        lost_peer = isinstance(error, torch.distributed.DistError) or any(
            marker in text for marker in ("gloo", "NCCL", "Connection reset", "Connection closed", "timed out"))
        if not (launch_environment().enabled and lost_peer):
            raise
        print(f"error: rank {launch_environment().rank}: lost the other ranks ({text.splitlines()[0][:200]})",
              file=sys.stderr)
        status = 1
    sys.exit(status)
