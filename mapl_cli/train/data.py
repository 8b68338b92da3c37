"""From a pairs table to token batches: chat templates, truncation, length-grouped batches.

Each pairs row gives two sequences, (prompt_chosen + response_chosen) and (prompt_rejected +
response_rejected); with the inter `margin` loss an inter row also gives (base_prompt + response_chosen) and
(base_prompt + response_rejected). A prompt is rendered with the tokenizer's chat template and
add_generation_prompt=True; the response is the rest of the template's rendering of the full conversation
(response text plus the end-of-turn token), so it is tokenised exactly as the model sees it at inference.

    rows, dropped = encode_pairs(table, tokenizer, max_length=1024, max_prompt_length=512)
    plan = batch_plan(rows, global_batch=8, seed=0, epoch=0)   # list of lists of row indices
"""

from __future__ import annotations

import hashlib
import random
from array import array
from dataclasses import dataclass

from mapl_cli.errors import MaplError
from mapl_cli.train.losses import KIND_IDS


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


def batch_plan(rows: list[EncodedRow], global_batch: int, seed: int, epoch: int, shuffle: bool = True) -> list[list[int]]:
    """Global batches of row indices for one epoch. Depends only on (rows, seed, epoch, global batch), never on
    the number of processes, so a resumed or distributed run walks through the same batches.

    With `shuffle`: a seeded shuffle; within windows of 32 batches, rows are ordered by their length rank
    *within their kind* (so each batch holds rows of similar length, and every kind in the window's
    proportion: sorting on raw length would put the longer-prompt intra/inter rows in batches of their own,
    where the weighted mean cancels lambda_intra/lambda_inter); then the batches are shuffled again.
    `shuffle=False` keeps the file order. The last incomplete batch is dropped so every optimizer step sees
    the same number of rows."""
    if not shuffle:
        order = list(range(len(rows) - len(rows) % global_batch))
        return [order[i : i + global_batch] for i in range(0, len(order), global_batch)]
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(rows)))
    rng.shuffle(order)
    by_kind: dict[int, list[int]] = {}
    for i in sorted(order, key=lambda i: rows[i].length):  # stable: equal lengths keep the shuffled order
        by_kind.setdefault(rows[i].kind, []).append(i)
    quantile = {i: (rank + 0.5) / len(members) for members in by_kind.values() for rank, i in enumerate(members)}
    window = global_batch * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: quantile[i])
        batches.extend(chunk[i : i + global_batch] for i in range(0, len(chunk), global_batch))
    batches = [b for b in batches if len(b) == global_batch]
    rng.shuffle(batches)
    return batches


def split_batch(indices: list[int], rows: list[EncodedRow], parts: int) -> list[list[int]]:
    """Split one global batch into `parts` equal micro-batches of similar lengths (sorted by length first)."""
    ordered = sorted(indices, key=lambda i: rows[i].length)
    size = len(ordered) // parts
    return [ordered[p * size : (p + 1) * size] for p in range(parts)]


@dataclass
class TokenBatch:
    """Sequences laid out in rows for one forward. Sequence n sits in row `row[n]` from column `offset[n]`;
    its prompt has `starts[n]` tokens and its response `lengths[n]`. Padded layout: one sequence per row,
    right padding, an attention mask. Packed layout: several sequences per row, `position_ids` restarting at
    0 for each, no attention mask (transformers then builds a block-diagonal causal mask)."""

    input_ids: object
    attention_mask: object | None
    position_ids: object | None
    row: object
    offset: object
    starts: object
    lengths: object

    def to(self, device) -> TokenBatch:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TokenBatch(move(self.input_ids), move(self.attention_mask), move(self.position_ids),
                          self.row, self.offset, self.starts, self.lengths)

    @property
    def real_tokens(self) -> int:
        return int((self.starts + self.lengths).sum())


