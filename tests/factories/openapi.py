"""Reading the OpenAPI document in tests."""

from __future__ import annotations

from typing import Any


def format_choices(document: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """The values of the operation's ``format`` query parameter (none if it has no such parameter)."""
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "format" and parameter["in"] == "query":
            schema = parameter["schema"]
            if "$ref" in schema:
                schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            return set(schema["enum"])
    return set()
