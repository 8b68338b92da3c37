"""Token sequences laid out for one forward: padded (one per row) or packed (several per row).

    batch = make_batch(sequences, pad_id, packing=True, attention_ratio=attention_ratio_of(model.config))
"""

from __future__ import annotations

from dataclasses import dataclass

from mapl_cli.encoding.tokens import Sequence


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
