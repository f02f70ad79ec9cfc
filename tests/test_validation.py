"""Validation during training: val_loss is the token-weighted mean loss over the validation set, it changes
nothing of the training, --save-best and --save-total-limit leave the checkpoints Trainer would, and a
resumed run remembers which checkpoint is the best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import train as train_script
from data.formats import load_examples
from data.tokenize import IGNORE_INDEX, tokenize_conversation
from engine.checkpoint import rotate_checkpoints
from engine.config import TrainConfig
from models.load import load_tokenizer
from tests.test_train_smoke import chat_file, tiny_config  # noqa: F401 (the fixture)


@pytest.fixture(scope="module")
def val_file(tmp_path_factory) -> Path:
    """7 held-out chats whose answers differ in length (2 to 30 tokens): a mean of per-example means
    would differ from the token-weighted mean."""
    path = tmp_path_factory.mktemp("val") / "val.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"List {i} tables, please."},
                          {"role": "assistant", "content": " ".join(["SELECT name FROM t"] + ["UNION SELECT x FROM u"] * i)}]}
            for i in range(7)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def checkpoints(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*"))


def direct_validation_loss(model: torch.nn.Module, path: Path) -> tuple[float, float]:
    """(Σ token losses / Σ label tokens, mean of per-example means) of `model` over `path`, one example at a
    time through the model's own full-vocabulary logits, in eval mode without autograd."""
    tokenizer = load_tokenizer("arch:tiny")
    total, count, means = 0.0, 0, []
    model.eval()
    with torch.no_grad():
        for example in load_examples(str(path)):
            ids, labels = tokenize_conversation(example["messages"], tokenizer)
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
            targets = torch.tensor(labels[1:])
            keep = targets != IGNORE_INDEX
            loss = F.cross_entropy(logits[keep], targets[keep], reduction="sum").item()
            total, count = total + loss, count + int(keep.sum())
            means.append(loss / int(keep.sum()))
    model.train()
    return total / count, sum(means) / len(means)


def test_val_loss_is_the_token_weighted_mean_over_the_validation_set(chat_file, val_file, tmp_path):
    result = train_script.run(tiny_config(chat_file, tmp_path / "run", val_data=str(val_file), eval_every=4,
                                          max_steps=8, batch_size=3))
    rows = records(tmp_path / "run")
    assert [r["step"] for r in rows if "val_loss" in r] == [4, 8]
    assert all("val_ex" not in r for r in rows)
    weighted, mean_of_means = direct_validation_loss(result.model, val_file)  # the model as at step 8
    assert abs(rows[-1]["val_loss"] - weighted) < 1e-5, (rows[-1]["val_loss"], weighted)
    assert abs(weighted - mean_of_means) > 1e-3  # the normalisation is what is tested
    assert rows[3]["val_loss"] != rows[-1]["val_loss"]  # step 4 saw other weights


