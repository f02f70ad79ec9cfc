"""--config FILE: YAML or JSON settings under the command line's flags; a run's config.json is one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import train as train_script
from engine.config import ConfigError, TrainConfig, parse_config, read_config_file
from tests.test_train_smoke import chat_file  # noqa: F401 (the fixture)


def test_yaml_and_json_give_the_same_config_and_flags_override_them(tmp_path):
    (tmp_path / "run.yaml").write_text("model: arch:tiny\nlr: 2e-4\nwarmup: 3\nmax_steps: -1\n"
                                       "target_modules: [q_proj, v_proj]\nckpt: true\ndist_timeout: 60\n")
    (tmp_path / "run.json").write_text(json.dumps({"model": "arch:tiny", "lr": 0.0002, "warmup": 3, "max_steps": -1,
                                                   "target_modules": ["q_proj", "v_proj"], "ckpt": True,
                                                   "dist_timeout": 60.0}))
    from_yaml = parse_config(["--config", str(tmp_path / "run.yaml")])
    from_json = parse_config(["--config", str(tmp_path / "run.json")])
    assert from_yaml == from_json
    # YAML 1.1 reads 2e-4 as a string: it arrives as the float the flag would give
    assert (from_yaml.lr, from_yaml.warmup, from_yaml.max_steps, from_yaml.dist_timeout) == (2e-4, 3.0, -1, 60.0)
    assert from_yaml.target_modules == ["q_proj", "v_proj"] and from_yaml.ckpt is True
    overridden = parse_config(["--config", str(tmp_path / "run.yaml"), "--lr", "1e-3", "--no-ckpt"])
    assert (overridden.lr, overridden.ckpt, overridden.model) == (1e-3, False, "arch:tiny")
    assert parse_config(["--conf", str(tmp_path / "run.yaml")]).model == "arch:tiny"  # an abbreviation reads it too


@pytest.mark.parametrize("text, message", [
    ("batch-size: 2\n", "unknown key 'batch-size' (did you mean batch_size?)"),
    ("learning_rate: 2e-4\n", "unknown key 'learning_rate'"),
    ("lr: fast\n", "lr must be a number, got \"fast\""),
    ("max_steps: 2.5\n", "max_steps must be a whole number, got 2.5"),
    ("ckpt: yes please\n", "ckpt must be true or false"),
    ("target_modules: q_proj\n", "target_modules must be a list of strings"),
    ("lr: [1\n", "not valid YAML (while parsing a flow sequence"),
    ("- lr\n", "expected a mapping of settings"),
    ("peft: prefix\n", "--peft must be one of qlora, lora, full, got 'prefix'"),
])
def test_a_bad_file_is_one_line_naming_the_key_and_nothing_runs(text, message, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(text)
    out = tmp_path / "run"
    status = train_script.main(["--config", str(tmp_path / "bad.yaml"), "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_a_file_that_is_not_a_config(tmp_path):
    for name, message in (("x.txt", "expected a .yaml, .yml or .json file"), ("missing.yaml", "cannot read it")):
        with pytest.raises(ConfigError, match=message):
            read_config_file(tmp_path / name)
    (tmp_path / "empty.yaml").write_text("")
    assert parse_config(["--config", str(tmp_path / "empty.yaml")]) == TrainConfig()


def test_a_runs_config_json_is_a_config_that_reproduces_the_run(chat_file, tmp_path):
    first = tmp_path / "first"
    assert train_script.main(["--model", "arch:tiny", "--data", str(chat_file), "--batch-size", "2", "--accum", "2",
                              "--max-steps", "3", "--lr", "1e-2", "--optim", "adamw", "--seed", "7",
                              "--out", str(first)]) == 0
    saved = json.loads((first / "config.json").read_text())
    again = tmp_path / "again"
    assert train_script.main(["--config", str(first / "config.json"), "--out", str(again)]) == 0
    losses = [[json.loads(line)["loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
              for d in (first, again)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]  # bit for bit on CPU
    rerun = json.loads((again / "config.json").read_text())
    assert {k: v for k, v in rerun.items() if k != "out"} == {k: v for k, v in saved.items() if k != "out"}
    # Without --out it would write into the first run's directory: refused, nothing changed.
    assert train_script.main(["--config", str(first / "config.json")]) == 2
    assert (first / "config.json").read_text() == json.dumps(saved, indent=2) + "\n"
