"""--offload-activations: what autograd saves goes to host memory and comes back unchanged, so the
loss and every gradient equal the plain step's; the memory record moves those bytes from
`activations` to `activations_host`."""

from __future__ import annotations

import pytest
import torch

from data.batching import TrainData
from engine.config import ConfigError, TrainConfig
from engine.features.offload_activations import ActivationOffload, pinned_pieces
from engine.loss import CausalLMLoss
from engine.memory import ActivationCounter
from engine.step import enable_gradient_checkpointing, training_step
from test_engine import perturb_lora_b, tiny_model
from test_packing import labelled_data


def _step(device: torch.device, *, offload: bool, ckpt: bool, min_bytes: int = 0, peft: str = "qlora",
          piece_bytes: int = 1 << 20):
    torch.manual_seed(0)
    model = tiny_model(peft=peft) if device.type == "cpu" else _on(device, peft)
    perturb_lora_b(model)
    if ckpt:
        enable_gradient_checkpointing(model, TrainConfig(ckpt=True))
    model.train()
    counter = ActivationCounter(model)
    if offload:
        counter.offload = ActivationOffload(device, min_bytes=min_bytes, piece_bytes=piece_bytes)
    data = labelled_data(n=4, every_position=True)
    batch = data.micro_batch([0, 1, 2, 3], device)
    loss = training_step(CausalLMLoss(model, label_only=True), batch, 1.0, counter)
    grads = {n: p.grad.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.cpu(), grads, counter, model, batch


def _on(device, peft):
    from models.load import load_model

    return load_model("arch:tiny", peft=peft, compute_dtype=torch.float32, device=device, seed=0)


@pytest.mark.parametrize("ckpt", [True, False])
def test_offloaded_step_has_the_plain_steps_loss_and_gradients(ckpt):
    cpu = torch.device("cpu")
    loss, grads, plain, model, batch = _step(cpu, offload=False, ckpt=ckpt)
    loss_off, grads_off, counted, _, _ = _step(cpu, offload=True, ckpt=ckpt)
    assert torch.equal(loss_off, loss)
    for name, grad in grads.items():
        assert torch.equal(grads_off[name], grad), name
    assert plain.peak_host == 0 and counted.peak_host > 0
    # what left the device is what the plain step kept there, less the views and non-contiguous
    # tensors that stay (they would free nothing)
    assert counted.peak + counted.peak_host >= plain.peak * 0.9
    assert counted.peak < plain.peak
    if ckpt:  # checkpointing keeps each layer's input [B, T, H] and the loss's tensors: all on the host now
        layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
        rows, width = batch["input_ids"].shape
        assert counted.peak == 0 and counted.peak_host == plain.peak
        assert counted.peak_host >= layers * rows * width * hidden * 4


@pytest.mark.parametrize("ckpt", [True, False])
def test_every_copy_back_is_read_once(ckpt, monkeypatch):
    # The final norm and the loss save several tensors per node and unpack them in saving order: the
    # prefetch must skip what backward already holds, or a copy is made that nothing reads.
    unpacks = []  # (entry, whether its copy was already on its way)
    original = ActivationOffload.unpack
    monkeypatch.setattr(ActivationOffload, "unpack",
                        lambda self, entry: unpacks.append((entry, entry.back is not None)) or original(self, entry))
    _, _, counted, _, _ = _step(torch.device("cpu"), offload=True, ckpt=ckpt)
    offload = counted.offload
    assert len(unpacks) > len(offload.saved) > 3
    assert offload.unread() == 0
    assert offload.fetches == len(unpacks)
    prefetched = sum(ahead for _, ahead in unpacks)
    assert prefetched >= len(offload.saved) // 2  # most copies were queued ahead of their use
    # and the old rule, "fetch the tensor saved just before", fetches one the node already holds
    monkeypatch.setattr(ActivationOffload, "_next_needed",
                        lambda self, index: self.saved[index - 1]() if index else None)
    unpacks.clear()
    _, _, counted, _, _ = _step(torch.device("cpu"), offload=True, ckpt=ckpt)
    assert counted.offload.unread() > 0 and counted.offload.fetches > len(unpacks)


def test_host_pieces_are_whole_powers_of_two_that_add_up_to_the_tensor():
    # 8B's layer input at 350,208 tokens, bf16: 2,868,903,936 bytes, which one pinned block would round
    # up to 4 GiB; in pieces 2 GiB + 512 MiB + 128 MiB + ... with no round-up at all.
    numel = 350_208 * 4096
    counts = pinned_pieces(numel, torch.bfloat16)
    sizes = [2 * n for n in counts]
    assert sum(counts) == numel and sizes == sorted(sizes, reverse=True)
    assert all(size & (size - 1) == 0 for size in sizes)
    assert sizes[:3] == [2 << 30, 512 << 20, 128 << 20]
    assert pinned_pieces(1000, torch.float32) == [1000]  # under 1 MiB: one piece
    tail = pinned_pieces((3 << 20) + 10, torch.uint8)
    assert tail == [2 << 20, 1 << 20, 10]


def test_small_tensors_stay_and_the_flag_is_refused_where_it_cannot_run():
    _, _, counted, _, _ = _step(torch.device("cpu"), offload=True, ckpt=True, min_bytes=1 << 40)
    assert counted.peak_host == 0 and counted.peak > 0
    with pytest.raises(ConfigError, match="saved-tensor hooks"):
        TrainConfig(offload_activations=True, cuda_graphs=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_offloaded_step_on_cuda_streams_equals_the_plain_step():
    cuda = torch.device("cuda")
    loss, grads, plain, _, _ = _step(cuda, offload=False, ckpt=True)
    # pieces of 256 bytes: every saved tensor travels in several
    loss_off, grads_off, counted, _, _ = _step(cuda, offload=True, ckpt=True, piece_bytes=256)
    assert torch.equal(loss_off, loss)
    for name, grad in grads.items():
        assert torch.equal(grads_off[name], grad), name
    assert counted.peak_host > 0 and counted.peak < plain.peak


def test_memory_cap_is_checked_and_refused_off_cuda():
    from engine.distributed import Distributed
    from engine.features.switches import check_switches

    assert TrainConfig(memory_cap_gib=24).memory_cap_gib == 24
    with pytest.raises(ConfigError, match="--memory-cap-gib must be a positive number of GiB, got 0"):
        TrainConfig(memory_cap_gib=0)
    with pytest.raises(ConfigError, match="--memory-cap-gib caps the CUDA allocator: it needs a CUDA device"):
        check_switches(TrainConfig(memory_cap_gib=24), torch.device("cpu"), Distributed())
