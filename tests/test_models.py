"""models/: presets, our 4-bit quantisation, LoRA, parameter/byte accounting, load_model modes."""

from __future__ import annotations

import math

import bitsandbytes as bnb
import peft
import pytest
import torch
import transformers
from torch import nn

from models.load import BUNDLED_NAME, is_random_init, load_model, load_tokenizer
from models.lora import apply_lora, default_target_modules
from models.presets import PARAMETER_COUNTS, PRESETS, PUBLISHED_SIZES, preset_config
from models.quantize import quantize_to_4bit
from models.report import count_parameters, dtype_summary, format_model_report, parameter_bytes

CPU = torch.device("cpu")
R, ALPHA = 8, 16
TOKENS = torch.tensor([[1, 523, 4093, 28, 17, 999, 2], [1, 4, 30000, 8, 12, 7, 2]])


def float_tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(preset_config("tiny"), dtype=torch.float32)


def qlora_tiny(double_quant: bool = True) -> nn.Module:
    return load_model("arch:tiny", peft="qlora", double_quant=double_quant, compute_dtype=torch.float32,
                      lora_r=R, lora_alpha=ALPHA, device=CPU, seed=0)


def block_linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(out, in) of every Linear inside the decoder blocks of a float model."""
    return [(m.out_features, m.in_features) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and ".layers." in name]


def expected_4bit_bytes(n: int, double_quant: bool) -> int:
    """bitsandbytes' storage for n weights, blocks of 64 (bnb 0.50 allocates code tables per layer)."""
    packed = math.ceil(n / 2)  # uint8, two 4-bit codes per byte
    blocks = math.ceil(n / 64)
    nf4_code = 16 * 4  # 16-entry fp32 table
    if not double_quant:
        return packed + blocks * 4 + nf4_code  # one fp32 absmax per block
    nested_blocks = math.ceil(blocks / 256)
    dynamic_code = 256 * 4  # fp32 table the uint8 scales index into
    offset = 4  # fp32 mean of the scales
    return packed + blocks + nested_blocks * 4 + offset + nf4_code + dynamic_code


# ---------------------------------------------------------------- counting and bytes


def test_qlora_count_equals_float_model_and_trainable_is_lora_only():
    float_count = sum(p.numel() for p in float_tiny().parameters())
    assert float_count == PARAMETER_COUNTS["tiny"] == 3_219_776
    counts = count_parameters(qlora_tiny())
    expected_lora = sum(R * (out + inp) for out, inp in block_linear_shapes(float_tiny()))
    assert counts["trainable"] == expected_lora == 2 * (R * (64 + 64) * 2 + R * (64 + 32) * 2
                                                         + R * (64 + 128) * 2 + R * (128 + 64))
    assert counts["4bit"] + counts["frozen_float"] == float_count
    assert counts["4bit"] == sum(out * inp for out, inp in block_linear_shapes(float_tiny()))
    assert counts["total"] == float_count + expected_lora


@pytest.mark.parametrize("double_quant", [True, False])
def test_parameter_bytes_match_analytic_expectation(double_quant):
    model = qlora_tiny(double_quant)
    got = parameter_bytes(model)
    shapes = block_linear_shapes(float_tiny())
    assert got["params_4bit"] == sum(expected_4bit_bytes(o * i, double_quant) for o, i in shapes)
    assert got["params_trainable"] == count_parameters(model)["trainable"] * 4
    config = preset_config("tiny")
    embedding = config.vocab_size * config.hidden_size  # tied with lm_head: stored once
    norms = (2 * config.num_hidden_layers + 1) * config.hidden_size
    rotary_buffers = 2 * (config.head_dim // 2) * 4  # inv_freq and original_inv_freq, fp32
    assert got["params_frozen"] == (embedding + norms) * 4 + rotary_buffers


def test_tied_embeddings_and_shared_code_tables_counted_once():
    model = float_tiny()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert count_parameters(model)["total"] == PARAMETER_COUNTS["tiny"]
    model.requires_grad_(False)
    embedding_bytes = model.model.embed_tokens.weight.numel() * 4
    without_head = parameter_bytes(model)["params_frozen"]
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone(), requires_grad=False)
    assert parameter_bytes(model)["params_frozen"] == without_head + embedding_bytes

    quantized = quantize_to_4bit(float_tiny(), quant_type="nf4", double_quant=True,
                                 compute_dtype=torch.float32, device=CPU)
    layer = quantized.model.layers[0].self_attn
    before = parameter_bytes(quantized)["params_4bit"]
    # bnb gives every layer its own 16-entry table; pointing one at another's storage saves 64 bytes.
    assert layer.q_proj.weight.quant_state.code.data_ptr() != layer.k_proj.weight.quant_state.code.data_ptr()
    layer.k_proj.weight.quant_state.code = layer.q_proj.weight.quant_state.code
    assert parameter_bytes(quantized)["params_4bit"] == before - 16 * 4


