"""The OpenAPI document names nothing it lacks: every ``$ref`` resolves, and every schema a text names is there.

A name is a schema name when it is written like one: a CamelCase word of two or more capitalised parts
(``EventIn``, ``ReferralCreate``), anywhere in a description or summary, or any capitalised identifier in
backticks (`` `Consent` ``) other than an HTTP header's name (`` `Location` ``). Such a name must be a schema of
``components`` (FastAPI may qualify a name shared by two modules as ``app__module__Name`` or suffix ``-Input`` /
``-Output``; those count as the name).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx

CAMEL_CASE = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+\b")
BACKTICKED = re.compile(r"`([^`\s]+)`")
IDENTIFIER = re.compile(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*")
TEXT_KEYS = {"description", "summary"}
# One-word HTTP header names, which texts write in backticks as they write schema names.
HEADER_NAMES = {"Accept", "Allow", "Authorization", "Location", "Link"}


def texts(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    """(JSON pointer, text) of every description and summary in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in TEXT_KEYS and isinstance(value, str):
                yield f"{where}/{key}", value
            else:
                yield from texts(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from texts(value, f"{where}/{index}")


def references(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from references(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from references(value, f"{where}/{index}")


def resolve(document: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), f"{pointer} points outside the document"
    node: Any = document
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{pointer} does not resolve"
        node = node[part]
    return node


def named_schemas(text: str) -> set[str]:
    names = set(CAMEL_CASE.findall(text))
    names |= {token for token in BACKTICKED.findall(text) if IDENTIFIER.fullmatch(token)} - HEADER_NAMES
    return names


def schema_names(document: dict[str, Any]) -> set[str]:
    names = set()
    for name in document["components"]["schemas"]:
        names |= {name, name.rsplit("__", 1)[-1], re.sub(r"-(Input|Output)$", "", name.rsplit("__", 1)[-1])}
    return names


def test_the_rule_finds_names_and_only_names() -> None:
    text = (
        "Each `EventIn` (see ReferralCreate, `Consent`); `account_opened`, PostgreSQL's `percentile_cont`, 64 MiB, "
        "a `Location` header"
    )
    assert named_schemas(text) == {"EventIn", "ReferralCreate", "Consent"}


async def test_every_reference_resolves(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    found = list(references(document))
    assert len(found) > 100
    for where, pointer in found:
        assert resolve(document, pointer) is not None, where


async def test_every_schema_a_text_names_is_in_the_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    known = schema_names(document)
    dangling = [
        (where, name) for where, text in texts(document) for name in sorted(named_schemas(text)) if name not in known
    ]
    assert not dangling, f"texts name schemas the document lacks: {dangling}"


async def test_the_conversion_batch_names_its_event_schema(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    event = document["components"]["schemas"]["EventIn"]
    assert {"source_event_id", "type", "occurred_at", "client_ref"} <= set(event["required"])
    for _, pointer in references(event):
        resolve(document, pointer)
