"""--report-to tensorboard: the event files hold the numbers of metrics.jsonl, read back with TensorBoard's
own reader; a resumed run shows each step once, with the numbers the resumed run wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import train as train_script
from engine.config import TrainConfig
from engine.observers import TensorBoardWriter
from tests.test_train_smoke import chat_file, tiny_config  # noqa: F401 (the fixture)
from tests.test_validation import val_file  # noqa: F401 (the fixture)

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    reader = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def expected(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as TensorBoard stores it: float32 values, one series per key and memory component."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        values = {tag: r[key] for key, tag in TensorBoardWriter.TAGS.items() if r.get(key) is not None}
        values.update((f"memory/{k}", v) for k, v in r["mem"].items() if v is not None)
        for tag, value in values.items():
            series.setdefault(tag, []).append((r["step"], float(np.float32(value))))
    return series


def test_the_event_files_hold_the_numbers_of_metrics_jsonl(chat_file, val_file, tmp_path):
    run = train_script.run(tiny_config(chat_file, tmp_path / "run", max_steps=4, val_data=str(val_file),
                                       eval_every=2, report_to="tensorboard", save_every=2))
    read, want = scalars(run.run_dir), expected(run.run_dir)
    assert read == want
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_s", "eval/loss",
            "memory/params_4bit", "memory/params_trainable", "memory/grads", "memory/optimizer",
            "memory/activations"} <= set(read)
    assert [step for step, _ in read["eval/loss"]] == [2, 4] and [s for s, _ in read["train/loss"]] == [1, 2, 3, 4]
    assert read["train/loss"][0][1] == pytest.approx(run.records[0]["loss"], rel=1e-6)

    # Interrupted after step 2, resumed: steps 3 and 4 are written again; the reader shows them once,
    # with the resumed run's numbers (its tokens/s differ from the first run's).
    cut = tmp_path / "cut"
    shutil.copytree(run.run_dir, cut)
    shutil.rmtree(cut / "checkpoint-4")
    shutil.rmtree(cut / "adapter")
    train_script.run(TrainConfig(resume=str(cut)))
    assert len(list((cut / "tensorboard").glob("events.out.tfevents.*"))) == 2
    read_again = scalars(cut)
    assert read_again == expected(cut)
    assert [s for s, _ in read_again["train/loss"]] == [1, 2, 3, 4]
    assert read_again["train/loss"] == read["train/loss"]  # the losses are the same bit for bit


def test_without_report_to_there_is_no_event_file(chat_file, tmp_path):
    run = train_script.run(tiny_config(chat_file, tmp_path / "run", max_steps=1))
    assert not (run.run_dir / "tensorboard").exists()
