"""train.py end to end on the tiny preset: only LoRA weights change, the adapter reloads with
PeftModel and gives the same logits, --resume reproduces the uninterrupted losses exactly, and bad
input fails with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train as train_script
from engine.config import TrainConfig
from models.load import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory) -> Path:
    """24 small text-to-SQL chats of varying length, in the chat JSONL format."""
    path = tmp_path_factory.mktemp("data") / "chats.jsonl"
    tables = ["singer", "concert", "stadium", "song"]
    rows = []
    for i in range(24):
        table = tables[i % 4]
        question = f"How many {table}s have an id above {i}?" + " Please answer." * (i % 3)
        answer = f"SELECT count(*) FROM {table} WHERE id > {i}"
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_config(chat_file: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(model="arch:tiny", data=str(chat_file), batch_size=2, accum=2, max_steps=6, lr=1e-2,
                    optim="adamw_8bit", out=str(out), seed=7)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_only_lora_changes_and_adapter_reloads(chat_file, tmp_path):
    result = train_script.run(tiny_config(chat_file, tmp_path / "run", ckpt=True))
    trained = result.model
    fresh = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device=torch.device("cpu"), seed=7)
    before = {k: v for k, v in fresh.state_dict().items()}
    after = trained.state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "training changed nothing"
    assert all("lora_" in k for k in changed), f"non-LoRA tensors changed: {sorted(k for k in changed if 'lora_' not in k)[:3]}"
    assert any("lora_B" in k for k in changed)

    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["loss"] < records[0]["loss"]
    assert set(records[0]["mem"]) >= {"params_4bit", "params_frozen", "params_trainable", "grads", "optimizer",
                                      "optimizer_paged", "activations", "allocated", "peak_allocated", "reserved"}

    # The saved adapter on top of the same base reproduces the trained model's logits.
    from peft import PeftModel

    batch = torch.tensor([[1, 5, 9, 200, 31, 7, 2]])
    trained.eval()
    with torch.no_grad():
        expected = trained(input_ids=batch).logits
    base = trained.unload()  # strip the LoRA layers: the frozen 4-bit base as loaded
    reloaded = PeftModel.from_pretrained(base, result.run_dir / "adapter")
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=batch).logits, expected, rtol=0, atol=1e-5)


def test_resume_reproduces_losses(chat_file, tmp_path):
    full = train_script.run(tiny_config(chat_file, tmp_path / "full", save_every=3))
    losses = [r["loss"] for r in full.records]
    assert (tmp_path / "full" / "checkpoint-3" / "training_state.pt").is_file()

    # A second run directory that only has the step-3 checkpoint, as if interrupted after step 3.
    import shutil

    interrupted = tmp_path / "interrupted"
    shutil.copytree(tmp_path / "full", interrupted)
    shutil.rmtree(interrupted / "checkpoint-6")
    resumed = train_script.run(TrainConfig(resume=str(interrupted), out=str(interrupted)))
    assert [r["step"] for r in resumed.records] == [4, 5, 6]
    assert [r["loss"] for r in resumed.records] == losses[3:]  # exactly, on CPU
    lines = (interrupted / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]


BAD_INPUT = [
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--peft", "prefix"], "invalid choice"),
    (["--data", "/nonexistent/file.jsonl", "--model", "arch:tiny"], "/nonexistent/file.jsonl"),
    (["--model", "arch:no-such-preset"], "no-such-preset"),
    (["--cuda-graphs", "--lora-dropout", "0.1"], "--cuda-graphs replays fixed kernels"),
    (["--model", "arch:tiny", "--cuda-graphs", "--device", "cpu"], "--cuda-graphs needs a CUDA device"),
    (["--model", "arch:tiny", "--offload-embeddings", "--device", "cpu"], "--offload-embeddings is about CUDA memory"),
    (["--model", "arch:tiny", "--cublas-workspace-mib", "8", "--device", "cpu"], "--cublas-workspace-mib is about CUDA"),
    (["--cublas-workspace-mib", "0"], "--cublas-workspace-mib must be >= 1"),
    (["--cuda-graphs", "--memory-snapshot", "s.pickle"], "--memory-snapshot cannot record"),
    (["--chunked-loss", "--peft", "full"], "--chunked-loss needs the label-only loss"),
    (["--sample-rows", "-1"], "--sample-rows must be >= 0"),
    (["--sample-rows", "2", "--data", "dummy:64"], "--sample-rows shows database rows"),
    (["--eval", "--eval-split", "dev"], "--eval-split 'dev' is not a split of the bundled benchmark"),
]


def _one_error_line(stderr: str, message: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], stderr[-2000:]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    try:
        status = train_script.main([*args, "--out", str(tmp_path / "x")])
    except SystemExit as exit_:  # argparse's own errors end the process, as in `python train.py`
        status = exit_.code
    assert status == 2
    _one_error_line(capsys.readouterr().err, message)
    assert not (tmp_path / "x" / "metrics.jsonl").exists()


@pytest.mark.parametrize("args, message", [BAD_INPUT[1], BAD_INPUT[2], BAD_INPUT[5]])
def test_bad_input_in_a_real_process_is_one_line_and_exit_2(args, message, tmp_path):
    """The same through `python train.py`: an argparse error, a missing file, a device check."""
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    _one_error_line(proc.stderr, message)
    assert not (tmp_path / "x" / "metrics.jsonl").exists()


def test_bird_data_with_sample_rows_trains_and_records_the_setting(tmp_path):
    """BIRD's layout as training data: train.json with train_databases/ beside it, evidence and two
    rows per table in every prompt; the setting is saved with the run (it defines what was trained)."""
    from test_formats import write_bird_dir

    bird = write_bird_dir(tmp_path)
    cfg = TrainConfig(model="arch:tiny", data=str(bird / "train.json"), sample_rows=2, max_length=1024,
                      batch_size=3, max_steps=2, optim="adamw", out=str(tmp_path / "run"), seed=7)
    result = train_script.run(cfg)
    assert [r["step"] for r in result.records] == [1, 2] and result.records[0]["tokens"] > 3 * 300
    assert json.loads((tmp_path / "run" / "config.json").read_text())["sample_rows"] == 2
