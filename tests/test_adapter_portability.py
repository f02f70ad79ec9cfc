"""An adapter is usable without this project: adapter_config.json names a base that resolves elsewhere,
and the README's plain-peft lines, run as written, build the model our loader builds (same logits); a
run's config.json records what actually ran."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import train as train_script
from models.load import base_model_name, load_model, load_tokenizer
from models.merge import load_for_eval

ROOT = Path(__file__).resolve().parents[1]
BATCH = torch.tensor([[1, 5, 9, 200, 31, 7, 2, 4000, 17]])


def readme_snippet() -> str:
    """The README's Python block that loads an adapter with BitsAndBytesConfig."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    [block] = [b for b in blocks if "BitsAndBytesConfig(" in b and "PeftModel.from_pretrained" in b]
    return block


def run_snippet(run_dir: Path, base: str | None = None) -> dict:
    code = readme_snippet().replace('run = "runs/x"', f"run = {str(run_dir)!r}")
    if base is not None:  # the README's way to the exact bundled base
        code = code.replace("dtype = getattr", f"base = {base!r}\ndtype = getattr")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    return scope


def without_cpu_repacking(model):
    """bitsandbytes repacks a 4-bit weight for its own kernel at the first no-grad forward on a CPU with
    AVX512-BF16 (other roundings); our loader switches that path off (models/quantize.py)."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=BATCH).logits.float()


def test_the_base_named_for_each_kind_of_model():
    assert base_model_name("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model_name("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert base_model_name("/models/my-base") == "/models/my-base"
    assert base_model_name("arch:tiny") is None


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A QLoRA run on a local model directory (the tiny preset's weights, saved as any HF checkpoint)."""
    root = tmp_path_factory.mktemp("portable")
    base_dir = root / "tiny-base"
    model = load_model("arch:tiny", peft="full", compute_dtype=torch.float32, device=torch.device("cpu"), seed=11)
    model.save_pretrained(base_dir)
    load_tokenizer("arch:tiny").save_pretrained(base_dir)
    run = root / "run"
    assert train_script.main(["--model", str(base_dir), "--data", "synthetic:32", "--max-steps", "3", "--lr", "1e-2",
                              "--optim", "adamw", "--out", str(run)]) == 0
    return run


def test_the_readme_lines_load_the_adapter_as_our_loader_does(trained_run):
    adapter_config = json.loads((trained_run / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(trained_run.parent / "tiny-base")

    scope = run_snippet(trained_run)
    plain = logits(without_cpu_repacking(scope["model"]))
    ours, _, description = load_for_eval(None, trained_run / "adapter", compute_dtype=torch.float32, device="cpu")
    assert description["base_quant"] == "nf4"
    expected = logits(ours)
    torch.testing.assert_close(plain, expected, rtol=0, atol=1e-6)
    # As written: the same where the CPU lacks AVX512-BF16; bitsandbytes' repacked kernel's roundings where it
    # has it (3.7e-3 at most on a 2-core AVX512-BF16 machine, 2026-12-03).
    assert (logits(run_snippet(trained_run)["model"]) - expected).abs().max() < 1e-2
    assert scope["tokenizer"]("SELECT 1")["input_ids"] == load_tokenizer("arch:tiny")("SELECT 1")["input_ids"]

    # The adapter is not a no-op, and the quantisation config is what makes the two agree.
    bare, _, _ = load_for_eval(str(trained_run.parent / "tiny-base"), None, quant="nf4", compute_dtype=torch.float32,
                               device="cpu")
    assert (logits(bare) - expected).abs().max() > 1e-3
    floating, _, _ = load_for_eval(None, trained_run / "adapter", quant="none", compute_dtype=torch.float32,
                                   device="cpu")
    assert (logits(floating) - expected).abs().max() > 1e-2


def test_config_json_records_what_actually_ran(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    resolved = config["resolved"]
    assert config["optim"] == "adamw" and resolved["optim"] == "adamw"
    assert (config["device"], resolved["device"]) == ("auto", "cpu")
    assert (config["compute_dtype"], resolved["compute_dtype"]) == ("auto", "float32")
    assert resolved["total_steps"] == 3 and resolved["train_examples"] == 32 and resolved["world_size"] == 1
    assert resolved["versions"]["torch"] == torch.__version__
    import peft
    import transformers

    assert resolved["versions"]["peft"] == peft.__version__
    assert resolved["versions"]["transformers"] == transformers.__version__
    git = resolved["git"]
    if (ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", git["commit"]) and isinstance(git["dirty"], bool)


def test_a_paged_optimizer_is_recorded_as_the_one_that_ran(tmp_path):
    """paged_adamw_8bit (the default) pages through CUDA unified memory: on a CPU adamw_8bit runs, and
    config.json says both."""
    run = tmp_path / "run"
    assert train_script.main(["--model", "arch:tiny", "--data", "synthetic:8", "--max-steps", "1", "--device", "cpu",
                              "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["optim"], config["resolved"]["optim"]) == ("paged_adamw_8bit", "adamw_8bit")
    adapter_config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] is None  # a random-init preset exists nowhere


@pytest.mark.slow
def test_the_bundled_models_adapter_names_its_hub_id_and_loads_over_the_bundled_copy(tmp_path):
    from models.bundled import bundled_model_dir

    run = tmp_path / "run"
    assert train_script.main(["--data", "synthetic:8", "--max-steps", "1", "--lr", "1e-2", "--out", str(run)]) == 0
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    scope = run_snippet(run, base=str(bundled_model_dir()))
    ours, _, _ = load_for_eval(None, run / "adapter", compute_dtype=torch.float32, device="cpu")
    torch.testing.assert_close(logits(scope["model"]), logits(ours), rtol=0, atol=1e-5)


def test_saving_an_adapter_asks_no_hub(tmp_path):
    """peft's default would look the base's config up on the hub (its vocabulary check) and warn when
    offline; our adapters never resize the vocabulary, so nothing is looked up and nothing is printed."""
    import warnings

    from engine.checkpoint import save_adapter

    model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device=torch.device("cpu"))
    model.peft_config["default"].base_model_name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_adapter(model, tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size > 0
