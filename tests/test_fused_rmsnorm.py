"""--fused-rmsnorm: RMSNorm as one autograd node gives LlamaRMSNorm's output bit for bit, its gradients up to
float summation order, and keeps the input and an fp32 number per row instead of an fp32 copy of the input."""

from __future__ import annotations

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

import engine.features.fused_lora as fl
from engine.config import TrainConfig
from engine.features.fused_rmsnorm import RMSNormFunction, fused_rmsnorm_layers, is_llama_rmsnorm
from engine.loss import CausalLMLoss
from engine.memory import ActivationCounter
from engine.step import enable_gradient_checkpointing, training_step
from test_engine import perturb_lora_b, tiny_model
from test_packing import labelled_data


def _norm(dtype, hidden=64, seed=0):
    torch.manual_seed(seed)
    norm = LlamaRMSNorm(hidden, eps=1e-5).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.1 * torch.randn(hidden))
    x = (3 * torch.randn(2, 37, hidden)).to(dtype)
    return norm, x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("slice_rows", [16_384, 10])  # one slice, and 74 rows in 8 slices
def test_forward_is_llama_rmsnorm_bit_for_bit_and_backward_its_gradients(monkeypatch, dtype, slice_rows):
    monkeypatch.setattr(fl, "SLICE_ROWS", slice_rows)
    norm, x = _norm(dtype)
    g = torch.randn(x.shape).to(dtype)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref = norm(x_ref)
    y_ref.backward(g)
    dw_ref, norm.weight.grad = norm.weight.grad.clone(), None
    with fused_rmsnorm_layers(norm) as count:
        y = norm(x_ours)
    assert count == 1 and "forward" not in vars(norm)
    y.backward(g)
    assert y.dtype == y_ref.dtype and torch.equal(y, y_ref)
    if dtype == torch.float32:  # fp32 throughout: summation order only
        assert torch.allclose(x_ours.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
        assert torch.allclose(norm.weight.grad, dw_ref, rtol=1e-5, atol=1e-5)
    else:  # the same fp32 arithmetic rounded to bf16 once: at most one bf16 step apart
        step = 2.0 ** (torch.floor(torch.log2(x_ref.grad.float().abs().clamp(min=1e-30))) - 7)
        assert ((x_ours.grad.float() - x_ref.grad.float()).abs() <= step).all()
        assert torch.allclose(norm.weight.grad.float(), dw_ref.float(), rtol=2e-2)


def test_in_bf16_it_keeps_the_input_and_one_fp32_number_per_row():
    norm, x = _norm(torch.bfloat16)
    x.requires_grad_()
    counts = []
    for fused in (False, True):
        counter = ActivationCounter(norm)
        with counter.count(), fused_rmsnorm_layers(norm if fused else torch.nn.Module()):
            norm(x)
        counts.append(counter.last)
    rows, hidden = 2 * 37, 64
    assert counts[1] == rows * hidden * 2 + rows * 4  # x itself (bf16) and rstd (fp32)
    assert counts[0] >= rows * hidden * 4  # LlamaRMSNorm keeps an fp32 copy of x


def _step(fused: bool):
    torch.manual_seed(0)
    model = tiny_model(peft="qlora")
    perturb_lora_b(model)
    enable_gradient_checkpointing(model, TrainConfig(ckpt=True))
    model.train()
    batch = labelled_data(n=3, every_position=True).micro_batch([0, 1, 2], torch.device("cpu"))
    loss_fn = CausalLMLoss(model, label_only=True)
    if fused:
        with fused_rmsnorm_layers(model) as count:
            loss = training_step(loss_fn, batch, 1.0, ActivationCounter(model))
        assert count == 2 * model.config.num_hidden_layers + 1  # two per layer and the final norm
    else:
        loss = training_step(loss_fn, batch, 1.0, ActivationCounter(model))
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss, grads, model


def test_a_checkpointed_qlora_step_gives_the_same_loss_and_gradients():
    loss, grads, _ = _step(False)
    loss_f, grads_f, model = _step(True)
    assert torch.equal(loss_f, loss)  # the forward is the same bits
    for name, grad in grads.items():
        assert (grads_f[name] - grad).norm() <= 1e-5 * grad.norm(), name
    norms = [m for m in model.modules() if is_llama_rmsnorm(m)]
    assert len(norms) == 2 * model.config.num_hidden_layers + 1
    assert not any("forward" in vars(m) for m in norms)  # the class's forward again after the block


def test_norm_weight_gradient_when_it_trains():
    norm, x = _norm(torch.float32)
    out = RMSNormFunction.apply(x, norm.weight, norm.variance_epsilon)
    out.sum().backward()
    expected = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)).sum((0, 1))
    assert torch.allclose(norm.weight.grad, expected, rtol=1e-5)


def test_a_model_without_llama_rmsnorm_is_refused_in_one_line():
    from engine.config import ConfigError
    from engine.features.switches import training_switches

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    with pytest.raises(ConfigError, match="--fused-rmsnorm: this model has no RMSNorm"):
        with training_switches(TrainConfig(fused_rmsnorm=True), model, torch.device("cpu"), say=lambda _: None):
            pass