def test_validation_changes_nothing_of_the_training(chat_file, val_file, tmp_path):
    """Dropout draws from the RNG in every step: a validation that consumed it, or left the model in eval
    mode, would change every later loss."""
    common = dict(lora_dropout=0.1, max_steps=4)
    plain = train_script.run(tiny_config(chat_file, tmp_path / "plain", **common))
    watched = train_script.run(tiny_config(chat_file, tmp_path / "watched", val_data=str(val_file), eval_every=1,
                                           **common))
    assert [r["loss"] for r in plain.records] == [r["loss"] for r in watched.records]
    assert [r["grad_norm"] for r in plain.records] == [r["grad_norm"] for r in watched.records]
    assert all("val_loss" in r for r in watched.records) and all("val_loss" not in r for r in plain.records)
    a, b = (load_file(str(d / "adapter" / "adapter_model.safetensors")) for d in (tmp_path / "plain", tmp_path / "watched"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_execution_accuracy_during_training_is_the_evaluation_of_the_model_at_that_step(tmp_path):
    from eval.evaluate import evaluate_model, evaluation_data, spread_indices
    from tests.test_formats import write_spider_csv, write_spider_dir

    database = write_spider_dir(tmp_path) / "database"
    csv = write_spider_csv(tmp_path / "train.csv")
    watched = train_script.run(TrainConfig(model="arch:tiny", data=str(csv), db_dir=str(database), max_steps=1,
                                           optim="adamw", seed=3, val_data=str(csv), eval_ex=2,
                                           out=str(tmp_path / "watched")))
    last = records(tmp_path / "watched")[-1]
    examples, db_root = evaluation_data(str(csv), db_dir=str(database))
    picked = [examples[i] for i in spread_indices(len(examples), 2)]
    direct = evaluate_model(watched.model, load_tokenizer("arch:tiny"), picked, db_root, None, log=None)
    assert last["val_ex"] == direct["metrics"]["all"]["execution"] and direct["counts"]["examples"] == 2
    assert "val_loss" in last


def test_rotation_keeps_what_trainer_keeps(tmp_path):
    """Trainer._rotate_checkpoints: the newest `limit`, the best moved among them, never the latest; with
    limit 1 and a best that is not the latest, two."""
    cases = [((2, None), [8, 10]), ((2, 4), [4, 10]), ((3, 4), [4, 8, 10]), ((1, 4), [4, 10]), ((1, 10), [10]),
             ((9, 4), [2, 4, 6, 8, 10]), ((1, 99), [10])]
    for (limit, best), kept in cases:
        run = tmp_path / f"run-{limit}-{best}"
        for step in (2, 4, 6, 8, 10):
            (run / f"checkpoint-{step}").mkdir(parents=True)
            (run / f"checkpoint-{step}" / "training_state.pt").write_bytes(b"x")
        (run / "checkpoint-12").mkdir()  # incomplete (no training_state.pt): not a checkpoint, left alone
        removed = rotate_checkpoints(run, limit, best_step=best)
        assert checkpoints(run) == sorted(kept + [12]), (limit, best)
        assert sorted(int(p.name.split("-")[1]) for p in removed) == sorted({2, 4, 6, 8, 10} - set(kept))
        assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # nothing half-deleted left


def test_save_best_alone_writes_a_checkpoint_at_each_improvement_only(chat_file, val_file, tmp_path):
    run = train_script.run(tiny_config(chat_file, tmp_path / "best", val_data=str(val_file), eval_every=2,
                                       max_steps=6, save_best=True))
    improved, low = [], float("inf")
    for r in records(run.run_dir):
        if "val_loss" in r and r["val_loss"] < low:
            improved.append(r["step"])
            low = r["val_loss"]
    assert checkpoints(run.run_dir) == improved and improved[0] == 2


def test_save_total_limit_keeps_the_best_and_a_resumed_run_remembers_it(chat_file, val_file, tmp_path):
    watch = dict(val_data=str(val_file), eval_every=2, save_best=True, save_every=1, save_total_limit=1,
                 scheduler="constant", warmup=0)  # constant: a run extended from 4 to 6 steps equals a 6-step one
    full = train_script.run(tiny_config(chat_file, tmp_path / "full", max_steps=6, **watch))
    rows = records(tmp_path / "full")
    validated = [(r["val_loss"], r["step"]) for r in rows if "val_loss" in r]
    assert [s for _, s in validated] == [2, 4, 6]
    best = min(validated)[1]
    assert checkpoints(full.run_dir) == sorted({best, 6})  # limit 1: the latest, and the best beside it

    # The same run stopped at step 4, then resumed to 6: the same losses and validations, and the best of
    # the steps before the resume survives the rotations after it.
    part = train_script.run(tiny_config(chat_file, tmp_path / "part", max_steps=4, **watch))
    best_of_4 = min(validated[:2])[1]
    assert checkpoints(part.run_dir) == sorted({best_of_4, 4})
    resumed = train_script.run(TrainConfig(resume=str(part.run_dir), max_steps=6))
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in full.records[4:]]
    assert [(r["step"], r.get("val_loss")) for r in records(part.run_dir)] == [(r["step"], r.get("val_loss")) for r in rows]
    assert checkpoints(part.run_dir) == checkpoints(full.run_dir)

    # How a run is watched may change on resume: here, validation at every step from now on.
    extended = train_script.run(TrainConfig(resume=str(full.run_dir), max_steps=8, eval_every=1))
    assert [r["step"] for r in extended.records] == [7, 8] and all("val_loss" in r for r in extended.records)


@pytest.mark.parametrize("overrides, message", [
    (dict(eval_every=2), "--eval-every N needs validation data"),
    (dict(save_best=True), "--save-best needs validation data"),
    (dict(eval_ex=4), "--eval-ex K needs validation data"),
    (dict(save_total_limit=2), "--save-total-limit N limits the checkpoints"),
    (dict(save_total_limit=0, save_every=1), "--save-total-limit must be >= 1"),
    (dict(val_split="train"), "--val-split train is the split trained on"),
])
def test_validation_settings_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


@pytest.mark.parametrize("overrides, message", [
    (dict(val_data="bundled"), "holds several splits: name one with --val-split"),
    (dict(val_split="dev"), "is one file, without splits"),
    (dict(data="dummy:32", val_split="test"), "is token ids"),
])
def test_validation_data_that_cannot_be_read_is_one_line(chat_file, tmp_path, capsys, overrides, message):
    settings = dict(model="arch:tiny", data=str(chat_file), max_steps=1, out=str(tmp_path / "run")) | overrides
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    assert train_script.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_execution_accuracy_that_could_not_run_fails_before_the_first_step(tmp_path, capsys):
    from tests.test_formats import write_spider_csv

    csv = write_spider_csv(tmp_path / "train.csv")
    (tmp_path / "no-databases").mkdir()
    out = tmp_path / "run"
    status = train_script.main(["--model", "arch:tiny", "--data", str(csv), "--no-schema", "--db-dir",
                                str(tmp_path / "no-databases"), "--val-data", str(csv), "--eval-ex", "2",
                                "--max-steps", "3", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and err[-1].startswith("error: database for db_id 'concert' not found"), err[-3:]
    assert not (out / "metrics.jsonl").exists() and not (out / "config.json").exists()
