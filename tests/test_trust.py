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
    assert state["train_state"]["step"] == 2 and set(state) == {"optimizer", "scheduler", "rng", "train_state", "config"}


def _edit_config(checkpoint: Path, **changes) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, **changes}))


def _drop_saved_config(checkpoint: Path) -> None:
    """A training_state.pt as saved before the config rode along with it: the shape check must catch it."""
    state = read_training_state(checkpoint / "training_state.pt")
    del state["config"]
    torch.save(state, checkpoint / "training_state.pt")
    _edit_config(checkpoint, lora_r=4)


DAMAGES = {  # what happens to checkpoint-2 -> the line --resume prints
    "zero-byte weights": (lambda c: (c / "trainable.safetensors").write_bytes(b""),
                          "trainable.safetensors is damaged (Error while deserializing header: header too small)"),
    "weights missing": (lambda c: (c / "trainable.safetensors").unlink(), "trainable.safetensors is missing"),
    "zero-byte state": (lambda c: (c / "training_state.pt").write_bytes(b""), "training_state.pt is damaged (EOFError)"),
    "cut state": (lambda c: (c / "training_state.pt").write_bytes((c / "training_state.pt").read_bytes()[:300]),
                  "training_state.pt is damaged (PytorchStreamReader failed reading zip archive"),
    "foreign config": (lambda c: (c / "config.json").write_text('{"hidden_size": 5}'),
                       "config.json is not a train.py config: unknown keys hidden_size"),
    "empty config": (lambda c: (c / "config.json").write_text(""),
                     "config.json is not a train.py config (Expecting value: line 1 column 1 (char 0))"),
    "another run's config": (lambda c: _edit_config(c, lora_r=4),
                             "its config.json is not the one saved with its training state: lora_r 4 (saved: 16)"),
    "another run's config, old state": (_drop_saved_config, "has shape (4, 128) in the model its config.json builds, "
                                        "(16, 128) in trainable.safetensors"),
}


