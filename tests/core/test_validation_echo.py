"""A validation problem names where and why, never what was sent: not in a message, not as a location."""

from __future__ import annotations

from typing import Annotated, Literal

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.problems import UNECHOED_NAME

SECRET = "110101199003074578"


class Bank(BaseModel):
    kind: Literal["bank"]


class Insurer(BaseModel):
    kind: Literal["insurer"]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner: Annotated[Bank | Insurer, Field(discriminator="kind")] | None = None
    reference: str | None = None
    limits: dict[str, int] | None = None

    @field_validator("reference")
    @classmethod
    def _known(cls, value: str) -> str:
        if value == "plain":
            raise ValueError("not a known reference")
        raise ValueError(f"unknown reference {value}")  # a careless message: the handler must not pass it on


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    @app.post("/_test/echo")
    async def echo(payload: Payload) -> dict[str, str]:
        return {}

    return app


async def _errors(client: httpx.AsyncClient, body: object) -> tuple[str, list[dict[str, object]]]:
    response = await client.post("/_test/echo", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.text, response.json()["errors"]


async def test_a_discriminator_tag_is_not_echoed(client: httpx.AsyncClient) -> None:
    text, errors = await _errors(client, {"partner": {"kind": SECRET}})
    assert SECRET not in text
    assert errors[0]["loc"] == ["body", "partner"] and errors[0]["type"] == "union_tag_invalid"
    assert "'bank'" in str(errors[0]["msg"]) and "'insurer'" in str(errors[0]["msg"])


async def test_a_validator_message_quoting_the_value_is_replaced(client: httpx.AsyncClient) -> None:
    text, errors = await _errors(client, {"reference": SECRET})
    assert SECRET not in text
    assert errors == [{"loc": ["body", "reference"], "msg": "Invalid value", "type": "value_error"}]


async def test_a_validator_message_without_the_value_is_kept(client: httpx.AsyncClient) -> None:
    _, errors = await _errors(client, {"reference": "plain"})
    assert errors[0]["msg"] == "Value error, not a known reference"


async def test_keys_the_client_chose_are_named_only_when_they_look_like_field_names(client: httpx.AsyncClient) -> None:
    text, errors = await _errors(client, {"limits": {SECRET: "many", "daily_cap": "x"}, "张三": 1, "stauts": 1})
    assert SECRET not in text and "张三" not in text
    assert sorted(map(str, (error["loc"] for error in errors))) == sorted(
        map(
            str,
            (
                ["body", "limits", UNECHOED_NAME],
                ["body", "limits", "daily_cap"],
                ["body", UNECHOED_NAME],
                ["body", "stauts"],
            ),
        )
    )


async def test_invalid_utf8_in_a_json_body_is_a_client_error(client: httpx.AsyncClient) -> None:
    body = b'{"reference": "\xed\xa0\x80"}'  # a surrogate encoded as UTF-8 bytes: not UTF-8
    response = await client.post("/_test/echo", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
