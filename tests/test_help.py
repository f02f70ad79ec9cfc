"""Every command documents every option with its default, once; the libraries' known noise is silenced
precisely (that message, nothing else)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["train", "eval.evaluate", "eval.score", "eval.bench_generate", "engine.tools.predict",
            "engine.tools.sweep", "engine.tools.bench", "engine.tools.plots"]


def parser_of(module_name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(module_name)
    return module.build_parser()


def help_problems(parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        name = "/".join(action.option_strings) or action.dest
        text = (action.help or "") % {"default": action.default, "prog": parser.prog}
        if not text.strip():
            problems.append(f"{name}: no help")
        elif action.option_strings and not action.required:
            if text.count("(default: ") != 1 or text.lower().count("default") != 1:
                problems.append(f"{name}: the default must be stated once: {text!r}")
            if "(default: None)" in text or "(default: [" in text:
                problems.append(f"{name}: a default shown as Python: {text!r}")
    return problems


@pytest.mark.parametrize("module_name", COMMANDS)
def test_every_option_has_help_with_its_default_once(module_name):
    assert help_problems(parser_of(module_name)) == []


@pytest.mark.parametrize("module_name", COMMANDS)
def test_the_description_is_a_whole_sentence(module_name):
    parser = parser_of(module_name)
    assert parser.description and parser.description.rstrip().endswith("."), parser.description


def test_train_help_states_each_default_once_on_the_command_line():
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={"COLUMNS": "400", **__import__("os").environ})
    assert proc.returncode == 0
    assert "(default: None)" not in proc.stdout and "~15 min" not in proc.stdout
    assert "--ckpt, --no-ckpt" in proc.stdout and "(default: off)" in proc.stdout
    assert "all of them). (default" not in proc.stdout


def test_the_bitsandbytes_kernel_message_is_dropped_and_nothing_else():
    from models.noise import BNB_CPU_OPS_LOGGER, BNB_KERNEL_MESSAGE, silence_known_noise

    # The text and the logger are bitsandbytes' own: the filter tracks the real message.
    source = Path(importlib.util.find_spec(BNB_CPU_OPS_LOGGER).origin).read_text()
    assert f'"{BNB_KERNEL_MESSAGE}: %s.' in source and "logger = logging.getLogger(__name__)" in source
    silence_known_noise()
    silence_known_noise()  # idempotent
    logger = logging.getLogger(BNB_CPU_OPS_LOGGER)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        logger.warning(BNB_KERNEL_MESSAGE + ": %s. Please make sure ...", "no network")
        logger.warning("Failed to load something else: %s", "x")
    finally:
        logger.removeHandler(handler)
    assert seen == ["Failed to load something else: x"]
    assert sum(type(f).__name__ == "_DropMessage" for f in logger.filters) == 1


def test_the_peft_future_warning_is_dropped_and_nothing_else():
    from models.noise import silence_known_noise

    message = "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use `is_activation_checkpointing` instead."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_noise()
        warnings.warn_explicit(message, FutureWarning, "modeling_utils.py", 1, module="transformers.modeling_utils")
        warnings.warn_explicit(message, FutureWarning, "other.py", 1, module="somebody.else")
        warnings.warn_explicit("`other_thing` is deprecated", FutureWarning, "modeling_utils.py", 2,
                               module="transformers.modeling_utils")
    assert [(str(w.message)[:20], w.filename) for w in caught] == [(message[:20], "other.py"),
                                                                     ("`other_thing` is dep", "modeling_utils.py")]


def test_training_and_evaluating_print_no_future_warning(tmp_path):
    """With FutureWarnings as errors, the main command (LoRA wrapping, --ckpt) and an evaluation with the plain
    decoding loop still run: peft's deprecated property read is filtered, and our own calls use transformers'
    current names (activation checkpointing, the `cache` argument)."""
    run = tmp_path / "run"
    train = subprocess.run([sys.executable, "-W", "error::FutureWarning", str(ROOT / "train.py"), "--model", "arch:tiny",
                            "--data", "synthetic:8", "--max-steps", "1", "--ckpt", "--out", str(run)],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    evaluate = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-m", "eval.evaluate", "--adapter",
                               str(run / "adapter"), "--decoder", "plain", "--limit", "1", "--max-new-tokens", "3",
                               "--out", str(tmp_path / "eval")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    for proc in (train, evaluate):
        assert "Warning" not in proc.stderr and "deprecated" not in proc.stderr, proc.stderr[-2000:]
