"""The loop's arithmetic: accumulation equivalence, token-weighted loss, memory byte counts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from data.batching import TrainData
from engine.checkpoint import TrainState
from engine.config import TrainConfig
from engine.loop import train
from engine.loss import body_and_head, compute_loss
from engine.memory import ActivationCounter, MemoryTracker, gradient_bytes
from engine.optim import create_optimizer
from engine.schedule import create_scheduler
from models.load import load_model

CPU = torch.device("cpu")


def tiny_model(peft: str = "lora", seed: int = 0, **kwargs) -> torch.nn.Module:
    return load_model("arch:tiny", peft=peft, compute_dtype=torch.float32, device=CPU, seed=seed, **kwargs)


def perturb_lora_b(model: torch.nn.Module, seed: int = 1) -> None:
    """LoRA B starts at zero, which makes every A gradient zero: give B values so both get gradients."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def variable_length_data(n: int = 4, seed: int = 0, vocab: int = 1000) -> TrainData:
    """Prompts of different lengths masked with -100, answers of different lengths labelled."""
    g = torch.Generator().manual_seed(seed)
    input_ids, labels = [], []
    for i in range(n):
        prompt_len, answer_len = 5 + 7 * i, 2 + 3 * (n - i)
        ids = torch.randint(3, vocab, (prompt_len + answer_len,), generator=g).tolist()
        input_ids.append(ids)
        labels.append([-100] * prompt_len + ids[prompt_len:])
    return TrainData(input_ids=input_ids, labels=labels, pad_token_id=2)


def run_steps(model, data: TrainData, tmp_path: Path, *, steps: int, capture_grads: bool = False, **overrides):
    cfg = TrainConfig(model="arch:tiny", peft="lora", optim="adamw", max_steps=steps, warmup=0,
                      out=str(tmp_path), **overrides)
    optimizer = create_optimizer(model, name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = create_scheduler(optimizer, kind=cfg.scheduler, warmup_steps=0, total_steps=steps)
    grads: list[dict[str, torch.Tensor]] = []
    if capture_grads:  # the gradients the optimizer is about to apply (after clipping)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        optimizer.register_step_pre_hook(lambda *_: grads.append({n: p.grad.clone() for n, p in named}))
    records = train(cfg, model, data, optimizer, scheduler, device=CPU, run_dir=tmp_path, start=TrainState(),
                    total_steps=steps, is_peft=True)
    return records, grads, optimizer


def reference_window_loss(model, data: TrainData) -> float:
    """Token-weighted mean of next-token cross-entropy over all examples, one example at a time."""
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in zip(data.input_ids, data.labels):
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
            targets = torch.tensor(labels[1:])
            keep = targets != -100
            total += F.cross_entropy(logits[keep], targets[keep], reduction="sum").item()
            count += int(keep.sum())
    return total / count


def test_accumulation_equivalence(tmp_path):
    """bs1 x accum4 and bs4 x accum1 see the same 4 variable-length examples in one window: same
    gradients, and the logged loss is the token-weighted mean (not the mean of micro-batch means)."""
    data = variable_length_data(4)
    results = {}
    for batch_size, accum in ((1, 4), (4, 1), (2, 2)):
        model = tiny_model()
        perturb_lora_b(model)
        expected_loss = reference_window_loss(model, data)
        records, grads, _ = run_steps(model, data, tmp_path / f"{batch_size}x{accum}", steps=1,
                                      capture_grads=True, batch_size=batch_size, accum=accum, max_grad_norm=0)
        assert records[0]["loss"] == pytest.approx(expected_loss, rel=1e-6)
        assert records[0]["label_tokens"] == sum(sum(t != -100 for t in y) for y in data.labels)
        results[(batch_size, accum)] = grads[0]
    reference = results[(4, 1)]
    assert any(g.abs().sum() > 0 for n, g in reference.items() if "lora_A" in n)
    for key in ((1, 4), (2, 2)):
        for name, grad in reference.items():
            torch.testing.assert_close(results[key][name], grad, rtol=1e-4, atol=1e-6)  # fp32 summation order


def test_mean_of_means_would_differ():
    """Guard that the data really is unbalanced: averaging per-example means != token-weighted mean."""
    data = variable_length_data(4)
    model = tiny_model()
    perturb_lora_b(model)
    per_example = []
    with torch.no_grad():
        for ids, labels in zip(data.input_ids, data.labels):
            batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                     "labels": torch.tensor([labels])}
            n = sum(t != -100 for t in labels[1:])
            per_example.append(compute_loss(model, batch, label_only=True).item() / n)
    assert abs(sum(per_example) / 4 - reference_window_loss(model, data)) > 1e-3


def test_label_only_loss_equals_full_logits_loss():
    data = variable_length_data(3)
    model = tiny_model()
    perturb_lora_b(model)
    batch = data.micro_batch([0, 1, 2], CPU)
    with torch.no_grad():
        a = compute_loss(model, batch, label_only=True)
        b = compute_loss(model, batch, label_only=False)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)


