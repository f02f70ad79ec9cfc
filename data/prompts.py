"""The text-to-SQL prompt: seed 000's system and user prompts, with the schema DDL added when known.

The model sees the schema as compact `CREATE TABLE` lines (data/schema.py) between <SCHEMA> tags
(with --sample-rows, a few rows of each table under its statement), BIRD's evidence, when a record
has one, between <EVIDENCE> tags, then the question between <USER_QUERY> tags, and answers with the
bare SQL query. Training and evaluation build it with the same function, so the two prompts agree."""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are a text to SQL query translator. "
    "Users will ask you questions in English and you will generate a SQL query."
)
INSTRUCTION = (
    "Given the <USER_QUERY>, generate the corresponding SQL command to retrieve the desired data, "
    "considering the query's syntax, semantics, and schema constraints."
)


def sql_user_prompt(question: str, schema: str | None, evidence: str | None = None) -> str:
    parts = [INSTRUCTION]
    if schema:
        parts.append(f"<SCHEMA>\n{schema}\n</SCHEMA>")
    if evidence and evidence.strip():
        parts.append(f"<EVIDENCE>\n{evidence.strip()}\n</EVIDENCE>")
    parts.append(f"<USER_QUERY>\n{question}\n</USER_QUERY>")
    return "\n\n".join(parts)


def sql_messages(question: str, schema: str | None, answer: str | None, evidence: str | None = None) -> list[dict]:
    """[system, user] for generation, [system, user, assistant] for training."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": sql_user_prompt(question, schema, evidence)},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages
