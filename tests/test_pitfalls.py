"""Two checkpointing pitfalls that a hand-written loop must get right, and that Trainer users meet:
the reentrant variant trains no LoRA weight when the layer inputs need no grad, and HF models skip
checkpointing in eval mode. Both on the tiny preset, in fp32 on CPU."""

from __future__ import annotations

import warnings

import pytest
import torch

from engine.config import TrainConfig
from engine.loss import body_and_head, compute_loss
from engine.memory import ActivationCounter
from engine.step import prepare_micro_step
from tests.test_engine import perturb_lora_b, tiny_model, variable_length_data

CPU = torch.device("cpu")


def lora_grads(reentrant: bool | None) -> dict[str, torch.Tensor | None]:
    """LoRA gradients of one batch: without checkpointing (None), or with the given variant."""
    model = tiny_model(peft="qlora")
    perturb_lora_b(model)
    if reentrant is not None:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        # transformers hooks the embedding to make its output require grad (enable_input_require_grads);
        # without that hook the layer inputs are frozen tensors, as in a loop that checkpoints by itself.
        model.disable_input_require_grads()
    model.train()
    with warnings.catch_warnings():  # reentrant: "None of the inputs have requires_grad=True"
        warnings.simplefilter("ignore")
        compute_loss(model, variable_length_data(4).micro_batch([0, 1, 2, 3], CPU), label_only=True).backward()
    return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_reentrant_checkpointing_needs_inputs_that_require_grad():
    plain, non_reentrant = lora_grads(None), lora_grads(False)
    assert len(plain) == 2 * 7 * 2  # 2 blocks x 7 projections x (A, B)
    for name, grad in plain.items():
        torch.testing.assert_close(non_reentrant[name], grad, rtol=1e-5, atol=1e-7)
    # The frozen embedding's output needs no grad, so a reentrant checkpoint's output needs none either:
    # autograd never sees the adapters inside the layers (here every layer, so nothing is left to train).
    with pytest.raises(RuntimeError, match="does not require grad"):
        lora_grads(True)


def decoder_activation_bytes(model: torch.nn.Module) -> int:
    batch = variable_length_data(4).micro_batch([0, 1, 2, 3], CPU)
    counter = ActivationCounter(model)
    with counter.count():
        hidden = body_and_head(model)[0](input_ids=batch["input_ids"],
                                         attention_mask=batch["attention_mask"]).last_hidden_state
    hidden.sum().backward()
    return counter.peak


def test_checkpointing_applies_only_in_training_mode_which_prepare_micro_step_sets():
    plain = tiny_model(peft="qlora")
    plain.enable_input_require_grads()  # what gradient_checkpointing_enable adds: the same saved tensors
    plain.train()
    eval_mode = tiny_model(peft="qlora")
    eval_mode.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    eval_mode.eval()  # grad still enabled: an eval-mode forward that trains
    ours = tiny_model(peft="qlora")
    ours.eval()
    prepare_micro_step(TrainConfig(model="arch:tiny", ckpt=True), ours, variable_length_data(4), CPU)
    assert ours.training
    saved = {name: decoder_activation_bytes(m) for name, m in (("plain", plain), ("eval", eval_mode), ("ours", ours))}
    assert saved["eval"] == saved["plain"]  # checkpointing silently off in eval mode
    assert saved["ours"] < 0.2 * saved["plain"]


@pytest.mark.parametrize("ckpt", [False, True])
def test_prepare_micro_step_turns_the_kv_cache_off(ckpt):
    model = tiny_model(peft="qlora")
    model.config.use_cache = True
    prepare_micro_step(TrainConfig(model="arch:tiny", ckpt=ckpt), model, variable_length_data(4), CPU)
    assert model.config.use_cache is False