def collate(sequences: list[Sequence], pad_id: int):
    """Right-padded tensors for a list of sequences: input_ids, attention_mask, and for each sequence the
    first response position and the response length."""
    import torch

    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    starts, lengths = [], []
    for n, seq in enumerate(sequences):
        tokens = seq.prompt_ids + seq.response_ids
        input_ids[n, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        attention_mask[n, : len(tokens)] = 1
        starts.append(len(seq.prompt_ids))
        lengths.append(len(seq.response_ids))
    return input_ids, attention_mask, torch.tensor(starts), torch.tensor(lengths)


def padded_batch(sequences: list[Sequence], pad_id: int) -> TokenBatch:
    import torch

    input_ids, mask, starts, lengths = collate(sequences, pad_id)
    n = len(sequences)
    return TokenBatch(input_ids, mask, None, torch.arange(n), torch.zeros(n, dtype=torch.long), starts, lengths)


def _first_fit(sizes: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices of `sizes` grouped into rows of at most `capacity` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for n in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        for r, free in enumerate(room):
            if sizes[n] <= free:
                rows[r].append(n)
                room[r] -= sizes[n]
                break
        else:
            rows.append([n])
            room.append(capacity - sizes[n])
    return rows


def choose_capacity(sizes: list[int], attention_ratio: float) -> int:
    """Row width for packing. Wider rows waste fewer padding tokens but make attention (quadratic in the width)
    dearer: a row of width c costs about c * (1 + attention_ratio * c), where attention_ratio is attention's
    per-token cost per unit of width relative to the dense layers' (2 / (4 * hidden + 3 * intermediate) for a
    Llama-like block). Candidates: multiples of the longest sequence, and everything in one row."""
    longest = max(sizes)
    candidates = sorted({int(longest * k) for k in (1, 1.25, 1.5, 2, 3, 4)} | {sum(sizes)})
    candidates = [c for c in candidates if c <= sum(sizes)] or [longest]

    def cost(c: int) -> float:
        return len(_first_fit(sizes, c)) * c * (1 + attention_ratio * c)

    return min(candidates, key=cost)


def packed_batch(sequences: list[Sequence], pad_id: int, attention_ratio: float | None = None) -> TokenBatch:
    """Pack sequences into rows by first-fit decreasing: fewer padding tokens than one sequence per row.
    Rows are as wide as the longest sequence, or, given `attention_ratio` (see `choose_capacity`), as wide as
    minimises the estimated compute."""
    import torch

    sizes = [len(s) for s in sequences]
    capacity = max(sizes) if attention_ratio is None else choose_capacity(sizes, attention_ratio)
    rows = _first_fit(sizes, capacity)
    input_ids = torch.full((len(rows), capacity), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), capacity), dtype=torch.long)
    row_of = torch.zeros(len(sequences), dtype=torch.long)
    offset_of = torch.zeros(len(sequences), dtype=torch.long)
    for r, members in enumerate(rows):
        col = 0
        for n in members:
            tokens = sequences[n].prompt_ids + sequences[n].response_ids
            input_ids[r, col : col + len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            position_ids[r, col : col + len(tokens)] = torch.arange(len(tokens))
            row_of[n], offset_of[n] = r, col
            col += len(tokens)
        position_ids[r, col:] = torch.arange(capacity - col)  # the padding tail is a segment of its own
    starts = torch.tensor([len(s.prompt_ids) for s in sequences])
    lengths = torch.tensor([len(s.response_ids) for s in sequences])
    return TokenBatch(input_ids, None, position_ids, row_of, offset_of, starts, lengths)


def make_batch(
    sequences: list[Sequence], pad_id: int, packing: bool = True, attention_ratio: float | None = None
) -> TokenBatch:
    return packed_batch(sequences, pad_id, attention_ratio) if packing else padded_batch(sequences, pad_id)


def attention_ratio_of(config) -> float | None:
    """2 / (4 * hidden + 3 * intermediate) from a transformers config (None when the sizes are unknown)."""
    hidden = getattr(config, "hidden_size", None)
    inter = getattr(config, "intermediate_size", None)
    return 2.0 / (4 * hidden + 3 * inter) if hidden and inter else None
