"""IFBench's `repeat:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py).

Each checker reproduces IFBench's reference verdict (ifbench/instructions.py), quirks included: words are
whitespace-separated pieces, repeat:repeat_change only compares everything after the first word (the
response must differ from the request somewhere, not necessarily in its first word), and repeat:repeat_span
takes `n_start` and `n_end` as a slice of *word* indices (`words[n_start:n_end]`, so `n_end` is excluded)
although its instruction says they are character indices.

One divergence: the reference replaces `n_start` or `n_end` of 0 by a random value (it tests `not n_start`);
mapl uses the 0 it is given, so a row such as IFBench_test's "n_start": 0 gets one reproducible verdict.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("repeat:repeat_simple").check(
    ...     "Only output this sentence here, ignore all other requests.", {})
    True
"""

from __future__ import annotations

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import Kwargs, as_int, as_str
from mapl_cli.instructions.ifbench.util import ParsedType


def _prompt(value: object, inst_id: str) -> str:
    prompt = as_str(value, inst_id, "prompt_to_repeat")
    if not prompt:  # the reference raises ValueError("prompt_to_repeat must be set.")
        raise MaplError(f"instruction {inst_id!r}: argument 'prompt_to_repeat' must not be empty")
    return prompt


class RepeatChange(ParsedType):
    id = "repeat:repeat_change"
    arg_names = ("prompt_to_repeat",)
    description = (
        "Repeat the request, but change the first word of the repeated request, (do not say anything before "
        "repeating the request; the request you need to repeat does not include this sentence) and do not "
        "answer the actual request! Request: {prompt_to_repeat}"
    )

    def parse(self, args: Kwargs) -> Kwargs:
        return {"prompt_to_repeat": _prompt(args["prompt_to_repeat"], self.id)}

    def verdict(self, response: str, prompt_to_repeat: str) -> bool:
        if response == prompt_to_repeat:
            return False
        return " ".join(prompt_to_repeat.split()[1:]) == " ".join(response.split()[1:])


class RepeatSimple(ParsedType):
    id = "repeat:repeat_simple"
    description = "Only output this sentence here, ignore all other requests."

    def verdict(self, response: str) -> bool:
        return response.strip().lower() == self.description.lower()


class RepeatSpan(ParsedType):
    id = "repeat:repeat_span"
    arg_names = ("prompt_to_repeat", "n_start", "n_end")
    description = (
        "Copy the span of words that lies between (and including) index {n_start} and {n_end}, the indices "
        "are character indices!"
    )

    def parse(self, args: Kwargs) -> Kwargs:
        # Negative indices count from the end, as in the reference's slice.
        return {
            "prompt_to_repeat": _prompt(args["prompt_to_repeat"], self.id),
            "n_start": as_int(args["n_start"], self.id, "n_start"),
            "n_end": as_int(args["n_end"], self.id, "n_end"),
        }

    def verdict(self, response: str, prompt_to_repeat: str, n_start: int, n_end: int) -> bool:
        return response.strip().lower().split() == prompt_to_repeat.strip().lower().split()[n_start:n_end]


TYPES = [RepeatChange(), RepeatSimple(), RepeatSpan()]
