"""The memory predictor against real models: parameter, gradient and optimizer bytes exactly, activations
against engine.memory.ActivationCounter, and the book's Table 5.1 numbers for polyglot-ko-1.3b."""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from data.batching import TrainData
from data.dummy import dummy_examples
from engine.loss import compute_loss
from engine.memory import ActivationCounter, MemoryTracker, gradient_bytes
from engine.optim import create_optimizer
from engine.tools.predict import (GIB, largest_batch_that_fits, main, parse_size, predict_for_spec, predict_memory,
                                  quantized_weight_bytes)
from models.load import load_model
from models.lora import apply_lora, default_target_modules
from models.presets import PRESETS, preset_config
from models.quantize import quantize_to_4bit
from models.report import parameter_bytes

CPU = torch.device("cpu")
EXACT_KEYS = ("params_4bit", "params_frozen", "params_trainable", "grads", "optimizer", "optimizer_paged")


def dummy_batch(batch_size: int, seq_len: int, vocab: int, labelled_from: int = 0) -> dict[str, torch.Tensor]:
    """Random ids; positions before `labelled_from` are masked with -100 (0: every position labelled)."""
    ids, labels = dummy_examples(seq_len, batch_size, vocab, seed=3)
    labels = [[-100] * labelled_from + y[labelled_from:] for y in labels]
    return TrainData(ids, labels, pad_token_id=2).micro_batch(list(range(batch_size)), CPU)


def one_step(model, optim: str, batch, *, ckpt: bool, label_only: bool) -> dict:
    """One real forward/backward/optimizer step, recorded by the engine's MemoryTracker."""
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = create_optimizer(model, name=optim, lr=1e-3, weight_decay=0.01)
    tracker = MemoryTracker(model, optimizer, CPU)
    tracker.start_step()
    with tracker.activations.count():
        loss = compute_loss(model, batch, label_only=label_only)
    loss.backward()
    grads = gradient_bytes(model)
    optimizer.step()
    return tracker.record(grads)


def count_activations(model, batch, *, ckpt: bool, label_only: bool) -> int:
    """Bytes autograd saves in one forward (no backward needed to count them)."""
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    counter = ActivationCounter(model)
    with counter.count():
        compute_loss(model, batch, label_only=label_only)
    return counter.peak


def label_count(batch) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


@pytest.mark.parametrize("peft,optim,lora_r", [
    ("qlora", "adamw", 16), ("qlora", "adamw_8bit", 64), ("lora", "adamw_8bit", 64),
    ("full", "adamw", 16), ("full", "adamw_8bit", 16),
])
def test_components_equal_the_tracker_exactly(peft, optim, lora_r):
    """r=64 makes every LoRA A (64 x 64 = 4096 values) big enough for 8-bit state; r=16 keeps them 32-bit."""
    model = load_model("arch:tiny", peft=peft, compute_dtype=torch.float32, device=CPU, lora_r=lora_r, seed=0)
    batch = dummy_batch(2, 32, 49152, labelled_from=10)
    measured = one_step(model, optim, batch, ckpt=False, label_only=True)
    predicted = predict_for_spec("arch:tiny", peft=peft, compute_dtype=torch.float32, lora_r=lora_r, optim=optim,
                                 batch_size=2, seq_len=32, ckpt=False, label_only_loss=True,
                                 label_tokens=label_count(batch), device="cpu")
    assert {k: predicted[k] for k in EXACT_KEYS} == {k: measured[k] for k in EXACT_KEYS}
    assert predicted["activations"] == pytest.approx(measured["activations"], rel=0.10)


