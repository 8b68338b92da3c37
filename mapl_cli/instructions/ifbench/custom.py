"""IFBench's `custom:*` instruction types, check-only (see mapl_cli/instructions/ifbench/__init__.py).

These are whole tasks with one right shape of answer (count from 10 to 50 printing multiples of 7, list
Africa's countries in reverse alphabetical order, write CSV with given columns, ...); none takes an
argument. Each checker reproduces IFBench's reference verdict (ifbench/instructions.py). Where the reference
crashes (a CSV field longer than Python's csv field limit, a carriage return inside an unquoted CSV field,
an empty tab-separated field in custom:csv_quotes, an empty sentence in custom:sentence_alphabet), the
verdict is False. Two of the reference's regular expressions take quadratic time on crafted responses
(thousands of newlines, one very long CSV field); they are replaced by linear scans with the same matches.

    >>> from mapl_cli.instructions import get_instruction
    >>> get_instruction("custom:multiples").check("14, 21, 28, 35, 42, 49", {})
    True
"""

from __future__ import annotations

import csv
import io
import re
import string
import unicodedata
from itertools import pairwise

from mapl_cli.instructions.base import CheckOnlyInstruction, Kwargs
from mapl_cli.instructions.ifbench.util import split_into_sentences

_STRIP = string.punctuation + " "
_NO_PUNCT = str.maketrans("", "", string.punctuation)
_DIGIT_RUN = re.compile(r"\d+")


def _ascii_fold(text: str) -> str:
    """'São Tomé' -> 'Sao Tome': NFKD, then every non-ASCII character dropped (the reference's normalize_text)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _csv_rows(text: str, delimiter: str = ",") -> list[list[str]] | None:
    """csv.reader's rows, or None where it raises (a field over csv's size limit, a carriage return inside
    an unquoted field): the reference crashes there, mapl says False."""
    try:
        return list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return None


class PrintMultiples(CheckOnlyInstruction):
    id = "custom:multiples"
    description = "Count from 10 to 50 but only print multiples of 7."

    def _check(self, response: str, args: Kwargs) -> bool:
        # every run of digits, in order, must be exactly 14 21 28 35 42 49 (so "14." passes, "7x2=14" fails)
        return _DIGIT_RUN.findall(response.replace(",", ", ")) == ["14", "21", "28", "35", "42", "49"]


# The reference splits on r"\n*(?:Question \d+[\.|\):;]?\s*)", which takes quadratic time on a long run of
# newlines; _split_questions finds the same separators (a label plus the newlines right before it).
_QUESTION_LABEL = re.compile(r"Question \d+[.|):;]?\s*")
# The reference's r"^[A-Ea-e][\.|\)]\s*\w+" on a stripped line: an option "A) text", "b. text" (or "c|text").
_OPTION = re.compile(r"[A-Ea-e][.|)]\s*\w")


def _split_questions(text: str) -> list[str]:
    """re.split(r"\\n*(?:Question \\d+[\\.|\\):;]?\\s*)", text), in linear time."""
    pieces, last = [], 0
    for match in _QUESTION_LABEL.finditer(text):
        start = match.start()
        while start > last and text[start - 1] == "\n":
            start -= 1
        pieces.append(text[last:start])
        last = match.end()
    pieces.append(text[last:])
    return pieces


class MultipleChoiceQuestions(CheckOnlyInstruction):
    id = "custom:mcq_count_length"
    description = (
        "Generate 4 multiple choice questions with 5 options each about '20th century art history'. Each "
        'question should start with the label "Question". The questions should get progressively longer. '
        "Do not provide an explanation."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        # the response must start with "Question" (the reference's slice from find() also lets a response of
        # one character through here; it then fails the count below)
        if response[response.find("Question") :] != response:
            return False
        questions = [q.strip() for q in _split_questions(response) if q.strip()]
        if len(questions) != 4:
            return False
        lengths = []
        for question in questions:
            text, options, in_options = "", 0, False
            for line in question.split("\n"):
                if _OPTION.match(line.strip()):
                    options += 1
                    in_options = True
                elif not in_options:  # lines before the first option are the question
                    text += " " + line.strip()
            if options != 5:
                return False
            lengths.append(len(text.strip()))
        return all(a < b for a, b in pairwise(lengths))


class ReverseNewline(CheckOnlyInstruction):
    id = "custom:reverse_newline"
    description = "List the countries of Africa in reverse alphabetical order, each on a new line."

    def _check(self, response: str, args: Kwargs) -> bool:
        lines = [line.strip(_STRIP) for line in response.split("\n") if line.strip(_STRIP)]
        start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
        # from the first line naming Zimbabwe on: at least 52 lines, in reverse order once accents are dropped
        if start is None or len(lines) - start < 52:
            return False
        folded = [_ascii_fold(line) for line in lines[start:]]
        return folded == sorted(folded, reverse=True)


class WordReverseOrder(CheckOnlyInstruction):
    id = "custom:word_reverse"
    description = (
        "What animal is the national symbol of the US? Respond to this query, but make your sentence in "
        "reverse order of what it should be, per word."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        text = response.lower().strip().translate(_NO_PUNCT)
        text = " ".join(text.split()[::-1])
        # the words read backwards must mention "bald eagle" and form one sentence of IFBench's splitter (with
        # punctuation deleted, that means the splitter keeps the text whole)
        return "bald eagle" in text and text in split_into_sentences(text)


class CharacterReverseOrder(CheckOnlyInstruction):
    id = "custom:character_reverse"
    description = (
        "What animal is the national symbol of the US? Respond to this query, but make your sentence in "
        "reverse order of what it should be, per letter."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        return "elgae dlab" in response.lower()


class SentenceAlphabet(CheckOnlyInstruction):
    id = "custom:sentence_alphabet"
    description = (
        "Tell me a 26-sentence story where each sentence's first word starts with the letters of the "
        "alphabet in order."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        sentences = split_into_sentences(response)
        if len(sentences) != 26:
            return False
        for letter, sentence in zip(string.ascii_lowercase, sentences, strict=True):
            words = sentence.split()
            # an empty sentence crashes the reference (IndexError): False here
            if not words or words[0].lower()[0] != letter:
                return False
        return True


EUROPEAN_CAPITALS_BY_LATITUDE = (
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen", "Vilnius",
    "Minsk", "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague", "Luxembourg",
    "Paris", "Vienna", "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern", "Ljubljana", "Zagreb",
)  # fmt: skip


class EuropeanCapitalsSort(CheckOnlyInstruction):
    id = "custom:european_capitals_sort"
    description = (
        "Give me the names of all capital cities of european countries whose latitude is higher than than 45 "
        "degrees? List the capital cities without country names, separated by commas, sorted by latitude, "
        "from highest to lowest."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        # exactly IFBench's 27 capitals, comma separated, in its order ("Chișinău" passes as "Chisinau")
        capitals = [cap.strip() for cap in _ascii_fold(response).split(",") if cap.strip()]
        return tuple(capitals) == EUROPEAN_CAPITALS_BY_LATITUDE


class CityCSV(CheckOnlyInstruction):
    id = "custom:csv_city"
    description = (
        'Generate CSV data: The column names are ["ID", "Country", "City", "Year", "Count"], the data should '
        "be comma delimited. Please generate 7 rows."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        rows = _csv_rows(response)
        return (
            rows is not None
            and len(rows) == 8
            and rows[0] == ["ID", "Country", "City", "Year", "Count"]
            and all(len(row) == 5 for row in rows[1:])
        )


_PRODUCT_HEADER = re.compile(
    r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),[ \t]*(Price|"Price"),'
    r'[ \t]*(Stock|"Stock")$'
)
_SPECIAL_CHAR = re.compile(r"[^\d\w\s]")


def _quoted_special(field: str) -> bool:
    """re.match(r'".*[^\\d\\w\\s].*"', field), in linear time: the field starts with '"', and before its
    first newline a later '"' follows some character that is not a digit, word character or space."""
    if not field.startswith('"'):
        return False
    line = field.split("\n", 1)[0]
    last_quote = line.rfind('"', 1)
    return last_quote > 1 and _SPECIAL_CHAR.search(line, 1, last_quote) is not None


class SpecialCharacterCSV(CheckOnlyInstruction):
    id = "custom:csv_special_character"
    description = (
        'Generate CSV data: The column names are ["ProductID", "Category", "Brand", "Price", "Stock"], the '
        "data should be comma delimited. Please generate 14 rows. Add one field which contains a special "
        "character and enclose it in double quotes."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        if not _PRODUCT_HEADER.match(response.split("\n")[0].strip()):
            return False
        # every '"' is tripled, so a quoted field keeps its quotes after parsing
        rows = _csv_rows(response.replace('"', '"""'))
        if rows is None or len(rows) != 15:
            return False
        for row in rows[1:]:
            if len(row) != 5:
                return False
            if any(_quoted_special(field) for field in row):
                return True  # as in the reference, rows after the first one with such a field are not checked
        return False


