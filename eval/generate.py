"""Greedy SQL generation through the chat template the model was trained with, and SQL extraction.

The prompt is exactly the training prompt: the conversation without its assistant answer, rendered
with add_generation_prompt=True (data/tokenize.render_prompt) and tokenised without extra special
tokens, so the model continues the very token sequence it learned to answer.

Decoding is a plain loop over a KV cache, written out rather than delegated to `model.generate`, so
that nothing (repetition penalties or sampling settings from a generation_config.json) can change
what "greedy" means:
  prompts   left-padded to the longest in the batch (B, L); position ids count real tokens only,
            so a padded prompt sees the same positions as the same prompt alone;
  prefill   one forward over (B, L), logits of the last position only (B, vocab);
  decode    argmax -> append -> one forward over (B, 1) with the cache, until every row has
            produced a stop token (the end-of-turn token the model was trained to emit, or eos)
            or max_new_tokens have been generated.
That loop runs on any causal LM as it is (4-bit weights and LoRA unmerged). For the Llama family,
`generate` uses eval/decoder.StaticDecoder instead (decoder="auto"): the same greedy rule over dense
weights, a static cache and a CUDA graph, about 10x the tokens/s on a GPU (docs/measurements.md).
Batches are formed after sorting prompts by length (longest first, so an out-of-memory error shows
up in the first batch rather than the last), and results are returned in input order.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from data.tokenize import end_of_turn_token_id, render_prompt

# What an empty answer becomes, so that pred.txt keeps one line per example (the official evaluator
# drops blank lines, which would shift every later prediction onto the wrong gold). A valid query
# that no benchmark asks for; the report scores it wrong without executing it.
EMPTY_SQL = "SELECT 'empty'"
DECODERS = ("auto", "static", "static-split", "static-fused", "plain")


@dataclass
class Generation:
    text: str  # decoded completion, stop token excluded
    num_tokens: int  # generated tokens, stop token included
    stopped: bool  # False: cut off by max_new_tokens


# ----------------------------------------------------------------------------- prompts

def prompt_messages(messages: Sequence[dict]) -> list[dict]:
    """The conversation the model answers: everything before a trailing assistant message."""
    messages = list(messages)
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages:
        raise ValueError("a conversation to generate from needs at least one message before the answer")
    return messages


def prompt_token_ids(messages: Sequence[dict], tokenizer) -> list[int]:
    """Token ids of the generation prompt, exactly as data/tokenize.py tokenises it for training."""
    text = render_prompt(prompt_messages(messages), tokenizer)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_token_ids(tokenizer) -> list[int]:
    """The end-of-turn token the chat template writes after an answer, and eos if different."""
    ids = [end_of_turn_token_id(tokenizer)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


# ----------------------------------------------------------------------------- decoding

@contextmanager
def inference_mode(model: nn.Module) -> Iterator[nn.Module]:
    """eval() (no dropout), the KV cache on, no autograd; the training state is restored after.

    The training loop switches use_cache off (a cache is memory for nothing when training);
    generation without it would recompute the whole prefix at every step."""
    was_training = model.training
    config = getattr(model, "config", None)
    old_use_cache = getattr(config, "use_cache", None)
    model.eval()
    if config is not None:
        config.use_cache = True
    try:
        with torch.inference_mode():
            yield model
    finally:
        if config is not None:
            config.use_cache = old_use_cache
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _vocab_size(model: nn.Module) -> int:
    return model.get_input_embeddings().num_embeddings


def _cache_argument(model: nn.Module) -> str:
    """The name the model's forward takes its KV cache by: `cache` since transformers renamed
    `past_key_values` (the old name still works there, with a deprecation warning on every call)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def greedy_decode(model: nn.Module, prompts: Sequence[Sequence[int]], *, pad_token_id: int,
                  stop_ids: Sequence[int], max_new_tokens: int,
                  on_finished: Callable[[int], None] | None = None) -> list[list[int]]:
    """Greedy continuations of one batch of token-id prompts (call inside `inference_mode`).

    Returns the generated ids of each prompt, up to and including its first stop token;
    on_finished(n) is told how many more rows have stopped (for a progress bar)."""
    device = _model_device(model)
    batch, width = len(prompts), max(len(p) for p in prompts)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)
    for row, prompt in enumerate(prompts):  # left padding: every prompt ends at column width-1
        input_ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt):] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    # Padding takes no position: a prompt's first real token is position 0, as when alone.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, L)
    stop = torch.tensor(list(stop_ids) or [-1], device=device)
    notify = on_finished or (lambda n: None)
    done = 0

    generated = torch.empty((batch, 0), dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    past, cache_argument = None, _cache_argument(model)
    step_ids, step_positions = input_ids, position_ids
    for _ in range(max_new_tokens):
        out = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=step_positions,
                    use_cache=True, logits_to_keep=1, **{cache_argument: past})
        past = getattr(out, cache_argument)
        next_ids = out.logits[:, -1, :].argmax(dim=-1)  # (B,)
        next_ids = torch.where(finished, torch.full_like(next_ids, pad_token_id), next_ids)
        generated = torch.cat([generated, next_ids[:, None]], dim=1)
        finished |= torch.isin(next_ids, stop)
        now = int(finished.sum())
        if now > done:
            notify(now - done)
            done = now
        if done == batch:
            break
        step_ids = next_ids[:, None]  # (B, 1)
        step_positions = step_positions[:, -1:] + 1
        attention_mask = torch.cat([attention_mask, torch.ones_like(step_ids)], dim=1)

    if done < batch:
        notify(batch - done)  # cut at max_new_tokens
    results = []
    for row in generated.tolist():
        cut = next((i for i, t in enumerate(row) if t in stop_ids), None)
        results.append(row if cut is None else row[: cut + 1])
    return results


