"""The one-node LoRA layer computes what peft computes: losses, gradients and training steps."""

from __future__ import annotations

import pytest
import torch

from data.batching import TrainData
from engine.checkpoint import TrainState
from engine.config import TrainConfig
from engine.features.fused_lora import LoRALinearFunction, fuse_lora_layers
from engine.loop import train
from engine.loss import CausalLMLoss
from engine.optim import create_optimizer
from engine.schedule import create_scheduler
from models.load import load_model

CPU = torch.device("cpu")
TINY_LORA_LAYERS = 2 * 7  # arch:tiny: 2 blocks x (q, k, v, o, gate, up, down)


def tiny(peft: str = "qlora", dtype: torch.dtype = torch.float32, device: torch.device = CPU,
         **kwargs) -> torch.nn.Module:
    model = load_model("arch:tiny", peft=peft, compute_dtype=dtype, device=device, seed=0, **kwargs)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # B starts at zero, which would make every A gradient zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 40000, (3, 40), generator=g)
    labels = ids.clone()
    labels[:, :25] = -100
    mask = torch.ones_like(ids)
    mask[2, 30:], labels[2, 30:] = 0, -100  # one padded row
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def loss_and_grads(model, *, fused: bool, ckpt: bool) -> tuple[float, dict[str, torch.Tensor]]:
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    if fused:
        assert fuse_lora_layers(model) == TINY_LORA_LAYERS
    device = next(model.parameters()).device
    loss = CausalLMLoss(model, label_only=True)(**{k: v.to(device) for k, v in batch().items()})
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("peft", ["qlora", "lora"])
@pytest.mark.parametrize("ckpt", [False, True])
def test_same_loss_and_gradients_as_peft(peft, ckpt):
    loss_peft, grads_peft = loss_and_grads(tiny(peft), fused=False, ckpt=ckpt)
    loss_fused, grads_fused = loss_and_grads(tiny(peft), fused=True, ckpt=ckpt)
    assert loss_fused == pytest.approx(loss_peft, rel=1e-6)
    assert grads_fused.keys() == grads_peft.keys() and len(grads_peft) == 2 * TINY_LORA_LAYERS
    for name, grad in grads_peft.items():
        torch.testing.assert_close(grads_fused[name], grad, rtol=1e-5, atol=1e-6 * grad.abs().max().item())


def test_bf16_model_keeps_fp32_adapter_arithmetic(device: torch.device = CPU):
    """bf16 activations, fp32 adapters (the GPU set-up): same loss; gradients within bf16 rounding."""
    loss_peft, grads_peft = loss_and_grads(tiny(dtype=torch.bfloat16, device=device), fused=False, ckpt=True)
    loss_fused, grads_fused = loss_and_grads(tiny(dtype=torch.bfloat16, device=device), fused=True, ckpt=True)
    assert loss_fused == pytest.approx(loss_peft, rel=1e-3)
    for name, grad in grads_peft.items():
        assert grads_fused[name].dtype == torch.float32
        assert (grads_fused[name] - grad).abs().max() <= 0.02 * grad.abs().max()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_on_cuda():
    """The same check where it matters: bnb's CUDA 4-bit kernels, bf16 activations."""
    test_bf16_model_keeps_fp32_adapter_arithmetic(torch.device("cuda"))


def test_gradcheck_against_finite_differences():
    """The hand-written backward, in float64 on a plain linear base."""
    base = torch.nn.Linear(6, 5, bias=True).double().requires_grad_(False)
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    a = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a, b: LoRALinearFunction.apply(x, a, b, base, 0.5), (x, a, b))


