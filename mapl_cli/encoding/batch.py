"""Token sequences laid out for one forward: padded (one per row) or packed (several per row), and with
shared prompts: sequences that have the same prompt (a standard or inter row's chosen and rejected) are laid
out as one unit [prompt | response 1 | response 2 ...] whose prompt goes through the model once.

    batch = make_batch(sequences, pad_id, packing=True, attention_ratio=attention_ratio_of(model.config),
                       share_prompts=True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mapl_cli.encoding.tokens import Sequence


@dataclass
class TokenBatch:
    """Sequences laid out in rows for one forward. Sequence n sits in row `row[n]`: its prompt (`starts[n]`
    tokens) from column `offset[n]`, its response (`lengths[n]` tokens) from column `response_at[n]` (None:
    right after the prompt, `offset + starts`). Padded layout: one sequence per row, right padding, a 2D
    attention mask. Packed layout: several sequences per row, `position_ids` restarting at 0 for each, no
    attention mask (transformers then builds a block-diagonal causal mask). Shared-prompt layout (see
    `shared_batch`): a 4D boolean mask (B, 1, L, L) and the responses after a shared prompt placed one after
    the other, each seeing the prompt and itself only."""

    input_ids: object
    attention_mask: object | None
    position_ids: object | None
    row: object
    offset: object
    starts: object
    lengths: object
    response_at: object | None = None
    shared_tokens: int = 0  # prompt tokens not repeated because their sequences share the prompt

    def to(self, device) -> TokenBatch:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TokenBatch(move(self.input_ids), move(self.attention_mask), move(self.position_ids),
                          self.row, self.offset, self.starts, self.lengths, self.response_at, self.shared_tokens)

    @property
    def response_columns(self):
        """Column of each sequence's first response token."""
        return self.offset + self.starts if self.response_at is None else self.response_at

    @property
    def shared(self) -> bool:
        return self.attention_mask is not None and self.attention_mask.ndim == 4

    @property
    def real_tokens(self) -> int:
        """Tokens of the sequences as if each had its own prompt (the same count whatever the layout, so
        tokens/s compares layouts on the same data)."""
        return int((self.starts + self.lengths).sum())

    @property
    def forward_tokens(self) -> int:
        """Non-padding tokens the forward actually runs: a shared prompt counts once."""
        return self.real_tokens - self.shared_tokens


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


def share_prompts_default() -> bool:
    """Shared prompts are on unless the environment sets MAPL_SHARE_PROMPTS to 0 (for comparisons and
    benchmarks: both layouts give the same log-probs and rewards to float32 rounding)."""
    return os.environ.get("MAPL_SHARE_PROMPTS", "1").strip().lower() not in ("0", "false", "no", "off")


def group_by_prompt(sequences: list[Sequence]) -> list[list[int]]:
    """Indices of `sequences` grouped by identical prompt tokens; groups in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for n, seq in enumerate(sequences):
        groups.setdefault(tuple(seq.prompt_ids), []).append(n)
    return list(groups.values())


def unit_size(sequences: list[Sequence], members: list[int]) -> int:
    """Tokens of a shared-prompt unit: the prompt once, then every member's response."""
    return len(sequences[members[0]].prompt_ids) + sum(len(sequences[n].response_ids) for n in members)


def shared_prompt_mask(segment, branch):
    """(B, 1, L, L) boolean mask, True where query column i may attend key column j: same unit (`segment`;
    a row's padding tail is a unit of its own, so no query is left with nothing to attend), j <= i, and j in
    the unit's prompt (`branch` 0) or in the query's own response (same `branch`). A response thus sees the
    prompt and its own earlier tokens, never another response: exactly what it sees in a sequence of its own."""
    import torch

    width = segment.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_unit = segment[:, :, None] == segment[:, None, :]
    visible = (branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])
    return (same_unit & visible & causal)[:, None]


def _place_unit(t: dict, sequences: list[Sequence], members: list[int], r: int, col: int, unit: int) -> int:
    """Write one unit into row `r` from column `col`: the prompt (positions 0..P-1), then each member's
    response with positions restarting at P, as if it followed the prompt alone. Returns the next column."""
    import torch

    prompt = sequences[members[0]].prompt_ids
    p = len(prompt)
    t["input_ids"][r, col : col + p] = torch.tensor(prompt, dtype=torch.long)
    t["position_ids"][r, col : col + p] = torch.arange(p)
    t["segment"][r, col : col + p] = unit
    at = col + p
    for k, n in enumerate(members, start=1):
        response = sequences[n].response_ids
        end = at + len(response)
        t["input_ids"][r, at:end] = torch.tensor(response, dtype=torch.long)
        t["position_ids"][r, at:end] = torch.arange(p, p + len(response))
        t["segment"][r, at:end] = unit
        t["branch"][r, at:end] = k
        t["row"][n], t["offset"][n], t["response_at"][n] = r, col, at
        at = end
    return at


