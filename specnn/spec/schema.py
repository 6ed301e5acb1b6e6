"""The JSON Schema of the spec format, generated from the pydantic models.

Editors (VS Code's YAML extension, JetBrains) use the committed copy,
``specnn/schema/spec.schema.json``; validation applies the same schema first so that every problem
is found and located. Regenerate the committed copy after changing a model or a catalogue table::

    python -m specnn.spec.schema > specnn/schema/spec.schema.json
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from specnn.spec.models import FORMAT_VERSION, ON_USE, Spec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = f"urn:specnn:spec:{FORMAT_VERSION}"
REGENERATE = "python -m specnn.spec.schema > specnn/schema/spec.schema.json"
COMMITTED = Path(__file__).resolve().parent.parent / "schema" / "spec.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file.

    Besides the generated schema, each catalogue argument model is marked with ``x-arguments-of``
    (e.g. ``"layer type"``), so a validator can say "unknown argument" inside one.

    >>> schema = json_schema()
    >>> schema["$schema"], schema["$defs"]["Node"]["x-choice"], schema["$defs"]["LinearArgs"]["x-arguments-of"]
    ('https://json-schema.org/draft/2020-12/schema', 'layer type', 'layer type')
    """
    generated = Spec.model_json_schema(by_alias=True, schema_generator=SpecJsonSchema)
    _mark_argument_models(generated["$defs"])
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **generated,
        "title": f"specnn spec, format {FORMAT_VERSION}",
    }


class SpecJsonSchema(GenerateJsonSchema):
    """Pydantic's generator, told that a catalogue entry's field (``models.OnUse``) is its argument
    model's ``$ref``, which has a title of its own, as pydantic knows a model-typed field to be."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return not schema.get("metadata", {}).get(ON_USE) and super().field_title_should_be_set(schema)


@lru_cache(maxsize=1)
def cached_schema() -> dict[str, Any]:
    """The committed schema file, read once per process (validation reads it for every file).

    Reading it takes ~5 ms; generating it with :func:`json_schema` takes ~110 ms, paid on every
    ``specnn validate``/``train`` start. ``tests/test_spec_schema.py`` keeps the file equal to
    :func:`json_schema`; a checkout without the file (never an installed package) generates it.
    """
    if not COMMITTED.is_file():
        return json_schema()
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def _mark_argument_models(defs: dict[str, Any]) -> None:
    for choice in defs.values():
        what = choice.get("x-choice")
        for key in choice.get("x-choices", ()):
            for branch in choice["properties"][key].get("anyOf", [choice["properties"][key]]):
                ref = branch.get("$ref", "")
                if ref.startswith("#/$defs/"):
                    defs[ref.removeprefix("#/$defs/")]["x-arguments-of"] = what


def schema_text() -> str:
    """The schema as the committed file holds it (and ``specnn schema`` prints it)."""
    return json.dumps(json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
