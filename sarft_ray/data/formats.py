"""Corpus file formats: the registry that ``roles.corpus.format`` names.

A format turns one corpus file (a ``CorpusFile``: its path, and the role of
every row when records carry none) into ``(where, row)`` pairs: ``where``
locates the record for error messages (``file:line`` or ``file: record N``);
``row`` holds the corpus contract's ``role``, ``sample_id``, ``input``,
``output``, ``references`` and ``source``. Built in:

- ``rolebench``: RoleBench jsonl (``role``, ``question``, ``generated``: the
  reference answers, the first is trained on);
- ``table``: ``input`` and ``output`` fields (optional ``role``,
  ``sample_id``/``id``, ``references``);
- ``alpaca``: ``instruction``, ``input``, ``output`` as LLaMA-Factory reads
  them (the prompt is the instruction, then a newline and the input when there
  is one); each ``history`` pair (``[question, answer]``) is a sample too;
- ``sharegpt``: ``conversations`` of ``{"from", "value"}`` turns (``human``/
  ``gpt``) or OpenAI ``messages`` of ``{"role", "content"}`` turns
  (``user``/``assistant``); each user turn with the assistant turn after it is
  one sample. System turns are skipped (the role prompt comes from
  ``roles.prompts``), and a sample does not see earlier turns.

Files: ``.jsonl``, ``.json`` (an array of records), ``.parquet``, and ``.csv``
for the flat formats. Every record's shape is checked against its declared
format: a record with another format's fields (an Alpaca file declared as
``table``, whose ``input`` is often empty) is refused with the format it looks
like, and an empty prompt or answer is refused in every format.

Extending: write ``reader(spec) -> Iterator[(where, row)]`` and add one
``register_format(CorpusFormat(...))`` line at the end of this module.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sarft_ray.data.config import CorpusFile
from sarft_ray.data.readers import iter_jsonl, iter_records
from sarft_ray.errors import SarftError

Row = dict
Reader = Callable[[CorpusFile], Iterator[tuple[str, Row]]]


@dataclass(frozen=True)
class CorpusFormat:
    name: str
    reader: Reader
    signatures: tuple[frozenset[str], ...]  # field sets that mark a record as this format's (any one of them)
    description: str  # one line for docs and error messages


_REGISTRY: dict[str, CorpusFormat] = {}


def register_format(fmt: CorpusFormat) -> None:
    if fmt.name in _REGISTRY:
        raise ValueError(f"corpus format {fmt.name!r} is already registered")
    _REGISTRY[fmt.name] = fmt


def registered_formats() -> list[str]:
    return list(_REGISTRY)


def check_format_name(name: str) -> str:
    """``name`` if registered, else ValueError (a pydantic validator: the error names the config field)."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown corpus format '{name}'{hint} (registered: {', '.join(_REGISTRY)})")
    return name


def read_corpus_file(format_name: str, spec: CorpusFile) -> Iterator[tuple[str, Row]]:
    """``(where, row)`` for every sample of one corpus file read as ``format_name``."""
    return _REGISTRY[check_format_name(format_name)].reader(spec)


def looks_like(obj: dict) -> str | None:
    """The format whose fields the record carries (the most specific one: registered order), or None."""
    keys = set(obj)
    for fmt in _REGISTRY.values():
        if any(signature <= keys for signature in fmt.signatures):
            return fmt.name
    return None


def check_shape(where: str, obj: dict, declared: str) -> None:
    """Refuse a record whose fields mark it as another format's, or that lacks its own format's fields.

    A record with its declared format's fields is still refused when a more specific format (registered earlier)
    claims it through a field the two share: an Alpaca record read as ``table`` would train on its ``input``
    (often empty) and drop its ``instruction``. A field the formats do not share is the record's own business
    (a ``table`` record may carry a ``messages`` column).
    """
    keys = set(obj)
    own = [signature for signature in _REGISTRY[declared].signatures if signature <= keys]
    if own:
        seen = _more_specific_claim(keys, declared, own)
        if seen is None:
            return
    else:
        seen = looks_like(obj)
    if seen is not None:
        raise SarftError(
            f"{where}: this record has the fields of the '{seen}' format ({_fields(seen)}), "
            f"not of '{declared}' (roles.corpus.format); set roles.corpus.format: {seen}"
        )
    missing = sorted(min((s - keys for s in _REGISTRY[declared].signatures), key=len))
    raise SarftError(f"{where}: missing field(s) {', '.join(missing)} (the '{declared}' format has {_fields(declared)})")


