"""CUDA graphs (engine/features/cuda_graphs.py): the fixed-shape micro-batch computes the loss and gradients of
the plain loop. On CPU: the layout and the fixed-shape loss; on a GPU (-m gpu): capture and replay."""

from __future__ import annotations

import pytest
import torch

from data.batching import TrainData, collate
from engine.checkpoint import TrainState
from engine.config import TrainConfig
from engine.features.cuda_graphs import LENGTH_MULTIPLE, padded_length, static_micro_batch
from engine.loop import train
from engine.loss import compute_loss, compute_loss_at_positions
from engine.optim import create_optimizer
from engine.schedule import create_scheduler
from models.load import load_model

CPU = torch.device("cpu")


def examples(n: int = 3, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt + answer of different lengths; the answer carries the labels."""
    g = torch.Generator().manual_seed(seed)
    input_ids, labels = [], []
    for i in range(n):
        prompt, answer = 20 + 7 * i, 4 + 3 * i
        ids = torch.randint(3, 40000, (prompt + answer,), generator=g).tolist()
        input_ids.append(ids)
        labels.append([-100] * prompt + ids[prompt:])
    return input_ids, labels


def test_padded_length():
    assert [padded_length(n) for n in (1, 32, 33, 250)] == [32, 32, 64, 256]
    assert LENGTH_MULTIPLE == 32


def test_static_layout():
    """Row 1 (length 5, labels at tokens 3 and 4) in a [3, 8] batch with 6 slots: positions 2 and 3 of
    row 1 predict them, i.e. flat 1 * 7 + 2 and 1 * 7 + 3; the third row is all pad."""
    batch = static_micro_batch([[5, 6, 7], [8, 9, 10, 11, 12]], [[-100, 6, 7], [-100, -100, -100, 11, 12]],
                               batch_size=3, length=8, label_slots=6, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0, 0, 0, 0], [8, 9, 10, 11, 12, 0, 0, 0], [0] * 8]
    assert batch["positions"].tolist() == [0, 1, 9, 10, 0, 0]
    assert batch["targets"].tolist() == [6, 7, 11, 12, -100, -100]
    with pytest.raises(ValueError, match="more than 3 label tokens"):
        static_micro_batch([[5, 6, 7], [8, 9, 10, 11, 12]], [[-100, 6, 7], [-100, -100, -100, 11, 12]],
                           batch_size=3, length=8, label_slots=3, pad_token_id=0)


@pytest.mark.parametrize("label_only", [True, False])
def test_fixed_shape_loss_and_gradients_equal_the_plain_loss(label_only):
    """Padded to 32-token multiples, one extra all-pad row, no attention mask: the same loss sum and
    LoRA gradients as the plain loss on the collated (masked) batch."""
    input_ids, labels = examples()
    results = []
    for fixed in (False, True):
        model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device=CPU, seed=0)
        with torch.no_grad():  # B starts at zero, which would make every A gradient zero
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
        if fixed:
            length = padded_length(max(map(len, input_ids)))
            batch = static_micro_batch(input_ids, labels, batch_size=4, length=length, pad_token_id=2,
                                       label_slots=4 * 20 if label_only else 4 * (length - 1))
            loss = compute_loss_at_positions(model, **batch)
        else:
            batch = collate([{"input_ids": i, "labels": lab} for i, lab in zip(input_ids, labels)], pad_token_id=2)
            loss = compute_loss(model, batch, label_only=label_only)
        loss.backward()
        results.append((loss.item(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
    (plain, plain_grads), (fixed, fixed_grads) = results
    assert fixed == pytest.approx(plain, rel=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fixed_grads[name], grad, rtol=1e-4, atol=1e-6 * grad.abs().max().item())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fused", [False, True])
def test_graphed_training_matches_the_plain_loop_on_cuda(tmp_path, fused):
    """Four optimizer steps (accumulation 2, lengths crossing 32-token buckets: several graphs) in bf16
    with checkpointing and the 8-bit optimizer: the same losses as eager, within bf16 rounding."""
    device = torch.device("cuda")
    input_ids, labels = examples(16, seed=1)
    data = TrainData(input_ids=input_ids, labels=labels, pad_token_id=2)
    losses, records = {}, {}
    for graphs in (False, True):
        model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.bfloat16, device=device, seed=0)
        if fused:
            from engine.features.fused_lora import fuse_lora_layers

            fuse_lora_layers(model)
        cfg = TrainConfig(model="arch:tiny", batch_size=2, accum=2, ckpt=True, max_steps=4, warmup=0,
                          optim="adamw_8bit", lr=1e-3, cuda_graphs=graphs, device="cuda")
        optimizer = create_optimizer(model, name="adamw_8bit", lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = create_scheduler(optimizer, kind="constant", warmup_steps=0, total_steps=4)
        records[graphs] = train(cfg, model, data, optimizer, scheduler, device=device, run_dir=tmp_path / str(graphs),
                                start=TrainState(), total_steps=4, is_peft=True)
        losses[graphs] = [r["loss"] for r in records[graphs]]
    assert losses[True] == pytest.approx(losses[False], rel=2e-2)
    assert losses[True][0] == pytest.approx(losses[False][0], rel=5e-3)  # same weights: only bf16 order differs
    assert all(r["mem"]["activations"] > 0 for r in records[True])  # measured at capture, reported on replay
    assert records[False][0]["mem"]["cublas_workspace"] > 0 and records[True][0]["mem"]["cublas_workspace"] is None
