"""Generation speed side by side: HF `generate`, our plain loop and our static decoder, same QLoRA model.

    python -m eval.bench_generate --model arch:smollm2-135m arch:llama-3.2-1b --batch-sizes 16 64
    python -m eval.bench_generate --model smollm2-135m-instruct --adapter runs/x/adapter --examples 64

For each model: one QLoRA model (NF4 + double quantisation, LoRA r16 on every linear layer, built by
our load_model; without --adapter the LoRA B matrices are drawn from N(0, 0.02) so that there is
something to merge), the prompts of the bundled held-out questions (chat template, as evaluation
builds them), then for each batch size
  hf      `model.generate(do_sample=False, max_new_tokens=N, min_new_tokens=N)` on the peft model;
  plain   eval/generate.greedy_decode on the peft model (4-bit weights + LoRA, a growing cache);
  static  eval/decoder.StaticDecoder: dense weights, static cache, CUDA graph on a GPU, the adapters
          computed in fp32 beside the base matmul as peft computes them (StaticDecoder(lora="fp32"));
  static-split  the same, the prefill's adapter term from bf16 matmuls at fp32 precision
          (StaticDecoder's default, lora="split", what evaluation's --decoder auto runs: no large fp32
          tensor);
  static-fused  the same with the adapters fused into the base matmul in the compute dtype
          (StaticDecoder(lora="fused"): fewer kernels, bf16 rounding of the adapter path).
Every row generates exactly --new-tokens tokens (no stop token), so all systems do the same work.
Each system first decodes one batch untimed (allocator, cuBLAS and graph warm-up); the clock then runs
over all --examples prompts, from the first prefill to the last token after a device sync. The static
decoder's one-time set-up (dequantising, capture) is reported in its own column.
Also printed: the share of greedy tokens where each static decoder and plain agree, position by position.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from data.files import atomic_write_json, atomic_write_text

SYSTEMS = ("hf", "plain", "static", "static-split", "static-fused")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _left_padded(prompts, pad_id, device):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def _batches(prompts, size):
    return [prompts[i:i + size] for i in range(0, len(prompts), size)]


def bench_model(spec: str, adapter: str | None, batch_sizes: list[int], new_tokens: int, examples: int,
                device: torch.device, systems: list[str]) -> list[dict]:
    from engine.device import resolve_compute_dtype
    from eval.decoder import LORA_OF_DECODER, StaticDecoder
    from eval.evaluate import evaluation_data, spread_indices
    from eval.generate import greedy_decode, inference_mode, prompt_token_ids
    from models.load import load_model, load_tokenizer
    from models.merge import load_for_eval

    dtype = resolve_compute_dtype("auto", device)
    if adapter:
        model, tokenizer, _ = load_for_eval(spec, adapter, compute_dtype=dtype, device=device)
    else:
        model = load_model(spec, peft="qlora", compute_dtype=dtype, device=device)
        torch.manual_seed(1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.02)
        tokenizer = load_tokenizer(spec)
    data, _ = evaluation_data("bundled", "heldout_db")
    picked = [data[i] for i in spread_indices(len(data), examples)]
    prompts = sorted((prompt_token_ids(e["messages"], tokenizer) for e in picked), key=len, reverse=True)
    pad = tokenizer.pad_token_id
    rows = []
    with inference_mode(model):
        for batch_size in batch_sizes:
            batches = _batches(prompts, batch_size)
            outputs: dict[str, list[list[int]]] = {}
            setup = 0.0
            for system in systems:
                if system.startswith("static"):
                    decoder = None  # the previous static decoder's buffers and graph go before the next's
                    _sync(device)
                    t0 = time.perf_counter()
                    decoder = StaticDecoder(model, batch_size=batch_size, max_len=len(prompts[0]) + new_tokens,
                                            pad_token_id=pad, stop_ids=[],
                                            lora=LORA_OF_DECODER[system])
                    decoder.decode(batches[0], max_new_tokens=new_tokens)  # includes the capture
                    _sync(device)
                    setup = time.perf_counter() - t0

                    def run(batch):
                        return decoder.decode(batch, max_new_tokens=new_tokens)
                elif system == "plain":
                    def run(batch):
                        return greedy_decode(model, batch, pad_token_id=pad, stop_ids=[],
                                             max_new_tokens=new_tokens)
                else:
                    def run(batch):
                        ids, mask = _left_padded(batch, pad, device)
                        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                                             max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                             pad_token_id=pad, use_cache=True)
                        return out[:, ids.shape[1]:].tolist()
                if not system.startswith("static"):
                    run(batches[0])  # warm-up
                _sync(device)
                t0 = time.perf_counter()
                outputs[system] = [ids for batch in batches for ids in run(batch)]
                _sync(device)
                seconds = time.perf_counter() - t0
                generated = sum(len(o) for o in outputs[system])
                rows.append({"model": spec, "batch_size": batch_size, "system": system,
                             "examples": len(prompts), "new_tokens": new_tokens, "seconds": round(seconds, 3),
                             "tokens_per_s": round(generated / seconds, 1),
                             "setup_seconds": round(setup, 2) if system.startswith("static") else None})
            hf = next((r for r in rows if r["model"] == spec and r["batch_size"] == batch_size
                       and r["system"] == "hf"), None)
            for r in rows:
                if r["model"] != spec or r["batch_size"] != batch_size:
                    continue
                r["vs_hf"] = round(r["tokens_per_s"] / hf["tokens_per_s"], 2) if hf else None
                if r["system"].startswith("static") and "plain" in outputs:
                    pairs = [(a, b) for x, y in zip(outputs[r["system"]], outputs["plain"]) for a, b in zip(x, y)]
                    r["agree_with_plain"] = round(sum(a == b for a, b in pairs) / len(pairs), 4)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'model':<22} {'batch':>5} {'system':<12} {'tokens/s':>10} {'vs HF':>7} {'set-up s':>9} {'agree':>7}"]
    for r in rows:
        lines.append(f"{r['model']:<22} {r['batch_size']:>5} {r['system']:<12} {r['tokens_per_s']:>10,.1f} "
                     f"{r['vs_hf'] if r.get('vs_hf') is not None else '-':>7} "
                     f"{r['setup_seconds'] if r.get('setup_seconds') is not None else '-':>9} "
                     f"{r.get('agree_with_plain', '-'):>7}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.bench_generate",
                                description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", nargs="+", default=["arch:smollm2-135m", "arch:llama-3.2-1b"],
                   help="model specs (default: arch:smollm2-135m arch:llama-3.2-1b)")
    p.add_argument("--adapter", default=None,
                   help="a run's adapter directory, for one model (default: random LoRA B)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64],
                   help="rows generated together, one measurement each (default: 16 64)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens generated per row (default: 64)")
    p.add_argument("--examples", type=int, default=128, help="prompts timed per batch size (default: 128)")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS,
                   help=f"which generators to time (default: {' '.join(SYSTEMS)})")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--out", default=None, help="directory for bench.json and bench.md (default: print only)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.adapter and len(args.model) != 1:
        print("error: --adapter needs exactly one --model", file=sys.stderr)
        return 2
    if min(args.batch_sizes) < 1 or args.new_tokens < 1 or args.examples < 1:
        print("error: --batch-sizes, --new-tokens and --examples must be at least 1", file=sys.stderr)
        return 2
    from engine.device import resolve_device

    try:
        device = resolve_device(args.device)
        rows = []
        for spec in args.model:
            rows += bench_model(spec, args.adapter, args.batch_sizes, args.new_tokens, args.examples,
                                device, args.systems)
            print(format_table([r for r in rows if r["model"] == spec]), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the model of this spec is gone: free its blocks for the next
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n{name}, torch {torch.__version__}, {datetime.now():%Y-%m-%d}")
    print(format_table(rows))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "bench.json", {"device": name, "torch": torch.__version__, "rows": rows,
                                               "date": f"{datetime.now():%Y-%m-%d}"})
        atomic_write_text(out / "bench.md", f"{name}, {datetime.now():%Y-%m-%d}\n\n```\n{format_table(rows)}\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