@pytest.mark.parametrize("double_quant,quant", [(True, "nf4"), (False, "nf4"), (True, "fp4"), (False, "fp4")])
def test_four_bit_bytes_exact(double_quant, quant):
    model = load_model("arch:tiny", peft="qlora", quant=quant, double_quant=double_quant,
                       compute_dtype=torch.float32, device=CPU)
    predicted = predict_for_spec("arch:tiny", peft="qlora", quant=quant, double_quant=double_quant,
                                 compute_dtype=torch.float32, device="cpu", optim="adamw")
    assert predicted["params_4bit"] == parameter_bytes(model)["params_4bit"]
    # Independently, from the shapes: q, k, v, o, gate, up, down of 2 layers (h 64, kv 32, I 128).
    sizes = [64 * 64, 32 * 64, 32 * 64, 64 * 64, 128 * 64, 128 * 64, 64 * 128] * 2
    per_layer = (lambda n: n // 2 + n // 64 + 4 + 4 + 1024 + 64) if double_quant else (lambda n: n // 2 + n // 16 + 64)
    assert predicted["params_4bit"] == sum(per_layer(n) for n in sizes)


def test_quantized_weight_formula_rounds_blocks_up():
    # 64 * 257 values: 257 absmax bytes, which need 2 nested fp32 absmax values.
    n = 64 * 257
    assert quantized_weight_bytes(n, double_quant=True) == n // 2 + 257 + 2 * 4 + 4 + 1024 + 64
    assert quantized_weight_bytes(n, double_quant=False) == n // 2 + 257 * 4 + 64


@pytest.mark.parametrize("peft,label_only,ckpt", [
    ("qlora", True, False), ("qlora", False, True), ("lora", True, True), ("full", False, False), ("full", True, True),
])
def test_activations_match_the_counter(peft, label_only, ckpt):
    model = load_model("arch:tiny", peft=peft, compute_dtype=torch.float32, device=CPU)
    batch = dummy_batch(2, 40, 49152, labelled_from=15)
    measured = count_activations(model, batch, ckpt=ckpt, label_only=label_only)
    predicted = predict_for_spec("arch:tiny", peft=peft, compute_dtype=torch.float32, batch_size=2, seq_len=40,
                                 ckpt=ckpt, label_only_loss=label_only, label_tokens=label_count(batch),
                                 device="cpu", optim="adamw")
    assert predicted["activations"] == pytest.approx(measured, rel=0.10)
    # On the CPU the op-by-op replay is exact, not just close.
    assert predicted["activations"] == measured


@pytest.mark.parametrize("peft,ckpt", [("qlora", False), ("full", False), ("full", True)])
def test_activations_match_the_counter_with_fused_rmsnorm(peft, ckpt):
    """--fused-rmsnorm keeps each norm's input and rstd; the weight's gradient needs no saved normalised x."""
    from engine.features.fused_rmsnorm import fused_rmsnorm_layers

    model = load_model("arch:tiny", peft=peft, compute_dtype=torch.float32, device=CPU)
    batch = dummy_batch(2, 40, 49152, labelled_from=15)
    with fused_rmsnorm_layers(model):
        measured = count_activations(model, batch, ckpt=ckpt, label_only=True)
    predicted = predict_for_spec("arch:tiny", peft=peft, compute_dtype=torch.float32, batch_size=2, seq_len=40,
                                 ckpt=ckpt, label_tokens=label_count(batch), device="cpu", optim="adamw",
                                 fused_rmsnorm=True)
    assert predicted["activations"] == measured


def tiny_shaped(preset: str) -> transformers.PretrainedConfig:
    """A preset's architecture (GPT-NeoX, Phi-3, Qwen2) at tiny width, for fast real models."""
    kwargs = dict(PRESETS[preset])
    model_type = kwargs.pop("model_type")
    kwargs.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=512,
                  bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if "num_key_value_heads" in kwargs:
        kwargs["num_key_value_heads"] = 2
    kwargs.pop("head_dim", None)
    kwargs.pop("rope_scaling", None)
    return transformers.AutoConfig.for_model(model_type, **kwargs)


@pytest.mark.parametrize("preset,ckpt", [("polyglot-ko-1.3b", False), ("polyglot-ko-1.3b", True),
                                         ("phi-3-mini", False), ("qwen2.5-0.5b", True)])
def test_other_architectures(preset, ckpt):
    config = tiny_shaped(preset)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    quantize_to_4bit(model, quant_type="nf4", double_quant=True, compute_dtype=torch.float32, device=CPU)
    model.requires_grad_(False)
    model = apply_lora(model, r=8, alpha=16, dropout=0.0, target_modules=default_target_modules(model))
    model.config.use_cache = False
    batch = dummy_batch(2, 40, 512)
    measured = one_step(model, "adamw_8bit", batch, ckpt=ckpt, label_only=True)
    predicted = predict_memory(config, peft="qlora", compute_dtype=torch.float32, lora_r=8, optim="adamw_8bit",
                               batch_size=2, seq_len=40, ckpt=ckpt, device="cpu")
    assert {k: predicted[k] for k in EXACT_KEYS} == {k: measured[k] for k in EXACT_KEYS}
    assert predicted["activations"] == pytest.approx(measured["activations"], rel=0.10)


def test_lora_dropout_and_bf16_activations():
    """Dropout adds the adapters' dropout output and mask; bf16 adds one fp32 input copy per adapter."""
    for dtype, dropout in ((torch.float32, 0.1), (torch.bfloat16, 0.0)):
        model = load_model("arch:tiny", peft="qlora", compute_dtype=dtype, lora_dropout=dropout, device=CPU)
        batch = dummy_batch(2, 24, 49152)
        measured = count_activations(model, batch, ckpt=False, label_only=True)
        predicted = predict_for_spec("arch:tiny", peft="qlora", compute_dtype=dtype, lora_dropout=dropout,
                                     batch_size=2, seq_len=24, device="cpu", optim="adamw")
        assert predicted["activations"] == pytest.approx(measured, rel=0.10)


def test_book_table_5_1_full_fine_tuning_numbers():
    """polyglot-ko-1.3b, full fine-tuning in fp16 with torch AdamW: gradients 2.481 GB and optimizer
    state 4.961 GB (seed 003, Table 5.1, GB = 1024^3): AdamW keeps its moments in the parameters' fp16."""
    pred = predict_for_spec("arch:polyglot-ko-1.3b", peft="full", compute_dtype="fp16", optim="adamw",
                            batch_size=4, seq_len=256)
    n = 1_331_810_304
    assert pred["params_trainable"] == pred["grads"] == 2 * n
    assert round(pred["grads"] / GIB, 3) == 2.481
    assert round(pred["optimizer"] / GIB, 3) == 4.961
    # The book's LoRA: r=8 on query_key_value only -> 1,572,864 trainable parameters (fp32 here: x 4 bytes).
    lora = predict_for_spec("arch:polyglot-ko-1.3b", peft="lora", compute_dtype="fp16", lora_r=8,
                            target_modules=["query_key_value"], optim="adamw")
    assert lora["params_trainable"] == 1_572_864 * 4


def test_paged_state_is_the_large_tensors_moments():
    """On CUDA, paged_adamw_8bit pages the uint8 moments of tensors with >= 1e5 values (only the
    embedding of the tiny model in full fine-tuning), nothing else."""
    pred = predict_for_spec("arch:tiny", peft="full", compute_dtype="bf16", optim="paged_adamw_8bit", device="cuda")
    embedding = 49152 * 64
    assert pred["optimizer_paged"] == 2 * embedding
    assert predict_for_spec("arch:tiny", peft="full", compute_dtype="bf16", optim="paged_adamw_8bit",
                            device="cpu")["optimizer_paged"] == 0


def test_peak_grows_with_batch_and_checkpointing_lowers_it():
    config = preset_config("llama-3.2-1b")
    peak = lambda **kw: predict_memory(config, peft="qlora", seq_len=512, **kw)["peak_allocated"]  # noqa: E731
    assert peak(batch_size=4) < peak(batch_size=8) < peak(batch_size=16)
    assert peak(batch_size=16, ckpt=True) < peak(batch_size=16)
    pred = predict_memory(config, peft="qlora", batch_size=4, seq_len=512)
    components = sum(pred[k] for k in ("params_4bit", "params_frozen", "params_trainable", "grads", "activations"))
    assert pred["peak_allocated"] > components  # + non-paged optimizer state and transients
    assert pred["peak_allocated"] == sum(pred["peak_terms"].values())


def test_largest_batch_is_the_boundary():
    config = preset_config("llama-3.2-1b")
    kwargs = dict(peft="qlora", seq_len=512, ckpt=True)
    best = largest_batch_that_fits(config, 24 * GIB, **kwargs)
    assert best >= 1
    assert predict_memory(config, batch_size=best, **kwargs)["peak_allocated"] <= 24 * GIB
    assert predict_memory(config, batch_size=best + 1, **kwargs)["peak_allocated"] > 24 * GIB
    assert largest_batch_that_fits(config, 1 * GIB, **kwargs) == 0  # the weights alone exceed 1 GiB


def test_cli_prints_table_and_verdict(capsys):
    assert main(["--model", "arch:llama-3.2-1b", "--peft", "qlora", "--batch-size", "4", "--seq-len", "512",
                 "--ckpt", "--budget", "24GiB"]) == 0
    out = capsys.readouterr().out
    assert "params_4bit" in out and "peak_allocated" in out
    assert "fits in 24GiB = 24.000 GiB" in out
    best = int(out.rsplit("largest batch size that fits: ", 1)[1].split()[0])
    assert best == largest_batch_that_fits(preset_config("llama-3.2-1b"), 24 * GIB, peft="qlora", seq_len=512,
                                           ckpt=True, compute_dtype="bf16", optim="paged_adamw_8bit")


def test_bad_input_is_one_clear_error():
    assert parse_size("24GiB") == 24 * GIB and parse_size("512MiB") == 512 * 2**20 and parse_size("80GB") == 80 * 10**9
    with pytest.raises(ValueError, match="memory size"):
        parse_size("lots")
    with pytest.raises(ValueError, match="unknown architecture preset"):
        predict_for_spec("arch:nope")
    with pytest.raises(ValueError, match="match no linear layer"):
        predict_for_spec("arch:tiny", target_modules=["qkv"])
    with pytest.raises(ValueError, match="label_tokens"):
        predict_for_spec("arch:tiny", batch_size=1, seq_len=8, label_tokens=100)
    assert math.isfinite(predict_for_spec("arch:tiny", batch_size=1, seq_len=8)["peak_allocated"])


@pytest.mark.parametrize("extra, line", [
    (["--device", "tpu"], "error: --device must be cpu or cuda (how paged optimizers resolve), got 'tpu'"),
    (["--budget", "24XB"], "error: cannot read the memory size '24XB'; write e.g. 24GiB, 80GB or 512MiB"),
    (["--lora-dropout", "2"], "error: --lora-dropout must be in [0, 1), got 2.0"),
])
def test_cli_bad_input_is_one_line_before_any_prediction(extra, line, capsys):
    assert main(["--model", "arch:tiny", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == line + "\n"


def test_a_run_directory_is_not_a_model_directory(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"model": "arch:tiny"}')
    (tmp_path / "metrics.jsonl").write_text("")
    assert main(["--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --model '{tmp_path}' is a train.py run directory: predict with its " \
                                      "--model and settings\n"
    (tmp_path / "metrics.jsonl").unlink()
    assert main(["--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --model '{tmp_path}': not a model directory (")


def test_the_long_sequence_switches_move_memory_where_the_engine_puts_it():
    """Each switch changes the terms it should: offloading moves activations (and embeddings) to the host
    byte for byte, the sliced MLP and the chunked loss lower the peak; --max-context finds the boundary."""
    from engine.tools.predict import longest_sequence_that_fits, predict_for_spec

    common = dict(peft="qlora", batch_size=1, seq_len=8192, ckpt=True, compute_dtype="bf16")
    plain = predict_for_spec("arch:llama-3.2-1b", **common)
    chunked = predict_for_spec("arch:llama-3.2-1b", chunked_loss=True, **common)
    offloaded = predict_for_spec("arch:llama-3.2-1b", chunked_loss=True, offload_activations=True, **common)
    sliced = predict_for_spec("arch:llama-3.2-1b", chunked_loss=True, offload_activations=True, mlp_chunk=1024,
                              **common)
    embeddings = predict_for_spec("arch:llama-3.2-1b", offload_embeddings=True, **common)
    assert chunked["peak_allocated"] < plain["peak_allocated"]
    assert offloaded["activations"] == 0 and offloaded["activations_host"] == chunked["activations"]
    assert offloaded["peak_allocated"] < chunked["peak_allocated"]
    assert sliced["peak_allocated"] < offloaded["peak_allocated"]
    vocab, hidden = 128_256, 2048  # the tied bf16 embedding leaves the device
    assert embeddings["params_host"] == vocab * hidden * 2
    assert plain["params_frozen"] - embeddings["params_frozen"] == vocab * hidden * 2
    from engine.tools.predict import model_config_for_spec, predict_memory

    config = model_config_for_spec("arch:llama-3.2-1b")
    budget = 24 * 2**30
    longest = longest_sequence_that_fits(config, budget, peft="qlora", ckpt=True, chunked_loss=True)
    assert longest % 1024 == 0 and longest > 8192
    at = lambda t: predict_memory(config, peft="qlora", ckpt=True, chunked_loss=True, batch_size=1,  # noqa: E731
                                  seq_len=t)["peak_allocated"]
    assert at(longest) <= budget < at(longest + 1024)


def test_max_context_beyond_the_checked_length_says_the_answer_is_an_estimate(capsys):
    """Predictions were checked on the GPU up to 352,256 tokens: an answer beyond that says so."""
    from engine.tools.predict import CHECKED_TOKENS, main

    assert main(["--model", "arch:tiny", "--ckpt", "--max-context", "--budget", "1GiB"]) == 0
    short = capsys.readouterr().out
    assert "at batch 1: 1,024 tokens" in short and "estimate" not in short
    assert main(["--model", "arch:tiny", "--ckpt", "--chunked-loss", "--max-context", "--budget", "32GiB"]) == 0
    long = capsys.readouterr().out
    tokens = int(long.split("at batch 1: ")[1].split(" tokens")[0].replace(",", ""))
    assert tokens > CHECKED_TOKENS and f"beyond {CHECKED_TOKENS:,} tokens" in long and "an estimate" in long


def test_offloaded_fused_layer_phase_terms():
    """8B shape at 131,072 tokens, offloaded activations and embeddings: the layer phase holds three layer
    inputs (the one in use, the next, and layer 0's, as an allocator history showed) and the gradient of
    the layer output; then the MLP's backward: with fused LoRA down_proj's dx with its fp32 terms over one
    slice of SLICE_ROWS rows, or, its input freed, the three gradients of SiLU(gate) * up (two more than
    down_proj's input), whichever is larger; with peft's path the three gradients and an fp32 copy of a
    hidden-wide one. Unsliced, the MLP's phase is larger than the norms' (which come after its saved
    tensors are freed)."""
    from engine.features.fused_lora import SLICE_ROWS
    from engine.tools.predict import predict_for_spec

    T, hidden, inter = 131_072, 4096, 14_336
    common = dict(peft="qlora", batch_size=1, seq_len=T, ckpt=True, chunked_loss=True, offload_activations=True,
                  offload_embeddings=True)
    fused = predict_for_spec("arch:llama-3.1-8b", fused_lora=True, **common)["peak_terms"]
    unfused = predict_for_spec("arch:llama-3.1-8b", **common)["peak_terms"]
    assert fused["activations"] == unfused["activations"] == 3 * T * hidden * 2
    assert fused["gradient of the layer output"] == unfused["gradient of the layer output"] == T * hidden * 2
    assert fused["layer backward"] == max(2 * T * inter * 2, T * inter * 2 + SLICE_ROWS * (inter * 6 + hidden * 4))
    one_slice = predict_for_spec("arch:llama-3.1-8b", fused_lora=True, **dict(common, seq_len=SLICE_ROWS))
    assert one_slice["peak_terms"]["layer backward"] == (4 * SLICE_ROWS * inter + 2 * SLICE_ROWS * hidden) * 2
    assert unfused["layer backward"] == (3 * T * inter + T * hidden) * 2


# Peak allocated of one training step (Llama-3.1-8B shape, QLoRA, batch 1, --ckpt --chunked-loss
# --expandable-segments, every position labelled; GiB), the first seven rows measured on one H200 on
# 2026-12-03 (the 131,072-token row with --mlp-chunk --fused-rmsnorm measured 17.97 GiB again on an H100),
# the last four on one H100 on 2026-12-06. F = --fused-lora --offload-activations --offload-embeddings.
# The rows from 163,840 tokens were measured after the offload stopped fetching a copy of a tensor
# backward already held (the loss's hidden rows past 131,072 tokens, the final norm's input from 262,144
# with --fused-rmsnorm: one layer input each, 1.25 to 5.4 GiB); the rows of 131,072 tokens and fewer
# never had one. The last row cuts the model to 8 of its 32 layers (same widths): the 32-layer step without
# --fused-rmsnorm was measured only before that change (61.81 GiB, one unread layer input included).
MEASURED_PEAKS = [
    (16_384, {}, 15.71),
    (16_384, {"offload_activations": True}, 12.23),
    (131_072, {"F": True}, 36.35),
    (131_072, {"F": True, "mlp_chunk": 16_384}, 24.34),
    (131_072, {"F": True, "fused_rmsnorm": True}, 34.35),
    (131_072, {"F": True, "mlp_chunk": 16_384, "fused_rmsnorm": True}, 17.97),
    (81_920, {"F": True, "mlp_chunk": 16_384, "fused_rmsnorm": True}, 13.99),
    (163_840, {"F": True, "mlp_chunk": 16_384, "fused_rmsnorm": True}, 21.38),
    (196_608, {"F": True, "mlp_chunk": 16_384, "fused_rmsnorm": True}, 24.91),
    (352_256, {"F": True, "mlp_chunk": 16_384, "fused_rmsnorm": True}, 41.67),
    (352_256, {"F": True, "mlp_chunk": 16_384, "layers": 8}, 56.37),
]


@pytest.mark.parametrize("seq_len, switches, measured", MEASURED_PEAKS)
def test_predicted_peak_within_5_percent_of_the_gpu_measurement(seq_len, switches, measured):
    from engine.tools.predict import model_config_for_spec, predict_memory

    switches = dict(switches)
    if switches.pop("F", False):
        switches.update(fused_lora=True, offload_activations=True, offload_embeddings=True)
    config = model_config_for_spec("arch:llama-3.1-8b")
    config.num_hidden_layers = switches.pop("layers", config.num_hidden_layers)
    pred = predict_memory(config, peft="qlora", batch_size=1, seq_len=seq_len, ckpt=True, chunked_loss=True,
                          **switches)
    assert abs(pred["peak_allocated"] / 2**30 / measured - 1) <= 0.05
