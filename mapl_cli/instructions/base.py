"""The contract every verifiable instruction type follows (MAPL's instruction generators, G_0).

An instruction type is stateless: it never stores arguments on `self` and never touches the global
`random` module. Arguments travel as a plain dict (`kwargs`) whose keys are IFEval's argument names, so a
row of IFEval data (`instruction_id_list`, `kwargs`) is checked by the same code that MAPL synthesis uses.

    from mapl_cli.instructions import get_instruction
    inst = get_instruction("length_constraints:number_words")
    kwargs = inst.generate([(response_a, True), (response_b, False)], rng)   # or None
    text = inst.describe(kwargs, rng)        # "Answer with at least 150 words."
    assert inst.check(response_a, kwargs) and not inst.check(response_b, kwargs)

Benchmarks use two more hooks: `validate` judges the arguments of a benchmark row, and `draw` picks
arguments for a new benchmark prompt with no response in view (`mapl build-benchmark`).
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from mapl_cli.errors import MaplError

Kwargs = dict[str, Any]
Target = tuple[str, bool]  # (response, wanted verdict)


@runtime_checkable
class Instruction(Protocol):
    """One verifiable instruction type, registered under an IFEval-compatible id."""

    #: IFEval-compatible id, for example "length_constraints:number_words".
    id: str

    def describe(self, kwargs: Kwargs, rng: random.Random) -> str:
        """The instruction text for these arguments; `rng` picks one of several phrasings."""
        ...

    def check(self, response: str, kwargs: Kwargs) -> bool:
        """Whether `response` follows the instruction (IFEval's strict semantics)."""
        ...

    def generate(self, targets: Sequence[Target], rng: random.Random) -> Kwargs | None:
        """Arguments under which each response gets its wanted verdict, or None when no such arguments exist
        (or none could be found). The returned dict must be JSON-serialisable."""
        ...

    def validate(self, kwargs: Kwargs) -> Kwargs:
        """`kwargs`, the arguments of a benchmark row (IFEval's null placeholders removed), when they are
        usable; ValueError saying what is wrong with them otherwise."""
        ...

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        """Arguments for a benchmark row built on the base prompt `prompt`, with no response in view; valid
        for IFEval's reference checker too."""
        ...


# --- shared machinery for the concrete types ---------------------------------------------------------------

LESS_THAN, AT_LEAST = "less than", "at least"
RELATIONS = (LESS_THAN, AT_LEAST)  # IFEval's _COMPARISON_RELATION

#: What an argument's value in a benchmark row must be ("an integer >= 1"), or None when it is fine.
ArgRule = Callable[[Any], str | None]


class Arg:
    """The rules for argument values in benchmark rows, stricter than what `check` accepts: every value is
    required and meaningful, so that IFEval's reference checker scores the row the same way (it would draw a
    missing argument at random)."""

    @staticmethod
    def count(value: Any) -> str | None:
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else "an integer >= 1"

    @staticmethod
    def text(value: Any) -> str | None:
        return None if isinstance(value, str) and value.strip() else "a non-empty string"

    @staticmethod
    def words(value: Any) -> str | None:
        ok = isinstance(value, list) and value and all(isinstance(w, str) and w.strip() for w in value)
        return None if ok else "a non-empty list of strings"

    @staticmethod
    def relation(value: Any) -> str | None:
        return None if value in RELATIONS else f"one of {RELATIONS}"

    @staticmethod
    def letter(value: Any) -> str | None:
        # a letter in all but two of IFEval's rows; '#' and '!' there are counted literally (docs/instructions.md)
        return None if isinstance(value, str) and len(value) == 1 and not value.isspace() else "a single character"


class BaseInstruction(ABC):
    """Common behaviour of the concrete types (they satisfy `Instruction` structurally).

    `check` applies IFEval's strict harness rule (a blank response follows nothing) and reads the declared
    arguments with None meaning absent; `generate` calls the type's `_generate` and keeps its answer only
    when the type's own checker gives every wanted verdict, so a returned kwargs dict is always right.
    `validate` holds a benchmark row's arguments to `arguments`; `draw` is the type's own (the default
    refuses).
    """

    id: str = ""
    #: The IFEval arguments this type reads, by name, each with the rule for its value in a benchmark row
    #: (`validate`). `check` ignores other names in a kwargs dict, and None values.
    arguments: ClassVar[dict[str, ArgRule]] = {}

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(self.arguments)

    def check(self, response: str, kwargs: Kwargs | None) -> bool:
        if not response.strip():
            return False
        return self._check(response, self.args(kwargs))

    def generate(self, targets: Sequence[Target], rng: random.Random) -> Kwargs | None:
        targets = [(response, bool(wanted)) for response, wanted in targets]
        if any(wanted and not response.strip() for response, wanted in targets):
            return None  # a blank response follows nothing
        kwargs = self._generate(targets, rng)
        if kwargs is None:
            return None
        if all(self.check(response, kwargs) == wanted for response, wanted in targets):
            return kwargs
        return None

    def validate(self, kwargs: Kwargs) -> Kwargs:
        for name in kwargs:
            if name not in self.arguments:
                raise ValueError(f"{self.id} takes no argument {name!r} (it takes: {', '.join(self.arguments) or 'none'})")
        for name, rule in self.arguments.items():
            if name not in kwargs:
                raise ValueError(f"{self.id} is missing argument {name!r}")
            problem = rule(kwargs[name])
            if problem:
                raise ValueError(f"{self.id} argument {name!r} must be {problem}, got {kwargs[name]!r}")
        return kwargs

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        raise MaplError(f"build-benchmark cannot choose arguments for {self.id!r}; use --exclude {self.id}")

    def args(self, kwargs: Kwargs | None) -> Kwargs:
        """The declared arguments, validated; raises MaplError naming a missing one."""
        kwargs = kwargs or {}
        out = {}
        for name in self.arg_names:
            value = kwargs.get(name)
            if value is None:
                raise MaplError(f"instruction {self.id!r} needs argument {name!r} (got {sorted(kwargs)})")
            out[name] = value
        return out

    @abstractmethod
    def _check(self, response: str, args: Kwargs) -> bool:
        """The verdict for a non-blank response, with the declared arguments read by `args`."""

    @abstractmethod
    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        """Candidate arguments for `generate` (checked there), or None."""


class FixedInstruction(BaseInstruction):
    """A type without arguments: it can only say {} when the responses already get the wanted verdicts."""

    phrasings: tuple[str, ...] = ()

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        return rng.choice(self.phrasings)

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        return {}

    def draw(self, prompt: str, rng: random.Random) -> Kwargs:
        return {}


class CheckOnlyInstruction(BaseInstruction):
    """A type that is scored but never drawn: IFBench's held-out constraint types.

    `synthesize` and `build-benchmark` never use these (IFBench's authors reserve them for testing), so
    `generate` always says None. `not_scored` names the reason when the type cannot be scored on this
    machine (for example reference data that cannot be had offline); evaluation then reports the type as
    "not scored" instead of counting it as a failure, and never calls `check`.
    """

    check_only = True
    #: Why this type is not scored here (data not available offline), or None when it is scored.
    not_scored: str | None = None
    #: IFBench's instruction text, shown by `describe` (IFBench prompts already carry it).
    description: str = ""
    #: The IFBench arguments this type reads; `validate` leaves their values to `check`.
    arg_names: tuple[str, ...] = ()  # names only (in place of the property over `arguments`)

    def validate(self, kwargs: Kwargs) -> Kwargs:
        """The arguments when `check` accepts them on a sample response (or when the type is not scored here,
        so they are never read); ValueError with the checker's complaint otherwise."""
        if self.not_scored:
            return kwargs
        try:
            self.check("A short sample response.", kwargs)
        except Exception as err:  # noqa: BLE001 - any failure means the arguments are unusable
            raise ValueError(f"kwargs {kwargs} rejected by {self.id}: {err}") from None
        return kwargs

    def describe(self, kwargs: Kwargs | None, rng: random.Random) -> str:
        return self.description or f"Follow the instruction {self.id}."

    def _generate(self, targets: list[Target], rng: random.Random) -> Kwargs | None:
        return None


def as_int(value: Any, inst_id: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MaplError(f"instruction {inst_id!r}: argument {name!r} must be an integer, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise MaplError(
            f"instruction {inst_id!r}: argument {name!r} must be an integer, got {value!r}"
        ) from None
    if not math.isfinite(number) or number != int(number):
        raise MaplError(f"instruction {inst_id!r}: argument {name!r} must be an integer, got {value!r}")
    return int(number)


def as_str(value: Any, inst_id: str, name: str, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise MaplError(f"instruction {inst_id!r}: argument {name!r} must be {what}, got {value!r}")
    return value


def as_relation(value: Any, inst_id: str, name: str) -> str:
    if value not in RELATIONS:
        raise MaplError(
            f"instruction {inst_id!r}: argument {name!r} must be one of {RELATIONS}, got {value!r}"
        )
    return value


def compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == LESS_THAN else count >= threshold


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


_RELATION_WORDS = {
    AT_LEAST: ("at least {n}", "no fewer than {n}", "{n} or more"),
    LESS_THAN: ("less than {n}", "fewer than {n}", "under {n}"),
}


def relation_phrase(rng: random.Random, relation: str, n: int, noun: str, nouns: str | None = None) -> str:
    """'at least 5 words', 'no fewer than 5 words', '5 or more words', 'fewer than 5 words', ..."""
    if noun == "time" and n == 1 and relation == AT_LEAST:
        return rng.choice(("at least once", "at least one time", "one or more times"))
    counted = plural(n, noun, nouns)
    return rng.choice(_RELATION_WORDS[relation]).format(n=counted)


def _pick(lo: int, hi: int, rng: random.Random, round_to: int) -> int:
    if round_to > 1:
        round_values = [v for v in range(-(-lo // round_to) * round_to, hi + 1, round_to)]
        if round_values and rng.random() < 0.7:
            return rng.choice(round_values)
    return rng.randint(lo, hi)


def pick_threshold(
    wanted_counts: Sequence[tuple[int, bool]],
    rng: random.Random,
    *,
    floors: tuple[int, int] = (2, 1),
    round_to: int = 1,
    relations: Sequence[str] = RELATIONS,
) -> tuple[str, int] | None:
    """A (relation, threshold) under which each count gets its wanted verdict (`compare` semantics), or None.

    floors = (smallest threshold for "less than", smallest for "at least"), so that no argument reads
    oddly ("less than 1 sentences", "at least 0 words"). Where only one side constrains the threshold, it is
    drawn with slack (up to half the count again) so that prompts vary.
    """
    yes = [c for c, w in wanted_counts if w]
    no = [c for c, w in wanted_counts if not w]
    options = []
    for relation in relations:
        floor = floors[0] if relation == LESS_THAN else floors[1]
        if relation == AT_LEAST:  # yes >= t > no
            lo = max(no) + 1 if no else min(yes) // 2 if yes else floor
            lo = max(lo, floor)
            hi = min(yes) if yes else lo + max(2, lo // 2)
        else:  # yes < t <= no
            lo = max(yes) + 1 if yes else min(no) // 2 if no else floor
            lo = max(lo, floor)
            hi = min(no) if no else lo + max(2, lo // 2)
        if lo <= hi:
            options.append((relation, lo, hi))
    if not options:
        return None
    relation, lo, hi = rng.choice(options)
    return relation, _pick(lo, hi, rng, round_to)


def pick_exact(
    counts: Sequence[tuple[int | None, bool]], rng: random.Random, *, low: int = 1, high: int = 8
) -> int | None:
    """N such that count == N exactly for the wanted-True counts and != N for the others (None = no count
    can ever match, e.g. a malformed response)."""
    yes = {c for c, w in counts if w}
    no = {c for c, w in counts if not w}
    if yes:
        if len(yes) != 1 or None in yes:
            return None
        (n,) = yes
        return n if n not in no and n >= low else None
    choices = [n for n in range(low, high + 1) if n not in no]
    return rng.choice(choices) if choices else None
