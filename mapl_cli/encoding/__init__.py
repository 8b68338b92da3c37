"""Pairs as token sequences, and the forward passes that score them: shared by training and evaluation.

    tokens.py   pairs table -> EncodedRow (chat template, truncation, content keys)
    batch.py    sequences -> TokenBatch (padded, or packed several to a row; a shared prompt laid out once)
    forward.py  TokenBatch -> summed response log-probs (policies) or last-token rewards (reward models)

Both `mapl_cli.train` and `mapl_cli.evaluation` import from here; this package imports neither.
"""
