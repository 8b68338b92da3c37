"""IFBench's `format:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py).

Each checker reproduces IFBench's reference verdict (ifbench/instructions.py), quirks included: for
example format:sub-bullets accepts a response without any "*" (no bullet lacks a sub-bullet), and
format:line_indent skips some blank lines the way the reference's remove-while-iterating loop does.
Where the reference crashes (format:quote_unquote on a response of digits and punctuation only), the
verdict is False. Unlike the reference, every argument is required.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("format:options").check("Maybe.", {"options": "yes/no/maybe"})
    True
"""

from __future__ import annotations

import random
import re
import string
from itertools import pairwise

import emoji

from mapl_cli.instructions.base import CheckOnlyInstruction, Kwargs, as_str
from mapl_cli.instructions.ifbench.util import split_into_sentences
from mapl_cli.instructions.text import word_tokenize

_PUNCT = string.punctuation
_STRIP = _PUNCT + " "
_NO_PUNCT = str.maketrans("", "", _PUNCT)


class NestedParentheses(CheckOnlyInstruction):
    id = "format:parentheses"
    description = "Nest parentheses (and [brackets {and braces}]) at least 5 levels deep."

    def _check(self, response: str, args: Kwargs) -> bool:
        open_brackets: list[str] = []
        max_depth = 0
        for char in response:
            if char in "([{":
                open_brackets.append(char)
                max_depth = max(max_depth, len(open_brackets))
            elif char in ")]}":
                if open_brackets and open_brackets[-1] + char in ("()", "[]", "{}"):
                    open_brackets.pop()
                    # the first matched closing bracket after reaching depth 5 succeeds
                    if max_depth >= 5 and len(open_brackets) < max_depth:
                        return True
                else:  # a mismatched or unopened closing bracket starts the count afresh
                    open_brackets = []
                    max_depth = 0
        return False