def generate(model: nn.Module, tokenizer, conversations: Sequence[Sequence[dict]], *,
             batch_size: int = 16, max_new_tokens: int = 160, decoder: str = "auto",
             progress: bool = False, log: Callable[[str], None] | None = None) -> list[Generation]:
    """One greedy completion per conversation (a trailing assistant answer is dropped first).

    decoder: "static" = dense weights, static KV cache, CUDA graph on a GPU (eval/decoder.py), the adapters
    computed as peft does; "static-split" = the same, the prefill's adapter term from bf16 matmuls at
    fp32 precision; "static-fused" = the adapters inside the base matmul (faster on a GPU, rounded in bf16);
    "plain" = the loop above over the model as it is (any causal LM, 4-bit and LoRA unmerged);
    "auto" = static-split where the model's architecture allows it, else plain. The model's train/eval
    mode and use_cache setting are restored afterwards, so it can be called in the middle of
    training. progress: a bar over examples with ETA on stderr."""
    from tqdm.auto import tqdm

    from eval.decoder import LORA_OF_DECODER, StaticDecoder, supported

    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token to pad prompts with")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = stop_token_ids(tokenizer)
    prompts = [prompt_token_ids(messages, tokenizer) for messages in conversations]
    vocab = _vocab_size(model)
    too_big = max((max(p) for p in prompts if p), default=0)
    if too_big >= vocab:
        raise ValueError(f"the tokenizer produces token id {too_big}, beyond the model's {vocab}-token "
                         f"vocabulary: this tokenizer does not belong to this model")
    why_not = supported(model)
    if decoder.startswith("static") and why_not is not None:
        raise ValueError(f"--decoder {decoder}: {why_not}")
    if not prompts:
        return []

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc="generating", unit="ex", disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()
    with inference_mode(model), bar:
        if decoder != "plain" and why_not is None:
            # One decoder for the whole run: the longest prompt comes first, its width bounds the cache.
            fast = StaticDecoder(model, batch_size=min(batch_size, len(prompts)),
                                 max_len=len(prompts[order[0]]) + max_new_tokens,
                                 pad_token_id=pad_id, stop_ids=stop_ids,
                                 lora=LORA_OF_DECODER.get(decoder, "split"))  # auto: as static-split

            def run_batch(batch):
                return fast.decode(batch, max_new_tokens=max_new_tokens, on_finished=bar.update)
        else:
            def run_batch(batch):
                return greedy_decode(model, batch, pad_token_id=pad_id, stop_ids=stop_ids,
                                     max_new_tokens=max_new_tokens, on_finished=bar.update)
        for first in range(0, len(order), batch_size):
            rows = order[first:first + batch_size]
            for i, ids in zip(rows, run_batch([prompts[i] for i in rows])):
                stopped = bool(ids) and ids[-1] in stop_ids
                text = tokenizer.decode(ids[:-1] if stopped else ids, skip_special_tokens=True)
                results[i] = Generation(text=text, num_tokens=len(ids), stopped=stopped)
            if log is not None:
                done, elapsed = first + len(rows), time.perf_counter() - started
                log(f"generated {done}/{len(prompts)} ({done / elapsed:.2f} examples/s)")
    return results  # type: ignore[return-value]


# ----------------------------------------------------------------------------- extraction

