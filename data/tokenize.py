"""Chat-template tokenisation with label masking: the model learns the answer and its end token only.

For one conversation (the last message is the assistant's answer):
  1. render it with the tokenizer's own chat template: `full`;
  2. render the conversation without the answer and with add_generation_prompt=True: `prompt`,
     exactly the text the model will see at generation time; `full` must start with it, and the
     rest is the answer, the end-of-turn token, and whatever the template writes after it;
  3. tokenise `prompt` and the rest apart (add_special_tokens=False: the template already writes
     BOS and friends), so the prompt tokens are exactly the ones generation is prompted with;
  4. labels = -100 over the prompt (system, user, assistant header) and after the first special
     token of the rest, the end-of-turn token (<|im_end|> ChatML, <|eot_id|> Llama 3, <|end|>
     Phi-3, </s> Zephyr/Mistral), which is learned with the answer: that is what makes generation
     stop. A trailing newline, or Phi-3's final eos, stays masked.
If the template writes no special token after the answer, the tokenizer's eos is appended and
learned.

Why not tokenise `full` once and map character offsets to tokens: BPE pre-tokenisation looks ahead,
so the text at the boundary tokenises differently with the answer behind it. With a Llama-3-style
template the prompt ends in "\n\n": alone it is one token (id 1116 in SmolLM2's vocabulary), but
"\n\nSELECT" gives "\n" "\n" "SELECT", and a prompt ending "Answer: " gives " SELECT". A model
trained on those would be prompted with token sequences it never saw.

Tokenizers without a chat template use FALLBACK_CHAT_TEMPLATE, a plain-text "### Role:" layout
(as in seed 004's alpaca prompts) that writes eos after every assistant message:

    ### System:
    You are ...

    ### User:
    Given the <USER_QUERY>, ...

    ### Assistant:
    SELECT ...<eos>
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a dataset is built: the loss and the batches need only IGNORE_INDEX
    import datasets

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index

# Newlines are written as '\n' expressions because transformers renders chat templates with
# trim_blocks=True, which would eat a literal newline after a {% %} tag.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] | capitalize + ':\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)


def template_override(tokenizer) -> str | None:
    """The `chat_template=` to render with: None (the tokenizer's own) or the fallback."""
    return None if tokenizer.chat_template else FALLBACK_CHAT_TEMPLATE


def render_prompt(messages: list[dict], tokenizer) -> str:
    """The generation prompt for a conversation without its answer (what inference feeds the model)."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, chat_template=template_override(tokenizer)
    )


def _special_ids(tokenizer) -> frozenset[int]:
    # all_special_ids misses tokens added later as special (e.g. <|eot_id|> on a copy); the
    # added-tokens table knows them all.
    added = (i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special)
    return frozenset(tokenizer.all_special_ids).union(added)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _masked_tokens(messages: list[dict], tokenizer, special_ids: frozenset[int]) -> tuple[list[int], list[int], int]:
    """(input_ids, labels, end-of-turn id) for one conversation; see the module docstring."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message of a training conversation must be the assistant's answer")
    template = template_override(tokenizer)
    full = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template)
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True, chat_template=template
    )
    if not full.startswith(prompt):
        at = len(os.path.commonprefix([full, prompt]))
        raise ValueError(
            "the chat template renders the conversation differently from its generation prompt "
            f"(from character {at}: {full[at:at + 20]!r} vs {prompt[at:at + 20]!r}), so the answer cannot be located"
        )
    prompt_ids = _encode(tokenizer, prompt)
    rest = full[len(prompt) :]  # the answer, its end-of-turn token, then whatever the template adds
    rest_ids = _encode(tokenizer, rest)
    end_of_turn = next((i for i, t in enumerate(rest_ids) if t in special_ids), None)
    if end_of_turn is None:  # the template ends the answer with plain text, or nothing
        if tokenizer.eos_token_id is None:
            raise ValueError("the chat template writes no end token after the answer, and the tokenizer has no eos")
        # Drop the template's trailing whitespace so the eos we learn follows the answer directly.
        rest_ids = _encode(tokenizer, rest.rstrip()) + [tokenizer.eos_token_id]
        end_of_turn = len(rest_ids) - 1
    if end_of_turn == 0:
        raise ValueError("the answer renders to no tokens")

    input_ids = prompt_ids + rest_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + rest_ids[: end_of_turn + 1]
    labels += [IGNORE_INDEX] * (len(input_ids) - len(labels))
    return input_ids, labels, rest_ids[end_of_turn]


def tokenize_conversation(messages: list[dict], tokenizer) -> tuple[list[int], list[int]]:
    """input_ids and labels (-100 except on the answer and its end-of-turn token)."""
    input_ids, labels, _ = _masked_tokens(messages, tokenizer, _special_ids(tokenizer))
    return input_ids, labels


def end_of_turn_token_id(tokenizer) -> int:
    """The token the chat template writes right after an assistant message (eos if it writes
    none): the token the model learns to end its answers with, hence a stop token for generation."""
    probe = [{"role": "user", "content": "How many rows?"}, {"role": "assistant", "content": "SELECT 1"}]
    return _masked_tokens(probe, tokenizer, _special_ids(tokenizer))[2]


@dataclass
class TokenizedDataset:
    dataset: datasets.Dataset  # columns input_ids, labels, length (tokens)
    num_dropped: int  # examples longer than max_length, dropped whole (never truncated)
    max_length: int


def tokenize_dataset(examples: datasets.Dataset, tokenizer, max_length: int) -> TokenizedDataset:
    """Tokenise every conversation; drop (and count) those longer than max_length tokens, because
    a truncated example would teach an answer without its end, or no answer at all."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 tokens, got {max_length}")
    special_ids = _special_ids(tokenizer)

    def encode(example: dict) -> dict:
        input_ids, labels, _ = _masked_tokens(example["messages"], tokenizer, special_ids)
        return {"input_ids": input_ids, "labels": labels, "length": len(input_ids)}

    tokenized = examples.map(encode, remove_columns=examples.column_names, desc="tokenizing")
    kept = tokenized.filter(lambda length: length <= max_length, input_columns="length")
    return TokenizedDataset(dataset=kept, num_dropped=len(tokenized) - len(kept), max_length=max_length)