def test_upcast_to_fp32_would_double_frozen_bytes_of_llama_3_2_1b():
    # The numbers in models/load.py's docstring, from shapes only (meta device, no memory used).
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(preset_config("llama-3.2-1b"),
                                                              dtype=torch.bfloat16)
    model.requires_grad_(False)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and ".layers." in name:
            module.weight = None  # these become 4-bit: not part of the frozen float bytes
    # Buffers (rotary inv_freq) are fp32 on a real device; on meta they follow the bf16 default.
    buffer_bytes = sum(b.numel() for b in model.buffers()) * 4
    frozen_bf16 = parameter_bytes(model)["params_frozen"] - sum(b.numel() * b.element_size()
                                                                for b in model.buffers())
    assert frozen_bf16 + buffer_bytes == 525_472_000
    for param in model.parameters():
        param.data = param.data.to(torch.float32)
    frozen_fp32 = parameter_bytes(model)["params_frozen"] - sum(b.numel() * b.element_size()
                                                                for b in model.buffers())
    assert frozen_fp32 + buffer_bytes == 1_050_943_744


def test_dtype_summary_in_bf16_keeps_frozen_in_bf16_and_lora_in_fp32():
    model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.bfloat16, device=CPU)
    assert dtype_summary(model) == {
        "frozen float": "bfloat16",
        "4-bit weights": "nf4 (uint8 packed, 2/byte, double-quantised scales)",
        "trainable (LoRA)": "float32",
    }
    report = format_model_report(model)
    counts = count_parameters(model)
    assert f"{counts['total']:,} total" in report and f"{counts['trainable']:,} trainable" in report
    assert "trainable (LoRA): float32" in report


# ---------------------------------------------------------------- quantisation


def test_our_quantisation_gives_identical_logits_to_bitsandbytes_config(tmp_path):
    float_tiny(seed=3).save_pretrained(tmp_path)
    ours = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    quantize_to_4bit(ours, quant_type="nf4", double_quant=True, compute_dtype=torch.float32, device=CPU)
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, dtype=torch.float32, device_map="cpu",
        quantization_config=transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32))
    for (name, mine), (_, theirs) in zip(ours.named_modules(), reference.named_modules()):
        assert type(mine) is type(theirs), name
        if isinstance(mine, bnb.nn.Linear4bit):
            assert torch.equal(mine.weight.data, theirs.weight.data), name
            assert torch.equal(mine.weight.quant_state.absmax, theirs.weight.quant_state.absmax), name
    assert isinstance(ours.lm_head, nn.Linear) and not isinstance(ours.lm_head, bnb.nn.Linear4bit)
    # Train mode on both: a stock Linear4bit in eval mode on an AVX512-BF16 CPU switches to a bf16
    # kernel (see models/quantize.py), which ours deliberately does not.
    ours.train()
    reference.train()
    assert torch.equal(ours(TOKENS).logits, reference(TOKENS).logits)


def test_eval_pass_does_not_change_later_training_forward():
    model = qlora_tiny()
    before = model(TOKENS).logits.detach()
    model.eval()
    with torch.no_grad():
        model(TOKENS)
    model.train()
    assert torch.equal(model(TOKENS).logits.detach(), before)


def test_quantize_rejects_unknown_quant_type():
    with pytest.raises(ValueError, match="unknown quant type 'int3'.*nf4, fp4"):
        quantize_to_4bit(float_tiny(), quant_type="int3", double_quant=True,
                         compute_dtype=torch.float32, device=CPU)


# ---------------------------------------------------------------- presets


def round_like(n: int, published: str) -> str:
    """n written the way `published` is: "1.24B", "135M", or an exact "1,331,810,304"."""
    if published[-1] not in "MB":
        return f"{n:,}"
    unit = {"M": 10**6, "B": 10**9}[published[-1]]
    decimals = len(published[:-1].partition(".")[2])
    return f"{n / unit:.{decimals}f}{published[-1]}"


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_parameter_count_matches_config_and_published_size(name):
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(preset_config(name), dtype=torch.bfloat16)
    n = count_parameters(model)["total"]
    assert n == PARAMETER_COUNTS[name]
    if name in PUBLISHED_SIZES:
        assert round_like(n, PUBLISHED_SIZES[name]) == PUBLISHED_SIZES[name]
    if name == "hyperclovax-seed-1.5b":
        assert 1.5e9 <= n < 1.6e9  # "1.5B" class, see models/presets.py


def test_polyglot_ko_1_3b_count_and_fp16_gradient_size():
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(preset_config("polyglot-ko-1.3b"))
    n = count_parameters(model)["total"]
    assert n == 1_331_810_304
    assert round(n * 2 / 2**30, 3) == 2.481  # one fp16 gradient per parameter, GiB


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match="unknown architecture preset 'gpt-5'.*tiny.*llama-3.1-8b"):
        preset_config("gpt-5")