def shared_batch(
    sequences: list[Sequence], pad_id: int, packing: bool = True, attention_ratio: float | None = None
) -> TokenBatch:
    """Sequences with the same prompt laid out as one unit [prompt | response 1 | response 2 ...] under a 4D
    mask (`shared_prompt_mask`): the prompt's tokens go through the model once instead of once per response.
    Units are packed into rows like sequences in `packed_batch` (`packing`), or one unit per right-padded row.
    The first token of every response is predicted from the prompt's last position (`response_index`)."""
    import torch

    units = group_by_prompt(sequences)
    sizes = [unit_size(sequences, members) for members in units]
    if packing:
        capacity = max(sizes) if attention_ratio is None else choose_capacity(sizes, attention_ratio)
        rows = _first_fit(sizes, capacity)
    else:
        capacity, rows = max(sizes), [[u] for u in range(len(units))]
    shape = (len(rows), capacity)
    t = {"input_ids": torch.full(shape, pad_id, dtype=torch.long), "position_ids": torch.zeros(shape, dtype=torch.long),
         "segment": torch.full(shape, -1, dtype=torch.long), "branch": torch.zeros(shape, dtype=torch.long)}
    t.update({name: torch.zeros(len(sequences), dtype=torch.long) for name in ("row", "offset", "response_at")})
    for r, members in enumerate(rows):
        col = 0
        for u in members:
            col = _place_unit(t, sequences, units[u], r, col, u)
        t["position_ids"][r, col:] = torch.arange(capacity - col)
    starts = torch.tensor([len(s.prompt_ids) for s in sequences])
    lengths = torch.tensor([len(s.response_ids) for s in sequences])
    saved = sum(len(sequences[m[0]].prompt_ids) * (len(m) - 1) for m in units)
    mask = shared_prompt_mask(t["segment"], t["branch"])
    return TokenBatch(t["input_ids"], mask, t["position_ids"], t["row"], t["offset"], starts, lengths,
                      t["response_at"], saved)


def layout_cost(sizes: list[int], packing: bool, attention_ratio: float | None) -> float:
    """Estimated compute of a forward over pieces of `sizes` tokens (sequences, or shared-prompt units),
    packed (`packed_batch`) or one to a row: rows x width x (1 + attention_ratio x width), see `choose_capacity`."""
    if packing:
        capacity = max(sizes) if attention_ratio is None else choose_capacity(sizes, attention_ratio)
        rows = len(_first_fit(sizes, capacity))
    else:
        capacity, rows = max(sizes), len(sizes)
    return rows * capacity * (1 + (attention_ratio or 0.0) * capacity)


def make_batch(
    sequences: list[Sequence], pad_id: int, packing: bool = True, attention_ratio: float | None = None,
    share_prompts: bool = False,
) -> TokenBatch:
    """The batch for `sequences`: with `share_prompts`, sequences that have the same prompt share it
    (`shared_batch`) unless that is estimated to cost more (`layout_cost`). A shared unit is one piece, as
    wide as its prompt and all its responses, and attention costs the square of a row's width whatever the
    mask hides: with a short prompt, long responses and a model whose attention is dear against its dense
    layers, separate sequences can be cheaper. A batch in which no two sequences share a prompt (intra rows
    only) keeps the padded or packed layout."""
    if share_prompts:
        units = group_by_prompt(sequences)
        if len(units) < len(sequences):
            shared = layout_cost([unit_size(sequences, m) for m in units], packing, attention_ratio)
            if shared < layout_cost([len(s) for s in sequences], packing, attention_ratio):
                return shared_batch(sequences, pad_id, packing, attention_ratio)
    return packed_batch(sequences, pad_id, attention_ratio) if packing else padded_batch(sequences, pad_id)


def attention_ratio_of(config) -> float | None:
    """2 / (4 * hidden + 3 * intermediate) from a transformers config (None when the sizes are unknown)."""
    hidden = getattr(config, "hidden_size", None)
    inter = getattr(config, "intermediate_size", None)
    return 2.0 / (4 * hidden + 3 * inter) if hidden and inter else None
