"""mapl: Multi-Level Aware Preference Learning for multi-instruction prompts."""

__version__ = "0.1.0"