class NestedQuotes(CheckOnlyInstruction):
    id = "format:quotes"
    description = (
        "Include quotes within quotes within quotes, at least 3 levels deep, alternating between double "
        "quotes and single quotes."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        # a quote equal to the innermost open one closes it; any other quote opens a level (so an
        # apostrophe opens a level too, as in the reference)
        open_quotes: list[str] = []
        reached = 0
        for char in response:
            if open_quotes and char == open_quotes[-1]:
                open_quotes.pop()
                if reached - len(open_quotes) >= 3:
                    return True
            elif char in "\"'":
                open_quotes.append(char)
                reached = max(reached, len(open_quotes))
        return False


_LETTER_OPTIONS = re.compile(r"\W*[aA]\W*[bB]\W*[cC]\W*")  # "a), b), c), d)": matched exactly


class OptionsResponse(CheckOnlyInstruction):
    id = "format:options"
    arg_names = ("options",)
    description = "Answer with one of the following options: {options}. Do not give any explanation."

    def _parse(self, args: Kwargs) -> tuple[list[str], bool]:
        options = as_str(args["options"], self.id, "options")
        strict = _LETTER_OPTIONS.match(options) is not None
        # the reference's separator: "/" if present, else "or" (even inside a word), else ","
        separator = "/" if "/" in options else "or" if "or" in options else ","
        return [option.strip() for option in options.split(separator)], strict

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        return self.description.format(options=as_str(self.args(kwargs)["options"], self.id, "options"))

    def _check(self, response: str, args: Kwargs) -> bool:
        options, strict = self._parse(args)
        if strict:
            return response in options
        answer = response.strip(_STRIP).lower()
        return any(option.strip(_STRIP).lower() == answer for option in options)


class NewLineWords(CheckOnlyInstruction):
    id = "format:newline"
    description = "Write each word on a new line."

    def _check(self, response: str, args: Kwargs) -> bool:
        text = response.translate(_NO_PUNCT).strip()
        lines = [line for line in text.split("\n") if line != ""]
        return len(lines) == len(text.split())


def _without_punctuation(sentence: str) -> str:
    return sentence.translate(_NO_PUNCT).strip()


class EmojiSentence(CheckOnlyInstruction):
    id = "format:emoji"
    description = "Please use an emoji at the end of every sentence."

    def _check(self, response: str, args: Kwargs) -> bool:
        sentences = split_into_sentences(response)
        for index, sentence in enumerate(sentences):
            stripped = _without_punctuation(sentence)
            if not stripped:
                return False
            # the last or second-to-last character (an emoji may carry a variation selector)
            if emoji.is_emoji(stripped[-1]) or emoji.is_emoji(stripped[-2:-1] or stripped[-1]):
                continue
            # the sentence splitter cuts after ".!?", so an emoji that follows the mark starts the next one
            if index == len(sentences) - 1:
                return False
            following = _without_punctuation(sentences[index + 1])
            if not following or not emoji.is_emoji(following[0]):
                return False
        return True


class IndentStairs(CheckOnlyInstruction):
    id = "format:line_indent"
    description = "Create stairs by incrementally indenting each new line."

    def _check(self, response: str, args: Kwargs) -> bool:
        lines = response.split("\n")
        # the reference removes blank lines while iterating over the same list, which skips the line after
        # each removed one (so of two consecutive blank lines one stays); kept as is for the same verdicts
        for line in lines:
            if not line.strip():
                lines.remove(line)
        indents = [len(line) - len(line.lstrip(" ")) for line in lines]
        return all(after > before for before, after in pairwise(indents))


_NOT_QUOTE_PUNCT = string.digits + _PUNCT.replace('"', "")


class QuoteExplanation(CheckOnlyInstruction):
    id = "format:quote_unquote"
    description = "Every quoted phrase must be followed by an unquoted explanation."

    def _check(self, response: str, args: Kwargs) -> bool:
        text = response.replace("“", '"').replace("”", '"')
        text = text.replace("'\"'", "")  # mentions of the character '"' itself
        text = "".join(text.split())
        if '""' in text:  # two quotes with nothing between: a quote followed by another quote
            return False
        tail = text.strip(_NOT_QUOTE_PUNCT)
        # the reference raises IndexError when nothing but digits and punctuation is left: False here
        return bool(tail) and tail[-1] != '"'


class SpecialBulletPoints(CheckOnlyInstruction):
    id = "format:list"
    arg_names = ("sep",)
    description = "Answer with a list of items, instead of bullet points use {sep}."

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        return self.description.format(sep=as_str(self.args(kwargs)["sep"], self.id, "sep"))

    def _check(self, response: str, args: Kwargs) -> bool:
        marker = as_str(args["sep"], self.id, "sep")
        # the reference counts re.findall(re.escape(sep)): non-overlapping literal occurrences, anywhere
        return response.count(marker) >= 2


class ItalicsThesis(CheckOnlyInstruction):
    id = "format:thesis"
    description = "Each section must begin with a thesis statement in italics, use HTML to indicate the italics."

    def _check(self, response: str, args: Kwargs) -> bool:
        start = response.find("<i>")
        if start == -1:
            start = response.find("<em>")
            if start == -1:
                return False
        text = response[start:]
        end = text.find("</i>")
        if end == -1:
            end = text.find("</em>")
            if end == -1:
                return False
        # offsets 3 and 4 are those of <i> and </i> even for <em> ... </em>, as in the reference
        return text[3:end].strip() != "" and text[end + 4 :].strip() != ""


class SubBulletPoints(CheckOnlyInstruction):
    id = "format:sub-bullets"
    description = (
        "Your response must include bullet points denoted by * and at least one sub-bullet point denoted by "
        "- for each bullet point."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        # every stretch of text after a "*" must contain a "-"; a response without "*" passes
        return all("-" in part for part in response.split("*")[1:])


class SomeBulletPoints(CheckOnlyInstruction):
    id = "format:no_bullets_bullets"
    description = (
        "Your answer must contain at least two sentences ending in a period followed by at least two bullet "
        "points denoted by *."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        in_prose = True
        sentences = 0
        bullets = 0
        for line in response.split("\n"):
            if line.strip().startswith("*"):
                if sentences < 2:
                    return False
                in_prose = False
                bullets += 1
            elif in_prose:
                found = split_into_sentences(line.strip())
                sentences += len(found)
                # the reference reuses its flag for the sentence list: a line without sentences (a blank
                # line) ends the prose part, so any further non-bullet line fails
                in_prose = bool(found)
            else:
                return False
        return bullets >= 2


class TitleCase(CheckOnlyInstruction):
    id = "format:title_case"
    description = "Write the entire response in title case (capitalize the first letter of every major word)."

    def _check(self, response: str, args: Kwargs) -> bool:
        for word in word_tokenize(response):
            head, rest = word[0], word[1:]
            if head.isupper() and rest.islower():
                continue
            # a lowercase start fails when the rest is cased ("the", "iPHONE"); "a", "x1" and "," pass
            if head.islower() and (rest.isupper() or rest.islower()):
                return False
        return True


class OutputTemplate(CheckOnlyInstruction):
    id = "format:output_template"
    description = (
        "Use this exact template for your response: My Answer: [answer] My Conclusion: [conclusion] "
        "Future Outlook: [outlook]"
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        return all(label in response for label in ("My Answer:", "My Conclusion:", "Future Outlook:"))


class NoWhitespace(CheckOnlyInstruction):
    id = "format:no_whitespace"
    description = "The output should not contain any whitespace."

    def _check(self, response: str, args: Kwargs) -> bool:
        return not any(char.isspace() for char in response)


TYPES = [
    NestedParentheses(),
    NestedQuotes(),
    OptionsResponse(),
    NewLineWords(),
    EmojiSentence(),
    IndentStairs(),
    QuoteExplanation(),
    SpecialBulletPoints(),
    ItalicsThesis(),
    SubBulletPoints(),
    SomeBulletPoints(),
    TitleCase(),
    OutputTemplate(),
    NoWhitespace(),
]
