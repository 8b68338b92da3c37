"""Reading preference rows (prompt, chosen, rejected) for `mapl synthesize`, in batches.

Inputs: a .parquet, .jsonl or .json file, or `hf://name[:split]` (through `datasets`, when a hub is
reachable). Rows come in TRL's standard format (strings), its conversational format (`prompt` a list of
{role, content} messages, several turns allowed; `chosen`/`rejected` a string or a one-message assistant
list), or its implicit-prompt format (no `prompt` column; `chosen` and `rejected` whole conversations: the
prompt is their longest common prefix of messages, and each must end in one assistant message after it).
A prompt ends with the turn the response answers, never with an assistant message.

    from mapl_cli.prefs import PrefSource
    source = PrefSource("examples/prefs.jsonl")
    for batch in source.batches(256):          # lists of (row_number, raw dict)
        ...

Every row is normalised by `normalise_row`, which raises `InvalidRowError` with the file, row and column in
its one-line message.

An optional `instructions` column (written by `mapl sample`: a list of {id, kwargs (JSON), text}) names the
verifiable instructions the prompt already carries; synthesize keeps them in the pairs rows and draws its
new instructions around them. Files without that column read exactly as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mapl_cli.errors import InvalidRowError, MaplError
from mapl_cli.jsonl import jsonl_lines, parse_line

Message = dict[str, str]
INSTRUCTIONS_COLUMN = "instructions"  # the instructions a prompt already carries (mapl sample's prefs.parquet)


@dataclass(frozen=True)
class Columns:
    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    id: str = "id"


@dataclass(frozen=True)
class PrefRow:
    """One normalised preference row."""

    index: int  # 0-based position of the row in the input
    source_id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    # Instructions the prompt already carries, as {id, kwargs (JSON), text} in the pairs table's struct;
    # empty for ordinary preference rows.
    instructions: tuple[dict[str, str], ...] = ()


class PrefSource:
    """A preference input that can report its row count and yield rows in batches."""

    def __init__(self, spec: str | Path, columns: Columns = Columns()):
        self.spec = str(spec)
        self.columns = columns
        if self.spec.startswith("hf://"):
            self.kind = "hf"
        else:
            path = Path(self.spec)
            if not path.exists():
                raise MaplError(f"{path}: no such file")
            if path.is_dir():
                raise MaplError(f"{path}: is a directory, expected a .parquet, .jsonl or .json file")
            suffix = path.suffix.lower()
            if suffix not in (".parquet", ".jsonl", ".json"):
                raise MaplError(f"{path}: unsupported input type '{suffix}' (use .parquet, .jsonl, .json or hf://name[:split])")
            self.kind = suffix[1:]
        self._hf = None

    # -- size -------------------------------------------------------------------------------------------
    def num_rows(self) -> int:
        """Number of rows, found cheaply (Parquet metadata, a line count, or the dataset length)."""
        if self.kind == "parquet":
            return self._parquet_file().metadata.num_rows
        if self.kind == "jsonl":
            with open(self.spec, "rb") as handle:
                return sum(1 for line in handle if line.strip())
        if self.kind == "json":
            return len(self._json_rows())
        return len(self._hf_dataset())

    # -- reading ----------------------------------------------------------------------------------------
    def batches(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[list[tuple[int, dict]]]:
        """Yield lists of (row index, raw row) for rows start..stop-1, at most `batch_size` per list."""
        batch: list[tuple[int, dict]] = []
        for index, raw in self._rows(start, stop):
            batch.append((index, raw))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _rows(self, start: int, stop: int | None) -> Iterator[tuple[int, dict]]:
        if self.kind == "jsonl":
            yield from self._jsonl_rows(start, stop)
        elif self.kind == "parquet":
            yield from self._parquet_rows(start, stop)
        elif self.kind == "json":
            rows = self._json_rows()
            for index in range(start, len(rows) if stop is None else min(stop, len(rows))):
                yield index, rows[index]
        else:
            dataset = self._hf_dataset()
            end = len(dataset) if stop is None else min(stop, len(dataset))
            for index in range(start, end):
                yield index, dataset[index]

    def _jsonl_rows(self, start: int, stop: int | None) -> Iterator[tuple[int, dict]]:
        for index, (line_number, line) in enumerate(jsonl_lines(self.spec)):
            if index < start:
                continue  # rows before this shard are counted, never parsed
            if stop is not None and index >= stop:
                return
            # A bad line travels as an error value, so --skip-invalid can count it and go on.
            try:
                raw = parse_line(line, self.spec, line_number)
            except MaplError as err:
                raw = InvalidRowError(str(err), "bad_json")
            if not isinstance(raw, (dict, InvalidRowError)):
                raw = InvalidRowError(f"{self.spec}: line {line_number}: expected a JSON object", "bad_json")
            yield index, raw

    def _parquet_file(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.spec)
        except (pa.ArrowInvalid, OSError) as err:
            raise MaplError(f"{self.spec}: not a readable Parquet file ({err})") from None

    def _parquet_rows(self, start: int, stop: int | None) -> Iterator[tuple[int, dict]]:
        import pyarrow as pa

        parquet = self._parquet_file()
        names = parquet.schema_arrow.names
        wanted = [c for c in (self.columns.prompt, self.columns.chosen, self.columns.rejected, self.columns.id) if c in names]
        if INSTRUCTIONS_COLUMN in names and INSTRUCTIONS_COLUMN not in wanted:
            wanted.append(INSTRUCTIONS_COLUMN)
        chosen = parquet.schema_arrow.field(self.columns.chosen).type if self.columns.chosen in names else None
        self._require_columns(names, chosen is not None and (pa.types.is_list(chosen) or pa.types.is_large_list(chosen)))
        try:
            yield from self._parquet_range(parquet, wanted, start, stop)
        except (pa.ArrowException, OSError) as err:  # a damaged data page shows only when it is read
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise MaplError(f"{self.spec}: not a readable Parquet file ({first})") from None

    @staticmethod
    def _parquet_range(parquet, wanted: list[str], start: int, stop: int | None) -> Iterator[tuple[int, dict]]:
        index = 0
        for record_batch in parquet.iter_batches(batch_size=2048, columns=wanted):
            size = record_batch.num_rows
            if index + size <= start:
                index += size
                continue
            if stop is not None and index >= stop:
                return
            for raw in record_batch.to_pylist():
                if index >= start and (stop is None or index < stop):
                    yield index, raw
                index += 1

    def _json_rows(self) -> list[dict]:
        if not hasattr(self, "_json_cache"):
            try:
                data = json.loads(Path(self.spec).read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                raise MaplError(f"{self.spec}: not a UTF-8 text file") from None
            except json.JSONDecodeError as err:
                raise MaplError(f"{self.spec}: not valid JSON ({err})") from None
            except RecursionError:
                raise MaplError(f"{self.spec}: not valid JSON (nested too deeply)") from None
            if isinstance(data, dict) and isinstance(data.get("data"), list):
                data = data["data"]
            if not isinstance(data, list):
                raise MaplError(f"{self.spec}: expected a JSON array of objects")
            self._json_cache = data
        return self._json_cache

    def _hf_dataset(self):
        if self._hf is None:
            name, _, split = self.spec[len("hf://"):].partition(":")
            from mapl_cli.hub import use_hub

            use_hub()  # before datasets is imported: an unreachable hub fails at once, not after retries
            try:
                import datasets
            except ImportError:
                raise MaplError("hf:// inputs need the 'datasets' package: pip install datasets") from None
            try:
                self._hf = datasets.load_dataset(name, split=split or "train")
            except Exception as err:  # offline, unknown name, bad split: all end the same way for a user
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise MaplError(
                    f"{self.spec}: could not load the dataset ({first}); without a reachable hub, "
                    "export it to .parquet or .jsonl and pass that file"
                ) from None
            chosen = self._hf.features.get(self.columns.chosen)
            self._require_columns(self._hf.column_names, isinstance(chosen, list) or type(chosen).__name__ in ("List", "LargeList", "Sequence"))
        return self._hf

    def _require_columns(self, names: list[str], conversations: bool = False) -> None:
        """The three columns, or only chosen and rejected when they hold conversations (`conversations`: a
        list column), which can carry the prompt themselves (TRL's implicit-prompt format)."""
        for column in (self.columns.prompt, self.columns.chosen, self.columns.rejected):
            if column == self.columns.prompt and conversations:
                continue
            if column not in names:
                raise MaplError(f"{self.spec}: missing column '{column}' (columns: {', '.join(names)}; remap with --{_flag(column, self.columns)}-column)")


def _flag(column: str, columns: Columns) -> str:
    return {columns.prompt: "prompt", columns.chosen: "chosen", columns.rejected: "rejected"}.get(column, column)


def _where(spec: str, index: int, column: str) -> str:
    return f"{spec}: row {index}: column '{column}'"


def _prompt_messages(value: Any, where: str) -> list[Message]:
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRowError(f"{where} is empty", "empty_prompt")
        return [{"role": "user", "content": value}]
    if value is None:
        raise InvalidRowError(f"{where} is null", "null_prompt")
    if isinstance(value, (list, tuple)):
        messages = _message_list(value, where)
        if not any(m["role"] == "user" for m in messages):
            raise InvalidRowError(f"{where}: the message list has no user turn", "no_user_turn")
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        if not messages[last_user]["content"].strip():
            raise InvalidRowError(f"{where}: the last user turn is empty", "empty_prompt")
        if messages[-1]["role"] == "assistant":  # training and generation open a new assistant turn after it
            raise InvalidRowError(f"{where}: the last message is an assistant turn; a prompt ends with the turn the "
                                  "response answers (continuing an assistant message is not supported)", "prompt_ends_with_assistant")
        return messages
    raise InvalidRowError(f"{where} must be a string or a list of messages, not {type(value).__name__}", "bad_prompt_type")


def _message_list(value: list | tuple, where: str) -> list[Message]:
    """The {role, content} messages of a list, each checked and copied with only those two keys."""
    messages = []
    for position, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise InvalidRowError(f"{where}: message {position} is not a {{role, content}} object with string values", "bad_messages")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _is_conversation(value: Any) -> bool:
    """A non-empty list whose items look like messages (TRL's `is_conversational` test)."""
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def _turns(messages: list[Message]) -> str:
    """'2 messages (user, assistant)', or 'no message'."""
    if not messages:
        return "no message"
    return f"{len(messages)} message{'s' if len(messages) != 1 else ''} ({', '.join(m['role'] for m in messages)})"


def _implicit_prompt(spec: str, index: int, raw: dict, columns: Columns) -> tuple[list[Message], str, str]:
    """(prompt, chosen, rejected) of a row in TRL's implicit-prompt format: no prompt column, `chosen` and
    `rejected` whole conversations. The prompt is their longest common prefix of messages; what follows it
    on each side must be exactly one assistant message."""
    if not (_is_conversation(raw[columns.chosen]) and _is_conversation(raw[columns.rejected])):
        raise InvalidRowError(
            f"{spec}: row {index}: missing column '{columns.prompt}' (without one, '{columns.chosen}' and "
            f"'{columns.rejected}' must be whole conversations: TRL's implicit-prompt format)", "missing_column")
    sides = {
        column: _message_list(raw[column], _where(spec, index, column)) for column in (columns.chosen, columns.rejected)
    }
    chosen, rejected = sides.values()
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == len(chosen) == len(rejected):
        raise InvalidRowError(
            f"{spec}: row {index}: columns '{columns.chosen}' and '{columns.rejected}' hold the same conversation",
            "identical_responses")
    for column, messages in sides.items():
        tail = messages[shared:]
        if len(tail) != 1 or tail[0]["role"] != "assistant":
            raise InvalidRowError(
                f"{_where(spec, index, column)}: after the {_turns(messages[:shared])} both conversations share, "
                f"it must have exactly one assistant message, and has {_turns(tail)}", "bad_implicit_prompt")
    prompt = _prompt_messages(chosen[:shared], f"{spec}: row {index}: the prompt '{columns.chosen}' and "
                                                f"'{columns.rejected}' share")
    return prompt, chosen[shared]["content"], rejected[shared]["content"]


def _response_text(value: Any, where: str) -> str:
    if isinstance(value, (list, tuple)):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            raise InvalidRowError(f"{where} must be a string or a one-message assistant list", "bad_response_type")
        value = value[0].get("content")
    if value is None:
        raise InvalidRowError(f"{where} is null", "null_response")
    if not isinstance(value, str):
        raise InvalidRowError(f"{where} must be a string, not {type(value).__name__}", "bad_response_type")
    if not value.strip():
        raise InvalidRowError(f"{where} is empty", "empty_response")
    return value


def content_hash(*parts: Any, length: int = 16) -> str:
    """A stable hex digest of JSON-serialisable parts."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def normalise_row(spec: str, index: int, raw: dict, columns: Columns) -> PrefRow:
    """Validate one raw row and turn it into a `PrefRow`; raises `InvalidRowError`."""
    if isinstance(raw, InvalidRowError):
        raise raw
    if not isinstance(raw, dict):
        raise InvalidRowError(f"{spec}: row {index}: expected an object with columns", "bad_row")
    for column in (columns.chosen, columns.rejected):
        if column not in raw:
            raise InvalidRowError(f"{spec}: row {index}: missing column '{column}'", "missing_column")
    if columns.prompt in raw:
        prompt = _prompt_messages(raw[columns.prompt], _where(spec, index, columns.prompt))
        chosen_value, rejected_value = raw[columns.chosen], raw[columns.rejected]
    else:
        prompt, chosen_value, rejected_value = _implicit_prompt(spec, index, raw, columns)
    chosen = _response_text(chosen_value, _where(spec, index, columns.chosen))
    rejected = _response_text(rejected_value, _where(spec, index, columns.rejected))
    if chosen.strip() == rejected.strip():  # no preference to learn: every pair built from it has zero gradient
        raise InvalidRowError(
            f"{spec}: row {index}: columns '{columns.chosen}' and '{columns.rejected}' hold the same response",
            "identical_responses",
        )
    given_id = raw.get(columns.id)
    source_id = str(given_id) if given_id not in (None, "") else content_hash(prompt, chosen, rejected)
    carried = _carried_instructions(raw.get(INSTRUCTIONS_COLUMN), _where(spec, index, INSTRUCTIONS_COLUMN))
    return PrefRow(index=index, source_id=source_id, prompt=prompt, chosen=chosen, rejected=rejected, instructions=carried)


def _carried_instructions(value: Any, where: str) -> tuple[dict[str, str], ...]:
    """The prompt's own instructions from the optional `instructions` column: each a known instruction id
    with a JSON object of arguments (kept as written) and its text; null or absent means none."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise InvalidRowError(f"{where} must be a list of {{id, kwargs, text}} instructions (as mapl sample writes), "
                              f"not {type(value).__name__}", "bad_instructions")
    from mapl_cli.instructions import get_instruction

    carried = []
    for position, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise InvalidRowError(f"{where}: instruction {position} is not an {{id, kwargs, text}} object", "bad_instructions")
        try:
            instruction = get_instruction(item["id"])
        except MaplError:
            raise InvalidRowError(f"{where}: instruction {position} has unknown id {item['id']!r}", "unknown_instruction") from None
        kwargs = item.get("kwargs")
        try:
            parsed = json.loads(kwargs) if isinstance(kwargs, str) else kwargs
        except (json.JSONDecodeError, RecursionError):
            parsed = ""
        if parsed is not None and not isinstance(parsed, dict):
            raise InvalidRowError(f"{where}: instruction {position}: kwargs must be a JSON object", "bad_instructions")
        try:  # synthesize checks the responses against it: a missing argument is this row's fault, said here
            instruction.args(parsed)
        except MaplError as err:
            raise InvalidRowError(f"{where}: instruction {position}: {err}", "bad_instructions") from None
        text = item.get("text")
        carried.append({
            "id": item["id"],
            "kwargs": kwargs if isinstance(kwargs, str) else json.dumps(parsed or {}, sort_keys=True),
            "text": text if isinstance(text, str) else "",
        })
    return tuple(carried)
