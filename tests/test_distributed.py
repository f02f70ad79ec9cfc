"""Data parallelism on CPU (gloo): two torchrun ranks with batch 2 equal one process with batch 4,
DDP all-reduces once per optimizer step thanks to no_sync, a dead rank fails the run quickly, and a
broken launch environment is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp-data") / "chats.jsonl"
    rows = []
    for i in range(32):  # 32 = 8 global batches of 4: every rank always gets 2 examples
        question = f"How many rows of table t{i % 5} have a value above {i}?" + " Be brief." * (i % 4)
        answer = f"SELECT count(*) FROM t{i % 5} WHERE value > {i}" + " AND id > 0" * (i % 3)
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def common_args(chat_file: Path, out: Path) -> list[str]:
    return ["--model", "arch:tiny", "--data", str(chat_file), "--accum", "2", "--max-steps", str(STEPS),
            "--lr", "1e-2", "--optim", "adamw", "--seed", "3", "--out", str(out), "--dist-timeout", "30"]


def torchrun(nproc: int, args: list[str], env: dict | None = None, timeout: int = 400,
             script: list[str] = (str(ROOT / "train.py"),)) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-port", str(29500 + os.getpid() % 1000), *script, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_ranks_equal_one_process(chat_file, tmp_path):
    validate = ["--val-data", str(chat_file), "--eval-every", "2"]  # each rank sums its share of the tokens
    single = subprocess.run([sys.executable, str(ROOT / "train.py"), *common_args(chat_file, tmp_path / "single"),
                             "--batch-size", "4", *validate], capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = torchrun(2, [*common_args(chat_file, tmp_path / "ddp"), "--batch-size", "2", *validate])
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    ours, reference = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert len(ours) == len(reference) == STEPS
    assert reference[-1] < reference[0]
    for a, b in zip(ours, reference):
        assert a == pytest.approx(b, abs=1e-5)

    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["world_size"] == 2 and len(r["mem_ranks"]) == 2 for r in records)
    validated = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_loss" in r] == [2, 4] == [r["step"] for r in validated if "val_loss" in r]
    for a, b in zip(records, validated):
        assert a.get("val_loss", 0) == pytest.approx(b.get("val_loss", 0), abs=1e-5)
    # One gradient all-reduce per optimizer step (accum 2: without no_sync there would be 2 per step).
    assert all(r["grad_allreduces"] == 1 for r in records), [r.get("grad_allreduces") for r in records]

    adapter_ddp = load_file(str(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors"))
    adapter_single = load_file(str(tmp_path / "single" / "adapter" / "adapter_model.safetensors"))
    assert adapter_ddp.keys() == adapter_single.keys()
    for name in adapter_single:
        torch.testing.assert_close(adapter_ddp[name], adapter_single[name], rtol=0, atol=1e-5)


@pytest.mark.slow  # 13 s: a torchrun launch whose rank dies; the launch-environment check below is the fast half
def test_dead_rank_fails_fast_with_clear_error(chat_file, tmp_path):
    started = time.monotonic()
    proc = torchrun(2, [*common_args(chat_file, tmp_path / "dead"), "--batch-size", "2"], timeout=300,
                    script=[str(ROOT / "tests" / "rank_dies.py"), "1:2"])  # rank 1 exits (status 17) at step 2
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert elapsed < 120, f"took {elapsed:.0f} s"
    output = proc.stdout + proc.stderr
    assert "error: rank 0: lost the other ranks" in output, output[-3000:]
    assert "exitcode" in output and "17" in output  # torchrun names the rank that died


def test_incomplete_launch_environment_is_one_line(tmp_path):
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2"}  # no LOCAL_RANK, MASTER_ADDR, MASTER_PORT
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--model", "arch:tiny", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert proc.returncode == 2
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: incomplete distributed launch environment") and "LOCAL_RANK" in last
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # 28 s: three torchrun launches; one-process resume is tested in test_train_smoke
def test_resume_under_torchrun_continues_with_the_same_losses(chat_file, tmp_path):
    full = tmp_path / "full"
    proc = torchrun(2, [*common_args(chat_file, full), "--batch-size", "2", "--save-every", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    import shutil

    interrupted = tmp_path / "interrupted"
    shutil.copytree(full, interrupted)
    shutil.rmtree(interrupted / f"checkpoint-{STEPS}")
    resumed = torchrun(2, ["--resume", str(interrupted), "--out", str(interrupted)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert losses(interrupted) == pytest.approx(losses(full), abs=1e-6)

    # The data order depends on the number of ranks: resuming with another number is refused.
    single = subprocess.run([sys.executable, str(ROOT / "train.py"), "--resume", str(interrupted / "checkpoint-2"),
                             "--out", str(tmp_path / "other")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert single.returncode == 2
    assert "saved by 2 ranks" in single.stderr.strip().splitlines()[-1]
