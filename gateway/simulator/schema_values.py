"""A simple value that satisfies a JSON schema: tool-call arguments and structured answers.

Pure. Covers what function parameters and structured-output schemas use in practice (types,
required properties, `$ref` into `$defs`, enums, consts, `anyOf`, string formats), not the whole
of JSON Schema: the first option of a choice, the minimum of a bounded number.
"""

from __future__ import annotations

from typing import Any


def value_for_schema(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A simple value that satisfies a JSON schema's types and required properties."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return value_for_schema(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return value_for_schema(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        names = required if isinstance(required, list) else list(properties)
        return {
            name: value_for_schema(properties.get(name, {}), root, depth + 1)
            for name in names
            if isinstance(name, str)
        }
    if kind == "array":
        return [value_for_schema(schema.get("items", {}), root, depth + 1)]
    if kind == "integer":
        minimum = schema.get("minimum")
        return minimum if isinstance(minimum, int) and not isinstance(minimum, bool) else 1
    if kind == "number":
        minimum = schema.get("minimum")
        return (
            minimum if isinstance(minimum, int | float) and not isinstance(minimum, bool) else 1.5
        )
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _STRING_FORMATS.get(str(schema.get("format")), "example")


def arguments_for(parameters: Any) -> dict[str, Any]:
    """A tool call's arguments: always a JSON object, as a model's are. A function declared
    without parameters (or with `{}`) takes none: `{}`."""
    value = value_for_schema(parameters) if parameters else None
    return value if isinstance(value, dict) else {}


_STRING_FORMATS = {
    "date": "2024-09-12",
    "date-time": "2024-09-12T12:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
