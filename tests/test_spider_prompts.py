"""Training on a user's Spider data uses the prompt evaluating it uses: the same schema source
(--db-dir / --tables on both commands), and a schema that cannot be found is an error, not a silent
difference of 130 tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import train as train_script
from data.tokenize import IGNORE_INDEX
from engine.config import TrainConfig
from engine.recipe import load_train_data
from eval.evaluate import evaluation_data
from eval.generate import prompt_token_ids
from models.load import load_model, load_tokenizer
from tests.test_formats import write_spider_csv, write_spider_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    return load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device=torch.device("cpu"))


@pytest.fixture
def spider_csv(tmp_path) -> tuple[Path, Path]:
    """Seed 000's layout: the CSVs in one place, Spider's database/ in another."""
    database = write_spider_dir(tmp_path / "elsewhere") / "database"
    data = tmp_path / "data"
    data.mkdir()
    return write_spider_csv(data / "train.csv"), database


def training_prompts(cfg: TrainConfig, model) -> list[list[int]]:
    """The prompt part of each training example as train.py builds it: the tokens before the first label."""
    data, _ = load_train_data(cfg, model, say=lambda _: None)
    return [ids[:next(i for i, y in enumerate(labels) if y != IGNORE_INDEX)]
            for ids, labels in zip(data.input_ids, data.labels)]


@pytest.mark.parametrize("schema", [True, False])
def test_train_and_evaluate_build_the_same_prompt_tokens(spider_csv, tiny, schema):
    csv, database = spider_csv
    flags = dict(db_dir=str(database)) if schema else dict(db_dir=str(database), schema=False)  # execution only
    trained = training_prompts(TrainConfig(model="arch:tiny", data=str(csv), **flags), tiny)
    examples, db_root = evaluation_data(str(csv), db_dir=str(database), schema=schema)
    tokenizer = load_tokenizer("arch:tiny")
    evaluated = [prompt_token_ids(e["messages"], tokenizer) for e in examples]
    assert db_root == database and len(evaluated) == len(trained) == 3
    assert trained == evaluated  # token for token, every example
    text = tokenizer.decode(trained[0])
    assert ("CREATE TABLE singer" in text, "<SCHEMA>" in text) == (schema, schema)
    if schema:  # the schema is what makes the difference: the same question is longer with it
        bare = training_prompts(TrainConfig(model="arch:tiny", data=str(csv), schema=False), tiny)
        assert all(len(a) > len(b) + 20 for a, b in zip(trained, bare))


def test_tables_json_gives_the_same_prompt_on_both_sides(spider_csv, tiny):
    csv, database = spider_csv
    tables = database.parent / "tables.json"
    trained = training_prompts(TrainConfig(model="arch:tiny", data=str(csv), tables=str(tables)), tiny)
    examples, _ = evaluation_data(str(csv), db_dir=str(database), tables=str(tables))
    # evaluation also reads the SQLite files (preferred over tables.json): train with both to compare
    both = training_prompts(TrainConfig(model="arch:tiny", data=str(csv), tables=str(tables), db_dir=str(database)),
                            tiny)
    tokenizer = load_tokenizer("arch:tiny")
    assert both == [prompt_token_ids(e["messages"], tokenizer) for e in examples]
    assert "CREATE TABLE" in tokenizer.decode(trained[0])


def run_train(capsys, *args: str) -> tuple[int, list[str]]:
    status = train_script.main(["--model", "arch:tiny", "--max-steps", "1", *args])
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]  # progress bars, then the error


def test_spider_data_without_a_schema_is_one_line_unless_no_schema(spider_csv, tmp_path, capsys):
    csv, database = spider_csv
    status, err = run_train(capsys, "--data", str(csv), "--out", str(tmp_path / "run"))
    assert status == 2 and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    assert "no schema for its text-to-SQL prompts" in err[-1] and "--db-dir" in err[-1] and "--no-schema" in err[-1]
    assert not (tmp_path / "run").exists()
    for flags, message in ((["--no-schema", "--tables", str(database.parent / "tables.json")],
                            "--no-schema leaves the schema out"),
                           (["--db-dir", str(tmp_path / "none")], "database directory not found"),
                           (["--data", "bundled", "--db-dir", str(database)], "the bundled benchmark has its own")):
        status, err = run_train(capsys, "--data", str(csv), *flags, "--out", str(tmp_path / "run"))
        assert status == 2 and err[-1].startswith("error: ") and message in err[-1], err
    assert not (tmp_path / "run").exists()
