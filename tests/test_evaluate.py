"""The evaluation pipeline end to end: a scripted model through evaluate_model, loading a trained
adapter the way its run trained it, merging it (faithfully), and the command line with its errors.

Fixtures written here: a Spider-layout directory (database/concert/concert.sqlite and dev.json) and
a tiny qlora "run" (arch:tiny, adapter with random non-zero LoRA B, config.json beside it); the BIRD
layout comes from test_formats. The prompts evaluation builds are checked token for token against
training's, with and without sample rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from test_formats import BIRD_RECORDS, write_bird_dir
from test_generate import ScriptedLM

from eval.evaluate import evaluate_model, evaluation_data, main, question_of, spread_indices
from eval.generate import prompt_token_ids
from models.load import load_model, load_tokenizer
from models.merge import load_for_eval, merge_adapter

ROOT = Path(__file__).resolve().parents[1]
RECORDS = [
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("List the names of singers from France.", "SELECT name FROM singer WHERE country = 'France'"),
    ("What is the age of the oldest singer?", "SELECT max(age) FROM singer"),
    ("Show each country and its number of singers.", "SELECT country, count(*) FROM singer GROUP BY country"),
    ("Which singers are older than the average?",
     "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)"),
]


@pytest.fixture(scope="module")
def spider_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spider")
    (root / "database" / "concert").mkdir(parents=True)
    conn = sqlite3.connect(root / "database" / "concert" / "concert.sqlite")
    conn.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)",
                     [(1, "Ann", "France", 25), (2, "Bob", "France", 35), (3, "Cy", "Japan", 45),
                      (4, "Di", "Japan", 33), (5, "Ed", "Chile", 52)])
    conn.commit()
    conn.close()
    records = [{"db_id": "concert", "question": q, "query": sql} for q, sql in RECORDS]
    (root / "dev.json").write_text(json.dumps(records))
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/<name>/{adapter/, config.json} as train.py writes them, for a qlora arch:tiny model whose
    LoRA B is random (a fresh adapter has B = 0 and would equal the base)."""
    run = tmp_path_factory.mktemp("run")
    model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device="cpu", seed=1234)
    generator = torch.Generator().manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data = torch.randn(param.shape, generator=generator) * 0.5
    model.save_pretrained(run / "adapter")
    (run / "config.json").write_text(json.dumps(
        {"model": "arch:tiny", "peft": "qlora", "quant": "nf4", "double_quant": True, "seed": 1234}))
    return run


# ----------------------------------------------------------------------------- helpers

def test_spread_indices_cover_the_whole_split() -> None:
    picked = spread_indices(301, 64)
    assert len(picked) == 64 and picked[0] == 0 and picked[-1] == 63 * 301 // 64 == 296
    assert all(b - a in (4, 5) for a, b in zip(picked, picked[1:]))
    assert spread_indices(5, None) == spread_indices(5, 10) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="--limit must be at least 1"):
        spread_indices(5, 0)


def test_examples_come_with_question_schema_and_database(spider_dir: Path) -> None:
    examples, db_root = evaluation_data(str(spider_dir / "dev.json"))
    assert db_root == spider_dir / "database"
    assert [question_of(e) for e in examples] == [q for q, _ in RECORDS]
    assert [e["answer"] for e in examples] == [sql for _, sql in RECORDS]
    assert "CREATE TABLE singer" in examples[0]["messages"][1]["content"]  # schema DDL in the prompt


# ----------------------------------------------------------------------------- evaluate_model