# ---------------------------------------------------------------- LoRA targets


@pytest.mark.parametrize("model_type, extra, expected", [
    ("llama", dict(num_key_value_heads=2),
     ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    ("qwen2", dict(num_key_value_heads=2),
     ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    ("gpt_neox", dict(rotary_pct=0.5),
     ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]),
    ("phi3", dict(num_key_value_heads=4, pad_token_id=0, eos_token_id=1, bos_token_id=1),
     ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),
])
def test_default_target_modules_discovered_per_architecture(model_type, extra, expected):
    config = transformers.AutoConfig.for_model(
        model_type, vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64, **extra)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    assert sorted(default_target_modules(model)) == sorted(expected)  # order is registration order


def test_unknown_lora_target_lists_available_names():
    with pytest.raises(ValueError, match=r"q_prj match no linear.*available: q_proj, k_proj, v_proj, "
                                         r"o_proj, gate_proj, up_proj, down_proj"):
        apply_lora(float_tiny(), r=4, alpha=8, dropout=0.0, target_modules=["q_prj"])


def test_lora_on_chosen_targets_only():
    model = load_model("arch:tiny", peft="lora", compute_dtype=torch.float32, lora_r=R,
                       target_modules=["q_proj", "v_proj"], device=CPU)
    counts = count_parameters(model)
    assert counts["trainable"] == 2 * (R * (64 + 64) + R * (64 + 32))
    assert counts["frozen_float"] == PARAMETER_COUNTS["tiny"] and counts["4bit"] == 0


# ---------------------------------------------------------------- training readiness


def test_gradient_checkpointing_qlora_forward_backward_reaches_lora_only():
    model = qlora_tiny()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    logits = model(TOKENS).logits
    logits.float().logsumexp(-1).mean().backward()
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    # B starts at zero, so dL/dA = 0 on the first step by construction and dL/dB != 0.
    for name, p in lora.items():
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert (p.grad.abs().sum() > 0) == ("lora_B" in name), name
    with torch.no_grad():
        for p in lora.values():
            p -= 0.1 * p.grad
            p.grad = None
    model(TOKENS).logits.float().logsumexp(-1).mean().backward()
    assert all(p.grad.abs().sum() > 0 for p in lora.values())


@pytest.mark.parametrize("mode", ["qlora", "lora", "full"])
def test_load_model_modes(mode):
    model = load_model("arch:tiny", peft=mode, compute_dtype=torch.float32, device=CPU)
    assert model.training and model.config.use_cache is False
    assert isinstance(model, peft.PeftModel) == (mode != "full")
    counts = count_parameters(model)
    n_4bit = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert n_4bit == (2 * 7 if mode == "qlora" else 0)
    if mode == "full":
        assert counts["trainable"] == counts["total"] == PARAMETER_COUNTS["tiny"]


def test_random_init_is_seeded():
    a = load_model("arch:tiny", peft="full", compute_dtype=torch.float32, device=CPU, seed=7)
    b = load_model("arch:tiny", peft="full", compute_dtype=torch.float32, device=CPU, seed=7)
    c = load_model("arch:tiny", peft="full", compute_dtype=torch.float32, device=CPU, seed=8)
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_bundled_model_qlora_counts_and_tokenizer():
    model = load_model(BUNDLED_NAME, peft="qlora", compute_dtype=torch.float32, device=CPU)
    counts = count_parameters(model)
    assert counts["4bit"] + counts["frozen_float"] == PARAMETER_COUNTS["smollm2-135m"] == 134_515_008
    tokenizer = load_tokenizer("arch:tiny")
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id == 2
    assert len(tokenizer) == preset_config("tiny").vocab_size == 49152


# ---------------------------------------------------------------- bad input


def test_spec_helpers_and_bad_specs(tmp_path):
    assert is_random_init("arch:tiny") and not is_random_init(BUNDLED_NAME)
    cases = {
        "arch:nope": "unknown architecture preset 'nope'",
        "./no/such/dir": "neither",
        str(tmp_path): "has no config.json",
        "not-a-model": "neither",
    }
    for spec, message in cases.items():
        with pytest.raises(ValueError, match=message):
            load_model(spec, peft="qlora", compute_dtype=torch.float32, device=CPU)
    with pytest.raises(ValueError, match="unknown fine-tuning mode 'qdora'"):
        load_model("arch:tiny", peft="qdora", compute_dtype=torch.float32, device=CPU)
    with pytest.raises(ValueError, match="unknown quant type 'int8'"):
        load_model("arch:tiny", peft="qlora", quant="int8", compute_dtype=torch.float32, device=CPU)
