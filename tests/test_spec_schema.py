"""The generated JSON Schema: committed, current, and fully understood by the message layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

from jsonschema import Draft202012Validator

from specnn.catalog.layers import LAYERS
from specnn.catalog.losses import LOSSES
from specnn.catalog.optimizers import OPTIMIZERS
from specnn.catalog.sources import SOURCES
from specnn.spec.messages import BOUND_SIGNS, PATTERN_WORDS, SIZE_WORDS
from specnn.spec.schema import REGENERATE, json_schema, schema_text
from specnn.spec.yaml_reader import read_yaml

COMMITTED = Path(__file__).resolve().parent.parent / "specnn" / "schema" / "spec.schema.json"

# Keywords validate.translate words itself; annotations carry no rule.
WORDED = {"anyOf", "oneOf", "additionalProperties", "required", "type", "enum", "const", "pattern",
          *BOUND_SIGNS, *SIZE_WORDS}
STRUCTURE = {"$schema", "$id", "$defs", "$ref", "properties", "items", "prefixItems"}
ANNOTATIONS = {"title", "description", "default", "examples", "x-choice", "x-choices", "x-arguments-of",
               "x-single-keys"}


def subschemas(schema: Any) -> Iterator[dict]:
    if isinstance(schema, dict):
        yield schema
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    yield from subschemas(sub)
            elif key not in ("default", "examples", "x-choices", "enum", "const"):
                yield from subschemas(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from subschemas(item)


def test_the_committed_schema_is_up_to_date():
    assert COMMITTED.read_text() == schema_text(), (
        f"specnn/schema/spec.schema.json is out of date; regenerate it with:\n    {REGENERATE}"
    )


def test_the_schema_module_prints_the_schema():
    result = subprocess.run([sys.executable, "-m", "specnn.spec.schema"], capture_output=True, text=True, check=True)
    assert result.stdout == schema_text()


def test_specnn_schema_command_prints_the_committed_schema(cli_runner):
    from specnn.cli import cli

    result = cli_runner.invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert result.output == COMMITTED.read_text()


def test_the_schema_is_a_valid_draft_2020_12_schema_with_an_id():
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:specnn:spec:1"
    assert schema["title"] == "specnn spec, format 1"
    assert schema["required"] == ["name", "model", "data", "loss", "optimizer"]


def test_the_example_is_valid_under_the_committed_schema(iris_spec):
    schema = json.loads(COMMITTED.read_text())
    data = read_yaml(iris_spec.read_text()).data
    assert list(Draft202012Validator(schema).iter_errors(data)) == []


def test_choices_and_argument_models_are_marked():
    defs = json_schema()["$defs"]
    marks = {"Node": ("layer type", LAYERS), "DataSpec": ("data source", SOURCES),
             "LossSpec": ("loss", LOSSES), "OptimizerSpec": ("optimizer", OPTIMIZERS)}
    for name, (what, table) in marks.items():
        assert defs[name]["x-choice"] == what
        assert defs[name]["x-choices"] == list(table)
        for entry in table.values():
            assert defs[entry.args.__name__]["x-arguments-of"] == what, entry.name


def test_every_pattern_has_words():
    patterns = {s["pattern"] for s in subschemas(json_schema()) if "pattern" in s}
    assert patterns and patterns <= set(PATTERN_WORDS)


def test_every_schema_keyword_is_worded_by_the_message_layer():
    keywords = {k for s in subschemas(json_schema()) for k in s}
    assert keywords - WORDED - STRUCTURE - ANNOTATIONS == set()


def test_validation_reads_the_committed_schema_which_equals_the_generated_one():
    from specnn.spec.schema import cached_schema, json_schema

    assert cached_schema() == json_schema() == json.loads(COMMITTED.read_text())
