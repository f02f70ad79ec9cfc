"""The recipes in docs/recipes/ parse to the seeds' settings and each runs a step on the tiny preset, with
data files like the ones it names, where it names them (relative to the current directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import train as train_script
from engine.config import parse_config
from tests.test_formats import write_spider_csv, write_spider_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "docs" / "recipes"


def spider_csvs(cwd: Path) -> None:
    """Seed 000's layout: data/train.csv, data/validation.csv, data/database/<db_id>/<db_id>.sqlite."""
    (cwd / "data").mkdir()
    write_spider_dir(cwd / "spider").joinpath("database").rename(cwd / "data" / "database")
    write_spider_csv(cwd / "data" / "train.csv")
    write_spider_csv(cwd / "data" / "validation.csv")


def yoda_jsonl(cwd: Path) -> None:
    rows = [("The weather is nice today.", "Nice today, the weather is."),
            ("You must learn patience.", "Patience you must learn."),
            ("I am your father.", "Your father, I am.")] * 6
    (cwd / "yoda_sentences.jsonl").write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in rows))


def koalpaca_jsonl(cwd: Path) -> None:
    rows = [{"instruction": "양자화란 무엇인가요?", "output": "모델의 수를 더 적은 비트로 나타내는 방법입니다.",
             "url": "https://kin.naver.com/qna/1"},
            {"instruction": "LoRA를 한 문장으로 설명해 주세요.", "output": "가중치 변화를 저랭크 행렬 두 개로 학습합니다.",
             "url": "https://kin.naver.com/qna/2"}] * 5
    (cwd / "koalpaca.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


# The book's experiment labels every position of 16 x 256 random tokens: on the tiny preset (SmolLM2's
# 49,152-token vocabulary) that is 0.8 GB of logits in CPU-emulated fp16, half a minute for one step. Its
# step here runs at batch 2; the recipe's batch 16 is checked as parsed.
SMALLER = {"book-memory-experiment.yaml": ["--batch-size", "2"],
           # CUDA graphs need a GPU: the CPU step runs the same recipe eagerly.
           "bundled-text-to-sql-gpu.yaml": ["--batch-size", "2", "--no-cuda-graphs"]}

# recipe -> (its data, settings it must hold)
CASES = {
    "text-to-sql-qlora.yaml": (spider_csvs, dict(model="naver-hyperclovax/HyperCLOVAX-SEED-Text-Instruct-1.5B", lr=2e-5,
                                                 batch_size=1, accum=4, max_steps=100, optim="adamw", schema=False,
                                                 val_data="data/validation.csv", eval_ex=32, save_best=True)),
    "yoda-prompt-completion-sft.yaml": (yoda_jsonl, dict(model="microsoft/Phi-3-mini-4k-instruct", lora_r=8,
                                                         lora_alpha=16, lora_dropout=0.05, max_length=64, batch_size=16,
                                                         max_steps=-1, epochs=10, lr=3e-4, ckpt=True, packing=True)),
    "koalpaca-alpaca.yaml": (koalpaca_jsonl, dict(model="meta-llama/Llama-3.2-1B-Instruct", lora_r=4, lora_alpha=8,
                                                  batch_size=2, accum=4, warmup=1.0, max_steps=1000,
                                                  save_total_limit=3, save_every=500)),
    "bundled-text-to-sql-gpu.yaml": (lambda cwd: None, dict(model="smollm2-135m-instruct", data="bundled",
                                                           max_length=672, batch_size=16, max_steps=-1, epochs=3,
                                                           fused_lora=True, cuda_graphs=True, save_every=275)),
    "book-memory-experiment.yaml": (lambda cwd: None, dict(model="arch:polyglot-ko-1.3b", data="dummy:256",
                                                          compute_dtype="fp16", batch_size=16, optim="adamw")),
}


def test_every_recipe_is_tested():
    assert sorted(p.name for p in RECIPES.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_recipe_parses_to_its_seeds_settings_and_runs_a_step(name, tmp_path, monkeypatch, capsys):
    write_data, settings = CASES[name]
    cfg = parse_config(["--config", str(RECIPES / name)])
    assert {key: getattr(cfg, key) for key in settings} == settings

    monkeypatch.chdir(tmp_path)
    write_data(tmp_path)
    out = tmp_path / "run"
    status = train_script.main(["--config", str(RECIPES / name), "--model", "arch:tiny", "--max-steps", "1",
                                *SMALLER.get(name, []), "--out", str(out)])
    assert status == 0, capsys.readouterr().err[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1] and rows[0]["loss"] > 0
    saved = json.loads((out / "config.json").read_text())
    expected = {**settings, "model": "arch:tiny", "max_steps": 1, **({"batch_size": 2} if name in SMALLER else {})}
    if "--no-cuda-graphs" in SMALLER.get(name, []):
        expected["cuda_graphs"] = False
    assert {key: saved[key] for key in expected} == expected
    if cfg.val_data:  # validated at its last (only) step
        assert "val_loss" in rows[0] and ("val_ex" in rows[0]) == bool(cfg.eval_ex)