# ```sql\n...```, ```SELECT ...```, ``` sqlite ...```; an unclosed fence runs to the end of the text
_FENCE = re.compile(r"```(?:[ \t]*(?:sql|sqlite|mysql|postgresql)\b|[ \t]*[A-Za-z0-9_+-]*[ \t]*(?=\n))?(.*?)(?:```|\Z)",
                    re.DOTALL | re.IGNORECASE)
# "SQL:", "SQL query:", "SQLQuery:", "Query:", "Answer:", "A:", "Output:", "assistant:" at a line start
# (a colon, never '=': "a = 1" is a condition on column a)
_LABEL = re.compile(r"^\s*(?:(?:the\s+)?(?:sql\s*query|sqlquery|sql|query|answer|a|output|assistant|"
                    r"response|result)\s*:\s*)+", re.IGNORECASE)
_STATEMENT_START = re.compile(r"^\s*\(*\s*(select|with|insert|update|delete|replace|create|drop|alter|"
                              r"pragma|values|explain|attach|detach|vacuum|begin|commit)\b", re.IGNORECASE)
# A line starting like this ends the SQL: explanations, markdown, chat markers.
# ("result"/"output" only with a colon: Spider has columns of those names.)
_PROSE_START = re.compile(r"^\s*(?:#|\*\*|>|explanation\b|note\b|this\b|the\b|here\b|in this\b|it\b|"
                          r"i\b|we\b|you\b|(?:output|result|answer)\s*:|<\|)", re.IGNORECASE)


def _split_outside_quotes(text: str, separators: str) -> list[tuple[str, str]]:
    """[(piece, separator that ended it)] splitting on any of `separators` outside quotes."""
    pieces, start, i, quote = [], 0, 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch in separators:
            pieces.append((text[start:i], ch))
            start = i + 1
        i += 1
    pieces.append((text[start:], ""))
    return pieces


def _strip_comments(sql: str) -> str:
    """Drop -- and /* */ comments outside quotes (a '--' comment would swallow the rest of the
    query once newlines are flattened)."""
    out, i, quote = [], 0, ""
    while i < len(sql):
        ch = sql[i]
        if quote:
            out.append(ch)
            if ch == quote:
                quote = ""
            i += 1
        elif ch in "'\"`":
            quote = ch
            out.append(ch)
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _one_line(sql: str) -> str:
    """Whitespace runs -> one space outside quotes; inside quotes only line breaks and tabs become
    spaces (the value 'a  b' must keep both spaces, but no line may break in gold/pred files)."""
    out, quote, pending_space = [], "", False
    for ch in sql:
        if quote:
            out.append(" " if ch in "\r\n\t" else ch)
            if ch == quote:
                quote = ""
            continue
        if ch.isspace():
            pending_space = True
            continue
        if pending_space and out:
            out.append(" ")
        pending_space = False
        out.append(ch)
        if ch in "'\"`":
            quote = ch
    return "".join(out)


def extract_sql(text: str) -> str:
    """The SQL statement in a model's answer, on one line, without a trailing ';'.

    - the content of the first ``` fenced block, when there is one (```sql ... ```);
    - leading labels ("SQL:", "Answer:", "SQL query:") and prose lines before the first line that
      starts a statement are dropped; an answer with no such line is represented by its first
      line (it fails to run and shows in mistakes.csv; the whole text is in predictions.jsonl);
    - the statement ends at a blank line or a line that starts like prose ("Explanation", "This",
      "Note", "#", ...); text after a ';' is dropped unless it starts another statement: a
      two-statement answer stays two statements and is scored wrong, never half-evaluated;
    - comments are removed, newlines flattened, whitespace collapsed (outside string literals);
    - an empty result becomes EMPTY_SQL so that prediction files stay aligned with the gold."""
    fence = _FENCE.search(text)
    if fence:
        text = fence.group(1)
    lines = [_LABEL.sub("", line) for line in text.replace("\r\n", "\n").split("\n")]
    start = next((i for i, line in enumerate(lines) if _STATEMENT_START.match(line)), None)
    kept: list[str] = []
    if start is None:  # no statement at all: its first line stands in, to be scored (wrong) and read
        kept = [line for line in lines if line.strip()][:1]
    else:
        for line in lines[start:]:
            if kept and (not line.strip() or _PROSE_START.match(line)):
                break
            kept.append(line)
    sql = _strip_comments("\n".join(kept))

    statements = []
    for piece, _ in _split_outside_quotes(sql, ";"):
        if not piece.strip():
            continue
        if statements and not _STATEMENT_START.match(piece):
            break  # prose after the statement's ';'
        statements.append(piece.strip())
    sql = _one_line("; ".join(statements)).strip()
    return sql or EMPTY_SQL
