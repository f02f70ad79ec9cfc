"""--mlp-chunk: the MLP over checkpointed sequence slices computes the same loss and gradients, and keeps
fewer bytes for backward."""

from __future__ import annotations

import torch

from engine.config import TrainConfig
from engine.features.chunked_mlp import chunked_mlp_layers
from engine.loss import CausalLMLoss
from engine.memory import ActivationCounter
from engine.step import enable_gradient_checkpointing, training_step
from test_engine import perturb_lora_b, tiny_model
from test_packing import labelled_data


def _step(chunk: int, ckpt: bool):
    torch.manual_seed(0)
    model = tiny_model(peft="qlora")
    perturb_lora_b(model)
    if ckpt:
        enable_gradient_checkpointing(model, TrainConfig(ckpt=True))
    model.train()
    counter = ActivationCounter(model)
    batch = labelled_data(n=3, every_position=True).micro_batch([0, 1, 2], torch.device("cpu"))
    if chunk:
        with chunked_mlp_layers(model, chunk) as layers:
            loss = training_step(CausalLMLoss(model, label_only=True), batch, 1.0, counter)
        assert layers == model.config.num_hidden_layers
    else:
        loss = training_step(CausalLMLoss(model, label_only=True), batch, 1.0, counter)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss, grads, counter.peak, model


def _assert_same(loss, grads, loss_c, grads_c):
    assert torch.allclose(loss_c, loss, rtol=1e-6)
    for name, grad in grads.items():
        assert (grads_c[name] - grad).norm() <= 1e-5 * grad.norm(), name  # fp32: matmul rounding only


def test_sliced_mlp_gives_the_same_loss_and_gradients_and_saves_less():
    loss, grads, saved, _ = _step(0, ckpt=False)
    loss_c, grads_c, saved_c, model = _step(7, ckpt=False)
    _assert_same(loss, grads, loss_c, grads_c)
    assert saved_c < saved  # the MLP's [T, intermediate] tensors are no longer kept
    assert all("forward" not in vars(layer.mlp) for layer in model.base_model.model.model.layers)


def test_sliced_mlp_under_layer_checkpointing_gives_the_same_gradients():
    loss, grads, _, _ = _step(0, ckpt=True)
    loss_c, grads_c, _, _ = _step(5, ckpt=True)
    _assert_same(loss, grads, loss_c, grads_c)


def test_evaluation_mid_training_reads_the_switched_model():
    """--mlp-chunk and --fused-rmsnorm replace forwards on the instances: evaluation's decoder, which reads
    the projections and norm weights of the model being trained, decodes as without them."""
    from engine.features.fused_rmsnorm import fused_rmsnorm_layers
    from eval.decoder import StaticDecoder

    model = tiny_model(peft="qlora").eval()
    perturb_lora_b(model)
    prompts = [[1, 5, 9, 200, 31, 7], [4, 40, 400]]

    def decode():
        decoder = StaticDecoder(model, batch_size=2, max_len=16, pad_token_id=2, stop_ids=[])
        return decoder.decode(prompts, max_new_tokens=5)

    with torch.inference_mode():
        expected = decode()
        with chunked_mlp_layers(model, 2), fused_rmsnorm_layers(model):
            switched = decode()
    assert switched == expected and len(expected[0]) == 5
