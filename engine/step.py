"""One micro-batch's forward + loss + backward (Trainer: `training_step`), chosen once, before the loop.

Two implementations share one interface, `forward_backward(indices, scale) -> loss`:
  EagerStep          collate the examples, compute the loss, backward: PyTorch as written (under torchrun
                     the loss module is wrapped in DDP);
  GraphedMicroSteps  the same computation replayed from CUDA graphs recorded once per padded length
                     (--cuda-graphs, engine/features/cuda_graphs.py).
`prepare_micro_step` readies the model for training and returns the one the configuration asks for, so
the loop never asks which it has.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from data.batching import TrainData
from engine.config import TrainConfig
from engine.distributed import Distributed
from engine.features.chunked_loss import chunked_head_loss
from engine.features.cuda_graphs import GraphedMicroSteps
from engine.features.offload_activations import ActivationOffload
from engine.loss import CausalLMLoss, HeadLoss, plain_head_loss
from engine.memory import ActivationCounter


class MicroStep(Protocol):
    module: torch.nn.Module  # what `Distributed.no_backward_sync` enters (the DDP wrapper under torchrun)
    activations: ActivationCounter  # bytes saved for backward, per micro-batch
    recorded: bool  # True for CUDA graph replays: gradients live in fixed tensors, memory fixed at recording
    peak_allocated: int  # CUDA bytes at the recording's peak, which replays reuse unseen (0: nothing recorded)

    def forward_backward(self, indices: list[int], scale: float) -> torch.Tensor:
        """Add the gradients of (loss sum of examples `indices`) x `scale` to .grad; return that scaled loss."""


def training_step(loss_module: torch.nn.Module, batch: dict[str, torch.Tensor], scale: float,
                  activations: ActivationCounter) -> torch.Tensor:
    """Trainer.training_step: forward + loss + backward of one micro-batch; returns the scaled loss,
    detached. `loss_module`'s forward is `compute_loss` (engine/loss.py); `scale` turns its sum into
    this micro-batch's share of the window's token-weighted mean."""
    with activations.count():  # every tensor autograd keeps for backward, by storage
        loss = loss_module(**batch) * scale
    loss.backward()  # gradients accumulate in .grad across the window's micro-batches
    return loss.detach()


class EagerStep:
    """The micro-step as PyTorch runs it: a padded batch on the device, `training_step` on it."""

    recorded, peak_allocated = False, 0

    def __init__(self, module: torch.nn.Module, data: TrainData, device: torch.device, activations: ActivationCounter):
        self.module, self.data, self.device, self.activations = module, data, device, activations

    def forward_backward(self, indices: list[int], scale: float) -> torch.Tensor:
        return training_step(self.module, self.data.micro_batch(indices, self.device), scale, self.activations)


def enable_gradient_checkpointing(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Trainer: `gradient_checkpointing_enable` at the top of `_inner_training_loop`. Non-reentrant:
    it recomputes through autograd's saved-tensor hooks, so it works when the layer *inputs* need no
    grad (frozen embeddings, LoRA inside the layers); a reentrant checkpoint's output would need no grad
    either, and autograd would never reach the adapters inside it (tests/test_pitfalls.py), which is why
    the reentrant variant needs `enable_input_require_grads()`. No RNG state is kept under CUDA graphs:
    nothing random runs there (dropout 0, checked by the config). transformers renamed the method
    `activation_checkpointing_enable` (the old name still works there, with a FutureWarning on every run);
    versions before the rename have only the old one."""
    kwargs = {"use_reentrant": False, **({"preserve_rng_state": False} if cfg.cuda_graphs else {})}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def head_loss_for(cfg: TrainConfig) -> HeadLoss:
    """The LM head and loss the run computes with, chosen once (validation uses it too). --offload-embeddings
    streams the head from host memory: only the chunked loss can do that."""
    return chunked_head_loss if cfg.chunked_loss or cfg.offload_embeddings else plain_head_loss


def prepare_micro_step(cfg: TrainConfig, model: torch.nn.Module, data: TrainData, device: torch.device,
                       dist: Distributed = Distributed(), log: Callable[[str], None] = print) -> MicroStep:
    """Ready `model` for training and build the micro-step `cfg` asks for. Order matters: checkpointing
    after peft wrapped the model (peft forwards the call to the HF model) and before the first forward
    (CUDA graphs record one); `train()` after it, because HF models checkpoint only in training mode."""
    if cfg.ckpt:
        enable_gradient_checkpointing(model, cfg)
    model.config.use_cache = False  # a KV cache is for generation; in training it only costs memory
    model.train()
    head_loss = head_loss_for(cfg)
    if cfg.cuda_graphs:
        graphed = GraphedMicroSteps.for_training(model, data, batch_size=cfg.batch_size,
                                                 label_only=cfg.loss_on_labels_only, device=device, head_loss=head_loss)
        seconds = graphed.record_all()
        log(f"CUDA graphs: recorded {len(graphed.graphs)} (padded lengths {graphed.lengths[-1]}.."
            f"{graphed.lengths[0]}) in {seconds:.1f} s")
        return graphed
    module = dist.prepare(CausalLMLoss(model, label_only=cfg.loss_on_labels_only, head_loss=head_loss), device)
    activations = ActivationCounter(model)
    if cfg.offload_activations:  # the counter's saved-tensor hooks move what autograd keeps to the host
        activations.offload = ActivationOffload(device)
    return EagerStep(module, data, device, activations)
