"""The speed and memory switches of a run: refused where they cannot work, and applied for training only.

Every switch keeps the loss equal to the plain loop's (each has a test that says so); what they change
is how fast a step runs and how much memory it holds. One lifetime rule for all of them: a switch that
changes the model is applied when training starts and undone when it ends (`training_switches`), so
evaluation and generation before and after training see the plain model. The two settings PyTorch
reads only once (allocator, cuBLAS) are applied before the model exists (`apply_cuda_memory_settings`);
the choice of loss head and of CUDA graphs is made with the micro-step (engine/step.py).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import torch

from engine.config import ConfigError, TrainConfig
from engine.distributed import Distributed
from engine.features.chunked_mlp import chunked_mlp_layers
from engine.features.compile import compiled_decoder_layers
from engine.features.cuda_memory import cap_cuda_memory, set_cublas_workspace, use_expandable_segments
from engine.features.fused_lora import fused_lora_layers
from engine.features.fused_rmsnorm import fused_rmsnorm_layers
from engine.features.offload import embeddings_on_host
from engine.memory import format_bytes

CUDA_ONLY = {"cuda_graphs": "--cuda-graphs needs a CUDA device: it records CUDA graphs",
             "offload_embeddings": "--offload-embeddings is about CUDA memory: it needs a CUDA device",
             "offload_activations": "--offload-activations is about CUDA memory: it needs a CUDA device",
             "expandable_segments": "--expandable-segments is about CUDA memory: it needs a CUDA device",
             "cublas_workspace_mib": "--cublas-workspace-mib is about CUDA memory: it needs a CUDA device",
             "memory_cap_gib": "--memory-cap-gib caps the CUDA allocator: it needs a CUDA device",
             "memory_snapshot": "--memory-snapshot records the CUDA allocator: it needs a CUDA device"}


def check_switches(cfg: TrainConfig, device: torch.device, dist: Distributed) -> None:
    """Refuse, in one line, the switches this device or launch cannot run (the configuration itself
    has been checked by TrainConfig; these need to know the machine)."""
    for name, message in CUDA_ONLY.items():
        if getattr(cfg, name) not in (False, None) and device.type != "cuda":
            raise ConfigError(message)
    if cfg.cuda_graphs and dist.enabled:
        raise ConfigError("--cuda-graphs runs in a single process (DDP's gradient hooks are not captured)")


def apply_cuda_memory_settings(cfg: TrainConfig, device: torch.device) -> None:
    """--expandable-segments, --cublas-workspace-mib and --memory-cap-gib, applied now: PyTorch reads the
    first two once, at the first CUDA allocation and the first cuBLAS handle, so this must come before the
    model exists."""
    if cfg.expandable_segments:
        use_expandable_segments()
    if cfg.cublas_workspace_mib is not None:
        set_cublas_workspace(cfg.cublas_workspace_mib)
    if cfg.memory_cap_gib is not None:
        cap_cuda_memory(cfg.memory_cap_gib, device)


@contextmanager
def training_switches(cfg: TrainConfig, model: torch.nn.Module, device: torch.device,
                      say: Callable[[str], None] = print) -> Iterator[None]:
    """--fused-lora, --fused-rmsnorm, --compile-layers, --mlp-chunk and --offload-embeddings applied to `model` inside the block,
    undone after it."""
    with ExitStack() as stack:
        if cfg.fused_lora:
            say(f"fused LoRA: {stack.enter_context(fused_lora_layers(model))} layers run as one autograd node each")
        if cfg.fused_rmsnorm:
            norms = stack.enter_context(fused_rmsnorm_layers(model))
            if not norms:
                raise ConfigError("--fused-rmsnorm: this model has no RMSNorm computed as LlamaRMSNorm's")
            say(f"fused RMSNorm: {norms} norms run as one autograd node each")
        if cfg.compile_layers:
            stack.enter_context(compiled_decoder_layers(model))
        if cfg.mlp_chunk:
            layers = stack.enter_context(chunked_mlp_layers(model, cfg.mlp_chunk))
            say(f"MLP of {layers} layers over slices of {cfg.mlp_chunk} positions, each checkpointed")
        if cfg.offload_embeddings:
            freed = stack.enter_context(embeddings_on_host(model, device))
            say(f"embeddings and LM head in pinned host memory: {format_bytes(freed)} of device memory freed")
        yield