def test_layers_it_does_not_cover_keep_peft_forward():
    model = tiny(lora_dropout=0.1)
    assert fuse_lora_layers(model) == 0  # dropout on the LoRA input: peft's forward runs
    model = tiny()
    reference = model(input_ids=batch()["input_ids"]).logits
    fuse_lora_layers(model)
    assert fuse_lora_layers(model) == TINY_LORA_LAYERS  # idempotent
    torch.testing.assert_close(model(input_ids=batch()["input_ids"]).logits, reference)
    with model.disable_adapter():  # adapters off: the base model's logits, through peft's own path
        base_logits = model(input_ids=batch()["input_ids"]).logits
    assert not torch.allclose(base_logits, reference)


def test_training_steps_match_the_plain_loop(tmp_path):
    """Three optimizer steps with accumulation through engine.loop.train: the same losses, fused or not."""
    g = torch.Generator().manual_seed(3)
    input_ids, labels = [], []
    for n in range(16):
        prompt, answer = 8 + n % 5, 3 + n % 4
        ids = torch.randint(3, 2000, (prompt + answer,), generator=g).tolist()
        input_ids.append(ids)
        labels.append([-100] * prompt + ids[prompt:])
    data = TrainData(input_ids=input_ids, labels=labels, pad_token_id=2)
    losses = {}
    for fused in (False, True):
        model = tiny()
        if fused:
            fuse_lora_layers(model)
        cfg = TrainConfig(model="arch:tiny", batch_size=2, accum=2, ckpt=True, max_steps=3, warmup=0, optim="adamw",
                          lr=1e-3)
        optimizer = create_optimizer(model, name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = create_scheduler(optimizer, kind="constant", warmup_steps=0, total_steps=3)
        records = train(cfg, model, data, optimizer, scheduler, device=CPU, run_dir=tmp_path / str(fused),
                        start=TrainState(), total_steps=3, is_peft=True)
        losses[fused] = [r["loss"] for r in records]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    assert losses[False][0] != losses[False][-1]  # it trains


def test_row_slices_keep_fp32_terms_to_one_slice(monkeypatch):
    """With more rows than SLICE_ROWS the fp32 terms are formed slice by slice, forward and backward: the
    output and dx equal the one-slice computation's exactly, dA and dB to fp32 summation order, and no fp32
    tensor either pass makes is larger than a slice's [rows, max(in, out)] (bf16 x and base, fp32 adapters:
    the GPU set-up)."""
    import engine.features.fused_lora as fl
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestFp32(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                    self.largest = max(self.largest, t.numel() * 4)
            return out

    torch.manual_seed(0)
    n_in, n_out, rank, rows = 48, 80, 4, 300
    base = torch.nn.Linear(n_in, n_out, bias=False).to(torch.bfloat16).requires_grad_(False)
    x0 = torch.randn(3, rows // 3, n_in).to(torch.bfloat16)
    a0, b0 = torch.randn(rank, n_in) * 0.1, torch.randn(n_out, rank) * 0.1
    g = torch.randn(3, rows // 3, n_out).to(torch.bfloat16)

    def run(slice_rows):
        monkeypatch.setattr(fl, "SLICE_ROWS", slice_rows)
        x, a, b = x0.clone().requires_grad_(), a0.clone().requires_grad_(), b0.clone().requires_grad_()
        with LargestFp32() as forward:
            y = LoRALinearFunction.apply(x, a, b, base, 2.0)
        with LargestFp32() as backward:
            y.backward(g)
        return (y.detach(), x.grad, a.grad, b.grad), forward.largest, backward.largest

    whole, forward_whole, backward_whole = run(10_000)
    sliced, forward_sliced, backward_sliced = run(64)
    assert forward_whole == backward_whole == rows * n_out * 4  # y in fp32 / the fp32 copy of g, all rows
    assert forward_sliced == backward_sliced == 64 * n_out * 4
    assert torch.equal(sliced[0], whole[0]) and torch.equal(sliced[1], whole[1])  # y and dx, row by row
    for s, w in zip(sliced[2:], whole[2:]):
        torch.testing.assert_close(s, w, rtol=1e-5, atol=1e-6 * w.abs().max().item())
