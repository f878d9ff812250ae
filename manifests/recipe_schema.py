"""Recipe keys checked with JSON Schema (jsonschema), shared by every stage's reader.

A recipe is one YAML file with a section per stage; each reader (pipeline/recipe.py generate,
pipeline/protocol.py protocol, train/config.py train, train/study.py study) keeps its own key set
beside its code and calls :func:`check_keys`, so adding a recipe key is one line in that set.
Top-level sections live in :data:`RECIPE_SECTIONS` (add a stage: one line here).

Errors are one line naming the recipe file and the key path, with a difflib "did you mean" when a
known key is close: ``r.yaml: unknown keys in 'study': ['modles'] (did you mean 'models'?); known: ...``.
(manifests/ imports nothing of ours, so both pipeline/ and train/ may use this.)
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

# Top-level keys of a recipe: its name, its output folder and one section per stage.
RECIPE_SECTIONS = (
    "name",
    "output_dir",
    "generate",
    "protocol",
    "train",
    "study",
)


def keys_schema(keys: Iterable[str], properties: Mapping[str, Any] | None = None) -> dict:
    """A JSON Schema for a mapping that allows exactly ``keys`` (``properties`` may type some)."""
    props = {str(k): {} for k in keys}
    props.update(properties or {})
    return {"type": "object", "properties": props, "additionalProperties": False}


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(data: Mapping[str, Any], keys: Iterable[str], where: str, section: str | None,
               error: type[Exception] = ValueError, properties: Mapping[str, Any] | None = None) -> None:
    """Validate mapping ``data`` (the recipe's ``section``) against :func:`keys_schema`; raise ``error``
    with one line: ``<where>: unknown keys in '<section>': [...] (did you mean ...?); known: [...]``,
    or ``<where>: <section>.<path>: <what is wrong>`` for a typed property. ``section=None``: ``where``
    already names the key path (``r.yaml: protocol.unseen_real[0]``)."""
    from jsonschema import Draft202012Validator

    schema = keys_schema(keys, properties)
    errors = sorted(Draft202012Validator(schema).iter_errors(dict(data)), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    known = sorted(schema["properties"])
    unknown = sorted(str(k) for k in data if str(k) not in schema["properties"])
    if unknown:
        hints = "".join(did_you_mean(u, known) for u in unknown[:1])
        inside = f" in {section!r}" if section else ""
        raise error(f"{where}: unknown keys{inside}: {unknown}{hints}; known: {known}")
    first = errors[0]
    path = ".".join([*([section] if section else []), *(str(p) for p in first.absolute_path)])
    raise error(f"{where}: {path}: {first.message}")


def check_sections(data: Mapping[str, Any], where: str, error: type[Exception] = ValueError) -> None:
    """Unknown top-level recipe keys (a typo such as ``stduy:``) are an error with a hint."""
    unknown = sorted(str(k) for k in data if str(k) not in RECIPE_SECTIONS)
    if unknown:
        raise error(f"{where}: unknown top-level section(s) {unknown}{did_you_mean(unknown[0], RECIPE_SECTIONS)}; "
                    f"known: {list(RECIPE_SECTIONS)}")
