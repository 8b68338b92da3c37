"""Forward passes that turn token batches into scores: summed response log-probs (DPO) and rewards (RM).

Both run the transformer body once over all sequences of a batch (chosen, rejected and, for the inter
margin loss, the base-prompt ones). For log-probs the hidden states are sliced to response positions before
the lm_head, so the vocabulary projection and its softmax are never computed for prompt or padding tokens.
With shared prompts (`batch.shared_batch`, on where `can_share_prompts(model)`) a standard or inter row's
prompt goes through the body once for both responses.

    batch = make_batch(sequences, pad_id, share_prompts=can_share_prompts(model)).to(device)
    logps, n_tokens = response_logps(model, batch)
    rewards = last_token_rewards(rm_model, batch)
"""

from __future__ import annotations

import torch


def in_forward(model, fn, *args):
    """fn(model, *args), inside the FSDP root's forward hooks when the model is sharded (`Parallel.wrap`
    registers `model.mapl_call` for that)."""
    call = getattr(model, "mapl_call", None)
    return call(fn, *args) if call is not None else fn(model, *args)


def unwrap(model):
    """The transformers model under DDP / peft wrappers (peft's LoRA layers stay injected in it)."""
    while hasattr(model, "module"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def body(model):
    """The transformer body (e.g. LlamaModel) of a *ForCausalLM / *ForSequenceClassification model."""
    inner = unwrap(model)
    return getattr(inner, inner.base_model_prefix)


def can_share_prompts(model) -> bool:
    """Whether batches for `model` may use the shared-prompt layout: on by default (`share_prompts_default`),
    for attention implementations that take a custom 4D mask (sdpa, eager; not flash-attention)."""
    from mapl_cli.encoding.batch import share_prompts_default

    config = getattr(unwrap(model), "config", None)
    return share_prompts_default() and getattr(config, "_attn_implementation", None) in ("sdpa", "eager")


def response_index(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, predicting column, target column) of every response token. A response of length R whose tokens
    occupy columns [a, a + R) is predicted by columns a - 1 .. a + R - 2, except its first token: that one is
    predicted by the prompt's last column (offset + start - 1), which is column a - 1 when the response follows
    its prompt directly, and not when it follows another response after a shared prompt."""
    lengths = batch.lengths
    rows = torch.repeat_interleave(batch.row, lengths)
    first = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(int(lengths.sum())) - torch.repeat_interleave(first, lengths)
    targets = torch.repeat_interleave(batch.response_columns, lengths) + within
    prompt_last = torch.repeat_interleave(batch.offset + batch.starts - 1, lengths)
    return rows, torch.where(within == 0, prompt_last, targets - 1), targets


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per row, in float32, without keeping a full log-softmax tensor."""
    logits = logits.float()
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def attention_mask_for(model, batch):
    """The batch's attention mask as `model` takes it: a shared-prompt 4D boolean mask passes through
    transformers as is, which SDPA reads as "may attend"; eager attention adds the mask to the scores, so it
    gets 0 / the dtype's minimum instead."""
    mask = batch.attention_mask
    if not batch.shared or getattr(unwrap(model).config, "_attn_implementation", None) != "eager":
        return mask
    dtype = unwrap(model).dtype
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def hidden_states(model, batch) -> torch.Tensor:
    return body(model)(
        input_ids=batch.input_ids, attention_mask=attention_mask_for(model, batch), position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state


def response_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log pi(y_t | x, y_<t) over each sequence's response tokens, shape (N,), and the token counts.
    `batch` is a `TokenBatch` already on the model's device."""
    return in_forward(model, _response_logps, batch)


def _response_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = hidden_states(model, batch)
    device = hidden.device
    rows, cols, targets = (t.to(device) for t in response_index(batch))
    selected = hidden[rows, cols]  # (M, H): response positions only
    logits = unwrap(model).get_output_embeddings()(selected)  # (M, V)
    per_token = token_logps(logits, batch.input_ids[rows, targets])
    seq = torch.repeat_interleave(torch.arange(len(batch.lengths)), batch.lengths).to(device)
    sums = torch.zeros(len(batch.lengths), dtype=per_token.dtype, device=device).index_add(0, seq, per_token)
    return sums, batch.lengths.to(device)


def last_token_rewards(model, batch) -> torch.Tensor:
    """r(x, y) read by the sequence-classification head at each sequence's last real token, shape (N,);
    the head is applied to those hidden states only."""
    return in_forward(model, _last_token_rewards, batch)


def _last_token_rewards(model, batch) -> torch.Tensor:
    hidden = hidden_states(model, batch)
    last = (batch.response_columns + batch.lengths - 1).to(hidden.device)
    pooled = hidden[batch.row.to(hidden.device), last]
    return unwrap(model).score(pooled).squeeze(-1).float()
