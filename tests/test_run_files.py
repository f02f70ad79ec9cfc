"""What every run leaves besides metrics.jsonl: loss.png and memory.png drawn from its records, train.log
holding what the console showed, and closing lines whose evaluation command runs as printed."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import matplotlib.image

import train as train_script
from engine.observers import format_log_line
from engine.plots import MEMORY_STACK, loss_series, memory_series
from eval import evaluate as evaluate_script
from tests.test_formats import write_spider_csv, write_spider_dir
from tests.test_train_smoke import chat_file  # noqa: F401 (the fixture)
from tests.test_validation import val_file  # noqa: F401 (the fixture)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def is_subsequence(lines: list[str], of: list[str]) -> bool:
    remaining = iter(of)
    return all(any(line == other for other in remaining) for line in lines)


def test_figures_log_and_closing_lines(chat_file, val_file, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--model", "arch:tiny", "--data", str(chat_file), "--val-data", str(val_file), "--eval-every", "2",
            "--max-steps", "4", "--batch-size", "2", "--lr", "1e-2", "--optim", "adamw", "--save-best", "--out", str(out)]
    assert train_script.main(argv) == 0
    shown = capsys.readouterr()
    rows = records(out)

    # The figures: PNGs, drawn from these very numbers.
    for name in ("loss.png", "memory.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        height, width = matplotlib.image.imread(out / name).shape[:2]
        assert height > 200 and width > 300
    series = loss_series(rows)
    assert series["steps"] == [1, 2, 3, 4] and series["loss"] == [r["loss"] for r in rows]
    assert series["val_steps"] == [2, 4] and series["val_loss"] == [rows[1]["val_loss"], rows[3]["val_loss"]]
    memory = memory_series(rows)
    assert memory["activations"] == [r["mem"]["activations"] for r in rows]
    assert memory["4-bit weights"] == [r["mem"]["params_4bit"] for r in rows]
    assert sum(memory[label][0] for label, _, _ in MEMORY_STACK) == sum(
        rows[0]["mem"][k] for k in ("params_4bit", "params_frozen", "params_trainable", "grads", "optimizer",
                                    "activations"))
    assert memory["peak_allocated"] == [None] * 4  # CPU

    # train.log: the command, then what the console showed, line by line.
    log = (out / "train.log").read_text().splitlines()
    assert log[0].startswith("# ") and log[0].endswith("python train.py " + " ".join(argv))
    assert is_subsequence([line for line in shown.out.splitlines()], log[1:])
    assert [format_log_line(r) for r in rows] == [line for line in log if line.startswith("step ")]
    assert sum(line.startswith("train: 100%") for line in log) == 1  # one line for the bar, not its redraws

    # The closing lines: where things are, the best checkpoint, the evaluation command.
    best = min((r["val_loss"], r["step"]) for r in rows if "val_loss" in r)
    assert f"best val_loss {best[0]:.4f} at step {best[1]}: {out / f'checkpoint-{best[1]}'}" in shown.out
    assert f"{out / 'loss.png'} {out / 'memory.png'} {out / 'train.log'}" in shown.out
    assert "evaluate the adapter" not in shown.out  # chat data: nothing eval.evaluate can score
    assert log[-1] == shown.out.splitlines()[-1]


def test_the_printed_evaluation_command_runs_on_the_runs_validation_data(tmp_path, capsys):
    database = write_spider_dir(tmp_path / "elsewhere") / "database"
    train_csv = write_spider_csv(tmp_path / "train.csv")
    val_csv = write_spider_csv(tmp_path / "validation.csv")
    out = tmp_path / "run"
    assert train_script.main(["--model", "arch:tiny", "--data", str(train_csv), "--db-dir", str(database),
                              "--val-data", str(val_csv), "--max-steps", "1", "--eval", "--eval-limit", "1",
                              "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"evaluating the base model on {val_csv} ..." in shown  # --eval names what it evaluates
    assert f"evaluating the fine-tuned model on {val_csv} ..." in shown
    line = next(line for line in shown.splitlines() if line.startswith("evaluate the adapter: "))
    command = shlex.split(line.removeprefix("evaluate the adapter: "))
    assert command[:5] == ["python", "-m", "eval.evaluate", "--adapter", str(out / "adapter")]
    assert command[5:] == ["--data", str(val_csv), "--db-dir", str(database), "--out", str(out / "eval")]
    assert evaluate_script.main(command[3:] + ["--limit", "1", "--max-new-tokens", "8"]) == 0
    report = json.loads((out / "eval" / "eval.json").read_text())
    final = json.loads((out / "eval-final" / "eval.json").read_text())
    assert report["examples_digest"] == final["examples_digest"]  # the examples --eval scored


def test_a_full_fine_tune_saves_a_model_directory_the_printed_command_evaluates(tmp_path, capsys):
    database = write_spider_dir(tmp_path / "spider") / "database"
    csv = write_spider_csv(tmp_path / "train.csv")
    out = tmp_path / "run"
    assert train_script.main(["--model", "arch:tiny", "--peft", "full", "--optim", "adamw", "--data", str(csv),
                              "--db-dir", str(database), "--val-data", str(csv), "--max-steps", "1",
                              "--out", str(out)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in (out / "adapter").iterdir()}
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("evaluate the adapter: "))
    command = shlex.split(line.removeprefix("evaluate the adapter: "))
    assert command[3:5] == ["--model", str(out / "adapter")]
    assert evaluate_script.main(command[3:] + ["--limit", "1", "--max-new-tokens", "4"]) == 0
    assert json.loads((out / "eval" / "eval.json").read_text())["counts"]["examples"] == 1


def test_a_failed_run_keeps_its_log_up_to_the_error_line(chat_file, tmp_path, capsys):
    out = tmp_path / "run"
    status = train_script.main(["--model", "arch:tiny", "--data", str(chat_file), "--max-steps", "12", "--lr", "1e6",
                                "--optim", "adamw", "--seed", "7", "--out", str(out)])
    assert status == 1
    log = (out / "train.log").read_text().splitlines()
    assert log[-1].startswith("error: step ") and "diverged" in log[-1]
    assert capsys.readouterr().err.splitlines()[-1] == log[-1]


def test_the_printed_evaluation_command_carries_the_prompt_flags_of_the_run(tmp_path):
    from engine.config import TrainConfig
    from train import evaluation_command

    command = evaluation_command(TrainConfig(sample_rows=3, eval_split="heldout_domain"), tmp_path)
    assert command.split()[3:] == ["--adapter", str(tmp_path / "adapter"), "--split", "heldout_domain",
                                   "--sample-rows", "3", "--out", str(tmp_path / "eval")]