@pytest.fixture(scope="module")
def two_checkpoints(chat_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "run"
    assert train_script.main(chats(chat_file, out, "--max-steps", "2", "--save-every", "1")) == 0
    return out


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_or_foreign_checkpoint_is_one_line_and_changes_nothing(damage, two_checkpoints, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(two_checkpoints, run)
    spoil, message = DAMAGES[damage]
    spoil(run / "checkpoint-2")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert train_script.main(["--resume", str(run), "--max-steps", "4"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    if "damaged" in message or "missing" in message:  # and says where a good one is
        assert last.endswith(f"resume from an earlier one: python train.py --resume {run / 'checkpoint-1'}")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def chats(chat_file: Path, out: Path, *extra: str) -> list[str]:
    return ["--model", "arch:tiny", "--data", str(chat_file), "--max-steps", "4", "--optim", "adamw", "--lr", "1e-2",
            "--seed", "7", "--out", str(out), *extra]


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_stopped_before_its_first_checkpoint_is_taken_over_or_restarted(chat_file, tmp_path):
    reference = tmp_path / "reference"
    assert train_script.main(chats(chat_file, reference)) == 0
    # What a kill during the first checkpoint write leaves: config, some records, a temporary directory.
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.json").write_text((reference / "config.json").read_text().replace(str(reference), str(stopped)))
    (stopped / "metrics.jsonl").write_text((reference / "metrics.jsonl").read_text().splitlines()[0] + "\n{\"step\": 2, \"lo")
    (stopped / ".checkpoint-2.x1y2.tmp").mkdir()
    assert train_script.main(chats(chat_file, stopped)) == 0  # the same command takes the directory over
    assert losses(stopped) == losses(reference) and not list(stopped.glob(".*.tmp"))
    # --resume on such a directory starts it again at step 0.
    (stopped / "metrics.jsonl").write_text((reference / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    import shutil

    shutil.rmtree(stopped / "adapter")
    assert train_script.main(["--resume", str(stopped)]) == 0
    assert losses(stopped) == losses(reference)
    # A finished run (it has an adapter) is never overwritten by a new one.
    assert train_script.main(chats(chat_file, stopped)) == 2


def test_resume_repairs_a_metrics_line_cut_by_a_kill(chat_file, tmp_path):
    full = tmp_path / "full"
    assert train_script.main(chats(chat_file, full, "--save-every", "2")) == 0
    import shutil

    interrupted = tmp_path / "interrupted"
    shutil.copytree(full, interrupted)
    shutil.rmtree(interrupted / "checkpoint-4")
    lines = (interrupted / "metrics.jsonl").read_text().splitlines()
    (interrupted / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # step 4, cut short
    assert train_script.main(["--resume", str(interrupted), "--out", str(interrupted)]) == 0
    assert losses(interrupted) == losses(full)


def test_ctrl_c_is_one_line_and_exit_130(chat_file, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    # A shell's background job (`cmd &`) starts with SIGINT ignored, and an ignored signal stays ignored in
    # its children: Ctrl-C's default comes back in the child, as a terminal would deliver it.
    proc = subprocess.Popen([sys.executable, str(root / "train.py"), *chats(chat_file, out)[:6], "--max-steps", "100000",
                             "--save-every", "2", "--out", str(out)], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not (out / "checkpoint-2").is_dir() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith("interrupted at step ") and f"continue with: python train.py --resume {out}" in last


def test_out_that_is_a_file_is_one_line(chat_file, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a directory")
    assert train_script.main(chats(chat_file, out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: --out {out} is a file, not a directory"
    assert out.read_text() == "not a directory"


def test_out_under_a_file_or_unwritable_is_one_line_before_any_work(chat_file, tmp_path, capsys):
    import os

    (tmp_path / "taken").write_text("not a directory")
    assert train_script.main(chats(chat_file, tmp_path / "taken" / "run")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --out {tmp_path / 'taken' / 'run'}: {tmp_path / 'taken'} is a file, not a directory")
    if os.geteuid() == 0:  # root writes through any mode bits: nothing to refuse
        return
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert train_script.main(chats(chat_file, locked / "run")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --out {locked / 'run'}: {locked} is not writable by this user")


def _fail_writes(monkeypatch, module, name: str, when) -> None:
    """Patch module.name so that a call for which when(args) holds fails as a full disk does."""
    import errno
    import os

    original = getattr(module, name)

    def write(*args, **kwargs):
        if when(args):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, write)


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_says_how_to_continue(
        chat_file, tmp_path, capsys, monkeypatch):
    import engine.checkpoint

    reference = tmp_path / "reference"
    assert train_script.main(chats(chat_file, reference, "--save-every", "1")) == 0
    run = tmp_path / "run"
    _fail_writes(monkeypatch, engine.checkpoint, "save_file", lambda args: ".checkpoint-3." in str(args[1]))
    capsys.readouterr()
    assert train_script.main(chats(chat_file, run, "--save-every", "1")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: could not write checkpoint-3 in {run} (No space left on device); checkpoint-2 is kept: free space, "
        f"then python train.py --resume {run}")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-1", "checkpoint-2", "config.json", "metrics.jsonl",
                                                     "train.log"]
    assert (run / "train.log").read_text().splitlines()[-1].startswith("error: could not write checkpoint-3")
    monkeypatch.undo()  # space freed: the advice works and the run ends as if the disk never filled
    assert train_script.main(["--resume", str(run)]) == 0
    assert losses(run) == losses(reference)
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() == (
        reference / "adapter" / "adapter_model.safetensors").read_bytes()


def test_a_full_disk_during_the_adapter_write_keeps_the_last_checkpoint(chat_file, tmp_path, capsys, monkeypatch):
    import peft

    run = tmp_path / "run"
    _fail_writes(monkeypatch, peft.PeftModel, "save_pretrained", lambda args: ".adapter." in str(args[1]))
    capsys.readouterr()
    assert train_script.main(chats(chat_file, run, "--save-every", "2")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: could not write adapter in {run} (No space left on device); checkpoint-4 is kept: free space, "
        f"then python train.py --resume {run}")
    assert not list(run.glob(".*")) and not (run / "adapter").exists()
    monkeypatch.undo()
    assert train_script.main(["--resume", str(run)]) == 0 and (run / "adapter" / "adapter_config.json").is_file()


def test_resume_means_what_a_user_expects(chat_file, tmp_path, capsys):
    import shutil

    constant = ("--scheduler", "constant", "--warmup", "0", "--save-every", "2")
    six = tmp_path / "six"
    assert train_script.main(chats(chat_file, six, *constant, "--max-steps", "6")) == 0
    four = tmp_path / "four"
    assert train_script.main(chats(chat_file, four, *constant)) == 0  # --max-steps 4

    # A finished run is extended in place; harmless flags are taken; on a constant schedule the continued
    # steps are those of a run given 6 steps from the start, bit for bit.
    moved = tmp_path / "moved"
    shutil.move(four, moved)  # and resumed where it now is, not at the path inside its config.json
    assert train_script.main(["--resume", str(moved), "--max-steps", "6", "--log-every", "3"]) == 0
    assert losses(moved) == losses(six) and not four.exists()
    assert json.loads((moved / "config.json").read_text())["out"] == str(moved)

    # Nothing left to train, a flag that changes what is trained, another run as --out: one line each.
    before = (six / "metrics.jsonl").read_text()
    for argv, message in ((["--resume", str(moved)], "is at step 6 of the run's 6"),
                          (["--resume", str(moved), "--max-steps", "8", "--lr", "1"], "cannot change --lr"),
                          (["--resume", str(moved / "checkpoint-4"), "--max-steps", "8", "--out", str(six)],
                           f"--out {six} holds another run")):
        assert train_script.main(argv) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert (six / "metrics.jsonl").read_text() == before and losses(moved) == losses(six)


def test_run_files_are_written_with_the_users_umask(tmp_path):
    import os

    from data.files import atomic_directory, atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "config.json", {"a": 1})
        with atomic_directory(tmp_path / "checkpoint-1") as tmp:
            atomic_write_json(tmp / "config.json", {})
    finally:
        os.umask(old)
    assert oct((tmp_path / "config.json").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "checkpoint-1").stat().st_mode & 0o777) == "0o755"


# Three kill points by default (mid-checkpoint, mid-metrics line, mid-adapter: each a different half-written
# file); the other three, 7 s each on 2 cores, with -m slow.
_SLOW = pytest.mark.slow
KILL_POINTS = [pytest.param("after-step:1", marks=_SLOW), pytest.param("checkpoint:2", marks=_SLOW),
               pytest.param("after-step:3", marks=_SLOW), "checkpoint:4", "metrics:5", "adapter"]


@pytest.fixture(scope="module")
def uninterrupted(chat_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert train_script.main(chats(chat_file, out, "--max-steps", "6", "--save-every", "2")) == 0
    return out


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_sigkill_anywhere_leaves_a_run_that_ends_as_if_never_killed(point, chat_file, uninterrupted, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"
    command = chats(chat_file, out, "--max-steps", "6", "--save-every", "2")
    killed = subprocess.run([sys.executable, str(root / "tests" / "killed_at.py"), point, *command], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    has_checkpoint = any((p / "training_state.pt").is_file() for p in out.glob("checkpoint-*"))
    # The advice the run gives: resume when there is a checkpoint, else the same command again.
    again = ["--resume", str(out)] if has_checkpoint else command
    assert train_script.main(again) == 0
    assert losses(out) == losses(uninterrupted)
    adapter, reference = (load_file(str(d / "adapter" / "adapter_model.safetensors")) for d in (out, uninterrupted))
    assert adapter.keys() == reference.keys() and all(torch.equal(adapter[k], reference[k]) for k in reference)
    assert [p.name for p in out.rglob(".*")] == []  # no temporary file or directory remains


def test_a_hub_id_is_read_from_the_local_cache_and_a_missing_one_fails_at_once(chat_file, tmp_path):
    import os
    import subprocess
    import sys

    from models.load import load_model, load_tokenizer

    # A Hugging Face cache holding owner/tiny, laid out as huggingface_hub writes it.
    cache = tmp_path / "hub"
    snapshot = cache / "models--owner--tiny" / "snapshots" / "0123abcd"
    load_model("arch:tiny", peft="full", compute_dtype=torch.float32, device=torch.device("cpu"), seed=0
               ).save_pretrained(snapshot)
    load_tokenizer("arch:tiny").save_pretrained(snapshot)
    (cache / "models--owner--tiny" / "refs").mkdir()
    (cache / "models--owner--tiny" / "refs" / "main").write_text("0123abcd")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_CACHE": str(cache)}

    def train_py(model: str, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(root / "train.py"), "--model", model, "--data", str(chat_file),
                               "--max-steps", "1", "--optim", "adamw", "--out", str(out)],
                              cwd=root, env=env, capture_output=True, text=True, timeout=300)

    cached = train_py("owner/tiny", tmp_path / "cached")
    assert cached.returncode == 0, cached.stderr[-2000:]
    assert (tmp_path / "cached" / "adapter" / "adapter_model.safetensors").is_file()
    missing = train_py("owner/absent", tmp_path / "missing")
    assert missing.returncode == 2 and "Retrying" not in missing.stderr and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        "error: --model 'owner/absent' is not in the local Hugging Face cache: download it where there is network "
        "(hf download owner/absent), or pass a local model directory")


def test_a_missing_data_file_is_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_script.main(["--model", "arch:tiny", "--data", str(tmp_path / "nope.jsonl"), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: data file not found: {tmp_path / 'nope.jsonl'}"
    assert captured.out == "" and not out.exists()  # no model loaded, no run directory
    (tmp_path / "spider").mkdir()
    assert train_script.main(["--model", "arch:tiny", "--data", str(tmp_path / "spider"), "--split", "dev"]) == 2
    assert capsys.readouterr().err.strip() == f"error: data file not found: {tmp_path / 'spider' / 'dev.json'}"
