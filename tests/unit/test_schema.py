"""The committed protocol schema matches the declarations (spec §12)."""

from pathlib import Path

import orjson

from clawgate.gateway.methods import build_registry
from clawgate.gateway.schema_export import protocol_schema_bytes

COMMITTED = Path(__file__).resolve().parents[2] / "schema" / "protocol.schema.json"


def test_committed_schema_is_up_to_date() -> None:
    assert COMMITTED.read_bytes() == protocol_schema_bytes(), (
        "schema/protocol.schema.json is stale: run `make schema` and commit it"
    )


def test_every_method_and_event_has_definitions() -> None:
    definitions = orjson.loads(protocol_schema_bytes())["definitions"]
    registry = build_registry()
    for spec in registry:
        params = definitions[f"{spec.name}.params"]
        assert params["x-role"] == spec.role.value
        assert params["x-scope"] == spec.scope
        assert params["x-idempotency"] == spec.idempotency.value
        assert f"{spec.name}.result" in definitions
    for event in registry.event_names():
        assert f"{event}.payload" in definitions


def test_root_is_one_of_the_three_frames() -> None:
    schema = orjson.loads(protocol_schema_bytes())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert [entry["$ref"] for entry in schema["oneOf"]] == [
        "#/definitions/RequestFrame",
        "#/definitions/ResponseFrame",
        "#/definitions/EventFrame",
    ]
    for name in ("ErrorShape", "ConnectParams", "HelloOk3", "HelloOk4", "Snapshot", "Policy"):
        assert schema["definitions"][name]["additionalProperties"] is False


def test_schema_is_byte_stable() -> None:
    protocol_schema_bytes.cache_clear()
    first = protocol_schema_bytes()
    protocol_schema_bytes.cache_clear()
    assert protocol_schema_bytes() == first