def _more_specific_claim(keys: set[str], declared: str, own: list[frozenset[str]]) -> str | None:
    """A format registered before ``declared`` whose fields the record has, sharing one with ``declared``'s."""
    for fmt in _REGISTRY.values():
        if fmt.name == declared:
            return None
        if any(signature <= keys and signature & mine for signature in fmt.signatures for mine in own):
            return fmt.name
    return None


def _fields(name: str) -> str:
    return " or ".join("/".join(sorted(s)) for s in _REGISTRY[name].signatures)


def text(value, where: str, field: str, allow_empty: bool = False) -> str:
    """A string field; an empty (or blank) prompt or answer is refused unless ``allow_empty``."""
    if not isinstance(value, str):
        raise SarftError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise SarftError(f"{where}: field '{field}' is empty")
    return value


def _role(obj: dict, spec: CorpusFile, where: str) -> str:
    role = obj.get("role")
    if role is not None and not isinstance(role, str):
        raise SarftError(f"{where}: field 'role' must be a string, got {type(role).__name__}")
    role = role or spec.role
    if not role:
        raise SarftError(f"{where}: no 'role' field and no role given for this file in the config (roles.corpus.paths)")
    return role


def _sample_id(obj: dict, spec: CorpusFile, index: int) -> str:
    given = obj.get("sample_id", obj.get("id"))
    return str(given) if given is not None else f"{spec.path.stem}:{index}"


# ---------------------------------------------------------------------------- the built-in formats


def rolebench_rows(spec: CorpusFile) -> Iterator[tuple[str, Row]]:
    return located_rolebench(spec.path)


def located_rolebench(path: Path) -> Iterator[tuple[str, Row]]:
    """``(file:line, row)`` for a RoleBench jsonl file (the reference data's files are read this way too)."""
    if path.suffix.lower() != ".jsonl":
        raise SarftError(f"{path}: the 'rolebench' format reads .jsonl files, not '{path.suffix}'")
    for number, obj in iter_jsonl(path):
        where = f"{path}:{number}"
        check_shape(where, obj, "rolebench")
        generated = obj["generated"]
        generated = [generated] if isinstance(generated, str) else generated
        if not isinstance(generated, list) or not generated or not all(isinstance(g, str) for g in generated):
            raise SarftError(f"{where}: field 'generated' must be a non-empty list of strings")
        yield where, {
            "role": text(obj.get("role"), where, "role"),
            "sample_id": f"{path.parent.name}/{path.stem}:{number}",
            "input": text(obj["question"], where, "question"),
            "output": text(generated[0], where, "generated[0]"),
            "references": generated,
            "source": path.parent.name,
        }


def iter_rolebench(path: Path) -> Iterator[Row]:
    """The rows of a RoleBench jsonl file (``role, question, generated[list], type``)."""
    return (row for _, row in located_rolebench(path))


def table_rows(spec: CorpusFile) -> Iterator[tuple[str, Row]]:
    for index, (where, obj) in enumerate(iter_records(spec.path, (".jsonl", ".json", ".csv", ".parquet"))):
        check_shape(where, obj, "table")
        output = text(obj["output"], where, "output")
        references = obj.get("references") or [output]
        references = [references] if isinstance(references, str) else references  # a CSV cell holds one
        if not isinstance(references, list):
            raise SarftError(f"{where}: field 'references' must be a list of strings or one string")
        references = [text(r, where, "references") for r in references]
        yield where, {
            "role": text(_role(obj, spec, where), where, "role"),
            "sample_id": _sample_id(obj, spec, index),
            "input": text(obj["input"], where, "input"),
            "output": output,
            "references": references,
            "source": spec.path.stem,
        }


