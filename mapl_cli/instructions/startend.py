"""Start/end instructions: startend:end_checker and startend:quotation.

>>> from mapl_cli.instructions import get_instruction
>>> get_instruction("startend:end_checker").check('Done. Any other questions?"',
...     {"end_phrase": "Any other questions?"})
True
"""

from __future__ import annotations

import random
import re

from mapl_cli.instructions.base import Arg, BaseInstruction, FixedInstruction, Kwargs, Target, as_str

_TOKEN = re.compile(r"\S+")
#: End phrases for responses that must NOT end with them (IFEval's two, and a few more).
_ENDINGS = (
    "Any other questions?",
    "Is there anything else I can help with?",
    "Hope this helps!",
    "Let me know if you have more questions.",
    "That is all for now.",
    "Thanks for reading.",
    "Have a great day!",
    "Feel free to ask for more details.",
)
#: End phrases build-benchmark asks for.
_BENCHMARK_ENDINGS = ("Any other questions?", "Is there anything else I can help with?", "Let me know if you need more.")


def _normalised(response: str) -> str:
    return response.strip().strip('"')


class EndChecker(BaseInstruction):
    id = "startend:end_checker"
    arguments = {"end_phrase": Arg.text}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"end_phrase": rng.choice(_BENCHMARK_ENDINGS)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        phrase = self._phrase(self.args(kwargs))
        return rng.choice(
            (
                "Finish your response with this exact phrase: '{p}'. No other words should follow this phrase.",
                "End your answer with the exact words '{p}', with nothing after them.",
                "The very last words of your reply must be: {p}",
                'Conclude with the phrase "{p}" and write nothing after it.',
            )
        ).format(p=phrase)

    def _phrase(self, args: Kwargs) -> str:
        phrase = as_str(args["end_phrase"], self.id, "end_phrase")
        return phrase.strip()

    def _check(self, response: str, args: Kwargs) -> bool:
        return _normalised(response).lower().endswith(self._phrase(args).lower())

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        yes = [r for r, w in targets if w]
        if not yes:
            candidates = rng.sample(_ENDINGS, len(_ENDINGS))
        else:
            # the last 1 to 6 words of a response that must follow, kept on one line and short
            tail = _normalised(yes[0])[-80:]
            starts = [m.start() for m in _TOKEN.finditer(tail)][1:][-6:]  # the first may be cut
            candidates = [tail[s:] for s in starts if "\n" not in tail[s:] and len(tail[s:]) <= 60]
            candidates = [c for c in candidates if any(ch.isalpha() for ch in c)]
            rng.shuffle(candidates)
        for phrase in candidates:
            kwargs = {"end_phrase": phrase}
            if all(self.check(r, kwargs) == w for r, w in targets):
                return kwargs
        return None


class Quotation(FixedInstruction):
    id = "startend:quotation"
    phrasings = (
        "Wrap your entire response with double quotation marks.",
        "Put the whole answer inside double quotes.",
        'Your complete reply must begin and end with a double quotation mark (").',
        "Enclose the entire response in double quotation marks.",
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        value = response.strip()
        return len(value) > 1 and value[0] == '"' and value[-1] == '"'


TYPES = (EndChecker(), Quotation())
