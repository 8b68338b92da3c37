"""Language instruction: language:response_language (seeded langdetect, memoised per response).

As in IFEval, a response in which langdetect finds no features (digits only, say) follows any language.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("language:response_language").check("Bonjour, je suis très content.", {"language": "fr"})
    True
"""

from __future__ import annotations

import random

from mapl_cli.instructions.base import Arg, BaseInstruction, Kwargs, Target, as_str
from mapl_cli.instructions.text import LANGUAGE_CODES, detect_language

#: Languages build-benchmark asks for.
_BENCHMARK_LANGUAGES = ("de", "fr", "es", "it", "pt")


class ResponseLanguage(BaseInstruction):
    id = "language:response_language"
    arguments = {"language": Arg.text}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {"language": rng.choice(_BENCHMARK_LANGUAGES)}

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        code = self._code(self.args(kwargs))
        name = LANGUAGE_CODES.get(code, code)
        return rng.choice(
            (
                "Your ENTIRE response should be in {l} language, no other language is allowed.",
                "Answer only in {l}.",
                "Write the whole reply in {l}; do not use any other language.",
                "Respond exclusively in the {l} language.",
            )
        ).format(l=name)

    def _code(self, args: Kwargs) -> str:
        return as_str(args["language"], self.id, "language", "a language code")

    def _check(self, response: str, args: Kwargs) -> bool:
        detected = detect_language(response)
        return detected is None or detected == self._code(args)

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        detected = [(detect_language(r), w) for r, w in targets]
        if any(code is None and not w for code, w in detected):
            return None  # undetectable text follows every language
        wanted = {code for code, w in detected if w and code is not None}
        refused = {code for code, w in detected if not w}
        if len(wanted) > 1:
            return None
        choices = sorted(wanted) if wanted else sorted(set(LANGUAGE_CODES) - refused)
        choices = [c for c in choices if c in LANGUAGE_CODES and c not in refused]
        return {"language": rng.choice(choices)} if choices else None


TYPES = (ResponseLanguage(),)