_STUDENT_HEADER = re.compile(
    r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *(Semester|"Semester")\t *'
    r'(Score|"Score")$'
)


def _quoted(field: str) -> bool:
    field = field.strip()
    # an empty field crashes the reference (IndexError): not quoted here
    return field[:1] == '"' and field[-1:] == '"'


class QuotesCSV(CheckOnlyInstruction):
    id = "custom:csv_quotes"
    description = (
        'Generate CSV data: The column names are ["StudentID", "Subject", "Grade", "Semester", "Score"], the '
        "data should be tab delimited. Please generate 3 rows and enclose each single field in double quotes."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        if not _STUDENT_HEADER.match(response.split("\n")[0].strip()):
            return False
        rows = _csv_rows(response.replace('"', '"""'), delimiter="\t")
        return (
            rows is not None
            and len(rows) == 4
            and all(len(row) == 5 and all(_quoted(field) for field in row) for row in rows)
        )


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


class DateFormatList(CheckOnlyInstruction):
    id = "custom:date_format_list"
    description = (
        "List the start dates of all the battles Napoleon fought separated by commas, use the following date "
        "format: YYYY-MM-DD. Do not provide an explanation."
    )

    def _check(self, response: str, args: Kwargs) -> bool:
        for date in response.strip().split(","):
            date = date.strip()
            if not _DATE.match(date):
                return False
            year, month, day = (int(part) for part in date.split("-"))
            # years of Napoleon's life; month 00 and day 00 pass, as in the reference
            if not 1769 <= year <= 1821 or month > 12 or day > _DAYS_IN_MONTH.get(month, 99):
                return False
        return True


TYPES = [
    PrintMultiples(),
    MultipleChoiceQuestions(),
    ReverseNewline(),
    WordReverseOrder(),
    CharacterReverseOrder(),
    SentenceAlphabet(),
    EuropeanCapitalsSort(),
    CityCSV(),
    SpecialCharacterCSV(),
    QuotesCSV(),
    DateFormatList(),
]
