"""Synthesis made faster computes the same things: language detection against langdetect itself, and
`mapl synthesize` output against digests recorded before the speed work.

    .venv/bin/pytest tests/test_synth_speed_equivalence.py -q

`mapl_cli.instructions.langdetect_exact` runs langdetect's algorithm with cheaper loops; here its
`detect_langs` must give langdetect's own list, languages and probabilities equal as floats (not merely
the same winner), on texts in many scripts, with URLs, e-mail addresses, runs of spaces, capital words,
decomposed Vietnamese, more than 10,000 characters, no features at all, and on seeded random mixtures.

The synthesize digests are of the pairs' content (every row as JSON), not of the Parquet bytes, so that a
new pyarrow writing different bytes does not fail them. They were taken with the code before the speed
work (commit 85b6b4d); a deliberate change to what synthesis computes must update them and say so in the
CHANGELOG.

Start-up: splitting sentences imports NLTK without SciPy and scikit-learn (text._import_nltk), which
NLTK's package import would otherwise load for nothing mapl uses.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mapl_cli.errors import MaplError
from mapl_cli.instructions import langdetect_exact
from mapl_cli.instructions.text import _langdetect, detect_language
from mapl_cli.synth.run import SynthConfig, run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "prefs.jsonl"

PIECES = [
    "The lighthouse keeper lived alone for many years.",
    "NASA launched a NEW rocket in the U.S. last week.",
    "THIS IS ALL IN CAPITAL LETTERS AND IT IS IN ENGLISH.",
    "this is all in lowercase letters and it is in english.",
    "Le chat est sur la table et il dort tranquillement.",
    "El perro corre por el parque todos los días, ¿verdad?",
    "Der Hund spielt im Garten mit dem Ball, während es regnet.",
    "Il gatto dorme sul divano tutto il giorno.",
    "O gato está dormindo no sofá há horas.",
    "De kat slaapt de hele dag op de bank.",
    "Katten sover på soffan hela dagen.",
    "Kot śpi na kanapie przez cały dzień.",
    "Kedi bütün gün kanepede uyuyor.",
    "Pisica doarme pe canapea toată ziua, în ţară şi în oraș.",
    "Привет, как у тебя дела сегодня?",
    "Γεια σου, τι κάνεις σήμερα;",
    "これは日本語の文章です。カタカナもあります。",
    "这是一个中文句子，用来测试语言检测。",
    "이것은 한국어 문장입니다.",
    "مرحبا بكم في بيتي الجميل",
    "این یک جمله فارسی است که ی دارد",
    "שלום, מה שלומך היום?",
    "यह एक हिंदी वाक्य है।",
    "นี่คือประโยคภาษาไทย",
    "Tiếng Việt có dấu và cả dấu tổ hợp: Tie\u0302\u0301ng Vie\u0323\u0302t.",
    "Visit https://example.com/path?q=1&x=2 or write to someone.name@example.org today.",
    "12345 67890 !!! ??? ...",
    "Tabs\tand\nnewlines\n\nand   many    spaces.",
    "McDONALD'S opened; I'M SURE WE CAN'T GO.",
    "Ça va? Où est l'hôtel? Naïve café, coöperate — “quoted” text…",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ and ½ ¾ symbols ©®",
]

SPECIAL = ["", " ", "   \n\t ", "123 456", "!!!", "a", "A", "AB CD", "é", "\u0301", "x" * 20, "word " * 2500]


def _response_texts() -> list[str]:
    texts = []
    for line in EXAMPLES.read_text().splitlines():
        row = json.loads(line)
        for side in ("chosen", "rejected"):
            value = row[side]
            texts.append(value if isinstance(value, str) else value[-1]["content"])
    return texts


def _mixtures(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = [rng.choice(PIECES) for _ in range(rng.randint(1, 6))]
        text = rng.choice((" ", "\n", "  ", "\n\n")).join(parts)
        if rng.random() < 0.2:
            text = text.upper()
        elif rng.random() < 0.2:
            text = text.lower()
        texts.append(text)
    return texts


def _langs(detect, text: str):
    langdetect = _langdetect()  # seeded, as mapl uses it
    try:
        return [(found.lang, found.prob) for found in detect(text)]
    except langdetect.LangDetectException as err:
        return ("no features", str(err))


@pytest.mark.parametrize(
    "texts",
    [PIECES, SPECIAL, _response_texts(), _mixtures(150)],
    ids=["pieces", "special", "examples", "mixtures"],
)
def test_detect_langs_equals_langdetect_to_the_bit(texts):
    reference = _langdetect().detect_langs
    for text in texts:
        assert _langs(langdetect_exact.detect_langs, text) == _langs(reference, text), text[:80]


def test_long_text_is_cut_where_langdetect_cuts_it():
    text = "Le chat dort. " * 700 + "The dog barks loudly at night. " * 400  # French first 10,000 characters
    assert _langs(langdetect_exact.detect_langs, text) == _langs(_langdetect().detect_langs, text)
    assert langdetect_exact.detect(text) == "fr"


def test_detect_language_keeps_langdetect_verdicts():
    assert detect_language("Bonjour, je suis très content de vous voir.") == "fr"
    assert detect_language("12345") is None  # no features: follows any language, as in IFEval
    for text in _mixtures(30, seed=1):
        assert detect_language(text) == _langdetect().detect(text)


def _content_digest(path: Path) -> str:
    rows = pq.read_table(path / "pairs.parquet").to_pylist()
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@pytest.mark.parametrize(
    ("seed", "workers", "digest"),
    [
        (7, 1, "9197de59512eb649900109f15e676704446700c0aad9737ac5afeae772be1290"),
        (3, 2, "8165dad3a34d6556f14646d6cb22b46e36835f244bce018fa4f50318694764e0"),
    ],
)
def test_synthesize_output_is_unchanged(tmp_path, seed, workers, digest):
    run(SynthConfig(input=str(EXAMPLES), output=tmp_path / "out", seed=seed, workers=workers, progress=False))
    assert _content_digest(tmp_path / "out") == digest


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="SciPy is not installed: nothing to hide")
def test_sentence_splitting_does_not_import_scipy_and_scipy_still_imports():
    code = (
        "import sys\n"
        "from mapl_cli.instructions.text import count_capital_words, count_sentences\n"
        "assert count_sentences('Dr. Smith came. He left.') == 2 and count_capital_words('THE END. I SAW IT.') == 5\n"
        "assert 'scipy' not in sys.modules and 'sklearn' not in sys.modules, 'NLTK loaded SciPy or scikit-learn'\n"
        "import scipy.stats\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_in_process_synthesis_restores_the_collector_thresholds(tmp_path):
    before = gc.get_threshold()
    run(SynthConfig(input=str(EXAMPLES), output=tmp_path / "out", workers=1, limit=5, progress=False))
    assert gc.get_threshold() == before
    with pytest.raises(MaplError):  # a failing run too (no usable rows: every row invalid and skipped)
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"prompt": "p", "chosen": "same", "rejected": "same"}\n')
        run(SynthConfig(input=str(bad), output=tmp_path / "bad", workers=1, skip_invalid=True, progress=False))
    assert gc.get_threshold() == before
