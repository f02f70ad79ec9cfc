"""Our loop against HF Trainer on the same tiny QLoRA model, data order, optimizer, schedule and
clipping: per-step losses must agree within 1e-4 for 12 steps with gradient accumulation.

Trainer is a test-only reference here; the engine never imports it."""

from __future__ import annotations

import pytest
import torch

from data.batching import TrainData, batch_order, collate
from engine.checkpoint import TrainState
from engine.config import TrainConfig
from engine.loop import train
from engine.optim import create_optimizer
from engine.schedule import create_scheduler
from models.load import load_model

transformers = pytest.importorskip("transformers")

CPU = torch.device("cpu")
BATCH, ACCUM, EXAMPLES, LR, WARMUP = 2, 2, 48, 1e-3, 2
STEPS = EXAMPLES // (BATCH * ACCUM)  # 12 optimizer steps in one epoch


def make_data(seed: int = 0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    input_ids, labels = [], []
    for _ in range(EXAMPLES):
        prompt_len = int(torch.randint(6, 30, (1,), generator=g))
        answer_len = int(torch.randint(2, 12, (1,), generator=g))
        ids = torch.randint(3, 2000, (prompt_len + answer_len,), generator=g).tolist()
        input_ids.append(ids)
        labels.append([-100] * prompt_len + ids[prompt_len:])
    return TrainData(input_ids=input_ids, labels=labels, pad_token_id=2)


def tiny_qlora():
    return load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device=CPU, seed=0)


def our_losses(data: TrainData, tmp_path) -> list[float]:
    model = tiny_qlora()
    cfg = TrainConfig(model="arch:tiny", batch_size=BATCH, accum=ACCUM, max_steps=STEPS, lr=LR, warmup=WARMUP,
                      scheduler="linear", weight_decay=0.01, max_grad_norm=1.0, optim="adamw", seed=0)
    optimizer = create_optimizer(model, name="adamw", lr=LR, weight_decay=0.01)
    scheduler = create_scheduler(optimizer, kind="linear", warmup_steps=WARMUP, total_steps=STEPS)
    records = train(cfg, model, data, optimizer, scheduler, device=CPU, run_dir=tmp_path, start=TrainState(),
                    total_steps=STEPS, is_peft=True)
    return [r["loss"] for r in records]


def trainer_losses(data: TrainData, tmp_path) -> list[float]:
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainingArguments

    # Feed Trainer the examples in the order our loop visits them, and read them sequentially.
    order = [i for batch in batch_order(data.lengths, BATCH, seed=0, epoch=0, group_by_length=False) for i in batch]
    examples = [{"input_ids": data.input_ids[i], "labels": data.labels[i]} for i in order]

    class SequentialTrainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"), per_device_train_batch_size=BATCH, gradient_accumulation_steps=ACCUM,
        learning_rate=LR, lr_scheduler_type="linear", warmup_steps=WARMUP, weight_decay=0.01,
        max_grad_norm=1.0, optim="adamw_torch", num_train_epochs=1, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, seed=0, dataloader_num_workers=0, disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = SequentialTrainer(model=tiny_qlora(), args=args, train_dataset=examples,
                                data_collator=lambda rows: collate(rows, pad_token_id=data.pad_token_id))
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_losses_match_hf_trainer(tmp_path):
    data = make_data()
    ours = our_losses(data, tmp_path / "ours")
    theirs = trainer_losses(data, tmp_path)
    assert len(ours) == len(theirs) == STEPS
    assert ours[0] != ours[-1]  # the model actually trains
    for step, (a, b) in enumerate(zip(ours, theirs), start=1):
        assert a == pytest.approx(b, abs=1e-4), f"step {step}: ours {a} vs Trainer {b}"