def alpaca_rows(spec: CorpusFile) -> Iterator[tuple[str, Row]]:
    for index, (where, obj) in enumerate(iter_records(spec.path, (".jsonl", ".json", ".csv", ".parquet"))):
        check_shape(where, obj, "alpaca")
        role, sample_id = text(_role(obj, spec, where), where, "role"), _sample_id(obj, spec, index)
        history = obj.get("history") or []
        if not isinstance(history, list) or not all(isinstance(p, list) and len(p) == 2 for p in history):
            raise SarftError(f"{where}: field 'history' must be a list of [question, answer] pairs")
        for turn, (question, answer) in enumerate(history):
            field = f"history[{turn}]"
            yield where, _sample(role, f"{sample_id}:h{turn}", text(question, where, field), text(answer, where, field), spec)
        instruction = text(obj["instruction"], where, "instruction")
        extra = text(obj.get("input") or "", where, "input", allow_empty=True)
        prompt = f"{instruction}\n{extra}" if extra.strip() else instruction
        yield where, _sample(role, sample_id, prompt, text(obj["output"], where, "output"), spec)


_USER, _ASSISTANT, _SYSTEM = ("human", "user"), ("gpt", "assistant"), ("system",)


def sharegpt_rows(spec: CorpusFile) -> Iterator[tuple[str, Row]]:
    for index, (where, obj) in enumerate(iter_records(spec.path, (".jsonl", ".json", ".parquet"))):
        check_shape(where, obj, "sharegpt")
        field, speaker, content = ("conversations", "from", "value") if "conversations" in obj else ("messages", "role", "content")
        turns = obj[field]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise SarftError(f"{where}: field '{field}' must be a list of turns ({{'{speaker}': ..., '{content}': ...}})")
        turns = [t for t in turns if t.get(speaker) not in _SYSTEM]
        role, conversation = text(_role(obj, spec, where), where, "role"), _sample_id(obj, spec, index)
        for number, turn in enumerate(turns):
            expected = _USER if number % 2 == 0 else _ASSISTANT
            if turn.get(speaker) not in expected:
                raise SarftError(
                    f"{where}: {field}[{number}] ({speaker}={turn.get(speaker)!r}) should be {' or '.join(map(repr, expected))}: "
                    "turns after any system turn alternate user, assistant"
                )
        if len(turns) % 2:
            raise SarftError(f"{where}: field '{field}' ends with a user turn that has no answer")
        for pair in range(len(turns) // 2):
            question, answer = turns[2 * pair], turns[2 * pair + 1]
            yield where, _sample(
                role,
                f"{conversation}:{pair}",
                text(question.get(content), where, f"{field}[{2 * pair}].{content}"),
                text(answer.get(content), where, f"{field}[{2 * pair + 1}].{content}"),
                spec,
            )


def _sample(role: str, sample_id: str, prompt: str, answer: str, spec: CorpusFile) -> Row:
    return {"role": role, "sample_id": sample_id, "input": prompt, "output": answer, "references": [answer], "source": spec.path.stem}


# Registered most specific first: an Alpaca record also has a table's input and output fields.
register_format(CorpusFormat("rolebench", rolebench_rows, (frozenset({"question", "generated"}),), "RoleBench jsonl"))
register_format(
    CorpusFormat("sharegpt", sharegpt_rows, (frozenset({"conversations"}), frozenset({"messages"})), "ShareGPT or OpenAI messages")
)
register_format(CorpusFormat("alpaca", alpaca_rows, (frozenset({"instruction", "output"}),), "Alpaca instruction/input/output"))
register_format(CorpusFormat("table", table_rows, (frozenset({"input", "output"}),), "input/output records"))
