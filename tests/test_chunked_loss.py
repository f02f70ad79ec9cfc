"""--chunked-loss (engine/features/chunked_loss.py) and --offload-embeddings (engine/features/offload.py): the same loss and
LoRA gradients as the plain label-only loss. On CPU: the arithmetic and the module swap; on a GPU
(-m gpu): pinned host memory, streaming inside CUDA graphs, and the device memory it saves."""

from __future__ import annotations

import os

import pytest
import torch

import engine.features.chunked_loss as chunked_loss
from data.batching import TrainData
from engine.checkpoint import TrainState
from engine.config import ConfigError, TrainConfig
from engine.features.chunked_loss import chunked_head_loss
from engine.features.cuda_graphs import static_micro_batch
from engine.features.offload import HostEmbedding, offload_embeddings, restore_embeddings
from engine.loop import train
from engine.loss import body_and_head, compute_loss, compute_loss_at_positions, plain_head_loss
from engine.optim import create_optimizer
from engine.schedule import create_scheduler
from models.load import load_model
from models.report import parameter_bytes
from tests.test_cuda_graphs import examples

CPU = torch.device("cpu")


def tiny_model(dtype: torch.dtype = torch.float32, device: torch.device = CPU):
    model = load_model("arch:tiny", peft="qlora", compute_dtype=dtype, device=device, seed=0)
    with torch.no_grad():  # B starts at zero, which would make every A gradient zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return model


def batch_of(input_ids, labels, device=CPU):
    from data.batching import collate

    batch = collate([{"input_ids": x, "labels": y} for x, y in zip(input_ids, labels)], pad_token_id=0)
    return {k: v.to(device) for k, v in batch.items()}


def loss_and_lora_grads(model, compute):
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_head_loss_over_ragged_chunks_equals_cross_entropy(monkeypatch):
    """V = 30 in chunks of 7 (the last one 2 rows), two ignored rows, float64: loss and d loss / d hidden
    equal F.cross_entropy on the whole logits."""
    monkeypatch.setattr(chunked_loss, "CHUNK_ROWS", 7)
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 30, bias=False, dtype=torch.float64).requires_grad_(False)
    hidden = torch.randn(9, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 30, (9,))
    targets[[2, 5]] = -100
    results = []
    for chunked in (False, True):
        loss = (chunked_head_loss if chunked else plain_head_loss)(head, hidden, targets)
        (grad,) = torch.autograd.grad(loss * 0.7, hidden)
        results.append((loss.item(), grad))
    (plain, plain_grad), (ours, ours_grad) = results
    assert ours == pytest.approx(plain, rel=1e-6)  # both go through fp32 logits
    assert torch.allclose(ours_grad, plain_grad, rtol=1e-5, atol=1e-7)
    assert ours_grad[[2, 5]].abs().max().item() == 0.0  # ignored rows get no gradient


def test_chunked_head_refuses_a_trainable_head():
    head = torch.nn.Linear(4, 10, bias=False)
    with pytest.raises(ValueError, match="frozen LM head"):
        chunked_head_loss(head, torch.randn(2, 4), torch.tensor([1, 2]))


