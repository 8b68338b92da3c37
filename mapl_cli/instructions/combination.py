"""Combination instructions: combination:two_responses and combination:repeat_prompt.

In IFEval, repeat_prompt's `prompt_to_repeat` is the prompt itself. MAPL synthesis does not know the prompt
when it picks arguments, so its generator asks to repeat a given sentence (the start of a response that
must follow, or a generic request), and every description quotes the text to repeat.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("combination:two_responses").check("Yes.\\n******\\nNo.", {})
    True
"""

from __future__ import annotations

import random

from mapl_cli.errors import MaplError
from mapl_cli.instructions.base import Arg, BaseInstruction, FixedInstruction, Kwargs, Target
from mapl_cli.instructions.text import sent_tokenize

_REQUESTS = (
    "Write a short note about your favourite season.",
    "Describe a quiet morning in a small town.",
    "Explain how a bicycle works.",
    "Give me three tips for learning a new language.",
    "Tell me about the history of the lighthouse.",
    "Summarise the plot of a famous novel.",
    "What is the best way to start a vegetable garden?",
    "Plan a one-day trip to the mountains.",
)


class TwoResponses(FixedInstruction):
    id = "combination:two_responses"
    phrasings = (
        "Give two different responses. Responses and only responses should be separated by 6 asterisk "
        "symbols: ******.",
        "Provide two distinct answers, separated by a line of six asterisks (******) and nothing else.",
        "Write two different versions of your reply; put ****** between them.",
        "Answer twice, in two different ways, separating the two answers with ******.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        valid = []
        pieces = response.split("******")
        for index, piece in enumerate(pieces):
            if not piece.strip():
                if index not in (0, len(pieces) - 1):
                    return False
            else:
                valid.append(piece)
        return len(valid) == 2 and valid[0].strip() != valid[1].strip()


class RepeatPrompt(BaseInstruction):
    id = "combination:repeat_prompt"
    arguments = {"prompt_to_repeat": Arg.text}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"prompt_to_repeat": prompt}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        text = self._text(self.args(kwargs))
        return rng.choice(
            (
                "First repeat the request word for word without change, then give your answer (do not say "
                "anything before repeating it). The request to repeat: {t}",
                'Begin your reply by repeating this text exactly, word for word: "{t}" Then continue with '
                "your answer.",
                "Start by copying the following request verbatim, with nothing before it, and then answer: {t}",
                'Your response must open with the exact text "{t}", followed by your answer.',
            )
        ).format(t=text.strip())

    def _text(self, args: Kwargs) -> str:
        text = args["prompt_to_repeat"]
        if not isinstance(text, str) or not text.strip():
            raise MaplError(
                f"instruction {self.id!r}: argument 'prompt_to_repeat' must be a non-empty "
                f"string, got {text!r}"
            )
        return text

    def _check(self, response: str, args: Kwargs) -> bool:
        return response.strip().lower().startswith(self._text(args).strip().lower())

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        yes = [r for r, w in targets if w]
        if yes:
            head = yes[0].strip()
            first = (sent_tokenize(head) or (head,))[0].split("\n")[0].strip()
            candidates = [first] if 3 <= len(first.split()) and len(first) <= 200 else []
        else:
            candidates = rng.sample(_REQUESTS, len(_REQUESTS))
        for text in candidates:
            kwargs = {"prompt_to_repeat": text}
            if all(self.check(r, kwargs) == w for r, w in targets):
                return kwargs
        return None


TYPES = (TwoResponses(), RepeatPrompt())
