"""The structural-schema rules of the API server, one by one, on small schemas."""

from __future__ import annotations

from typing import Any

from wonderland.export.structural import StructuralValidator


def problems(
    value: Any, schema: dict[str, Any], defs: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in StructuralValidator(defs or {}).validate(value, schema)]


OBJ = {
    "type": "object",
    "properties": {"a": {"type": "string"}},
}


def test_an_object_without_properties_keeps_no_field() -> None:
    assert problems({"x": 1}, {"type": "object"}) == [
        ("x", 'unknown field "x": this object takes no fields here')
    ]


def test_preserve_unknown_fields_and_additional_properties_keep_fields() -> None:
    assert problems({"a": "s", "x": 1}, {**OBJ, "x-kubernetes-preserve-unknown-fields": True}) == []
    assert problems({"a": "s", "x": 1}, {**OBJ, "additionalProperties": True}) == []
    assert problems({"x": 1}, {"type": "object", "additionalProperties": {"type": "string"}}) == [
        ("x", "expected a string, found an integer (1)")
    ]


def test_an_embedded_resource_keeps_api_version_kind_and_metadata() -> None:
    schema = {**OBJ, "x-kubernetes-embedded-resource": True}
    assert problems({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "a": "s"}, schema) == []
    assert [p for p, _ in problems({"spec": {}}, schema)] == ["spec"]


def test_int_or_string() -> None:
    schema = {"x-kubernetes-int-or-string": True}
    assert problems(8080, schema) == []
    assert problems("http", schema) == []
    assert problems(True, schema) == [
        ("", "expected an integer or a string, found a boolean (true)")
    ]


def test_a_boolean_is_not_an_integer_and_an_integral_number_is() -> None:
    assert problems(True, {"type": "integer"}) == [
        ("", "expected an integer, found a boolean (true)")
    ]
    assert problems(3.0, {"type": "integer"}) == []


def test_nullable_and_null() -> None:
    schema = {
        "type": "object",
        "required": ["a", "b"],
        "properties": {"a": {"type": "string"}, "b": {"type": "string", "nullable": True}},
    }
    assert problems({"a": None, "b": None}, schema) == [("a", "required field is missing")]


def test_junctors_restrict_values_but_declare_no_fields() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    assert problems({"a": "x"}, schema) == []
    assert problems({"a": "x", "b": "y"}, schema) == [
        ("", "must match exactly one of: an object with a; an object with b")
    ]


def test_limits_and_patterns() -> None:
    assert problems("abcdef", {"type": "string", "maxLength": 3}) == [
        ("", "too long: at most 3 characters, found 6")
    ]
    assert problems("Ab", {"type": "string", "pattern": "^[a-z]+$"}) == [
        ("", '"Ab" does not match the pattern ^[a-z]+$')
    ]
    assert problems(0, {"type": "integer", "minimum": 1}) == [("", "must be at least 1, found 0")]
    assert problems([1, 2, 3], {"type": "array", "maxItems": 2, "items": {"type": "integer"}}) == [
        ("", "too many items: at most 2, found 3")
    ]


def test_list_types_refuse_duplicates() -> None:
    assert problems(
        ["a", "a"], {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    ) == [("[1]", 'duplicate value "a" in a set')]
    listed = {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    assert problems([{"name": "a"}, {"name": "b"}], listed) == []
    assert [p for p, _ in problems([{"name": "a"}, {"name": "a"}], listed)] == ["[1]"]


def test_references_resolve_in_the_definitions() -> None:
    defs = {
        "Port": {
            "type": "object",
            "required": ["port"],
            "properties": {"port": {"type": "integer"}},
        }
    }
    schema = {
        "type": "object",
        "properties": {"ports": {"type": "array", "items": {"$ref": "#/$defs/Port"}}},
    }
    assert problems({"ports": [{"port": "80"}, {}]}, schema, defs) == [
        ("ports[0].port", 'expected an integer, found a string ("80")'),
        ("ports[1].port", "required field is missing"),
    ]
