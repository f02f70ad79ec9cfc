"""A run never reports a success it did not have, and never runs code from a checkpoint: a diverged loss
ends the run before anything of that step is saved, and a crafted training_state.pt is refused."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train as train_script
from engine.checkpoint import TrainState, find_checkpoint, read_training_state
from engine.observers import LoopState, NonFiniteGuard, TrainingDiverged
from tests.test_train_smoke import chat_file  # noqa: F401 (the fixture)


def test_a_diverging_run_stops_at_the_first_non_finite_step_and_saves_nothing_of_it(chat_file, tmp_path, capsys):
    out = tmp_path / "run"
    status = train_script.main(["--model", "arch:tiny", "--data", str(chat_file), "--max-steps", "12", "--lr", "1e6",
                                "--optim", "adamw", "--save-every", "1", "--seed", "7", "--out", str(out)])
    assert status == 1
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    bad = records[-1]["step"]
    assert not math.isfinite(records[-1]["loss"]) or not math.isfinite(records[-1]["grad_norm"])
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in records[:-1])
    assert len(error) == 1 and f"step {bad}:" in error[0] and "diverged" in error[0] and "--lr" in error[0]
    assert not (out / "adapter").exists()  # no result is claimed
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert saved == list(range(1, bad))  # every good step, not the diverged one
    last = find_checkpoint(out)
    assert all(torch.isfinite(t).all() for t in load_file(str(last / "trainable.safetensors")).values())


def test_the_guard_raises_on_nan_and_inf_and_warns_once_about_dead_gradients():
    warnings: list[str] = []
    guard = NonFiniteGuard(dead_steps=3, warn=warnings.append)
    state = LoopState(position=TrainState(step=1), start_step=0, total_steps=10)
    for step in range(1, 6):
        state.position = TrainState(step=step)
        guard.on_log(state, {"loss": 2.0, "grad_norm": 0.0, "lr": 1e-3})
    assert len(warnings) == 1 and "exactly 0 for 3 steps (step 3)" in warnings[0]
    for loss, norm in ((float("nan"), 1.0), (1.0, float("inf"))):
        with pytest.raises(TrainingDiverged, match="step 5: "):
            guard.on_log(state, {"loss": loss, "grad_norm": norm, "lr": 1e-3})


class _Payload:
    """Unpickling this calls `Path.touch(marker)`: what a crafted checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_training_state_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    crafted = tmp_path / "training_state.pt"
    with open(crafted, "wb") as f:
        pickle.dump({"optimizer": _Payload(marker)}, f)
    with pytest.raises(ValueError, match="refused"):
        read_training_state(crafted)
    assert not marker.exists()


def test_a_real_training_state_still_loads_as_plain_data(chat_file, tmp_path):
    out = tmp_path / "run"
    assert train_script.main(["--model", "arch:tiny", "--data", str(chat_file), "--max-steps", "2", "--optim",
                              "adamw_8bit", "--save-every", "2", "--out", str(out)]) == 0
    state = read_training_state(out / "checkpoint-2" / "training_state.pt")
    assert state["train_state"]["step"] == 2 and set(state) == {"optimizer", "scheduler", "rng", "train_state"}