def test_scripted_model_gets_the_expected_scores(spider_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer("arch:tiny")
    examples, db_root = evaluation_data(str(spider_dir / "dev.json"))
    answers = [f"```sql\n{RECORDS[0][1]}\n```", RECORDS[1][1] + ";", RECORDS[2][1].lower(),
               "SELECT count(*), country FROM singer GROUP BY country",  # columns swapped: same result
               "SELECT name FROM singer WHERE age > 30"]  # average is 38: Bob and Di too many
    script = {tuple(prompt_token_ids(e["messages"], tokenizer)): tokenizer(a, add_special_tokens=False)["input_ids"]
              for e, a in zip(examples, answers)}
    lines: list[str] = []
    report = evaluate_model(ScriptedLM(script), tokenizer, examples, db_root, tmp_path / "eval",
                            batch_size=2, max_new_tokens=40, settings={"model": "scripted"}, log=lines.append)
    assert report["counts"]["execution_correct"] == 4
    assert report["counts"]["text_match_correct"] == 3  # fenced, trailing ';', lower case: all normalise away
    assert report["counts"]["exact_correct"] == 4  # Spider's exact-set match: select order does not count
    overall = {k: v for k, v in report["metrics"]["all"].items() if k != "partial"}
    assert overall == {"count": 5, "execution": 0.8, "exact_match": 0.8, "text_match": 0.6}
    assert report["settings"]["model"] == "scripted" and report["settings"]["limit"] is None
    assert (tmp_path / "eval" / "pred.txt").read_text().splitlines() == [
        f"{RECORDS[0][1]}\tconcert", f"{RECORDS[1][1]}\tconcert", f"{RECORDS[2][1].lower()}\tconcert",
        "SELECT count(*), country FROM singer GROUP BY country\tconcert",
        "SELECT name FROM singer WHERE age > 30\tconcert"]
    mistakes = (tmp_path / "eval" / "mistakes.csv").read_text().splitlines()
    assert len(mistakes) == 2 and mistakes[1].endswith(",4 rows vs 2 gold rows")
    assert any(line.startswith("execution  ") and line.split()[-1] == "0.800"
               for line in "\n".join(lines).splitlines())


def test_limit_picks_spread_examples_and_keeps_files_aligned(spider_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer("arch:tiny")
    examples, db_root = evaluation_data(str(spider_dir / "dev.json"))
    script = {tuple(prompt_token_ids(e["messages"], tokenizer)): tokenizer("SELECT 1", add_special_tokens=False)["input_ids"]
              for e in examples}
    report = evaluate_model(ScriptedLM(script), tokenizer, examples, db_root, tmp_path / "eval",
                            limit=3, log=None)
    assert report["metrics"]["all"]["count"] == 3 and report["counts"]["execution_correct"] == 0
    gold = (tmp_path / "eval" / "gold.txt").read_text().splitlines()
    assert gold == [f"{RECORDS[i][1]}\tconcert" for i in (0, 1, 3)]
    assert (tmp_path / "eval" / "pred.txt").read_text().splitlines() == ["SELECT 1\tconcert"] * 3


# ----------------------------------------------------------------------------- adapters and merging

def test_adapter_loads_as_trained_and_merges_faithfully(tiny_run: Path, tmp_path: Path) -> None:
    trained = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device="cpu", seed=1234)
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    set_peft_model_state_dict(trained, load_file(str(tiny_run / "adapter" / "adapter_model.safetensors")))
    trained.eval()
    input_ids = torch.randint(0, 49152, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = trained(input_ids=input_ids).logits

    model, _, description = load_for_eval(None, tiny_run / "adapter", compute_dtype=torch.float32, device="cpu")
    assert (description["model"], description["base_quant"]) == ("arch:tiny", "nf4")
    with torch.no_grad():
        assert torch.equal(model(input_ids=input_ids).logits, reference)  # the run's base, rebuilt exactly

    gaps = {}
    for base_weights in ("dequantized", "original"):
        out = merge_adapter(None, tiny_run / "adapter", tmp_path / base_weights, base_weights=base_weights)
        assert {"config.json", "model.safetensors", "tokenizer.json", "merge.json"} <= {p.name for p in out.iterdir()}
        assert json.loads((out / "merge.json").read_text())["base_weights"] == base_weights
        merged = transformers.AutoModelForCausalLM.from_pretrained(out)
        assert not any("lora" in name for name, _ in merged.named_parameters())
        with torch.no_grad():
            gaps[base_weights] = (merged(input_ids=input_ids).logits - reference).abs().max().item()
    # merged into the dequantised 4-bit weights: the trained function up to float rounding (~2e-6);
    # into the original float weights: off by the quantisation error the adapter never saw (~6e-2)
    assert gaps["dequantized"] < 1e-4
    assert gaps["original"] > 100 * gaps["dequantized"]


# ----------------------------------------------------------------------------- command line

def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


@pytest.mark.parametrize("argv, message", [
    (["--adapter", "/nonexistent/adapter", "--out", "OUT"], "error: adapter directory not found: /nonexistent/adapter"),
    (["--split", "dev", "--out", "OUT"], "error: unknown split 'dev' for the bundled benchmark"),
    (["--merge", "M", "--out", "OUT"], "error: --merge needs --adapter"),
    (["--compare", "/nonexistent", "--out", "OUT"], "error: evaluation report not found: /nonexistent"),
    (["--data", "/nonexistent.json", "--out", "OUT"], "error: data file not found: /nonexistent.json"),
    (["--data", "bundled", "--db-dir", "/tmp", "--out", "OUT"], "error: --tables and --db-dir apply to Spider files"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    assert _one_error_line(capsys).startswith(message)


@pytest.mark.parametrize("argv, message", [
    (["--limit", "0", "--out", "OUT"], "error: argument --limit: must be at least 1, got 0"),
    (["--batch-size", "x", "--out", "OUT"], "error: argument --batch-size: expected a whole number, got 'x'"),
    ([], "error: the following arguments are required: --out"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert _one_error_line(capsys) == message


def test_missing_database_is_an_error(spider_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "dev.json"
    data.write_text(json.dumps([{"db_id": "nope", "question": "How many?", "query": "SELECT 1"}]))
    assert main(["--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys) == f"error: database directory not found: {tmp_path / 'database'} " \
                                      f"(give --db-dir DIR holding <db_id>/<db_id>.sqlite)"
    assert main(["--data", str(data), "--db-dir", str(spider_dir / "database"), "--out", str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys).startswith("error: no schema for db_id 'nope'")  # data/formats.py's check
    assert not (tmp_path / "out").exists()


def test_paths_are_checked_before_any_model_is_loaded(tiny_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "afile").write_text("kept")
    out = ["--out", str(tmp_path / "out")]
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "metrics.jsonl").write_text("")
    for argv, line in (
        (["--out", str(tmp_path / "afile")], f"error: --out {tmp_path / 'afile'} is a file, not a directory"),
        (["--out", str(tmp_path / "afile" / "eval")],
         f"error: --out {tmp_path / 'afile' / 'eval'}: {tmp_path / 'afile'} is a file, not a directory"),
        (["--adapter", str(tiny_run / "adapter"), "--merge", str(tmp_path / "afile" / "m"), *out],
         f"error: --merge {tmp_path / 'afile' / 'm'}: {tmp_path / 'afile'} is a file, not a directory"),
        (["--adapter", str(tiny_run), *out],
         f"error: {tiny_run} is a train.py run directory: pass --adapter {tiny_run / 'adapter'}"),
        (["--adapter", str(unfinished), *out], f"error: {unfinished} is a train.py run directory without an "
                                               "adapter (the run did not finish)"),
    ):
        assert main(argv) == 2
        assert _one_error_line(capsys).startswith(line), argv
    assert (tmp_path / "afile").read_text() == "kept" and not (tmp_path / "out").exists()


def test_cli_error_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "eval.evaluate", "--adapter", str(tmp_path / "none"),
                             "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f"error: adapter directory not found: {tmp_path / 'none'}\n"


def test_cli_adapter_then_merged_model_give_the_same_predictions(
        tiny_run: Path, spider_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["--data", str(spider_dir / "dev.json"), "--limit", "3", "--batch-size", "2", "--max-new-tokens", "4"]
    assert main(["--adapter", str(tiny_run / "adapter"), *common, "--out", str(tmp_path / "adapter")]) == 0
    settings = json.loads((tmp_path / "adapter" / "eval.json").read_text())["settings"]
    assert (settings["model"], settings["base_quant"], settings["limit"]) == ("arch:tiny", "nf4", 3)

    assert main(["--adapter", str(tiny_run / "adapter"), "--merge", str(tmp_path / "merged"), *common,
                 "--out", str(tmp_path / "merged-eval"), "--compare", str(tmp_path / "adapter")]) == 0
    out = capsys.readouterr().out
    assert "gain (points)" in out
    assert (tmp_path / "merged" / "config.json").is_file()
    merged_settings = json.loads((tmp_path / "merged-eval" / "eval.json").read_text())["settings"]
    assert (merged_settings["base_quant"], merged_settings["merged_from"]) == ("none", str(tiny_run / "adapter"))
    # the dequantised merge computes what 4-bit base + adapter computed: same greedy tokens
    raw = [[json.loads(line)["raw"] for line in (tmp_path / d / "predictions.jsonl").read_text().splitlines()]
           for d in ("adapter", "merged-eval")]
    assert raw[0] == raw[1] and len(raw[0]) == 3


# ----------------------------------------------------------------------------- BIRD, sample rows

def test_cli_evaluates_a_bird_file_against_its_databases(tiny_run: Path, tmp_path: Path) -> None:
    bird = write_bird_dir(tmp_path)
    out = tmp_path / "bird-eval"
    assert main(["--adapter", str(tiny_run / "adapter"), "--data", str(bird / "dev.json"), "--batch-size", "3",
                 "--max-new-tokens", "4", "--sample-rows", "2", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["settings"]["db_root"] == str(bird / "dev_databases")
    assert (report["settings"]["sample_rows"], report["counts"]["examples"]) == (2, 3)
    gold = [json.loads(line)["gold"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert gold == [r["SQL"] for r in BIRD_RECORDS]
    examples, db_root = evaluation_data(str(bird), "dev", sample_rows=2)
    assert db_root == bird / "dev_databases" and "<EVIDENCE>" in examples[0]["messages"][1]["content"]


@pytest.mark.parametrize("sample_rows", [0, 3])
def test_training_and_evaluation_prompts_are_token_identical(sample_rows: int) -> None:
    """The prompt a bundled held-out question is trained with is, token for token, the one it is
    evaluated with, with and without sample rows (which make it longer by the rows' tokens)."""
    from data.formats import load_examples
    from data.tokenize import IGNORE_INDEX, tokenize_conversation

    tokenizer = load_tokenizer("arch:tiny")  # the bundled SmolLM2 tokenizer
    trained = load_examples("bundled", "heldout_db", sample_rows=sample_rows)
    evaluated, _ = evaluation_data("bundled", "heldout_db", sample_rows=sample_rows)
    plain, _ = evaluation_data("bundled", "heldout_db")
    for i in (0, 263, 527):
        input_ids, labels = tokenize_conversation(trained[i]["messages"], tokenizer)
        prompt = input_ids[: next(k for k, label in enumerate(labels) if label != IGNORE_INDEX)]
        assert prompt == prompt_token_ids(evaluated[i]["messages"], tokenizer)
        extra = len(prompt) - len(prompt_token_ids(plain[i]["messages"], tokenizer))
        assert extra == 0 if sample_rows == 0 else extra > 60
    assert ("example rows:" in evaluated[0]["messages"][1]["content"]) == (sample_rows > 0)


def test_sample_rows_must_not_be_negative(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--sample-rows", "-1", "--out", "OUT"])
    assert exit_info.value.code == 2
    assert _one_error_line(capsys) == "error: argument --sample-rows: must be at least 0, got -1"
