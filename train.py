"""Fine-tune a (4-bit) causal LM with LoRA for text-to-SQL, and record where the memory goes.

    python train.py --accum 4 --ckpt                  # bundled SmolLM2-135M-Instruct, QLoRA, CPU or GPU
    python train.py --model arch:tiny --accum 4 --ckpt   # seconds: a random-init tiny Llama
    python train.py --help                            # every option
    torchrun --nproc-per-node 2 train.py --accum 2    # data parallel (DDP) over 2 GPUs or CPU processes

The story: config -> launch -> set-up (engine/recipe.py) -> evaluate the base -> train (engine/loop.py)
-> save -> evaluate the fine-tuned model.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Callable

import torch

from data.files import atomic_write_json, atomic_write_text, check_output_path
from engine.checkpoint import (CHECKPOINT_PATTERN, TrainState, find_checkpoint, holds_results, load_checkpoint,
                               read_metrics, remove_leftovers, save_adapter)
from engine.config import RESOLVED_KEY, RESUME_MAY_CHANGE, ConfigError, TrainConfig, parse_config, read_settings
from engine.console import ConsoleLog
from engine.device import resolve_device
from engine.distributed import LaunchError, init_distributed, launch_environment, shutdown
from engine.loop import train
from engine.memory import format_bytes, tracked_total
from engine.observers import StepObserver, TrainingDiverged, Validation
from engine.plots import run_figures
from engine.recipe import Recipe, set_up

DESCRIPTION = __doc__.split("\n")[0]
SUMMARY_KEYS = ("params_4bit", "params_frozen", "params_trainable", "grads", "optimizer", "optimizer_paged",
                "activations", "peak_allocated", "reserved")


@dataclass
class RunResult:
    model: torch.nn.Module
    records: list[dict]
    run_dir: Path


def run(cfg: TrainConfig, observers: list[StepObserver] = (), console: ConsoleLog | None = None) -> RunResult:
    # ------------------------------------------------------------------------------------------
    # Config and launch. A resumed run takes its saved config, so model, data order and schedule match.
    # Under torchrun every rank runs this same script; rank 0 alone prints and writes.
    cfg, resume_from = resume_config(cfg)
    cfg.check_files()  # bad input ends here, before the run directory and the model exist
    dist = launch_environment()
    device = init_distributed(dist, resolve_device(cfg.device), cfg.dist_timeout)
    say = dist.print
    run_dir = choose_run_dir(cfg, resume_from, dist)

    # ------------------------------------------------------------------------------------------
    # Set-up: model -> data -> optimizer -> scheduler, then where to start (step 0, or the checkpoint).
    recipe = set_up(cfg, dist, device, say)
    start = resume_position(recipe, resume_from, run_dir) if resume_from else TrainState(world_size=dist.world_size)
    validation = validation_observer(recipe, run_dir)
    if dist.is_main:
        # The settings (read back by --resume, valid as --config), and what they resolved to here.
        atomic_write_json(run_dir / "config.json", {**cfg.to_dict(), RESOLVED_KEY: recipe.resolved()})
        (console or ConsoleLog()).attach(run_dir / "train.log")  # the lines so far, then each as it comes

    # ------------------------------------------------------------------------------------------
    # Evaluate before training: LoRA B starts at zero, so this *is* the base model (not when resumed).
    base_report = evaluate(recipe, run_dir / "eval-base", "base") if cfg.eval and start.step == 0 else None

    # ------------------------------------------------------------------------------------------
    # Train, with the speed and memory switches applied for the duration (engine/features/switches.py).
    started = time.perf_counter()
    with recipe.training() as micro_step:
        records = train(cfg, recipe.model, recipe.data, recipe.optimizer, recipe.scheduler, device=device,
                        run_dir=run_dir, start=start, total_steps=recipe.total_steps, is_peft=recipe.is_peft,
                        dist=dist, micro_step=micro_step, observers=observers, validation=validation)
    elapsed = time.perf_counter() - started

    # ------------------------------------------------------------------------------------------
    # Save the adapter (PEFT format), draw loss.png and memory.png, summarise, evaluate the fine-tuned
    # model, and say where everything is and the command that evaluates the adapter.
    if dist.is_main:
        save_adapter(recipe.model, run_dir / "adapter", recipe.tokenizer)
        run_figures(run_dir, read_metrics(run_dir))
    say(summary(cfg, records, elapsed))
    if cfg.eval:
        from eval.report import format_comparison

        final_report = evaluate(recipe, run_dir / "eval-final", "fine-tuned")
        if base_report is not None:
            say(format_comparison(base_report, final_report))
    say(next_steps(cfg, run_dir, validation))
    return RunResult(model=recipe.model, records=records, run_dir=run_dir)


# ---- the steps of run(), in order ------------------------------------------------------------

def resume_config(cfg: TrainConfig) -> tuple[TrainConfig, Path | None]:
    """(the run's config, the checkpoint to resume from). With --resume: the saved config, in the run
    directory where it is now; the flags given beside --resume may extend the run (--max-steps, --epochs)
    or change how it is watched and run, never what it trains. A run that stopped before its first
    checkpoint has nothing to resume: it starts again at step 0 from its config."""
    if not cfg.resume:
        return cfg, None
    given = Path(cfg.resume)
    run_dir = given.parent if CHECKPOINT_PATTERN.match(given.name) else given
    out = Path(cfg.out) if cfg.out else run_dir
    if out.resolve() != run_dir.resolve() and (out / "metrics.jsonl").exists():
        raise ConfigError(f"--out {out} holds another run: resume {given} into a new directory, or into its own")
    if not holds_results(given) and (given / "config.json").is_file() and not (given / "training_state.pt").is_file():
        saved = read_settings(given / "config.json")
        print(f"{given} stopped before its first checkpoint: starting it again at step 0")
        return TrainConfig(**resumed_settings(cfg, saved, out, resume=None)), None
    resume_from = find_checkpoint(given)
    resumed = TrainConfig(**resumed_settings(cfg, read_settings(resume_from / "config.json"), out, resume=cfg.resume))
    resumed.check_watching()  # the flags given beside --resume, with the run's own settings
    return resumed, resume_from


def resumed_settings(cfg: TrainConfig, saved: dict, out: Path, resume: str | None) -> dict:
    """The saved settings with the flags given beside --resume applied; one line naming any flag that
    would change the model, the data, the batch shape or the optimizer of the run."""
    default = TrainConfig()
    given = {f.name for f in fields(cfg) if getattr(cfg, f.name) != getattr(default, f.name)} - {"out", "resume"}
    refused = sorted(f for f in given - RESUME_MAY_CHANGE if getattr(cfg, f) != saved.get(f))
    if refused:
        flags = ", ".join(f"--{f.replace('_', '-')} (the run's: {saved.get(f)!r})" for f in refused)
        raise ConfigError(f"--resume continues the run as configured; it cannot change {flags}: start a new run "
                          "for another configuration")
    return {**saved, **{f: getattr(cfg, f) for f in given}, "resume": resume, "out": str(out)}


def choose_run_dir(cfg: TrainConfig, resume_from: Path | None, dist) -> Path:
    """--out, or runs/<timestamp>. A directory with a checkpoint or an adapter is refused unless resumed;
    one whose run stopped before its first checkpoint is taken over. What an interrupted write left
    behind is removed."""
    run_dir = Path(cfg.out or f"runs/{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    cfg.out = str(run_dir)
    check_output_path(run_dir)
    taken_over = not resume_from and (run_dir / "metrics.jsonl").exists()
    if taken_over and holds_results(run_dir):
        raise ConfigError(f"{run_dir} already holds a run: pick another --out, or --resume {run_dir}")
    if dist.is_main:
        removed = remove_leftovers(run_dir) if run_dir.is_dir() else []
        if taken_over:
            steps = len(read_metrics(run_dir))
            (run_dir / "metrics.jsonl").unlink()
            print(f"taking over {run_dir}: its run stopped after {steps} steps, before its first checkpoint")
        if removed:
            print(f"removed what an interrupted write left in {run_dir}: {', '.join(removed)}")
        print(f"run dir {run_dir}")
    return run_dir


def resume_position(recipe: Recipe, resume_from: Path, run_dir: Path) -> TrainState:
    """Trainer._load_from_checkpoint: weights, optimizer, scheduler and RNG restored in place; returns
    where the data order continues. Records of steps after the checkpoint leave metrics.jsonl."""
    dist = recipe.dist
    start = load_checkpoint(resume_from, recipe.model, recipe.optimizer, recipe.scheduler, recipe.cfg.to_dict())
    if start.world_size != dist.world_size:
        raise LaunchError(f"{resume_from} was saved by {start.world_size} ranks; resume it with the same "
                          f"number (the data order depends on it), not {dist.world_size}")
    if start.step >= recipe.total_steps and (run_dir / "adapter").is_dir():  # without one: the adapter is saved
        raise ConfigError(f"{resume_from} is at step {start.step} of the run's {recipe.total_steps}: extend it with "
                          f"--max-steps N (N > {start.step}) or --max-steps -1 --epochs N")
    if dist.is_main:
        kept = [r for r in read_metrics(run_dir) if r["step"] <= start.step]  # a cut last line goes too
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        recipe.say(f"resumed from {resume_from} at step {start.step}")
    return start


def validation_observer(recipe: Recipe, run_dir: Path) -> Validation | None:
    """--val-data / --val-split: val_loss, and with --eval-ex K val_ex, every --eval-every steps and at the
    last (engine/observers.py); the records already in metrics.jsonl (a resumed run's) hold the best so far."""
    cfg = recipe.cfg
    if recipe.val_data is None:
        return None
    measures = {"val_loss": recipe.validation_loss}
    if cfg.eval_ex:
        measures["val_ex"] = execution_accuracy(recipe, cfg.eval_ex)
    return Validation(measures, cfg.eval_every, history=read_metrics(run_dir))


def evaluation_examples(cfg: TrainConfig) -> tuple[list[dict], Path, str]:
    """(examples, database root, their name) for --eval and --eval-ex: the validation data when there is
    some, else the bundled benchmark's --eval-split; prompts built from the training's schema flags."""
    from eval.evaluate import evaluation_data

    data, split = cfg.validation_source or ("bundled", cfg.eval_split)
    spider = dict(tables=cfg.tables, db_dir=cfg.db_dir) if data != "bundled" else {}
    examples, db_root = evaluation_data(data, split or "", schema=cfg.schema, sample_rows=cfg.sample_rows, **spider)
    name = f"{data}{f' [{split}]' if split else ''}"
    if cfg.validation_source is None and cfg.data != "bundled":
        name += " (the bundled benchmark, not your --data: --val-data FILE evaluates on your own)"
    return examples, db_root, name


def execution_accuracy(recipe: Recipe, k: int) -> Callable[[], float]:
    """--eval-ex K: execution accuracy on K examples of the validation data spread evenly, generated greedily
    by the model as it trains, as eval.evaluate does (--decoder auto: for the Llama family a dense copy of the
    weights exists while it generates, and is freed after). Checked now: a missing database or a gold query
    that fails is one line before the first step, not after hours of training."""
    from eval.evaluate import evaluate_model, spread_indices
    from eval.report import check_databases, check_gold

    examples, db_root, _ = evaluation_examples(recipe.cfg)
    picked = [examples[i] for i in spread_indices(len(examples), k)]
    check_databases((str(e.get("db_id") or "") for e in picked), db_root)
    check_gold([{"db_id": e["db_id"], "gold": e["answer"]} for e in picked], db_root)

    def measure() -> float:
        report = evaluate_model(recipe.model, recipe.tokenizer, picked, db_root, None, log=None)
        return report["metrics"]["all"]["execution"]

    return measure


def evaluate(recipe: Recipe, out_dir: Path, which: str):
    """--eval: execution accuracy on the validation data or the bundled benchmark's --eval-split, greedy
    decoding (eval/); says which data it evaluates."""
    from eval.evaluate import evaluate_model
    from models.load import load_tokenizer

    cfg = recipe.cfg
    examples, db_root, name = evaluation_examples(cfg)
    recipe.say(f"evaluating the {which} model on {name} ...")
    tokenizer = recipe.tokenizer or load_tokenizer(cfg.model)  # None when training on token ids
    return evaluate_model(recipe.model, tokenizer, examples, db_root, out_dir, limit=cfg.eval_limit, log=recipe.say)


def summary(cfg: TrainConfig, records: list[dict], elapsed: float) -> str:
    """Steps, speed, the loss from first to last step, memory at the largest step."""
    if not records:
        return "done: no step to run"
    peak = max(records, key=lambda r: tracked_total(r["mem"]))["mem"]
    tokens = sum(r["tokens"] for r in records)
    return "\n".join([f"done: {len(records)} steps in {elapsed:.0f} s, {tokens / elapsed:.0f} tokens/s | "
                      f"loss {records[0]['loss']:.4f} -> {records[-1]['loss']:.4f}",
                      "memory at the largest step: " + ", ".join(f"{k} {format_bytes(peak[k])}" for k in SUMMARY_KEYS)])


def next_steps(cfg: TrainConfig, run_dir: Path, validation: Validation | None) -> str:
    """The closing lines: where the results are, the best checkpoint, the command that evaluates the
    adapter on the data --eval uses (with the run's data and schema flags), and how to train longer."""
    files = ["metrics.jsonl", "loss.png", "memory.png"] + ["train.log"] * (run_dir / "train.log").is_file()
    lines = [f"adapter: {run_dir / 'adapter'} | {' '.join(str(run_dir / f) for f in files)}"]
    if validation is not None and validation.best_step is not None:
        kept = run_dir / f"checkpoint-{validation.best_step}"
        lines.append(f"best val_loss {validation.best_loss:.4f} at step {validation.best_step}"
                     + (f": {kept} (its adapter: {kept / 'adapter'})" if kept.is_dir() else ""))
    command = evaluation_command(cfg, run_dir)
    if command:
        lines.append(f"evaluate the adapter: {command}")
    if cfg.max_steps > 0:
        lines.append(f"train longer with --max-steps N (this run: {cfg.max_steps}), or --max-steps -1 --epochs 1 "
                     "for a full epoch")
    return "\n".join(lines)


def evaluation_command(cfg: TrainConfig, run_dir: Path) -> str | None:
    """`python -m eval.evaluate ...` for this run's adapter on the data --eval evaluates (the validation data,
    else the bundled benchmark's --eval-split), with the data, database, schema and sample-row flags the run
    used, so the prompts are the training's; None when that data is not text-to-SQL."""
    data, split = cfg.validation_source or ("bundled", cfg.eval_split)
    if data != "bundled":
        from data.formats import record_format  # reads the user's file (and imports `datasets`)

        if record_format(data, split or "") not in ("spider", "bird"):
            return None
    if cfg.peft == "full" and not (run_dir / "adapter" / "tokenizer_config.json").is_file():
        return None  # a full model trained on token ids has no tokenizer to generate with
    weights = ["--model" if cfg.peft == "full" else "--adapter", run_dir / "adapter"]  # full: the model itself
    spider = [(flag, value) for flag, value in (("--data", data), ("--db-dir", cfg.db_dir), ("--tables", cfg.tables))
              if value is not None and data != "bundled"]
    args = ["python", "-m", "eval.evaluate", *weights, *[a for pair in spider for a in pair]]
    args += ["--split", split] * bool(split) + ["--no-schema"] * (not cfg.schema)
    args += ["--sample-rows", cfg.sample_rows] * bool(cfg.sample_rows) + ["--out", run_dir / "eval"]
    return " ".join(shlex.quote(str(a)) for a in args)


# ---- command line ----------------------------------------------------------------------------

def build_parser():
    """The command line `main` parses: every TrainConfig field as a flag (engine/config.py)."""
    from engine.config import build_parser as config_parser

    return config_parser(config_file=True, description=DESCRIPTION)


def interrupted(cfg: TrainConfig | None) -> str:
    """The line Ctrl-C prints: how far the run got, and the command that continues it."""
    given = Path(cfg.resume) if cfg and cfg.resume else None
    run_dir = Path(cfg.out) if cfg and cfg.out else (
        given.parent if given and CHECKPOINT_PATTERN.match(given.name) else given)
    if run_dir is None or not (run_dir / "metrics.jsonl").is_file():
        return "interrupted before the first step"
    records = read_metrics(run_dir)
    step = records[-1]["step"] if records else 0
    if holds_results(run_dir):
        return f"interrupted at step {step}; continue with: python train.py --resume {run_dir}"
    return (f"interrupted at step {step}, before the first checkpoint; start again with the same command "
            f"(or python train.py --resume {run_dir}), and keep checkpoints with --save-every N")


def main(argv: list[str] | None = None, observers: list[StepObserver] = ()) -> int:
    """The command line: bad input is one line and exit status 2; a lost peer rank one line and 1;
    Ctrl-C one line and 130. Everything it prints is kept in the run directory's train.log as well."""
    with ConsoleLog(["python", "train.py", *(sys.argv[1:] if argv is None else argv)]) as console:
        return command(argv, observers, console)


def command(argv: list[str] | None, observers: list[StepObserver], console: ConsoleLog) -> int:
    """`main` inside the console tee: what it prints, the error lines included, goes to train.log too."""
    cfg = None
    try:
        cfg = parse_config(argv, description=DESCRIPTION)
        try:
            run(cfg, observers, console)
        finally:
            shutdown(launch_environment())
    except KeyboardInterrupt:
        print(f"\n{interrupted(cfg)}", file=sys.stderr)
        return 130
    except (ConfigError, ValueError, OSError) as error:  # OSError: a missing file, a full disk (engine/checkpoint.py)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:  # not bad input: the run itself failed
        print(f"error: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        # A peer rank crashed, hung or was killed: gloo/NCCL raise from inside a collective. Say so in
        # one line; any other runtime error keeps its traceback, which is the useful message there.
        text = str(error).strip()
        lost_peer = isinstance(error, torch.distributed.DistError) or any(
            marker in text for marker in ("gloo", "NCCL", "Connection reset", "Connection closed", "timed out"))
        env = launch_environment()
        if not (env.enabled and lost_peer):
            raise
        print(f"error: rank {env.rank}: lost the other ranks ({text.splitlines()[0][:200]})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
