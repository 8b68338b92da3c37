"""Training: `mapl train-rm` and `mapl train-dpo` (loss math in `losses.py`, the loop in `trainer.py`).

Importing this package imports nothing heavy; torch is imported by the submodules that need it.
"""
