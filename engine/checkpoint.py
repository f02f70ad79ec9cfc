"""Checkpoints and the final adapter (HF Trainer: `_save_checkpoint`, `_load_from_checkpoint`,
`_load_optimizer_and_scheduler`, `_load_rng_state`).

A checkpoint holds exactly what `--resume` needs to continue with the same losses as an uninterrupted
run: the trainable weights, the optimizer state (Adam moments), the scheduler position, every RNG
state, and where in the data order we stopped. Every directory is written under a temporary name and
renamed into place complete (data/files.py): a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from data.files import atomic_directory, atomic_write_json
from engine.config import RESUME_MAY_CHANGE

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainState:
    """Position of a run: optimizer steps done, and the next micro-batch in the data order."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # in units of global batches (batch_size x world_size)
    world_size: int = 1      # the data order depends on it: resume with the same number of ranks


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}


class SaveFailed(OSError):
    """A checkpoint or the adapter could not be written (a full disk, a lost mount): one line saying
    what is kept and how to continue; the half-written directory is already gone (atomic_directory)."""


def _save_failed(what: str, run_dir: Path, error: OSError) -> SaveFailed:
    kept = latest_checkpoint(run_dir)
    then = (f"{kept.name} is kept: free space, then python train.py --resume {run_dir}" if kept else
            "no checkpoint is kept yet: free space, then run the same command again")
    return SaveFailed(f"could not write {what} in {run_dir} ({error.strerror or error}); {then}")


def save_peft_adapter(model: torch.nn.Module, directory: Path) -> None:
    """The adapter alone. The vocabulary is never resized here, so the embedding layers are not saved;
    peft's default ("auto") looks the base's config up on the hub to find out, and warns twice offline."""
    model.save_pretrained(directory, save_embedding_layers=False)


def save_adapter(model: torch.nn.Module, path: Path, tokenizer=None) -> Path:
    """PEFT format (adapter_config.json + adapter_model.safetensors), loadable by
    `PeftModel.from_pretrained(base, path)`. With --peft full the whole model is saved instead, with
    `tokenizer` beside it: a model directory that loads on its own (`eval.evaluate --model path`)."""
    try:
        with atomic_directory(path) as tmp:
            if hasattr(model, "peft_config"):
                save_peft_adapter(model, tmp)
            else:
                model.save_pretrained(tmp)
                if tokenizer is not None:
                    tokenizer.save_pretrained(tmp)
    except OSError as error:
        raise _save_failed(path.name, path.parent, error) from None
    return path


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, state: TrainState, config: dict, *, is_peft: bool) -> Path:
    path = Path(run_dir) / f"checkpoint-{state.step}"
    try:
        _write_checkpoint(path, model, optimizer, scheduler, state, config, is_peft=is_peft)
    except OSError as error:
        raise _save_failed(path.name, path.parent, error) from None
    return path


def _write_checkpoint(path: Path, model, optimizer, scheduler, state: TrainState, config: dict, *,
                      is_peft: bool) -> None:
    with atomic_directory(path) as tmp:
        save_file(trainable_state_dict(model), str(tmp / "trainable.safetensors"))
        if is_peft:  # the adapter too, so any checkpoint can be evaluated like the final one
            save_peft_adapter(model, tmp / "adapter")
        # The config rides along with the state it belongs to: a config.json copied in from another run is caught.
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), "train_state": asdict(state), "config": config}, tmp / "training_state.pt")
        atomic_write_json(tmp / "config.json", config)


def complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint-N in `run_dir`, in step order."""
    return sorted((int(m.group(1)), p) for p in Path(run_dir).glob("checkpoint-*")
                  if (m := CHECKPOINT_PATTERN.match(p.name)) and (p / "training_state.pt").is_file())


def rotate_checkpoints(run_dir: Path, limit: int, best_step: int | None = None) -> list[Path]:
    """Trainer._rotate_checkpoints (--save-total-limit): delete the oldest complete checkpoints until at most
    `limit` remain, never the latest (the one --resume continues from) nor `best_step`'s; with limit 1 and
    a best that is not the latest both stay, as in Trainer. Returns the deleted paths. Each is renamed out
    of the checkpoint-N name first, so an interrupted deletion never leaves a half-deleted directory that
    looks complete (remove_leftovers finishes it at the next start)."""
    found = complete_checkpoints(run_dir)
    keep = {step for step, _ in found[-1:]} | {step for step, _ in found if step == best_step}
    for step, _ in reversed(found):
        if len(keep) >= limit:
            break
        keep.add(step)
    removed = []
    for step, path in found:
        if step not in keep:
            doomed = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(path)
    return removed


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The highest-numbered complete checkpoint-N in `run_dir`, or None."""
    found = complete_checkpoints(run_dir)
    return found[-1][1] if found else None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint-N directory as given, or the highest-numbered one inside a run directory."""
    path = Path(path)
    if (path / "training_state.pt").is_file():
        return path
    found = latest_checkpoint(path) if path.is_dir() else None
    if found is None:
        raise FileNotFoundError(f"--resume {path}: no checkpoint-N directory with training_state.pt found")
    return found


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, config: dict) -> TrainState:
    """Restore weights, optimizer, scheduler and RNG in place; return where to continue.
    Order matters: the optimizer state refers to parameters by position, so the model must be built
    (and wrapped by peft) exactly as in the saved run before this is called. A damaged file, or one
    saved by another configuration, is one line, and nothing on disk is changed."""
    weights = read_trainable(path / "trainable.safetensors")
    saved = read_training_state(path / "training_state.pt")
    differ = sorted(k for k, v in saved.get("config", {}).items() if k not in RESUME_MAY_CHANGE and config.get(k) != v)
    if differ:
        shown = ", ".join(f"{k} {config.get(k)!r} (saved: {saved['config'][k]!r})" for k in differ[:3])
        raise ValueError(f"--resume {path}: its config.json is not the one saved with its training state: {shown}; "
                         "put back the run's own config.json")
    params = dict(model.named_parameters())
    missing = [name for name, p in params.items() if p.requires_grad and name not in weights]
    if missing or set(weights) - set(params):
        raise ValueError(f"--resume {path}: trainable parameters differ from this model's "
                         f"(e.g. {(missing or sorted(set(weights) - set(params)))[0]}); same --model/--peft/--lora-*?")
    for name, tensor in weights.items():
        if tensor.shape != params[name].shape:
            raise ValueError(f"--resume {path}: {name} has shape {tuple(params[name].shape)} in the model its "
                             f"config.json builds, {tuple(tensor.shape)} in trainable.safetensors: the config.json "
                             "is not the one this checkpoint was saved with")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    try:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        restore_rng_state(saved["rng"])
        return TrainState(**saved["train_state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"--resume {path}: training_state.pt does not fit this run "
                         f"({type(error).__name__}: {_first_line(error)[:120]})") from None


def _damaged(file: Path, error: BaseException) -> ValueError:
    """One line for a checkpoint file that is missing or cannot be read, naming the run's other checkpoints."""
    here = CHECKPOINT_PATTERN.match(file.parent.name)
    earlier = [p for step, p in complete_checkpoints(file.parent.parent) if here and step < int(here.group(1))]
    hint = f"; resume from an earlier one: python train.py --resume {earlier[-1]}" if earlier else ""
    what = "is missing" if isinstance(error, FileNotFoundError) else "is damaged"
    detail = _first_line(error).split(". ")[0][:120]
    return ValueError(f"--resume: {file} {what} ({detail}){hint}")


def read_trainable(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except (OSError, SafetensorError) as error:
        raise _damaged(file, error) from None


def read_training_state(file: Path) -> dict:
    """training_state.pt without running code from it: `weights_only=True` unpickles tensors, numbers,
    strings and containers only, so a crafted file cannot execute anything on --resume."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"--resume: {file} holds objects other than tensors and plain data, or is damaged; "
                         f"refused ({_first_line(error)[:160]})") from None
    except (OSError, EOFError, RuntimeError) as error:  # zero bytes: EOFError; cut short: a zip RuntimeError
        raise _damaged(file, error) from None


def holds_results(run_dir: Path) -> bool:
    """True when `run_dir` has something a new run must not overwrite: a checkpoint or an adapter."""
    run_dir = Path(run_dir)
    return (run_dir / "adapter").is_dir() or latest_checkpoint(run_dir) is not None


def remove_leftovers(run_dir: Path) -> list[str]:
    """Delete what an interrupted atomic write left in `run_dir` (data/files.py names it `.<name>.*.tmp`,
    or `.<name>.old-<pid>` while swapping); returns the names removed."""
    removed = []
    for p in Path(run_dir).glob(".*"):
        if p.name.endswith(".tmp") or ".old-" in p.name:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p.name)
    return sorted(removed)


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of `run_dir/metrics.jsonl`; a last line cut off by a kill mid-write is left out."""
    path = Path(run_dir) / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if number < len(lines):  # only the last line can be cut short; anything else is damage
                raise ValueError(f"{path}: line {number} is not a JSON record") from None
    return records
