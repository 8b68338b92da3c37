"""From a pairs table to token sequences: chat templates, truncation, content keys.

Each pairs row gives two sequences, (prompt_chosen + response_chosen) and (prompt_rejected +
response_rejected); with the inter `margin` loss an inter row also gives (base_prompt + response_chosen) and
(base_prompt + response_rejected). A prompt is rendered with the tokenizer's chat template and
add_generation_prompt=True; the response is the rest of the template's rendering of the full conversation
(response text plus the end-of-turn token), so it is tokenised exactly as the model sees it at inference.

    rows, dropped = encode_pairs(table, tokenizer, max_length=1024, max_prompt_length=512)
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass

from mapl_cli.errors import MaplError
from mapl_cli.pairs import KINDS

KIND_IDS = {name: i for i, name in enumerate(KINDS)}  # EncodedRow.kind; the loss module reads the same order


@dataclass
class Sequence:
    """One (prompt, response) token sequence; the loss reads response tokens only."""

    prompt_ids: list[int]
    response_ids: list[int]

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


@dataclass
class EncodedRow:
    """A pairs row as 2 sequences (chosen, rejected), or 4 with the base-prompt ones for the margin loss."""

    pair_id: str
    kind: int
    sequences: list[Sequence]

    @property
    def keys(self) -> list[str]:
        """Content key of each sequence (the reference log-prob cache is keyed by it): a hash of its tokens."""
        return [sequence_key(s) for s in self.sequences]

    @property
    def length(self) -> int:
        return max(len(s) for s in self.sequences)


def sequence_key(sequence: Sequence) -> str:
    """sha256 of a sequence's prompt and response token ids (after truncation): what its log-prob depends on."""
    digest = hashlib.sha256()
    digest.update(array("q", sequence.prompt_ids).tobytes())
    digest.update(b"|")
    digest.update(array("q", sequence.response_ids).tobytes())
    return digest.hexdigest()[:32]


def render_prompt(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def split_conversation(tokenizer, messages: list[dict], response: str) -> tuple[str, str]:
    """(prompt text, response text incl. end-of-turn) such that prompt + response is the template's rendering
    of the conversation ending with `response` as the assistant turn."""
    prompt = render_prompt(tokenizer, messages)
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": response}], tokenize=False
    )
    if not full.startswith(prompt):
        raise MaplError(
            "chat template problem: the rendered prompt (add_generation_prompt=True) is not a prefix of the rendered "
            "prompt+response; the model's chat template must render the generation prompt as the start of the "
            "assistant turn"
        )
    return prompt, full[len(prompt) :]


def _clean(messages) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def truncate(prompt_ids: list[int], response_ids: list[int], max_length: int | None, max_prompt_length: int | None):
    """Prompts keep their end (the instructions and generation prompt), responses their start."""
    if max_prompt_length is not None and len(prompt_ids) > max_prompt_length:
        prompt_ids = prompt_ids[len(prompt_ids) - max_prompt_length :]
    if max_length is not None and len(prompt_ids) + len(response_ids) > max_length:
        response_ids = response_ids[: max(0, max_length - len(prompt_ids))]
    return prompt_ids, response_ids


def encode_pairs(
    table,
    tokenizer,
    max_length: int | None = None,
    max_prompt_length: int | None = None,
    with_base: bool = False,
) -> tuple[list[EncodedRow], dict[str, int]]:
    """Tokenise every row of a pairs table. Returns (rows, dropped counts by reason).

    `with_base` adds the base-prompt sequences to inter rows (inter `margin` loss); inter rows without a
    base_prompt are then dropped and counted. Rows whose response would be cut to nothing are dropped.
    """
    data = table.select(
        ["pair_id", "kind", "prompt_chosen", "prompt_rejected", "response_chosen", "response_rejected", "base_prompt"]
    ).to_pylist()
    # Render all texts first, then tokenise them in one batched call (much faster than one call per text).
    plans, texts = [], []
    dropped = {"response_truncated_to_nothing": 0, "inter_without_base_prompt": 0}
    for row in data:
        sides = [
            (row["prompt_chosen"], row["response_chosen"]),
            (row["prompt_rejected"], row["response_rejected"]),
        ]
        if with_base and row["kind"] == "inter":
            if not row["base_prompt"]:
                dropped["inter_without_base_prompt"] += 1
                continue
            sides += [(row["base_prompt"], row["response_chosen"]), (row["base_prompt"], row["response_rejected"])]
        first = len(texts)
        for messages, response in sides:
            texts.extend(split_conversation(tokenizer, _clean(messages), response))
        plans.append((row, first, len(sides)))
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    rows = []
    for row, first, count in plans:
        sequences = []
        for k in range(count):
            prompt_ids, response_ids = ids[first + 2 * k], ids[first + 2 * k + 1]
            prompt_ids, response_ids = truncate(prompt_ids, response_ids, max_length, max_prompt_length)
            sequences.append(Sequence(prompt_ids, response_ids))
        if any(not s.response_ids for s in sequences):
            dropped["response_truncated_to_nothing"] += 1
            continue
        rows.append(EncodedRow(row["pair_id"], KIND_IDS[row["kind"]], sequences))
    _check_prefix(tokenizer, plans[:1], ids)
    return rows, dropped


def _check_prefix(tokenizer, plans, ids) -> None:
    """The tokenised prompt must be a prefix of the tokenised prompt+response (no token merges across the
    boundary), otherwise response log-probs would be computed on the wrong tokens."""
    for row, first, _ in plans:
        prompt_text = render_prompt(tokenizer, _clean(row["prompt_chosen"]))
        _, response_text = split_conversation(tokenizer, _clean(row["prompt_chosen"]), row["response_chosen"])
        joint = tokenizer(prompt_text + response_text, add_special_tokens=False)["input_ids"]
        if joint != ids[first] + ids[first + 1]:
            raise MaplError(
                "chat template problem: the tokenised prompt is not a prefix of the tokenised prompt+response "
                "(tokens merge across the end of the generation prompt); fix the template so the generation "
                "prompt ends on a token boundary (for example with a newline)"
            )