@pytest.mark.parametrize("dtype, rel", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_chunked_loss_equals_the_plain_loss_on_the_tiny_preset(monkeypatch, dtype, rel):
    """QLoRA tiny preset (vocab 49,152 in chunks of 5,000): same loss sum and LoRA gradients."""
    monkeypatch.setattr(chunked_loss, "CHUNK_ROWS", 5000)
    model = tiny_model(dtype)
    batch = batch_of(*examples())
    plain_loss, plain_grads = loss_and_lora_grads(model, lambda: compute_loss(model, batch, label_only=True))
    ours_loss, ours_grads = loss_and_lora_grads(model, lambda: compute_loss(model, batch, label_only=True, head_loss=chunked_head_loss))
    assert ours_loss == pytest.approx(plain_loss, rel=rel)
    for name, grad in plain_grads.items():
        assert torch.allclose(ours_grads[name].float(), grad.float(), rtol=rel, atol=rel * grad.abs().max().item()), name


def test_offloaded_embeddings_give_the_same_loss_and_come_back():
    """The embedding module is swapped for a HostEmbedding holding the same (tied) Parameter; the loss and
    gradients do not change; the fixed-shape (CUDA graph) batch carries the rows gathered on the host;
    restore_embeddings puts the original module back."""
    model = tiny_model()
    batch = batch_of(*examples())
    plain_loss, plain_grads = loss_and_lora_grads(model, lambda: compute_loss(model, batch, label_only=True))
    body, head = body_and_head(model)
    original, weight = body.get_input_embeddings(), head.weight
    assert weight is original.weight  # tied

    offload_embeddings(model, CPU)
    host = body.get_input_embeddings()
    assert isinstance(host, HostEmbedding) and host.weight is weight and head.weight is weight
    assert sum(1 for p in model.parameters() if p is weight) == 1  # still one Parameter, listed once
    ours_loss, ours_grads = loss_and_lora_grads(model, lambda: compute_loss(model, batch, label_only=True, head_loss=chunked_head_loss))
    assert ours_loss == pytest.approx(plain_loss, rel=1e-5)
    for name, grad in plain_grads.items():
        assert torch.allclose(ours_grads[name], grad, rtol=1e-5, atol=1e-5 * grad.abs().max().item()), name

    input_ids, labels = examples()
    fixed = static_micro_batch(input_ids, labels, batch_size=4, length=64, label_slots=40, pad_token_id=0,
                               host_embedding=host)
    ids = static_micro_batch(input_ids, labels, batch_size=4, length=64, label_slots=40, pad_token_id=0)["input_ids"]
    assert torch.equal(fixed["inputs_embeds"], weight.data[ids])  # [4, 64, H]: the rows of the padded ids
    fixed_loss, _ = loss_and_lora_grads(model, lambda: compute_loss_at_positions(model, **fixed, head_loss=chunked_head_loss))
    assert fixed_loss == pytest.approx(plain_loss, rel=1e-5)

    restore_embeddings(model, CPU)
    assert body.get_input_embeddings() is original and original.weight is weight


def test_offload_and_chunked_loss_need_a_frozen_head_and_labels_only():
    for flags in ({"chunked_loss": True, "peft": "full"}, {"offload_embeddings": True, "loss_on_labels_only": False}):
        with pytest.raises(ConfigError, match="needs the label-only loss and a frozen LM head"):
            TrainConfig(**flags)


def test_cublas_workspace_setting_is_the_environment_pytorch_reads(monkeypatch):
    from engine.features.cuda_memory import set_cublas_workspace

    for name in ("CUBLAS_WORKSPACE_CONFIG", "CUBLASLT_WORKSPACE_SIZE"):
        monkeypatch.setenv(name, "")  # restored (or removed) after the test
    set_cublas_workspace(8)

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":8192:1"  # one workspace of 8,192 KiB per handle and stream
    assert os.environ["CUBLASLT_WORKSPACE_SIZE"] == "8192"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_offloaded_graphed_training_matches_eager_on_cuda(tmp_path):
    """bf16 on the GPU, 3 steps of 2 x 2 with checkpointing over several lengths: the plain eager loop and
    --chunked-loss --offload-embeddings --cuda-graphs give the same losses; the offloaded run reports
    the pinned embedding bytes as params_host and not as device parameters."""
    device = torch.device("cuda")
    input_ids, labels = examples(n=12, seed=1)
    results = {}
    for name, flags in (("plain", {}), ("offloaded", {"chunked_loss": True, "offload_embeddings": True,
                                                      "cuda_graphs": True})):
        cfg = TrainConfig(model="arch:tiny", batch_size=2, accum=2, max_steps=3, ckpt=True, warmup=0, lr=1e-3,
                          optim="adamw", device="cuda", **flags)
        model = tiny_model(torch.bfloat16, device)
        frozen_before = parameter_bytes(model)["params_frozen"]
        if cfg.offload_embeddings:
            offload_embeddings(model, device)
        optimizer = create_optimizer(model, name="adamw", lr=cfg.lr, weight_decay=0.0)
        scheduler = create_scheduler(optimizer, kind="constant", warmup_steps=0, total_steps=3)
        records = train(cfg, model, TrainData(input_ids, labels, pad_token_id=0), optimizer, scheduler,
                        device=device, run_dir=tmp_path / name, start=TrainState(), total_steps=3, is_peft=True)
        results[name] = (records, frozen_before)
    plain, offloaded = results["plain"][0], results["offloaded"][0]
    assert [r["loss"] for r in offloaded] == pytest.approx([r["loss"] for r in plain], rel=2e-2)
    embedding_bytes = 49152 * 64 * 2  # tiny preset: vocab x hidden, bf16, tied
    mem = offloaded[-1]["mem"]
    assert mem["params_host"] == embedding_bytes
    assert mem["params_frozen"] == results["offloaded"][1] - embedding_bytes
    assert plain[-1]["mem"]["params_host"] == 0