def test_clipping_reports_pre_clip_norm_and_clips(tmp_path):
    data = variable_length_data(4)
    model = tiny_model()
    perturb_lora_b(model)
    records, grads, _ = run_steps(model, data, tmp_path, steps=1, capture_grads=True, batch_size=4,
                                  max_grad_norm=1e-3)
    clipped_norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads[0].values()))
    assert records[0]["grad_norm"] > 1e-3  # reported: the norm before clipping
    assert clipped_norm == pytest.approx(1e-3, rel=1e-4)  # applied: the clipped gradients


# ---- memory tracker --------------------------------------------------------------------------

def test_tracker_adamw_fp32_state_and_grads(tmp_path):
    """torch AdamW: exp_avg + exp_avg_sq in fp32 (2 x 4 bytes per trainable parameter) plus one
    float32 `step` scalar per parameter tensor; gradients fp32, 4 bytes per trainable parameter."""
    model = tiny_model(peft="qlora")
    trainable = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in trainable)
    records, _, _ = run_steps(model, variable_length_data(4), tmp_path, steps=1, batch_size=2, accum=2)
    mem = records[0]["mem"]
    assert mem["params_trainable"] == 4 * n
    assert mem["grads"] == 4 * n
    assert mem["optimizer"] == 2 * 4 * n + 4 * len(trainable)
    assert mem["optimizer_paged"] == 0
    assert mem["allocated"] is None and mem["reserved"] is None  # CPU: no CUDA allocator


def expected_bnb_8bit_state_bytes(params: list[torch.Tensor]) -> int:
    """bitsandbytes 8-bit Adam: tensors with >= 4096 elements get uint8 moments (2 bytes/param) and one
    float32 absmax per 256-element block per moment; smaller ones keep fp32 moments (8 bytes/param).
    The two 256-entry float32 code books (qmap1, qmap2) are shared by all tensors: counted once."""
    total, any_8bit = 0, False
    for p in params:
        n = p.numel()
        if n >= 4096:
            any_8bit = True
            total += 2 * n + 2 * 4 * math.ceil(n / 256)
        else:
            total += 2 * 4 * n
    return total + (2 * 256 * 4 if any_8bit else 0)


def test_tracker_8bit_state_formula():
    model = tiny_model(peft="qlora", lora_r=64)  # rank 64 on 64-wide layers: some tensors >= 4096, some not
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {p.numel() >= 4096 for p in trainable} == {True, False}
    optimizer = create_optimizer(model, name="adamw_8bit", lr=1e-3, weight_decay=0.0)
    data = variable_length_data(2)
    compute_loss(model, data.micro_batch([0, 1], CPU), label_only=True).backward()
    optimizer.step()
    tracker = MemoryTracker(model, optimizer, CPU)
    mem = tracker.record(gradient_bytes(model))
    assert mem["optimizer"] == expected_bnb_8bit_state_bytes(trainable)
    assert mem["grads"] == 4 * sum(p.numel() for p in trainable)


def test_activations_lower_with_checkpointing():
    """Whole micro-batch: lower with --ckpt. Decoder stack alone: checkpointing keeps only each layer's
    input ([4, T, 64] fp32 per layer) instead of every intermediate: an order of magnitude less.
    (With tiny's 64-wide layers and 49,152-token vocabulary the fp32 logits of the answer tokens are
    most of the total, which checkpointing does not touch.)"""
    data = variable_length_data(4)
    batch = data.micro_batch([0, 1, 2, 3], CPU)
    totals, decoder_only = {}, {}
    for ckpt in (False, True):
        model = tiny_model(peft="qlora")
        if ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        counter = ActivationCounter(model)
        with counter.count():
            loss = compute_loss(model, batch, label_only=True)
        loss.backward()
        totals[ckpt] = counter.peak
        counter.reset()
        body, _ = body_and_head(model)
        with counter.count():
            hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden.sum().backward()
        decoder_only[ckpt] = counter.peak
    assert 0 < totals[True] < totals[False]
    assert decoder_only[True] < 0.2 * decoder_only[False]
    layer_input = batch["input_ids"].numel() * 64 * 4  # [B, T, hidden] fp32
    assert decoder_only[True] >= 2 * layer_input  # both layer inputs are kept


def test_activation_counter_excludes_parameters_and_dedups_views():
    weight = torch.nn.Parameter(torch.randn(8, 8))
    model = torch.nn.Linear(8, 8)
    model.weight = weight
    counter = ActivationCounter(model)
    x = torch.randn(4, 8, requires_grad=True)
    with counter.count():
        y = model(x)           # saves x (input) and the weight (excluded: a parameter)
        z = (y * y[:, :8]).sum()  # saves y twice through views: one storage
    z.backward()
    assert counter.peak == x.numel() * 4 + y.numel() * 4
